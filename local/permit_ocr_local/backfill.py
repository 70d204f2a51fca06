"""Backfill and replay: find images that have no up-to-date outcome and invoke the deployed function for them
asynchronously through the FC 3.0 API, in OSS-shaped events of up to K records, at a bounded rate, resumably.

The pieces are small and mostly pure (classification, batching, the token bucket, checkpoint records); the
I/O sits in three adapters: ``Lister`` (ListObjectsV2 paginator), the function's own ``Storage`` (HEAD/GET/
DELETE of outputs) and ``FcInvoker`` (InvokeFunction with ``x-fc-invocation-type: Async``).

Delivery is at-least-once per batch: the checkpoint is written after FC accepted a batch, so a crash between
the two re-sends that one batch on resume; the handler's idempotency (result metadata ``source-etag``) makes
the repeat free of OCR cost.
"""

from __future__ import annotations

import contextlib
import datetime
import io
import json
import os
import tempfile
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from permit_ocr import guards
from permit_ocr.config import Config
from permit_ocr.sinks import META_KIND, existing_outcome
from permit_ocr.storage import ObjectHead

from .fcemu import Upload, oss_record

T = TypeVar("T")
R = TypeVar("R")
CHECKPOINT_VERSION = 1
ASYNC_PAYLOAD_MAX = 128 * 1024  # FC rejects larger async request bodies (EntityTooLarge)
PAYLOAD_BUDGET = ASYNC_PAYLOAD_MAX - 4 * 1024  # headroom for the envelope and eventTime/ruleId variation
MAX_BATCH = 100  # records per event; the handler works them with WORKERS threads inside one invocation

# counters, in the order the summary prints them
COUNTERS = ("listed", "skipped_output", "skipped_not_image", "skipped_old", "skipped_done", "skipped_error",
            "skipped_gone", "skipped_superseded", "skipped_code", "skipped_duplicate", "cleared_errors",
            "invoked_records", "invoked_events")


# --- pure rules ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Listed:
    """One object as ListObjectsV2 describes it."""

    key: str
    etag: str
    size: int
    last_modified: datetime.datetime | None


def classify(obj: Listed, cfg: Config, *, since: datetime.datetime | None = None,
             suffixes: Sequence[str] = ()) -> str | None:
    """Why a listed object is not a candidate (a counter name), or None when it is one. No I/O."""
    if guards.is_own_output(obj.key, cfg):
        return "skipped_output"
    if not guards.has_image_suffix(obj.key, cfg) or (suffixes and not obj.key.lower().endswith(tuple(suffixes))):
        return "skipped_not_image"
    if since is not None and obj.last_modified is not None and obj.last_modified < since:
        return "skipped_old"
    return None


def outcome_state(result: ObjectHead | None, error: ObjectHead | None, etag: str) -> str | None:
    """``skipped_done`` when a result for this very ETag exists, ``skipped_error`` when a permanent error
    record does (the handler would end there too; replay is the tool for those), else None."""
    if existing_outcome(result, etag) == "done":
        return "skipped_done"
    if error is not None and existing_outcome(error, etag) == "done" and error.metadata.get(META_KIND) == "error":
        return "skipped_error"
    return None


def parse_since(value: str) -> datetime.datetime:
    """ISO 8601; a date or a naive time is taken as UTC."""
    dt = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return dt if dt.tzinfo else dt.replace(tzinfo=datetime.UTC)


