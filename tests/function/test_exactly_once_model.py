"""Model-based test of the exactly-once promise: the real handler, the real SDKs, the stand-ins over HTTP.

Hypothesis drives sequences of uploads, overwrites, deletes, re-uploads of the same bytes, duplicate / stale /
concurrent / raw-vs-encoded-key deliveries, FC retries with the same request id (also while the first
attempt still runs), a crash between any two requests of an invocation (the instance dies there: no cleanup,
its claim left behind), OCR/OSS/MNS faults and the passing of time — and a world with time and other writers:
slow publishes (time passing while one hangs, past its claim), OSS brownouts right after the paid call,
permissions that deny reading an image for a while, the lifecycle rule (or a hand) deleting markers, a user
deleting outputs, a second source bucket sharing the output bucket, and the review page saving results. After
every step it checks:

- at most one outcome per key describes the current version, and every output names a version of its key;
- an output slot never goes back to an older version than the one it held (no late write of a stale run);
- a stored final outcome of the current version stays (no 403, setting or stale run deletes it), and a saved
  review stays on it;
- paid OCR calls <= uploads, per key, plus only the documented windows, each counted: a crash between the paid
  answer and its stored document, an answer kept in an instance's memory through an OSS outage whose next
  attempt ran elsewhere, a marker deleted by hand, an outcome deleted by a user (the outcome is the done record);
and at the end, after FC has retried everything it would and a backfill has sent what lacks an outcome (faults
off, permissions back, claims expired), that every current version has exactly one outcome, for its own content
(with SINKS=mns alone: the message published for it), and nothing is pending.

`make test` runs 10 sequences of 25 steps per configuration, the same ones every time. To explore further,
set PERMIT_OCR_MODEL_RANDOM=1 and PERMIT_OCR_MODEL_EXAMPLES=100 (docs/testing.md).
"""

from __future__ import annotations

import datetime
import hashlib
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

import permit_ocr.fence as fence_module
import permit_ocr.sinks as sinks_module
from permit_ocr.config import load_config
from permit_ocr.credentials import resolve
from permit_ocr.errors import StepError
from permit_ocr.handler import App, RetryLater
from permit_ocr.layout import (
    KIND_ERROR_RETRYING,
    KIND_RECEIPT,
    MARKERS_PREFIX,
    META_ETAG,
    META_KIND,
    META_PENDING,
    key_digest,
    outputs_for,
)
from permit_ocr_local.fcruntime.context import FcContext, FunctionMeta
from permit_ocr_local.fcruntime.crash import Crash, CrashAt
from permit_ocr_local.fcruntime.enginefn import EngineService, serve_engine
from permit_ocr_local.fcruntime.stack import DEFAULT_BUCKET, LocalStack, StackOptions
from permit_ocr_local.standins.faults import FaultPlan
from permit_ocr_local.standins.http import Request, Response
from permit_ocr_local.tools.review import rules as review_rules
from permit_ocr_local.tools.review.store import Refused, ReviewStore
from support import SAMPLE_TRUTH, Gate, permit_image

EXAMPLES = int(os.environ.get("PERMIT_OCR_MODEL_EXAMPLES", "10"))
STEPS = int(os.environ.get("PERMIT_OCR_MODEL_STEPS", "25"))
OTHER_BUCKET, SHARED_BUCKET = "permit-ocr-other", "permit-ocr-shared"
Key = tuple[str, str]  # (bucket, key)
ONE_BUCKET: tuple[Key, ...] = ((DEFAULT_BUCKET, "a.png"), (DEFAULT_BUCKET, "b c+d.png"))  # raw and encoded forms
TWO_BUCKETS: tuple[Key, ...] = ((DEFAULT_BUCKET, "a.png"), (OTHER_BUCKET, "a.png"))  # the same key in two buckets
FUNCTION_TIMEOUT_S = 300
# a held OCR call waits at most 30 s in the gate: the client must not give up first (a call our side abandons while
# the service completes it is billed twice — a documented window this model does not play)
READ_TIMEOUT_MS = "60000"
LIFECYCLE_DAYS = 31


