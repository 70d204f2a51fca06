"""OSS request rules as pure functions: which operation a request names, byte ranges, and preconditions.

Sources (Alibaba Cloud OSS docs): "Use HTTP Range requests to get OSS resources in segments" and the PHP v2
range-download page (range behaviour with and without ``x-oss-range-behavior: standard``), "http status code 416",
"Conditional download" / "http status code 412" (If-* headers), oss.md §3.2 (the signed sub-resource list).
Where the docs are silent the choice is marked [inferred] and follows RFC 7232/7233, as S3 does.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Collection
from email.utils import parsedate_to_datetime
from typing import Literal

from ..faults import Target
from ..http import Request
from .auth import V1_SUBRESOURCES, parse_query, query_value
from .errors import InvalidArgument, InvalidRange, MalformedXML, OperationNotImplemented, PreconditionFailed

# query parameters that carry a signature, never an operation
AUTH_PARAMS = frozenset({
    "OSSAccessKeyId", "Expires", "Signature", "security-token", "x-oss-signature-version", "x-oss-date",
    "x-oss-expires", "x-oss-credential", "x-oss-signature", "x-oss-additional-headers", "x-oss-security-token",
    "x-oss-access-key-id"})
RESPONSE_OVERRIDES = {  # GetObject's response-* parameters and the header each one sets
    "response-content-type": "Content-Type", "response-content-language": "Content-Language",
    "response-expires": "Expires", "response-cache-control": "Cache-Control",
    "response-content-disposition": "Content-Disposition", "response-content-encoding": "Content-Encoding"}
LIST_V2_PARAMS = frozenset({"list-type", "prefix", "delimiter", "max-keys", "start-after", "continuation-token",
                            "encoding-type", "fetch-owner"})
_OPERATIONS = {  # (method, has key) -> the operation served; anything else is refused
    ("PUT", True): "PutObject", ("GET", True): "GetObject", ("HEAD", True): "HeadObject",
    ("DELETE", True): "DeleteObject", ("PUT", False): "PutBucket", ("GET", False): "ListObjectsV2"}
_ALLOWED_PARAMS: dict[str, frozenset[str]] = {
    "GetObject": frozenset(RESPONSE_OVERRIDES), "ListObjectsV2": LIST_V2_PARAMS,
    "GetObjectMeta": frozenset({"objectMeta"}), "GetBucketVersioning": frozenset({"versioning"}),
    "PutBucketVersioning": frozenset({"versioning"})}
# PutObject headers that name another operation (CopyObject, PutSymlink, callbacks) or a state not modelled
_FOREIGN_PUT_HEADERS = ("x-oss-copy-source", "x-oss-symlink-target", "x-oss-callback", "x-oss-callback-var",
                        "x-oss-metadata-directive", "x-oss-tagging-directive")
# OSS documents If-* for reads only (its create-only write is x-oss-forbid-overwrite); a client that relied on a
# conditional PUT or DELETE would be unprotected there, so the stand-in refuses it rather than ignore it [inferred]
_READ_ONLY_CONDITIONS = ("if-match", "if-none-match", "if-modified-since", "if-unmodified-since")
_MODELLED_ACLS = ("", "default", "private")  # every stand-in object needs a signature to read
# x-oss-storage-class values as OSS spells them (PutObject reference); matched case-insensitively [inferred]
STORAGE_CLASSES = ("Standard", "IA", "Archive", "ColdArchive", "DeepColdArchive")
# classes whose objects are frozen: GetObject answers 403 InvalidObjectState until they are restored
FROZEN_CLASSES = frozenset({"Archive", "ColdArchive", "DeepColdArchive"})
_BYTES_RE = re.compile(r"^(\d*)-(\d*)$")


def operation_name(method: str, key: str, query_names: Collection[str]) -> str | None:
    """The operation a request's method, key and sub-resource name, before any check (None: not served)."""
    op = _OPERATIONS.get((method, bool(key)))
    if op == "HeadObject" and "objectMeta" in query_names:
        op = "GetObjectMeta"  # both SDKs' exists() call it
    if op in ("PutBucket", "ListObjectsV2") and "versioning" in query_names:
        op = "PutBucketVersioning" if method == "PUT" else "GetBucketVersioning"
    return op


