"""The OSS wire protocol over OssState: path-style routing, auth, object and ListObjectsV2 responses.

Path-style only (``/<bucket>/<key>``): both SDKs use it against an IP endpoint (oss.md §1).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable
from email.utils import formatdate
from pathlib import Path
from urllib.parse import parse_qsl, quote
from xml.sax.saxutils import escape

from .. import ram
from ..faults import FaultPlan
from ..http import Request, Response, StandinServer
from ..keyring import Keyring
from . import auth, rules
from .errors import (
    InvalidArgument,
    InvalidDigest,
    InvalidObjectState,
    NoSuchBucket,
    OperationNotImplemented,
    OssError,
    RamDenied,
    error_response,
)
from .errors import injected_error as _injected_error
from .state import ObjectMeta, OssState, new_version_id


def new_request_id() -> str:
    return secrets.token_hex(12).upper()


def http_date(ts: float) -> str:
    return formatdate(ts, usegmt=True)


def iso_time(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(ts))


def override_headers(headers: list[tuple[str, str]], query: auth.Query) -> list[tuple[str, str]]:
    """Apply GetObject's response-* parameters (e.g. response-content-disposition) to the response headers."""
    overrides = {rules.RESPONSE_OVERRIDES[k]: v or "" for k, v in query if k in rules.RESPONSE_OVERRIDES}
    lowered = {name.lower() for name in overrides}
    return [(k, v) for k, v in headers if k.lower() not in lowered] + list(overrides.items())


def object_headers(meta: ObjectMeta) -> list[tuple[str, str]]:
    headers = [("ETag", f'"{meta.etag}"'), ("Content-Type", meta.content_type),
               ("Last-Modified", http_date(meta.last_modified)), ("x-oss-object-type", "Normal"),
               ("x-oss-storage-class", meta.storage_class)]
    headers += [(f"x-oss-meta-{k}", v) for k, v in meta.user_meta.items()]
    headers += version_headers(meta)
    if meta.restored_until is not None:
        headers.append(("x-oss-restore", f'ongoing-request="false", expiry-date="{http_date(meta.restored_until)}"'))
    if meta.sse:
        headers.append(("x-oss-server-side-encryption", meta.sse))
    if meta.sse_key_id:
        headers.append(("x-oss-server-side-encryption-key-id", meta.sse_key_id))
    if meta.tagging:
        headers.append(("x-oss-tagging-count", str(len(meta.tagging.split("&")))))
    return headers


def version_headers(meta: ObjectMeta) -> list[tuple[str, str]]:
    return [("x-oss-version-id", meta.version_id)] if meta.version_id else []


def list_v2_xml(bucket: str, listing_args: dict[str, str], objects: list[ObjectMeta], prefixes: list[str],
                next_token: str | None, max_keys: int, url_encode: bool) -> bytes:
    def enc(s: str) -> str:
        # encoding-type=url: OSS URL-encodes Prefix, Delimiter, StartAfter, tokens and Key. Plain: XML escapes,
        # with CR as a reference (a parser turns a raw CR into LF); characters XML 1.0 forbids go out as they
        # are, and the client's parser then fails, as with OSS [inferred]: such keys need encoding-type=url
        return escape(quote(s, safe="/") if url_encode else s, {"\r": "&#13;"})

    out = ['<?xml version="1.0" encoding="UTF-8"?>', "<ListBucketResult>", f"<Name>{escape(bucket)}</Name>",
           f"<Prefix>{enc(listing_args.get('prefix', ''))}</Prefix>", f"<MaxKeys>{max_keys}</MaxKeys>",
           f"<Delimiter>{enc(listing_args.get('delimiter', ''))}</Delimiter>"]
    for name, tag in (("start-after", "StartAfter"), ("continuation-token", "ContinuationToken")):
        if name in listing_args:
            out.append(f"<{tag}>{enc(listing_args[name])}</{tag}>")
    if url_encode:
        out.append("<EncodingType>url</EncodingType>")
    owner = (f"<Owner><ID>{LOCAL_ACCOUNT_ID}</ID><DisplayName>{LOCAL_ACCOUNT_ID}</DisplayName></Owner>"
             if listing_args.get("fetch-owner") == "true" else "")
    out.append(f"<IsTruncated>{'true' if next_token else 'false'}</IsTruncated>")
    if next_token:
        out.append(f"<NextContinuationToken>{enc(next_token)}</NextContinuationToken>")
    out.append(f"<KeyCount>{len(objects) + len(prefixes)}</KeyCount>")
    out += [f'<Contents><Key>{enc(o.key)}</Key><LastModified>{iso_time(o.last_modified)}</LastModified>'
            f'<ETag>"{o.etag}"</ETag><Type>Normal</Type><Size>{o.size}</Size>'
            f"<StorageClass>{o.storage_class}</StorageClass>{owner}</Contents>" for o in objects]
    out += [f"<CommonPrefixes><Prefix>{enc(p)}</Prefix></CommonPrefixes>" for p in prefixes]
    out.append("</ListBucketResult>")
    return "\n".join(out).encode()


