"""What the FC stand-in knows: the deployed functions (handler, s.yaml deployment, async queue) and a log of
every invocation it accepted, for tests to assert on (``invocations``, ``stats``)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from permit_ocr_local.trigger import AsyncInvoker, Deployment, Handler

# name, event, request id, reason, invocations (first + retries): the onFailure destination of one function
FailureSink = Callable[[str, bytes, str, str, int], None]
QUALIFIERS = ("LATEST",)  # the stand-in deploys no versions or aliases


@dataclass
class Function:
    name: str
    handler: Handler
    deployment: Deployment
    invoker: AsyncInvoker


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

    def deploy(self, name: str, handler: Handler, deployment: Deployment, *, instances: int = 2,
               on_failure: FailureSink | None = None, backoff_s: float = 0.5) -> Function:
        def failed(event: bytes, request_id: str, reason: str, invoke_count: int) -> None:
            if on_failure is not None:
                on_failure(name, event, request_id, reason, invoke_count)

        invoker = AsyncInvoker(handler, deployment=deployment, instances=instances, on_failure=failed,
                               backoff_s=backoff_s)
        fn = Function(name, handler, deployment, invoker)
        with self._lock:
            self.functions[name] = fn
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
