"""Model-based test of the exactly-once promise: the real handler, the real SDKs, the stand-ins over HTTP.

Hypothesis drives sequences of uploads, overwrites, deletes, re-uploads of the same bytes, duplicate / stale /
concurrent / raw-vs-encoded-key deliveries, FC retries with the same request id (also while the first
attempt still runs), a crash between any two requests of an invocation (the instance dies there: no cleanup,
its claim left behind), OCR/OSS/MNS faults and the passing of time. After every step it checks:

- at most one outcome per key describes the current version, and every output names a version of its key;
- an output slot never goes back to an older version than the one it held (no late write of a stale run);
- paid OCR calls <= uploads, per image content (no version billed twice);
and at the end, after FC has retried everything it would (faults off, claims expired), that every current
version has exactly one outcome, for its own content, and nothing is pending.

`make test` runs 10 sequences of 25 steps per configuration, the same ones every time. To explore further,
set PERMIT_OCR_MODEL_RANDOM=1 and PERMIT_OCR_MODEL_EXAMPLES=100 (docs/testing.md).
"""

from __future__ import annotations

import hashlib
import os
import threading
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

import permit_ocr.sinks as sinks_module
from permit_ocr.config import load_config
from permit_ocr.handler import App, RetryLater
from permit_ocr.layout import KIND_ERROR_RETRYING, KIND_RECEIPT, META_ETAG, META_KIND, META_PENDING, outputs_for
from permit_ocr_local.fcruntime.context import FcContext, FunctionMeta
from permit_ocr_local.fcruntime.crash import Crash, CrashAt
from permit_ocr_local.fcruntime.stack import DEFAULT_BUCKET, LocalStack, StackOptions
from permit_ocr_local.standins.faults import FaultPlan
from support import SAMPLE_TRUTH, Gate, permit_image

EXAMPLES = int(os.environ.get("PERMIT_OCR_MODEL_EXAMPLES", "10"))
STEPS = int(os.environ.get("PERMIT_OCR_MODEL_STEPS", "25"))
KEYS = ("a.png", "b c+d.png")  # the second has a raw and an encoded form
FUNCTION_TIMEOUT_S = 30


@dataclass
class Version:
    key: str
    etag: str
    sha: str
    permit_number: str


@dataclass
class Event:
    version: Version
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    owed: bool = True  # never delivered, or its last delivery failed: FC will deliver it (again)


@dataclass
class World:
    stack: LocalStack
    gate: Gate
    faults: FaultPlan
    clock: list[float] = field(default_factory=lambda: [1_000_000.0])
    examples: Iterator[int] = field(default_factory=lambda: iter(range(10**9)))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    faults = FaultPlan(seed=7)
    with LocalStack(StackOptions(root=tmp_path_factory.mktemp("model"), faults=faults)) as stack:
        assert stack.ocr is not None
        gate = Gate(stack.ocr.service.backend)
        stack.ocr.service.backend = gate
        yield World(stack, gate, faults)


