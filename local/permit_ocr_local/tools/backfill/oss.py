"""OSS adapters: ListObjectsV2 page by page, HEAD/GET through the function's own Storage, each retried on
transient errors."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

from permit_ocr.config import Config
from permit_ocr.layout import etag_form
from permit_ocr.storage import ObjectHead, StorageError, _storage_error

from .rules import Listed, one_line
from .run import ListingError

T = TypeVar("T")

class RecordGone(Exception):
    """The error record listed a moment ago no longer exists."""






def retry_transient(call: Callable[[], T], what: str, *, attempts: int = 4, backoff_s: float = 0.2,
                    sleep: Callable[[float], None] = time.sleep) -> T:
    """``call()``, again on a transient StorageError (on top of the SDK's own tries); then ListingError in
    one line. A permanent error (403, ...) is not retried."""
    for attempt in range(attempts):
        try:
            return call()
        except StorageError as err:
            if not err.transient or attempt == attempts - 1:
                tries = f" after {attempt + 1} tries" if err.transient else ""
                raise ListingError(one_line(f"OSS {what}: {err.code} ({err.status or 'no answer'}){tries}: "
                                            f"{err.message}"), transient=err.transient) from None
            sleep(backoff_s * 2**attempt)
    raise AssertionError("unreachable")


class OssReader:
    """HEAD and GET of the objects a run decides on, through the function's own Storage, with retries."""

    def __init__(self, storage: Any, *, attempts: int = 4, backoff_s: float = 0.2) -> None:
        self._storage = storage
        self._attempts = attempts
        self._backoff_s = backoff_s

    def head(self, bucket: str, key: str) -> ObjectHead | None:
        return retry_transient(lambda: self._storage.head(bucket, key), f"HEAD oss://{bucket}/{key}",
                               attempts=self._attempts, backoff_s=self._backoff_s)

    def read(self, bucket: str, key: str) -> bytes:
        def get() -> bytes:
            try:
                return bytes(self._storage.read_all(bucket, key).data)
            except StorageError as err:
                if err.not_found:
                    raise RecordGone(key) from None
                raise

        return retry_transient(get, f"GET oss://{bucket}/{key}", attempts=self._attempts, backoff_s=self._backoff_s)


class Lister:
    """ListObjectsV2 (alibabacloud-oss-v2), page by page, resuming strictly after ``start_after``. Each page
    is retried on its own, so a transient error costs one page request, not the listing."""

    def __init__(self, client: Any, page_size: int = 1000, *, attempts: int = 4, backoff_s: float = 0.2) -> None:
        self._client = client
        self._page_size = page_size
        self._attempts = attempts
        self._backoff_s = backoff_s

    def _page(self, bucket: str, prefix: str, start_after: str, token: str | None, limit: int) -> Any:
        import alibabacloud_oss_v2 as oss

        req = oss.ListObjectsV2Request(bucket=bucket, prefix=prefix or None, max_keys=limit,
                                       start_after=None if token else start_after or None, continuation_token=token)

        def call() -> Any:
            try:
                return self._client.list_objects_v2(req)
            except Exception as exc:
                raise _storage_error(exc) from None

        return retry_transient(call, f"ListObjectsV2 oss://{bucket}/{prefix}", attempts=self._attempts,
                               backoff_s=self._backoff_s)

    def objects(self, bucket: str, prefix: str = "", start_after: str = "") -> Iterator[Listed]:
        token: str | None = None
        while True:
            page = self._page(bucket, prefix, start_after, token, self._page_size)
            for o in page.contents or ():
                yield Listed(str(o.key), etag_form(o.etag) or "", int(o.size or 0), o.last_modified)
            token = page.next_continuation_token
            if not page.is_truncated or not token:
                return

    def count(self, bucket: str, prefix: str = "", start_after: str = "") -> int:
        return sum(1 for _ in self.objects(bucket, prefix, start_after))

    def check(self, bucket: str, prefix: str = "") -> None:
        """One ListObjectsV2 of one key: proves endpoint, credentials and the list grant before any batch."""
        self._page(bucket, prefix, "", None, 1)


def oss_client(env: Mapping[str, str], cfg: Config) -> Any:
    import alibabacloud_oss_v2 as oss

    c = oss.config.load_default()
    c.credentials_provider = oss.credentials.StaticCredentialsProvider(
        env["ALIBABA_CLOUD_ACCESS_KEY_ID"], env["ALIBABA_CLOUD_ACCESS_KEY_SECRET"],
        env.get("ALIBABA_CLOUD_SECURITY_TOKEN") or None)
    c.region = cfg.region
    c.endpoint = cfg.oss_endpoint
    c.retry_max_attempts = 3
    c.connect_timeout = 5
    c.readwrite_timeout = 20
    return oss.Client(c)


