"""Reading shadow mode's comparison records from the output bucket, through the function's own OSS adapter:
one listing page at a time from the first day asked for (the records are named by day), the records fetched a
few at a time."""

from __future__ import annotations

import datetime
import functools
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson

from permit_ocr.layout import SHADOW_PREFIX
from permit_ocr.storage import Storage, retrying

LIST_PAGE = 1000  # ListObjectsV2 maximum
READERS = 8


def record_keys(storage: Storage, bucket: str, since: datetime.date | None) -> Iterator[str]:
    """The records' keys, oldest day first; from ``since`` on (records are under <prefix><YYYY-MM-DD>/)."""
    after = f"{SHADOW_PREFIX}{since.isoformat()}" if since else None
    while True:
        page = retrying(functools.partial(storage.list_prefix, bucket, SHADOW_PREFIX, LIST_PAGE, after))
        yield from sorted(k for k in page.etags if k.endswith(".json"))
        if not page.truncated or page.last_key is None:
            return
        after = page.last_key


def read_records(storage: Storage, bucket: str, since: datetime.date | None) -> list[dict[str, Any]]:
    """Every record from ``since`` on; one that is not a JSON object is skipped (a hand-written object)."""
    def read(key: str) -> dict[str, Any] | None:
        try:
            doc = orjson.loads(retrying(lambda: storage.read_all(bucket, key)).data)
        except orjson.JSONDecodeError:
            return None
        return doc if isinstance(doc, dict) else None

    with ThreadPoolExecutor(max_workers=READERS) as pool:
        return [d for d in pool.map(read, record_keys(storage, bucket, since)) if d is not None]
