"""The FC entry points. ``handler`` reads like the data flow:
event -> object refs -> guards -> source (find the version, precheck) -> ledger (claim the version)
-> recognize -> document -> sinks (bound to the version).

Every record ends as exactly one outcome for the version it found. Permanent failures become an error record
and the handler returns normally (raising would make FC retry and bill OCR again). Transient failures are
retried in-function while time allows; then a record marked transient is left, the claim is released and the
handler raises, so FC retries the event later. Objects gone or overwritten meanwhile get no outcome here: a
missing object is a fact about the world, and an overwritten one has its own event.
"""

from __future__ import annotations

import dataclasses
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
from .errors import OcrFailure, StepError
from .events import MalformedEvent, ObjectRef, parse_event
from .ledger import Defer, Done, Ledger, Ticket
from .recognize import OcrResult, Recognizer
from .sinks import Delivered, Sinks, stored_outcome
from .source import GONE, SUPERSEDED, Prepared, key_candidates, prepare, read_pinned
from .storage import Storage

# the OCR service could not read the signed URL (an OSS hiccup on its side, a slow fetch): we can read the bytes
URL_FETCH_FAILURES = frozenset({"IllegalImageUrl", "imageTimeOut"})
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
    status: str  # result | error | retrying | duplicate | redelivered | skipped | rejected
    code: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"bucket": self.bucket, "key": self.key, "status": self.status, "code": self.code}


@dataclass
class _Invocation:
    request_id: str
    deadline: float
    seen: set[tuple[str, str, str]]  # versions this invocation already took: one event naming one twice
    lock: threading.Lock