def fault_target(request: Request) -> Target:
    """What a request is for fault rules (its operation, object key, bucket); a listing's key is its prefix."""
    bucket, _, key = request.path.lstrip("/").partition("/")
    query = parse_query(request.raw_query)
    op = operation_name(request.method, key, [name for name, _ in query]) or ""
    if op == "ListObjectsV2":
        key = query_value(query, "prefix") or ""
    return Target(op, key, bucket)


def operation(method: str, key: str, query_names: Collection[str], headers: dict[str, list[str]]) -> str:
    """The implemented operation a request names, or OperationNotImplemented: a sub-resource (``?acl``,
    ``?uploads``...) or a foreign header must never reach the plain object read or write."""
    op = operation_name(method, key, query_names)
    if op is None:
        what = "POST requests (PostObject, AppendObject, multipart, DeleteMultipleObjects, RestoreObject...)" \
            if method == "POST" else f"{method} on a {'key' if key else 'bucket'}"
        raise OperationNotImplemented(f"The stand-in does not implement {what}.", Method=method)
    extra = sorted(set(query_names) - AUTH_PARAMS - _ALLOWED_PARAMS.get(op, frozenset()))
    if extra:
        kind = "sub-resource" if extra[0] in V1_SUBRESOURCES else "query parameter"
        raise OperationNotImplemented(f"The stand-in does not implement the {kind} ?{extra[0]} on {op}.",
                                      Method=method)
    if op == "ListObjectsV2" and "list-type" not in query_names:
        raise OperationNotImplemented("The stand-in lists with ListObjectsV2 (list-type=2) only, not ListObjects.")
    if op in ("PutObject", "DeleteObject"):
        for name in _READ_ONLY_CONDITIONS:
            if name in headers:
                raise OperationNotImplemented(f"OSS documents {name} on reads only; {op} would ignore it (use "
                                              "x-oss-forbid-overwrite to create only). Refused.", Header=name)
    if op == "PutObject":
        _check_put_headers(headers)
    return op


def _check_put_headers(headers: dict[str, list[str]]) -> None:
    for name in _FOREIGN_PUT_HEADERS:
        if name in headers:
            raise OperationNotImplemented(f"The stand-in does not implement {name} (no CopyObject, symlinks or "
                                          "callbacks); the PUT was refused and nothing was written.", Header=name)
    acl = headers.get("x-oss-object-acl", [""])[-1].lower()
    if acl not in _MODELLED_ACLS:
        raise OperationNotImplemented(f"The stand-in models private objects only, not x-oss-object-acl: {acl}.",
                                      Header="x-oss-object-acl")
    storage_class(headers.get("x-oss-storage-class", [""])[-1])


def storage_class(value: str) -> str:
    """The storage class a PutObject asks for, as OSS spells it ("" = Standard), or InvalidArgument [inferred:
    the code OSS answers for an unknown class is not documented]."""
    if not value:
        return "Standard"
    for name in STORAGE_CLASSES:
        if value.lower() == name.lower():
            return name
    raise InvalidArgument(f"x-oss-storage-class must be one of {', '.join(STORAGE_CLASSES)}.",
                          ArgumentName="x-oss-storage-class", ArgumentValue=value)


# -- versioning -----------------------------------------------------------------------------------------------
VERSIONING_STATUSES = ("Enabled", "Suspended")


def exclusive_put(forbid_overwrite: bool, versioning: str) -> bool:
    """Whether a PUT may only create. OSS PutObject reference, x-oss-forbid-overwrite: on a bucket whose
    versioning is Enabled or Suspended the header has no effect and the PUT overwrites [doc]."""
    return forbid_overwrite and versioning not in VERSIONING_STATUSES


