"""The chaos run: many uploads of every awkward kind through the function deployed on the local stack (s.yaml's
triggers, FC's async queue and retry policy, the real handler), with transient faults injected into OCR, OSS and
MNS; then the invariants are checked against what the stand-ins hold and the table is drawn.

``build_workload`` makes the uploads (seeded), ``run`` drives them and collects what happened, ``check`` turns
that into rows and violations, ``render`` prints them. ``bench/chaos.py`` and tests/e2e/test_chaos_reduced.py
are thin callers; docs/chaos.md explains the table.
"""

from __future__ import annotations

import contextlib
import io
import os
import queue
import random
import re
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from .common.crash import Crash, CrashAt
from .common.faults import FaultPlan
from .ocr.truthmark import embed_truth
from .oss.errors import OssError
from .oss.state import ObjectMeta, OssState
from .runner import FAILURE_TOPIC, LocalFunction
from .synth.fields import random_fields

CLIENT_AGENT = "permit-ocr-chaos"  # the harness's own uploads carry it and are never faulted
PII_FIELDS = ("nameCn", "nameEn", "permitNumber", "birthDate")
OVERSIZE_BYTES = 10 * 1024 * 1024 + 64 * 1024  # just over the OCR API's 10 MB

# What each kind of upload must end as (its CURRENT version): "result", "error:<code>" (a permanent error
# record), "transient" (a transient error record: only acceptable once FC gave the event up to onFailure).
EXPECT: dict[str, frozenset[str]] = {
    "permit": frozenset({"result"}),
    "hostile": frozenset({"result"}),  # a permit under an awkward key
    "overwrite": frozenset({"result"}),  # the second version is a permit too
    "notpermit": frozenset({"error:unmatchedImageType"}),
    "corrupt": frozenset({"error:unsupportedImageFormat"}),
    "truncated": frozenset({"error:unsupportedImageFormat", "error:unmatchedImageType"}),
    "nonimage": frozenset({"error:unsupportedImageFormat"}),
    "tiny": frozenset({"error:illegalImageSize"}),
    "ratio": frozenset({"error:illegalImageSize"}),
    "empty": frozenset({"error:illegalImageContent"}),
    "oversize": frozenset({"error:exceededImageContent"}),
    "failing": frozenset({"transient"}),  # OCR answers algorithmError every time
    "slowover": frozenset({"result"}),  # overwritten while the first version's OCR call is still running
    "reupload": frozenset({"result"}),  # uploaded, deleted, and the same bytes uploaded again
    "crash": frozenset({"result"}),  # the first instance dies at a random request; FC retries the event
}
# uploads of one item that carry the same bytes (a re-upload): each may be paid for, the others not
SAME_BYTES_KINDS = frozenset({"reupload"})
# the precheck or a guard must stop these before OCR is asked
PRECHECKED = frozenset({"corrupt", "nonimage", "tiny", "ratio", "empty", "oversize"})
# share of the upload slots per kind (an overwrite takes two uploads); oversize is a fixed small count
MIX: dict[str, float] = {
    "permit": 0.58, "hostile": 0.10, "overwrite": 0.05, "notpermit": 0.05, "corrupt": 0.03, "truncated": 0.03,
    "nonimage": 0.03, "tiny": 0.02, "ratio": 0.02, "empty": 0.01, "failing": 0.002,
    "slowover": 0.01, "reupload": 0.02, "crash": 0.02,
}
DUP_SEQ, DUP_CONCURRENT = 0.05, 0.05  # share of images whose event is delivered twice
DUP_KINDS = frozenset({"permit", "hostile", "notpermit", "overwrite"})


# --- the workload ----------------------------------------------------------------------------------------

