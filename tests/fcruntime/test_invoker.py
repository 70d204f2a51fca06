"""FC's async invocation, emulated (fcruntime.invoker): s.yaml's retry policy, one request id across retries,
the context FC hands the function, and the onFailure payload once the retries are spent."""

from __future__ import annotations

import threading
from typing import Any

from permit_ocr_local.fcruntime.context import FcContext
from permit_ocr_local.fcruntime.deployment import Deployment
from permit_ocr_local.fcruntime.invoker import AsyncInvoker, failure_payload

DEPLOYMENT = Deployment(triggers=(), env={}, timeout=90, memory=1024, max_async_retries=2, bucket="b", prefix="")


class Flaky:
    """A handler that raises for its first ``failures`` calls; records every context it was given."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.contexts: list[FcContext] = []
        self._lock = threading.Lock()

    def __call__(self, event: bytes, context: FcContext) -> Any:
        with self._lock:
            self.contexts.append(context)
            if len(self.contexts) <= self.failures:
                raise RuntimeError(f"attempt {len(self.contexts)} failed")
        return {"ok": True}


def run(handler: Flaky) -> tuple[AsyncInvoker, list[tuple[bytes, str, str, int]]]:
    failed: list[tuple[bytes, str, str, int]] = []
    invoker = AsyncInvoker(handler, deployment=DEPLOYMENT, instances=1,
                           on_failure=lambda *args: failed.append(args), backoff_s=0.01)
    invoker.submit(b'{"events": []}', request_id="rid-1")
    assert invoker.wait_idle(10)
    invoker.close()
    return invoker, failed


def test_a_failing_invocation_is_retried_with_the_same_request_id_and_succeeds() -> None:
    handler = Flaky(failures=2)
    invoker, failed = run(handler)
    assert [c.request_id for c in handler.contexts] == ["rid-1"] * 3
    assert failed == [] and (invoker.stats["retries"], invoker.stats["failed"]) == (2, 0)


def test_the_context_carries_the_deployments_timeout_and_memory() -> None:
    handler = Flaky(failures=0)
    run(handler)
    (context,) = handler.contexts
    assert (context.function.timeout, context.function.memory) == (90, 1024)


def test_once_the_retries_are_spent_the_event_goes_to_the_failure_destination() -> None:
    handler = Flaky(failures=10)
    invoker, failed = run(handler)
    assert len(handler.contexts) == 1 + DEPLOYMENT.max_async_retries
    ((event, rid, reason, count),) = failed
    assert (event, rid, count) == (b'{"events": []}', "rid-1", 3) and "attempt 3 failed" in reason
    payload = failure_payload(event, rid, reason, "acs:fc:cn-hangzhou:local:functions/f", count)
    assert payload["requestContext"]["approximateInvokeCount"] == 3
    assert payload["requestPayload"] == '{"events": []}' and invoker.stats["failed"] == 1
