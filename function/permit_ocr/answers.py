"""Paid answers that could not be stored yet: an OSS outage longer than the claim's store budget, right after the
paid call. Kept in the instance's memory (never on disk, never logged: they hold personal data) for an hour, so
the next attempt of the version that lands on this warm instance stores the answer instead of paying again.
Best effort by nature: FC may send the retry to another instance, and a recycled instance forgets.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")
KEEP_S = 3600.0
MAX_KEPT = 64  # a few MB at most: answers are a few KB each


class Unsaved(Generic[T]):
    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._items: OrderedDict[tuple[str, str, str], tuple[float, T]] = OrderedDict()
        self._lock = threading.Lock()

    def keep(self, version: tuple[str, str, str], answer: T) -> None:
        with self._lock:
            self._items[version] = (self._clock(), answer)
            self._items.move_to_end(version)
            while len(self._items) > MAX_KEPT:
                self._items.popitem(last=False)

    def take(self, version: tuple[str, str, str]) -> T | None:
        """The answer kept for this version (removed: the caller stores it or keeps it again)."""
        with self._lock:
            item = self._items.pop(version, None)
        if item is None or self._clock() - item[0] > KEEP_S:
            return None
        return item[1]

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