class App:
    """Per-instance state: config validated once, clients built once, credentials read per invocation."""

    def __init__(self, cfg: Config, environ: Mapping[str, str] = os.environ,
                 clock: Callable[[], float] = time.time) -> None:
        self.cfg = cfg
        self._environ = environ
        self._context: Any = None
        self._creds_lock = threading.Lock()
        self.storage = Storage(cfg, self.credentials)
        self.recognizer = Recognizer(cfg, self.credentials)
        self.sinks = Sinks(cfg, self.storage, self.credentials)
        self.ledger = Ledger(self.storage, clock)

    def credentials(self) -> Credentials:
        with self._creds_lock:
            return resolve(self._environ, self._context)

    def release_held(self) -> int:
        """For a local process that is interrupted (Ctrl-C in ``permit-ocr run`` or ``invoke``): release the
        claims its attempts hold, so the next run need not wait for them to expire. FC never calls it."""
        return self.ledger.release_held()

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
        run = _Invocation(request_id, deadline, set(), threading.Lock())
        outcomes = self._run_all(parsed.refs, run)
        counts = Counter(o.status for o in outcomes)
        counts.update({"malformed": len(parsed.problems)} if parsed.problems else {})
        summary = {"requestId": request_id, "records": len(parsed.refs) + len(parsed.problems),
                   "counts": dict(counts), "outcomes": [o.as_dict() for o in outcomes],
                   "elapsedMs": int((time.monotonic() - started) * 1000)}
        log.info("invocation done", counts=dict(counts), elapsedMs=summary["elapsedMs"])
        if counts.get("retrying"):
            raise RetryLater(f"{counts['retrying']} record(s) failed transiently; FC will retry the event", summary)
        return summary

    def _run_all(self, refs: list[ObjectRef], run: _Invocation) -> list[Outcome]:
        if len(refs) <= 1 or self.cfg.workers == 1:
            return [self._process_safely(r, run) for r in refs]
        from concurrent.futures import ThreadPoolExecutor  # only multi-record events (backfill) need a pool

        with ThreadPoolExecutor(max_workers=min(self.cfg.workers, len(refs))) as pool:
            return list(pool.map(lambda r: self._process_safely(r, run), refs))

    def _process_safely(self, ref: ObjectRef, run: _Invocation) -> Outcome:
        log.bind_request(run.request_id)  # worker threads have their own log context
        t0 = time.monotonic()
        try:
            outcome = self._process(ref, run)
        except Exception as exc:  # a bug, or no record could be stored: FC's retry is what is left
            code = exc.code if isinstance(exc, StepError) else type(exc).__name__
            log.error("record failed", keyRef=log.key_ref(ref.bucket, ref.key), code=code,
                      stage=getattr(exc, "stage", "fc"))
            outcome = Outcome(ref.bucket, ref.key, "retrying", code)
        log.info("record done", keyRef=log.key_ref(ref.bucket, ref.key), status=outcome.status,
                 code=outcome.code, ms=int((time.monotonic() - t0) * 1000))
        return outcome

    # -- one record: the data flow -------------------------------------------------------------------------

    def _process(self, ref: ObjectRef, run: _Invocation) -> Outcome:
        verdict = guards.check(ref, self.cfg)
        if verdict is not None:
            status = "skipped" if verdict.action is guards.Action.SKIP else "rejected"
            return Outcome(ref.bucket, ref.key, status, verdict.code)
        try:
            prepared = prepare(ref, self.cfg, self.storage)
        except StepError as err:
            return self._failed(ref, err, run)
        key, etag = prepared.key, prepared.etag
        with run.lock:
            if (ref.bucket, key, etag) in run.seen:
                return Outcome(ref.bucket, key, "duplicate", "SameEvent")
            run.seen.add((ref.bucket, key, etag))
        outputs = self.sinks.outputs(ref.bucket, key)
        if outputs.overlong:  # no result could be stored where users look for it: do not pay for one
            return self._failed(ref, StepError(
                "OutputKeyTooLong", f"the key leaves no room for its outputs under OSS's 1023-byte limit; the "
                f"record is at {outputs.error_key}", transient=False, stage="guard").about(key, etag), run,
                prepared)
        try:
            claim = self.ledger.begin(outputs, ref.bucket, key, etag, run.request_id,
                                      ttl_s=run.deadline - time.monotonic() + SAFETY_MARGIN_S, replay=ref.replay)
        except StepError as err:  # cannot tell whether it is done: paying now might pay twice
            return self._failed(ref, err.about(key, etag), run, prepared)
        if isinstance(claim, Defer):
            # No record: the holder may still be running, and a record written now could land beside its outcome.
            # FC's retry finds the holder's outcome or takes over; if FC gives up first, the event is on the
            # onFailure topic and backfill finds the image.
            return Outcome(ref.bucket, key, "retrying", "ClaimHeld")
        if isinstance(claim, Done):
            if claim.outcome.pending:
                self.sinks.redeliver(ref.bucket, key, etag, claim.outcome)
                return Outcome(ref.bucket, key, "redelivered")
            return Outcome(ref.bucket, key, "duplicate")
        return self._recognize_and_deliver(ref, prepared, claim, run)

    def _recognize_and_deliver(self, ref: ObjectRef, prepared: Prepared, ticket: Ticket,
                               run: _Invocation) -> Outcome:
        try:
            ocr, prepared = self._recognize(ref, prepared, run)
            doc = result_document(ref, prepared, ocr, self.cfg, function_request_id=run.request_id, now=_now())
            delivered = self.sinks.deliver_result(doc, ref.bucket, prepared.key, prepared.etag)
        except StepError as err:
            return self._failed(ref, err.about(prepared.key, prepared.etag), run, prepared, ticket)
        if delivered.status != "written":  # overwritten or deleted while OCR ran: the version has no outcome
            ticket.release()
            return Outcome(ref.bucket, prepared.key, "skipped", _skip_code(delivered))
        return Outcome(ref.bucket, prepared.key, "result", "needsReview" if doc["needsReview"] else None)

    def _recognize(self, ref: ObjectRef, prepared: Prepared, run: _Invocation) -> tuple[OcrResult, Prepared]:
        try:
            return self.recognizer.recognize(url=prepared.url, body=prepared.body, deadline=run.deadline), prepared
        except OcrFailure as err:
            if prepared.url is None or err.code not in URL_FETCH_FAILURES:
                raise
            log.warning("OCR could not fetch the signed URL; sending the bytes", code=err.code)
        # a failed fetch is not billed, so this is still the version's one paid call
        sent = dataclasses.replace(prepared, url=None, body=read_pinned(self.storage, ref.bucket, prepared))
        return self.recognizer.recognize(url=None, body=sent.body, deadline=run.deadline), sent

    # -- the one failure path ------------------------------------------------------------------------------

    def _failed(self, ref: ObjectRef, err: StepError, run: _Invocation, prepared: Prepared | None = None,
                ticket: Ticket | None = None) -> Outcome:
        key, etag = err.found or (ref.key, ref.etag)
        if err.code in (GONE, SUPERSEDED) and not err.transient:
            if err.code == GONE and ref.etag:  # deleted after a paid run stored its document: still deliver it
                owed = self._owed_message(ref, ref.etag)
                if owed is not None:
                    return owed
            log.info("record skipped", keyRef=log.key_ref(ref.bucket, key), code=err.code, stage=err.stage)
            return Outcome(ref.bucket, key, "skipped", err.code)
        if err.transient and ticket is None:
            # Only a claim's holder writes a record: one written by anybody else could land beside a holder's
            # outcome. So a transient failure before the claim leaves a record only if it can take the claim now.
            taken = self._claim_for_record(ref, key, etag, run)
            if not isinstance(taken, Ticket):
                return taken
            ticket = taken
        doc = error_document(ref, code=err.code, message=err.message, stage=err.stage, transient=err.transient,
                             function_request_id=run.request_id, now=_now(), attempts=err.attempts,
                             http_status=err.status, ocr_request_id=err.request_id if err.stage == "ocr" else None,
                             prepared=prepared)
        try:
            delivered = self.sinks.deliver_error(doc, ref.bucket, key, etag)
        except StepError:
            if ticket is not None:  # no record: the next delivery must be free to take over at once
                ticket.release()
            raise
        if ticket is not None and (err.transient or delivered.status != "written"):
            ticket.release()
        if delivered.status in ("gone", "superseded"):
            return Outcome(ref.bucket, key, "skipped", _skip_code(delivered))
        if delivered.status == "exists":  # this version's outcome is already stored: nothing failed
            return Outcome(ref.bucket, key, "duplicate")
        if delivered.status == "pending":  # the document is stored; only its message is owed
            return Outcome(ref.bucket, key, "retrying", err.code)
        return Outcome(ref.bucket, key, "retrying" if err.transient else "error", err.code)

    def _claim_for_record(self, ref: ObjectRef, key: str, etag: str | None, run: _Invocation) -> Ticket | Outcome:
        """The claim, so that a transient record may be written; else the outcome without a record (FC retries
        the event; if it gives up, the event is on the onFailure topic and backfill finds the image)."""
        if not etag:
            return Outcome(ref.bucket, key, "retrying", "NoVersion")
        outputs = self.sinks.outputs(ref.bucket, key)
        try:
            claim = self.ledger.begin(outputs, ref.bucket, key, etag, run.request_id,
                                      ttl_s=run.deadline - time.monotonic() + SAFETY_MARGIN_S)
        except StepError as err:
            return Outcome(ref.bucket, key, "retrying", err.code)
        if isinstance(claim, Done):
            return Outcome(ref.bucket, key, "retrying" if claim.outcome.pending else "duplicate")
        if isinstance(claim, Ticket):
            return claim
        return Outcome(ref.bucket, key, "retrying", "ClaimHeld")

    def _owed_message(self, ref: ObjectRef, etag: str) -> Outcome | None:
        """The image is gone, but an earlier attempt may have stored its paid document with the message still
        owed: deliver it (the upload happened; its consumer is waiting), else None."""
        for key in key_candidates(ref.key):
            found = stored_outcome(self.storage, self.sinks.outputs(ref.bucket, key), etag)
            if found is not None and found.pending:
                self.sinks.redeliver(ref.bucket, key, etag, found)
                return Outcome(ref.bucket, key, "redelivered")
        return None


def _skip_code(delivered: Delivered) -> str:
    return GONE if delivered.status == "gone" else SUPERSEDED


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
