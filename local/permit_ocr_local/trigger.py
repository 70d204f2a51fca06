"""FC's side of an OSS trigger, emulated: the trigger filters of s.yaml, the async queue, the retry policy and
the onFailure destination. Uploads to the OSS stand-in that match a trigger become OSS events; workers (the
function's instances) run the real handler; a raised error is retried ``maxAsyncRetryAttempts`` times with
binary backoff; what still fails goes to the failure callback (the onFailure destination)."""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .deploycheck import Trigger, environment, function_resource, load_s_yaml, parse_triggers, resolve
from .fcemu import FcContext, FunctionMeta, Upload, oss_event

Handler = Callable[[bytes, FcContext], Any]


@dataclass(frozen=True)
class Deployment:
    """What s.yaml says about the function, resolved: triggers, env, timeout and async policy."""

    triggers: tuple[Trigger, ...]
    env: dict[str, str]
    timeout: int
    memory: int
    max_async_retries: int
    bucket: str
    prefix: str


def load_deployment(path: Path) -> Deployment:
    doc, _unresolved = resolve(load_s_yaml(path))
    _name, props = function_resource(doc)
    triggers, _findings = parse_triggers(props)
    env = {k: str(v) for k, v in environment(props).items()}
    vars_ = doc.get("vars") or {}
    policy = props.get("asyncInvokeConfig") or {}
    return Deployment(tuple(triggers), env, int(props.get("timeout") or 3), int(props.get("memorySize") or 512),
                      int(policy.get("maxAsyncRetryAttempts", 3)), str(vars_.get("bucket") or ""),
                      str(vars_.get("prefix") or ""))


def fires(trigger: Trigger, bucket: str, key: str, event_name: str) -> bool:
    """A native OSS trigger: one bucket, one prefix, one suffix, listed event names (with the oss: prefix)."""
    events = set(trigger.events)
    return (bucket == trigger.bucket and key.startswith(trigger.prefix) and key.endswith(trigger.suffix)
            and (f"oss:{event_name}" in events or "oss:ObjectCreated:*" in events))


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


class OssTrigger:
    """Turns puts into OSS events for every trigger that fires, as FC's native OSS triggers do."""

    def __init__(self, triggers: tuple[Trigger, ...], invoker: AsyncInvoker, region: str = "cn-hangzhou") -> None:
        self._triggers = triggers
        self._invoker = invoker
        self._region = region

    def on_put(self, bucket: str, key: str, etag: str, size: int, event_name: str, request_id: str) -> None:
        for t in self._triggers:
            if fires(t, bucket, key, event_name):
                up = Upload(bucket, key, etag, size, event_name, self._region)
                self._invoker.submit(json.dumps(oss_event([up]), ensure_ascii=False).encode())


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
