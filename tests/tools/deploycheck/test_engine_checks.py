"""check-config with the engine function (s.selfhosted.yaml, OCR_BACKEND, SHADOW_RATE): the variant passes as
committed; inconsistent settings are refused with their own codes; the role's policy grants the engine function
alone, and the shadow records only when shadow mode is on."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from permit_ocr_local.fcruntime import deployment
from permit_ocr_local.tools import deploycheck

ROOT = Path(__file__).resolve().parents[3]
ENGINE = "permit-ocr-engine"


@pytest.fixture(scope="module")
def selfhosted() -> dict[str, Any]:
    return deployment.load_s_yaml(ROOT / "s.selfhosted.yaml")


def engine_of(doc: dict[str, Any]) -> dict[str, Any]:
    props: dict[str, Any] = doc["resources"][ENGINE]["props"]
    return props


def codes(doc: dict[str, Any], **env: str) -> dict[str, str]:
    """code -> level of every finding that is not ok."""
    return {f.code: f.level for f in deploycheck.check_deployment(doc, env) if f.level != "ok"}


def changed(doc: dict[str, Any], change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    change(out)
    return out


def test_the_selfhosted_variant_passes_as_committed(selfhosted: dict[str, Any]) -> None:
    found = deploycheck.check_deployment(selfhosted)
    assert not deploycheck.failed(found), [f for f in found if f.level != "ok"]
    assert [f.code for f in found if f.level == "warn"] == []
    assert any(f.code == "engine-function" and f.level == "ok" for f in found)


def test_its_main_function_is_s_yamls_but_for_the_settings_marked_selfhosted(selfhosted: dict[str, Any]) -> None:
    plain = deployment.function_resource(deployment.resolve(deployment.load_s_yaml(ROOT / "s.yaml"))[0])[1]
    main = deployment.function_resource(deployment.resolve(selfhosted)[0])[1]
    differ = {k for k in plain | main if plain.get(k) != main.get(k)}
    assert differ == {"environmentVariables", "timeout"}
    env_differ = {k for k, v in main["environmentVariables"].items() if plain["environmentVariables"].get(k) != v}
    assert env_differ == {"OCR_BACKEND", "ENGINE_FUNCTION", "ENGINE_TIMEOUT_MS", "IMAGE_SOURCE"}


@pytest.mark.parametrize("backend", ["engine", "cascade"])
def test_an_engine_backend_without_the_engine_functions_name_is_refused(backend: str) -> None:
    doc = deployment.load_s_yaml(ROOT / "s.yaml")
    found = deploycheck.check_deployment(doc, {"OCR_BACKEND": backend})
    assert deploycheck.failed(found)
    assert any(f.code == "config" and "ENGINE_FUNCTION" in f.message for f in found)


def test_a_named_engine_function_the_file_does_not_declare_is_a_warning_to_deploy_it_first() -> None:
    doc = deployment.load_s_yaml(ROOT / "s.yaml")
    got = codes(doc, SHADOW_RATE="0.2", ENGINE_FUNCTION=ENGINE)
    assert got == {"engine-function": "warn"}


@pytest.mark.parametrize(("change", "code"), [
    (lambda d: engine_of(d).update(memorySize=512), "engine-memory"),
    (lambda d: engine_of(d).update(timeout=3), "engine-timeout"),
    (lambda d: engine_of(d).update(code="./engine-function"), "engine-build"),
    (lambda d: d["resources"][ENGINE].pop("actions"), "engine-build"),
    (lambda d: engine_of(d).update(runtime="python3.10"), "engine-runtime"),
    (lambda d: engine_of(d).update(region="cn-beijing"), "engine-region"),
    (lambda d: engine_of(d).update(triggers=[{"triggerName": "t", "triggerType": "timer"}]), "engine-triggers"),
])
def test_an_engine_function_unlike_the_measured_one_is_refused(selfhosted: dict[str, Any],
                                                               change: Callable[[dict[str, Any]], None],
                                                               code: str) -> None:
    assert codes(changed(selfhosted, change)).get(code) == "error"


@pytest.mark.parametrize(("change", "code"), [
    (lambda d: engine_of(d).update(internetAccess=True), "engine-internet"),
    (lambda d: engine_of(d).update(timeout=60), "engine-timeout"),  # longer than the caller waits
    (lambda d: d["vars"].update(engineInstances=2), "engine-instances"),
    (lambda d: d["vars"].update(imageSource="url"), "engine-reads"),
])
def test_settings_that_work_but_cost_are_warnings(selfhosted: dict[str, Any],
                                                  change: Callable[[dict[str, Any]], None], code: str) -> None:
    got = codes(changed(selfhosted, change))
    assert got.get(code) == "warn" and "error" not in got.values()


def test_the_main_timeout_must_hold_both_calls_of_a_cascade(selfhosted: dict[str, Any]) -> None:
    short = changed(selfhosted, lambda d: deployment.function_resource(d)[1].update(timeout=120))
    found = [f for f in deploycheck.check_deployment(short) if f.code == "timeout"]
    assert found[0].level == "error" and "engine 2 x (5000 + 30000) ms" in found[0].message
    assert not deploycheck.failed(deploycheck.check_deployment(short, {"OCR_BACKEND": "engine"}))


def test_the_policy_grants_invoking_the_engine_function_alone_and_the_paid_call_only_when_used(
        selfhosted: dict[str, Any]) -> None:
    def actions(**env: str) -> dict[str, list[str]]:
        policy = deploycheck.render_policy(selfhosted, "1234567890123456", env)
        return {a: st["Resource"] for st in policy["Statement"] for a in st["Action"]}

    cascade = actions()
    assert cascade["fc:InvokeFunction"] == [f"acs:fc:cn-hangzhou:1234567890123456:functions/{ENGINE}"]
    assert "ocr:RecognizeExitEntryPermitToMainland" in cascade
    assert not any(".permit-ocr/shadow/" in r for r in cascade["oss:PutObject"])
    assert "ocr:RecognizeExitEntryPermitToMainland" not in actions(OCR_BACKEND="engine")
    shadow = actions(OCR_BACKEND="api", SHADOW_RATE="0.1")
    assert "acs:oss:*:*:permit-ocr-demo/.permit-ocr/shadow/*" in shadow["oss:PutObject"]
    plain = deploycheck.render_policy(deployment.load_s_yaml(ROOT / "s.yaml"))
    assert not any("fc:InvokeFunction" in st["Action"] for st in plain["Statement"])
