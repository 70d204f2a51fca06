"""The FC entry points. ``handler`` reads like the data flow:
event -> object refs -> guards -> (duplicate?) -> precheck + image source -> recognize -> document -> sinks.

Every record ends as exactly one outcome. Permanent failures become an error record and the handler returns
normally (raising would make FC retry and bill OCR again). Transient failures are retried in-function while
time allows; then an error record marked transient is written and the handler raises, so FC retries the
event later, and the idempotency check keeps finished records from being recognized twice.
"""

from __future__ import annotations

import datetime
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from . import guards, log
from .config import Config, load_config
from .credentials import Credentials, resolve
from .document import error_document, result_document
from .events import MalformedEvent, ObjectRef, parse_event
from .idempotency import Claim, Seen, finished
from .precheck import PrecheckError
from .recognize import OcrFailure, Recognizer
from .sinks import SinkError, Sinks
from .source import Prepared, SourceError, prepare
from .storage import Storage, StorageError

SAFETY_MARGIN_S = 5.0  # kept back from the FC timeout to write the error record and answer
DEFAULT_TIMEOUT_S = 60.0


class RetryLater(RuntimeError):
    """Raised after all records ran when some failed transiently: FC's async retry takes it from here."""

    def __init__(self, message: str, summary: dict[str, Any]) -> None:
        super().__init__(message)
        self.summary = summary


@dataclass(frozen=True)
class Outcome:
    bucket: str
    key: str
    status: str  # result | error | retrying | duplicate | skipped | rejected | redelivered
    code: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"bucket": self.bucket, "key": self.key, "status": self.status, "code": self.code}