@dataclass
class Version:
    key: Key
    etag: str
    sha: str
    permit_number: str


@dataclass
class Event:
    version: Version
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    owed: bool = True  # never delivered, or its last delivery failed: FC will deliver it (again)


class HeldPublishes:
    """The MNS stand-in: publishes whose body names ``number`` wait while ``hold`` is set (a slow publish)."""

    name = "mns"

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.number: str | None = None
        self.release = threading.Event()
        self.entered = threading.Event()

    def handle(self, request: Request) -> Response:
        number = self.number
        if number and request.method == "POST" and number.encode() in request.body:
            self.entered.set()
            self.release.wait(30)
        return self.inner.handle(request)  # type: ignore[no-any-return]


@dataclass
class World:
    stack: LocalStack
    gate: Gate
    publishes: HeldPublishes
    faults: FaultPlan
    engine: EngineService  # the engine function (truth recognizer), for the cascade configuration
    clock: list[float] = field(default_factory=lambda: [time.time()])  # versions are "fresh" by OSS's clock
    examples: Iterator[int] = field(default_factory=lambda: iter(range(10**9)))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    faults = FaultPlan(seed=7)
    buckets = (DEFAULT_BUCKET, OTHER_BUCKET, SHARED_BUCKET)
    with LocalStack(StackOptions(root=tmp_path_factory.mktemp("model"), faults=faults, buckets=buckets)) as stack:
        assert stack.ocr is not None and stack.mns is not None
        gate = Gate(stack.ocr.service.backend)
        stack.ocr.service.backend = gate
        publishes = HeldPublishes(stack.mns._httpd.service)
        stack.mns._httpd.service = publishes  # type: ignore[assignment]
        engine = serve_engine(stack.keyring, "truth", faults=stack.faults)
        yield World(stack, gate, publishes, stack.faults, engine)
        engine.stop()


def flagged() -> dict[str, str]:
    """A permit the result flags for review (an expired validity period), so the review page has work."""
    return dict(SAMPLE_TRUTH)


