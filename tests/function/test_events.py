"""Step 1: the OSS trigger event -> ObjectRefs (and RecordProblems); source.key_candidates for raw keys."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from permit_ocr.events import MalformedEvent, ObjectRef, RecordProblem, parse_event, parse_record
from permit_ocr.source import key_candidates

# The fc3 component's OSS test-event template (function-compute.md §1.1), verbatim.
FC3_SAMPLE: dict[str, Any] = {
    "events": [
        {
            "eventName": "ObjectCreated:PutObject",
            "eventSource": "acs:oss",
            "eventTime": "2017-04-21T12:46:37.000Z",
            "eventVersion": "1.0",
            "oss": {
                "bucket": {
                    "arn": "acs:oss:cn-shanghai:123456789:bucketname",
                    "name": "testbucket",
                    "ownerIdentity": "123456789",
                    "virtualBucket": "",
                },
                "object": {
                    "deltaSize": 122539,
                    "eTag": "688A7BF4F233DC9C88A80BF985AB7329",
                    "key": "image/a.jpg",
                    "size": 122539,
                },
                "ossSchemaVersion": "1.0",
                "ruleId": "9adac8e253828f4f7c0466d941fa3db81161****",
            },
            "region": "cn-shanghai",
            "requestParameters": {"sourceIPAddress": "140.205.***.***"},
            "responseElements": {"requestId": "58F9FF2D3DF792092E12044C"},
            "userIdentity": {"principalId": "123456789"},
        }
    ]
}
SAMPLE_REF = ObjectRef(bucket="testbucket", key="image/a.jpg", etag="688A7BF4F233DC9C88A80BF985AB7329", size=122539,
                       region="cn-shanghai", event_name="ObjectCreated:PutObject",
                       event_time="2017-04-21T12:46:37.000Z", oss_request_id="58F9FF2D3DF792092E12044C")


def record(key: str = "image/a.jpg", *, bucket: str = "testbucket", **changes: Any) -> dict[str, Any]:
    """The sample record with a different key and top-level/object fields changed (None removes a field)."""
    rec: dict[str, Any] = copy.deepcopy(FC3_SAMPLE["events"][0])
    rec["oss"]["object"]["key"] = key
    rec["oss"]["bucket"]["name"] = bucket
    for name, value in changes.items():
        target = rec["oss"]["object"] if name in ("eTag", "size") else rec
        if value is None:
            target.pop(name, None)
        else:
            target[name] = value
    return rec


def event(*records: Any) -> bytes:
    return orjson.dumps({"events": list(records)})


def only_ref(raw: bytes | str | dict[str, Any]) -> ObjectRef:
    parsed = parse_event(raw)
    assert parsed.problems == [] and len(parsed.refs) == 1
    return parsed.refs[0]


# --- the sample and the input types --------------------------------------------------------------------------


def test_the_fc3_sample_event_gives_one_complete_ref() -> None:
    parsed = parse_event(orjson.dumps(FC3_SAMPLE))
    assert parsed.refs == [SAMPLE_REF]
    assert (parsed.problems, parsed.duplicates) == ([], 0)


@pytest.mark.parametrize("form", ["bytes", "bytearray", "str", "dict"])
def test_bytes_str_and_dict_events_parse_alike(form: str) -> None:
    raw = orjson.dumps(FC3_SAMPLE)
    value: Any = {"bytes": raw, "bytearray": bytearray(raw), "str": raw.decode(), "dict": FC3_SAMPLE}[form]
    assert only_ref(value) == SAMPLE_REF


def test_as_source_names_the_result_document_fields() -> None:
    assert SAMPLE_REF.as_source() == {
        "bucket": "testbucket", "key": "image/a.jpg", "etag": "688A7BF4F233DC9C88A80BF985AB7329", "size": 122539,
        "region": "cn-shanghai", "eventName": "ObjectCreated:PutObject", "eventTime": "2017-04-21T12:46:37.000Z",
        "ossRequestId": "58F9FF2D3DF792092E12044C"}


def test_every_record_is_read_in_order() -> None:
    parsed = parse_event(event(record("a.jpg", eTag="A1"), record("b.png", eTag="B1"), record("c.gif", eTag="C1")))
    assert [r.key for r in parsed.refs] == ["a.jpg", "b.png", "c.gif"]


def test_an_empty_events_list_gives_nothing_to_do() -> None:
    parsed = parse_event(b'{"events": []}')
    assert (parsed.refs, parsed.problems, parsed.duplicates) == ([], [], 0)


def test_optional_fields_may_be_missing() -> None:
    rec = {"oss": {"bucket": {"name": "b1"}, "object": {"key": "k.jpg"}}}
    assert only_ref(event(rec)) == ObjectRef(bucket="b1", key="k.jpg")


def test_extra_fields_are_ignored() -> None:
    rec = record(xVars={"x:callback-var1": "value1"})
    rec["oss"]["object"]["objectMeta"] = {"mimeType": "image/jpeg"}
    assert only_ref(event(rec)) == SAMPLE_REF


# --- keys ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", [
    "scans/my photo.jpg", "scans/a+b.jpg", "scans/100%25.jpg", "scans/a%20b+c.jpg", "证件/张三 港澳通行证.png",
    "scans/%E4%B8%AD.jpg", " leading-space.jpg", "a/../b.jpg",
])
def test_keys_are_kept_exactly_as_sent(key: str) -> None:
    assert only_ref(event(record(key))).key == key


def test_key_candidates_of_a_plain_key_is_the_key_alone() -> None:
    assert key_candidates("scans/张三 a.jpg") == ["scans/张三 a.jpg"]


def test_key_candidates_try_raw_then_percent_decoded_then_form_decoded() -> None:
    assert key_candidates("a%2Bb+c.jpg") == ["a%2Bb+c.jpg", "a+b+c.jpg", "a+b c.jpg"]


def test_key_candidates_with_only_plus_add_the_form_decoded_key() -> None:
    assert key_candidates("a+b.jpg") == ["a+b.jpg", "a b.jpg"]


def test_key_candidates_drop_duplicate_decodings() -> None:
    assert key_candidates("a%20b.jpg") == ["a%20b.jpg", "a b.jpg"]
    assert key_candidates("%E8%AF%81%E4%BB%B6.jpg") == ["%E8%AF%81%E4%BB%B6.jpg", "证件.jpg"]


def test_key_candidates_keep_a_lone_percent_that_decodes_to_itself_once() -> None:
    assert key_candidates("100%.jpg") == ["100%.jpg"]


# --- event names ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ObjectCreated:PutObject", "ObjectCreated:PostObject",
                                  "ObjectCreated:CompleteMultipartUpload", "ObjectCreated:CopyObject",
                                  "ObjectCreated:AppendObject", "ObjectCreated:PutSymlink"])
def test_create_events_are_accepted(name: str) -> None:
    assert only_ref(event(record(eventName=name))).event_name == name


def test_the_oss_prefix_of_the_trigger_configuration_is_tolerated() -> None:
    assert only_ref(event(record(eventName="oss:ObjectCreated:PutObject"))).event_name == "ObjectCreated:PutObject"


def test_a_record_without_event_name_is_accepted() -> None:
    assert only_ref(event(record(eventName=None))).event_name is None


@pytest.mark.parametrize("name", ["ObjectRemoved:DeleteObject", "oss:ObjectRemoved:DeleteObjects",
                                  "ObjectModified:UpdateObjectMeta", "ObjectCreated"])
def test_other_events_are_a_not_a_create_event_problem(name: str) -> None:
    parsed = parse_event(event(record("gone.jpg", eventName=name)))
    assert parsed.refs == []
    [problem] = parsed.problems
    assert (problem.index, problem.code, problem.bucket, problem.key) == (0, "NotACreateEvent", "testbucket",
                                                                          "gone.jpg")


# --- duplicates ----------------------------------------------------------------------------------------------


def test_the_same_upload_twice_in_one_event_is_collapsed() -> None:
    parsed = parse_event(event(record("a.jpg"), record("a.jpg"), record("b.jpg")))
    assert [r.key for r in parsed.refs] == ["a.jpg", "b.jpg"]
    assert parsed.duplicates == 1


def test_duplicates_are_compared_after_etag_normalisation() -> None:
    parsed = parse_event(event(record("a.jpg", eTag='"abc"'), record("a.jpg", eTag="ABC")))
    assert (len(parsed.refs), parsed.duplicates) == (1, 1)


def test_two_versions_of_one_key_are_both_kept() -> None:
    parsed = parse_event(event(record("a.jpg", eTag="V1"), record("a.jpg", eTag="V2")))
    assert [r.etag for r in parsed.refs] == ["V1", "V2"]
    assert parsed.duplicates == 0


def test_the_same_key_in_two_buckets_is_not_a_duplicate() -> None:
    parsed = parse_event(event(record("a.jpg", bucket="one"), record("a.jpg", bucket="two")))
    assert [r.bucket for r in parsed.refs] == ["one", "two"]


# --- eTag and size -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "expected"), [
    ('"688a7bf4f233dc9c88a80bf985ab7329"', "688A7BF4F233DC9C88A80BF985AB7329"),
    ("688a7bf4f233dc9c88a80bf985ab7329-3", "688A7BF4F233DC9C88A80BF985AB7329-3"),
    ("", None), ('""', None), (None, None), (12345, None),
])
def test_etag_loses_quotes_and_is_upper_cased(raw: Any, expected: str | None) -> None:
    rec = record(eTag=raw) if raw is not None else record(eTag=None)
    assert only_ref(event(rec)).etag == expected


@pytest.mark.parametrize(("raw", "expected"), [
    (122539, 122539), (0, 0), ("122539", 122539), ("0", 0), (-5, None), ("-5", None), (True, None), (False, None),
    (1.5, None), ("12a", None), ("", None), (" 12", None), ([1], None), (None, None), ("²", None), ("١٢", None),
])
def test_size_is_a_non_negative_integer_or_none(raw: Any, expected: int | None) -> None:
    rec = record(size=raw) if raw is not None else record(size=None)
    assert only_ref(event(rec)).size == expected


def test_non_string_optional_fields_become_none() -> None:
    rec = record(region=7, eventTime=["2017"], responseElements={"requestId": 1})
    ref = only_ref(event(rec))
    assert (ref.region, ref.event_time, ref.oss_request_id) == (None, None, None)


# --- malformed input -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [b"", b"not json", b"{", b"\xff\xfe", b"[]", b'"events"', b"null", b"42",
                                 b"{}", b'{"events": {}}', b'{"events": null}', b'{"Events": []}'])
def test_an_event_without_an_events_list_is_malformed(raw: bytes) -> None:
    with pytest.raises(MalformedEvent):
        parse_event(raw)


def test_malformed_event_is_a_value_error() -> None:
    assert issubclass(MalformedEvent, ValueError)


@pytest.mark.parametrize(("rec", "reason"), [
    ("text", "not an object"), (None, "not an object"), ([], "not an object"),
    ({}, "oss.bucket.name"), ({"oss": None}, "oss.bucket.name"), ({"oss": {"bucket": "b"}}, "oss.bucket.name"),
    ({"oss": {"bucket": {"name": ""}, "object": {"key": "k.jpg"}}}, "oss.bucket.name"),
    ({"oss": {"bucket": {"name": 5}, "object": {"key": "k.jpg"}}}, "oss.bucket.name"),
])
def test_a_record_without_a_bucket_is_a_malformed_record(rec: Any, reason: str) -> None:
    item = parse_record(3, rec)
    assert isinstance(item, RecordProblem)
    assert (item.index, item.code, item.bucket, item.key) == (3, "MalformedRecord", None, None)
    assert reason in item.message


@pytest.mark.parametrize("obj", [None, {}, {"key": ""}, {"key": 7}, "k.jpg"])
def test_a_record_without_a_key_is_a_malformed_record_naming_the_bucket(obj: Any) -> None:
    item = parse_record(0, {"oss": {"bucket": {"name": "b1"}, "object": obj}})
    assert isinstance(item, RecordProblem)
    assert (item.code, item.bucket, item.key) == ("MalformedRecord", "b1", None)
    assert "oss.object.key" in item.message


def test_a_bad_record_does_not_stop_the_others() -> None:
    parsed = parse_event(event("junk", record("a.jpg"), {"oss": {}}, record("b.jpg", eventName="ObjectRemoved:x")))
    assert [r.key for r in parsed.refs] == ["a.jpg"]
    assert [(p.index, p.code) for p in parsed.problems] == [(0, "MalformedRecord"), (2, "MalformedRecord"),
                                                            (3, "NotACreateEvent")]
