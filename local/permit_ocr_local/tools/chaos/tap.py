"""Between FC and the function: every FC instance (a worker thread of an invoker) runs its own ``App``, as FC
instances do (so an answer kept in one instance's memory is not found by another), under a profile that says
how it was deployed (its clock, its FC timeout, its OCR_QPS); the tap records each event, doubles the concurrent
duplicates, kills chosen instances mid-invocation, and counts what every invocation answered. It also records
the documented windows in which a version may be paid for again, as they happen."""

from __future__ import annotations

import dataclasses
import random
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from permit_ocr.answers import Unsaved
from permit_ocr.config import Config, load_config
from permit_ocr.handler import App, RetryLater
from permit_ocr.layout import etag_form, is_own_output
from permit_ocr_local.fcruntime.crash import Crash, CrashAt
from permit_ocr_local.fcruntime.invoker import AsyncInvoker

# The documented windows in which a version may be paid for once more (README "Reliability", docs/chaos.md)
WINDOWS: dict[str, str] = {
    "a": "an instance died between the paid answer and its first durable write",
    "b": "a paid answer kept in one instance's memory (App.unsaved), the next attempt on another instance",
    "c": "an OCR answer that outlived OCR_READ_TIMEOUT_MS (billed, never received)",
    "d": "a user deleted a stored outcome; a later delivery recognized the version again",
    "e": "a marker deleted by hand within 10 minutes of its version's upload, then a redelivery",
}


class Windows:
    """Occurrences of each documented window, per (bucket, key): how often each key may be paid for again."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.by_key: dict[str, Counter[tuple[str, str]]] = {w: Counter() for w in WINDOWS}

    def add(self, window: str, bucket: str, key: str, n: int = 1) -> None:
        with self._lock:
            self.by_key[window][(bucket, key)] += n

    def allowance(self, bucket: str, key: str) -> dict[str, int]:
        with self._lock:
            return {w: c[(bucket, key)] for w, c in self.by_key.items() if c[(bucket, key)]}

    def total(self, window: str) -> int:
        with self._lock:
            return sum(self.by_key[window].values())


class RecordingUnsaved(Unsaved[Any]):
    """An instance's kept answers (App.unsaved), remembered per version so the run can tell which were never
    stored by this instance: each of those is window (b) for its key."""

    def __init__(self, clock: Callable[[], float]) -> None:
        super().__init__(clock)
        self.kept: Counter[tuple[str, str, str]] = Counter()

    def keep(self, version: tuple[str, str, str], answer: Any) -> None:
        super().keep(version, answer)
        self.kept[version] += 1

    def take(self, version: tuple[str, str, str]) -> Any:
        answer = super().take(version)
        if answer is not None:
            self.kept[version] -= 1
        return answer

    def left(self) -> list[tuple[str, str, str]]:
        return [v for v, n in self.kept.items() if n > 0]


@dataclass(frozen=True)
class Profile:
    """How an instance is deployed: variables laid over the function's, a clock offset, an FC timeout."""

    name: str
    env: Mapping[str, str] = field(default_factory=dict)
    clock_offset_s: float = 0.0
    timeout_s: int | None = None  # None: the deployment's


DEFAULT = Profile("default")


class Instances:
    """One App per FC instance (worker thread) and profile."""

    def __init__(self, env: Mapping[str, str], profiles: Mapping[str, Profile]) -> None:
        self._env = dict(env)
        self._profiles = dict(profiles)
        self._local = threading.local()
        self._lock = threading.Lock()
        self.apps: list[App] = []

    def app(self, profile: Profile) -> App:
        apps: dict[str, App] = self._local.__dict__.setdefault("apps", {})
        if profile.name not in apps:
            apps[profile.name] = self.build(profile)
        return apps[profile.name]

    def build(self, profile: Profile, clock_offset_s: float | None = None) -> App:
        env = {**self._env, **profile.env}
        offset = profile.clock_offset_s if clock_offset_s is None else clock_offset_s
        clock: Callable[[], float] = (lambda: time.time() + offset) if offset else time.time
        app = App(load_config(env), environ=env, clock=clock)
        app.unsaved = RecordingUnsaved(clock)
        with self._lock:
            self.apps.append(app)
        return app

    def unsaved_left(self) -> list[tuple[str, str, str]]:
        """Versions some instance kept a paid answer for and never stored itself (once per instance)."""
        with self._lock:
            apps = list(self.apps)
        return [v for app in apps if isinstance(app.unsaved, RecordingUnsaved) for v in app.unsaved.left()]


def event_ident(event: bytes) -> tuple[str, str, str]:
    """(bucket, key, eTag) of an event's first record, or empties."""
    try:
        rec = orjson.loads(event)["events"][0]["oss"]
        return str(rec["bucket"]["name"]), str(rec["object"]["key"]), etag_form(rec["object"].get("eTag")) or ""
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
        return "", "", ""


class InstanceCrashed(RuntimeError):
    """What FC sees of an instance that died: the invocation failed, so its async policy retries it."""