class ExactlyOnce(RuleBasedStateMachine):
    world: World
    env: dict[str, str]
    keys: tuple[Key, ...]

    def __init__(self) -> None:
        super().__init__()
        w = self.world
        self.prefix = f"m{next(w.examples)}/"
        self.state = w.stack.oss.service.state  # type: ignore[union-attr]
        self.cfg = load_config(self.env)
        self.apps = [self._app() for _ in range(2)]  # two FC instances
        self.versions: dict[Key, list[Version]] = {k: [] for k in self.keys}
        self.current: dict[Key, Version | None] = dict.fromkeys(self.keys)
        self.events: list[Event] = []
        self.uploads_by_key: Counter[Key] = Counter()
        # the documented windows in which a version may be paid for again, counted as they open
        self.crash_window: Counter[Key] = Counter()  # died between a paid answer and the stored document
        self.memory_window: Counter[Key] = Counter()  # answer kept in one instance's memory through an outage
        self.marker_window: Counter[Key] = Counter()  # a marker deleted by hand
        self.user_window: Counter[Key] = Counter()  # an outcome deleted by a user: the version is undone
        self.slot_rank: dict[tuple[Key, str], int] = {}
        self.final_seen: dict[Key, str] = {}  # key -> the current version's stored final outcome was seen
        self.reviewed: dict[Key, tuple[str, str]] = {}  # key -> (version ETag, reviewer) of a landed save
        self.denied: set[Key] = set()
        self.slow: tuple[Event, threading.Thread, threading.Event, str] | None = None
        self.serial = 0
        self.trace: list[str] = []  # what happened, for a failure's message (shrinking cannot replay timing)
        self.billed_before = w.stack.ocr.service.billed_by_image()  # type: ignore[union-attr]
        w.faults.rates.clear()
        w.faults.clear_rules()

    def _app(self) -> App:
        return App(self.cfg, environ=self.env, clock=lambda: self.world.clock[0])

    def _object(self, k: Key) -> tuple[str, str]:
        return k[0], self.prefix + k[1]

    # -- the world's moves ----------------------------------------------------------------------------------

    @rule(i=st.integers(0, 1), again=st.booleans())
    def upload(self, i: int, again: bool) -> None:
        """A new version of the key; ``again``: the bytes of its first version (same ETag, a new upload)."""
        self._note(f"upload({i!r}, {again!r})")
        k = self.keys[i]
        if again and self.versions[k]:
            old = self.versions[k][0]
            data = self.state.get(DEFAULT_BUCKET, self.prefix + "bytes/" + old.sha)[1]
            number = old.permit_number
        else:
            self.serial += 1
            number = f"H{self.serial:08d}01"
            data = permit_image({**flagged(), "permitNumber": number, "nameEn": f"KEY,{k[1].upper()[:1]}",
                                 **DOUBTED.get(self.env.get("OCR_BACKEND", "api"), {})})
            self.state.put(DEFAULT_BUCKET, self.prefix + "bytes/" + hashlib.sha256(data).hexdigest(), data)
        meta = self.state.put(*self._object(k), data)
        v = Version(k, meta.etag, hashlib.sha256(data).hexdigest(), number)
        self.versions[k].append(v)
        self.current[k] = v
        self.final_seen.pop(k, None)
        self.uploads_by_key[k] += 1
        self.events.append(Event(v))
        self._note(f"  -> {k[1]}@{v.etag[:6]} ({number})")

    @rule(i=st.integers(0, 1))
    def delete(self, i: int) -> None:
        self._note(f"delete({i!r})")
        k = self.keys[i]
        self.state.delete(*self._object(k))
        self.current[k] = None
        self.final_seen.pop(k, None)

    @precondition(lambda self: self.events)
    @rule(i=st.integers(0, 63), form=st.sampled_from(["plain", "encoded", "no-etag", "lying-size", "duplicate"]),
          instance=st.integers(0, 1))
    def deliver(self, i: int, form: str, instance: int) -> None:
        """FC delivers an event (or OSS notifies the same upload again, under another request id)."""
        self._note(f"deliver({i!r}, {form!r}, {instance!r})")
        ev = self.events[i % len(self.events)]
        self._invoke(self.apps[instance], ev, form)

    @precondition(lambda self: self.events)
    @rule(i=st.integers(0, 63), j=st.integers(0, 63), form=st.sampled_from(["plain", "encoded", "duplicate"]))
    def deliver_concurrently(self, i: int, j: int, form: str) -> None:
        """Two instances at once: the same event twice, two forms of one key, or two versions."""
        self._note(f"deliver_concurrently({i!r}, {j!r}, {form!r})")
        a, b = self.events[i % len(self.events)], self.events[j % len(self.events)]
        threads = [threading.Thread(target=self._invoke, args=(self.apps[0], a, "plain")),
                   threading.Thread(target=self._invoke, args=(self.apps[1], b, form))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)

    @precondition(lambda self: self.events)
    @rule(i=st.integers(0, 63), n=st.integers(1, 9), after=st.booleans())
    def deliver_and_crash(self, i: int, n: int, after: bool) -> None:
        """A fresh instance dies before (or after) its n-th request; FC retries the event later."""
        self._note(f"deliver_and_crash({i!r}, {n!r}, {after!r})")
        ev = self.events[i % len(self.events)]
        app = self._app()
        crash = CrashAt(n, after)
        crash.install(app)
        self._invoke(app, ev, "plain")
        if crash.paid_then_died:  # the answer is lost with the instance: the retry pays again
            self.crash_window[ev.version.key] += 1

    @precondition(lambda self: self.events and self.slow is None)
    @rule(i=st.integers(0, 63))
    def start_slow_delivery(self, i: int) -> None:
        """A delivery whose OCR call hangs; other steps run meanwhile."""
        self._note(f"start_slow_delivery({i!r})")
        ev = self.events[i % len(self.events)]
        sha = ev.version.sha
        release, entered = threading.Event(), threading.Event()
        self.world.gate.hold[sha], self.world.gate.entered[sha] = release, entered
        self._start_slow(ev, release, entered, "ocr")

    @precondition(lambda self: self.events and self.slow is None and "mns" in self.cfg.sinks)
    @rule(i=st.integers(0, 63))
    def start_slow_publish(self, i: int) -> None:
        """A delivery whose publish hangs (an MNS brownout): its document is stored, its message owed."""
        self._note(f"start_slow_publish({i!r})")
        ev = self.events[i % len(self.events)]
        held = self.world.publishes
        held.release.clear()
        held.entered.clear()
        held.number = ev.version.permit_number
        self._start_slow(ev, held.release, held.entered, "mns")

    @precondition(lambda self: self.slow is not None)
    @rule()
    def finish_slow_delivery(self) -> None:
        self._note("finish_slow_delivery()")
        self._finish_slow()

    @precondition(lambda self: self.slow is not None)
    @rule(instance=st.integers(0, 1))
    def fc_retries_while_first_attempt_runs(self, instance: int) -> None:
        self._note(f"fc_retries_while_first_attempt_runs({instance!r})")
        assert self.slow is not None
        self._invoke(self.apps[instance], self.slow[0], "plain")

    @rule()
    def time_passes(self) -> None:
        """Longer than any claim lives: every attempt still running by now was killed by FC."""
        self._note("time_passes()")
        if self.slow is None:
            self.world.clock[0] += 10 * FUNCTION_TIMEOUT_S

    @precondition(lambda self: self.slow is not None and self.slow[3] == "mns")
    @rule()
    def time_passes_while_a_publish_hangs(self) -> None:
        """The publish outlives its holder's claim: the holder must not settle after that, and whoever takes over
        re-publishes the stored document, never paying again (an OCR call cannot outlive its claim: its worst case
        is within the claim, so time passes this way only while publishing)."""
        self._note("time_passes_while_a_publish_hangs()")
        self.world.clock[0] += 10 * FUNCTION_TIMEOUT_S

    @rule(service=st.sampled_from(["oss", "ocr", "mns"]), on=st.booleans())
    def fault(self, service: str, on: bool) -> None:
        self._note(f"fault({service!r}, {on!r})")
        if not on:
            self.world.faults.rates.pop(service, None)
        elif service == "oss":
            self.world.faults.set("oss", server_error=0.25)  # the SDK's own retries hide most of them
        else:
            self.world.faults.set(service, server_error=1.0)  # an outage

    @precondition(lambda self: self.events)
    @rule(i=st.integers(0, 63), instance=st.integers(0, 1))
    def oss_brownout_right_after_the_paid_call(self, i: int, instance: int) -> None:
        """OSS is down for a second from the moment OCR answers: longer than the store budget (the model shortens
        the fence's retries), so the answer stays in the instance's memory for its next attempt."""
        self._note(f"oss_brownout_right_after_the_paid_call({i!r}, {instance!r})")
        ev = self.events[i % len(self.events)]
        app = self.apps[instance]
        faults = self.world.faults
        rule_id = faults.add_rule({"service": "oss", "status": 503, "code": "ServiceUnavailable", "for_s": 1.0,
                                   "start_on": {"service": "ocr"}}, first=True)
        try:
            self._invoke(app, ev, "plain")  # counts the answer kept in memory, if it was
        finally:
            faults.remove_rule(rule_id)

    @rule(i=st.integers(0, 1), deny=st.booleans())
    def permission_changes(self, i: int, deny: bool) -> None:
        """A tightened policy (or a disabled KMS key, an Archive object) denies reading the image, or lifts."""
        self._note(f"permission_changes({i!r}, {deny!r})")
        k = self.keys[i]
        (self.denied.add if deny else self.denied.discard)(k)
        self._apply_policy()

    @precondition(lambda self: self.slow is None or self.slow[3] == "mns")  # a month never passes inside a call
    @rule()
    def lifecycle_expires_the_markers(self) -> None:
        """The 30-day lifecycle rule: every marker is gone, and the versions are a month old."""
        self._note("lifecycle_expires_the_markers()")
        self.world.clock[0] += LIFECYCLE_DAYS * 86400
        for k in self.keys:
            self._delete_markers(k)

    @rule(i=st.integers(0, 1))
    def a_hand_deletes_markers(self, i: int) -> None:
        """Somebody cleans up .permit-ocr/ by hand, minutes after an upload: a documented window."""
        self._note(f"a_hand_deletes_markers({i!r})")
        k = self.keys[i]
        if self._delete_markers(k):
            self.marker_window[k] += 1

    @rule(i=st.integers(0, 1))
    def a_user_deletes_the_outputs(self, i: int) -> None:
        """The outcome is the done record: deleting it undoes the version (the next delivery recognizes it)."""
        self._note(f"a_user_deletes_the_outputs({i!r})")
        k = self.keys[i]
        out = outputs_for(self.cfg, *self._object(k))
        for slot in (out.result_key, out.error_key):
            self.state.delete(out.bucket, slot)
            self.slot_rank.pop((k, slot), None)
        self.final_seen.pop(k, None)
        self.reviewed.pop(k, None)
        self.user_window[k] += 1
        for ev in self.events:
            if ev.version.key == k:
                ev.owed = True  # a backfill (or replay) sends the image again

    @rule(i=st.integers(0, 1))
    def a_reviewer_saves_the_result(self, i: int) -> None:
        """The review page as a second writer: it saves the current result, or is refused."""
        self._note(f"a_reviewer_saves_the_result({i!r})")
        k = self.keys[i]
        cur = self.current[k]
        if cur is None:
            return
        store = ReviewStore(self.cfg, lambda: resolve(self.env), k[0], self.prefix,
                            now=lambda: datetime.datetime.fromtimestamp(self.world.clock[0], datetime.UTC))
        out = outputs_for(self.cfg, *self._object(k))
        try:
            item = store.load(out.result_key)
            if item is None or item.source_etag != cur.etag or not review_rules.needs_review(item.doc):
                return
            reviewer = f"Reviewer {self.serial}"
            store.save(item.result_key, item.result_etag, reviewer, review_rules.fields_of(item.doc))
        except (Refused, StepError):
            return
        self.reviewed[k] = (cur.etag, reviewer)

    # -- invariants -----------------------------------------------------------------------------------------

    @invariant()
    def at_most_one_current_outcome_and_never_an_older_one(self) -> None:
        for k in self.keys:
            slots = self._slots(k)
            cur = self.current[k]
            labels = [meta[META_ETAG] for meta in slots.values() if meta is not None]
            known = {v.etag for v in self.versions[k]}
            assert all(e in known for e in labels), f"{k}: an output names an ETag never uploaded: {labels}"
            if cur is not None and self.slow is None:
                assert labels.count(cur.etag) <= 1, f"{k}: two outcomes for the current version"
            for slot, meta in slots.items():
                if meta is None:
                    continue
                rank = max(i for i, v in enumerate(self.versions[k]) if v.etag == meta[META_ETAG])
                assert rank >= self.slot_rank.get((k, slot), -1), f"{k} {slot}: went back to an older version"
                self.slot_rank[(k, slot)] = rank

    @invariant()
    def a_stored_final_outcome_of_the_current_version_stays(self) -> None:
        """No 403, no setting, no stale run and no re-publish removes or replaces it (a review may rewrite it)."""
        for k in self.keys:
            cur = self.current[k]
            if cur is None:
                continue
            mine = {s: m for s, m in self._slots(k).items()
                    if m and m[META_ETAG] == cur.etag and m[META_KIND] != KIND_ERROR_RETRYING}
            if self.final_seen.get(k) == cur.etag:
                assert mine, f"{k}: the current version's stored outcome disappeared"
            if mine:
                self.final_seen[k] = cur.etag
            reviewed = self.reviewed.get(k)
            if reviewed and reviewed[0] == cur.etag and "oss" in self.cfg.sinks:
                out = outputs_for(self.cfg, *self._object(k))
                doc = orjson.loads(self.state.get(out.bucket, out.result_key)[1])
                assert (doc.get("review") or {}).get("reviewer") == reviewed[1], f"{k}: a saved review was lost"

    @invariant()
    def no_version_billed_twice(self) -> None:
        """Per key, paid calls <= uploads + the documented windows. Per key, not per content: in url mode an
        older version's call may read the newer bytes (its result is then discarded)."""
        billed = self._billed()
        for k in self.keys:
            paid = sum(billed[sha] for sha in {v.sha for v in self.versions[k]})
            allowed = (self.uploads_by_key[k] + self.crash_window[k] + self.memory_window[k]
                       + self.marker_window[k] + self.user_window[k])
            assert paid <= allowed, (f"{k}: {paid} paid calls for {self.uploads_by_key[k]} upload(s) and "
                                     f"{allowed - self.uploads_by_key[k]} documented window(s):\n"
                                     + "\n".join(self.trace[-80:]))

    def teardown(self) -> None:
        try:
            self._drain_and_check()
        finally:
            self.world.faults.rates.clear()
            self.world.faults.clear_rules()
            self.denied.clear()
            self._apply_policy()
            if self.slow is not None:
                self._finish_slow()

    # -- the end state --------------------------------------------------------------------------------------

    def _drain_and_check(self) -> None:
        if self.slow is not None:
            self._finish_slow()
        self.world.faults.rates.clear()
        self.denied.clear()
        self._apply_policy()
        for _ in range(4):  # FC's retries (and a backfill of what a user deleted), further apart than claims live
            self.world.clock[0] += 10 * FUNCTION_TIMEOUT_S
            owed = [e for e in self.events if e.owed] or self._backfill()
            if not owed:
                break
            for ev in owed:
                self._invoke(self.apps[0], ev, "plain")
        assert not [e for e in self.events if e.owed], "events still failing with every fault off"
        for k in self.keys:
            cur = self.current[k]
            slots = self._slots(k)
            for meta in slots.values():
                assert meta is None or not meta.get(META_PENDING), f"{k}: a message is still owed"
            if cur is None:
                continue
            mine = {slot: meta for slot, meta in slots.items() if meta and meta[META_ETAG] == cur.etag}
            assert len(mine) == 1, f"{k}: {len(mine)} outcomes for the current version ({slots})"
            slot, meta = next(iter(mine.items()))
            assert meta[META_KIND] != KIND_ERROR_RETRYING, f"{k}: ended on a transient record"
            doc = orjson.loads(self.state.get(self.cfg.output_bucket_for(k[0]), slot)[1])
            if doc.get("type") == "result":
                assert doc["data"]["data"]["permitNumber"] == cur.permit_number, f"{k}: another version's content"
            elif meta[META_KIND] == KIND_RECEIPT:  # SINKS=mns alone: the content is what was published
                sent = [m for m in self._published() if m.get("type") == "result"
                        and str(m["source"]["etag"]).upper() == cur.etag.upper()]
                assert sent and sent[-1]["data"]["data"]["permitNumber"] == cur.permit_number, \
                    f"{k}: the message for the current version carries another version's content"
            else:
                pytest.fail(f"{k}: ended on an error record {doc['error']['code']} with every fault off")
        self.no_version_billed_twice()

    # -- plumbing -------------------------------------------------------------------------------------------

    def _invoke(self, app: App, ev: Event, form: str) -> None:
        bucket, key = self._object(ev.version.key)
        record_key, etag, size = key, ev.version.etag, None
        request_id = ev.request_id
        if form == "encoded":
            record_key = quote(key, safe="/")
        elif form == "no-etag":
            etag = None
        elif form == "lying-size":
            size = 50_000_000
        elif form == "duplicate":
            request_id = str(uuid.uuid4())
        event = {"events": [{"eventName": "ObjectCreated:PutObject", "region": "cn-hangzhou",
                             "oss": {"bucket": {"name": bucket},
                                     "object": {"key": record_key, "eTag": etag, "size": size}}}]}
        ctx = FcContext(request_id=request_id, function=FunctionMeta(timeout=FUNCTION_TIMEOUT_S))
        before = sum(self._billed().values())
        who = f"app{self.apps.index(app)}" if app in self.apps else f"app@{id(app) % 1000}"
        kept = len(app.unsaved)
        try:
            out = app.handle(orjson.dumps(event), ctx)
        except (RetryLater, Crash) as exc:
            if len(app.unsaved) > kept:  # OSS would not take the answer: an attempt elsewhere pays again
                self.memory_window[ev.version.key] += 1
            ev.owed = True  # FC retries a failed invocation, same request id
            got = [(o["status"], o["code"]) for o in exc.summary["outcomes"]] if isinstance(exc, RetryLater) \
                else "crash"
            self._note(f"  {who} {ev.version.key[1]}@{ev.version.etag[:6]} {form}: {got}", before)
            return
        if form != "duplicate":
            ev.owed = False
        self._note(f"  {who} {ev.version.key[1]}@{ev.version.etag[:6]} {form}: "
                   f"{[(o['status'], o['code']) for o in out['outcomes']]}", before)

    def _note(self, what: str, billed_before: int | None = None) -> None:
        paid = sum(self._billed().values()) - billed_before if billed_before is not None else 0
        self.trace.append(what + (f"  [+{paid} paid]" if paid else ""))

    def _backfill(self) -> list[Event]:
        """What `permit-ocr backfill` sends once FC is done: current versions without a final outcome, or whose
        stored outcome still owes its message (a reviewer's save whose publish failed, say)."""
        sent = []
        for k in self.keys:
            cur = self.current[k]
            if cur is None:
                continue
            mine = [m for m in self._slots(k).values() if m and m[META_ETAG] == cur.etag]
            if not mine or any(m.get(META_PENDING) or m[META_KIND] == KIND_ERROR_RETRYING for m in mine):
                ev = Event(cur)
                self.events.append(ev)
                sent.append(ev)
        self._note(f"backfill({[e.version.key[1] for e in sent]})")
        return sent

    def _start_slow(self, ev: Event, release: threading.Event, entered: threading.Event, kind: str) -> None:
        thread = threading.Thread(target=self._invoke, args=(self._app(), ev, "plain"))
        thread.start()
        while not entered.is_set() and thread.is_alive():
            entered.wait(0.05)
        self.slow = (ev, thread, release, kind)

    def _finish_slow(self) -> None:
        assert self.slow is not None
        _ev, thread, release, _kind = self.slow
        release.set()
        thread.join(60)
        assert not thread.is_alive(), "the slow delivery never finished"
        self.world.gate.hold.clear()
        self.world.gate.entered.clear()
        self.world.publishes.number = None
        self.slow = None

    def _apply_policy(self) -> None:
        stack = self.world.stack
        if not self.denied:
            stack.keyring.set_policy(stack.access_key_id, None)
            return
        stack.keyring.set_policy(stack.access_key_id, {"Version": "1", "Statement": [
            {"Effect": "Allow", "Action": "*", "Resource": "*"},
            *({"Effect": "Deny", "Action": "oss:GetObject", "Resource": f"acs:oss:*:*:{b}/{k}"}
              for b, k in map(self._object, sorted(self.denied)))]})

    def _delete_markers(self, k: Key) -> bool:
        bucket, key = self._object(k)
        folder = f"{MARKERS_PREFIX}{key_digest(bucket, key)}/"
        out_bucket = self.cfg.output_bucket_for(bucket)
        listed = [o.key for o in self.state.list_v2(out_bucket, prefix=folder, max_keys=1000).objects]
        for mkey in listed:
            self.state.delete(out_bucket, mkey)
        return bool(listed)

    def _slots(self, k: Key) -> dict[str, dict[str, str] | None]:
        out = outputs_for(self.cfg, *self._object(k))
        found: dict[str, dict[str, str] | None] = {}
        for slot in (out.result_key, out.error_key):
            try:
                found[slot] = dict(self.state.head(out.bucket, slot).user_meta)
            except Exception:
                found[slot] = None
        return found

    def _published(self) -> list[dict[str, Any]]:
        mns = self.world.stack.mns
        assert mns is not None
        return [orjson.loads(m.body) for m in mns.state.messages(self.world.stack.options.topic)]

    def _billed(self) -> Counter[str]:
        now = self.world.stack.ocr.service.billed_by_image()  # type: ignore[union-attr]
        mine = {v.sha for vs in self.versions.values() for v in vs}
        return Counter({sha: n - self.billed_before.get(sha, 0) for sha, n in now.items()
                        if sha in mine and n > self.billed_before.get(sha, 0)})


