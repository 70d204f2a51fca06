"""The engine function's handler (engine-function/permit_ocr_engine): one request in, the API's Data or the
API's error code out; nothing it logs carries a value read from the image."""

from __future__ import annotations

import io
from typing import Any

import pytest

from permit_ocr import enginewire, log
from permit_ocr_engine.handler import ENGINE_FAILED, EngineFunction
from permit_ocr_local.fcruntime.context import FcContext
from permit_ocr_local.fcruntime.enginefn import truth_engine
from permit_ocr_local.standins.ocr.backends import RecognitionError
from support import SAMPLE_TRUTH, permit_image


@pytest.fixture
def lines() -> Any:
    out = io.StringIO()
    log.configure("INFO", False)
    log.use_stream(out)
    yield out
    log.use_stream(None)


def ask(fn: EngineFunction, image: bytes) -> enginewire.Answer:
    return enginewire.decode_answer(fn.handle(enginewire.encode_request(image), FcContext()))


def test_an_image_is_answered_with_the_apis_data_and_the_log_holds_no_value(lines: io.StringIO) -> None:
    fn = EngineFunction(truth_engine)
    answer = ask(fn, permit_image())
    assert answer.code is None and answer.data is not None
    assert answer.data["data"] == SAMPLE_TRUTH and answer.data["prism_keyValueInfo"]
    logged = lines.getvalue()
    assert '"msg":"engine answered"' in logged and '"fields":9' in logged
    assert not any(v in logged for v in ("何郑", "HE,CHENG", "H10387877", "2000.01.01"))
    assert fn.calls == 1


def test_a_refusal_is_the_apis_verdict_code() -> None:
    refused = {**SAMPLE_TRUTH, "engine": {"error": "unmatchedImageType"}}
    answer = ask(EngineFunction(truth_engine), permit_image(refused))
    assert (answer.data, answer.code) == (None, "unmatchedImageType")


def test_a_request_in_another_format_is_answered_as_a_protocol_error() -> None:
    raw = EngineFunction(truth_engine).handle(b'{"events": []}', FcContext())
    assert enginewire.decode_answer(raw).code == enginewire.PROTOCOL_ERROR


def test_an_image_over_the_apis_10_mb_is_refused_as_the_api_would() -> None:
    assert ask(EngineFunction(truth_engine), b"\x89PNG" + b"\0" * (10 * 1024 * 1024)).code == "ExceededImageSize"


def test_a_failure_inside_the_recognizer_is_engine_failed_naming_only_the_exception_type(
        lines: io.StringIO) -> None:
    def broken() -> Any:
        def recognize(image: bytes, figure: bool) -> dict[str, Any]:
            raise ValueError("何郑 H10387877")  # a message that could carry what was read

        return recognize

    answer = ask(EngineFunction(broken), permit_image())
    assert (answer.code, answer.message) == (ENGINE_FAILED, "the engine failed on this image (ValueError)")
    assert "何郑" not in lines.getvalue() and "H10387877" not in lines.getvalue()


def test_the_models_load_once_in_the_initializer_not_per_call() -> None:
    loads: list[int] = []

    def counting() -> Any:
        loads.append(1)
        return truth_engine()

    fn = EngineFunction(counting)
    fn.initialize(FcContext(request_id="init"))
    ask(fn, permit_image())
    ask(fn, permit_image())
    assert loads == [1]


def test_a_refusal_code_outside_the_apis_verdicts_is_not_passed_off_as_one() -> None:
    def odd() -> Any:
        def recognize(image: bytes, figure: bool) -> dict[str, Any]:
            raise RecognitionError("Throttling.User", "not an engine's verdict")

        return recognize

    assert ask(EngineFunction(odd), permit_image()).code == ENGINE_FAILED