def encode_token(last: str) -> str:
    """Opaque and URL-safe (no '=' padding), so it reads the same URL-encoded or not."""
    return base64.urlsafe_b64encode(last.encode()).decode().rstrip("=")


def decode_token(token: str) -> str:
    try:
        return base64.b64decode((token + "=" * (-len(token) % 4)).encode(), altchars=b"-_", validate=True).decode()
    except ValueError:
        raise InvalidArgument("The continuation token is not valid.") from None


LOCAL_ACCOUNT_ID = "1234567890123456"
RAM_ACTIONS = {"GetObject": "oss:GetObject", "HeadObject": "oss:GetObject", "GetObjectMeta": "oss:GetObject",
               "PutObject": "oss:PutObject",
               "DeleteObject": "oss:DeleteObject", "ListObjectsV2": "oss:ListObjects", "PutBucket": "oss:PutBucket",
               "GetBucketVersioning": "oss:GetBucketVersioning", "PutBucketVersioning": "oss:PutBucketVersioning"}


def _ram_context(request: Request) -> dict[str, str]:
    """The condition keys RAM sees for a request: a listing's prefix (empty when none is given)."""
    args = dict(parse_qsl(request.raw_query, keep_blank_values=True))
    return {"oss:Prefix": args.get("prefix", ""), "oss:Delimiter": args.get("delimiter", "")}