# a cascade pays for what its engine doubts: every upload of that configuration is doubted, so both calls run
DOUBTED = {"cascade": {"engine": {"valueProb": {"nameCn": 40}}}}
CONFIGS = {
    "oss-beside-url": ({"SINKS": "oss"}, ONE_BUCKET),
    "cascade-oss-body": ({"SINKS": "oss", "IMAGE_SOURCE": "body", "OCR_BACKEND": "cascade",
                          "ENGINE_TIMEOUT_MS": "5000"}, ONE_BUCKET),
    "mns-only-body": ({"SINKS": "mns", "IMAGE_SOURCE": "body"}, ONE_BUCKET),
    "oss+mns-prefixed-url": ({"SINKS": "oss,mns", "OUTPUT_PREFIX": "out/"}, ONE_BUCKET),
    "two-buckets-one-output": ({"SINKS": "oss,mns", "SOURCE_BUCKETS": f"{DEFAULT_BUCKET},{OTHER_BUCKET}",
                                "OUTPUT_BUCKET": SHARED_BUCKET, "OUTPUT_PREFIX": "out/{bucket}/"}, TWO_BUCKETS),
}


@pytest.mark.slow
@pytest.mark.parametrize("config", list(CONFIGS))
def test_every_current_version_ends_with_exactly_one_outcome_paid_once(
        world: World, config: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(fence_module, "MAX_WRITE_TRIES", 2)  # faults reach the failure paths, and stay quick
    monkeypatch.setattr(sinks_module, "PUBLISH_ATTEMPTS", 1)
    extra, keys = CONFIGS[config]
    env = {**world.stack.env(), **world.engine.env(), "SOURCE_BUCKETS": DEFAULT_BUCKET, "OCR_MAX_ATTEMPTS": "1",
           "WORKERS": "1", "OCR_READ_TIMEOUT_MS": READ_TIMEOUT_MS, **extra}
    machine = type("Model", (ExactlyOnce,), {"world": world, "env": env, "keys": keys})
    run_state_machine_as_test(machine, settings=settings(
        max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None, database=None,
        derandomize=os.environ.get("PERMIT_OCR_MODEL_RANDOM") != "1",  # CI: the same sequences every run
        suppress_health_check=list(HealthCheck),
        phases=[p for p in Phase if p is not Phase.shrink or os.environ.get("PERMIT_OCR_MODEL_SHRINK", "1") == "1"]))
