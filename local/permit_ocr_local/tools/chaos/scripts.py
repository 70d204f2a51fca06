"""What happens around each scripted kind of upload (docs/chaos.md, workload table): fault rules armed before it
is uploaded, world changes after, later actions on the scheduler, and the deliveries that follow once the first
wave is idle (sequential duplicates, stale events, 30 days later, a user's deletes, permissions tightened after
the result). Every action that opens a documented window records it in ``Windows``."""

from __future__ import annotations

import contextlib
import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from permit_ocr.budget import STORE_BUDGET_S
from permit_ocr.config import Config
from permit_ocr.layout import (
    KIND_ERROR_RETRYING,
    KIND_RECEIPT,
    KIND_RESULT,
    MARKERS_PREFIX,
    META_ETAG,
    META_KIND,
    META_PENDING,
    etag_form,
    key_digest,
    outputs_for,
)
from permit_ocr.ledger import CLOCK_SKEW_S, FRESH_VERSION_S
from permit_ocr_local.fcruntime.context import Upload, oss_event
from permit_ocr_local.standins.oss.errors import OssError
from permit_ocr_local.standins.oss.state import ObjectMeta, OssState

from .tap import Profile, Tap, Windows
from .workload import Item, Workload
from .world import Hold, World

EXPIRY_TIMEOUT_S = 21  # FC timeout of an expiry holder's invocation: its claim runs out during its publish
# the holder's publishes: two attempts held just under the MNS client's 10 s timeout and refused, a third held
# long past its claim, then published: the holder is still running when its claim has expired
EXPIRY_HOLDS = [Hold(9.5, 503), Hold(9.5, 503), Hold(9.0)]
DEADLINE = Profile("deadline", {"OCR_QPS": "2"}, timeout_s=25)  # many-record events near their FC deadline
LATER = Profile("later", clock_offset_s=31 * 86400)  # the markers' 30-day lifecycle rule has run


def fresh_event(bucket: str, key: str, etag: str, size: int | None = None) -> bytes:
    """A new delivery of an upload (FC's redelivery, replay): same record, new ruleId, so new bytes."""
    return json.dumps(oss_event([Upload(bucket, key, etag, size)]), ensure_ascii=False).encode()


