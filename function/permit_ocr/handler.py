"""The FC entry points. ``handler`` reads like the data flow: event -> object refs -> guards -> source (find the
version, precheck) -> ledger (claim the version) -> recognize (backend.py: api, engine or cascade) -> document
-> sinks (every write through the fence).

Every record ends as exactly one outcome for the version it found, written only by the holder of the version's
claim. A verdict is about a version, never about the world: the precheck's and OCR's verdicts on the bytes become
final error records (the handler returns normally: raising would make FC bill OCR again); transient failures and
facts about the world (a 403 on the image, a KMS key, an Archive object, a permission the OCR call lacks) leave a
non-final record, never replace a stored outcome, and make the handler raise so FC retries later. Objects gone
or overwritten meanwhile get no outcome here: a missing object is a fact about the world, and an overwritten one
has its own event.
"""

from __future__ import annotations

import datetime
import functools
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from . import guards, log, preflight
from .answers import Unsaved
from .backend import Backend
from .budget import SAFETY_MARGIN_S, Invocation, PaidCallBudget, claim_ttl_s, timeout_s
from .config import Config, load_config
from .credentials import Credentials, resolve
from .document import error_document, result_document
from .errors import OcrFailure, StepError
from .events import MalformedEvent, ObjectRef, parse_event
from .fence import stored_outcome
from .ledger import FRESH_VERSION_S, Defer, Done, Ledger, Ticket
from .ledger import SUPERSEDED as CLAIM_SUPERSEDED
from .outcome import Outcome
from .recognize import OcrResult, Recognizer
from .shadow import Shadow
from .sinks import Delivered, Sinks
from .source import GONE, SUPERSEDED, Prepared, key_candidates, prepare, read_pinned
from .storage import Storage, retrying


class RetryLater(RuntimeError):
    """Raised after all records ran when some failed transiently: FC's async retry takes it from here."""

    def __init__(self, message: str, summary: dict[str, Any]) -> None:
        super().__init__(message)
        self.summary = summary