class OssService:
    """OSS for one region over a folder of plain files; ``stats`` counts requests per operation."""

    name = "oss"

    def __init__(self, root: Path, keyring: Keyring, region: str, clock: Callable[[], float] = time.time) -> None:
        self.state = OssState(root)
        self.keyring = keyring
        self.region = region
        self.clock = clock
        self.stats: Counter[str] = Counter()  # "PutObject", "GetObject:presigned", ...; errors as "error:<Code>"
        self._stats_lock = threading.Lock()

    def handle(self, request: Request) -> Response:
        request_id = new_request_id()
        bucket, _, key = request.path.lstrip("/").partition("/")
        try:
            query_names = [name for name, _ in auth.parse_query(request.raw_query)]
            if not bucket:
                raise OperationNotImplemented("The stand-in serves path-style bucket and object requests only.")
            if not self._creates_bucket(request, key, query_names) and not self.state.bucket_exists(bucket):
                raise NoSuchBucket(BucketName=bucket)  # before auth, as OSS answers a missing bucket
            principal = auth.verify(request, bucket, key, self.keyring, self.region, self.clock())
            op = rules.operation(request.method, key, query_names, request.header_map())
            self._authorize(principal.access_key_id, op, bucket, key, _ram_context(request))
            self._count(op + (":presigned" if principal.presigned else ""))
            return self._dispatch(op, request, bucket, key, request_id)
        except OssError as err:
            self._count(f"error:{err.code}")
            return self.error(err, request, request_id, bucket)

    def _authorize(self, access_key_id: str, op: str, bucket: str, key: str,
                   context: dict[str, str] | None = None) -> None:
        """Enforce the key's RAM policy, if it has one (the function role's, in tests that set it)."""
        policy = self.keyring.policy_for(access_key_id)
        if policy is None:
            return
        resource = f"acs:oss:{self.region}:{LOCAL_ACCOUNT_ID}:{bucket}" + (f"/{key}" if key else "")
        if not ram.allowed(policy, RAM_ACTIONS[op], resource, context):
            raise RamDenied(Bucket=bucket, Key=key) if key else RamDenied(Bucket=bucket)

    def service_error(self, status: int, request: Request, code: str | None = None,
                      message: str | None = None) -> Response:
        """The shape of an injected fault (see standins/faults)."""
        bucket = request.path.lstrip("/").partition("/")[0]
        self._count(f"injected:{status}")
        return self.error(_injected_error(status, code, message), request, new_request_id(), bucket)

    def error(self, err: OssError, request: Request, request_id: str, bucket: str) -> Response:
        host_id = f"{bucket}.oss-{self.region}.aliyuncs.com" if bucket else f"oss-{self.region}.aliyuncs.com"
        return error_response(err, request_id, host_id, head=request.method == "HEAD",
                              base_headers=self._base_headers(request_id))

    def _count(self, name: str) -> None:
        with self._stats_lock:
            self.stats[name] += 1

    def _base_headers(self, request_id: str) -> list[tuple[str, str]]:
        return [("x-oss-request-id", request_id), ("Date", http_date(self.clock())), ("Server", "AliyunOSS")]

    @staticmethod
    def _creates_bucket(request: Request, key: str, query_names: list[str]) -> bool:
        return request.method == "PUT" and not key and not set(query_names) - rules.AUTH_PARAMS

    def _dispatch(self, op: str, request: Request, bucket: str, key: str, request_id: str) -> Response:
        headers = self._base_headers(request_id)
        if op == "PutObject":
            return self._put_object(request, bucket, key, request_id, headers)
        if op in ("GetObject", "HeadObject"):
            return self._get_object(request, bucket, key, headers)
        if op == "GetObjectMeta":  # the short metadata: no user metadata, no content type
            meta = self.state.head(bucket, key)
            return Response(200, [*headers, ("ETag", f'"{meta.etag}"'), ("Content-Length", str(meta.size)),
                                  ("Last-Modified", http_date(meta.last_modified)),
                                  ("x-oss-hash-crc64ecma", str(meta.crc64))])
        if op == "DeleteObject":
            versioning = self.state.versioning(bucket)
            self.state.delete(bucket, key)
            if versioning == "Enabled":  # a delete marker is the new current version (not kept here)
                headers += [("x-oss-delete-marker", "true"), ("x-oss-version-id", new_version_id())]
            return Response(204, headers)
        if op == "PutBucket":
            self.state.create_bucket(bucket)
            return Response(200, [*headers, ("Location", f"/{bucket}")])
        if op == "GetBucketVersioning":
            return Response(200, [*headers, ("Content-Type", "application/xml")],
                            rules.versioning_xml(self.state.versioning(bucket)))
        if op == "PutBucketVersioning":
            self._check_md5(request, "")
            self.state.set_versioning(bucket, rules.parse_versioning(request.body))
            return Response(200, [*headers, ("Content-Length", "0")])
        return self._list_objects_v2(request, bucket, headers)

    @staticmethod
    def _check_md5(request: Request, key: str) -> None:
        md5 = request.header("Content-MD5")
        if md5 and md5 != base64.b64encode(hashlib.md5(request.body).digest()).decode():
            raise InvalidDigest(Key=key) if key else InvalidDigest()

    def _put_object(self, request: Request, bucket: str, key: str, request_id: str,
                    headers: list[tuple[str, str]]) -> Response:
        self._check_md5(request, key)
        meta = self.state.put(
            bucket, key, request.body,
            content_type=request.header("Content-Type") or None,
            user_meta={k[len("x-oss-meta-"):]: v[-1] for k, v in request.header_map().items()
                       if k.startswith("x-oss-meta-")},
            sse=request.header("x-oss-server-side-encryption") or None,
            tagging=request.header("x-oss-tagging") or None,
            forbid_overwrite=request.header("x-oss-forbid-overwrite").lower() == "true",
            request_id=request_id, storage_class=rules.storage_class(request.header("x-oss-storage-class")),
            sse_key_id=request.header("x-oss-server-side-encryption-key-id") or None)
        return Response(200, [*headers, ("ETag", f'"{meta.etag}"'), ("x-oss-hash-crc64ecma", str(meta.crc64)),
                              *version_headers(meta), ("Content-Length", "0")])

    def _get_object(self, request: Request, bucket: str, key: str, headers: list[tuple[str, str]]) -> Response:
        # the conditions are checked and the bytes read under one hold of the object: If-Match pins what is served
        with self.state.reading(bucket, key) as (meta, data):
            if rules.not_modified(request.header("If-Match"), request.header("If-None-Match"),
                                  request.header("If-Modified-Since"), request.header("If-Unmodified-Since"),
                                  meta.etag, float(int(meta.last_modified))):
                return Response(304, [*headers, ("ETag", f'"{meta.etag}"'),
                                      ("Last-Modified", http_date(meta.last_modified))])
            headers = [*headers, *object_headers(meta)]
            if request.method == "HEAD":
                return Response(200, [*headers, ("Content-Length", str(meta.size)),
                                      ("x-oss-hash-crc64ecma", str(meta.crc64))])
            refusal = self._read_refusal(meta)
            if refusal is not None:
                raise refusal
            standard = request.header("x-oss-range-behavior").lower() == "standard"
            span = rules.byte_range(request.header("Range"), meta.size, standard=standard) \
                if request.header("Range") else None
            data.seek(span[0] if span else 0)
            body = data.read(span[1] - span[0] + 1) if span else data.read()
        headers = override_headers(headers, auth.parse_query(request.raw_query))
        if span is None:
            return Response(200, [*headers, ("x-oss-hash-crc64ecma", str(meta.crc64)), ("Accept-Ranges", "bytes")],
                            body)
        # the CRC covers the whole object, so it is left off a partial body
        return Response(206, [*headers, ("Content-Range", f"bytes {span[0]}-{span[1]}/{meta.size}"),
                              ("Accept-Ranges", "bytes")], body)

    def _read_refusal(self, meta: ObjectMeta) -> OssError | None:
        """Why the world refuses to hand out these bytes (the metadata still reads): a frozen storage class,
        then the object's KMS key."""
        if meta.frozen(self.clock()):
            return InvalidObjectState(Key=meta.key)
        return self.state.kms_refusal(meta.sse_key_id) if meta.sse_key_id else None

    def _list_objects_v2(self, request: Request, bucket: str, headers: list[tuple[str, str]]) -> Response:
        args = {k: v or "" for k, v in auth.parse_query(request.raw_query)}
        if args.get("list-type") != "2":
            raise OperationNotImplemented("The stand-in lists with ListObjectsV2 (list-type=2) only.")
        if args.get("encoding-type", "url") != "url":
            raise InvalidArgument("encoding-type must be url.", EncodingType=args["encoding-type"])
        max_keys_raw = args.get("max-keys", "100")
        if not max_keys_raw.isdigit() or not 0 < int(max_keys_raw) <= 1000:
            raise InvalidArgument("max-keys must be between 1 and 1000.")
        max_keys = int(max_keys_raw)
        after = decode_token(args["continuation-token"]) if "continuation-token" in args else ""
        after = max(after, args.get("start-after", ""))
        listing = self.state.list_v2(bucket, prefix=args.get("prefix", ""), delimiter=args.get("delimiter", ""),
                                     max_keys=max_keys, after=after)
        body = list_v2_xml(bucket, args, listing.objects, listing.prefixes,
                           encode_token(listing.last) if listing.truncated else None, max_keys,
                           args.get("encoding-type") == "url")
        return Response(200, [*headers, ("Content-Type", "application/xml")], body)


class OssStandin(StandinServer):
    """A StandinServer that keeps its OssService at hand (``.service.stats``, ``.service.state``)."""

    def __init__(self, service: OssService, *, port: int = 0, faults: FaultPlan | None = None) -> None:
        super().__init__(service, port=port, faults=faults, service_error=service.service_error,
                         describe=rules.fault_target)
        self.service = service
        self._started = False

    def start(self) -> OssStandin:
        if not self._started:  # start_oss() starts it; a later ``with`` must not start the thread twice
            self._started = True
            super().start()
        return self

    def __enter__(self) -> OssStandin:
        return self.start()


def start_oss(root: Path, keyring: Keyring, region: str, port: int = 0, faults: FaultPlan | None = None,
              *, buckets: tuple[str, ...] = (), clock: Callable[[], float] = time.time) -> OssStandin:
    """Serve OSS on 127.0.0.1:``port`` (0 = any free port) over ``root``, creating ``buckets``; started."""
    service = OssService(Path(root), keyring, region, clock)
    for bucket in buckets:
        service.state.create_bucket(bucket)
    return OssStandin(service, port=port, faults=faults).start()
