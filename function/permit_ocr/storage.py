"""The OSS adapter (alibabacloud-oss-v2, V4 signing): reads and writes through the internal endpoint, and
presigns on the public endpoint, because the OCR service fetches the URL from outside the function's network.

Clients are built once per instance; credentials come through a provider that reads the current STS triple,
so rotated credentials are picked up without rebuilding anything.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import alibabacloud_oss_v2 as oss
from alibabacloud_oss_v2 import exceptions as oss_exc

from .config import Config
from .credentials import Credentials
from .errors import StorageError
from .layout import etag_form

__all__ = ["Chunk", "Listing", "ObjectHead", "Storage", "StorageError", "retrying"]

T = TypeVar("T")
ATTEMPTS = 4  # our attempts per request on transient errors, each with the SDK's own 3 tries
OUTCOME_PUT_EXPIRES_S = 3  # x-oss-date has whole seconds: a signed PUT is good for 2 to 3 s


def retrying(call: Callable[[], T], attempts: int = ATTEMPTS) -> T:
    """One OSS request, tried again on transient errors with a short backoff; the last error propagates."""
    for attempt in range(attempts - 1):
        try:
            return call()
        except StorageError as err:
            if not err.transient:
                raise
        time.sleep(0.2 * 2**attempt)
    return call()


@dataclass(frozen=True)
class ObjectHead:
    etag: str | None
    size: int | None
    metadata: Mapping[str, str]


@dataclass(frozen=True)
class Chunk:
    data: bytes
    total_size: int | None
    etag: str | None
    last_modified: float | None = None  # epoch seconds: when this version was uploaded


@dataclass(frozen=True)
class Listing:
    etags: Mapping[str, str]  # key -> ETag of every object listed
    truncated: bool
    last_key: str | None  # keys after this one were not listed (when truncated)

    def knows(self, key: str) -> bool:
        """Whether the listing can tell if ``key`` exists: listed, or sorted before where it stopped."""
        return key in self.etags or not self.truncated or (self.last_key is not None and key < self.last_key)


def _storage_error(exc: Exception) -> StorageError:
    inner = exc.unwrap() if isinstance(exc, oss_exc.OperationError) else exc
    if isinstance(inner, oss_exc.ServiceError):
        return StorageError(str(inner.code or "ServiceError"), str(inner.message or ""), inner.status_code or None,
                            inner.request_id)
    # connection failures, timeouts, client-side errors: no status, worth another try
    return StorageError(type(inner).__name__, str(inner)[:300], None, None)


_etag = etag_form


def _presigned_error(status: int, body: bytes, request_id: str | None) -> StorageError:
    """OSS's error XML of a PUT sent to a signed URL, as the SDK would map it."""
    import xml.etree.ElementTree as ET

    code, message = f"HTTP{status}", ""
    try:
        root = ET.fromstring(body)
        code = root.findtext("Code") or code
        message = root.findtext("Message") or ""
    except ET.ParseError:
        pass
    if status == 403 and "expired" in message.lower():  # received too late: check again, then try again
        return StorageError("RequestExpired", message, None, request_id)
    return StorageError(code, message, status, request_id)


def _epoch(value: Any) -> float | None:
    return value.timestamp() if isinstance(value, datetime.datetime) else None


class _Provider(oss.credentials.CredentialsProvider):
    def __init__(self, source: Callable[[], Credentials]) -> None:
        self._source = source

    def get_credentials(self) -> oss.credentials.Credentials:
        c = self._source()
        return oss.credentials.Credentials(c.access_key_id, c.access_key_secret, c.security_token)


