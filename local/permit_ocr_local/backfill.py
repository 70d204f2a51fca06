"""Backfill and replay: find images that have no up-to-date outcome and invoke the deployed function for them
asynchronously through the FC 3.0 API, in OSS-shaped events of up to K records, at a bounded rate, resumably.

The pieces are small and mostly pure (classification, batching, the token bucket, checkpoint records); the
I/O sits in three adapters: ``Lister`` (ListObjectsV2 paginator), the function's own ``Storage`` (HEAD/GET/
DELETE of outputs) and ``FcInvoker`` (InvokeFunction with ``x-fc-invocation-type: Async``).

Delivery is at-least-once per batch: the checkpoint is written after FC accepted a batch, so a crash between
the two re-sends that one batch on resume; the handler's idempotency (result metadata ``source-etag``) makes
the repeat free of OCR cost. Nothing here deletes or rewrites an outcome: a replayed image keeps its error
record until the function replaces it with a new result or record, so an interrupted run loses nothing.
"""

from __future__ import annotations

import contextlib
import datetime
import io
import json
import math
import os
import re
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
from permit_ocr.layout import KIND_ERROR, META_KIND
from permit_ocr.sinks import existing_outcome
from permit_ocr.storage import ObjectHead, StorageError, _storage_error

from .fcemu import Upload, oss_record

T = TypeVar("T")
R = TypeVar("R")
CHECKPOINT_VERSION = 2  # 2: the checkpoint records the whole job (filters and target)
ASYNC_PAYLOAD_MAX = 128 * 1024  # FC rejects larger async request bodies (EntityTooLarge)
PAYLOAD_BUDGET = ASYNC_PAYLOAD_MAX - 4 * 1024  # headroom for the envelope and eventTime/ruleId variation
MAX_BATCH = 100  # records per event; the handler works them with WORKERS threads inside one invocation
# --rate bounds: below one event per 100 s a run never ends in practice (and 1e-300 overflows the bucket's
# wait); above 1000 events/s the limiter is no limit at all (FC's own API quota is far lower)
RATE_MIN, RATE_MAX = 0.01, 1000.0
REPLAY_MARK = "permitOcr"  # record key the function reads: {"replay": true} = recognize a final verdict again

# counters, in the order the summary prints them
COUNTERS = ("listed", "skipped_output", "skipped_not_image", "skipped_old", "skipped_done", "skipped_error",
            "skipped_permanent", "skipped_gone", "skipped_replaced", "skipped_superseded", "skipped_code",
            "skipped_duplicate", "replayed_permanent", "invoked_records", "invoked_events")


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
    if is_final_record(error, etag):
        return "skipped_error"
    return None


def is_final_record(error: ObjectHead | None, etag: str) -> bool:
    """A permanent error record of this very image version: the function's verdict, which it keeps."""
    return error is not None and existing_outcome(error, etag) is not None and error.metadata.get(
        META_KIND) == KIND_ERROR


def replay_decision(result: ObjectHead | None, error: ObjectHead | None, etag: str, *,
                    include_permanent: bool) -> tuple[str | None, bool]:
    """(skip counter or None, replay mark) for an image version replay is asked about. A result ends it; a
    permanent verdict is kept unless the operator insists (then the event carries the replay mark, since
    the function otherwise answers ``duplicate``); a transient record or none is simply sent again."""
    if existing_outcome(result, etag) == "done":
        return "skipped_done", False
    if is_final_record(error, etag):
        return (None, True) if include_permanent else ("skipped_permanent", False)
    return None, False


def parse_since(value: str) -> datetime.datetime:
    """ISO 8601; a date or a naive time is taken as UTC."""
    dt = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return dt if dt.tzinfo else dt.replace(tzinfo=datetime.UTC)