class ExactlyOnce(RuleBasedStateMachine):
    world: World
    env: dict[str, str]

    def __init__(self) -> None:
        super().__init__()
        w = self.world
        self.prefix = f"m{next(w.examples)}/"
        self.state = w.stack.oss.service.state  # type: ignore[union-attr]
        self.cfg = load_config(self.env)
        self.apps = [self._app() for _ in range(2)]  # two FC instances
        self.versions: dict[str, list[Version]] = {k: [] for k in KEYS}
        self.current: dict[str, Version | None] = dict.fromkeys(KEYS)
        self.events: list[Event] = []
        self.uploads_by_key: Counter[str] = Counter()
        self.crash_window: Counter[str] = Counter()  # crashes between a paid answer and the stored document
        self.slot_rank: dict[tuple[str, str], int] = {}
        self.slow: tuple[Event, threading.Thread, list[Any]] | None = None
        self.serial = 0
        self.billed_before = w.stack.ocr.service.billed_by_image()  # type: ignore[union-attr]
        w.faults.rates.clear()

    def _app(self) -> App:
        return App(self.cfg, environ=self.env, clock=lambda: self.world.clock[0])

    # -- the world's moves ----------------------------------------------------------------------------------

    @rule(k=st.sampled_from(KEYS), again=st.booleans())
    def upload(self, k: str, again: bool) -> None:
        """A new version of the key; ``again``: the bytes of its first version (same ETag, a new upload)."""
        if again and self.versions[k]:
            old = self.versions[k][0]
            data = self.state.get(DEFAULT_BUCKET, self.prefix + "bytes/" + old.sha)[1]
            number = old.permit_number
        else:
            self.serial += 1
            number = f"H{self.serial:08d}01"
            data = permit_image({**SAMPLE_TRUTH, "permitNumber": number, "nameEn": f"KEY,{k.upper()[:1]}"})
            self.state.put(DEFAULT_BUCKET, self.prefix + "bytes/" + hashlib.sha256(data).hexdigest(), data)
        meta = self.state.put(DEFAULT_BUCKET, self.prefix + k, data)
        v = Version(k, meta.etag, hashlib.sha256(data).hexdigest(), number)
        self.versions[k].append(v)
        self.current[k] = v
        self.uploads_by_key[k] += 1
        self.events.append(Event(v))

    @rule(k=st.sampled_from(KEYS))
    def delete(self, k: str) -> None:
        self.state.delete(DEFAULT_BUCKET, self.prefix + k)
        self.current[k] = None

    @precondition(lambda self: self.events)
    @rule(i=st.integers(0, 63), form=st.sampled_from(["plain", "encoded", "no-etag", "lying-size", "duplicate"]),
          instance=st.integers(0, 1))
    def deliver(self, i: int, form: str, instance: int) -> None:
        """FC delivers an event (or OSS notifies the same upload again, under another request id)."""
        ev = self.events[i % len(self.events)]
        self._invoke(self.apps[instance], ev, form)

    @precondition(lambda self: self.events)
    @rule(i=st.integers(0, 63), j=st.integers(0, 63), form=st.sampled_from(["plain", "encoded", "duplicate"]))
    def deliver_concurrently(self, i: int, j: int, form: str) -> None:
        """Two instances at once: the same event twice, two forms of one key, or two versions."""
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
        ev = self.events[i % len(self.events)]
        app = self._app()
        crash = CrashAt(n, after)
        crash.install(app)
        self._invoke(app, ev, "plain")
        if crash.paid_then_died:  # the one window where the answer is lost: the retry pays again
            self.crash_window[ev.version.key] += 1

    @precondition(lambda self: self.events and self.slow is None)
    @rule(i=st.integers(0, 63))
    def start_slow_delivery(self, i: int) -> None:
        """A delivery whose OCR call hangs; other steps run meanwhile."""
        ev = self.events[i % len(self.events)]
        sha = ev.version.sha
        release, entered = threading.Event(), threading.Event()
        self.world.gate.hold[sha], self.world.gate.entered[sha] = release, entered
        box: list[Any] = [release]
        thread = threading.Thread(target=self._invoke, args=(self._app(), ev, "plain"))
        thread.start()
        while not entered.is_set() and thread.is_alive():
            entered.wait(0.05)
        self.slow = (ev, thread, box)

    @precondition(lambda self: self.slow is not None)
    @rule()
    def finish_slow_delivery(self) -> None:
        self._finish_slow()

    @precondition(lambda self: self.slow is not None)
    @rule(instance=st.integers(0, 1))
    def fc_retries_while_first_attempt_runs(self, instance: int) -> None:
        assert self.slow is not None
        self._invoke(self.apps[instance], self.slow[0], "plain")

    @rule()
    def time_passes(self) -> None:
        """Longer than any claim lives: every attempt still running by now was killed by FC."""
        if self.slow is None:
            self.world.clock[0] += 10 * FUNCTION_TIMEOUT_S

    @rule(service=st.sampled_from(["oss", "ocr", "mns"]), on=st.booleans())
    def fault(self, service: str, on: bool) -> None:
        if not on:
            self.world.faults.rates.pop(service, None)
        elif service == "oss":
            self.world.faults.set("oss", server_error=0.25)  # the SDK's own retries hide most of them
        else:
            self.world.faults.set(service, server_error=1.0)  # an outage

    # -- invariants -----------------------------------------------------------------------------------------

    @invariant()
    def at_most_one_current_outcome_and_never_an_older_one(self) -> None:
        for k in KEYS:
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
    def no_version_billed_twice(self) -> None:
        """Per key, paid calls <= uploads (+ crashes in the documented window). Per key, not per content: in
        url mode an older version's call may read the newer bytes (its result is then discarded)."""
        billed = self._billed()
        for k in KEYS:
            paid = sum(billed[sha] for sha in {v.sha for v in self.versions[k]})
            allowed = self.uploads_by_key[k] + self.crash_window[k]
            assert paid <= allowed, f"{k}: {paid} paid calls for {self.uploads_by_key[k]} upload(s)"

    def teardown(self) -> None:
        try:
            self._drain_and_check()
        finally:
            self.world.faults.rates.clear()
            if self.slow is not None:
                self._finish_slow()

    # -- the end state --------------------------------------------------------------------------------------

    def _drain_and_check(self) -> None:
        if self.slow is not None:
            self._finish_slow()
        self.world.faults.rates.clear()
        for _ in range(4):  # FC's retries, spaced further apart than any claim lives
            self.world.clock[0] += 10 * FUNCTION_TIMEOUT_S
            owed = [e for e in self.events if e.owed]
            if not owed:
                break
            for ev in owed:
                self._invoke(self.apps[0], ev, "plain")
        assert not [e for e in self.events if e.owed], "events still failing with every fault off"
        for k in KEYS:
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
            doc = orjson.loads(self.state.get(self.cfg.output_bucket_for(DEFAULT_BUCKET), slot)[1])
            if doc.get("type") == "result":
                assert doc["data"]["data"]["permitNumber"] == cur.permit_number, f"{k}: another version's content"
            elif meta[META_KIND] != KIND_RECEIPT:
                pytest.fail(f"{k}: ended on an error record {doc['error']['code']} with every fault off")
        self.no_version_billed_twice()

    # -- plumbing -------------------------------------------------------------------------------------------

    def _invoke(self, app: App, ev: Event, form: str) -> None:
        key = self.prefix + ev.version.key
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
                             "oss": {"bucket": {"name": DEFAULT_BUCKET},
                                     "object": {"key": record_key, "eTag": etag, "size": size}}}]}
        ctx = FcContext(request_id=request_id, function=FunctionMeta(timeout=FUNCTION_TIMEOUT_S))
        try:
            app.handle(orjson.dumps(event), ctx)
        except (RetryLater, Crash):
            ev.owed = True  # FC retries a failed invocation, same request id
            return
        if form != "duplicate":
            ev.owed = False

    def _finish_slow(self) -> None:
        assert self.slow is not None
        _ev, thread, box = self.slow
        box[0].set()
        thread.join(60)
        assert not thread.is_alive(), "the slow delivery never finished"
        self.world.gate.hold.clear()
        self.world.gate.entered.clear()
        self.slow = None

    def _slots(self, k: str) -> dict[str, dict[str, str] | None]:
        out = outputs_for(self.cfg, DEFAULT_BUCKET, self.prefix + k)
        found: dict[str, dict[str, str] | None] = {}
        for slot in (out.result_key, out.error_key):
            try:
                found[slot] = dict(self.state.head(out.bucket, slot).user_meta)
            except Exception:
                found[slot] = None
        return found

    def _billed(self) -> Counter[str]:
        now = self.world.stack.ocr.service.billed_by_image()  # type: ignore[union-attr]
        mine = {v.sha for vs in self.versions.values() for v in vs}
        return Counter({sha: n - self.billed_before.get(sha, 0) for sha, n in now.items()
                        if sha in mine and n > self.billed_before.get(sha, 0)})


