"""The review page as a second writer while the function runs: reviewers open each flagged result as soon as it
is stored (pending or settled) and save the true fields through ``ReviewStore.save``, as the page does. A save is
refused (busy, stale, changed, taken, gone) or lands; a reviewer told "busy" or "changed" opens it again."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from permit_ocr.config import Config
from permit_ocr.credentials import resolve
from permit_ocr.errors import StorageError
from permit_ocr.layout import KIND_RECEIPT, META_KIND, outputs_for
from permit_ocr_local.standins.oss.errors import OssError
from permit_ocr_local.standins.oss.state import OssState
from permit_ocr_local.tools.review import rules
from permit_ocr_local.tools.review.store import Refused, ReviewStore

from .scripts import Saves
from .workload import Item

REVIEWER = "Chaos Reviewer"
WAIT_S = 3600.0  # how long a flagged result may take to appear (FC's queue may be minutes long); closing ends it
REVISIT_S = 0.5  # a result not stored yet is looked at again this much later
TRIES = 8  # saves refused busy/changed are tried again this often


@dataclass
class _Visit:
    item: Item
    until: float  # time.monotonic() after which the reviewers give up on it
    tries: int = 0
    not_before: float = 0.0


class Reviewers:
    """Reviewer threads that visit flagged images in turn: one look (and maybe a save) per visit, so a result
    still waiting in FC's queue never holds up the others."""

    def __init__(self, cfg: Config, env: Mapping[str, str], state: OssState, saves: Saves,
                 bucket_of: Callable[[Item], str], n: int = 2) -> None:
        self._cfg = cfg
        self._env = dict(env)
        self._state = state
        self._saves = saves
        self._bucket_of = bucket_of
        self._stores: dict[str, ReviewStore] = {}
        self._lock = threading.Lock()
        self._queue: queue.Queue[_Visit | None] = queue.Queue()
        self._closing = threading.Event()
        self._threads = [threading.Thread(target=self._work, name=f"chaos-reviewer-{i}", daemon=True)
                         for i in range(n)]
        for t in self._threads:
            t.start()

    def review(self, item: Item) -> None:
        self._queue.put(_Visit(item, time.monotonic() + WAIT_S))

    def close(self) -> None:
        """Stop: visits still waiting give up."""
        self._closing.set()
        for _ in self._threads:
            self._queue.put(None)
        for t in self._threads:
            t.join()

    def _store(self, bucket: str) -> ReviewStore:
        with self._lock:
            if bucket not in self._stores:
                self._stores[bucket] = ReviewStore(self._cfg, lambda: resolve(self._env), bucket)
            return self._stores[bucket]

    def _work(self) -> None:
        while (visit := self._queue.get()) is not None:
            if self._closing.is_set() or time.monotonic() > visit.until:
                self._count("gave up waiting for the result")
                continue
            if (pause := visit.not_before - time.monotonic()) > 0:
                time.sleep(min(pause, REVISIT_S))
            try:
                again = self._visit(visit)
            except Exception as exc:  # a harness or tool bug: counted, shown in the table
                self._count(f"error {type(exc).__name__}")
                again = False
            if again:
                visit.not_before = time.monotonic() + REVISIT_S
                self._queue.put(visit)

    def _count(self, reason: str) -> None:
        with self._saves.lock:
            self._saves.refused[reason] += 1

    def _visit(self, visit: _Visit) -> bool:
        """One look at the item's result, and a save when it is flagged; True to come back later."""
        item = visit.item
        bucket = self._bucket_of(item)
        store = self._store(bucket)
        result_key = outputs_for(self._cfg, bucket, item.key).result_key
        assert item.corrected is not None
        if self._receipt(store.out_bucket, result_key):
            self._count("nothing to review (a receipt: SINKS=mns)")
            return False
        try:
            shown = store.load(result_key)
        except StorageError:
            return True
        if shown is None:
            return True  # not stored yet
        if not rules.needs_review(shown.doc):
            self._count("nothing to review (a newer version, or reviewed)")
            return False
        fields = {**rules.fields_of(shown.doc), "birthDate": item.corrected["birthDate"]}
        visit.tries += 1
        try:
            store.save(shown.result_key, shown.result_etag, REVIEWER, fields)
        except Refused as refused:
            self._count(refused.reason)
            return refused.reason not in ("stale", "taken", "gone") and visit.tries < TRIES
        except StorageError:
            self._count("OSS failed (nothing saved)")
            return visit.tries < TRIES
        with self._saves.lock:
            self._saves.landed.append((bucket, item.key, shown.source_etag, fields))
        return False

    def _receipt(self, bucket: str, key: str) -> bool:
        try:
            return self._state.head(bucket, key).user_meta.get(META_KIND) == KIND_RECEIPT
        except OssError:
            return False