class App:
    """Per-instance state: config validated once, clients built once, credentials read per invocation."""

    def __init__(self, cfg: Config, environ: Mapping[str, str] = os.environ) -> None:
        self.cfg = cfg
        self._environ = environ
        self._context: Any = None
        self._creds_lock = threading.Lock()
        self.storage = Storage(cfg, self.credentials)
        self.recognizer = Recognizer(cfg, self.credentials)
        self.sinks = Sinks(cfg, self.storage, self.credentials)

    def credentials(self) -> Credentials:
        with self._creds_lock:
            return resolve(self._environ, self._context)

    # -- one invocation -----------------------------------------------------------------------------------

    def handle(self, event: bytes | str | dict[str, Any], context: Any) -> dict[str, Any]:
        self._context = context
        request_id = str(getattr(context, "request_id", "") or "")
        log.bind_request(request_id)
        started = time.monotonic()
        deadline = started + _timeout_s(context, self._environ) - SAFETY_MARGIN_S
        try:
            parsed = parse_event(event)
        except MalformedEvent as exc:
            log.error("event rejected", code="MalformedEvent", reason=str(exc))
            return {"requestId": request_id, "records": 0, "counts": {"malformed": 1}, "outcomes": [],
                    "error": str(exc)}
        for p in parsed.problems:
            log.warning("record rejected", code=p.code, reason=p.message, index=p.index,
                        keyRef=log.key_ref(p.bucket or "", p.key or "") if p.key else None)
        outcomes = self._run_all(parsed.refs, request_id, deadline)
        counts = Counter(o.status for o in outcomes)
        counts.update({"malformed": len(parsed.problems)} if parsed.problems else {})
        summary = {"requestId": request_id, "records": len(parsed.refs) + len(parsed.problems),
                   "counts": dict(counts), "outcomes": [o.as_dict() for o in outcomes],
                   "elapsedMs": int((time.monotonic() - started) * 1000)}
        log.info("invocation done", counts=dict(counts), elapsedMs=summary["elapsedMs"])
        if counts.get("retrying"):
            raise RetryLater(f"{counts['retrying']} record(s) failed transiently; FC will retry the event", summary)
        return summary

    def _run_all(self, refs: list[ObjectRef], request_id: str, deadline: float) -> list[Outcome]:
        if len(refs) <= 1 or self.cfg.workers == 1:
            return [self._process_safely(r, request_id, deadline) for r in refs]
        from concurrent.futures import ThreadPoolExecutor  # only multi-record events (backfill) need a pool

        with ThreadPoolExecutor(max_workers=min(self.cfg.workers, len(refs))) as pool:
            return list(pool.map(lambda r: self._process_safely(r, request_id, deadline), refs))

    def _process_safely(self, ref: ObjectRef, request_id: str, deadline: float) -> Outcome:
        log.bind_request(request_id)  # worker threads have their own log context
        t0 = time.monotonic()
        try:
            outcome = self._process(ref, request_id, deadline)
        except SinkError as err:  # the error record itself could not be stored: let FC retry
            log.error("sink failed", keyRef=log.key_ref(ref.bucket, ref.key), sink=err.sink, code=err.code)
            outcome = Outcome(ref.bucket, ref.key, "retrying", err.code)
        except Exception as exc:  # a bug must not lose the upload: record it, retry via FC
            log.error("unexpected failure", keyRef=log.key_ref(ref.bucket, ref.key), code=type(exc).__name__)
            try:
                outcome = self._fail(ref, request_id, type(exc).__name__, "internal error; see function logs",
                                     "fc", transient=True)
            except Exception:  # not even the record could be written: FC's retry is what is left
                outcome = Outcome(ref.bucket, ref.key, "retrying", type(exc).__name__)
        log.info("record done", keyRef=log.key_ref(ref.bucket, ref.key), status=outcome.status,
                 code=outcome.code, ms=int((time.monotonic() - t0) * 1000))
        return outcome

    def _process(self, ref: ObjectRef, request_id: str, deadline: float) -> Outcome:
        cfg = self.cfg
        verdict = guards.check(ref, cfg)
        if verdict is not None:
            if verdict.action is guards.Action.FAIL:
                return self._fail(ref, request_id, verdict.code, verdict.message, "guard", transient=False)
            status = "skipped" if verdict.action is guards.Action.SKIP else "rejected"
            return Outcome(ref.bucket, ref.key, status, verdict.code)
        prepared: Prepared | None = None
        etag = ref.etag
        if not etag:  # no ETag in the event (rare): read the object first to learn which version it is
            prepared_or_outcome = self._prepare(ref, request_id)
            if isinstance(prepared_or_outcome, Outcome):
                return prepared_or_outcome
            prepared, etag = prepared_or_outcome, prepared_or_outcome.etag or ""
        key = prepared.key if prepared else ref.key
        # Claim first, then look for a finished outcome: a delivery that wins the claim after another one
        # released it is sure to see that one's result, so no two deliveries ever both pay.
        claim = Claim(cfg, self.storage, ref.bucket, key, etag)
        try:
            if not claim.acquire(etag, request_id, ttl_s=deadline - time.monotonic() + SAFETY_MARGIN_S):
                return Outcome(ref.bucket, key, "duplicate", "InProgress")
        except StorageError as err:
            return self._fail(ref, request_id, err.code, err.message, "source", transient=True, prepared=prepared)
        try:
            seen = Seen()
            try:
                done = finished(cfg, self.storage, self.sinks, ref.bucket, key, etag, seen)
            except StorageError as err:  # cannot tell whether it is done: paying now might pay twice
                return self._fail(ref, request_id, err.code, err.message, "source", transient=True,
                                  prepared=prepared)
            if done is not None:
                return Outcome(ref.bucket, key, done.status)
            if prepared is None:
                prepared_or_outcome = self._prepare(ref, request_id)
                if isinstance(prepared_or_outcome, Outcome):
                    return prepared_or_outcome
                prepared = prepared_or_outcome
                if prepared.key != key:  # found under a decoded form of the event key: look there too
                    try:
                        done = finished(cfg, self.storage, self.sinks, ref.bucket, prepared.key, etag, seen)
                    except StorageError as err:
                        return self._fail(ref, request_id, err.code, err.message, "source", transient=True,
                                          prepared=prepared)
                    if done is not None:
                        return Outcome(ref.bucket, prepared.key, done.status)
            return self._recognize_and_deliver(ref, prepared, request_id, deadline, seen)
        finally:
            claim.release()

    def _prepare(self, ref: ObjectRef, request_id: str) -> Prepared | Outcome:
        """Find the object, precheck its header, sign the URL or read the bytes; or the outcome if that fails."""
        try:
            return prepare(ref, self.cfg, self.storage)
        except PrecheckError as err:
            return self._fail(ref, request_id, err.code, err.message, "precheck", transient=False)
        except SourceError as err:
            if err.code == "Superseded":
                return Outcome(ref.bucket, ref.key, "skipped", err.code)
            return self._fail(ref, request_id, err.code, err.message, "source", transient=err.transient)

    def _recognize_and_deliver(self, ref: ObjectRef, prepared: Prepared, request_id: str, deadline: float,
                               seen: Seen) -> Outcome:
        try:
            ocr = self.recognizer.recognize(url=prepared.url, body=prepared.body, deadline=deadline)
        except OcrFailure as err:
            return self._fail(ref, request_id, err.code, err.message, "ocr", transient=err.transient,
                              attempts=err.attempts, status=err.status, ocr_request_id=err.request_id,
                              prepared=prepared)
        doc = result_document(ref, prepared, ocr, self.cfg, function_request_id=request_id, now=_now())
        self.sinks.deliver_result(doc, ref.bucket, prepared.key, prepared.etag or ref.etag,
                                  error_record_may_exist=seen.error_record is not False)
        return Outcome(ref.bucket, prepared.key, "result", "needsReview" if doc["needsReview"] else None)

    def _fail(self, ref: ObjectRef, request_id: str, code: str, message: str, stage: str, *, transient: bool,
              attempts: int = 0, status: int | None = None, ocr_request_id: str | None = None,
              prepared: Prepared | None = None) -> Outcome:
        doc = error_document(ref, code=code, message=message, stage=stage, transient=transient,
                             function_request_id=request_id, now=_now(), attempts=attempts, http_status=status,
                             ocr_request_id=ocr_request_id, prepared=prepared)
        key = prepared.key if prepared else ref.key
        etag = (prepared.etag if prepared else None) or ref.etag
        self.sinks.deliver_error(doc, ref.bucket, key, etag)
        return Outcome(ref.bucket, key, "retrying" if transient else "error", code)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _timeout_s(context: Any, environ: Mapping[str, str]) -> float:
    fn = getattr(context, "function", None)
    value = getattr(fn, "timeout", None) or environ.get("FC_FUNCTION_TIMEOUT") or environ.get("FC_TIMEOUT")
    try:
        return float(value) if value else DEFAULT_TIMEOUT_S
    except (TypeError, ValueError):
        return DEFAULT_TIMEOUT_S


_app: App | None = None
_app_lock = threading.Lock()


def get_app(environ: Mapping[str, str] = os.environ, factory: Callable[[Config], App] = App) -> App:
    global _app
    with _app_lock:
        if _app is None:
            cfg = load_config(environ)  # ConfigError names every bad variable
            log.configure(cfg.log_level, cfg.log_object_keys)
            _app = factory(cfg)
        return _app


def reset_app() -> None:
    """Forget the instance state (tests and the local runner change the environment between runs)."""
    global _app
    with _app_lock:
        _app = None


def initialize(context: Any) -> None:
    log.bind_request(str(getattr(context, "request_id", "") or "") or None)
    get_app().recognizer.preload()  # the OCR SDK's imports belong to the instance start, not the first upload
    log.info("instance initialized")


def handler(event: bytes | str | dict[str, Any], context: Any) -> dict[str, Any]:
    return get_app().handle(event, context)