@pytest.mark.slow
@pytest.mark.parametrize(("sinks", "extra"), [("oss", {}), ("mns", {"IMAGE_SOURCE": "body"}),
                                              ("oss,mns", {"OUTPUT_PREFIX": "out/"})],
                         ids=["oss-beside-url", "mns-only-body", "oss+mns-prefixed-url"])
def test_every_current_version_ends_with_exactly_one_outcome_paid_once(
        world: World, sinks: str, extra: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(sinks_module, "PUT_ATTEMPTS", 2)  # faults reach the failure paths, and stay quick
    monkeypatch.setattr(sinks_module, "PUBLISH_ATTEMPTS", 1)
    env = {**world.stack.env(), "SINKS": sinks, "OCR_MAX_ATTEMPTS": "1", "WORKERS": "1", **extra}
    machine = type("Model", (ExactlyOnce,), {"world": world, "env": env})
    run_state_machine_as_test(machine, settings=settings(
        max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None, database=None,
        derandomize=os.environ.get("PERMIT_OCR_MODEL_RANDOM") != "1",  # CI: the same sequences every run
        suppress_health_check=list(HealthCheck),
        phases=[p for p in Phase if p is not Phase.shrink or os.environ.get("PERMIT_OCR_MODEL_SHRINK", "1") == "1"]))