class Storage:
    def __init__(self, cfg: Config, credentials: Callable[[], Credentials]) -> None:
        provider = _Provider(credentials)
        self._session: Any = None
        self._client = oss.Client(self._cfg(cfg.oss_endpoint, cfg.region, provider))
        self._signer = oss.Client(self._cfg(cfg.oss_public_endpoint, cfg.region, provider))

    @staticmethod
    def _cfg(endpoint: str, region: str, provider: _Provider) -> Any:
        c = oss.config.load_default()
        c.credentials_provider = provider
        c.region = region
        c.endpoint = endpoint
        c.retry_max_attempts = 3  # the SDK's own backoff for 5xx and network errors
        c.connect_timeout = 5
        c.readwrite_timeout = 20
        return c

    def read_range(self, bucket: str, key: str, length: int) -> Chunk:
        """The first ``length`` bytes (fewer if the object is smaller)."""
        try:
            r = self._client.get_object(oss.GetObjectRequest(bucket=bucket, key=key,
                                                             range_header=f"bytes=0-{length - 1}"))
            data = r.body.content
        except Exception as exc:
            raise _storage_error(exc) from None
        total = r.content_length
        if r.content_range:  # "bytes 0-65535/123456": the real size is after the slash
            tail = r.content_range.rpartition("/")[2]
            total = int(tail) if tail.isdigit() else None
        return Chunk(data, total, _etag(r.etag), _epoch(r.last_modified))

    def read_all(self, bucket: str, key: str) -> Chunk:
        try:
            r = self._client.get_object(oss.GetObjectRequest(bucket=bucket, key=key))
            data = r.body.content
        except Exception as exc:
            raise _storage_error(exc) from None
        return Chunk(data, len(data), _etag(r.etag), _epoch(r.last_modified))

    def head(self, bucket: str, key: str) -> ObjectHead | None:
        try:
            r = self._client.head_object(oss.HeadObjectRequest(bucket=bucket, key=key))
        except Exception as exc:
            err = _storage_error(exc)
            if err.not_found:
                return None
            raise err from None
        return ObjectHead(_etag(r.etag), r.content_length, dict(r.metadata or {}))

    def put(self, bucket: str, key: str, body: bytes, content_type: str, metadata: Mapping[str, str],
            forbid_overwrite: bool = False) -> str | None:
        try:
            r = self._client.put_object(oss.PutObjectRequest(
                bucket=bucket, key=key, body=body, content_type=content_type, metadata=dict(metadata),
                server_side_encryption="AES256", forbid_overwrite=forbid_overwrite or None, acl="private"))
        except Exception as exc:
            raise _storage_error(exc) from None
        return _etag(r.etag)

    def delete(self, bucket: str, key: str) -> None:
        try:
            self._client.delete_object(oss.DeleteObjectRequest(bucket=bucket, key=key))
        except Exception as exc:
            err = _storage_error(exc)
            if not err.not_found:
                raise err from None

    def list_prefix(self, bucket: str, prefix: str, max_keys: int = 20, start_after: str | None = None) -> Listing:
        """One ListObjectsV2 page of keys under ``prefix`` (after ``start_after``) with their ETags (keys
        URL-encoded on the wire, so any key round-trips)."""
        try:
            r = self._client.list_objects_v2(oss.ListObjectsV2Request(
                bucket=bucket, prefix=prefix, max_keys=max_keys, encoding_type="url", start_after=start_after))
        except Exception as exc:
            raise _storage_error(exc) from None
        etags = {str(o.key): etag_form(o.etag) or "" for o in (r.contents or [])}
        return Listing(etags, bool(r.is_truncated), max(etags) if etags else None)

    def bucket_versioning(self, bucket: str) -> str | None:
        """The bucket's versioning state: ``Enabled``, ``Suspended``, or None when it was never turned on."""
        try:
            r = self._client.get_bucket_versioning(oss.GetBucketVersioningRequest(bucket=bucket))
        except Exception as exc:
            raise _storage_error(exc) from None
        return str(r.version_status) if r.version_status else None

    def put_outcome(self, bucket: str, key: str, body: bytes, content_type: str,
                    metadata: Mapping[str, str]) -> str | None:
        """PUT an outcome through a URL signed to expire OUTCOME_PUT_EXPIRES_S from now: OSS refuses a request it
        receives later (403 "Request has expired"), so a write the fence checked cannot land long after the check
        (a header-signed request stays valid for 15 minutes). Raised as the transient ``RequestExpired``: the
        fence checks again before it tries again."""
        signed = self._client.presign(oss.PutObjectRequest(
            bucket=bucket, key=key, content_type=content_type, metadata=dict(metadata),
            server_side_encryption="AES256", acl="private"),
            expires=datetime.timedelta(seconds=OUTCOME_PUT_EXPIRES_S))
        try:
            answer = self._http().put(str(signed.url), data=body, headers=dict(signed.signed_headers or {}),
                                      timeout=(5, 20))
        except Exception as exc:  # connection failures, timeouts: nothing reached a verdict
            raise StorageError(type(exc).__name__, str(exc)[:300], None, None) from None
        if answer.status_code >= 300:
            raise _presigned_error(answer.status_code, answer.content, answer.headers.get("x-oss-request-id"))
        return _etag(answer.headers.get("ETag"))

    def _http(self) -> Any:
        if self._session is None:  # the SDK's own dependency; one pool, kept alive like the SDK's
            import requests

            self._session = requests.Session()
        return self._session

    def current_etag(self, bucket: str, key: str) -> str | None:
        """The ETag of ``key`` as a listing shows it (None: no such object). A listing, not a HEAD: it needs no
        read permission on the image, which a tightened policy, a KMS key or a storage class may take away."""
        return self.list_prefix(bucket, key, max_keys=1).etags.get(key)

    def presign_get(self, bucket: str, key: str, expires_s: int) -> str:
        r = self._signer.presign(oss.GetObjectRequest(bucket=bucket, key=key),
                                 expires=datetime.timedelta(seconds=expires_s))
        return str(r.url)
