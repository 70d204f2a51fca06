"""Backfill's pure rules: which listed objects are candidates, what an existing outcome means, and the
run options' bounds. No I/O."""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from permit_ocr import guards
from permit_ocr.config import Config
from permit_ocr.layout import KIND_ERROR, META_KIND
from permit_ocr.sinks import existing_outcome
from permit_ocr.storage import ObjectHead
from permit_ocr_local.fcruntime.context import Upload
from permit_ocr_local.standins.fc.rules import ASYNC_PAYLOAD_MAX

PAYLOAD_BUDGET = ASYNC_PAYLOAD_MAX - 4 * 1024  # headroom for the envelope and eventTime/ruleId variation
MAX_BATCH = 100  # records per event; the handler works them with WORKERS threads inside one invocation
# --rate bounds: below one event per 100 s a run never ends in practice (and 1e-300 overflows the limiter's
# wait); above 1000 events/s the limiter is no limit at all (FC's own API quota is far lower)
RATE_MIN, RATE_MAX = 0.01, 1000.0

# counters, in the order the summary prints them
COUNTERS = ("listed", "skipped_output", "skipped_not_image", "skipped_old", "skipped_done", "skipped_error",
            "skipped_permanent", "skipped_gone", "skipped_replaced", "skipped_superseded", "skipped_code",
            "skipped_duplicate", "skipped_held", "replayed_permanent", "invoked_records", "invoked_events")


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
    """A permanent error record of this very image version whose message is delivered: the function's verdict,
    which it keeps. One still pending (stored, its MNS message owed) is sent again: the function, as the claim
    holder, publishes what is owed (skipping it left the verdict unpublished for good: the chaos run found it)."""
    return error is not None and existing_outcome(error, etag) == "done" and error.metadata.get(
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




@dataclass(frozen=True)
class Item:
    """One listed thing: a candidate (``upload``) or a skip (``skip`` names the counter)."""

    cursor: str
    upload: Upload | None = None
    skip: str | None = None
    replay: bool = False  # send with the replay mark: the operator insists on a permanent verdict


def one_line(text: str, limit: int = 400) -> str:
    """An SDK's multi-line exception text as one line an operator can read."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit - 3] + "..."
