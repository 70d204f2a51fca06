"""The run: batch, rate-limit, send, checkpoint, and the summary of what happened."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from permit_ocr.recognize import RateLimiter

from .batching import Batcher, encode_event
from .checkpoint import Checkpoint, save_checkpoint, utcnow
from .rules import COUNTERS, MAX_BATCH, PAYLOAD_BUDGET, Item, one_line


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
        mark = " (replay of a permanent verdict)" if self.replay else ""
        if not self.request_id:  # --dry-run: every key it would send, so the plan can be checked
            return f"batch {self.number} (dry run, not sent): {len(self.keys)} record(s){mark}: {', '.join(self.keys)}"
        span = self.keys[0] if len(self.keys) == 1 else f"{self.keys[0]} .. {self.keys[-1]}"
        return f"batch {self.number} accepted: x-fc-request-id {self.request_id}, {len(self.keys)} record(s){mark}: " \
               f"{span}"

    def as_dict(self) -> dict[str, Any]:
        return {"batch": self.number, "requestId": self.request_id, "records": len(self.keys),
                "keys": list(self.keys), "replay": list(self.replay), "acceptedAt": utcnow()}


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
              clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> RunResult:
    """Batch, rate-limit, send, checkpoint. Items must arrive in cursor order, starting after ``cp.cursor``.
    A failure to send, a ListingError from ``items`` and Ctrl-C all stop the run with the checkpoint at the
    last batch FC accepted, so rerunning the same command resumes there."""
    started = clock()
    result = RunResult(cp)
    counts: Counter[str] = Counter(cp.counts)
    limiter = RateLimiter(opts.rate, clock)  # the function's own token bucket, at --rate events per second
    batcher = Batcher(k=max(1, min(opts.batch, MAX_BATCH)), budget=opts.payload_budget)
    prev = cp.cursor
    cp.started_at = cp.started_at or utcnow()
    sent = 0

    def flush(cursor: str) -> bool:
        nonlocal sent
        batch = [i for i in batcher.take() if i.upload is not None]
        uploads = [i.upload for i in batch if i.upload is not None]
        if not opts.dry_run:
            assert sender is not None
            if (wait := limiter.reserve()) > 0:
                sleep(wait)
            try:
                rid = sender.send(encode_event(uploads, [i.replay for i in batch]))
            except Exception as exc:  # checkpoint stays before this batch; a rerun sends it again
                result.stopped, result.error = "error", one_line(f"{type(exc).__name__}: {exc}")
                return False
            result.request_ids.append(rid)
        else:
            rid = ""  # nothing sent: the batch is shown as the plan
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


def _postfix(counts: Mapping[str, int], batches: int, elapsed: float) -> dict[str, Any]:
    return {"invoked": counts.get("invoked_records", 0), "done": counts.get("skipped_done", 0),
            "outputs": counts.get("skipped_output", 0), "events/s": f"{batches / elapsed:.1f}" if elapsed else "-"}






def summary(result: RunResult, *, dry_run: bool) -> dict[str, Any]:
    cp = result.checkpoint
    counts = {k: cp.counts.get(k, 0) for k in COUNTERS} | {k: v for k, v in cp.counts.items() if k not in COUNTERS}
    return {"command": cp.command, "bucket": cp.bucket, "prefix": cp.prefix, "dryRun": dry_run,
            "complete": cp.complete and not result.stopped, "stopped": result.stopped or None,
            "error": result.error or None, "cursor": cp.cursor, "batches": cp.batches, "counts": counts,
            "elapsedS": round(result.elapsed_s, 2)}


def status_words(s: Mapping[str, Any]) -> str:
    if not s["complete"]:
        return f"stopped: {s['stopped'] or 'incomplete'}"
    if not s["dryRun"] and not s["counts"].get("invoked_events"):
        return "nothing sent"  # complete, and changed nothing: never "complete" alone
    return "complete"


def summary_table(s: Mapping[str, Any]) -> str:
    rows = [(k.replace("_", " "), str(v)) for k, v in s["counts"].items() if v or k in ("listed", "invoked_records")]
    rows += [("events sent" if not s["dryRun"] else "events (dry run)", str(s["batches"])),
             ("elapsed s", str(s["elapsedS"])),
             ("status", status_words(s))]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k.ljust(width)}  {v}" for k, v in rows)


