"""Converted uploads after the version's claim: one image, or each page of a PDF, through the same paid call,
documents and fenced writes as any image (docs/reliability.md "Converted uploads and PDF pages").

One image (HEIC, over the limits, turned, CMYK, ...): the version's claim covers it like any image. The bytes of
exactly that version are read, converted (convert.py) and sent in the body: one claim, at most one paid call.

A PDF: **each page is an image of its own, named ``<key>.page-<n>``** (layout.page_stem):
- its claim is ``.permit-ocr/markers/<digest of bucket/key.page-n>/<ETAG>.<gen>``, taken before its paid call,
  so a page is paid for at most once per version, whoever delivers the event and however often;
- its outcome is ``<key>.page-<n>.json`` (a result) or ``<key>.page-<n>.error.json`` (its error record), beside
  the PDF (or under OUTPUT_PREFIX), written through the fence on the PDF itself: an overwritten PDF gets no page
  outcome; a stored page outcome is its done record, so a redelivery pays only for the pages still missing;
- the key's own outcome, what a reader finds at ``<key>.json``, is an index of the pages (``"type": "pages"``:
  each page's outcome and where it is), written by the holder of the version's claim once every page has a
  final one; or ``<key>.error.json`` when the PDF cannot be read at all (a password, damage, more than
  PDF_MAX_PAGES pages): then no page is claimed and nothing is paid.
The version's claim is held (and extended page by page) while its pages are worked, so one delivery works a PDF
at a time; a page's own claim keeps its paid call exclusive even if a slow holder's version claim ran out.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import orjson

from . import convert, pdf
from .answers import Unsaved
from .backend import Backend
from .budget import SAFETY_MARGIN_S, Invocation
from .config import Config
from .document import pages_document
from .errors import StepError
from .events import ObjectRef
from .fence import stored_outcome
from .layout import KIND_ERROR, page_stem
from .ledger import SUPERSEDED as CLAIM_SUPERSEDED
from .ledger import Defer, Done, Ledger, Ticket
from .outcome import Outcome
from .recognize import Recognizer
from .sinks import Delivered, Sinks
from .source import SUPERSEDED, Prepared, read_pinned
from .storage import Storage


class App(Protocol):
    """What this module uses of handler.App (the handler imports this module, so not the other way round)."""

    cfg: Config
    storage: Storage
    ledger: Ledger
    recognizer: Recognizer
    backend: Backend
    sinks: Sinks
    unsaved: Unsaved[Any]
    clock: Callable[[], float]
    _environ: Mapping[str, str]

    def _failed(self, ref: ObjectRef, err: StepError, run: Invocation, prepared: Prepared | None,
                ticket: Ticket) -> Outcome: ...

    def _recognize_and_deliver(self, ref: ObjectRef, prepared: Prepared, ticket: Ticket,
                               run: Invocation) -> Outcome: ...

    def _settled(self, ref: ObjectRef, key: str, ticket: Ticket, delivered: Delivered, status: str,
                 code: str | None) -> Outcome: ...

    def _redeliver(self, ref: ObjectRef, key: str, ticket: Ticket) -> Outcome: ...

    def _fresh(self, prepared: Prepared) -> bool: ...

    def _claim_ttl_s(self, run: Invocation) -> float: ...

    def _moved_on(self, bucket: str, key: str, claim: Ticket) -> Outcome | None: ...


def recognize_converted(app: App, ref: ObjectRef, prepared: Prepared, ticket: Ticket, run: Invocation) -> Outcome:
    """The claim holder's work for an upload the precheck marked for conversion (``prepared.info.convert``)."""
    assert prepared.info is not None
    try:
        if prepared.body is None:  # what even reading the upload would not fit in: notEnoughMemory, never an OOM kill
            convert.check_read(prepared.size, convert.memory_mb(app._environ))
        data = prepared.body if prepared.body is not None else read_pinned(app.storage, ref.bucket, prepared)
        if prepared.info.format == "pdf":
            return _pdf(app, ref, prepared, data, ticket, run)
        converted = convert.convert_image(data, prepared.info, app.cfg.max_image_bytes,
                                          convert.memory_mb(app._environ))
    except StepError as err:
        return app._failed(ref, err.about(prepared.key, prepared.etag), run, prepared, ticket)
    del data
    sent = dataclasses.replace(prepared, info=converted.info, body=converted.body, url=None, input=converted.input)
    return app._recognize_and_deliver(ref, sent, ticket, run)


# -- a PDF, page by page --------------------------------------------------------------------------------------


def _pdf(app: App, ref: ObjectRef, prepared: Prepared, data: bytes, ticket: Ticket, run: Invocation) -> Outcome:
    doc = pdf.open_pdf(data, app.cfg.pdf_max_pages)  # ConvertError: recorded as the key's outcome, nothing paid
    summaries: list[dict[str, Any]] = []
    for page in range(1, len(doc) + 1):
        if not _time_for_a_page(app, ticket, run):  # FC's retry carries on where this one stopped
            ticket.release()
            return Outcome(ref.bucket, prepared.key, "retrying", "NoTimeLeft")
        done = _page(app, ref, prepared, doc, page, run)
        if not isinstance(done, dict):
            ticket.release(CLAIM_SUPERSEDED if done.code in (SUPERSEDED, "NoSuchKey") else "released")
            return dataclasses.replace(done, key=prepared.key)
        summaries.append(done)
    index = pages_document(ref, prepared, summaries, function_request_id=run.request_id, now=_now())
    try:
        delivered = app.sinks.deliver_pages(index, ticket, ref.bucket, prepared.key)
    except StepError as err:
        return app._failed(ref, err.about(prepared.key, prepared.etag), run, prepared, ticket)
    results = [s for s in summaries if s["outcome"] == "result"]
    if results:
        return app._settled(ref, prepared.key, ticket, delivered, "result",
                            "needsReview" if any(s["needsReview"] for s in results) else None)
    return app._settled(ref, prepared.key, ticket, delivered, "error", summaries[0]["code"])


