"""handler: the failure paths that turn any step's failure into exactly one outcome for the version it found
(App._unreadable for reads that failed before the version was known, App._failed for the claim holder), and the
small rules around them (the time budget, a malformed event, FC's retry signal). App is built from the stack's
environment; the failure paths are called directly with a chosen StepError, the rest through App.handle."""

from __future__ import annotations

import datetime
import hashlib
import threading
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from permit_ocr.budget import DEFAULT_TIMEOUT_S, Invocation, timeout_s
from permit_ocr.document import result_document
from permit_ocr.errors import OcrFailure, SourceError, StepError
from permit_ocr.events import ObjectRef
from permit_ocr.handler import App, Outcome, RetryLater
from permit_ocr.layout import (
    JSON_TYPE,
    KIND_ERROR,
    KIND_ERROR_RETRYING,
    KIND_RESULT,
    META_ETAG,
    META_KIND,
    META_PENDING,
    marker_key,
)
from permit_ocr.ledger import RELEASED, RUNNING, Ticket
from permit_ocr.ledger import SUPERSEDED as CLAIM_SUPERSEDED
from permit_ocr.precheck import ImageInfo
from permit_ocr.recognize import OcrResult
from permit_ocr.source import GONE, SUPERSEDED, Prepared
from permit_ocr_local.fcruntime.context import FcContext, FunctionMeta, Upload, oss_event
from permit_ocr_local.fcruntime.stack import LocalStack
from permit_ocr_local.standins.faults import FaultPlan
from permit_ocr_local.standins.http import Request
from support import SAMPLE_TRUTH, Bucket, permit_image

KEY = "uploads/h.png"


def run_of(request_id: str = "REQ-1") -> Invocation:
    return Invocation(request_id, time.monotonic() + 55, set(), threading.Lock())


def upload(bucket: Bucket, size: tuple[int, int] = (928, 626)) -> ObjectRef:
    up = bucket.put(KEY, permit_image(size=size))
    return ObjectRef(bucket.name, KEY, up.etag.upper(), up.size)


def marker_state(bucket: Bucket, ref: ObjectRef, generation: int = 0) -> str | None:
    mkey = marker_key(bucket.name, ref.key, ref.etag or "", generation)
    return str(orjson.loads(bucket.get(mkey))["state"]) if bucket.exists(mkey) else None


def claim(app: App, ref: ObjectRef, request_id: str = "REQ-1") -> Ticket:
    ticket = app.ledger.begin(app.sinks.outputs(ref.bucket, ref.key), ref.bucket, ref.key, ref.etag or "",
                              request_id, expires_at=app.clock() + 60, fresh=True)
    assert isinstance(ticket, Ticket)
    return ticket


@pytest.fixture
def app(make_app: Callable[..., App]) -> App:
    return make_app()


# -- skips: facts about the world, never a record -----------------------------------------------------------------


@pytest.mark.parametrize("code", [GONE, SUPERSEDED])
def test_a_gone_or_superseded_object_is_skipped_without_any_record(app: App, bucket: Bucket, code: str) -> None:
    ref = upload(bucket)
    outcome = app._unreadable(ref, SourceError(code, "m", False), run_of())
    assert outcome == Outcome(bucket.name, KEY, "skipped", code)
    assert not bucket.exists(f"{KEY}.error.json") and marker_state(bucket, ref) is None


