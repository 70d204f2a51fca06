"""Fault injection: a seeded plan that decides, per request, whether a stand-in misbehaves and how.

Rates are per service ("oss", "ocr", "mns", "fc"); a test or ``make chaos`` sets them, the HTTP layer applies
them before the service sees the request, so state is never half-changed by an injected fault.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Fault:
    status: int = 0  # answer with this HTTP status in the service's error shape
    delay_s: float = 0.0  # sleep first (a slow response, or a timeout if longer than the client waits)
    drop: bool = False  # close the connection without answering


@dataclass
class FaultRates:
    """Probabilities (0..1) per request; they are drawn in this order and at most one applies."""

    throttle: float = 0.0  # 429 (OCR: Throttling.User)
    server_error: float = 0.0  # 500/503
    drop: float = 0.0  # connection closed without a response
    slow: float = 0.0  # answered late by slow_s
    slow_s: float = 0.5


@dataclass
class FaultPlan:
    seed: int = 0
    rates: dict[str, FaultRates] = field(default_factory=dict)
    # optional predicate: only requests it accepts may be faulted (e.g. only OCR calls, not presigned GETs)
    only: Callable[[str, Any], bool] | None = None

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()
        self.injected: Counter[str] = Counter()

    def set(self, service: str, **rates: float) -> None:
        self.rates[service] = FaultRates(**rates)

    def draw(self, service: str, request: Any) -> Fault | None:
        r = self.rates.get(service)
        if r is None or (self.only is not None and not self.only(service, request)):
            return None
        with self._lock:
            x = self._rng.random()
        fault: Fault | None = None
        kind = ""
        for name, p, f in (
            ("throttle", r.throttle, Fault(status=429)),
            ("server_error", r.server_error, Fault(status=503)),
            ("drop", r.drop, Fault(drop=True)),
            ("slow", r.slow, Fault(delay_s=r.slow_s)),
        ):
            if x < p:
                fault, kind = f, name
                break
            x -= p
        if fault is not None:
            with self._lock:
                self.injected[f"{service}:{kind}"] += 1
        return fault
