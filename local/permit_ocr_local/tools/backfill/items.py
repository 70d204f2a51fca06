"""What a backfill sends: every listed object decided (skip or candidate), the outcome HEADs on a pool."""

from __future__ import annotations

import datetime
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from permit_ocr.config import Config
from permit_ocr.layout import outputs_for
from permit_ocr.sinks import existing_outcome
from permit_ocr.storage import ObjectHead
from permit_ocr_local.fcruntime.context import Upload

from .rules import Item, Listed, classify, outcome_state

T = TypeVar("T")
R = TypeVar("R")



Head = Callable[[str, str], ObjectHead | None]
Read = Callable[[str, str], bytes]


def backfill_items(objects: Iterable[Listed], cfg: Config, bucket: str, head: Head, *,
                   since: datetime.datetime | None = None, suffixes: Sequence[str] = (),
                   workers: int = 8) -> Iterator[Item]:
    """Every listed object as an Item, in listing order: outputs, non-images, old ones and finished ones are
    skips. The outcome HEADs run on ``workers`` threads: one at a time they would bound a large backfill at
    roughly 1 / HEAD latency objects per second."""
    out_bucket = cfg.output_bucket_for(bucket)

    def decide(obj: Listed) -> Item:
        skip = classify(obj, cfg, since=since, suffixes=suffixes)
        if skip is None:
            out = outputs_for(cfg, bucket, obj.key)
            result = head(out_bucket, out.result_key)
            done = existing_outcome(result, obj.etag) == "done"
            skip = outcome_state(result, None if done else head(out_bucket, out.error_key), obj.etag)
        upload = None if skip else Upload(bucket, obj.key, obj.etag, obj.size, region=cfg.region)
        return Item(obj.key, upload, skip)

    return ordered_map(decide, objects, workers)


def ordered_map(fn: Callable[[T], R], items: Iterable[T], workers: int, window: int = 256) -> Iterator[R]:
    """``map(fn, items)`` on a thread pool, results in input order, at most ``window`` items ahead. When the
    consumer stops (an error, Ctrl-C, --max-batches) the calls not yet started are cancelled."""
    if workers <= 1:
        yield from map(fn, items)
        return
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        pending: deque[Future[R]] = deque()
        for x in items:
            pending.append(pool.submit(fn, x))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