def normalize_suffixes(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(s.lower() if s.startswith(".") else f".{s.lower()}" for s in values if s)


_HOST = re.compile(r"^[A-Za-z0-9.-]+(:[0-9]{1,5})?$")


def fc_endpoint(value: str, protocol: str | None = None) -> tuple[str, str]:
    """(host[:port], protocol) from ``https://<uid>.<region>.fc.aliyuncs.com`` or ``127.0.0.1:9000``.
    A bare host means https unless it is a loopback address (the local stand-in speaks http).
    ValueError (one line) for anything else: a scheme other than http(s), a path, an empty host."""
    v = value.strip().rstrip("/")
    scheme = ""
    if "://" in v:
        scheme, _, v = v.partition("://")
        scheme = scheme.lower()
        if scheme not in ("http", "https"):
            raise ValueError(f"endpoint {value!r}: scheme must be http or https")
    if not _HOST.match(v):
        raise ValueError(f"endpoint {value!r}: expected host[:port], e.g. <account-id>.cn-hangzhou.fc.aliyuncs.com")
    local = v.split(":")[0] in ("127.0.0.1", "localhost")
    return v, scheme or protocol or ("http" if local else "https")


def option_problem(*, batch: int, rate: float, max_batches: int | None) -> str | None:
    """What is wrong with the run options, in one line, or None."""
    if not 1 <= batch <= MAX_BATCH:
        return f"--batch must be 1..{MAX_BATCH} (got {batch})"
    if not math.isfinite(rate) or not RATE_MIN <= rate <= RATE_MAX:
        return f"--rate must be a number of events per second in {RATE_MIN:g}..{RATE_MAX:g} (got {rate})"
    if max_batches is not None and max_batches < 1:
        return f"--max-batches must be at least 1 (got {max_batches})"
    return None


def event_record(u: Upload, replay: bool = False) -> dict[str, Any]:
    """The OSS-shaped record of one image; ``replay`` adds the mark that makes the function recognize a
    version again although it holds a permanent verdict for it (``--include-permanent``)."""
    rec = oss_record(u)
    if replay:
        rec[REPLAY_MARK] = {"replay": True}
    return rec


def record_size(u: Upload, replay: bool = False) -> int:
    """Encoded size of one record in an event (``, `` separator included)."""
    return len(json.dumps(event_record(u, replay), ensure_ascii=False).encode()) + 2


def encode_event(uploads: Sequence[Upload], replay: Sequence[bool] = ()) -> bytes:
    marks = list(replay) or [False] * len(uploads)
    return json.dumps({"events": [event_record(u, m) for u, m in zip(uploads, marks, strict=True)]},
                      ensure_ascii=False).encode()


@dataclass
class Batcher:
    """Groups records into events of at most ``k`` records and ``budget`` bytes (FC's async payload limit).
    A record with the replay mark travels alone: if a neighbour failed transiently, FC's retry of the whole
    event would recognize the marked version, already answered, a second time."""

    k: int
    budget: int = PAYLOAD_BUDGET
    items: list[Item] = field(default_factory=list)
    size: int = len(b'{"events": []}')

    def would_overflow(self, item: Item) -> bool:
        alone = item.replay or any(i.replay for i in self.items)
        return bool(self.items) and (alone or self.size + _size(item) > self.budget)

    def add(self, item: Item) -> bool:
        """Add; True when the batch is full (send it now)."""
        self.items.append(item)
        self.size += _size(item)
        return len(self.items) >= self.k or item.replay

    def take(self) -> list[Item]:
        out, self.items, self.size = self.items, [], len(b'{"events": []}')
        return out


def _size(item: Item) -> int:
    return record_size(item.upload, item.replay) if item.upload is not None else 0


class TokenBucket:
    """``rate`` events per second with a burst of ``burst``; ``reserve`` is pure given the clock."""

    def __init__(self, rate: float, burst: float = 1.0, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if not math.isfinite(rate) or rate <= 0:
            raise ValueError("rate must be finite and > 0")
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
    every candidate up to it is in a batch FC accepted; a resumed run starts right after it. ``job``: every
    filter and the target (function, qualifier) the cursor is valid for; another job may not resume it."""

    command: str
    bucket: str
    prefix: str
    source: str = ""  # the failure log, for replay --failure-log
    job: dict[str, Any] = field(default_factory=dict)
    cursor: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    batches: int = 0
    complete: bool = False
    started_at: str = ""
    updated_at: str = ""
    version: int = CHECKPOINT_VERSION

    def identity(self) -> dict[str, Any]:
        return {"command": self.command, "bucket": self.bucket, "prefix": self.prefix, "source": self.source,
                **self.job}

    def same_job(self, other: Checkpoint) -> bool:
        return self.identity() == other.identity()


class CheckpointError(ValueError):
    """The checkpoint file cannot be used (unreadable, malformed, another job): a one-line reason."""


class CheckpointMismatch(CheckpointError):
    pass


# field -> accepted type; bool is excluded from int on purpose (JSON true is not a count)
_CHECKPOINT_FIELDS: dict[str, type] = {
    "command": str, "bucket": str, "prefix": str, "source": str, "job": dict, "cursor": str, "counts": dict,
    "batches": int, "complete": bool, "started_at": str, "updated_at": str, "version": int}


def parse_checkpoint(raw: Any, where: str) -> Checkpoint:
    """A Checkpoint from decoded JSON, or CheckpointError naming the first thing wrong. No I/O."""
    if not isinstance(raw, dict):
        raise CheckpointError(f"{where} is not a checkpoint (a JSON {type(raw).__name__}, expected an object)")
    if raw.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"{where} has checkpoint version {raw.get('version')!r}, this tool writes "
                              f"{CHECKPOINT_VERSION}; delete it and start over")
    for name, kind in _CHECKPOINT_FIELDS.items():
        value = raw.get(name)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise CheckpointError(f"{where} is not a checkpoint: {name!r} is missing or not a {kind.__name__}")
    counts = raw["counts"]
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in counts.values()):
        raise CheckpointError(f"{where} is not a checkpoint: 'counts' must map names to counts >= 0")
    if raw["batches"] < 0:
        raise CheckpointError(f"{where} is not a checkpoint: 'batches' is negative")
    return Checkpoint(**{k: raw[k] for k in _CHECKPOINT_FIELDS})


def job_difference(saved: Checkpoint, fresh: Checkpoint) -> str:
    """``--suffix ['.png'] (this run: ['.jpg'])`` for the first setting that differs."""
    a, b = saved.identity(), fresh.identity()
    name = next(k for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k))
    return f"{name} {a.get(name)!r} (this run: {b.get(name)!r})"


def load_checkpoint(path: Path | None, fresh: Checkpoint) -> Checkpoint:
    """The saved checkpoint for this job, or ``fresh`` when none exists. A file for another job, or anything
    that is not a checkpoint this tool wrote, is refused with CheckpointError."""
    if path is None or not path.exists():
        return fresh
    try:
        raw = json.loads(path.read_bytes())
    except IsADirectoryError:
        raise CheckpointError(f"{path} is a directory, not a checkpoint file") from None
    except OSError as exc:
        raise CheckpointError(f"{path} cannot be read: {exc.strerror}") from None
    except ValueError as exc:
        raise CheckpointError(f"{path} is not JSON ({exc})") from None
    saved = parse_checkpoint(raw, str(path))
    if not saved.same_job(fresh):
        raise CheckpointMismatch(f"{path} belongs to another job: it records {job_difference(saved, fresh)}; "
                                 "use another file, or delete it to start over")
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
    replay: bool = False  # send with the replay mark: the operator insists on a permanent verdict


class ListingError(Exception):
    """OSS failed while the run was deciding what to send (after retries): one line, the run stops resumably.
    ``transient``: the service did not answer or answered 5xx/429 (a rerun may get past it); else it refused."""

    def __init__(self, message: str, *, transient: bool = True) -> None:
        super().__init__(message)
        self.transient = transient


class Sender(Protocol):
    def send(self, event: bytes) -> str: ...


class Progress(Protocol):
    def update(self, n: int = 1) -> Any: ...

    def set_postfix(self, ordered_dict: Mapping[str, Any] | None = None, refresh: bool | None = True,
                    **kwargs: Any) -> None: ...


@dataclass(frozen=True)
class SentBatch:
    """A batch FC accepted: the request id finds the function's logs of this event."""

    number: int  # over the whole job, resumed runs included
    request_id: str
    keys: tuple[str, ...]
    replay: tuple[str, ...] = ()  # keys sent with the replay mark

    def line(self) -> str:
        span = self.keys[0] if len(self.keys) == 1 else f"{self.keys[0]} .. {self.keys[-1]}"
        mark = " (replay of a permanent verdict)" if self.replay else ""
        return f"batch {self.number} accepted: x-fc-request-id {self.request_id}, {len(self.keys)} record(s){mark}: " \
               f"{span}"

    def as_dict(self) -> dict[str, Any]:
        return {"batch": self.number, "requestId": self.request_id, "records": len(self.keys),
                "keys": list(self.keys), "replay": list(self.replay), "acceptedAt": _utcnow()}


@dataclass
class RunOptions:
    batch: int = 10
    rate: float = 5.0
    dry_run: bool = False
    max_batches: int | None = None  # per run: a resumed run may send this many again
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
              progress: Progress | None = None, on_batch: Callable[[SentBatch], None] | None = None,
              clock: Callable[[], float] = time.monotonic) -> RunResult:
    """Batch, rate-limit, send, checkpoint. Items must arrive in cursor order, starting after ``cp.cursor``.
    A failure to send, a ListingError from ``items`` and Ctrl-C all stop the run with the checkpoint at the
    last batch FC accepted, so rerunning the same command resumes there."""
    started = clock()
    result = RunResult(cp)
    counts: Counter[str] = Counter(cp.counts)
    bucket = TokenBucket(opts.rate)
    batcher = Batcher(k=max(1, min(opts.batch, MAX_BATCH)), budget=opts.payload_budget)
    prev = cp.cursor
    cp.started_at = cp.started_at or _utcnow()
    sent = 0

    def flush(cursor: str) -> bool:
        nonlocal sent
        batch = [i for i in batcher.take() if i.upload is not None]
        uploads = [i.upload for i in batch if i.upload is not None]
        if not opts.dry_run:
            assert sender is not None
            bucket.acquire()
            try:
                rid = sender.send(encode_event(uploads, [i.replay for i in batch]))
            except Exception as exc:  # checkpoint stays before this batch; a rerun sends it again
                result.stopped, result.error = "error", one_line(f"{type(exc).__name__}: {exc}")
                return False
            result.request_ids.append(rid)
            if on_batch is not None:
                on_batch(SentBatch(cp.batches + 1, rid, tuple(u.key for u in uploads),
                                   tuple(i.upload.key for i in batch if i.replay and i.upload is not None)))
        sent += 1
        counts["invoked_records"] += len(uploads)
        counts["replayed_permanent"] += sum(1 for i in batch if i.replay)
        counts["invoked_events"] += 1
        cp.cursor, cp.counts, cp.batches = cursor, dict(counts), cp.batches + 1
        if opts.checkpoint_path is not None and not opts.dry_run:
            save_checkpoint(opts.checkpoint_path, cp)
        if progress is not None:
            progress.set_postfix(_postfix(counts, cp.batches, clock() - started), refresh=False)
        if opts.max_batches is not None and sent >= opts.max_batches:
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
    except ListingError as exc:  # the checkpoint already names the last accepted batch
        result.stopped, result.error = "error", one_line(str(exc))
    except KeyboardInterrupt:
        result.stopped = "interrupted"
    return settle()


def one_line(text: str, limit: int = 400) -> str:
    """An SDK's multi-line exception text as one line an operator can read."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit - 3] + "..."


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
    """``map(fn, items)`` on a thread pool, results in input order, at most ``window`` items ahead. When the
    consumer stops (an error, Ctrl-C, --max-batches) the calls not yet started are cancelled."""
    if workers <= 1:
        yield from map(fn, items)
        return
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        pending: deque[Future[R]] = deque()
        for x in items:
            pending.append(pool.submit(fn, x))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


@dataclass
class Replayer:
    """Decides, for an image named by an error record or a failed event, whether to invoke it again. It never
    touches the stored outcome: the function replaces it when the new attempt ends."""

    cfg: Config
    head: Head
    read: Read
    codes: frozenset[str] = frozenset()
    include_permanent: bool = False
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
        result = self.head(out_bucket, cfg.result_key(key))
        error_key = cfg.error_key(key)
        error = None if existing_outcome(result, current.etag) == "done" else self.head(out_bucket, error_key)
        skip, replay = replay_decision(result, error, current.etag, include_permanent=self.include_permanent)
        if skip is not None:
            return Item(cursor, skip=skip)
        if self.codes:
            mine = error is not None and existing_outcome(error, current.etag) is not None
            if code is None and mine:
                try:
                    code = error_code(self.read(out_bucket, error_key))
                except RecordGone:  # replaced by the function between the HEAD and the GET
                    return Item(cursor, skip="skipped_replaced")
            if code not in self.codes:
                return Item(cursor, skip="skipped_code")
        self.seen.add(ident)
        return Item(cursor, Upload(bucket, key, current.etag, current.size, region=cfg.region), replay=replay)

    def from_records(self, records: Iterable[Listed], bucket: str) -> Iterator[Item]:
        """Error records listed in the output bucket (``<OUTPUT_PREFIX><key><ERROR_SUFFIX>``)."""
        out_bucket = self.cfg.output_bucket_for(bucket)
        for rec in records:
            if not rec.key.endswith(self.cfg.error_suffix):
                continue
            try:
                raw = self.read(out_bucket, rec.key)
            except RecordGone:  # replaced by a result since it was listed
                yield Item(rec.key, skip="skipped_replaced")
                continue
            try:
                doc = json.loads(raw)
                src, err = doc["source"], doc["error"]
                key, etag, code = str(src["key"]), src.get("etag"), str(err.get("code"))
            except (ValueError, KeyError, TypeError, AttributeError):
                yield Item(rec.key, skip="skipped_malformed")
                continue
            if self.codes and code not in self.codes:  # cheap filter before any HEAD
                yield Item(rec.key, skip="skipped_code")
                continue
            yield self.item(rec.key, str(src.get("bucket") or bucket), key, etag, code)

    def from_failure_log(self, lines: Iterable[str], bucket: str, prefix: str, after: str = "") -> Iterator[Item]:
        """Records of the events in a JSON-lines log of FC onFailure payloads (or of MNS messages carrying one).
        A failed event holds every record of its batch, finished ones too: each is checked against its stored
        outcome, and only those whose outcome is transient or missing are sent (a permanent verdict only with
        --include-permanent)."""
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


class RecordGone(Exception):
    """The error record listed a moment ago no longer exists."""


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


def retry_transient(call: Callable[[], T], what: str, *, attempts: int = 4, backoff_s: float = 0.2,
                    sleep: Callable[[float], None] = time.sleep) -> T:
    """``call()``, again on a transient StorageError (on top of the SDK's own tries); then ListingError in
    one line. A permanent error (403, ...) is not retried."""
    for attempt in range(attempts):
        try:
            return call()
        except StorageError as err:
            if not err.transient or attempt == attempts - 1:
                tries = f" after {attempt + 1} tries" if err.transient else ""
                raise ListingError(one_line(f"OSS {what}: {err.code} ({err.status or 'no answer'}){tries}: "
                                            f"{err.message}"), transient=err.transient) from None
            sleep(backoff_s * 2**attempt)
    raise AssertionError("unreachable")


class OssReader:
    """HEAD and GET of the objects a run decides on, through the function's own Storage, with retries."""

    def __init__(self, storage: Any, *, attempts: int = 4, backoff_s: float = 0.2) -> None:
        self._storage = storage
        self._attempts = attempts
        self._backoff_s = backoff_s

    def head(self, bucket: str, key: str) -> ObjectHead | None:
        return retry_transient(lambda: self._storage.head(bucket, key), f"HEAD oss://{bucket}/{key}",
                               attempts=self._attempts, backoff_s=self._backoff_s)

    def read(self, bucket: str, key: str) -> bytes:
        def get() -> bytes:
            try:
                return bytes(self._storage.read_all(bucket, key).data)
            except StorageError as err:
                if err.not_found:
                    raise RecordGone(key) from None
                raise

        return retry_transient(get, f"GET oss://{bucket}/{key}", attempts=self._attempts, backoff_s=self._backoff_s)


class Lister:
    """ListObjectsV2 (alibabacloud-oss-v2), page by page, resuming strictly after ``start_after``. Each page
    is retried on its own, so a transient error costs one page request, not the listing."""

    def __init__(self, client: Any, page_size: int = 1000, *, attempts: int = 4, backoff_s: float = 0.2) -> None:
        self._client = client
        self._page_size = page_size
        self._attempts = attempts
        self._backoff_s = backoff_s

    def _page(self, bucket: str, prefix: str, start_after: str, token: str | None, limit: int) -> Any:
        import alibabacloud_oss_v2 as oss

        req = oss.ListObjectsV2Request(bucket=bucket, prefix=prefix or None, max_keys=limit,
                                       start_after=None if token else start_after or None, continuation_token=token)

        def call() -> Any:
            try:
                return self._client.list_objects_v2(req)
            except Exception as exc:
                raise _storage_error(exc) from None

        return retry_transient(call, f"ListObjectsV2 oss://{bucket}/{prefix}", attempts=self._attempts,
                               backoff_s=self._backoff_s)

    def objects(self, bucket: str, prefix: str = "", start_after: str = "") -> Iterator[Listed]:
        token: str | None = None
        while True:
            page = self._page(bucket, prefix, start_after, token, self._page_size)
            for o in page.contents or ():
                yield Listed(str(o.key), str(o.etag or "").strip('"').upper(), int(o.size or 0), o.last_modified)
            token = page.next_continuation_token
            if not page.is_truncated or not token:
                return

    def count(self, bucket: str, prefix: str = "", start_after: str = "") -> int:
        return sum(1 for _ in self.objects(bucket, prefix, start_after))

    def check(self, bucket: str, prefix: str = "") -> None:
        """One ListObjectsV2 of one key: proves endpoint, credentials and the list grant before any batch."""
        self._page(bucket, prefix, "", None, 1)


def oss_client(env: Mapping[str, str], cfg: Config) -> Any:
    import alibabacloud_oss_v2 as oss

    c = oss.config.load_default()
    c.credentials_provider = oss.credentials.StaticCredentialsProvider(
        env["ALIBABA_CLOUD_ACCESS_KEY_ID"], env["ALIBABA_CLOUD_ACCESS_KEY_SECRET"],
        env.get("ALIBABA_CLOUD_SECURITY_TOKEN") or None)
    c.region = cfg.region
    c.endpoint = cfg.oss_endpoint
    c.retry_max_attempts = 3
    c.connect_timeout = 5
    c.readwrite_timeout = 20
    return oss.Client(c)


class InvokeError(Exception):
    """FC refused or never answered, after the retries; ``final`` when retrying cannot help (4xx)."""

    def __init__(self, message: str, *, final: bool) -> None:
        super().__init__(one_line(message))
        self.final = final


class FcInvoker:
    """InvokeFunction(Async) with the FC 3.0 SDK. The SDK does not retry by default: throttling (429), 5xx and
    network failures (refused, reset, timeout) are retried here with exponential backoff; anything else is
    final. A timed-out request may still have been accepted: the resend is then a duplicate the function
    answers without paying again."""

    RETRY_STATUSES = (429, 500, 502, 503, 504)

    def __init__(self, endpoint: str, protocol: str, function: str, env: Mapping[str, str], *,
                 qualifier: str | None = None, attempts: int = 5, backoff_s: float = 0.5, timeout_s: float = 30.0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        from alibabacloud_fc20230330.client import Client
        from alibabacloud_tea_openapi.utils_models import Config as ApiConfig

        self._client = Client(ApiConfig(
            access_key_id=env["ALIBABA_CLOUD_ACCESS_KEY_ID"], access_key_secret=env["ALIBABA_CLOUD_ACCESS_KEY_SECRET"],
            security_token=env.get("ALIBABA_CLOUD_SECURITY_TOKEN") or None, endpoint=endpoint, protocol=protocol,
            read_timeout=int(timeout_s * 1000), connect_timeout=min(5_000, int(timeout_s * 1000))))
        self.endpoint = f"{protocol}://{endpoint}"
        self.function = function
        self.qualifier = qualifier
        self._attempts = attempts
        self._backoff_s = backoff_s
        self._sleep = sleep

    def _call(self, what: str, call: Callable[[], T]) -> T:
        last: Exception | None = None
        for attempt in range(self._attempts):
            try:
                return call()
            except Exception as exc:  # the SDK's ClientException/ServerException/UnretryableException
                status = getattr(exc, "status_code", None)
                if status is not None and status not in self.RETRY_STATUSES:
                    raise InvokeError(f"{what}: {getattr(exc, 'code', '')} ({status}): "
                                      f"{getattr(exc, 'message', exc)}", final=True) from None
                last = exc
                if attempt < self._attempts - 1:
                    self._sleep(self._backoff_s * 2**attempt)
        reason = getattr(last, "message", None) or str(last)
        raise InvokeError(f"{what}: no success after {self._attempts} attempts at {self.endpoint}: {reason}",
                          final=False)

    def send(self, event: bytes) -> str:
        from alibabacloud_fc20230330 import models
        from alibabacloud_tea_util.models import RuntimeOptions

        def call() -> str:
            r = self._client.invoke_function_with_options(
                self.function, models.InvokeFunctionRequest(body=io.BytesIO(event), qualifier=self.qualifier),
                models.InvokeFunctionHeaders(x_fc_invocation_type="Async"), RuntimeOptions())
            return str((r.headers or {}).get("x-fc-request-id", ""))

        return self._call("InvokeFunction", call)

    def check(self) -> None:
        """GetFunction: endpoint, credentials, function and qualifier, before the first batch is built."""
        from alibabacloud_fc20230330 import models

        self._call("GetFunction", lambda: self._client.get_function(
            self.function, models.GetFunctionRequest(qualifier=self.qualifier)))
