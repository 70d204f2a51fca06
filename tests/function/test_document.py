"""document: from the OCR answer's ``Data`` string to the result document (Data untouched, the review beside it,
dated in China time) and the error record; both must match the published JSON Schemas."""

from __future__ import annotations

import datetime
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from permit_ocr import OCR_ACTION, SCHEMA_VERSION
from permit_ocr.config import Config, load_config
from permit_ocr.document import encode, error_document, result_document, rfc3339, source_block
from permit_ocr.errors import OcrFailure
from permit_ocr.events import ObjectRef
from permit_ocr.precheck import ImageInfo
from permit_ocr.recognize import OcrResult, decode_data
from permit_ocr.source import Prepared
from permit_ocr_local.tools.schemas import validate_document
from support import SAMPLE_TRUTH

REF = ObjectRef("photos", "uploads/a%20b.png", "EVENTETAG", 1000, "cn-hangzhou", "ObjectCreated:PutObject",
                "2026-12-01T10:00:00.000Z", "OSSRID")
PREPARED = Prepared("uploads/a b.png", ImageInfo("png", 928, 626), 123456, "FOUNDETAG", url="http://signed")
NOW = datetime.datetime(2026, 12, 1, 10, 0, 0, 123456, tzinfo=datetime.UTC)


def config(**env: str) -> Config:
    return load_config({"SOURCE_BUCKETS": "photos", **env})


def data_string(fields: dict[str, Any] | None = None, prob: int = 100, **extra: Any) -> str:
    """``Data`` as the API sends it: a JSON string, with one prism entry per field."""
    f = SAMPLE_TRUTH if fields is None else fields
    prism = [{"key": k, "keyProb": 100, "value": v, "valueProb": prob} for k, v in f.items()]
    return orjson.dumps({"data": f, "prism_keyValueInfo": prism, "height": 626, "width": 928, **extra}).decode()


def result_from(raw: str, *, now: datetime.datetime = NOW, cfg: Config | None = None,
                prepared: Prepared = PREPARED) -> dict[str, Any]:
    ocr = OcrResult("OCRRID", decode_data(raw, "OCRRID"), 1, 420)
    doc = result_document(REF, prepared, ocr, cfg or config(), function_request_id="FCRID", now=now)
    assert validate_document(doc) == []
    return doc


def test_a_clean_permit_gives_a_result_needing_no_review_with_data_kept_as_sent() -> None:
    raw = data_string(ftype=0)
    doc = result_from(raw)
    assert doc["data"] == orjson.loads(raw)  # untouched, unknown keys too
    assert doc["needsReview"] is False and doc["reviewReasons"] == []
    assert doc["normalized"]["permitNumber"] == "H10387877"
    assert (doc["schemaVersion"], doc["type"], doc["functionRequestId"]) == (SCHEMA_VERSION, "result", "FCRID")
    assert doc["ocr"] == {"action": OCR_ACTION, "apiVersion": "2021-07-07", "requestId": "OCRRID",
                          "imageSource": "url", "outputFigure": False, "attempts": 1, "latencyMs": 420,
                          "backend": "api"}
    assert doc["image"] == {"format": "png", "width": 928, "height": 626}


def test_a_result_says_which_recognizer_answered_and_what_a_cascades_engine_said_first() -> None:
    data = decode_data(data_string(), "FC-RID")
    engine = result_document(REF, PREPARED, OcrResult("FC-RID", data, 1, 300, backend="engine"), config(),
                             function_request_id="FCRID", now=NOW)
    assert (engine["ocr"]["backend"], engine["ocr"]["requestId"], "cascade" in engine["ocr"]) == (
        "engine", "FC-RID", False)
    doubted = {"escalated": True, "engineRequestId": "FC-RID", "engineReasons": ["confidence"]}
    paid = result_document(REF, PREPARED, OcrResult("OCRRID", data, 1, 900, cascade=doubted), config(),
                           function_request_id="FCRID", now=NOW)
    assert (paid["ocr"]["backend"], paid["ocr"]["cascade"]) == ("api", doubted)
    assert validate_document(engine) == [] and validate_document(paid) == []


def test_the_source_block_describes_the_object_read_not_what_the_event_claimed() -> None:
    src = result_from(data_string())["source"]
    assert (src["key"], src["etag"], src["size"]) == ("uploads/a b.png", "FOUNDETAG", 123456)
    assert (src["eventName"], src["ossRequestId"]) == ("ObjectCreated:PutObject", "OSSRID")
    assert source_block(REF)["key"] == "uploads/a%20b.png"  # nothing read: the event's own words


def test_a_body_mode_call_is_recorded_as_such() -> None:
    body = Prepared("k.png", ImageInfo("jpeg", 800, 500), 10, "E", body=b"...")
    assert result_from(data_string(), prepared=body)["ocr"]["imageSource"] == "body"


