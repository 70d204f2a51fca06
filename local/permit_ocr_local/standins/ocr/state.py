"""What the OCR stand-in remembers, for assertions: answers per code and the billing ledger.

Billing follows the cloud, which bills successful recognitions only: ``stats["billed"]`` and the ``calls``
entries with status 200. Recognizer refusals (unmatchedImageType, ...) are not billed, only counted.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import NamedTuple


class OcrCall(NamedTuple):
    """One request that got as far as having image bytes."""

    request_id: str
    source: str  # "url" | "body"
    sha256: str
    status: int


@dataclass
class OcrState:
    """``stats["calls"]``: every request answered (injected faults never get here); ``stats[<code>]``: each
    error code; ``calls``: every request that carried image bytes, with its status."""

    stats: Counter[str] = field(default_factory=Counter)
    calls: list[OcrCall] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def count(self, *keys: str) -> None:
        with self._lock:
            self.stats.update(keys)

    def record(self, call: OcrCall) -> None:
        with self._lock:
            self.calls.append(call)

    def reset(self) -> None:
        with self._lock:
            self.stats.clear()
            self.calls.clear()

    def billed_by_image(self) -> Counter[str]:
        """sha256 -> successful recognitions, to assert that no image was billed twice."""
        with self._lock:
            return Counter(c.sha256 for c in self.calls if c.status == 200)
