"""The chaos harness: the function deployed on a fresh local stack with faults injected and a world that changes
around it, the uploads, the later deliveries, then faults off and the end stage (FC's retries, replay of the
failure topic, backfill), and everything observed for the invariants."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import queue
import random
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from permit_ocr.config import load_config
from permit_ocr.engineclient import CONNECT_TIMEOUT_MS
from permit_ocr.layout import etag_form
from permit_ocr_local.fcruntime.deployment import load_deployment
from permit_ocr_local.fcruntime.enginefn import ENGINE_FUNCTION_NAME
from permit_ocr_local.fcruntime.function import FAILURE_TOPIC, FUNCTION_NAME, LocalFunction
from permit_ocr_local.fcruntime.trigger import OssTrigger
from permit_ocr_local.standins.faults import FaultPlan

from .ending import end_stage, settle
from .invariants import Observed, Report, check
from .reviewers import Reviewers
from .scripts import DEADLINE, LATER, Script
from .tap import DEFAULT, Instances, Profile, Tap, Windows
from .workload import Item, Workload, build_workload
from .world import SCRIPTED_MARK, World

T = TypeVar("T")
CLIENT_AGENT = "permit-ocr-chaos"  # the harness's own uploads carry it and are never faulted
SECOND_BUCKET = "permit-ocr-second"  # the second source bucket (the same keys as the first, other permits)
SHARED_OUTPUT = "permit-ocr-results"  # layout "shared": one OUTPUT_BUCKET for both source buckets ...
SHARED_PREFIX = "out/{bucket}/"  # ... with outputs kept apart by source bucket


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
    layout: str = "shared"  # shared: one OUTPUT_BUCKET with OUTPUT_PREFIX out/{bucket}/ | beside: s.yaml's
    reviewers: int = 2
    fc_backoff_s: float = 0.05
    idle_timeout_s: float = 900.0
    root: Path | None = None  # default: a temporary folder, removed afterwards
    log_file: Path | None = None
    s_yaml: Path = Path(__file__).resolve().parents[4] / "s.yaml"
    progress: bool = False
    backend: str = "api"  # OCR_BACKEND; engine or cascade deploy the engine function (its truth recognizer)
    doubt_share: float = 0.3  # with cascade: plain permits the engine is unsure of (so the cascade pays for them)


def fault_plan(seed: int, rate: float, backend: str = "api") -> FaultPlan:
    """``rate`` of the function's requests to each service fail transiently (OCR: a quarter each of 429,
    503, dropped connection, slow answer). Left alone: the harness's uploads and OCR's fetch of the signed URL
    (faults there would test the harness, or turn into IllegalImageUrl by design), and the publishes the MNS
    valve scripts (their sequence is the point; random faults would only blur it). With the engine function,
    its InvokeFunction calls are throttled or fail alike (the main function's own, by backfill and replay, not)."""

    def only(service: str, request: Any) -> bool:
        if service == "mns":
            return SCRIPTED_MARK not in request.body
        if service == "fc":
            return f"/functions/{ENGINE_FUNCTION_NAME}/" in request.path
        if service != "oss":
            return True
        presigned = "x-oss-signature=" in request.raw_query or "Signature=" in request.raw_query
        return not presigned and CLIENT_AGENT not in request.header("User-Agent")

    plan = FaultPlan(seed=seed, only=only)
    q = rate / 4
    plan.set("ocr", throttle=q, server_error=q, drop=q, slow=q, slow_s=0.3)
    plan.set("oss", server_error=rate)
    plan.set("mns", server_error=rate)
    if backend != "api":
        plan.set("fc", server_error=rate / 2, throttle=rate / 2)
    return plan


class Clients:
    """The harness's OSS clients (one per thread), marked by their User-Agent so no fault touches them."""

    def __init__(self, env: dict[str, str]) -> None:
        self._env = env
        self._local = threading.local()

    def get(self) -> Any:
        client = getattr(self._local, "client", None)
        if client is None:
            import alibabacloud_oss_v2 as oss

            e = self._env
            cfg = oss.config.load_default()
            cfg.credentials_provider = oss.credentials.StaticCredentialsProvider(
                e["ALIBABA_CLOUD_ACCESS_KEY_ID"], e["ALIBABA_CLOUD_ACCESS_KEY_SECRET"],
                e["ALIBABA_CLOUD_SECURITY_TOKEN"])
            cfg.region, cfg.endpoint, cfg.user_agent = e["OSS_REGION"], e["OSS_ENDPOINT"], CLIENT_AGENT
            client = self._local.client = oss.Client(cfg)
        return client


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


def overrides_for(opts: Options, bucket: str) -> dict[str, str]:
    env = {"SINKS": opts.sinks, "OCR_QPS": "1000", "LOG_LEVEL": "INFO", "SOURCE_BUCKETS": f"{bucket},{SECOND_BUCKET}"}
    if opts.layout == "shared":
        env |= {"OUTPUT_BUCKET": SHARED_OUTPUT, "OUTPUT_PREFIX": SHARED_PREFIX}
    if opts.backend != "api":  # the truth engine answers at once: a short read timeout keeps its worst case small
        env |= {"OCR_BACKEND": opts.backend, "ENGINE_TIMEOUT_MS": "5000"}
    return env


def batch_profile(cfg: Any) -> Profile:
    """The many-record events' FC timeout, near its deadline for the paid calls and the engine call before each
    (a cascade in 25 s could take no claim at all: check-config refuses that timeout)."""
    if cfg.ocr_backend == "api":
        return DEADLINE
    engine_s = (CONNECT_TIMEOUT_MS + cfg.engine_timeout_ms) / 1000
    return dataclasses.replace(DEADLINE, timeout_s=int((DEADLINE.timeout_s or 0) + engine_s))


@dataclass
class _Run:
    """What the phases share."""

    fn: LocalFunction
    opts: Options
    workload: Workload
    tap: Tap
    world: World
    script: Script
    clients: Clients
    reviewers: Reviewers
    phases: dict[str, float] = field(default_factory=dict)
    ending: list[dict[str, int]] = field(default_factory=list)


def run(opts: Options) -> Report:
    """Drive the workload through the function on a fresh local stack, then check what it left behind."""
    from permit_ocr import log
    from permit_ocr.handler import reset_app

    if opts.root is not None and opts.root.exists() and any(opts.root.iterdir()):
        raise ValueError(f"--root {opts.root} is not empty: a run starts from empty buckets (remove it first)")
    root = opts.root or Path(tempfile.mkdtemp(prefix="permit-ocr-chaos-"))
    plan = fault_plan(opts.seed, opts.fault_rate, opts.backend)
    saved_env = dict(os.environ)
    selfhosted = opts.backend != "api"
    fn = LocalFunction(opts.s_yaml, root, instances=opts.instances, stack_options={"faults": plan},
                       env_overrides=overrides_for(opts, load_deployment(opts.s_yaml).bucket),
                       engine="truth" if selfhosted else None)
    workload = build_workload(opts.uploads, opts.seed, second_bucket=SECOND_BUCKET,
                              doubt_share=opts.doubt_share if opts.backend == "cascade" else None)
    capture = LogCapture(opts.log_file)
    world: World | None = None
    reviewers: Reviewers | None = None
    try:
        fn.start()
        assert fn.stack.oss and fn.stack.ocr and fn.stack.mns and fn.invoker is not None
        state = fn.stack.oss.service.state
        for b in (SECOND_BUCKET, SHARED_OUTPUT):
            state.create_bucket(b)
        env = fn.env()
        cfg = load_config(env)  # where the function writes, from its own layout (OUTPUT_PREFIX included)
        log.configure(cfg.log_level, cfg.log_object_keys)
        second = tuple(dataclasses.replace(t, bucket=SECOND_BUCKET) for t in fn.deployment.triggers)
        state.subscribe(OssTrigger(second, fn.invoker, fn.stack.options.region).on_put)
        windows = Windows()
        instances = Instances(env, {p.name: p for p in (DEFAULT, DEADLINE, LATER)})
        api = fn.fc.state.functions[FUNCTION_NAME].invoker
        bucket_of = {id(it): it.bucket or fn.deployment.bucket for it in workload.items}
        tap = Tap(fn.invoker, api, cfg, instances, windows=windows, seed=opts.seed,
                  concurrent={(bucket_of[id(it)], it.key) for it in workload.items if it.dup == "concurrent"},
                  crash={(bucket_of[id(it)], it.key) for it in workload.items if it.kind == "crash"})
        for inv in (fn.invoker, api):
            inv._backoff_s = opts.fc_backoff_s  # AsyncInvoker(backoff_s=...), which LocalFunction fixes
        failing = {_sha(it.versions[0]) for it in workload.items if it.kind == "failing"}
        world = World(fn.stack, plan, failing)
        clients = Clients(env)
        script = Script(tap, world, workload, cfg, windows, fn.deployment.bucket, opts.sinks,
                        put=lambda item, v: _put(clients, script, item, v),
                        delete=lambda b, k: _delete(clients, b, k), idle=lambda: fn.wait_idle(0.0), seed=opts.seed,
                        read_timeout_s=cfg.ocr_read_timeout_ms / 1000, batch_profile=batch_profile(cfg))
        reviewers = Reviewers(cfg, env, state, script.saves, script.bucket_of, opts.reviewers)
        r = _Run(fn, opts, workload, tap, world, script, clients, reviewers)
        with _function_logs(capture):
            _timed(r, "queue drained", lambda: _first_wave(r))
            r.phases["queue drained"] -= r.phases["uploads"]
            _timed(r, "later deliveries", lambda: _later_deliveries(r))
            reviewers.close()
            world.heal()
            r.ending = _timed(r, "end stage", lambda: end_stage(fn, script, (fn.deployment.bucket, SECOND_BUCKET),
                                                                 root, opts.idle_timeout_s))
        script.lost_answers()
        for b, key, _etag in instances.unsaved_left():
            windows.add("b", b, key)
        return check(_observe(r, cfg, windows, plan, capture))
    finally:
        if reviewers is not None:
            reviewers.close()
        if world is not None:
            world.stop()
        fn.stop()
        capture.close()
        reset_app()
        os.environ.clear()
        os.environ.update(saved_env)
        if opts.root is None:
            shutil.rmtree(root, ignore_errors=True)


def _timed(r: _Run, phase: str, step: Callable[[], T]) -> T:
    started = time.monotonic()
    out = step()
    r.phases[phase] = time.monotonic() - started
    return out


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def _put(clients: Clients, script: Script, item: Item, version: int) -> bool:
    """Upload one version of an item (its scripted options: SSE-KMS, a storage class) and tell the script."""
    import alibabacloud_oss_v2 as oss

    try:
        r = clients.get().put_object(oss.PutObjectRequest(bucket=script.bucket_of(item), key=item.key,
                                                          body=item.versions[version], **script.put_options(item)))
    except Exception as exc:  # reported: an upload the harness could not make is not the function's
        script.upload_failures.append(f"{item.key!r}: {type(exc).__name__}: {str(exc)[:200]}")
        return False
    item.etags.append(etag_form(r.etag) or "")
    item.uploaded_at.append(time.time())
    script.after(item, version)
    return True


def _delete(clients: Clients, bucket: str, key: str) -> None:
    import alibabacloud_oss_v2 as oss

    clients.get().delete_object(oss.DeleteObjectRequest(bucket=bucket, key=key))


def _first_wave(r: _Run) -> None:
    """Client threads upload every item (an overwrite: twice, the second soon after the first) and, mixed in, hand
    the malformed events to the invoker. Between 30 % and 45 % of the items MNS is down; at four moments OSS
    is, for seconds."""
    import alibabacloud_oss_v2 as oss

    opts, plan = r.opts, r.world.plan
    jobs: queue.Queue[Item | bytes | None] = queue.Queue()
    mixed: list[Item | bytes] = [*r.workload.items]
    rng = random.Random(opts.seed + 1)
    for event in r.workload.malformed:
        mixed.insert(rng.randrange(len(mixed) + 1), event)
    for job in mixed:
        jobs.put(job)
    done = [0]
    lock = threading.Lock()
    outages = {int(len(mixed) * f): round(rng.uniform(2, 6), 1) for f in (0.2, 0.5, 0.7, 0.85)}
    mns = "mns" in opts.sinks

    def client(n: int) -> None:
        c = r.clients.get()
        crng = random.Random(opts.seed * 1000 + n)
        while (job := jobs.get()) is not None:
            if isinstance(job, bytes):
                r.tap.deliver(job, "malformed")
                continue
            r.script.before(job)
            for v in range(len(job.versions)):
                if v and (job.kind == "review" or (job.kind == "slowpub" and mns)):
                    break  # the script uploads the second version at its moment
                if v and job.kind == "slowover":
                    time.sleep(0.2)  # the first version's (one-second) OCR call is running by now
                elif v and job.kind == "reupload":
                    time.sleep(crng.uniform(0, 0.3))  # before, during or after the first run
                    c.delete_object(oss.DeleteObjectRequest(bucket=r.script.bucket_of(job), key=job.key))
                elif v:
                    time.sleep(crng.uniform(0, 0.05))
                if not r.script.put(job, v):
                    break
            if job.kind == "review":
                r.reviewers.review(job)
            with lock:
                done[0] += 1
                if done[0] == int(len(mixed) * 0.30):  # an MNS outage: every publish fails for a while
                    plan.set("mns", server_error=1.0)
                elif done[0] == int(len(mixed) * 0.45):
                    plan.set("mns", server_error=opts.fault_rate)
                if done[0] in outages:  # an OSS outage of seconds, for every function request
                    plan.add_rule({"service": "oss", "status": 503, "for_s": outages[done[0]],
                                   "note": "chaos: OSS outage"})
                if opts.progress and done[0] % 1000 == 0:
                    print(f"  uploaded {done[0]} items, {r.tap.invoker.stats['invocations']} invocations", flush=True)

    threads = [threading.Thread(target=client, args=(n,), name=f"chaos-client-{n}") for n in range(opts.clients)]
    for t in threads:
        jobs.put(None)
        t.start()
    started = time.monotonic()
    for t in threads:
        t.join()
    r.phases["uploads"] = time.monotonic() - started
    if not settle(r.fn, r.world.scheduler, r.opts.idle_timeout_s):
        r.phases["busy after the first wave"] = 0.0


def _later_deliveries(r: _Run) -> None:
    """Once the first wave is idle: sequential duplicates, stale events, 30 days later, users' deletes, refusals
    after the result; then the checks those need."""
    checks = r.script.after_idle()
    if not settle(r.fn, r.world.scheduler, r.opts.idle_timeout_s):
        r.phases["busy after the later deliveries"] = 0.0
    for done in checks:
        done()


def _observe(r: _Run, cfg: Any, windows: Windows, plan: FaultPlan, capture: LogCapture) -> Observed:
    fn = r.fn
    assert fn.stack.oss and fn.stack.ocr and fn.stack.mns and fn.invoker is not None and fn.fc is not None
    mns = fn.stack.mns.state
    ocr = fn.stack.ocr.service
    api = fn.fc.state.functions[FUNCTION_NAME].invoker
    stats = Counter(fn.invoker.stats)
    stats.update({f"api {k}": v for k, v in api.stats.items()})
    return Observed(
        workload=r.workload, phases=r.phases, stats=stats, trigger_events=r.tap.trigger_events,
        loop_keys=r.tap.loop_keys, direct_events=r.tap.direct, statuses=r.tap.statuses, unhandled=r.tap.unhandled,
        answers=r.tap.answers, log_lines=capture.lines,
        failure_messages=len(mns.messages(FAILURE_TOPIC)),
        published=[m.body for m in mns.messages(fn.stack.options.topic)], state=fn.stack.oss.service.state,
        bucket=fn.deployment.bucket, cfg=cfg, ocr_calls=[(c.sha256, c.status) for c in ocr.calls],
        billed=ocr.billed_by_image(), injected=Counter(plan.injected), upload_failures=r.script.upload_failures,
        sinks=r.opts.sinks, layout=r.opts.layout, crashes=r.tap.crashes, windows=windows,
        saves=r.script.saves, destroyed=r.script.destroyed, notes=r.script.notes + r.world.log,
        harness_errors=r.world.scheduler.errors, ending=r.ending, valve_holds=r.world.valve.held,
        permission_changes=r.world.permissions.changes, backend=r.opts.backend, engine_calls=fn.engine_calls())


__all__ = ["Options", "fault_plan", "run"]