def test_a_deleted_image_whose_paid_document_still_owes_its_message_is_redelivered(
        make_app: Callable[..., App], bucket: Bucket, stack: LocalStack) -> None:
    app = make_app(SINKS="oss,mns")
    ref = upload(bucket)
    prepared = Prepared(KEY, ImageInfo("png", 928, 626), ref.size, ref.etag or "", url="http://signed")
    doc = result_document(ref, prepared, OcrResult("OCRRID", {"data": SAMPLE_TRUTH}, 1, 1), app.cfg,
                          function_request_id="REQ-0", now=datetime.datetime.now(datetime.UTC))
    app.storage.put(bucket.name, f"{KEY}.json", orjson.dumps(doc), JSON_TYPE,
                    {META_ETAG: ref.etag or "", META_KIND: KIND_RESULT, META_PENDING: "mns"})
    outcome = app._unreadable(ref, SourceError(GONE, "deleted", False), run_of())
    assert outcome == Outcome(bucket.name, KEY, "redelivered")
    assert stack.mns is not None
    [message] = stack.mns.state.messages(stack.options.topic)
    assert orjson.loads(message.body)["ocr"]["requestId"] == "OCRRID"
    assert bucket.head_meta(f"{KEY}.json")[META_PENDING] == ""


# -- final failures: one error record, the claim stays as the done record -----------------------------------------


def test_a_precheck_verdict_is_recorded_by_the_claim_holder_for_the_version_found(
        app: App, bucket: Bucket, stack: LocalStack) -> None:
    ref = upload(bucket, size=(10, 10))
    event = Upload(bucket.name, KEY, "", ref.size or 0)  # an event without an ETag: the version is the one read
    assert invoke_one(app, event)["outcomes"] == [
        {"bucket": bucket.name, "key": KEY, "status": "error", "code": "illegalImageSize"}]
    record = orjson.loads(bucket.get(f"{KEY}.error.json"))
    assert (record["error"]["code"], record["error"]["stage"], record["error"]["transient"]) == \
        ("illegalImageSize", "precheck", False)
    assert bucket.head_meta(f"{KEY}.error.json")[META_ETAG] == ref.etag
    assert marker_state(bucket, ref) == RUNNING  # taken like any version's claim; never paid for
    assert stack.ocr is not None and stack.ocr.service.stats["calls"] == 0
    assert invoke_one(app, event, "REQ-G")["counts"] == {"duplicate": 1}  # a redelivery writes nothing again


def test_a_final_failure_after_the_claim_keeps_the_claim_as_the_done_record(app: App, bucket: Bucket) -> None:
    ref = upload(bucket)
    ticket = claim(app, ref)
    err = OcrFailure("illegalImageContent", "no permit", transient=False, status=400, request_id="OCRRID")
    outcome = app._failed(ref, err.about(KEY, ref.etag or ""), run_of(), None, ticket)
    assert outcome == Outcome(bucket.name, KEY, "error", "illegalImageContent")
    assert orjson.loads(bucket.get(f"{KEY}.error.json"))["error"]["ocrRequestId"] == "OCRRID"
    assert marker_state(bucket, ref) == RUNNING and not ticket.released


def test_a_failure_about_an_overwritten_version_releases_the_claim_and_is_skipped(app: App, bucket: Bucket) -> None:
    ref = upload(bucket)
    ticket = claim(app, ref)
    upload(bucket, size=(929, 626))
    err = OcrFailure("illegalImageContent", "no permit", transient=False).about(KEY, ref.etag or "")
    assert app._failed(ref, err, run_of(), None, ticket) == Outcome(bucket.name, KEY, "skipped", SUPERSEDED)
    assert not bucket.exists(f"{KEY}.error.json")
    assert marker_state(bucket, ref) == CLAIM_SUPERSEDED


# -- transient failures: a record only by the claim's holder, then FC retries -------------------------------------


def test_a_transient_failure_before_the_claim_takes_it_leaves_a_retrying_record_and_releases_it(
        app: App, bucket: Bucket) -> None:
    ref = upload(bucket)
    err = SourceError("ServiceUnavailable", "busy", True).about(KEY, ref.etag or "")
    outcome = app._unreadable(ref, err, run_of())
    assert outcome == Outcome(bucket.name, KEY, "retrying", "ServiceUnavailable")
    assert bucket.head_meta(f"{KEY}.error.json")[META_KIND] == KIND_ERROR_RETRYING
    assert marker_state(bucket, ref) == RELEASED  # the next delivery may take over at once


