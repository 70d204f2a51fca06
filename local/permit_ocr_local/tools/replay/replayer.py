"""Replay's decisions: for an image named by an error record or a failed event, invoke it again or not."""

from __future__ import annotations

import datetime
import json
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from permit_ocr.config import Config
from permit_ocr.layout import META_REQUEST, etag_form, marker_key, outputs_for
from permit_ocr.ledger import CLOCK_SKEW_S, MAX_GENERATIONS, parse_holder
from permit_ocr.sinks import existing_outcome
from permit_ocr_local.fcruntime.context import Upload
from permit_ocr_local.tools.backfill.items import Head, Read
from permit_ocr_local.tools.backfill.oss import RecordGone
from permit_ocr_local.tools.backfill.rules import Item, Listed, replay_decision

from .failurelog import error_code, failure_log_events, log_cursor

MAX_CLAIM_WAIT_S = 900.0  # longer than any function timeout a sane s.yaml sets (FC allows up to 24 h)


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
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    say: Callable[[str], None] = lambda line: print(f"permit-ocr replay: {line}", file=sys.stderr, flush=True)
    max_wait_s: float = MAX_CLAIM_WAIT_S

    def held_until(self, bucket: str, key: str, etag: str, finished_by: str | None = None) -> float | None:
        """When the claim on this version expires, if an attempt still holds it (the function then answers a
        delivery ClaimHeld and FC's retries end on the failure topic: nothing replaced); None when free. A
        verdict's own claim is held for one call's worst case and the store budget after it was taken (a claim is
        live for the clock skew the function allows on top)."""
        holder = None
        for generation in range(MAX_GENERATIONS):
            try:
                raw = self.read(self.cfg.output_bucket_for(bucket), marker_key(bucket, key, etag, generation))
            except RecordGone:
                break
            holder = parse_holder(raw)
        now = self.clock()
        if holder is None or not holder.live(now) or (finished_by and holder.request_id == finished_by):
            return None  # free; or its holder stored this verdict and writes nothing more: a replay takes over
        return holder.expires_at + CLOCK_SKEW_S

    def _wait_for_claim(self, cursor: str, bucket: str, key: str, etag: str,
                        finished_by: str | None = None) -> Item | None:
        """Wait until the version's claim expires (at most ``max_wait_s``), saying so; an Item skip when longer."""
        until = self.held_until(bucket, key, etag, finished_by)
        if until is None:
            return None
        left = until - self.clock()
        at = datetime.datetime.fromtimestamp(until).strftime("%H:%M:%S")
        if left > self.max_wait_s:
            self.say(f"{key}: not sent: an attempt holds its claim until {at}; run again after that")
            return Item(cursor, skip="skipped_held")
        self.say(f"{key}: an attempt holds its claim until {at} (the verdict was written moments ago, or a "
                 f"delivery is running); waiting {left:.0f} s, else the function would answer ClaimHeld")
        self.sleep(max(0.0, left) + 1.0)
        return None

    def item(self, cursor: str, bucket: str, key: str, etag: str | None, code: str | None = None) -> Item:
        cfg = self.cfg
        out_bucket = cfg.output_bucket_for(bucket)
        current = self.head(bucket, key)
        if current is None or not current.etag:
            return Item(cursor, skip="skipped_gone")
        if etag and etag_form(current.etag) != etag_form(etag):
            return Item(cursor, skip="skipped_superseded")  # a newer upload has its own event
        ident = (bucket, key, current.etag)
        if ident in self.seen:
            return Item(cursor, skip="skipped_duplicate")
        out = outputs_for(cfg, bucket, key)
        result = self.head(out_bucket, out.result_key)
        error_key = out.error_key
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
        verdict = error if error is not None and existing_outcome(error, current.etag) == "done" else None
        writer = verdict.metadata.get(META_REQUEST) if verdict is not None else None
        held = self._wait_for_claim(cursor, bucket, key, etag_form(current.etag) or current.etag, writer)
        if held is not None:
            return held
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