@dataclass
class Item:
    """One key and the versions uploaded to it (two for an overwrite)."""

    kind: str
    key: str
    versions: list[bytes]
    truths: list[dict[str, str] | None]
    dup: str = ""  # "" | "seq" (delivered again later) | "concurrent" (delivered twice at once)
    etags: list[str] = field(default_factory=list)  # filled by the upload

    @property
    def etag(self) -> str | None:
        return self.etags[-1] if len(self.etags) == len(self.versions) else None


@dataclass
class Workload:
    items: list[Item]
    malformed: list[bytes]  # events submitted straight to the invoker
    uploads: int

    def truths(self) -> Iterator[dict[str, str]]:
        for item in self.items:
            yield from (t for t in item.truths if t)


class _Images:
    """Tiny images, made once; per-image content differs by the truth embedded in it."""

    def __init__(self, size: tuple[int, int]) -> None:
        from PIL import Image

        def encode(sz: tuple[int, int], fmt: str) -> bytes:
            buf = io.BytesIO()
            Image.new("RGB", sz, (200, 210, 230)).save(buf, fmt)
            return buf.getvalue()

        self.png, self.jpeg = encode(size, "PNG"), encode(size, "JPEG")
        self.tiny, self.ratio = encode((12, 12), "PNG"), encode((2000, 20), "PNG")
        self._oversize: bytes | None = None

    def oversize(self) -> bytes:
        """A valid PNG header, then one private chunk that takes it past 10 MB (built once, reused)."""
        if self._oversize is None:
            import struct
            import zlib

            pad = bytes(OVERSIZE_BYTES)
            chunk = struct.pack(">I", len(pad)) + b"chAo" + pad + struct.pack(">I", zlib.crc32(b"chAo" + pad))
            self._oversize = self.png[:33] + chunk + self.png[33:]  # after the 8-byte signature + IHDR
        return self._oversize


