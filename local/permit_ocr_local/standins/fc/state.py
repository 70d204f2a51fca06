"""What the FC stand-in knows: the deployed functions and a log of every invocation it accepted, for tests to
assert on (``invocations``, ``stats``).

A function is what the local FC runtime hands over (``permit_ocr_local.fcruntime.fcapi``): how to run it once
in this request and the async queue that runs it later with s.yaml's retry policy. The stand-in only speaks
the API; running functions is the runtime's job, so this wing never imports it.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

QUALIFIERS = ("LATEST",)  # the stand-in deploys no versions or aliases


class AsyncQueue(Protocol):
    """FC's async invocation queue of one function (retries and destinations are the queue's business)."""

    def submit(self, event: bytes, request_id: str | None = None) -> str: ...

    def wait_idle(self, timeout_s: float) -> bool: ...

    def close(self) -> None: ...


@dataclass
class Function:
    name: str
    timeout: int  # seconds
    memory: int  # MB
    run: Callable[[bytes, str], Any]  # (event, request id) -> the handler's answer, in the caller's thread
    invoker: AsyncQueue


@dataclass(frozen=True)
class Invocation:
    request_id: str
    function: str
    qualifier: str
    kind: str  # Sync | Async
    payload_bytes: int
    at: float


@dataclass
class FcState:
    functions: dict[str, Function] = field(default_factory=dict)
    invocations: list[Invocation] = field(default_factory=list)
    stats: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def deploy(self, fn: Function) -> Function:
        with self._lock:
            self.functions[fn.name] = fn
        return fn

    def get(self, name: str) -> Function | None:
        with self._lock:
            return self.functions.get(name)

    def record(self, inv: Invocation) -> None:
        with self._lock:
            self.invocations.append(inv)
            self.stats[f"{inv.kind.lower()}"] += 1

    def count(self, key: str) -> None:
        with self._lock:
            self.stats[key] += 1

    def async_events(self, name: str) -> int:
        with self._lock:
            return sum(1 for i in self.invocations if i.function == name and i.kind == "Async")

    def wait_idle(self, timeout_s: float) -> bool:
        """True once every accepted async event has run (including FC's retries) within ``timeout_s``."""
        end = time.monotonic() + timeout_s
        fns = list(self.functions.values())
        return all(fn.invoker.wait_idle(max(0.0, end - time.monotonic())) for fn in fns)

    def close(self) -> None:
        for fn in list(self.functions.values()):
            fn.invoker.close()
