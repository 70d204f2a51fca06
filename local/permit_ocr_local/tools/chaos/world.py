"""The world the chaos run scripts around the function: time (a scheduler of later actions), an MNS valve that
holds chosen publishes, an OCR service that fails some images until it recovers, and permissions, KMS keys and
storage classes that change while the function runs. ``World.heal`` turns every fault off at once for the end
stage: what is still owed must then be delivered by FC's retries, replay and backfill."""

from __future__ import annotations

import hashlib
import heapq
import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from permit_ocr_local.fcruntime.stack import LocalStack
from permit_ocr_local.standins.faults import FaultPlan
from permit_ocr_local.standins.http import Request, Response
from permit_ocr_local.standins.mns.errors import service_error as mns_error
from permit_ocr_local.standins.mns.server import parse_message
from permit_ocr_local.standins.ocr.backends import Backend, RecognitionError

from .workload import SCRIPTED

SCRIPTED_MARK = SCRIPTED.encode()  # in a published body: a publish the valve may hold (cheap test first)


class Scheduler:
    """Runs actions at later times on one thread; ``flush`` runs every pending one now (the end stage)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._cv = threading.Condition()
        self._stopped = False
        self.errors: list[str] = []
        self._busy = 0
        self._thread = threading.Thread(target=self._loop, name="chaos-scheduler", daemon=True)
        self._thread.start()

    def at(self, delay_s: float, action: Callable[[], None]) -> None:
        with self._cv:
            heapq.heappush(self._heap, (time.monotonic() + max(0.0, delay_s), next(self._seq), action))
            self._cv.notify()

    def _loop(self) -> None:
        while True:
            with self._cv:
                while not self._stopped and (not self._heap or self._heap[0][0] > time.monotonic()):
                    self._cv.wait(None if not self._heap else self._heap[0][0] - time.monotonic())
                if self._stopped:
                    return
                _, _, action = heapq.heappop(self._heap)
                self._busy += 1
            self._run(action)
            with self._cv:
                self._busy -= 1
                self._cv.notify_all()

    def _run(self, action: Callable[[], None]) -> None:
        try:
            action()
        except Exception as exc:  # a harness bug: reported in the table, never silent
            self.errors.append(f"{type(exc).__name__}: {exc}"[:300])

    def wait_empty(self, timeout_s: float) -> bool:
        """Until no action is pending or running (False when ``timeout_s`` ran out first)."""
        end = time.monotonic() + timeout_s
        with self._cv:
            while self._heap or self._busy:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._cv.wait(min(left, 0.5))
        return True

    def flush(self) -> None:
        """Run every pending action now, in time order, and wait for the one running."""
        while True:
            with self._cv:
                while self._busy:
                    self._cv.wait()
                if not self._heap:
                    return
                _, _, action = heapq.heappop(self._heap)
            self._run(action)

    def stop(self) -> None:
        with self._cv:
            self._stopped = True
            self._cv.notify_all()


@dataclass(frozen=True)
class Hold:
    """One publish held by the valve: ``seconds`` long, then answered ``status`` (None: published)."""

    seconds: float
    status: int | None = None


class Valve:
    """The MNS stand-in with a hand on the valve: publishes of chosen images (named by the message's source) are
    held, one scripted step per publish, in order; later publishes pass. ``on_hold(n)`` is told when the n-th
    scripted publish (0-based) starts waiting. ``open`` ends every hold at once."""

    name = "mns"

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self._scripts: dict[tuple[str, str], tuple[list[Hold], Callable[[int], None] | None]] = {}
        self._count: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()
        self._open = threading.Event()
        self.held = 0

    def script(self, bucket: str, key: str, holds: list[Hold], on_hold: Callable[[int], None] | None = None) -> None:
        with self._lock:
            self._scripts[(bucket, key)] = (holds, on_hold)

    def open(self) -> None:
        self._open.set()

    def handle(self, request: Request) -> Response:
        step = self._step(request) if SCRIPTED_MARK in request.body and not self._open.is_set() else None
        if step is not None:
            self._open.wait(step.seconds)
            if step.status is not None:
                return mns_error(step.status, request)
        return self.inner.handle(request)

    def _step(self, request: Request) -> Hold | None:
        if request.method != "POST" or not request.path.endswith("/messages"):
            return None
        try:
            source = orjson.loads(parse_message(request.body).body).get("source") or {}
            ident = (str(source.get("bucket")), str(source.get("key")))
        except Exception:  # not a message of ours: the service answers it
            return None
        with self._lock:
            script = self._scripts.get(ident)
            n = self._count[ident]
            self._count[ident] += 1
        if script is None or n >= len(script[0]):
            return None
        with self._lock:
            self.held += 1
        if script[1] is not None:
            script[1](n)
        return script[0][n]


class HealingOcr:
    """The OCR service failing chosen images (``algorithmError``, unbilled) until ``healed``."""

    def __init__(self, inner: Backend, failing: set[str]) -> None:
        self.inner = inner
        self.failing = failing  # sha256 of the images
        self.healed = False

    def recognize(self, image: bytes, output_figure: bool) -> dict[str, Any]:
        if not self.healed and self.failing and hashlib.sha256(image).hexdigest() in self.failing:
            raise RecognitionError("algorithmError", "The algorithm failed on this image (chaos: until healed).")
        return self.inner.recognize(image, output_figure)


class Permissions:
    """A role policy that denies reading chosen objects (a tightened policy), changed while the function runs."""

    def __init__(self, stack: LocalStack) -> None:
        self._stack = stack
        self._denied: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self.changes = 0

    def deny(self, bucket: str, key: str) -> None:
        with self._lock:
            self._denied.add((bucket, key))
            self._apply()

    def allow(self, bucket: str, key: str) -> None:
        with self._lock:
            self._denied.discard((bucket, key))
            self._apply()

    def clear(self) -> None:
        with self._lock:
            self._denied.clear()
            self._apply()

    def _apply(self) -> None:
        self.changes += 1
        policy = None if not self._denied else {"Version": "1", "Statement": [
            {"Effect": "Allow", "Action": "*", "Resource": "*"},
            {"Effect": "Deny", "Action": "oss:GetObject",
             "Resource": [f"acs:oss:*:*:{b}/{k}" for b, k in sorted(self._denied)]}]}
        self._stack.keyring.set_policy(self._stack.access_key_id, policy)


class World:
    """Everything the run changes around the function, and the one switch that turns it all back."""

    def __init__(self, stack: LocalStack, plan: FaultPlan, failing: set[str]) -> None:
        assert stack.oss is not None and stack.mns is not None and stack.ocr is not None
        self.stack = stack
        self.plan = plan
        self.scheduler = Scheduler()
        self.permissions = Permissions(stack)
        self.oss_state = stack.oss.service.state
        mns_httpd = stack.mns._httpd
        self.valve = Valve(mns_httpd.service)
        mns_httpd.service = self.valve
        self.ocr = HealingOcr(stack.ocr.service.backend, failing)
        stack.ocr.service.backend = self.ocr
        self._kms: set[str] = set()
        self._frozen: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self.log: Counter[str] = Counter()  # what the world did, for the table

    def set_kms(self, key_id: str, state: str) -> None:
        with self._lock:
            self._kms.add(key_id)
        self.oss_state.set_kms_key(key_id, state)  # type: ignore[arg-type]
        self.log[f"kms {state.lower()}"] += 1

    def frozen(self, bucket: str, key: str) -> None:
        with self._lock:
            self._frozen.add((bucket, key))

    def restore(self, bucket: str, key: str) -> None:
        with self._lock:
            if (bucket, key) not in self._frozen:
                return
            self._frozen.discard((bucket, key))
        self.oss_state.restore(bucket, key, time.time())
        self.log["archive restored"] += 1

    def heal(self) -> None:
        """Faults off: pending world actions run now, rules and rates go, access returns, OCR recovers."""
        self.scheduler.flush()
        self.valve.open()
        self.plan.clear_rules()
        for service in ("oss", "ocr", "mns", "fc"):
            self.plan.set(service)
        self.permissions.clear()
        with self._lock:
            keys, frozen = list(self._kms), list(self._frozen)
        for key_id in keys:
            self.oss_state.set_kms_key(key_id, "Enabled")
        for bucket, key in frozen:
            self.restore(bucket, key)
        self.ocr.healed = True

    def stop(self) -> None:
        self.scheduler.stop()