def test_missing_fields_flag_the_result_for_review_and_name_them() -> None:
    partial = {k: v for k, v in SAMPLE_TRUTH.items() if k not in ("permitNumber", "birthDate")}
    doc = result_from(data_string(partial))
    assert doc["needsReview"] is True
    assert {"unparsed:permitNumber", "unparsed:birthDate"} <= set(doc["reviewReasons"])


@pytest.mark.parametrize("raw", ['{"data": {}}', '{"data": {}, "prism_keyValueInfo": 7}'])
def test_data_without_usable_fields_still_gives_a_result_flagged_for_review(raw: str) -> None:
    doc = result_from(raw)
    assert doc["needsReview"] is True and doc["reviewReasons"]
    assert doc["data"] == orjson.loads(raw)


def test_a_value_below_review_min_prob_flags_review_and_the_threshold_comes_from_config() -> None:
    assert result_from(data_string(prob=80))["reviewReasons"] == ["confidence"]
    assert result_from(data_string(prob=80), cfg=config(REVIEW_MIN_PROB="75"))["needsReview"] is False


def test_expiry_is_judged_on_the_china_date_of_processing() -> None:
    # the sample permit is valid to 2019.04.09; 16:30 UTC on that day is already the 10th in China (UTC+8)
    before = result_from(data_string(), now=datetime.datetime(2019, 4, 9, 15, 30, tzinfo=datetime.UTC))
    after = result_from(data_string(), now=datetime.datetime(2019, 4, 9, 16, 30, tzinfo=datetime.UTC))
    assert before["normalized"]["expired"] is False
    assert after["normalized"]["expired"] is True
    assert after["needsReview"] is False  # expired is reported, never a review reason


@pytest.mark.parametrize("raw", ["{}", '{"data": null}', '{"data": "text"}', '{"data": []}'])
def test_a_data_object_without_its_fields_object_is_a_final_ocr_failure_never_a_result(raw: str) -> None:
    # result-v1.schema.json requires data.data: a 200 without it is the service's fault, like Data that is no JSON
    with pytest.raises(OcrFailure) as info:
        decode_data(raw, "OCRRID")
    assert (info.value.code, info.value.transient, info.value.request_id) == ("InvalidData", False, "OCRRID")


@pytest.mark.parametrize(("raw", "why"), [
    ("not json", "not JSON"), ("", "not JSON"), ('["a list"]', "not a JSON object"), ('"text"', "not a JSON object"),
])
def test_a_data_string_that_is_no_json_object_is_a_final_ocr_failure_never_a_document(raw: str, why: str) -> None:
    with pytest.raises(OcrFailure) as info:
        decode_data(raw, "OCRRID")
    err = info.value
    assert (err.code, err.transient, err.request_id, err.stage) == ("InvalidData", False, "OCRRID", "ocr")
    assert why in err.message


def test_an_error_record_carries_the_failure_and_matches_its_schema() -> None:
    doc = error_document(REF, code="Throttling.User", message="slow down", stage="ocr", transient=True,
                         function_request_id="FCRID", now=NOW, attempts=3, http_status=429, ocr_request_id="OCRRID",
                         prepared=PREPARED)
    assert validate_document(doc) == []
    assert doc["error"] == {"code": "Throttling.User", "message": "slow down", "stage": "ocr", "transient": True,
                            "httpStatus": 429, "ocrRequestId": "OCRRID"}
    assert (doc["attempts"], doc["failedAt"], doc["source"]["etag"]) == (3, "2026-12-01T10:00:00.123Z", "FOUNDETAG")


def test_an_error_record_before_the_object_was_read_describes_the_event() -> None:
    doc = error_document(REF, code="NoSuchBucket", message="m", stage="source", transient=False,
                         function_request_id="FCRID", now=NOW)
    assert validate_document(doc) == []
    assert doc["source"] == REF.as_source()


def test_an_error_record_refuses_an_unknown_stage() -> None:
    with pytest.raises(AssertionError):
        error_document(REF, code="X", message="m", stage="upload", transient=False, function_request_id="F", now=NOW)


@given(st.datetimes(min_value=datetime.datetime(2000, 1, 1), max_value=datetime.datetime(2100, 1, 1),
                    timezones=st.sampled_from([datetime.UTC, datetime.timezone(datetime.timedelta(hours=8)),
                                               datetime.timezone(datetime.timedelta(hours=-5))])))
def test_timestamps_are_utc_with_milliseconds_and_name_the_same_instant(ts: datetime.datetime) -> None:
    text = rfc3339(ts)
    assert len(text) == len("2026-12-01T10:00:00.123Z") and text.endswith("Z")
    back = datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z")
    assert back == ts.replace(microsecond=ts.microsecond // 1000 * 1000)


def test_encode_gives_compact_utf8_json_ending_in_a_newline() -> None:
    assert encode({"name": "何郑", "n": 1}) == '{"name":"何郑","n":1}\n'.encode()