def test_a_transient_failure_while_another_attempt_holds_the_claim_writes_nothing(app: App, bucket: Bucket) -> None:
    ref = upload(bucket)
    claim(app, ref, "REQ-OTHER")
    err = StepError("RequestError", "reset", transient=True, stage="source").about(KEY, ref.etag or "")
    assert app._unreadable(ref, err, run_of()) == Outcome(bucket.name, KEY, "retrying", "ClaimHeld")
    assert not bucket.exists(f"{KEY}.error.json")
    assert marker_state(bucket, ref) == RUNNING


def test_a_transient_failure_for_a_version_already_done_is_a_duplicate(app: App, bucket: Bucket) -> None:
    ref = upload(bucket)
    claim(app, ref, "REQ-0")
    app.storage.put(bucket.name, f"{KEY}.error.json", b"{}", JSON_TYPE,
                    {META_ETAG: ref.etag or "", META_KIND: KIND_ERROR})
    err = SourceError("ServiceUnavailable", "busy", True).about(KEY, ref.etag or "")
    assert app._unreadable(ref, err, run_of()) == Outcome(bucket.name, KEY, "duplicate")


def test_a_transient_failure_without_a_known_version_writes_nothing(app: App, bucket: Bucket) -> None:
    ref = ObjectRef(bucket.name, KEY)  # the object was never read and the event named no ETag
    err = SourceError("ServiceUnavailable", "busy", True)
    assert app._unreadable(ref, err, run_of()) == Outcome(bucket.name, KEY, "retrying", "NoVersion")
    assert not bucket.exists(f"{KEY}.error.json")


def test_a_transient_failure_after_the_claim_leaves_a_retrying_record_and_releases_the_claim(
        app: App, bucket: Bucket) -> None:
    ref = upload(bucket)
    ticket = claim(app, ref)
    err = OcrFailure("Throttling.User", "slow down", transient=True, status=429, attempts=3)
    outcome = app._failed(ref, err.about(KEY, ref.etag or ""), run_of(), None, ticket)
    assert outcome == Outcome(bucket.name, KEY, "retrying", "Throttling.User")
    record = orjson.loads(bucket.get(f"{KEY}.error.json"))
    assert (record["attempts"], record["error"]["httpStatus"]) == (3, 429)
    assert ticket.released and marker_state(bucket, ref) == RELEASED


def test_when_no_record_can_be_stored_the_claim_is_released_and_the_failure_raised(
        app: App, bucket: Bucket, attach_faults: Callable[..., FaultPlan], no_oss_pauses: None) -> None:
    ref = upload(bucket)
    ticket = claim(app, ref)
    plan = attach_faults("oss", FaultPlan(seed=3, only=lambda service, req: isinstance(req, Request)
                                          and req.method == "PUT" and req.path.endswith(".error.json")))
    plan.set("oss", server_error=1.0)  # the error record cannot be written; the marker still can
    with pytest.raises(StepError) as info:
        app._failed(ref, OcrFailure("illegalImageContent", "m", transient=False).about(KEY, ref.etag or ""),
                    run_of(), None, ticket)
    assert info.value.stage == "sink"
    plan.rates.clear()
    assert marker_state(bucket, ref) == RELEASED  # FC's retry may take over at once


# -- around the failure path ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("context", "environ", "seconds"), [
    (SimpleNamespace(function=SimpleNamespace(timeout=120)), {}, 120.0),
    (SimpleNamespace(function=None), {"FC_FUNCTION_TIMEOUT": "30"}, 30.0),
    (None, {"FC_TIMEOUT": "15"}, 15.0),
    (None, {"FC_FUNCTION_TIMEOUT": "soon"}, DEFAULT_TIMEOUT_S),
    (None, {}, DEFAULT_TIMEOUT_S),
])
def test_the_time_budget_comes_from_fc_else_a_safe_default(context: Any, environ: dict[str, str],
                                                          seconds: float) -> None:
    assert timeout_s(context, environ) == seconds


