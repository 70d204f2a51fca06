"""How the main function reads what the engine function and the FC API answer (permit_ocr.engineclient): the
engine's verdicts are final, throttling and outages are transient, the deployment's faults are facts about
the world: never a verdict on the image."""

from __future__ import annotations

import pytest

from permit_ocr import enginewire
from permit_ocr.engineclient import EngineFailure, answer, classify


class SdkError(Exception):
    def __init__(self, status: int | None, code: str | None) -> None:
        super().__init__(f"{status} {code}")
        self.status_code, self.code, self.request_id, self.message = status, code, "1-abc", f"{code}"


@pytest.mark.parametrize(("status", "code"), [(429, "ResourceExhausted"), (500, "InternalServerError"),
                                              (503, "ResourceThrottled"), (502, None)])
def test_throttling_and_fc_faults_are_transient(status: int, code: str | None) -> None:
    failure = classify(SdkError(status, code))
    assert failure.transient and not failure.final and failure.status == status


@pytest.mark.parametrize(("status", "code"), [(403, "AccessDenied"), (404, "FunctionNotFound"),
                                              (403, "SignatureNotMatch"), (400, "EntityTooLarge")])
def test_a_refused_deployment_is_a_fact_about_the_world_not_a_verdict(status: int, code: str) -> None:
    failure = classify(SdkError(status, code))
    assert (failure.code, failure.transient, failure.world, failure.final) == (code, False, True, False)
    assert not failure.about_image  # a cascade retries: it never pays in place of a misdeployed engine


def test_no_answer_at_all_is_transient() -> None:
    failure = classify(ConnectionRefusedError("refused"))
    assert (failure.code, failure.transient) == ("EngineUnreachable", True)


def test_the_engines_data_is_a_result_marked_engine() -> None:
    raw = enginewire.encode_answer({"data": {"nameCn": "何郑"}, "prism_keyValueInfo": []}, ms=400)
    got = answer(raw, "1-rid", 1, 450)
    assert (got.backend, got.request_id, got.latency_ms) == ("engine", "1-rid", 450)


@pytest.mark.parametrize(("code", "final"), [("unmatchedImageType", True), ("unsupportedImageFormat", True),
                                             ("ExceededImageSize", True), ("EngineFailed", False)])
def test_the_engines_refusals_are_verdicts_its_failures_are_not_but_both_are_about_the_image(code: str,
                                                                                            final: bool) -> None:
    with pytest.raises(EngineFailure) as got:
        answer(enginewire.encode_answer(code=code, message="m"), "1-rid", 1, 10)
    assert (got.value.code, got.value.final, got.value.transient, got.value.about_image) == (code, final, False, True)


def test_data_without_fields_is_the_engines_bug_on_these_bytes_never_a_final_verdict() -> None:
    with pytest.raises(EngineFailure) as got:
        answer(enginewire.encode_answer({"fields": {}}), "1-rid", 1, 10)
    assert (got.value.code, got.value.final, got.value.about_image) == ("InvalidData", False, True)


@pytest.mark.parametrize("raw", [b"<html>gateway</html>", enginewire.encode_answer(code=enginewire.PROTOCOL_ERROR)])
def test_a_protocol_mismatch_is_the_deployments_fault_not_the_images(raw: bytes) -> None:
    with pytest.raises(EngineFailure) as got:
        answer(raw, "1-rid", 1, 10)
    assert (got.value.final, got.value.about_image) == (False, False)
