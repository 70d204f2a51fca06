"""FC's async invocation of one function, emulated: the queue, the instances that run the real handler, the
retry policy (a raised error is retried ``maxAsyncRetryAttempts`` times with binary backoff) and the onFailure
destination (what still fails goes to the failure callback, in the shape FC sends)."""

from __future__ import annotations

import contextlib
import queue
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .context import FcContext, FunctionMeta
from .deployment import Deployment

Handler = Callable[[bytes, FcContext], Any]


@dataclass
class _Job:
    event: bytes
    attempt: int = 0
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))


class AsyncInvoker:
    """The async invocation queue of one function, served by ``instances`` workers."""

    def __init__(self, handler: Handler, *, deployment: Deployment, instances: int = 2,
                 on_failure: Callable[[bytes, str, str, int], None] | None = None, backoff_s: float = 0.5) -> None:
        self._handler = handler
        self._deployment = deployment
        self._on_failure = on_failure
        self._backoff_s = backoff_s
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._pending = 0
        self._cv = threading.Condition()
        self._aborted = False
        self.stats: Counter[str] = Counter()
        self._workers = [threading.Thread(target=self._work, daemon=True, name=f"fc-instance-{i}")
                         for i in range(instances)]
        for w in self._workers:
            w.start()

    def submit(self, event: bytes, request_id: str | None = None) -> str:
        """Queue one async invocation; returns its request id (FC keeps it across retries)."""
        job = _Job(event) if request_id is None else _Job(event, request_id=request_id)
        with self._cv:
            self._pending += 1
        self.stats["events"] += 1
        self._queue.put(job)
        return job.request_id

    def wait_idle(self, timeout_s: float) -> bool:
        end = time.monotonic() + timeout_s
        with self._cv:
            while self._pending:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._cv.wait(left)
        return True

    def close(self) -> None:
        for _ in self._workers:
            self._queue.put(None)

    def abort(self) -> None:
        """Start nothing more (Ctrl-C): drop the queued invocations and retries; running ones are not stopped."""
        self._aborted = True
        with contextlib.suppress(queue.Empty):
            while True:
                self._queue.get_nowait()
        self.close()

    def _work(self) -> None:
        while (job := self._queue.get()) is not None:
            context = FcContext(request_id=job.request_id,
                                function=FunctionMeta(timeout=self._deployment.timeout,
                                                      memory=self._deployment.memory))
            self.stats["invocations"] += 1
            try:
                self._handler(job.event, context)
            except Exception as exc:  # a function error: FC retries it, then gives up to the destination
                self._retry_or_fail(job, exc)
                continue
            self._done()

    def _retry_or_fail(self, job: _Job, exc: Exception) -> None:
        if self._aborted:
            return
        if job.attempt < self._deployment.max_async_retries:
            self.stats["retries"] += 1
            job.attempt += 1
            delay = self._backoff_s * 2 ** (job.attempt - 1)
            threading.Timer(delay, self._queue.put, args=(job,)).start()
            return
        self.stats["failed"] += 1
        if self._on_failure is not None:
            self._on_failure(job.event, job.request_id, f"{type(exc).__name__}: {exc}", job.attempt + 1)
        self._done()

    def _done(self) -> None:
        with self._cv:
            self._pending -= 1
            self._cv.notify_all()


def failure_payload(event: bytes, request_id: str, reason: str, function_arn: str,
                    invoke_count: int = 1) -> dict[str, Any]:
    """The shape FC sends to an onFailure destination (the parts the docs show); ``invoke_count`` counts the
    first invocation and every retry."""
    return {
        "timestamp": int(time.time() * 1000),
        "requestContext": {"requestId": request_id, "functionArn": function_arn,
                           "condition": "UnhandledInvocationError", "approximateInvokeCount": invoke_count},
        "requestPayload": event.decode("utf-8", "replace"),
        "responseContext": {"statusCode": 200, "functionError": "UnhandledInvocationError"},
        "responsePayload": reason,
    }