def normalize_suffixes(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(s.lower() if s.startswith(".") else f".{s.lower()}" for s in values if s)


def fc_endpoint(value: str, protocol: str | None = None) -> tuple[str, str]:
    """(host[:port], protocol) from ``https://<uid>.<region>.fc.aliyuncs.com`` or ``127.0.0.1:9000``.
    A bare host means https unless it is a loopback address (the local stand-in speaks http)."""
    v = value.strip().rstrip("/")
    if "://" in v:
        scheme, _, host = v.partition("://")
        return host, scheme.lower()
    local = v.split(":")[0] in ("127.0.0.1", "localhost")
    return v, protocol or ("http" if local else "https")


def record_size(u: Upload) -> int:
    """Encoded size of one record in an event (``, `` separator included)."""
    return len(json.dumps(oss_record(u), ensure_ascii=False).encode()) + 2


def encode_event(uploads: Sequence[Upload]) -> bytes:
    return json.dumps({"events": [oss_record(u) for u in uploads]}, ensure_ascii=False).encode()


@dataclass
class Batcher:
    """Groups records into events of at most ``k`` records and ``budget`` bytes (FC's async payload limit)."""

    k: int
    budget: int = PAYLOAD_BUDGET
    items: list[Item] = field(default_factory=list)
    size: int = len(b'{"events": []}')

    def would_overflow(self, item: Item) -> bool:
        return bool(self.items) and self.size + _size(item) > self.budget

    def add(self, item: Item) -> bool:
        """Add; True when the batch is full (send it now)."""
        self.items.append(item)
        self.size += _size(item)
        return len(self.items) >= self.k

    def take(self) -> list[Item]:
        out, self.items, self.size = self.items, [], len(b'{"events": []}')
        return out


def _size(item: Item) -> int:
    return record_size(item.upload) if item.upload is not None else 0


class TokenBucket:
    """``rate`` events per second with a burst of ``burst``; ``reserve`` is pure given the clock."""

    def __init__(self, rate: float, burst: float = 1.0, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if rate <= 0:
            raise ValueError("rate must be > 0")
        self.rate = rate
        self.burst = max(1.0, burst)
        self._tokens = self.burst
        self._clock = clock
        self._sleep = sleep
        self._last = clock()
        self._lock = threading.Lock()

    def reserve(self) -> float:
        """Take one token; return how long to wait before using it (0 when one was available)."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= 1.0
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def acquire(self) -> None:
        wait = self.reserve()
        if wait > 0:
            self._sleep(wait)


# --- checkpoint ----------------------------------------------------------------------------------------------


@dataclass
class Checkpoint:
    """Where a run stands. ``cursor``: the last listed key (or failure-log line) whose fate is settled, i.e.
    every candidate up to it is in a batch FC accepted; a resumed run starts right after it."""

    command: str
    bucket: str
    prefix: str
    source: str = ""  # the failure log, for replay --failure-log
    cursor: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    batches: int = 0
    complete: bool = False
    started_at: str = ""
    updated_at: str = ""
    version: int = CHECKPOINT_VERSION

    def same_job(self, other: Checkpoint) -> bool:
        return (self.command, self.bucket, self.prefix, self.source) == (
            other.command, other.bucket, other.prefix, other.source)


class CheckpointMismatch(ValueError):
    pass


def load_checkpoint(path: Path | None, fresh: Checkpoint) -> Checkpoint:
    """The saved checkpoint for this job, or ``fresh`` when none exists. A file for another job is refused."""
    if path is None or not path.exists():
        return fresh
    raw = json.loads(path.read_text("utf-8"))
    saved = Checkpoint(**{k: v for k, v in raw.items() if k in Checkpoint.__dataclass_fields__})
    if saved.version != CHECKPOINT_VERSION or not saved.same_job(fresh):
        raise CheckpointMismatch(f"{path} belongs to another job ({saved.command} oss://{saved.bucket}/"
                                 f"{saved.prefix}{' ' + saved.source if saved.source else ''}); use another file")
    return saved


def save_checkpoint(path: Path, cp: Checkpoint) -> None:
    """Write atomically (temp file + fsync + rename): a crash leaves the old or the new checkpoint, never half."""
    cp.updated_at = _utcnow()
    data = json.dumps(asdict(cp), ensure_ascii=False, indent=1).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _utcnow() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- the run -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """One listed thing: a candidate (``upload``) or a skip (``skip`` names the counter)."""

    cursor: str
    upload: Upload | None = None
    skip: str | None = None
    clear: tuple[str, str] | None = None  # replay: (bucket, key) of the error record to remove before sending


class Sender(Protocol):
    def send(self, event: bytes) -> str: ...


class Progress(Protocol):
    def update(self, n: int = 1) -> Any: ...

    def set_postfix(self, ordered_dict: Mapping[str, Any] | None = None, refresh: bool | None = True,
                    **kwargs: Any) -> None: ...


@dataclass
class RunOptions:
    batch: int = 10
    rate: float = 5.0
    dry_run: bool = False
    max_batches: int | None = None
    checkpoint_path: Path | None = None
    payload_budget: int = PAYLOAD_BUDGET


@dataclass
class RunResult:
    checkpoint: Checkpoint
    stopped: str = ""  # "" | max-batches | interrupted | error
    error: str = ""
    request_ids: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0


def run_items(items: Iterable[Item], cp: Checkpoint, sender: Sender | None, opts: RunOptions, *,
              clear: Callable[[str, str], None] | None = None, progress: Progress | None = None,
              clock: Callable[[], float] = time.monotonic) -> RunResult:
    """Batch, rate-limit, send, checkpoint. Items must arrive in cursor order, starting after ``cp.cursor``."""
    started = clock()
    result = RunResult(cp)
    counts: Counter[str] = Counter(cp.counts)
    bucket = TokenBucket(opts.rate)
    batcher = Batcher(k=max(1, min(opts.batch, MAX_BATCH)), budget=opts.payload_budget)
    prev = cp.cursor
    cp.started_at = cp.started_at or _utcnow()

    def flush(cursor: str) -> bool:
        batch = batcher.take()
        uploads = [i.upload for i in batch if i.upload is not None]
        if not opts.dry_run:
            assert sender is not None
            for i in batch:
                if i.clear is not None and clear is not None:
                    clear(*i.clear)  # the handler would stop at a matching error record: replay removes it
                    counts["cleared_errors"] += 1
            bucket.acquire()
            try:
                result.request_ids.append(sender.send(encode_event(uploads)))
            except Exception as exc:  # checkpoint stays before this batch; a rerun sends it again
                result.stopped, result.error = "error", f"{type(exc).__name__}: {exc}"
                return False
        counts["invoked_records"] += len(uploads)
        counts["invoked_events"] += 1
        cp.cursor, cp.counts, cp.batches = cursor, dict(counts), cp.batches + 1
        if opts.checkpoint_path is not None and not opts.dry_run:
            save_checkpoint(opts.checkpoint_path, cp)
        if progress is not None:
            progress.set_postfix(_postfix(counts, cp.batches, clock() - started), refresh=False)
        if opts.max_batches is not None and cp.batches >= opts.max_batches:
            result.stopped = "max-batches"
            return False
        return True

    def settle() -> RunResult:
        result.elapsed_s = clock() - started
        if opts.dry_run:  # nothing was sent, so nothing is settled: report what would have happened
            cp.counts = dict(counts)
        return result

    try:
        for item in items:
            if item.upload is not None and batcher.would_overflow(item) and not flush(prev):
                return settle()
            counts["listed"] += 1
            if item.skip:
                counts[item.skip] += 1
            full = item.upload is not None and batcher.add(item)
            prev = item.cursor
            if progress is not None:
                progress.update(1)
            if full and not flush(prev):
                return settle()
        if batcher.items and not flush(prev):
            return settle()
        cp.cursor, cp.counts, cp.complete = prev, dict(counts), True
        if opts.checkpoint_path is not None and not opts.dry_run:
            save_checkpoint(opts.checkpoint_path, cp)
    except KeyboardInterrupt:  # the checkpoint already names the last accepted batch
        result.stopped = "interrupted"
    return settle()


def _postfix(counts: Mapping[str, int], batches: int, elapsed: float) -> dict[str, Any]:
    return {"invoked": counts.get("invoked_records", 0), "done": counts.get("skipped_done", 0),
            "outputs": counts.get("skipped_output", 0), "events/s": f"{batches / elapsed:.1f}" if elapsed else "-"}


# --- what to send ----------------------------------------------------------------------------------------


Head = Callable[[str, str], ObjectHead | None]
Read = Callable[[str, str], bytes]


def backfill_items(objects: Iterable[Listed], cfg: Config, bucket: str, head: Head, *,
                   since: datetime.datetime | None = None, suffixes: Sequence[str] = (),
                   workers: int = 8) -> Iterator[Item]:
    """Every listed object as an Item, in listing order: outputs, non-images, old ones and finished ones are
    skips. The outcome HEADs run on ``workers`` threads: one at a time they would bound a large backfill at
    roughly 1 / HEAD latency objects per second."""
    out_bucket = cfg.output_bucket_for(bucket)

    def decide(obj: Listed) -> Item:
        skip = classify(obj, cfg, since=since, suffixes=suffixes)
        if skip is None:
            result = head(out_bucket, cfg.result_key(obj.key))
            done = existing_outcome(result, obj.etag) == "done"
            skip = outcome_state(result, None if done else head(out_bucket, cfg.error_key(obj.key)), obj.etag)
        upload = None if skip else Upload(bucket, obj.key, obj.etag, obj.size, region=cfg.region)
        return Item(obj.key, upload, skip)

    return ordered_map(decide, objects, workers)


def ordered_map(fn: Callable[[T], R], items: Iterable[T], workers: int, window: int = 256) -> Iterator[R]:
    """``map(fn, items)`` on a thread pool, results in input order, at most ``window`` items ahead."""
    if workers <= 1:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: deque[Future[R]] = deque()
        for x in items:
            pending.append(pool.submit(fn, x))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


@dataclass
class Replayer:
    """Decides, for an image named by an error record or a failed event, whether to invoke it again."""

    cfg: Config
    head: Head
    read: Read
    codes: frozenset[str] = frozenset()
    seen: set[tuple[str, str, str]] = field(default_factory=set)

    def item(self, cursor: str, bucket: str, key: str, etag: str | None, code: str | None = None) -> Item:
        cfg = self.cfg
        out_bucket = cfg.output_bucket_for(bucket)
        current = self.head(bucket, key)
        if current is None or not current.etag:
            return Item(cursor, skip="skipped_gone")
        if etag and current.etag.upper() != etag.upper():
            return Item(cursor, skip="skipped_superseded")  # a newer upload has its own event
        ident = (bucket, key, current.etag)
        if ident in self.seen:
            return Item(cursor, skip="skipped_duplicate")
        if existing_outcome(self.head(out_bucket, cfg.result_key(key)), current.etag) == "done":
            return Item(cursor, skip="skipped_done")
        error_key = cfg.error_key(key)
        error = self.head(out_bucket, error_key)
        mine = error is not None and existing_outcome(error, current.etag) is not None
        if self.codes:
            if code is None and mine:
                code = error_code(self.read(out_bucket, error_key))
            if code not in self.codes:
                return Item(cursor, skip="skipped_code")
        self.seen.add(ident)
        return Item(cursor, Upload(bucket, key, current.etag, current.size, region=cfg.region),
                    clear=(out_bucket, error_key) if mine else None)

    def from_records(self, records: Iterable[Listed], bucket: str) -> Iterator[Item]:
        """Error records listed in the output bucket (``<OUTPUT_PREFIX><key><ERROR_SUFFIX>``)."""
        out_bucket = self.cfg.output_bucket_for(bucket)
        for rec in records:
            if not rec.key.endswith(self.cfg.error_suffix):
                continue
            try:
                doc = json.loads(self.read(out_bucket, rec.key))
                src, err = doc["source"], doc["error"]
                key, etag, code = str(src["key"]), src.get("etag"), str(err.get("code"))
            except (ValueError, KeyError, TypeError):
                yield Item(rec.key, skip="skipped_malformed")
                continue
            if self.codes and code not in self.codes:  # cheap filter before any HEAD
                yield Item(rec.key, skip="skipped_code")
                continue
            yield self.item(rec.key, str(src.get("bucket") or bucket), key, etag, code)

    def from_failure_log(self, lines: Iterable[str], bucket: str, prefix: str, after: str = "") -> Iterator[Item]:
        """Records of the events in a JSON-lines log of FC onFailure payloads (or of MNS messages carrying one)."""
        from permit_ocr.events import MalformedEvent, parse_event

        for n, event in failure_log_events(lines):
            try:
                refs = parse_event(event).refs if event is not None else None
            except MalformedEvent:
                refs = None
            if refs is None:
                cursor = log_cursor(n, 0)
                if cursor > after:
                    yield Item(cursor, skip="skipped_malformed")
                continue
            for i, ref in enumerate(refs):
                cursor = log_cursor(n, i)
                if cursor <= after:
                    continue
                if ref.bucket != bucket or not ref.key.startswith(prefix):
                    yield Item(cursor, skip="skipped_other")
                    continue
                yield self.item(cursor, ref.bucket, ref.key, ref.etag)


def error_code(raw: bytes) -> str | None:
    try:
        return str(json.loads(raw)["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return None


def log_cursor(line: int, record: int) -> str:
    """Sortable position of one record in the failure log (line, index in its event)."""
    return f"{line:09d}:{record:04d}"


def failure_log_events(lines: Iterable[str]) -> Iterator[tuple[int, bytes | None]]:
    """(line number, original event) per line. A line is an onFailure payload (``requestPayload`` holds the
    event) or a published MNS message whose ``body`` is one; anything else yields None."""
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
            payload = doc if "requestPayload" in doc else json.loads(doc["body"])
            event = payload["requestPayload"]
        except (ValueError, KeyError, TypeError):
            yield n, None
            continue
        yield n, (event if isinstance(event, str) else json.dumps(event)).encode()


# --- summary -------------------------------------------------------------------------------------------------


def summary(result: RunResult, *, dry_run: bool) -> dict[str, Any]:
    cp = result.checkpoint
    counts = {k: cp.counts.get(k, 0) for k in COUNTERS} | {k: v for k, v in cp.counts.items() if k not in COUNTERS}
    return {"command": cp.command, "bucket": cp.bucket, "prefix": cp.prefix, "dryRun": dry_run,
            "complete": cp.complete and not result.stopped, "stopped": result.stopped or None,
            "error": result.error or None, "cursor": cp.cursor, "batches": cp.batches, "counts": counts,
            "elapsedS": round(result.elapsed_s, 2)}


def summary_table(s: Mapping[str, Any]) -> str:
    rows = [(k.replace("_", " "), str(v)) for k, v in s["counts"].items() if v or k in ("listed", "invoked_records")]
    rows += [("events sent" if not s["dryRun"] else "events (dry run)", str(s["batches"])),
             ("elapsed s", str(s["elapsedS"])),
             ("status", "complete" if s["complete"] else f"stopped: {s['stopped'] or 'incomplete'}")]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k.ljust(width)}  {v}" for k, v in rows)


# --- I/O adapters --------------------------------------------------------------------------------------------


class Lister:
    """ListObjectsV2 through the alibabacloud-oss-v2 paginator, resuming strictly after ``start_after``."""

    def __init__(self, client: Any, page_size: int = 1000) -> None:
        self._client = client
        self._page_size = page_size

    def objects(self, bucket: str, prefix: str = "", start_after: str = "") -> Iterator[Listed]:
        import alibabacloud_oss_v2 as oss

        req = oss.ListObjectsV2Request(bucket=bucket, prefix=prefix or None, start_after=start_after or None)
        for page in self._client.list_objects_v2_paginator(limit=self._page_size).iter_page(req):
            for o in page.contents or ():
                yield Listed(str(o.key), str(o.etag or "").strip('"').upper(), int(o.size or 0), o.last_modified)

    def count(self, bucket: str, prefix: str = "", start_after: str = "") -> int:
        return sum(1 for _ in self.objects(bucket, prefix, start_after))


def oss_client(env: Mapping[str, str], cfg: Config) -> Any:
    import alibabacloud_oss_v2 as oss

    c = oss.config.load_default()
    c.credentials_provider = oss.credentials.StaticCredentialsProvider(
        env["ALIBABA_CLOUD_ACCESS_KEY_ID"], env["ALIBABA_CLOUD_ACCESS_KEY_SECRET"],
        env.get("ALIBABA_CLOUD_SECURITY_TOKEN") or None)
    c.region = cfg.region
    c.endpoint = cfg.oss_endpoint
    c.retry_max_attempts = 3
    return oss.Client(c)


class InvokeError(Exception):
    pass


class FcInvoker:
    """InvokeFunction(Async) with the FC 3.0 SDK. The SDK does not retry by default: throttling (429), 5xx and
    network failures are retried here with exponential backoff; anything else is final."""

    RETRY_STATUSES = (429, 500, 502, 503, 504)

    def __init__(self, endpoint: str, protocol: str, function: str, env: Mapping[str, str], *,
                 qualifier: str | None = None, attempts: int = 5, backoff_s: float = 0.5,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        from alibabacloud_fc20230330.client import Client
        from alibabacloud_tea_openapi.utils_models import Config as ApiConfig

        self._client = Client(ApiConfig(
            access_key_id=env["ALIBABA_CLOUD_ACCESS_KEY_ID"], access_key_secret=env["ALIBABA_CLOUD_ACCESS_KEY_SECRET"],
            security_token=env.get("ALIBABA_CLOUD_SECURITY_TOKEN") or None, endpoint=endpoint, protocol=protocol,
            read_timeout=30_000, connect_timeout=5_000))
        self.function = function
        self.qualifier = qualifier
        self._attempts = attempts
        self._backoff_s = backoff_s
        self._sleep = sleep

    def send(self, event: bytes) -> str:
        from alibabacloud_fc20230330 import models
        from alibabacloud_tea_util.models import RuntimeOptions

        last: Exception | None = None
        for attempt in range(self._attempts):
            try:
                r = self._client.invoke_function_with_options(
                    self.function, models.InvokeFunctionRequest(body=io.BytesIO(event), qualifier=self.qualifier),
                    models.InvokeFunctionHeaders(x_fc_invocation_type="Async"), RuntimeOptions())
                return str((r.headers or {}).get("x-fc-request-id", ""))
            except Exception as exc:  # the SDK's ClientException/ServerException/UnretryableException
                status = getattr(exc, "status_code", None)
                if status is not None and status not in self.RETRY_STATUSES:
                    raise InvokeError(f"{getattr(exc, 'code', '')} ({status}): {getattr(exc, 'message', exc)}"
                                      ) from None
                last = exc
                self._sleep(self._backoff_s * 2**attempt)
        raise InvokeError(f"gave up after {self._attempts} attempts: {last}")
