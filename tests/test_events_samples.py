"""events/*.json: valid JSON in the OSS trigger shape of the fc3 template, with the outcomes events/README.md
promises (checked against the function's own event parser and guards, configured from s.yaml)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from permit_ocr import guards
from permit_ocr.config import Config, load_config
from permit_ocr.events import parse_event
from permit_ocr_local.fcruntime import deployment

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "events"
TEMPLATE = json.loads((ROOT / "tests" / "fixtures" / "fc3" / "oss-event.json").read_text(encoding="utf-8"))
# native OSS trigger events; eventbridge-*.json are CloudEvents envelopes (tests/fcruntime/test_eventbridge.py)
SAMPLES = sorted(p for p in EVENTS.glob("*.json") if not p.name.startswith("eventbridge-"))
EXPECTED = {"put-object.json", "multi-record.json", "complete-multipart.json", "own-output.json",
            "other-bucket.json", "eventbridge-put-object.json"}


def load(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((EVENTS / name).read_text(encoding="utf-8"))
    return doc


@pytest.fixture(scope="module")
def cfg() -> Config:
    resolved, _ = deployment.resolve(deployment.load_s_yaml(ROOT / "s.yaml"))
    return load_config(deployment.function_resource(resolved)[1]["environmentVariables"])


def test_the_documented_samples_exist() -> None:
    assert {p.name for p in EVENTS.glob("*.json")} == EXPECTED
    readme = (EVENTS / "README.md").read_text(encoding="utf-8")
    assert all(name in readme for name in EXPECTED)
    assert "s invoke --event-file events/put-object.json" in readme
    assert "permit-ocr invoke --use-stored events/put-object.json" in readme


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_sample_has_the_oss_trigger_shape(path: Path) -> None:
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert set(doc) == {"events"} and isinstance(doc["events"], list) and doc["events"]
    template = TEMPLATE["events"][0]
    for rec in doc["events"]:
        assert set(rec) == set(template)
        assert set(rec["oss"]) == set(template["oss"])
        assert set(rec["oss"]["bucket"]) == set(template["oss"]["bucket"])
        assert rec["eventName"].startswith("ObjectCreated:") and not rec["eventName"].startswith("oss:")
        assert rec["eventSource"] == "acs:oss" and rec["eventVersion"] == "1.0"
        bucket = rec["oss"]["bucket"]
        assert isinstance(bucket["name"], str) and bucket["arn"].endswith(":" + bucket["name"])
        obj = rec["oss"]["object"]
        assert isinstance(obj["key"], str) and obj["key"]
        assert isinstance(obj["eTag"], str) and obj["eTag"] == obj["eTag"].upper()
        assert isinstance(obj["size"], int) and obj["size"] > 0
        assert rec["region"] == "cn-hangzhou" and f":{rec['region']}:" in bucket["arn"]
        assert rec["responseElements"]["requestId"]


def test_put_object() -> None:
    [rec] = load("put-object.json")["events"]
    assert rec["eventName"] == "ObjectCreated:PutObject"
    assert rec["oss"]["bucket"]["name"] == "permit-ocr-demo"
    assert rec["oss"]["object"]["key"] == "uploads/hk-permit.jpg"


def test_multi_record_keys_are_raw_and_awkward() -> None:
    keys = [r["oss"]["object"]["key"] for r in load("multi-record.json")["events"]]
    assert len(keys) == 3 and "uploads/张 三+1%.jpg" in keys
    joined = "".join(keys)
    assert all(c in joined for c in " +%")


def test_complete_multipart() -> None:
    [rec] = load("complete-multipart.json")["events"]
    assert rec["eventName"] == "ObjectCreated:CompleteMultipartUpload"


@pytest.mark.parametrize(("name", "outcomes"), [
    ("put-object.json", [None]),
    ("multi-record.json", [None, None, None]),
    ("complete-multipart.json", [None]),
    ("own-output.json", [(guards.Action.SKIP, "OwnOutput")]),
    ("other-bucket.json", [(guards.Action.REJECT, "BucketNotAllowed")]),
])
def test_outcomes_match_the_readme(cfg: Config, name: str, outcomes: list[Any]) -> None:
    raw = (EVENTS / name).read_bytes()
    parsed = parse_event(raw)
    assert parsed.problems == [] and parsed.duplicates == 0
    got = []
    for ref in parsed.refs:
        verdict = guards.check(ref, cfg)
        got.append(None if verdict is None else (verdict.action, verdict.code))
    assert got == outcomes
    # keys reach the function verbatim (no URL decoding)
    assert [r.key for r in parsed.refs] == [e["oss"]["object"]["key"] for e in json.loads(raw)["events"]]