def _time_for_a_page(app: App, ticket: Ticket, run: Invocation) -> bool:
    """Room for one more page's recognition in the invocation (in a cascade the engine's call and the paid one),
    and the version's claim held that long."""
    worst = app.backend.worst_call_s() + SAFETY_MARGIN_S
    if run.hard_deadline - time.monotonic() < worst:
        return False
    return ticket.time_left() >= worst or ticket.extend(app.clock() + app._claim_ttl_s(run))


def _page(app: App, ref: ObjectRef, prepared: Prepared, doc: Any, page: int,
          run: Invocation) -> dict[str, Any] | Outcome:
    """Page ``page``'s outcome (stored now or earlier) as the index lists it, or the Outcome that stops the PDF
    for now (its claim held elsewhere, no time, a transient failure, the PDF overwritten)."""
    view = _for_page(app, page)
    out = view.sinks.outputs(ref.bucket, prepared.key)
    try:
        claim = app.ledger.begin(out, ref.bucket, page_stem(prepared.key, page), prepared.etag, run.request_id,
                                 expires_at=app.clock() + app._claim_ttl_s(run), fresh=app._fresh(prepared),
                                 replay=ref.replay)
    except StepError as err:
        return Outcome(ref.bucket, prepared.key, "retrying", err.code)
    if isinstance(claim, Defer):
        return Outcome(ref.bucket, prepared.key, "retrying", "ClaimHeld")
    if isinstance(claim, Done):
        return _stored_summary(app, out.bucket, claim.outcome.key, page)
    if claim.owed is not None:  # stored; its message still owed
        outcome = view._redeliver(ref, prepared.key, claim)
        if outcome.status != "redelivered":
            return outcome
        return _stored_summary(app, out.bucket, claim.owed.key, page)
    if claim.takeover and (moved := app._moved_on(ref.bucket, prepared.key, claim)) is not None:
        return moved  # the page's earlier holder let go: maybe because the PDF was overwritten since
    before = dataclasses.replace(prepared, url=None, body=None, input=_page_input(prepared, page, len(doc)))
    try:
        assert prepared.info is not None
        converted = pdf.convert_page(doc, page, prepared.info, app.cfg.max_image_bytes,
                                     convert.memory_mb(app._environ), prepared.size or 0)
    except StepError as err:
        outcome = view._failed(ref, err.about(prepared.key, prepared.etag), run, before, claim)
    else:
        sent = dataclasses.replace(prepared, info=converted.info, body=converted.body, url=None,
                                   input=converted.input)
        outcome = view._recognize_and_deliver(ref, sent, claim, run)
    if outcome.status == "result":
        return {"page": page, "outcome": "result", "key": out.result_key,
                "needsReview": outcome.code == "needsReview", "code": None}
    if outcome.status == "error":
        return {"page": page, "outcome": "error", "key": out.error_key, "needsReview": None, "code": outcome.code}
    if outcome.status == "duplicate":  # stored meanwhile: the page's record found its outcome there
        try:
            found = stored_outcome(app.storage, out, prepared.etag)
        except StepError as err:
            return Outcome(ref.bucket, prepared.key, "retrying", err.code)
        if found is not None:
            return _stored_summary(app, out.bucket, found.key, page)
    return outcome


def _stored_summary(app: App, bucket: str, key: str, page: int) -> dict[str, Any] | Outcome:
    """What the index says of a page whose outcome an earlier attempt stored (read back: one GET)."""
    try:
        doc = orjson.loads(app.storage.read_all(bucket, key).data)
    except (StepError, orjson.JSONDecodeError) as err:
        return Outcome(bucket, key, "retrying", getattr(err, "code", "InvalidStoredDocument"))
    if doc.get("type") == KIND_ERROR:
        return {"page": page, "outcome": "error", "key": key, "needsReview": None, "code": doc["error"]["code"]}
    return {"page": page, "outcome": "result", "key": key, "needsReview": bool(doc.get("needsReview")),
            "code": None}


def _page_input(prepared: Prepared, page: int, pages: int) -> dict[str, Any]:
    """What an error record of a page that could not be rendered says of its input."""
    return {"format": "pdf", "width": None, "height": None, "page": page, "pages": pages, "dpi": None,
            "rotation": 0, "mirrored": False, "scale": None, "reasons": list(prepared.info.convert if prepared.info
                                                                             else ("pdf",))}


class _PageAnswers:
    """The instance's paid answers kept through an OSS outage, one slot per page of a PDF version."""

    def __init__(self, kept: Unsaved[Any], page: int) -> None:
        self._kept, self._page = kept, page

    def keep(self, version: tuple[str, str, str], answer: Any) -> None:
        self._kept.keep((version[0], page_stem(version[1], self._page), version[2]), answer)

    def take(self, version: tuple[str, str, str]) -> Any:
        return self._kept.take((version[0], page_stem(version[1], self._page), version[2]))


def _for_page(app: App, page: int) -> App:
    """The app writing one page's outcome: the same ledger, paid call and fence, with the page's outputs and
    the page's own slot for an answer OSS would not take."""
    view = copy.copy(app)
    view.sinks = app.sinks.for_page(page)
    view.unsaved = _PageAnswers(app.unsaved, page)  # type: ignore[assignment]
    return view


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)
