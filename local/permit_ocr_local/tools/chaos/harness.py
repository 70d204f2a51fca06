"""The chaos harness: the function deployed on a fresh local stack with faults injected, a tap between the
trigger and the invoker, the uploads, and everything observed for the invariants."""

from __future__ import annotations

import contextlib
import io
import os
import queue
import random
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from permit_ocr.config import Config, load_config
from permit_ocr.layout import etag_form, is_own_output
from permit_ocr_local.fcruntime.crash import Crash, CrashAt
from permit_ocr_local.fcruntime.function import FAILURE_TOPIC, LocalFunction
from permit_ocr_local.standins.faults import FaultPlan

from .invariants import Observed, Report, check
from .workload import Item, Workload, build_workload

CLIENT_AGENT = "permit-ocr-chaos"  # the harness's own uploads carry it and are never faulted



class LogCapture(io.TextIOBase):
    """Where the function's JSON log lines go during the run (instead of stdout): kept for the PII scan."""

    def __init__(self, path: Path | None) -> None:
        super().__init__()
        self.lines: list[str] = []
        self._partial = ""
        if path:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("w", encoding="utf-8") if path else None

    def write(self, s: str) -> int:
        text = self._partial + s
        *done, self._partial = text.split("\n")
        self.lines.extend(done)
        if self._file:
            self._file.write(s)
        return len(s)

    def close(self) -> None:
        if self._file:
            self._file.close()
        super().close()


@dataclass
class Options:
    uploads: int = 10_000
    seed: int = 1
    fault_rate: float = 0.2
    instances: int = 16
    clients: int = 4
    sinks: str = "oss,mns"
    fc_backoff_s: float = 0.05
    idle_timeout_s: float = 900.0
    root: Path | None = None  # default: a temporary folder, removed afterwards
    log_file: Path | None = None
    s_yaml: Path = Path(__file__).resolve().parents[4] / "s.yaml"
    progress: bool = False
    backend: str = "api"  # OCR_BACKEND; engine or cascade deploy the engine function (its truth recognizer)
    doubt_share: float = 0.3  # with cascade: permits the engine is unsure of (so the cascade pays for them)


def fault_plan(seed: int, rate: float, backend: str = "api") -> FaultPlan:
    """``rate`` of the function's requests to each service fail transiently (OCR: a quarter each of 429,
    503, dropped connection, slow answer). The harness's uploads and OCR's fetch of the signed URL are left
    alone: faults there would test the harness, or turn into IllegalImageUrl by design."""

    def only(service: str, request: Any) -> bool:
        if service != "oss":
            return True
        presigned = "x-oss-signature=" in request.raw_query or "Signature=" in request.raw_query
        return not presigned and CLIENT_AGENT not in request.header("User-Agent")

    plan = FaultPlan(seed=seed, only=only)
    q = rate / 4
    plan.set("ocr", throttle=q, server_error=q, drop=q, slow=q, slow_s=0.3)
    plan.set("oss", server_error=rate)
    plan.set("mns", server_error=rate)
    if backend != "api":  # the engine function's InvokeFunction: throttled or failing alike
        plan.set("fc", server_error=rate / 2, throttle=rate / 2)
    return plan


def _client(fn: LocalFunction) -> Any:
    import alibabacloud_oss_v2 as oss

    e = fn.stack.env()
    cfg = oss.config.load_default()
    cfg.credentials_provider = oss.credentials.StaticCredentialsProvider(
        e["ALIBABA_CLOUD_ACCESS_KEY_ID"], e["ALIBABA_CLOUD_ACCESS_KEY_SECRET"], e["ALIBABA_CLOUD_SECURITY_TOKEN"])
    cfg.region, cfg.endpoint, cfg.user_agent = e["OSS_REGION"], e["OSS_ENDPOINT"], CLIENT_AGENT
    return oss.Client(cfg)


def _event_ident(event: bytes) -> tuple[str, str]:
    try:
        obj = orjson.loads(event)["events"][0]["oss"]["object"]
        return str(obj["key"]), etag_form(obj.get("eTag")) or ""
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
        return "", ""


class InstanceCrashed(RuntimeError):
    """What FC sees of an instance that died: the invocation failed, so its async policy retries it."""


