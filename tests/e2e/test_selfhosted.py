"""The self-hosted recognizer end to end (docs/selfhosted.md): the real handler calls the engine function through
the real FC SDK (InvokeFunction, Sync, ACS3 signatures verified by the FC stand-in); the engine function's real
handler answers with the truth a test image carries, and its ``engine`` overrides play a doubtful or wrong
engine. The OCR stand-in's billing ledger counts the paid calls, the FC stand-in's log the engine calls."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from permit_ocr.config import load_config
from permit_ocr.handler import App, RetryLater
from permit_ocr.layout import SHADOW_PREFIX
from permit_ocr_local.fcruntime.context import Upload
from permit_ocr_local.fcruntime.enginefn import EngineService, serve_engine
from permit_ocr_local.fcruntime.stack import LocalStack
from permit_ocr_local.standins.faults import FaultRule
from permit_ocr_local.tools.shadow import summarize
from support import SAMPLE_TRUTH, Bucket, invoke, permit_image

REPO = Path(__file__).resolve().parents[2]
DOUBTFUL = {**SAMPLE_TRUTH, "engine": {"valueProb": {"nameCn": 40}}}  # the engine unsure of one field
MISREAD = {**SAMPLE_TRUTH, "engine": {"data": {"nameCn": "何正"}}}  # sure, and wrong
REFUSED = {**SAMPLE_TRUTH, "engine": {"error": "unmatchedImageType"}}


@pytest.fixture
def engine(stack: LocalStack) -> Iterator[EngineService]:
    service = serve_engine(stack.keyring, "truth", faults=stack.faults)
    yield service
    service.stop()


@pytest.fixture
def app_with(env: dict[str, str], engine: EngineService) -> Callable[..., App]:
    def build(**overrides: str) -> App:
        e = {**env, **engine.env(), "ENGINE_TIMEOUT_MS": "10000", **overrides}  # the truth engine is instant
        return App(load_config(e), environ=e)

    return build


def run(app: App, *ups: Upload, timeout: int = 60) -> dict[str, Any]:
    """The invocation's summary, also when it raised for FC's retry (records left retrying)."""
    try:
        return invoke(app, *ups, timeout=timeout)
    except RetryLater as exc:
        return exc.summary


def paid(stack: LocalStack) -> int:
    assert stack.ocr is not None
    return int(stack.ocr.service.stats["billed"])


def result(bucket: Bucket, key: str) -> dict[str, Any]:
    return dict(orjson.loads((bucket.root / f"{key}.json").read_bytes()))


def test_api_is_the_default_and_never_calls_the_engine(app_with: Callable[..., App], bucket: Bucket,
                                                       stack: LocalStack, engine: EngineService) -> None:
    up = bucket.put("uploads/a.png", permit_image(DOUBTFUL))
    assert run(app_with(), up)["counts"] == {"result": 1}
    assert (paid(stack), engine.calls(), result(bucket, up.key)["ocr"]["backend"]) == (1, 0, "api")


def test_engine_answers_alone_and_nothing_is_paid_its_refusal_is_a_final_record(
        app_with: Callable[..., App], bucket: Bucket, stack: LocalStack, engine: EngineService) -> None:
    clean, doubtful, refused = (bucket.put(f"uploads/{n}.png", permit_image(t)) for n, t in
                                (("clean", SAMPLE_TRUTH), ("doubtful", DOUBTFUL), ("refused", REFUSED)))
    summary = run(app_with(OCR_BACKEND="engine"), clean, doubtful, refused)
    assert summary["counts"] == {"result": 2, "error": 1}
    assert (paid(stack), engine.calls()) == (0, 3)
    doc = result(bucket, doubtful.key)
    assert (doc["ocr"]["backend"], doc["ocr"]["imageSource"], doc["needsReview"]) == ("engine", "body", True)
    error = orjson.loads((bucket.root / "uploads/refused.png.error.json").read_bytes())["error"]
    assert (error["code"], error["stage"], error["transient"]) == ("unmatchedImageType", "ocr", False)
    assert run(app_with(OCR_BACKEND="engine"), clean, refused)["counts"] == {"duplicate": 2}
    assert engine.calls() == 3


def test_cascade_pays_only_for_what_the_engine_would_send_to_review_and_keeps_the_apis_answer(
        app_with: Callable[..., App], bucket: Bucket, stack: LocalStack, engine: EngineService) -> None:
    ups = {n: bucket.put(f"uploads/{n}.png", permit_image(t)) for n, t in
           (("clean", SAMPLE_TRUTH), ("doubtful", DOUBTFUL), ("misread", MISREAD), ("refused", REFUSED))}
    assert run(app_with(OCR_BACKEND="cascade"), *ups.values())["counts"] == {"result": 4}
    assert (paid(stack), engine.calls()) == (2, 4)  # the doubtful and the refused one only
    docs = {n: result(bucket, u.key) for n, u in ups.items()}
    assert {n: d["ocr"]["backend"] for n, d in docs.items()} == {
        "clean": "engine", "doubtful": "api", "misread": "engine", "refused": "api"}
    assert docs["doubtful"]["ocr"]["cascade"]["engineReasons"] == ["confidence"]
    assert docs["refused"]["ocr"]["cascade"]["engineReasons"] == ["engine.unmatchedImageType"]
    assert docs["doubtful"]["data"]["data"]["nameCn"] == "何郑" and not docs["doubtful"]["needsReview"]
    assert docs["clean"]["ocr"]["cascade"] == {"escalated": False, "engineRequestId": docs["clean"]["ocr"]["requestId"]}
    assert docs["misread"]["data"]["data"]["nameCn"] == "何正"  # what a cascade cannot catch: shadow mode measures it
    assert run(app_with(OCR_BACKEND="cascade"), *ups.values())["counts"] == {"duplicate": 4}
    assert (paid(stack), engine.calls()) == (2, 4)


def test_cascade_never_pays_in_place_of_an_engine_that_is_down(app_with: Callable[..., App], bucket: Bucket,
                                                               stack: LocalStack, engine: EngineService) -> None:
    up = bucket.put("uploads/a.png", permit_image(DOUBTFUL))
    stack.faults.add_rule(FaultRule(service="fc", operation="InvokeFunction", status=503))
    summary = run(app_with(OCR_BACKEND="cascade"), up)
    assert summary["counts"] == {"retrying": 1} and paid(stack) == 0
    stack.faults.clear_rules()
    assert run(app_with(OCR_BACKEND="cascade"), up)["counts"] == {"result": 1}  # the claim was let go
    assert paid(stack) == 1


def test_an_engine_slower_than_its_timeout_is_retried_later_never_paid_for_and_nothing_is_stored_twice(
        app_with: Callable[..., App], bucket: Bucket, stack: LocalStack, engine: EngineService) -> None:
    """The engine function answers after ENGINE_TIMEOUT_MS (a cold start, an overloaded instance): both attempts
    time out on our side; the record stays non-final and the paid API is not asked in its place. Once the engine
    is fast enough, one result, and the API paid once (the engine doubts this permit)."""
    slow_and_unsure = {**SAMPLE_TRUTH, "engine": {"valueProb": {"nameCn": 40}, "delay": "2"}}
    up = bucket.put("uploads/a.png", permit_image(slow_and_unsure))
    summary = run(app_with(OCR_BACKEND="cascade", ENGINE_TIMEOUT_MS="1000"), up)
    assert summary["counts"] == {"retrying": 1} and paid(stack) == 0
    assert engine.calls() == 2  # one retry on our side; the engine completed both: FC seconds, no fee
    record = orjson.loads((bucket.root / "uploads/a.png.error.json").read_bytes())["error"]
    assert record["transient"] is True
    assert run(app_with(OCR_BACKEND="cascade", ENGINE_TIMEOUT_MS="5000"), up)["counts"] == {"result": 1}
    assert paid(stack) == 1 and result(bucket, up.key)["ocr"]["cascade"]["escalated"] is True
    assert not (bucket.root / "uploads/a.png.error.json").exists()


def test_an_engine_function_that_crashes_leaves_a_non_final_record_in_either_mode_and_pays_nothing(
        app_with: Callable[..., App], bucket: Bucket, stack: LocalStack, engine: EngineService,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """FC answers 200 with x-fc-error-type when the handler raised (out of memory, a bug): not a verdict on the
    image, so no final record, and a cascade does not pay the API in its place (docs/selfhosted.md)."""
    from permit_ocr import enginewire

    def crash(event: bytes) -> enginewire.Request:
        raise MemoryError

    monkeypatch.setattr("permit_ocr_engine.handler.enginewire.decode_request", crash)
    up = bucket.put("uploads/a.png", permit_image(DOUBTFUL))
    for backend in ("engine", "cascade"):
        assert run(app_with(OCR_BACKEND=backend), up)["counts"] == {"retrying": 1}
        record = orjson.loads((bucket.root / "uploads/a.png.error.json").read_bytes())["error"]
        assert (record["code"], record["transient"]) == ("EngineFunctionError", True)
    assert paid(stack) == 0 and engine.calls() == 4


def test_a_claim_is_taken_only_when_both_calls_of_a_cascade_fit_the_invocation(
        app_with: Callable[..., App], bucket: Bucket, stack: LocalStack, engine: EngineService) -> None:
    up = bucket.put("uploads/a.png", permit_image(DOUBTFUL))
    app = app_with(OCR_BACKEND="cascade", ENGINE_TIMEOUT_MS="20000")  # engine 25 s + API 15 s + 5 s to store
    assert run(app, up, timeout=44)["counts"] == {"retrying": 1}
    assert (paid(stack), engine.calls()) == (0, 0)
    assert not list((bucket.root / ".permit-ocr" / "markers").rglob("*"))  # no claim born expired
    assert run(app, up, timeout=46)["counts"] == {"result": 1}


def test_the_role_may_invoke_the_engine_function_and_no_other(env: dict[str, str], stack: LocalStack,
                                                               engine: EngineService, bucket: Bucket) -> None:
    from permit_ocr_local.fcruntime.deployment import load_s_yaml
    from permit_ocr_local.tools.deploycheck import render_policy

    stack.keyring.add("LTAIlocaladmin", "admin-secret")  # the uploader: not the function's role
    uploads = Bucket(stack, credentials=("LTAIlocaladmin", "admin-secret", None))
    stack.keyring.set_policy(stack.access_key_id, render_policy(load_s_yaml(REPO / "s.selfhosted.yaml"), "*"))
    up = uploads.put("uploads/a.png", permit_image())
    e = {**env, **engine.env(), "OCR_BACKEND": "engine", "ENGINE_TIMEOUT_MS": "10000"}
    assert run(App(load_config(e), environ=e), up)["counts"] == {"result": 1}
    other = {**e, "ENGINE_FUNCTION": "payroll"}
    down = uploads.put("uploads/b.png", permit_image())
    assert run(App(load_config(other), environ=other), down)["counts"] == {"retrying": 1}
    assert engine.server.state.stats["error:AccessDenied"] == 1
    record = orjson.loads((bucket.root / "uploads/b.png.error.json").read_bytes())["error"]
    assert (record["code"], record["transient"]) == ("AccessDenied", True)  # a fact about the world: not final


def test_shadow_mode_keeps_the_apis_result_and_records_the_comparison_without_a_value(
        app_with: Callable[..., App], bucket: Bucket, stack: LocalStack, engine: EngineService) -> None:
    ups = [bucket.put(f"uploads/{n}.png", permit_image(t)) for n, t in
           (("clean", SAMPLE_TRUTH), ("doubtful", DOUBTFUL), ("misread", MISREAD), ("refused", REFUSED))]
    assert run(app_with(SHADOW_RATE="1"), *ups)["counts"] == {"result": 4}
    assert (paid(stack), engine.calls()) == (4, 4)
    assert all(result(bucket, u.key)["ocr"]["backend"] == "api" for u in ups)
    files = sorted((bucket.root / SHADOW_PREFIX).rglob("*.json"))
    records = [orjson.loads(p.read_bytes()) for p in files]
    assert len(records) == 4
    for raw in (p.read_bytes().decode() for p in files):  # no value read from a permit, no key
        assert not any(v in raw for v in ("何郑", "何正", "HE,CHENG", "H10387877", "2000.01.01", "uploads/"))
    s = summarize(records)
    assert (s.answered, dict(s.refused), s.escalated, s.kept, s.kept_disagreeing) == (
        3, {"unmatchedImageType": 1}, 2, 2, 1)
    assert (s.fields["nameCn"].compared, s.fields["nameCn"].agreed) == (3, 2)
    assert run(app_with(SHADOW_RATE="1"), *ups)["counts"] == {"duplicate": 4}
    assert engine.calls() == 4  # a redelivery compares nothing again


def test_a_shadow_that_fails_leaves_the_result_as_the_api_gave_it(app_with: Callable[..., App], bucket: Bucket,
                                                                  stack: LocalStack, engine: EngineService) -> None:
    stack.faults.add_rule(FaultRule(service="fc", operation="InvokeFunction", status=500))
    up = bucket.put("uploads/a.png", permit_image())
    assert run(app_with(SHADOW_RATE="1", IMAGE_SOURCE="url"), up)["counts"] == {"result": 1}
    assert result(bucket, up.key)["ocr"]["backend"] == "api" and paid(stack) == 1
    records = [orjson.loads(p.read_bytes()) for p in (bucket.root / SHADOW_PREFIX).rglob("*.json")]
    assert [(r["engine"]["code"], r["wouldEscalate"]) for r in records] == [("InternalServerError", None)]


def test_shadow_sampling_is_decided_by_the_version_so_a_redelivery_decides_alike() -> None:
    from permit_ocr.shadow import sampled

    picks = [sampled(0.3, "b", f"uploads/{i}.png", hashlib.md5(str(i).encode()).hexdigest()) for i in range(2000)]
    assert 0.26 < sum(picks) / len(picks) < 0.34
    assert picks == [sampled(0.3, "b", f"uploads/{i}.png", hashlib.md5(str(i).encode()).hexdigest())
                     for i in range(2000)]
    assert not any(sampled(0.0, "b", f"k{i}", "E") for i in range(100))
    assert all(sampled(1.0, "b", f"k{i}", "E") for i in range(100))


def test_an_image_near_the_10_mb_limit_travels_to_the_engine_and_back(app_with: Callable[..., App], bucket: Bucket,
                                                                      stack: LocalStack, engine: EngineService) -> None:
    """Within FC's 32 MB synchronous payload. How long it takes is `make bench`'s peak-RSS row for the engine
    (a stream body made it 78 s: the SDK reads a stream 1 KB at a time; the body is bytes now)."""
    from support import permit_image as image

    big = image(size=(1900, 1800))
    big = big[:-12] + bytes(9 * 1024 * 1024) + big[-12:]  # padding before IEND's chunk: still a valid header
    up = bucket.put("uploads/big.png", big)
    assert run(app_with(OCR_BACKEND="engine", IMAGE_SOURCE="body", ENGINE_TIMEOUT_MS="10000"), up)["counts"] == {
        "result": 1}
    assert engine.calls() == 1 and paid(stack) == 0


def test_a_slow_shadow_never_delays_a_record_of_a_many_record_event(app_with: Callable[..., App], bucket: Bucket,
                                                                  stack: LocalStack, engine: EngineService) -> None:
    """Four records one after another (WORKERS=1) in an invocation with room for the four paid calls' claims but
    not for four engine reads of 1.5 s before the last claim: every record gets its result first, and the shadows
    run in what time is left (found by attack: they used to run between records, pushing the last one to FC's
    retry)."""
    slow = {**SAMPLE_TRUTH, "engine": {"delay": "1.5"}}
    ups = [bucket.put(f"uploads/{n}.png", permit_image({**slow, "n": str(n)})) for n in range(4)]
    app = app_with(SHADOW_RATE="1", WORKERS="1", ENGINE_TIMEOUT_MS="3000")
    assert app.backend.worst_call_s() + 5 > 24 - 4 * 1.5  # the last claim would not fit after three shadows
    assert run(app, *ups, timeout=24)["counts"] == {"result": 4}
    assert paid(stack) == 4
    assert engine.calls() == 4  # and every shadow still ran, after the records
    assert len(list((bucket.root / SHADOW_PREFIX).rglob("*.json"))) == 4


def test_shadows_past_the_kept_bytes_read_their_exact_version_again(app_with: Callable[..., App], bucket: Bucket,
                                                                    stack: LocalStack, engine: EngineService,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A many-record event in body mode keeps no more image bytes for its shadows than shadow.KEEP_BYTES; the
    others are read again, pinned to the version compared (an overwrite meanwhile: no record, one log line)."""
    from permit_ocr import shadow

    monkeypatch.setattr(shadow, "KEEP_BYTES", 1)
    ups = [bucket.put(f"uploads/{n}.png", permit_image({**SAMPLE_TRUTH, "n": str(n)})) for n in range(3)]
    assert run(app_with(SHADOW_RATE="1", IMAGE_SOURCE="body"), *ups)["counts"] == {"result": 3}
    records = [orjson.loads(p.read_bytes()) for p in (bucket.root / SHADOW_PREFIX).rglob("*.json")]
    assert len(records) == 3 and all(r["agreed"] == r["compared"] for r in records)