@dataclass
class Saves:
    """The review page as a second writer: saves that landed, and refusals by reason."""

    landed: list[tuple[str, str, str, dict[str, str]]] = field(default_factory=list)  # bucket, key, etag, fields
    refused: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class Script:
    """The scripted kinds' actions. ``put`` uploads one version (the harness's client, never faulted)."""

    tap: Tap
    world: World
    workload: Workload
    cfg: Config
    windows: Windows
    bucket: str  # the deployment's bucket
    sinks: str
    put: Callable[[Item, int], bool]
    delete: Callable[[str, str], None]  # (bucket, key) through the OSS SDK, as a user does
    idle: Callable[[], bool]  # FC's queues are empty: nothing in flight will store an outcome soon
    seed: int = 0
    read_timeout_s: float = 10.0
    batch_profile: Profile = DEADLINE  # how the many-record events' instances are deployed
    saves: Saves = field(default_factory=Saves)
    destroyed: list[str] = field(default_factory=list)  # stored outcomes a refusal of the world replaced
    notes: Counter[str] = field(default_factory=Counter)
    upload_failures: list[str] = field(default_factory=list)
    review_queue: list[Item] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed + 17)
        self._lock = threading.Lock()
        self._batch_left = {g: len(items) for g, items in self.workload.batches.items()}
        self._lost_answer_rules: dict[tuple[str, str], int] = {}

    @property
    def state(self) -> OssState:
        return self.world.oss_state

    def bucket_of(self, item: Item) -> str:
        return item.bucket or self.bucket

    # -- before and after each upload -------------------------------------------------------------------------

    def before(self, item: Item) -> None:
        b, key, plan, mns = self.bucket_of(item), item.key, self.world.plan, "mns" in self.sinks
        if item.kind == "policy" and item.variant == "before":
            self.world.permissions.deny(b, key)
        elif item.kind == "brownout":  # every OSS request fails for seconds, from the moment OCR answered
            plan.add_rule({"service": "oss", "status": 503, "code": "ServiceUnavailable",
                           "for_s": round(self._rng.uniform(3, 10), 1), "start_on": {"service": "ocr", "key": key},
                           "note": "chaos: OSS brownout after a paid call"})
        elif item.kind == "longoutage":  # this image's OSS requests fail for longer than the store budget
            outage = STORE_BUDGET_S + 10
            for pattern in (f"*{key}*", f"{MARKERS_PREFIX}{key_digest(b, key)}/*"):
                plan.add_rule({"service": "oss", "key": pattern, "status": 503, "for_s": outage,
                               "start_on": {"service": "ocr", "key": key},
                               "note": "chaos: an outage longer than the claim's store budget"})
        elif item.kind == "lostanswer":  # OCR bills, then answers after our read timeout
            rule = plan.add_rule({"service": "ocr", "key": key, "at": "answer", "times": 1,
                                  "delay_s": self.read_timeout_s + 2, "note": "chaos: an answer that comes too late"})
            self._lost_answer_rules[(b, key)] = rule
        elif item.kind == "expiry" and mns:
            self.tap.short_timeout(b, key, EXPIRY_TIMEOUT_S)
            self.world.valve.script(b, key, list(EXPIRY_HOLDS), lambda n: self._expiry_held(item, n))
        elif item.kind == "slowpub" and mns:
            hold = Hold(round(self._rng.uniform(1, 6), 1))
            self.world.valve.script(b, key, [hold], lambda n: self._slowpub_held(item) if n == 0 else None)

    def put_options(self, item: Item) -> dict[str, Any]:
        if item.kind == "kms":  # one KMS key per image, so disabling it touches nothing else
            key_id = "chaos-kms-" + key_digest(self.bucket_of(item), item.key)[:12]
            return {"server_side_encryption": "KMS", "server_side_encryption_key_id": key_id}
        if item.kind == "archive":
            return {"storage_class": "Archive"}
        return {}

    def after(self, item: Item, version: int) -> None:
        b, key, w = self.bucket_of(item), item.key, self.world
        later = w.scheduler.at
        if item.kind == "policy" and item.variant == "before":
            later(self._rng.uniform(1, 8), lambda: w.permissions.allow(b, key))
        elif item.kind == "kms" and item.variant == "before":
            key_id = self.put_options(item)["server_side_encryption_key_id"]
            w.set_kms(key_id, self._rng.choice(("Disabled", "Forbidden")))
            later(self._rng.uniform(1, 8), lambda: w.set_kms(key_id, "Enabled"))
        elif item.kind == "archive":
            w.frozen(b, key)
            if self._rng.random() < 0.5:  # restored soon; the others when the world heals
                later(self._rng.uniform(2, 10), lambda: w.restore(b, key))
        elif item.kind == "handdelete":
            later(3.0, lambda: self._hand_delete(item))
        elif item.kind == "review" and version == 0:
            with self._lock:
                self.review_queue.append(item)
            if item.variant == "over":
                later(self._rng.uniform(0.3, 2.0), lambda: self._upload_next(item, 1))
        elif item.kind == "batch":
            with self._lock:
                self._batch_left[item.group] -= 1
                done = self._batch_left[item.group] == 0
            if done:
                self._send_batch(item.group)

    def _send_batch(self, group: int) -> None:
        records = [it for it in self.workload.batches[group] if it.etag]
        uploads = [Upload(self.bucket, it.key, it.etag, len(it.versions[-1])) for it in records]
        self.tap.deliver(json.dumps(oss_event(uploads), ensure_ascii=False).encode(), "batch", self.batch_profile)

    def _upload_next(self, item: Item, version: int) -> None:
        if len(item.etags) == version:
            self.put(item, version)

    # -- the scripted sequences -------------------------------------------------------------------------------

    def _slowpub_held(self, item: Item) -> None:
        """The first version's publish is held: upload the second version now (finding 1 of issue 21)."""
        if item.variant == "over":
            self.world.scheduler.at(0.3, lambda: self._upload_next(item, 1))

    def _expiry_held(self, item: Item, n: int) -> None:
        """The holder's third publish is held past its claim: once the claim has expired (and the clock skew
        others allow), deliver the event again, as FC's retry after the holder's timeout would."""
        b, key = self.bucket_of(item), item.key
        if n != 2 or not item.etags:
            return
        self.tap.short_timeout(b, key, None)  # the taker-over is an ordinary invocation
        etag = item.etags[0]
        expires = self._claim_expiry(b, key, etag)
        wait = (expires + CLOCK_SKEW_S + 1.0 - time.time()) if expires else EXPIRY_TIMEOUT_S
        self.world.scheduler.at(wait, lambda: self.tap.deliver(fresh_event(b, key, etag), "takeover"))

    def _claim_expiry(self, bucket: str, key: str, etag: str) -> float | None:
        out = self.cfg.output_bucket_for(bucket)
        with contextlib.suppress(OssError, ValueError, KeyError, orjson.JSONDecodeError):
            listing = self.state.list_v2(out, prefix=f"{MARKERS_PREFIX}{key_digest(bucket, key)}/{etag}.",
                                         max_keys=100)
            last = max(listing.objects, key=lambda m: int(m.key.rsplit(".", 1)[1]))
            return float(orjson.loads(self.state.get(out, last.key)[1])["expiresAt"])
        return None

    def _hand_delete(self, item: Item) -> None:
        """Once the version's outcome is stored, someone deletes its markers by hand and the event is delivered
        again. Within 10 minutes of the upload the function may pay again (window e); later it must not."""
        b, key, etag = self.bucket_of(item), item.key, item.etag
        if not etag:
            return
        if self.stored(item) != "final":
            if self.idle():
                self.notes["hand delete skipped (no outcome stored)"] += 1
            else:  # FC's queue may be minutes long: look again
                self.world.scheduler.at(3.0, lambda: self._hand_delete(item))
            return
        if not self._delete_markers(b, key, etag, by_hand=True):
            self.notes["hand delete found no marker"] += 1
        elif time.time() - item.uploaded_at[-1] < FRESH_VERSION_S:
            self.windows.add("e", b, key)
        else:
            self.notes["hand delete later than 10 minutes (no window)"] += 1
        self.tap.deliver(fresh_event(b, key, etag), "handdelete")

    def _delete_markers(self, bucket: str, key: str, etag: str, *, by_hand: bool) -> int:
        out = self.cfg.output_bucket_for(bucket)
        listing = self.state.list_v2(out, prefix=f"{MARKERS_PREFIX}{key_digest(bucket, key)}/{etag}.", max_keys=100)
        for m in listing.objects:
            if by_hand:
                self.delete(out, m.key)
            else:  # the lifecycle rule: OSS itself
                self.state.delete(out, m.key)
        return len(listing.objects)

    def stored(self, item: Item) -> str:
        """What the item's current version has stored: final | pending | retrying | none."""
        head = self.outcome_head(item)
        if head is None:
            return "none"
        if head.user_meta.get(META_PENDING):
            return "pending"
        return "retrying" if head.user_meta.get(META_KIND) == KIND_ERROR_RETRYING else "final"

    def outcome_head(self, item: Item) -> ObjectMeta | None:
        out = outputs_for(self.cfg, self.bucket_of(item), item.key)
        for k in (out.result_key, out.error_key):
            with contextlib.suppress(OssError):
                head = self.state.head(out.bucket, k)
                if item.etag and etag_form(head.user_meta.get(META_ETAG)) == item.etag:
                    return head
        return None

    # -- after the first wave: later deliveries and other writers ----------------------------------------------

    def after_idle(self) -> list[Callable[[], None]]:
        """Deliveries once the first wave is idle; returns the checks to run once these are idle too."""
        checks: list[Callable[[], None]] = []
        for item in self.workload.items:
            b = self.bucket_of(item)
            if item.kind in ("slowpub", "review") and item.variant == "over" and len(item.etags) == 1:
                self.put(item, 1)  # its overwrite never found the moment it waited for: upload it now
                self.notes[f"{item.kind}: overwrite uploaded late"] += 1
            if not item.etag:
                continue
            ev = self.tap.events.get((b, item.key, item.etag))
            if item.dup == "seq" and ev:
                self.tap.deliver(ev, "seq")
            if len(item.etags) > 1 and item.etags[0] != item.etag and (old := self.tap.events.get(
                    (b, item.key, item.etags[0]))):
                self.tap.deliver(old, "stale")
            if item.kind == "lifecycle":
                self._thirty_days_later(item)
            elif item.kind == "userdelete":
                self._user_deletes(item)
            elif item.kind in ("policy", "kms") and item.variant == "after":
                checks.append(self._refused_after_result(item))
        return checks

    def _thirty_days_later(self, item: Item) -> None:
        """The lifecycle rule expired the markers; a delivery 30 days on (replay, backfill) must find the outcome."""
        if self.stored(item) != "final":
            self.notes["lifecycle skipped (outcome not settled)"] += 1
            return
        b = self.bucket_of(item)
        assert item.etag
        self._delete_markers(b, item.key, item.etag, by_hand=False)
        self.tap.deliver(fresh_event(b, item.key, item.etag), "lifecycle", LATER)

    def _user_deletes(self, item: Item) -> None:
        """A user deletes the stored result on purpose; half are delivered again now, the rest are left to the
        end stage's backfill. The next delivery pays again (window d)."""
        head = self.outcome_head(item)
        if head is None or head.user_meta.get(META_KIND) not in (KIND_RESULT, KIND_RECEIPT):
            self.notes["user delete skipped (no result stored)"] += 1
            return
        b = self.bucket_of(item)
        self.delete(outputs_for(self.cfg, b, item.key).bucket, head.key)
        self.windows.add("d", b, item.key)
        if self._rng.random() < 0.5:
            assert item.etag
            self.tap.deliver(fresh_event(b, item.key, item.etag), "userdelete")

    def _refused_after_result(self, item: Item) -> Callable[[], None]:
        """A result is stored; then the role may no longer read the image (a policy, a KMS key) and the event is
        delivered again. The stored outcome must stay. Returns the check and the lift, for after the redelivery."""
        b, key, w = self.bucket_of(item), item.key, self.world
        before = self.outcome_head(item)
        key_id = self.put_options(item).get("server_side_encryption_key_id", "")
        if item.kind == "policy":
            w.permissions.deny(b, key)
        else:
            w.set_kms(key_id, self._rng.choice(("Disabled", "Forbidden")))
        assert item.etag
        self.tap.deliver(fresh_event(b, key, item.etag), "refused")

        def check() -> None:
            after = self.outcome_head(item)
            if before is not None and before.user_meta.get(META_KIND) != KIND_ERROR_RETRYING and (
                    after is None or after.key != before.key):
                self.destroyed.append(f"{item.kind} {key!r}: {before.key} replaced by "
                                      f"{after.key if after else 'nothing'}")
            if item.kind == "policy":
                w.permissions.allow(b, key)
            else:
                w.set_kms(key_id, "Enabled")

        return check

    def lost_answers(self) -> None:
        """Window (c): each lost-answer rule that hit a call the service billed."""
        for (b, key), rule in self._lost_answer_rules.items():
            hits = self.world.plan.hits(rule)
            if hits:
                self.windows.add("c", b, key, hits)