class _Tap:
    """Sits between the trigger and the invoker (records each event, doubles the concurrent duplicates) and
    around the handler (counts statuses and exceptions that leave it)."""

    def __init__(self, fn: LocalFunction, concurrent: set[str], cfg: Config,
                 crash: set[str] | None = None, seed: int = 0) -> None:
        from permit_ocr.handler import RetryLater

        assert fn.invoker is not None
        self.invoker = fn.invoker
        self._retry_later = RetryLater
        self._submit = fn.invoker.submit
        self._concurrent = concurrent
        self._cfg = cfg
        self._lock = threading.Lock()
        self.events: dict[tuple[str, str], bytes] = {}
        self.trigger_events = 0
        self.loop_keys: list[str] = []
        self.direct: Counter[str] = Counter()
        self.statuses: Counter[str] = Counter()
        self.unhandled: Counter[str] = Counter()
        self._inner = fn.invoker._handler
        self._env = fn.env()
        self._crash = crash or set()
        self._crashed: set[str] = set()
        self._rng = random.Random(seed)
        self.crashes: list[tuple[str, bool]] = []  # (key, died between the paid answer and the stored document)
        setattr(fn.invoker, "submit", self._from_trigger)  # noqa: B010 (the trigger holds the invoker)
        fn.invoker._handler = self._handle

    def _from_trigger(self, event: bytes, request_id: str | None = None) -> str:
        key, etag = _event_ident(event)
        with self._lock:
            self.trigger_events += 1
            if is_own_output(key, self._cfg):
                self.loop_keys.append(key)
            twice = key in self._concurrent and (key, etag) not in self.events
            self.events[(key, etag)] = event
        rid = self._submit(event, request_id)
        if twice:  # the same event bytes, at once (as a new invocation): two instances pick them up together
            self.deliver(event, "concurrent")
        return rid

    def deliver(self, event: bytes, why: str) -> None:
        with self._lock:
            self.direct[why] += 1
        self._submit(event)

    def _handle(self, event: bytes, context: Any) -> Any:
        key, _ = _event_ident(event)
        with self._lock:
            crash = key in self._crash and key not in self._crashed
            self._crashed.add(key) if crash else None
        try:
            answer = self._crash_once(key, event, context) if crash else self._inner(event, context)
        except self._retry_later as exc:
            self._count(exc.summary)
            raise
        except InstanceCrashed:  # injected: FC's retry takes it from here
            raise
        except Exception as exc:
            with self._lock:
                self.unhandled[type(exc).__name__] += 1
            raise
        self._count(answer)
        return answer

    def _crash_once(self, key: str, event: bytes, context: Any) -> Any:
        """The event's first instance dies at a random request. Its clock runs behind, so the claim it leaves
        has expired when FC's retry arrives (as when FC's retry interval exceeds the function timeout)."""
        from permit_ocr.config import load_config
        from permit_ocr.handler import App

        with self._lock:
            at = CrashAt(self._rng.randint(1, 6), self._rng.random() < 0.5)
        app = App(load_config(self._env), environ=self._env, clock=lambda: time.time() - 3600)
        at.install(app)
        try:
            return app.handle(event, context)
        except Crash:
            with self._lock:
                self.crashes.append((key, at.paid_then_died))
            raise InstanceCrashed("the instance died mid-invocation") from None

    def _count(self, summary: Any) -> None:
        counts = summary.get("counts") if isinstance(summary, dict) else None
        with self._lock:
            self.statuses.update(counts or {})


@contextlib.contextmanager
def _function_logs(capture: LogCapture) -> Iterator[None]:
    """Send the function's own log lines (the exact lines FC would store) to ``capture`` instead of stdout."""
    from permit_ocr import log

    previous = getattr(log, "_stream", None)
    log.use_stream(capture)
    try:
        yield
    finally:
        log.use_stream(previous)