def parse_versioning(body: bytes) -> Literal["Enabled", "Suspended"]:
    """The Status of a PutBucketVersioning body (<VersioningConfiguration><Status>Enabled|Suspended</Status>),
    or MalformedXML [inferred: the code OSS gives a bad body or status]."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        raise MalformedXML() from None
    status = root.findtext("Status") if root.tag == "VersioningConfiguration" else None
    if status == "Enabled":
        return "Enabled"
    if status == "Suspended":
        return "Suspended"
    raise MalformedXML("VersioningConfiguration needs a Status of Enabled or Suspended.")


def versioning_xml(status: str) -> bytes:
    """GetBucketVersioning's answer; a bucket never versioned has no Status element."""
    inner = f"<Status>{status}</Status>" if status else ""
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<VersioningConfiguration>{inner}</VersioningConfiguration>").encode()


# -- Range ----------------------------------------------------------------------------------------------------
def byte_range(header: str, size: int, *, standard: bool) -> tuple[int, int] | None:
    """(first, last) inclusive to serve as 206, or None to serve the whole object as 200.

    Default OSS behaviour ignores any range it cannot serve exactly (malformed, end or start past the end, a
    suffix longer than the object, a 0-byte object) and answers 200 with the whole object; of several ranges it
    serves the first. With ``x-oss-range-behavior: standard`` an end past the end is clipped, a start past the
    end is 416 InvalidRange, and (the 416 page lists them as a cause) so are several ranges [inferred: only with
    standard, since the default never answers 416]. A suffix with standard follows RFC 7233 [inferred].
    """
    spec = header.strip()
    if not spec.startswith("bytes="):
        return None
    ranges = spec[len("bytes="):].split(",")
    if len(ranges) > 1 and standard:
        raise InvalidRange(Range=header)
    m = _BYTES_RE.match(ranges[0].strip())
    if not m or m.groups() == ("", ""):
        return None
    first_s, last_s = m.groups()
    if not first_s:
        return _suffix(int(last_s), size, standard, header)
    first, last = int(first_s), (int(last_s) if last_s else size - 1)
    if last < first and last_s:
        return None  # syntactically invalid (RFC 7233 §2.1): ignored
    if first >= size:
        if standard:
            raise InvalidRange(Range=header)
        return None
    if last >= size:
        return (first, size - 1) if standard else None
    return first, last


def _suffix(n: int, size: int, standard: bool, header: str) -> tuple[int, int] | None:
    if standard:
        if n == 0 or size == 0:
            raise InvalidRange(Range=header)
        return max(size - n, 0), size - 1
    return (size - n, size - 1) if 0 < n <= size else None


# -- preconditions --------------------------------------------------------------------------------------------
def _etags(value: str) -> list[str]:
    return [t.strip().removeprefix("W/").strip('"') for t in value.split(",") if t.strip()]


def _etag_matches(value: str, etag: str) -> bool:
    return any(t == "*" or t == etag for t in _etags(value))


def _http_time(value: str) -> float | None:
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None  # OSS: an invalid time is ignored


def not_modified(if_match: str, if_none_match: str, if_modified_since: str, if_unmodified_since: str,
                 etag: str, last_modified: float) -> bool:
    """Evaluate GetObject/HeadObject's If-* headers against the object (``etag`` unquoted, ``last_modified``
    as the second shown in Last-Modified). True means answer 304; a failed If-Match / If-Unmodified-Since
    raises PreconditionFailed (412). ETags may be given quoted (as OSS returns them) or bare. Order per
    RFC 7232 §6 [inferred; OSS documents each header, and that the pairs may be combined, but not the order]."""
    if if_match:
        if not _etag_matches(if_match, etag):
            raise PreconditionFailed(Condition="If-Match")
    elif if_unmodified_since:
        since = _http_time(if_unmodified_since)
        if since is not None and last_modified > since:
            raise PreconditionFailed(Condition="If-Unmodified-Since")
    if if_none_match:
        return _etag_matches(if_none_match, etag)
    if if_modified_since:
        since = _http_time(if_modified_since)
        return since is not None and last_modified <= since
    return False