class App:
    """Per-instance state: config validated once, clients built once, credentials read per invocation."""

    def __init__(self, cfg: Config, environ: Mapping[str, str] = os.environ,
                 clock: Callable[[], float] = time.time) -> None:
        self.cfg = cfg
        self._environ = environ
        self._context: Any = None
        self._creds_lock = threading.Lock()
        self.clock = clock
        self.storage = Storage(cfg, self.credentials)
        self.recognizer = Recognizer(cfg, self.credentials)  # the paid call
        self.backend = Backend(cfg, self.recognizer, self.credentials)  # which recognizer answers (OCR_BACKEND)
        self.shadow = Shadow(cfg, self.backend.engine, self.storage)
        self.sinks = Sinks(cfg, self.storage, self.credentials)
        self.ledger = Ledger(self.storage, clock)
        # paid answers OSS would not take: the next attempt of the version on this instance stores them
        self.unsaved: Unsaved[tuple[OcrResult, Prepared]] = Unsaved(clock)
        self._started = False
        self._start_lock = threading.Lock()

    def credentials(self) -> Credentials:
        with self._creds_lock:
            return resolve(self._environ, self._context)

    def start(self) -> None:
        """The checks that need the cloud, once per instance (FC's initializer; else the first invocation): an
        output bucket with versioning makes OSS ignore x-oss-forbid-overwrite, so claims would exclude nobody.
        Raises ConfigError, in one line, when the deployment cannot keep its promise."""
        with self._start_lock:
            if self._started:
                return
            preflight.refuse_what_cannot_hold(self.cfg, self.storage)
            self._started = True

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
        self.start()
        try:
            parsed = parse_event(event)
        except MalformedEvent as exc:
            log.error("event rejected", code="MalformedEvent", reason=str(exc))
            return {"requestId": request_id, "records": 0, "counts": {"malformed": 1}, "outcomes": [],
                    "error": str(exc)}
        for p in parsed.problems:
            log.warning("record rejected", code=p.code, reason=p.message, index=p.index,
                        keyRef=log.key_ref(p.bucket or "", p.key or "") if p.key else None)
        run = Invocation(request_id, started + timeout_s(context, self._environ), set(), threading.Lock())
        outcomes = self._run_all(parsed.refs, run)
        self.shadow.run_pending(run.shadows, run.deadline)  # SHADOW_RATE: only what time is left
        counts = Counter(o.status for o in outcomes)
        counts.update({"malformed": len(parsed.problems)} if parsed.problems else {})
        summary = {"requestId": request_id, "records": len(parsed.refs) + len(parsed.problems),
                   "counts": dict(counts), "outcomes": [o.as_dict() for o in outcomes],
                   "elapsedMs": int((time.monotonic() - started) * 1000)}
        log.info("invocation done", counts=dict(counts), elapsedMs=summary["elapsedMs"])
        if counts.get("retrying"):
            raise RetryLater(f"{counts['retrying']} record(s) failed transiently; FC will retry the event", summary)
        return summary

    def _run_all(self, refs: list[ObjectRef], run: Invocation) -> list[Outcome]:
        if len(refs) <= 1 or self.cfg.workers == 1:
            return [self._process_safely(r, run) for r in refs]
        from concurrent.futures import ThreadPoolExecutor  # only multi-record events (backfill) need a pool

        with ThreadPoolExecutor(max_workers=min(self.cfg.workers, len(refs))) as pool:
            return list(pool.map(lambda r: self._process_safely(r, run), refs))

    def _process_safely(self, ref: ObjectRef, run: Invocation) -> Outcome:
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

    def _process(self, ref: ObjectRef, run: Invocation) -> Outcome:
        verdict = guards.check(ref, self.cfg)
        if verdict is not None:
            status = "skipped" if verdict.action is guards.Action.SKIP else "rejected"
            return Outcome(ref.bucket, ref.key, status, verdict.code)
        try:
            prepared = prepare(ref, self.cfg, self.storage)
        except StepError as err:
            return self._unreadable(ref, err, run)
        key, etag = prepared.key, prepared.etag
        with run.lock:
            if (ref.bucket, key, etag) in run.seen:
                return Outcome(ref.bucket, key, "duplicate", "SameEvent")
            run.seen.add((ref.bucket, key, etag))
        claim = self._claim(ref, key, etag, run, fresh=self._fresh(prepared))
        if not isinstance(claim, Ticket):
            return claim
        if claim.owed is not None:  # the paid document is stored; only its message is owed
            return self._redeliver(ref, key, claim)
        if claim.takeover and (moved := self._moved_on(ref.bucket, key, claim)) is not None:
            return moved  # an earlier holder let go: maybe because the version was superseded after this read
        if self.sinks.outputs(ref.bucket, key).overlong:  # no result could be stored where users look for it
            return self._failed(ref, StepError(
                "OutputKeyTooLong", "the key leaves no room for its outputs under OSS's 1023-byte limit; the "
                "record is under .permit-ocr/overlong/", transient=False, stage="guard").about(key, etag), run,
                prepared, claim)
        if prepared.verdict is not None:  # the precheck's verdict on these bytes: recorded, never paid for
            return self._failed(ref, prepared.verdict, run, prepared, claim)
        if prepared.info is not None and prepared.info.convert:  # HEIC, PDF, too large, turned...: converted first
            from .pages import recognize_converted  # its libraries load only for an upload that needs them

            return recognize_converted(self, ref, prepared, claim, run)
        return self._recognize_and_deliver(ref, prepared, claim, run)

    def _fresh(self, prepared: Prepared) -> bool:
        """Uploaded moments ago: its marker cannot have expired, so a missing gen 0 proves it was never taken."""
        return prepared.uploaded_at is not None and self.clock() - prepared.uploaded_at < FRESH_VERSION_S

    def _claim(self, ref: ObjectRef, key: str, etag: str, run: Invocation, *, fresh: bool) -> Ticket | Outcome:
        """The version's claim, until FC's deadline for this invocation; else the outcome without a claim."""
        if run.hard_deadline - time.monotonic() < self.backend.worst_call_s() + SAFETY_MARGIN_S:
            # no claim born expired and no paid call cut off by FC's timeout: FC's retry starts with a full budget
            return Outcome(ref.bucket, key, "retrying", "NoTimeLeft")
        outputs = self.sinks.outputs(ref.bucket, key)
        try:
            claim = self.ledger.begin(outputs, ref.bucket, key, etag, run.request_id,
                                      expires_at=self.clock() + self._claim_ttl_s(run), fresh=fresh,
                                      replay=ref.replay)
        except StepError as err:  # cannot tell whether it is done: paying now might pay twice
            log.warning("claim failed", code=err.code, stage=err.stage)
            return Outcome(ref.bucket, key, "retrying", err.code)
        if isinstance(claim, Defer):
            # No record: the holder may still be running, and a record written now could land beside its outcome.
            # FC's retry finds the holder's outcome or takes over; if FC gives up first, the event is on the
            # onFailure topic and backfill finds the image.
            return Outcome(ref.bucket, key, "retrying", "ClaimHeld")
        if isinstance(claim, Done):
            if claim.outcome.sibling is not None:
                return self._tidy(ref, key, etag, run, claim)
            return Outcome(ref.bucket, key, "duplicate")
        return claim

    def _claim_ttl_s(self, run: Invocation) -> float:
        return claim_ttl_s(self.backend.worst_call_s(), run)

    def _tidy(self, ref: ObjectRef, key: str, etag: str, run: Invocation, done: Done) -> Outcome:
        """A holder died between storing the outcome and dropping the key's earlier record: drop it now, as a
        claim holder (FC's retry comes back while the dead holder's claim still runs)."""
        try:
            claim = self.ledger.begin(self.sinks.outputs(ref.bucket, key), ref.bucket, key, etag, run.request_id,
                                      expires_at=self.clock() + self._claim_ttl_s(run), fresh=False, rewrite=True)
            if not isinstance(claim, Ticket):
                return Outcome(ref.bucket, key, "retrying", "ClaimHeld")
            try:
                self.sinks.remove_sibling(claim, ref.bucket, key, done.outcome)
            finally:
                claim.release()
        except StepError as err:
            return Outcome(ref.bucket, key, "retrying", err.code)
        return Outcome(ref.bucket, key, "duplicate")

    def _moved_on(self, bucket: str, key: str, claim: Ticket) -> Outcome | None:
        """None while the claimed version is the image's current object; else the outcome without paying."""
        try:
            current = self.storage.current_etag(bucket, key)  # a listing: no read permission on the image needed
        except StepError as err:  # cannot tell: paying might pay for a superseded version
            claim.release()
            return Outcome(bucket, key, "retrying", err.code)
        if current == claim.etag:
            return None
        claim.release(CLAIM_SUPERSEDED)
        return Outcome(bucket, key, "skipped", SUPERSEDED if current else GONE)

    def _recognize_and_deliver(self, ref: ObjectRef, prepared: Prepared, ticket: Ticket,
                               run: Invocation) -> Outcome:
        version = (ref.bucket, prepared.key, prepared.etag)
        try:
            kept = self.unsaved.take(version)
            ocr, prepared = kept or self._recognize(ref, prepared, ticket, run)
            doc = result_document(ref, prepared, ocr, self.cfg, function_request_id=run.request_id, now=_now())
            try:
                delivered = self.sinks.deliver_result(doc, ticket, ref.bucket, prepared.key)
            except StepError as err:
                if err.stage == "sink" and getattr(err, "sink", "") == "oss":  # a brownout: keep what was paid for
                    self.unsaved.keep(version, (ocr, prepared))
                raise
        except StepError as err:
            return self._failed(ref, err.about(prepared.key, prepared.etag), run, prepared, ticket)
        if kept is None and delivered.status == "written":  # SHADOW_RATE: the engine, once every record is done
            self.shadow.queue(run.shadows, run.lock, ref.bucket, prepared, ocr, doc)
        return self._settled(ref, prepared.key, ticket, delivered, "result",
                             "needsReview" if doc["needsReview"] else None)

    def _recognize(self, ref: ObjectRef, prepared: Prepared, ticket: Ticket,
                   run: Invocation) -> tuple[OcrResult, Prepared]:
        budget = PaidCallBudget(run, ticket, self.clock, self._claim_ttl_s)
        return self.backend.recognize(prepared, functools.partial(read_pinned, self.storage, ref.bucket, prepared),
                                      budget)

    def _redeliver(self, ref: ObjectRef, key: str, ticket: Ticket) -> Outcome:
        assert ticket.owed is not None
        try:
            delivered = self.sinks.redeliver(ticket, ref.bucket, key, ticket.owed)
        except StepError as err:
            ticket.release()
            return Outcome(ref.bucket, key, "retrying", err.code)
        return self._settled(ref, key, ticket, delivered, "redelivered", None)

    def _settled(self, ref: ObjectRef, key: str, ticket: Ticket, delivered: Delivered, status: str,
                 code: str | None) -> Outcome:
        """The outcome of a delivery the fence may have refused: a refused write stores nothing for the version."""
        if delivered.status == "written":
            return Outcome(ref.bucket, key, status, code)
        ticket.release(CLAIM_SUPERSEDED if delivered.status in ("superseded", "gone") else "released")
        if delivered.status in ("superseded", "gone"):  # overwritten or deleted meanwhile: no outcome is due
            return Outcome(ref.bucket, key, "skipped", GONE if delivered.status == "gone" else SUPERSEDED)
        return Outcome(ref.bucket, key, "retrying", delivered.status.capitalize())  # changed | expired

    # -- reads that failed before the version was known -----------------------------------------------------

    def _unreadable(self, ref: ObjectRef, err: StepError, run: Invocation) -> Outcome:
        key, etag = err.found or (ref.key, ref.etag)
        etag = etag or ref.etag  # a refused read names the key form that exists, and no version
        if err.code in (GONE, SUPERSEDED) and not err.transient:
            if err.code == GONE and ref.etag:  # deleted after a paid run stored its document: still deliver it
                owed = self._owed_message(ref, ref.etag, run)
                if owed is not None:
                    return owed
            log.info("record skipped", keyRef=log.key_ref(ref.bucket, key), code=err.code, stage=err.stage)
            return Outcome(ref.bucket, key, "skipped", err.code)
        # a 5xx, or a fact about the world (a 403: a policy, a KMS key, an Archive object): never a verdict.
        # The record is the claim holder's to write, for the version the event names.
        if not etag:
            return Outcome(ref.bucket, key, "retrying", "NoVersion")
        claim = self._claim(ref, key, etag, run, fresh=False)
        if not isinstance(claim, Ticket):
            return claim
        if claim.owed is not None:
            return self._redeliver(ref, key, claim)
        return self._failed(ref, err, run, None, claim)

    def _owed_message(self, ref: ObjectRef, etag: str, run: Invocation) -> Outcome | None:
        """The image is gone, but an earlier attempt may have stored its paid document with the message still
        owed: deliver it as the claim holder (the upload happened; its consumer is waiting), else None."""
        for key in key_candidates(ref.key):
            outputs = self.sinks.outputs(ref.bucket, key)
            try:
                found = retrying(functools.partial(stored_outcome, self.storage, outputs, etag))
            except StepError as err:
                return Outcome(ref.bucket, key, "retrying", err.code)
            if found is not None and found.pending:
                claim = self._claim(ref, key, etag, run, fresh=False)
                if not isinstance(claim, Ticket):
                    return claim
                if claim.owed is None:
                    claim.release()
                    return Outcome(ref.bucket, key, "duplicate")
                return self._redeliver(ref, key, claim)
        return None

    # -- the one failure path: only a claim holder writes a record ----------------------------------------

    def _failed(self, ref: ObjectRef, err: StepError, run: Invocation, prepared: Prepared | None,
                ticket: Ticket) -> Outcome:
        key = err.found[0] if err.found else ref.key
        if isinstance(err, OcrFailure) and not err.paid:  # no call was made: nothing to record, FC retries
            ticket.release()
            return Outcome(ref.bucket, key, "retrying", err.code)
        doc = error_document(ref, code=err.code, message=err.message, stage=err.stage,
                             transient=not err.final, function_request_id=run.request_id, now=_now(),
                             attempts=err.attempts, http_status=err.status,
                             ocr_request_id=err.request_id if err.stage == "ocr" else None, prepared=prepared)
        try:
            delivered = self.sinks.deliver_error(doc, ticket, ref.bucket, key)
        except StepError:
            ticket.release()  # no record: the next delivery must be free to take over at once
            raise
        if not err.final or delivered.status != "written":
            ticket.release(CLAIM_SUPERSEDED if delivered.status in ("superseded", "gone") else "released")
        if delivered.status in ("superseded", "gone"):
            return Outcome(ref.bucket, key, "skipped", GONE if delivered.status == "gone" else SUPERSEDED)
        if delivered.status == "exists":  # this version's outcome is already stored: nothing failed
            return Outcome(ref.bucket, key, "duplicate")
        if delivered.status != "written":  # pending (only its message is owed), changed, expired: retry later
            return Outcome(ref.bucket, key, "retrying", err.code)
        return Outcome(ref.bucket, key, "error" if err.final else "retrying", err.code)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


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
    app = get_app()
    app.backend.preload()  # the SDKs' imports belong to the instance start, not the first upload
    app.start()
    log.info("instance initialized")


def handler(event: bytes | str | dict[str, Any], context: Any) -> dict[str, Any]:
    return get_app().handle(event, context)