def test_a_malformed_event_is_answered_not_raised_so_fc_does_not_retry_it(app: App) -> None:
    summary = app.handle(b"{not json", FcContext(request_id="REQ-M", function=FunctionMeta(timeout=60)))
    assert summary["counts"] == {"malformed": 1} and summary["records"] == 0 and "error" in summary


def test_a_record_left_retrying_makes_the_invocation_raise_for_fcs_retry(app: App, bucket: Bucket,
                                                                         stack: LocalStack) -> None:
    up = bucket.put(KEY, permit_image())
    claim(app, ObjectRef(bucket.name, KEY, up.etag.upper()), "REQ-OTHER")  # a live holder: ClaimHeld
    with pytest.raises(RetryLater) as info:
        app.handle(oss_event([up]), FcContext(request_id="REQ-R", function=FunctionMeta(timeout=60)))
    assert info.value.summary["counts"] == {"retrying": 1}
    assert info.value.summary["outcomes"] == [{"bucket": bucket.name, "key": KEY, "status": "retrying",
                                               "code": "ClaimHeld"}]


# -- the data flow around the paid call ------------------------------------------------------------------------------


def invoke_one(app: App, up: Upload, request_id: str = "REQ-F") -> dict[str, Any]:
    return app.handle(oss_event([up]), FcContext(request_id=request_id, function=FunctionMeta(timeout=60)))


def test_a_key_the_guards_refuse_costs_no_read_and_no_call(app: App, bucket: Bucket, stack: LocalStack) -> None:
    up = bucket.put("uploads/notes.txt", b"not for us")
    assert stack.oss is not None and stack.ocr is not None
    gets = stack.oss.service.stats["GetObject"]
    summary = invoke_one(app, up)
    assert summary["counts"] == {"skipped": 1}
    assert stack.oss.service.stats["GetObject"] == gets and stack.ocr.service.stats["calls"] == 0


def test_when_ocr_cannot_fetch_the_signed_url_the_pinned_bytes_are_sent_and_billed_once(
        app: App, bucket: Bucket, stack: LocalStack, lose_oss_answers: Callable[..., None]) -> None:
    assert stack.ocr is not None

    def signed_get(request: Request) -> bool:
        return request.method == "GET" and "signature" in request.raw_query.lower()

    lose_oss_answers(signed_get, 99)  # every fetch of the signed URL fails on OCR's side
    image = permit_image()
    up = bucket.put(KEY, image)
    assert invoke_one(app, up)["counts"] == {"result": 1}
    doc = orjson.loads(bucket.get(f"{KEY}.json"))
    assert doc["ocr"]["imageSource"] == "body"
    stats = stack.ocr.service.stats
    assert (stats["calls"], stats["IllegalImageUrl"]) == (3, 2)  # the URL tried twice (never billed), then the bytes
    assert [c.source for c in stack.ocr.service.calls] == ["body"]
    assert stack.ocr.service.billed_by_image()[hashlib.sha256(image).hexdigest()] == 1


def test_an_image_overwritten_while_ocr_ran_gets_no_outcome_and_its_claim_is_released(
        app: App, bucket: Bucket, stack: LocalStack) -> None:
    assert stack.ocr is not None
    inner = stack.ocr.service.backend
    first = bucket.put(KEY, permit_image())

    class OverwriteDuringCall:
        def recognize(self, image: bytes, output_figure: bool) -> dict[str, Any]:
            bucket.put(KEY, permit_image(size=(929, 626)))  # the next upload lands while OCR runs
            return inner.recognize(image, output_figure)

    stack.ocr.service.backend = OverwriteDuringCall()
    summary = invoke_one(app, first)
    assert summary["outcomes"] == [{"bucket": bucket.name, "key": KEY, "status": "skipped", "code": SUPERSEDED}]
    assert not bucket.exists(f"{KEY}.json")
    assert marker_state(bucket, ObjectRef(bucket.name, KEY, first.etag.upper())) == CLAIM_SUPERSEDED