def run(opts: Options) -> Report:
    """Drive the workload through the function on a fresh local stack, then check what it left behind."""
    from permit_ocr.handler import reset_app

    selfhosted = opts.backend != "api"
    workload = build_workload(opts.uploads, opts.seed, doubt_share=opts.doubt_share if selfhosted else 0.0)
    root = opts.root or Path(tempfile.mkdtemp(prefix="permit-ocr-chaos-"))
    plan = fault_plan(opts.seed, opts.fault_rate, opts.backend)
    overrides = {"SINKS": opts.sinks, "OCR_QPS": "1000", "LOG_LEVEL": "INFO"}
    if selfhosted:  # the truth engine answers at once: a short read timeout keeps its worst case in the budget
        overrides |= {"OCR_BACKEND": opts.backend, "ENGINE_TIMEOUT_MS": "5000"}
    saved_env = dict(os.environ)
    fn = LocalFunction(opts.s_yaml, root, instances=opts.instances, stack_options={"faults": plan},
                       env_overrides=overrides, engine="truth" if selfhosted else None)
    capture = LogCapture(opts.log_file)
    try:
        fn.start()
        env = fn.env()
        cfg = load_config(env)  # where the function writes, from its own layout (OUTPUT_PREFIX included)
        tap = _Tap(fn, {it.key for it in workload.items if it.dup == "concurrent"}, cfg,
                   crash={it.key for it in workload.items if it.kind == "crash"}, seed=opts.seed)
        tap.invoker._backoff_s = opts.fc_backoff_s  # AsyncInvoker(backoff_s=...), which LocalFunction fixes
        with _function_logs(capture):
            started = time.monotonic()
            failures = _upload_all(fn, tap, workload, opts, plan)
            idle = fn.wait_idle(opts.idle_timeout_s)
            # later deliveries of events already handled: FC's at-least-once redelivery, and the event of
            # an overwritten version arriving after the new one (it must be skipped, not recognized)
            for item in workload.items:
                if item.dup == "seq" and item.etag and (ev := tap.events.get((item.key, item.etag))):
                    tap.deliver(ev, "seq")
                if item.kind == "overwrite" and item.etags and (ev := tap.events.get((item.key, item.etags[0]))):
                    tap.deliver(ev, "stale")
            idle = fn.wait_idle(opts.idle_timeout_s) and idle
            wall = time.monotonic() - started
        assert fn.stack.oss and fn.stack.ocr and fn.stack.mns
        mns = fn.stack.mns.state
        failed = [str(orjson.loads(m.body).get("requestPayload", "")) for m in mns.messages(FAILURE_TOPIC)]
        ocr = fn.stack.ocr.service
        return check(Observed(
            workload=workload, wall_s=wall, idle=idle, stats=Counter(tap.invoker.stats),
            trigger_events=tap.trigger_events, loop_keys=tap.loop_keys, direct_events=tap.direct,
            statuses=tap.statuses, unhandled=tap.unhandled, log_lines=capture.lines, failed_payloads=failed,
            results_topic=[m.body for m in mns.messages(fn.stack.options.topic)], state=fn.stack.oss.service.state,
            bucket=fn.deployment.bucket, cfg=cfg,
            ocr_calls=[(c.sha256, c.status) for c in ocr.calls], billed=ocr.billed_by_image(),
            injected=Counter(plan.injected), upload_failures=failures, sinks=opts.sinks, crashes=tap.crashes,
            backend=opts.backend, engine_calls=fn.engine_calls()))
    finally:
        fn.stop()
        capture.close()
        reset_app()
        os.environ.clear()
        os.environ.update(saved_env)
        if opts.root is None:
            shutil.rmtree(root, ignore_errors=True)


def _upload_all(fn: LocalFunction, tap: _Tap, workload: Workload, opts: Options, plan: FaultPlan) -> list[str]:
    """Client threads upload every item (an overwrite: twice, the second soon after the first) and, mixed
    in, hand the malformed events to the invoker. Between 30 % and 45 % of the items, MNS is down."""
    import alibabacloud_oss_v2 as oss

    jobs: queue.Queue[Item | bytes | None] = queue.Queue()
    mixed: list[Item | bytes] = [*workload.items, *workload.malformed]
    random.Random(opts.seed + 1).shuffle(mixed)
    for job in mixed:
        jobs.put(job)
    failures: list[str] = []
    done = [0]
    lock = threading.Lock()

    def client(n: int) -> None:
        c = _client(fn)
        rng = random.Random(opts.seed * 1000 + n)
        while (job := jobs.get()) is not None:
            if isinstance(job, bytes):
                tap.deliver(job, "malformed")
                continue
            for v, data in enumerate(job.versions):
                if v and job.kind == "slowover":
                    time.sleep(0.2)  # the first version's (one-second) OCR call is running by now
                elif v and job.kind == "reupload":
                    time.sleep(rng.uniform(0, 0.3))  # before, during or after the first run
                    c.delete_object(oss.DeleteObjectRequest(bucket=fn.deployment.bucket, key=job.key))
                elif v:
                    time.sleep(rng.uniform(0, 0.05))
                try:
                    r = c.put_object(oss.PutObjectRequest(bucket=fn.deployment.bucket, key=job.key, body=data))
                except Exception as exc:  # reported: an upload the harness could not make is not the function's
                    with lock:
                        failures.append(f"{job.key!r}: {type(exc).__name__}: {str(exc)[:200]}")
                    break
                job.etags.append(etag_form(r.etag) or "")
            with lock:
                done[0] += 1
                if done[0] == int(len(mixed) * 0.30):  # an MNS outage: every publish fails for a while
                    plan.set("mns", server_error=1.0)
                elif done[0] == int(len(mixed) * 0.45):
                    plan.set("mns", server_error=opts.fault_rate)
                if opts.progress and done[0] % 1000 == 0:
                    print(f"  uploaded {done[0]} items, {tap.invoker.stats['invocations']} invocations", flush=True)

    threads = [threading.Thread(target=client, args=(n,), name=f"chaos-client-{n}") for n in range(opts.clients)]
    for t in threads:
        jobs.put(None)
        t.start()
    for t in threads:
        t.join()
    return failures


