"""How an invocation's time is spent: FC's deadline, how long a claim is taken for, and when a paid call may start.

A claim is measured from its attempt: one paid call's worst case (the SDK's connect and read timeouts) and the
time to store the answer, never past FC's deadline. No claim is taken, and no paid call or wait for an OCR_QPS
slot begins, when what is left could not hold the call's worst case: a call FC's timeout cuts off may be billed
with nobody left to store its answer, and one that outlives its claim may be paid for again by whoever takes it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .ledger import Ticket

SAFETY_MARGIN_S = 5.0  # kept back from the FC timeout to store the answer (or a record) and answer FC
# A claim covers one paid call and this long to store its answer: OSS writes are retried through an outage of
# up to about this long (less the last write's time) before the answer is only kept in the instance's memory.
STORE_BUDGET_S = 30.0
DEFAULT_TIMEOUT_S = 60.0


@dataclass
class Invocation:
    request_id: str
    hard_deadline: float  # time.monotonic() when FC stops the instance
    seen: set[tuple[str, str, str]]  # versions this invocation already took: one event naming one twice
    lock: threading.Lock
    # shadow.Pending: the engine's comparisons, run once every record is settled (a shadow never delays a result)
    shadows: list[Any] = field(default_factory=list)

    @property
    def deadline(self) -> float:
        """When work must be done, leaving SAFETY_MARGIN_S to store what was paid for and answer FC."""
        return self.hard_deadline - SAFETY_MARGIN_S


def claim_ttl_s(call_s: float, run: Invocation) -> float:
    """How long a claim is taken for: one paid call and the time to store its answer (through an OSS outage of
    seconds), never past FC's deadline for this invocation."""
    return min(call_s + STORE_BUDGET_S, run.hard_deadline - time.monotonic())


@dataclass
class PaidCallBudget:
    """The time a paid call may use: it must end while the claim still holds, with SAFETY_MARGIN_S left to store
    the answer, and before FC's deadline. The claim is extended when a retry or an OCR_QPS wait needs longer."""

    run: Invocation
    ticket: Ticket
    clock: Callable[[], float]
    ttl_s: Callable[[Invocation], float]

    def latest_start(self, call_s: float) -> float:
        """The latest time.monotonic() at which a call of ``call_s`` may start (the claim can be extended)."""
        return self.run.deadline - call_s

    def cover(self, call_s: float) -> bool:
        """Make the claim outlive a call starting now; False when it cannot (no call may start then)."""
        needed = call_s + SAFETY_MARGIN_S
        if time.monotonic() + call_s > self.run.deadline:
            return False
        if self.ticket.time_left() >= needed:
            return True
        return self.ticket.extend(self.clock() + max(needed, self.ttl_s(self.run)))


def timeout_s(context: Any, environ: Mapping[str, str]) -> float:
    fn = getattr(context, "function", None)
    value = getattr(fn, "timeout", None) or environ.get("FC_FUNCTION_TIMEOUT") or environ.get("FC_TIMEOUT")
    try:
        return float(value) if value else DEFAULT_TIMEOUT_S
    except (TypeError, ValueError):
        return DEFAULT_TIMEOUT_S
