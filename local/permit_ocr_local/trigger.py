"""FC's side of an OSS trigger, emulated: the trigger filters of s.yaml, the async queue, the retry policy and
the onFailure destination. Uploads to the OSS stand-in that match a trigger become OSS events (native
triggers) or CloudEvents envelopes (EventBridge-based triggers, matched by their rule's pattern); workers (the
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
from .fcemu import FcContext, FunctionMeta, Upload, oss_event, oss_record

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


def eventbridge_envelope(u: Upload, account_id: str = "1234567890123456", bus: str = "default") -> dict[str, Any]:
    """One OSS event as an EventBridge-based OSS trigger delivers it: a CloudEvents 1.0 envelope whose ``data``
    is the native notification record (the shape in function/permit_ocr/eventbridge.py and README)."""
    record = oss_record(u, account_id)
    request_id = record["responseElements"]["requestId"]
    return {
        "specversion": "1.0",
        "id": request_id,
        "source": "acs.oss",
        "type": f"oss:{u.event_name}",
        "subject": f"acs:oss:{u.region}:{account_id}:{u.bucket}/{u.key}",
        "time": record["eventTime"].replace(".000Z", "Z"),
        "datacontenttype": "application/json;charset=utf-8",
        "aliyunaccountid": account_id,
        "aliyunoriginalaccountid": account_id,
        "aliyuneventbusname": bus,
        "aliyunregionid": u.region,
        "aliyunpublishtime": record["eventTime"],
        "aliyunpublishaddr": "127.0.0.1",
        "data": record,
    }


def pattern_matches(pattern: Any, event: Any) -> bool:
    """EventBridge's event pattern, the parts s.eventbridge.yaml uses: every key of the pattern must match; a list
    matches when any entry does (a literal, or {"prefix": p} / {"suffix": s}); a mapping matches recursively.
    Matching is exact and case-sensitive, as EventBridge documents."""
    if isinstance(pattern, dict):
        return isinstance(event, dict) and all(k in event and pattern_matches(v, event[k]) for k, v in pattern.items())
    if isinstance(pattern, list):
        return any(_entry_matches(p, event) for p in pattern)
    return bool(pattern == event)


def _entry_matches(entry: Any, value: Any) -> bool:
    if isinstance(entry, dict):
        if "prefix" in entry:
            return isinstance(value, str) and value.startswith(entry["prefix"])
        if "suffix" in entry:
            return isinstance(value, str) and value.endswith(entry["suffix"])
        return False  # operators the stand-in does not know never match: a test shows it, not a silent pass
    return bool(entry == value)


def fires(trigger: Trigger, bucket: str, key: str, event_name: str) -> bool:
    """A native OSS trigger: one bucket, one prefix, one suffix, listed event names (with the oss: prefix)."""
    if trigger.kind == "eventbridge":
        envelope = eventbridge_envelope(Upload(bucket, key, None, None, event_name, trigger.region))
        return pattern_matches(json.loads(trigger.pattern), envelope)
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
                event = eventbridge_envelope(up) if t.kind == "eventbridge" else oss_event([up])
                self._invoker.submit(json.dumps(event, ensure_ascii=False).encode())


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
