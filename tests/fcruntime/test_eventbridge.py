"""The EventBridge-based OSS trigger: its CloudEvents envelope is read by the same parser as native events,
s.eventbridge.yaml passes the fc3 schema and check-config, and the stand-in's rule matching follows the pattern."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from permit_ocr.eventbridge import as_oss_event
from permit_ocr.events import MalformedEvent, ObjectRef, parse_event
from permit_ocr_local.fcruntime import deployment
from permit_ocr_local.fcruntime.context import Upload, oss_record
from permit_ocr_local.fcruntime.trigger import eventbridge_envelope, fires, pattern_matches
from permit_ocr_local.tools import deploycheck

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "events" / "eventbridge-put-object.json"
S_EB = ROOT / "s.eventbridge.yaml"


def test_the_sample_envelope_becomes_one_object_ref_with_the_upper_case_key() -> None:
    parsed = parse_event(SAMPLE.read_bytes())
    assert parsed.problems == []
    assert parsed.refs == [ObjectRef(bucket="permit-ocr-demo", key="uploads/Photo.JPG",
                                     etag="5D41402ABC4B2A76B9719D911017C592", size=183245, region="cn-hangzhou",
                                     event_name="ObjectCreated:PutObject", event_time="2026-11-26T02:15:07.000Z",
                                     oss_request_id="674D8E1B2C3A4F5E6D7C8B9A")]


def test_native_and_eventbridge_shapes_of_one_upload_parse_alike() -> None:
    up = Upload("b", "uploads/x.png", "ABC", 10)
    native = parse_event(json.dumps({"events": [oss_record(up)]}))
    bridged = parse_event(json.dumps(eventbridge_envelope(up)))
    strip = [(r.bucket, r.key, r.etag, r.size, r.event_name) for r in native.refs]
    assert strip == [(r.bucket, r.key, r.etag, r.size, r.event_name) for r in bridged.refs]


def test_a_batch_of_envelopes_gives_one_record_each() -> None:
    batch = [eventbridge_envelope(Upload("b", f"uploads/{i}.jpg", f"E{i}", 1)) for i in range(3)]
    assert [r.key for r in parse_event(json.dumps(batch)).refs] == [f"uploads/{i}.jpg" for i in range(3)]


def test_the_envelope_type_names_the_event_when_data_does_not() -> None:
    env = eventbridge_envelope(Upload("b", "uploads/a.jpg", "E", 1))
    del env["data"]["eventName"]
    env["type"] = "oss:ObjectRemoved:DeleteObject"
    parsed = parse_event(json.dumps(env))
    assert parsed.refs == [] and [p.code for p in parsed.problems] == ["NotACreateEvent"]


@pytest.mark.parametrize("data", [None, "not json", {"name": "test"}])
def test_an_envelope_without_an_oss_record_is_a_record_problem_not_a_crash(data: Any) -> None:
    env = {"specversion": "1.0", "source": "acs.oss", "type": "oss:ObjectCreated:PutObject", "data": data}
    parsed = parse_event(json.dumps(env))
    assert parsed.refs == [] and [p.code for p in parsed.problems] == ["MalformedRecord"]


def test_non_envelopes_are_left_to_the_native_parser() -> None:
    assert as_oss_event(b"{not json") is None
    assert as_oss_event(b'{"events": []}') is None
    with pytest.raises(MalformedEvent):
        parse_event(b"[1, 2]")


# --- s.eventbridge.yaml ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return deployment.load_s_yaml(S_EB)


def test_s_eventbridge_yaml_passes_check_config(doc: dict[str, Any]) -> None:
    findings = deploycheck.check_deployment(doc)
    assert not deploycheck.failed(findings), deploycheck.format_findings(findings)
    [trigger], _ = deployment.parse_triggers(deployment.function_resource(deployment.resolve(doc)[0])[1])
    assert (trigger.kind, trigger.bucket, trigger.prefix, trigger.suffix) == (
        "eventbridge", "permit-ocr-demo", "uploads/", "")


def test_s_eventbridge_yaml_passes_the_fc3_schema(doc: dict[str, Any]) -> None:
    schema = json.loads((ROOT / "tests" / "fixtures" / "fc3" / "schema.json").read_text(encoding="utf-8"))
    props = deployment.function_resource(deployment.resolve(doc)[0])[1]
    assert list(jsonschema.Draft7Validator(schema).iter_errors(props)) == []
    eb = {"definitions": schema["definitions"], "$ref": "#/definitions/IEventBridge"}
    for t in props["triggers"]:
        assert list(jsonschema.Draft7Validator(eb).iter_errors(t["triggerConfig"])) == []


def test_only_the_trigger_its_output_prefix_and_the_suffixes_it_reaches_differ_from_s_yaml(
        doc: dict[str, Any]) -> None:
    native = deployment.function_resource(deployment.resolve(deployment.load_s_yaml(ROOT / "s.yaml"))[0])[1]
    bridged = deployment.function_resource(deployment.resolve(doc)[0])[1]
    differ = {k for k in native.keys() | bridged.keys() if native.get(k) != bridged.get(k)}
    assert differ == {"triggers", "environmentVariables"}
    env_n, env_b = native["environmentVariables"], bridged["environmentVariables"]
    assert {k for k in env_n if env_n[k] != env_b[k]} == {"OUTPUT_PREFIX", "IMAGE_SUFFIXES"}
    # s.yaml's ten native triggers leave no room for .heif; the rule reaches every suffix
    suffixes_n, suffixes_b = (set(env["IMAGE_SUFFIXES"].split(",")) for env in (env_n, env_b))
    assert suffixes_b - suffixes_n == {".heif"} and suffixes_n <= suffixes_b


def test_a_rule_without_a_subject_prefix_is_an_error() -> None:
    cfg = {"eventRuleFilterPattern": json.dumps({"source": ["acs.oss"], "type": ["oss:ObjectCreated:PutObject"]})}
    finding = deployment.parse_eventbridge_trigger("t", cfg)
    assert isinstance(finding, deployment.Finding) and finding.level == "error"


# --- the stand-in's rule matching ------------------------------------------------------------------------------

def test_the_rule_fires_for_any_suffix_in_any_case_under_the_prefix_only(doc: dict[str, Any]) -> None:
    [t], _ = deployment.parse_triggers(deployment.function_resource(deployment.resolve(doc)[0])[1])
    put = "ObjectCreated:PutObject"
    assert fires(t, "permit-ocr-demo", "uploads/Photo.JPG", put)
    assert fires(t, "permit-ocr-demo", "uploads/notes.txt", put)
    assert not fires(t, "permit-ocr-demo", "results/uploads/Photo.JPG.json", put)
    assert not fires(t, "other-bucket", "uploads/Photo.JPG", put)
    assert not fires(t, "permit-ocr-demo", "uploads/Photo.JPG", "ObjectCreated:UploadPart")


@pytest.mark.parametrize(("pattern", "event", "matches"), [
    ({"source": ["acs.oss"]}, {"source": "acs.oss"}, True),
    ({"source": ["acs.oss"]}, {"source": "acs.OSS"}, False),  # case-sensitive, as EventBridge documents
    ({"subject": [{"prefix": "a/"}]}, {"subject": "a/b"}, True),
    ({"subject": [{"suffix": ".jpg"}]}, {"subject": "a/b.JPG"}, False),
    ({"data": {"oss": {"bucket": {"name": ["b"]}}}}, {"data": {"oss": {"bucket": {"name": "b"}}}}, True),
    ({"type": ["x"]}, {}, False),  # a field the pattern names must be there
    ({"type": [{"anything-but": "x"}]}, {"type": "y"}, False),  # unknown operators never match
])
def test_pattern_matching(pattern: dict[str, Any], event: dict[str, Any], matches: bool) -> None:
    assert pattern_matches(pattern, event) is matches