SUFFIXES_PNG = (".png", ".png", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")  # content sniffed, not named
SUFFIXES_JPEG = (".jpg", ".jpeg")


def _hostile_key(prefix: str, i: int, truth: dict[str, str], rng: random.Random, suffix: str) -> str:
    name, number = truth["nameCn"], truth["permitNumber"]
    style = rng.randrange(8)
    if style == 0:
        return f"{prefix}scans 2024/permit {i} copy (1){suffix}"
    if style == 1:
        return f"{prefix}a+b/{i}+plus+{name}{suffix}"
    if style == 2:
        return f"{prefix}100%/{i}%20x%2Fy%E4%BD%A0{suffix}"
    if style == 3:
        return f"{prefix}证件/{name}_{number}_{i}{suffix}"  # keys carry names: logs must not
    if style == 4:
        return f"{prefix}q?x=1&y=2#frag;{i}=@!$'(){suffix}"
    if style == 5:
        return prefix + "/".join(f"d{n}" for n in range(40)) + f"/{i}{suffix}"  # deep folders
    if style == 6:  # ~900 bytes: folders of 100 bytes (file names stay under 255 bytes on disk)
        return prefix + "/".join(f"{n}" + "长" * 33 for n in range(8)) + f"/{i}-{'x' * 80}{suffix}"
    return f"{prefix} leading space/trailing space {i} 📄 emoji{suffix}"


def _truncate(data: bytes, rng: random.Random) -> bytes:
    """Cut inside the signature/IHDR or inside the truth chunk: never a whole, readable permit."""
    truth_end = 33 + 12 + int.from_bytes(data[33:37], "big")
    return data[: rng.randrange(9, truth_end - 1)]


def build_workload(uploads: int, seed: int, prefix: str = "uploads/", size: tuple[int, int] = (40, 40),
                   malformed_share: float = 0.01, max_oversize: int = 20) -> Workload:
    rng = random.Random(seed)
    img = _Images(size)
    items: list[Item] = []
    kinds, weights = list(MIX), list(MIX.values())
    n_oversize = max(1, min(max_oversize, uploads // 500))
    count = n_oversize
    for i in range(n_oversize):
        items.append(Item("oversize", f"{prefix}big/{i}-scan.png", [img.oversize()], [None]))
    i = 0
    while count < uploads:
        i += 1
        kind = rng.choices(kinds, weights)[0]
        if kind in ("overwrite", "slowover", "reupload") and uploads - count < 2:
            kind = "permit"
        truth = random_fields(rng, rng.choice(("hk", "macao", "taiwan")))
        jpeg = rng.random() < 0.3
        base, suffix = (img.jpeg, rng.choice(SUFFIXES_JPEG)) if jpeg else (img.png, rng.choice(SUFFIXES_PNG))
        key = f"{prefix}batch-{i % 64:02d}/{i:06d}-{truth['permitNumber']}{suffix}"
        truths: list[dict[str, str] | None] = [truth]
        if kind in ("permit", "hostile", "crash"):
            if kind == "hostile":
                key = _hostile_key(prefix, i, truth, rng, suffix)
            versions = [embed_truth(base, truth)]
        elif kind == "slowover":  # the first version's OCR call takes a second; the second arrives meanwhile
            second = random_fields(rng, "taiwan")
            versions = [embed_truth(base, {**truth, "delay": "1.0"}), embed_truth(base, second)]
            truths = [truth, second]
        elif kind == "reupload":
            versions = [embed_truth(base, truth)] * 2
            truths = [truth, truth]
        elif kind == "overwrite":
            second = random_fields(rng, "hk")
            versions, truths = [embed_truth(base, truth), embed_truth(base, second)], [truth, second]
        elif kind == "notpermit":
            # no truth: "not a permit" (unmatchedImageType); bytes after the end marker keep each one distinct
            versions, truths = [base + f"cat photo {i}".encode()], [None]
        elif kind == "corrupt":
            versions, truths = [b"\x89PNG\r\n\x1a\n" + rng.randbytes(rng.randrange(64, 4096))], [None]
            key = key.rsplit(".", 1)[0] + ".png"
        elif kind == "truncated":
            versions = [_truncate(embed_truth(img.png, truth), rng)]
            key = key.rsplit(".", 1)[0] + ".png"
        elif kind == "nonimage":
            body, ext = rng.choice(((b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n", ".jpg"), (b"hello, not an image\n", ".png"),
                                    (b"PK\x03\x04\x14\x00", ".gif"), (b"<html><body>", ".webp")))
            versions, truths = [body + str(i).encode() * 20], [None]
            key = key.rsplit(".", 1)[0] + ext
        elif kind == "tiny":
            versions, key = [embed_truth(img.tiny, truth)], key.rsplit(".", 1)[0] + ".png"
        elif kind == "ratio":
            versions, key = [embed_truth(img.ratio, truth)], key.rsplit(".", 1)[0] + ".png"
        elif kind == "empty":
            versions, truths, key = [b""], [None], key.rsplit(".", 1)[0] + ".png"
        else:  # failing: the OCR stand-in answers algorithmError for it, every time
            versions, truths = [embed_truth(img.png, {"error": "algorithmError", "n": str(i)})], [None]
            key = key.rsplit(".", 1)[0] + ".png"
        dup = ""
        if kind in DUP_KINDS:
            x = rng.random()
            dup = "seq" if x < DUP_SEQ else "concurrent" if x < DUP_SEQ + DUP_CONCURRENT else ""
        items.append(Item(kind, key, versions, truths, dup))
        count += len(versions)
    rng.shuffle(items)
    return Workload(items, malformed_events(max(5, int(uploads * malformed_share)), prefix, rng), count)


def malformed_events(n: int, prefix: str, rng: random.Random) -> list[bytes]:
    """Events FC could hand over but no OSS trigger would produce: none of them may cost a call or a write."""
    rec = {"eventName": "ObjectCreated:PutObject", "eventSource": "acs:oss", "region": "cn-hangzhou"}
    shapes: list[Any] = [
        b"", b"not json at all", b"[]", b"null", b'{"events": "x"}', b"\xff\xfe\x00garbage",
        {"events": [{}]},
        {"events": [{**rec, "oss": {"bucket": {"name": "permit-ocr-demo"}}}]},  # no key
        {"events": [{**rec, "oss": {"bucket": {"name": "permit-ocr-demo"}, "object": {"key": ""}}}]},
        {"events": [{**rec, "eventName": "ObjectRemoved:DeleteObject",
                     "oss": {"bucket": {"name": "permit-ocr-demo"}, "object": {"key": f"{prefix}gone.png"}}}]},
        {"events": [{**rec, "oss": {"bucket": {"name": "someone-elses-bucket"},
                                    "object": {"key": f"{prefix}x.png", "size": 10}}}]},
        {"events": [1, "two", None]},
    ]
    out = []
    for _ in range(n):
        shape = rng.choice(shapes)
        out.append(shape if isinstance(shape, bytes) else orjson.dumps(shape))
    return out


# --- observing the function ------------------------------------------------------------------------------

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
class Observed:
    """Everything the run saw, for ``check``."""

    workload: Workload
    wall_s: float
    idle: bool
    stats: Counter[str]  # the invoker's: events, invocations, retries, failed
    trigger_events: int
    loop_keys: list[str]
    direct_events: Counter[str]  # seq / concurrent / stale / malformed
    statuses: Counter[str]  # per-record statuses from the handler's answers
    unhandled: Counter[str]  # exception types that left the handler (RetryLater is the designed one)
    log_lines: list[str]
    failed_payloads: list[str]  # requestPayload of each onFailure message
    results_topic: list[str]  # bodies published on the results topic
    state: OssState
    bucket: str
    result_suffix: str
    error_suffix: str
    ocr_calls: list[tuple[str, int]]  # (sha256, status) of every request that carried image bytes
    billed: Counter[str]
    injected: Counter[str]
    upload_failures: list[str]
    sinks: str
    crashes: list[tuple[str, bool]] = field(default_factory=list)  # (key, paid then died)


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
    s_yaml: Path = Path(__file__).resolve().parents[2] / "s.yaml"
    progress: bool = False


def fault_plan(seed: int, rate: float) -> FaultPlan:
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
        return str(obj["key"]), str(obj.get("eTag") or "").upper()
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
        return "", ""


class InstanceCrashed(RuntimeError):
    """What FC sees of an instance that died: the invocation failed, so its async policy retries it."""


class _Tap:
    """Sits between the trigger and the invoker (records each event, doubles the concurrent duplicates) and
    around the handler (counts statuses and exceptions that leave it)."""

    def __init__(self, fn: LocalFunction, concurrent: set[str], own_suffixes: tuple[str, ...],
                 crash: set[str] | None = None, seed: int = 0) -> None:
        from permit_ocr.handler import RetryLater

        assert fn.invoker is not None
        self.invoker = fn.invoker
        self._retry_later = RetryLater
        self._submit = fn.invoker.submit
        self._concurrent = concurrent
        self._own = own_suffixes
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
            if key.endswith(self._own):
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

    workload = build_workload(opts.uploads, opts.seed)
    root = opts.root or Path(tempfile.mkdtemp(prefix="permit-ocr-chaos-"))
    plan = fault_plan(opts.seed, opts.fault_rate)
    overrides = {"SINKS": opts.sinks, "OCR_QPS": "1000", "LOG_LEVEL": "INFO"}
    saved_env = dict(os.environ)
    fn = LocalFunction(opts.s_yaml, root, instances=opts.instances, stack_options={"faults": plan},
                       env_overrides=overrides)
    capture = LogCapture(opts.log_file)
    try:
        fn.start()
        env = fn.env()
        own = (env.get("RESULT_SUFFIX", ".json"), env.get("ERROR_SUFFIX", ".error.json"))
        tap = _Tap(fn, {it.key for it in workload.items if it.dup == "concurrent"}, own,
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
            bucket=fn.deployment.bucket, result_suffix=own[0], error_suffix=own[1],
            ocr_calls=[(c.sha256, c.status) for c in ocr.calls], billed=ocr.billed_by_image(),
            injected=Counter(plan.injected), upload_failures=failures, sinks=opts.sinks, crashes=tap.crashes))
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
                job.etags.append(str(r.etag).strip('"').upper())
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


# --- the invariants --------------------------------------------------------------------------------------

@dataclass
class Row:
    label: str
    value: str
    ok: bool | None = None  # None: information, no invariant


@dataclass(frozen=True)
class Violation:
    label: str
    count: int
    detail: str

    def __str__(self) -> str:
        return f"{self.label}: {self.count}" + (f" — {self.detail}" if self.detail else "")


@dataclass
class Report:
    rows: list[Row]
    violations: list[Violation]
    outcomes: Counter[str]  # final outcome -> keys

    @property
    def ok(self) -> bool:
        return not self.violations


def _head(state: OssState, bucket: str, key: str) -> ObjectMeta | None:
    try:
        return state.head(bucket, key)
    except OssError:
        return None


def _short(key: str) -> str:
    return key if len(key) <= 100 else f"{key[:50]}…{key[-40:]}"


def _examples(keys: list[str], n: int = 5) -> str:
    shown = "; ".join(keys[:n])
    return shown + (f" (+{len(keys) - n} more)" if len(keys) > n else "")


def _payload_keys(payload: str) -> list[str]:
    try:
        return [str(r["oss"]["object"]["key"]) for r in orjson.loads(payload)["events"]]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return []


def final_state(obs: Observed, item: Item) -> tuple[str, dict[str, Any]]:
    """What the image's CURRENT version ended as: result | error:<code> | transient | lost | stale | both."""
    etag = item.etag
    info: dict[str, Any] = {}
    res = _head(obs.state, obs.bucket, item.key + obs.result_suffix)
    err = _head(obs.state, obs.bucket, item.key + obs.error_suffix)
    mine = [m for m in (res, err) if m is not None and etag and m.user_meta.get("source-etag", "").upper() == etag]
    info["pending"] = any(m.user_meta.get("pending") for m in mine)
    if res in mine and err in mine and res is not None:
        info["both"] = True
    if res is not None and res in mine:
        doc = orjson.loads(obs.state.get(obs.bucket, res.key)[1])
        truth = item.truths[-1]
        fields = (doc.get("data") or {}).get("data") or {}
        info["mismatch"] = truth is not None and fields.get("permitNumber") != truth.get("permitNumber")
        return "result", info
    if err is not None and err in mine:
        e = orjson.loads(obs.state.get(obs.bucket, err.key)[1])["error"]
        info["error"] = e
        return ("transient" if e["transient"] else f"error:{e['code']}"), info
    info["stale"] = res is not None or err is not None  # only outputs describing an older version
    return "lost", info


class _PiiIndex:
    """Finds any of many literal values in log text: candidates by their first two characters."""

    def __init__(self, values: set[str]) -> None:
        self._by_prefix: dict[str, list[str]] = {}
        for v in values:
            if len(v) >= 2:
                self._by_prefix.setdefault(v[:2], []).append(v)
        firsts = "".join(sorted({v[0] for v in values if len(v) >= 2}))
        self._starts = re.compile("[" + re.escape(firsts) + "]") if firsts else None

    def hits(self, line: str) -> list[str]:
        found: list[str] = []
        if self._starts is None:
            return found
        for m in self._starts.finditer(line):
            i = m.start()
            for v in self._by_prefix.get(line[i : i + 2], ()):
                if line.startswith(v, i) and not (v.isdigit() and _in_word(line, i, len(v))):
                    found.append(v)
        return found


def _in_word(line: str, i: int, n: int) -> bool:
    """A digits-only value inside a longer alphanumeric run (a hex id) is a coincidence, not a leak."""
    return (i > 0 and line[i - 1].isalnum()) or (i + n < len(line) and line[i + n].isalnum())


def check(obs: Observed) -> Report:
    w = obs.workload
    rows: list[Row] = []
    bad: list[Violation] = []

    def inv(label: str, value: int, detail: str = "") -> None:
        rows.append(Row(label, str(value), value == 0))
        if value:
            bad.append(Violation(label, value, detail))

    failed_keys = {k for p in obs.failed_payloads for k in _payload_keys(p)}
    outcomes: Counter[str] = Counter()
    lost: list[str] = []
    stale: list[str] = []
    wrong: list[str] = []
    both: list[str] = []
    mismatch: list[str] = []
    pending: list[str] = []
    unpublished: list[str] = []
    failed_end: Counter[str] = Counter()
    published = _published(obs.results_topic)
    uploaded = [it for it in w.items if it.etag]
    for item in uploaded:
        outcome, info = final_state(obs, item)
        outcomes[outcome] += 1
        ident = f"{item.kind} {_short(item.key)!r} etag {item.etag}"
        if outcome == "lost":
            (stale if info.get("stale") else lost).append(ident)
        elif outcome not in EXPECT[item.kind] and not (outcome == "transient" and item.key in failed_keys):
            code = info.get("error", {})
            wrong.append(f"{ident} ended as {outcome}" + (f" ({code.get('message', '')[:80]})" if code else ""))
        if info.get("both"):
            both.append(ident)
        if info.get("mismatch"):
            mismatch.append(ident)
        if info.get("pending") and item.key not in failed_keys:  # owed after onFailure: a replay sends it
            pending.append(ident)
        if ("mns" in obs.sinks and outcome != "lost" and outcome != "transient"
                and (item.key, item.etag) not in published and item.key not in failed_keys):
            unpublished.append(f"{ident} ({outcome})")
        if item.key in failed_keys:
            failed_end[outcome] += 1

    n_results = outcomes["result"]
    n_errors = sum(v for k, v in outcomes.items() if k.startswith("error:") or k == "transient")
    rows += [
        Row("uploads (PUTs)", f"{w.uploads} ({len(w.items)} keys, {len(w.items) - len(uploaded)} not uploaded)"),
        Row("events delivered", f"{obs.stats['events']} (trigger {obs.trigger_events}, "
            + ", ".join(f"{k} {v}" for k, v in sorted(obs.direct_events.items())) + ")"),
        Row("invocations", f"{obs.stats['invocations']} (FC retries {obs.stats['retries']})"),
        Row("results", str(n_results)),
        Row("error records", f"{n_errors} (transient {outcomes['transient']})"),
    ]
    inv("lost (no result/error record for the current ETag)", len(lost) + len(stale),
        _examples(lost + [s + " (outputs describe an older version)" for s in stale]))
    paid = sum(obs.billed.values())
    # each upload of a version may be paid once (a re-upload of the same bytes after a delete is a new upload);
    # a crash between the paid answer and the stored document is the one documented way to pay once more
    # per key: each upload may be paid once (a re-upload of the same bytes after a delete is a new upload; in
    # url mode, an older version's call may have read the newer bytes, then its result was discarded), plus
    # one per crash between the paid answer and the stored document (the one documented window)
    window = Counter(k for k, paid_then_died in obs.crashes if paid_then_died)
    over: list[str] = []
    allowed_total = 0
    for it in w.items:
        allowed = 1 + sum(1 for n in range(1, len(it.versions))
                          if it.kind in SAME_BYTES_KINDS or it.versions[n] != it.versions[n - 1])
        allowed_total += allowed
        got = sum(obs.billed.get(s, 0) for s in {_sha(v) for v in it.versions})
        if got > allowed + window[it.key]:
            over.append(f"{it.kind} {_short(it.key)!r} ({it.dup or 'no'} duplicate) billed {got}x for {allowed}")
    rows.append(Row("paid OCR calls / image versions uploaded", f"{paid} / {allowed_total}"))
    rows.append(Row("instances crashed mid-invocation",
                    f"{len(obs.crashes)} ({sum(window.values())} between the paid answer and the stored document)"))
    inv("extra paid calls", len(over), _examples(over))
    inv("loops (events for our own outputs)", len(obs.loop_keys), _examples(obs.loop_keys))
    pii = _PiiIndex({t[f] for t in w.truths() for f in PII_FIELDS if t.get(f)})
    hits = [(n, v) for n, line in enumerate(obs.log_lines) for v in pii.hits(line)]
    inv("PII hits in logs", len(hits), _examples([f"line {n}: {v}" for n, v in hits]))
    rows.append(Row("log lines scanned", str(len(obs.log_lines))))
    unexpected = [ln for ln in obs.log_lines if '"unexpected failure"' in ln]
    inv("unhandled exceptions", sum(obs.unhandled.values()) + len(unexpected),
        f"escaped the handler: {dict(obs.unhandled)}; caught by its safety net: "
        f"{dict(Counter(orjson.loads(ln).get('code') for ln in unexpected))}")
    rows.append(Row("final FC failures (onFailure)", f"{obs.stats['failed']} events; their images ended as "
                    + (", ".join(f"{k} {v}" for k, v in sorted(failed_end.items())) or "-")))
    inv("  of which without a result or error record", failed_end["lost"])
    inv("wrong outcome (vs. the kind of upload)", len(wrong), _examples(wrong))
    inv("result and error record both current", len(both), _examples(both))
    inv("result content of another version", len(mismatch), _examples(mismatch))
    if "mns" in obs.sinks:
        inv("MNS message still owed (pending flag)", len(pending), _examples(pending))
        inv("outcome never published on MNS", len(unpublished), _examples(unpublished))
    kinds_by_sha = {_sha(v): it.kind for it in w.items for v in it.versions}
    leaks = [s for s, _ in obs.ocr_calls if kinds_by_sha.get(s) in PRECHECKED]
    inv("OCR calls the precheck should have stopped", len(leaks))
    inv("handler still busy at the end", 0 if obs.idle else 1)
    inv("uploads the harness could not make", len(obs.upload_failures), _examples(obs.upload_failures))
    rows.append(Row("malformed events (no image; not in 'lost')",
                    f"{obs.direct_events['malformed']} (answered 'malformed' records: {obs.statuses['malformed']})"))
    rows.append(Row("record statuses", ", ".join(f"{k} {v}" for k, v in sorted(obs.statuses.items()))))
    rows.append(Row("final outcomes", ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items()))))
    rows.append(Row("injected faults", ", ".join(f"{k} {v}" for k, v in sorted(obs.injected.items()))))
    rows.append(Row("wall time", f"{obs.wall_s:.1f} s ({w.uploads / max(obs.wall_s, 1e-9):.0f} uploads/s)"))
    return Report(rows, bad, outcomes)


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def _published(bodies: list[str]) -> set[tuple[str, str]]:
    out: set[tuple[str, str]] = set()
    for body in bodies:
        with contextlib.suppress(orjson.JSONDecodeError, AttributeError, TypeError):
            src = orjson.loads(body).get("source") or {}
            out.add((str(src.get("key")), str(src.get("etag") or "").upper()))
    return out


def render(report: Report) -> str:
    width = max(len(r.label) for r in report.rows)
    lines = [f"{'':3}{'metric':<{width}}  value", f"{'':3}{'-' * width}  {'-' * 40}"]
    for r in report.rows:
        mark = "" if r.ok is None else ("ok" if r.ok else "!!")
        lines.append(f"{mark:3}{r.label:<{width}}  {r.value}")
    if report.violations:
        lines += ["", "INVARIANTS VIOLATED:"] + [f"  - {v}" for v in report.violations]
    else:
        lines += ["", "all invariants hold"]
    return "\n".join(lines)
