"""s.yaml, checked offline: the fc3 component's JSON schema, the function's config SPEC, and the trigger rules."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from permit_ocr.config import SPEC, load_config
from permit_ocr_local.fcruntime import deployment
from permit_ocr_local.tools import deploycheck

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "fc3"
SHARED = ROOT.parent / "shared" / "reference" / "fc3"
ACCOUNT = "1234567890123456"
EXPLICIT = ["oss:ObjectCreated:PutObject", "oss:ObjectCreated:PostObject",
            "oss:ObjectCreated:CompleteMultipartUpload"]


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return deployment.load_s_yaml(ROOT / "s.yaml")


@pytest.fixture(scope="module")
def props(raw: dict[str, Any]) -> dict[str, Any]:
    resolved, unresolved = deployment.resolve(raw, ACCOUNT)
    assert unresolved == []
    return deployment.function_resource(resolved)[1]


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((FIXTURES / "schema.json").read_text(encoding="utf-8"))
    return doc


def _errors(schema: dict[str, Any], instance: Any) -> list[str]:
    v = jsonschema.Draft7Validator(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in v.iter_errors(instance)]


def test_edition_and_one_fc3_resource(raw: dict[str, Any]) -> None:
    assert raw["edition"] == "3.0.0"
    assert [r["component"] for r in raw["resources"].values()] == ["fc3"]


def test_props_pass_the_fc3_schema(props: dict[str, Any], schema: dict[str, Any]) -> None:
    assert _errors(schema, props) == []


def test_oss_trigger_configs_pass_their_own_subschema(props: dict[str, Any], schema: dict[str, Any]) -> None:
    # ITrigger.triggerConfig is an anyOf of every trigger type, so check the OSS branch on its own
    oss_schema = {"definitions": schema["definitions"], "$ref": "#/definitions/IOssTriggerConfig"}
    for t in props["triggers"]:
        assert _errors(oss_schema, t["triggerConfig"]) == [], t["triggerName"]


def test_the_schema_check_has_teeth(props: dict[str, Any], schema: dict[str, Any]) -> None:
    bad = {**props, "memorySize": 100, "runtime": "python3.13", "timeout": "120",
           "environmentVariables": {"WORKERS": 4}}
    errors = " ".join(_errors(schema, bad))
    for field in ("memorySize", "runtime", "timeout", "environmentVariables/WORKERS"):
        assert field in errors


def test_fixtures_are_verbatim_copies() -> None:
    assert "devsapp/fc3" in (FIXTURES / "NOTICE").read_text(encoding="utf-8")
    if not SHARED.is_dir():
        pytest.skip("shared reference not present (fresh clone)")
    for name in ("schema.json", "oss-event.json"):
        assert (FIXTURES / name).read_bytes() == (SHARED / name).read_bytes()


def test_environment_names_are_exactly_config_spec(props: dict[str, Any]) -> None:
    env = props["environmentVariables"]
    assert set(env) == set(SPEC)
    assert all(isinstance(v, str) for v in env.values())


def test_environment_loads_and_follows_the_vars(raw: dict[str, Any], props: dict[str, Any]) -> None:
    env = props["environmentVariables"]
    cfg = load_config(env)
    assert env["SOURCE_BUCKETS"] == raw["vars"]["bucket"] and cfg.source_buckets == (raw["vars"]["bucket"],)
    assert env["OSS_REGION"] == raw["vars"]["region"] == props["region"]
    assert "-internal." not in cfg.oss_public_endpoint
    assert env["MNS_ENDPOINT"] == f"https://{ACCOUNT}.mns.cn-hangzhou.aliyuncs.com"


def test_function_settings(props: dict[str, Any]) -> None:
    assert props["runtime"] == "python3.12"
    assert props["handler"] == "index.handler"
    assert props["instanceLifecycleConfig"]["initializer"]["handler"] == "index.initialize"
    assert props["code"] == "./dist/function"
    assert props["memorySize"] == 128
    assert props["timeout"] == 120
    assert props["internetAccess"] is True
    assert props["logConfig"] == "auto"
    assert "instanceConcurrency" not in props
    assert props["role"] == f"acs:ram::{ACCOUNT}:role/permit-ocr-fc"


def test_async_invoke_config(props: dict[str, Any]) -> None:
    a = props["asyncInvokeConfig"]
    assert a["maxAsyncRetryAttempts"] == 2
    assert a["maxAsyncEventAgeInSeconds"] == 21600
    assert a["destinationConfig"]["onFailure"]["destination"] == (
        "acs:mns:cn-hangzhou::/topics/permit-ocr-failures/messages")


def test_triggers_are_explicit_and_one_per_image_suffix(props: dict[str, Any], raw: dict[str, Any]) -> None:
    triggers = props["triggers"]
    suffixes = [t["triggerConfig"]["filter"]["key"]["suffix"] for t in triggers]
    cfg = load_config(props["environmentVariables"])
    assert sorted(suffixes) == sorted(cfg.image_suffixes)
    assert len(triggers) <= deploycheck.MAX_TRIGGERS_PER_BUCKET
    assert len({t["triggerName"] for t in triggers}) == len(triggers)
    for t in triggers:
        assert t["triggerType"] == "oss"
        assert t["triggerConfig"]["events"] == EXPLICIT
        assert t["triggerConfig"]["filter"]["key"]["prefix"] == raw["vars"]["prefix"] == "uploads/"
        assert t["sourceArn"] == f"acs:oss:cn-hangzhou:{ACCOUNT}:permit-ocr-demo"
        assert t["invocationRole"] == f"acs:ram::{ACCOUNT}:role/aliyunosseventnotificationrole"


def test_no_wildcard_or_part_events_anywhere() -> None:
    text = (ROOT / "s.yaml").read_text(encoding="utf-8")
    events = [e for doc in [yaml.safe_load(text)] for r in doc["resources"].values()
              for t in r["props"].get("triggers", []) for e in t["triggerConfig"]["events"]]
    assert events and not [e for e in events if e.endswith((":*", "UploadPart", "InitiateMultipartUpload"))]


@pytest.mark.parametrize("name", ["s.yaml", "s.eventbridge.yaml"])
def test_s_deploy_builds_the_package_first(name: str) -> None:
    resolved, _ = deployment.resolve(deployment.load_s_yaml(ROOT / name), ACCOUNT)
    res_name, props = deployment.function_resource(resolved)
    resource = resolved["resources"][res_name]
    assert [a["run"] for a in resource["actions"]["pre-deploy"]] == ["make package"]
    assert props["code"] == "./dist/function"
    assert [f.level for f in deploycheck.check_build(resource)] == ["ok"]


def test_a_deployment_without_the_build_action_fails_check_config(raw: dict[str, Any]) -> None:
    doc = {**raw, "resources": {k: {kk: vv for kk, vv in v.items() if kk != "actions"}
                                for k, v in raw["resources"].items()}}
    codes = {f.code for f in deploycheck.check_deployment(doc) if f.level == "error"}
    assert codes == {"build"}


def test_the_trigger_blocks_say_the_events_and_the_source_once() -> None:
    text = (ROOT / "s.yaml").read_text(encoding="utf-8")
    for line in ("- oss:ObjectCreated:PutObject", "sourceArn:", "invocationRole:", "triggerType: oss"):
        assert text.count(line) == 1, line
