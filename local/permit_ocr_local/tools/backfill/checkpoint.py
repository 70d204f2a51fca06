"""The checkpoint: where a run stands, written atomically after each batch FC accepted, refused when it
belongs to another job."""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

CHECKPOINT_VERSION = 2  # 2: the checkpoint records the whole job (filters and target)




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
    cp.updated_at = utcnow()
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


def utcnow() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