class Tap:
    """Sits between the OSS trigger and FC's async queue (records each event, doubles the concurrent duplicates)
    and inside every instance of both async queues (the trigger's and the FC API's: replay and backfill)."""

    def __init__(self, trigger_invoker: AsyncInvoker, api_invoker: AsyncInvoker | None, cfg: Config,
                 instances: Instances, *, concurrent: set[tuple[str, str]], crash: set[tuple[str, str]],
                 windows: Windows, seed: int = 0) -> None:
        self.invoker = trigger_invoker
        self.api_invoker = api_invoker
        self._submit = trigger_invoker.submit
        self._cfg = cfg
        self._instances = instances
        self._concurrent = concurrent
        self._crash = crash
        self._crashed: set[tuple[str, str]] = set()
        self._windows = windows
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.events: dict[tuple[str, str, str], bytes] = {}  # (bucket, key, etag) -> the trigger's event
        self.trigger_events = 0
        self.loop_keys: list[str] = []
        self.direct: Counter[str] = Counter()
        self.statuses: Counter[str] = Counter()
        self.unhandled: Counter[str] = Counter()
        self.answers: dict[str, list[dict[str, Any]]] = defaultdict(list)  # why -> answers of those deliveries
        self.crashes: list[tuple[str, str, bool]] = []  # (bucket, key, died between the paid answer and a write)
        self._profiles: dict[bytes, tuple[Profile, str]] = {}  # event bytes -> (profile, why) for every delivery
        self._short: dict[tuple[str, str], int] = {}  # (bucket, key) -> FC timeout of its invocations, for now
        setattr(trigger_invoker, "submit", self._from_trigger)  # noqa: B010 (the trigger holds the invoker)
        trigger_invoker._handler = self._handle
        if api_invoker is not None:
            api_invoker._handler = self._handle

    def short_timeout(self, bucket: str, key: str, timeout_s: int | None) -> None:
        """Invocations for this image get a shorter FC timeout (and so a shorter claim) from now on; None ends it."""
        with self._lock:
            if timeout_s is None:
                self._short.pop((bucket, key), None)
            else:
                self._short[(bucket, key)] = timeout_s

    def _from_trigger(self, event: bytes, request_id: str | None = None) -> str:
        bucket, key, etag = event_ident(event)
        with self._lock:
            self.trigger_events += 1
            if is_own_output(key, self._cfg):
                self.loop_keys.append(key)
            twice = (bucket, key) in self._concurrent and (bucket, key, etag) not in self.events
            self.events[(bucket, key, etag)] = event
        rid = self._submit(event, request_id)
        if twice:  # the same event bytes, at once (as a new invocation): two instances pick them up together
            self.deliver(event, "concurrent")
        return rid

    def deliver(self, event: bytes, why: str, profile: Profile = DEFAULT) -> None:
        """Queue an event as FC would (retries, onFailure), counted as ``why``; ``profile`` runs it."""
        with self._lock:
            self.direct[why] += 1
            if profile is not DEFAULT or why not in ("concurrent", "malformed", "seq", "stale"):
                self._profiles[event] = (profile, why)
        self._submit(event)

    def _handle(self, event: bytes, context: Any) -> Any:
        bucket, key, _ = event_ident(event)
        with self._lock:
            profile, why = self._profiles.get(event, (DEFAULT, ""))
            crash = (bucket, key) in self._crash and (bucket, key) not in self._crashed
            if crash:
                self._crashed.add((bucket, key))
            timeout = self._short.get((bucket, key)) or profile.timeout_s
        if timeout is not None:
            context = dataclasses.replace(context, function=dataclasses.replace(context.function, timeout=timeout))
        try:
            if crash:
                answer = self._crash_once(bucket, key, event, context)
            else:
                answer = self._instances.app(profile).handle(event, context)
        except RetryLater as exc:
            self._count(exc.summary, why)
            raise
        except InstanceCrashed:  # injected: FC's retry takes it from here
            raise
        except Exception as exc:
            with self._lock:
                self.unhandled[type(exc).__name__] += 1
            raise
        self._count(answer, why)
        return answer

    def _crash_once(self, bucket: str, key: str, event: bytes, context: Any) -> Any:
        """The event's first instance dies at a random request. Its clock runs behind, so the claim it leaves
        has expired when FC's retry arrives (as when FC's retry interval exceeds the function timeout)."""
        with self._lock:
            at = CrashAt(self._rng.randint(1, 6), self._rng.random() < 0.5)
        app = self._instances.build(DEFAULT, clock_offset_s=-3600)
        at.install(app)
        try:
            return app.handle(event, context)
        except Crash:
            with self._lock:
                self.crashes.append((bucket, key, at.paid_then_died))
            if at.paid_then_died:
                self._windows.add("a", bucket, key)
            raise InstanceCrashed("the instance died mid-invocation") from None

    def _count(self, summary: Any, why: str) -> None:
        counts = summary.get("counts") if isinstance(summary, dict) else None
        with self._lock:
            self.statuses.update(counts or {})
            if why:
                self.answers[why].append(summary if isinstance(summary, dict) else {})
