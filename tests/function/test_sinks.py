"""sinks: storing an outcome bound to the image version it describes (the version check before the write),
one outcome per key, the pending flag that makes a flaky MNS cost no second OCR call, and the receipt of
SINKS=mns. Sinks methods called directly, with the real OSS and MNS SDKs against the stand-ins."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

import alibabacloud_oss_v2 as oss
import orjson
import pytest

from permit_ocr import log
from permit_ocr.config import Config, load_config
from permit_ocr.credentials import resolve
from permit_ocr.document import error_document, result_document
from permit_ocr.errors import SinkError
from permit_ocr.events import ObjectRef
from permit_ocr.layout import (
    KIND_ERROR,
    KIND_ERROR_RETRYING,
    KIND_RECEIPT,
    KIND_RESULT,
    META_ETAG,
    META_KIND,
    META_PENDING,
    META_REQUEST,
)
from permit_ocr.precheck import ImageInfo
from permit_ocr.recognize import OcrResult
from permit_ocr.sinks import Delivered, Sinks, StoredOutcome, existing_outcome, stored_outcome
from permit_ocr.source import Prepared
from permit_ocr.storage import ObjectHead, Storage
from permit_ocr_local.fcruntime.stack import LocalStack
from permit_ocr_local.standins.faults import FaultPlan
from support import SAMPLE_TRUTH, Bucket, Held, permit_image

KEY = "uploads/s.png"
NOW = datetime.datetime(2026, 12, 1, 10, 0, tzinfo=datetime.UTC)

MakeSinks = Callable[..., Sinks]


@pytest.fixture(autouse=True)
def request_bound() -> None:
    log.bind_request("FCRID-1")  # what the handler does first: every object written names its request


@pytest.fixture
def make_sinks(env: dict[str, str], storage: Storage) -> MakeSinks:
    def build(**overrides: str) -> Sinks:
        return Sinks(load_config({**env, **overrides}), storage, lambda: resolve(env))

    return build


@pytest.fixture
def mns_outage(attach_faults: Callable[..., FaultPlan]) -> FaultPlan:
    plan = attach_faults("mns")
    plan.set("mns", server_error=1.0)
    return plan


@pytest.fixture
def no_pauses(no_oss_pauses: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("permit_ocr.sinks.time.sleep", lambda s: None)  # and none between publish attempts
    monkeypatch.setattr("permit_ocr.fence.time.sleep", lambda s: None)  # nor between fenced write attempts


def upload(bucket: Bucket, key: str = KEY, size: tuple[int, int] = (928, 626)) -> tuple[ObjectRef, str]:
    up = bucket.put(key, permit_image(size=size))
    etag = up.etag.upper()
    return ObjectRef(bucket.name, key, etag, up.size), etag


def result_doc(ref: ObjectRef, cfg: Config, number: str = "H10387877") -> dict[str, Any]:
    data = {"data": {**SAMPLE_TRUTH, "permitNumber": number}, "prism_keyValueInfo": []}
    prepared = Prepared(ref.key, ImageInfo("png", 928, 626), ref.size, ref.etag or "", url="http://signed")
    return result_document(ref, prepared, OcrResult("OCRRID", data, 1, 300), cfg, function_request_id="FCRID-1",
                           now=NOW)


def error_doc(ref: ObjectRef, *, transient: bool, code: str = "illegalImageSize") -> dict[str, Any]:
    return error_document(ref, code=code, message="m", stage="precheck", transient=transient,
                          function_request_id="FCRID-1", now=NOW)


def messages(stack: LocalStack) -> list[dict[str, Any]]:
    assert stack.mns is not None
    return [orjson.loads(m.body) for m in stack.mns.state.messages(stack.options.topic)]


# -- existing_outcome / stored_outcome ---------------------------------------------------------------------------


def head(etag: str, kind: str = KIND_RESULT, pending: str = "") -> ObjectHead:
    return ObjectHead("OUTPUTETAG", 10, {META_ETAG: etag, META_KIND: kind, META_PENDING: pending})


def test_an_output_is_this_versions_only_if_it_names_its_etag_in_any_case() -> None:
    assert existing_outcome(head("abc"), "ABC") == "done"
    assert existing_outcome(head("ABC", pending="mns"), "abc") == "pending"
    assert existing_outcome(head("OTHER"), "ABC") is None
    assert existing_outcome(None, "ABC") is None
    assert existing_outcome(head("ABC"), None) is None
    assert existing_outcome(ObjectHead("E", 1, {}), "ABC") is None  # not written by this function


def test_a_stored_result_is_found_before_an_error_record(make_sinks: MakeSinks, storage: Storage,
                                                         bucket: Bucket) -> None:
    _, etag = upload(bucket)
    sinks = make_sinks()
    out = sinks.outputs(bucket.name, KEY)
    assert stored_outcome(storage, out, etag) is None
    storage.put(bucket.name, out.error_key, b"{}", "application/json", {META_ETAG: etag, META_KIND: KIND_ERROR})
    storage.put(bucket.name, out.result_key, b"{}", "application/json",
                {META_ETAG: etag, META_KIND: KIND_RESULT, META_REQUEST: "R"})
    assert stored_outcome(storage, out, etag) == StoredOutcome(out.result_key, KIND_RESULT, False, "R",
                                                               sibling=out.error_key)
    assert stored_outcome(storage, out, "OTHER") is None


# -- the version check -------------------------------------------------------------------------------------------


def test_a_result_for_the_current_version_is_stored_beside_it_bound_to_it(make_sinks: MakeSinks, cfg: Config,
                                                                         bucket: Bucket, stack: LocalStack) -> None:
    ref, etag = upload(bucket)
    delivered = make_sinks().deliver_result(result_doc(ref, cfg), Held(etag), bucket.name, KEY)
    assert delivered == Delivered("written", f"{KEY}.json")
    assert bucket.head_meta(f"{KEY}.json") == {META_ETAG: etag, META_KIND: KIND_RESULT, META_PENDING: "",
                                               META_REQUEST: "FCRID-1"}
    assert orjson.loads(bucket.get(f"{KEY}.json"))["normalized"]["permitNumber"] == "H10387877"
    assert messages(stack) == []  # SINKS=oss: no message


def test_a_result_for_an_overwritten_image_is_not_stored(make_sinks: MakeSinks, cfg: Config,
                                                         bucket: Bucket) -> None:
    ref, etag = upload(bucket)
    upload(bucket, size=(929, 626))
    assert make_sinks().deliver_result(result_doc(ref, cfg), Held(etag), bucket.name, KEY) == Delivered("superseded")
    assert not bucket.exists(f"{KEY}.json")


def test_a_result_for_a_deleted_image_is_not_stored(make_sinks: MakeSinks, cfg: Config, bucket: Bucket) -> None:
    ref, etag = upload(bucket)
    bucket.client.delete_object(oss.DeleteObjectRequest(bucket=bucket.name, key=KEY))
    assert make_sinks().deliver_result(result_doc(ref, cfg), Held(etag), bucket.name, KEY) == Delivered("gone")
    assert not bucket.exists(f"{KEY}.json")


@pytest.mark.parametrize("overrides", [{"OUTPUT_PREFIX": "ocr/"}, {"OUTPUT_BUCKET": "permit-ocr-out"}])
def test_the_version_check_holds_when_outputs_are_kept_apart(stack: LocalStack, make_sinks: MakeSinks,
                                                             cfg: Config, bucket: Bucket,
                                                             overrides: dict[str, str]) -> None:
    if "OUTPUT_BUCKET" in overrides:
        bucket.client.put_bucket(oss.PutBucketRequest(bucket="permit-ocr-out"))
    sinks = make_sinks(**overrides)
    out = sinks.outputs(bucket.name, KEY)
    ref, etag = upload(bucket)
    assert sinks.deliver_result(result_doc(ref, cfg), Held(etag), bucket.name, KEY).status == "written"
    assert Bucket(stack, out.bucket).head_meta(out.result_key)[META_ETAG] == etag
    upload(bucket, size=(929, 626))
    assert sinks.deliver_result(result_doc(ref, cfg), Held(etag), bucket.name, KEY) == Delivered("superseded")


# -- one outcome per key ----------------------------------------------------------------------------------------


def test_a_result_replaces_the_error_record_the_key_had(make_sinks: MakeSinks, cfg: Config, bucket: Bucket) -> None:
    sinks = make_sinks()
    old, old_etag = upload(bucket, size=(10, 10))
    assert sinks.deliver_error(error_doc(old, transient=False), Held(old_etag), bucket.name, KEY).status == "written"
    ref, etag = upload(bucket)
    assert sinks.deliver_result(result_doc(ref, cfg), Held(etag), bucket.name, KEY).status == "written"
    assert bucket.exists(f"{KEY}.json") and not bucket.exists(f"{KEY}.error.json")


def test_a_final_error_replaces_the_result_of_an_older_version(make_sinks: MakeSinks, cfg: Config,
                                                               bucket: Bucket) -> None:
    sinks = make_sinks()
    ref, etag = upload(bucket)
    sinks.deliver_result(result_doc(ref, cfg), Held(etag), bucket.name, KEY)
    broken, broken_etag = upload(bucket, size=(10, 10))
    assert sinks.deliver_error(error_doc(broken, transient=False), Held(broken_etag), bucket.name,
                               KEY).status == "written"
    assert not bucket.exists(f"{KEY}.json")
    assert bucket.head_meta(f"{KEY}.error.json")[META_KIND] == KIND_ERROR


# -- transient records -------------------------------------------------------------------------------------------


def test_a_transient_failure_leaves_a_retrying_record_that_a_final_outcome_replaces(
        make_sinks: MakeSinks, cfg: Config, bucket: Bucket) -> None:
    sinks = make_sinks()
    ref, etag = upload(bucket)
    assert sinks.deliver_error(error_doc(ref, transient=True, code="Throttling.User"), Held(etag), bucket.name,
                               KEY) == Delivered("written", f"{KEY}.error.json")
    assert bucket.head_meta(f"{KEY}.error.json")[META_KIND] == KIND_ERROR_RETRYING
    sinks.deliver_result(result_doc(ref, cfg), Held(etag), bucket.name, KEY)
    assert not bucket.exists(f"{KEY}.error.json")


def test_a_retrying_record_never_lands_beside_the_versions_own_result(make_sinks: MakeSinks, cfg: Config,
                                                                      bucket: Bucket) -> None:
    sinks = make_sinks()
    ref, etag = upload(bucket)
    sinks.deliver_result(result_doc(ref, cfg), Held(etag), bucket.name, KEY)
    assert sinks.record_retrying(error_doc(ref, transient=True), Held(etag), bucket.name, KEY) == \
        Delivered("exists", f"{KEY}.json")
    assert not bucket.exists(f"{KEY}.error.json")


def test_a_retrying_record_for_an_overwritten_image_is_not_written(make_sinks: MakeSinks, bucket: Bucket) -> None:
    ref, etag = upload(bucket)
    upload(bucket, size=(929, 626))
    assert make_sinks().record_retrying(error_doc(ref, transient=True), Held(etag), bucket.name, KEY) == \
        Delivered("superseded")
    assert not bucket.exists(f"{KEY}.error.json")


# -- MNS: the pending flag and the receipt ------------------------------------------------------------------------


def test_with_oss_and_mns_the_result_is_stored_then_published_then_settled(make_sinks: MakeSinks, cfg: Config,
                                                                          bucket: Bucket, stack: LocalStack) -> None:
    ref, etag = upload(bucket)
    doc = result_doc(ref, cfg)
    delivered = make_sinks(SINKS="oss,mns").deliver_result(doc, Held(etag), bucket.name, KEY)
    assert delivered.status == "written" and delivered.message_id
    assert messages(stack) == [orjson.loads(orjson.dumps(doc))]
    assert bucket.head_meta(f"{KEY}.json")[META_PENDING] == ""
    assert orjson.loads(bucket.get(f"{KEY}.json")) == messages(stack)[0]


def test_an_mns_outage_leaves_the_document_stored_and_pending_and_redeliver_settles_it(
        make_sinks: MakeSinks, cfg: Config, storage: Storage, bucket: Bucket, stack: LocalStack,
        mns_outage: FaultPlan, no_pauses: None) -> None:
    sinks = make_sinks(SINKS="oss,mns")
    ref, etag = upload(bucket)
    with pytest.raises(SinkError) as info:
        sinks.deliver_result(result_doc(ref, cfg), Held(etag), bucket.name, KEY)
    assert (info.value.sink, info.value.transient) == ("mns", True)
    assert bucket.head_meta(f"{KEY}.json")[META_PENDING] == "mns"
    found = stored_outcome(storage, sinks.outputs(bucket.name, KEY), etag)
    assert found is not None and found.pending and found.kind == KIND_RESULT

    mns_outage.rates.clear()
    delivered = sinks.redeliver(Held(etag), bucket.name, KEY, found)
    assert delivered.status == "written" and delivered.message_id
    assert bucket.head_meta(f"{KEY}.json")[META_PENDING] == ""
    assert [m["data"]["data"]["permitNumber"] for m in messages(stack)] == ["H10387877"]


def test_a_retrying_record_is_not_written_over_a_pending_result(make_sinks: MakeSinks, cfg: Config,
                                                                bucket: Bucket, mns_outage: FaultPlan,
                                                                no_pauses: None) -> None:
    sinks = make_sinks(SINKS="oss,mns")
    ref, etag = upload(bucket)
    with pytest.raises(SinkError):
        sinks.deliver_result(result_doc(ref, cfg), Held(etag), bucket.name, KEY)
    assert sinks.record_retrying(error_doc(ref, transient=True), Held(etag), bucket.name, KEY) == \
        Delivered("pending", f"{KEY}.json")  # FC's retry must only re-publish
    assert not bucket.exists(f"{KEY}.error.json")


def test_with_mns_alone_a_receipt_without_personal_data_replaces_the_published_result(
        make_sinks: MakeSinks, cfg: Config, bucket: Bucket, stack: LocalStack) -> None:
    ref, etag = upload(bucket)
    delivered = make_sinks(SINKS="mns").deliver_result(result_doc(ref, cfg), Held(etag), bucket.name, KEY)
    receipt = orjson.loads(bucket.get(f"{KEY}.json"))
    assert receipt["type"] == "receipt" and receipt["messageId"] == delivered.message_id
    assert "H10387877" not in bucket.get(f"{KEY}.json").decode() and "data" not in receipt
    assert bucket.head_meta(f"{KEY}.json")[META_KIND] == KIND_RECEIPT
    assert messages(stack)[0]["data"]["data"]["permitNumber"] == "H10387877"


def test_an_error_record_with_mns_alone_stays_stored_after_its_message(make_sinks: MakeSinks, bucket: Bucket,
                                                                       stack: LocalStack) -> None:
    ref, etag = upload(bucket, size=(10, 10))
    make_sinks(SINKS="mns").deliver_error(error_doc(ref, transient=False), Held(etag), bucket.name, KEY)
    assert orjson.loads(bucket.get(f"{KEY}.error.json"))["type"] == "error"
    assert [m["type"] for m in messages(stack)] == ["error"]


def test_an_oss_outage_while_storing_is_a_transient_oss_sink_error(make_sinks: MakeSinks, cfg: Config,
                                                                   bucket: Bucket, oss_faults: FaultPlan,
                                                                   no_pauses: None) -> None:
    ref, etag = upload(bucket)
    oss_faults.set("oss", server_error=1.0)
    with pytest.raises(SinkError) as info:
        make_sinks().deliver_result(result_doc(ref, cfg), Held(etag), bucket.name, KEY)
    assert (info.value.sink, info.value.code, info.value.transient) == ("oss", "ServiceUnavailable", True)
