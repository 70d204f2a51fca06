"""recognize: the paid call itself, Recognizer.recognize() with the real OCR SDK (ACS3 signing, STS token)
against the OCR stand-in: url and body mode, a permanent answer never retried, throttling retried within the
attempt cap and the deadline, and rotated credentials. (The pure retry rules are in tests/unit.)"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable

import pytest

from permit_ocr.config import Config, load_config
from permit_ocr.credentials import Credentials, resolve
from permit_ocr.errors import OcrFailure
from permit_ocr.recognize import Deadline, Recognizer
from permit_ocr.storage import Storage
from permit_ocr_local.fcruntime.stack import LocalStack
from permit_ocr_local.standins.faults import FaultPlan
from support import SAMPLE_TRUTH, Bucket, permit_image


@pytest.fixture
def recognizer(cfg: Config, env: dict[str, str]) -> Recognizer:
    return Recognizer(cfg, lambda: resolve(env), seed=1)


@pytest.fixture
def ocr_faults(attach_faults: Callable[..., FaultPlan]) -> FaultPlan:
    return attach_faults("ocr")


def billed(stack: LocalStack, image: bytes) -> int:
    assert stack.ocr is not None
    return stack.ocr.service.billed_by_image()[hashlib.sha256(image).hexdigest()]


def soon() -> float:
    return time.monotonic() + 60


def test_body_mode_returns_the_decoded_data_and_the_services_request_id(recognizer: Recognizer,
                                                                        stack: LocalStack) -> None:
    image = permit_image()
    result = recognizer.recognize(body=image, budget=Deadline(soon()))
    assert result.data["data"]["permitNumber"] == SAMPLE_TRUTH["permitNumber"]
    assert result.request_id and result.attempts == 1 and result.latency_ms >= 0
    assert billed(stack, image) == 1


def test_url_mode_has_the_service_fetch_the_signed_url(recognizer: Recognizer, storage: Storage, bucket: Bucket,
                                                       stack: LocalStack) -> None:
    image = permit_image()
    bucket.put("uploads/r.png", image)
    url = storage.presign_get(bucket.name, "uploads/r.png", 300)
    result = recognizer.recognize(url=url, budget=Deadline(soon()))
    assert result.data["data"]["nameEn"] == SAMPLE_TRUTH["nameEn"]
    assert stack.ocr is not None and [c.source for c in stack.ocr.service.calls] == ["url"]


def test_an_image_the_api_refuses_is_a_final_failure_after_one_call(recognizer: Recognizer,
                                                                    stack: LocalStack) -> None:
    with pytest.raises(OcrFailure) as info:
        recognizer.recognize(body=b"%PDF-1.7 not an image", budget=Deadline(soon()))
    err = info.value
    assert (err.code, err.transient, err.attempts, err.stage) == ("unsupportedImageFormat", False, 1, "ocr")
    assert err.request_id and err.status == 415
    assert stack.ocr is not None and stack.ocr.service.stats["calls"] == 1


def test_an_unreachable_signed_url_is_retried_once_then_final(recognizer: Recognizer, stack: LocalStack) -> None:
    with pytest.raises(OcrFailure) as info:
        recognizer.recognize(url="http://127.0.0.1:9/gone.png", budget=Deadline(soon()))
    assert (info.value.code, info.value.transient, info.value.attempts) == ("IllegalImageUrl", False, 2)


def test_throttling_is_retried_until_the_attempt_cap_and_stays_transient(
        env: dict[str, str], stack: LocalStack, ocr_faults: FaultPlan, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("permit_ocr.recognize.time.sleep", lambda s: None)
    ocr_faults.set("ocr", throttle=1.0)
    recognizer = Recognizer(load_config({**env, "OCR_MAX_ATTEMPTS": "3"}), lambda: resolve(env), seed=1)
    with pytest.raises(OcrFailure) as info:
        recognizer.recognize(body=permit_image(), budget=Deadline(soon()))
    assert (info.value.code, info.value.transient, info.value.attempts) == ("Throttling.User", True, 3)
    assert ocr_faults.injected["ocr:throttle"] == 3


def test_a_throttled_call_that_then_succeeds_is_billed_once(recognizer: Recognizer, stack: LocalStack,
                                                            ocr_faults: FaultPlan,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("permit_ocr.recognize.time.sleep", lambda s: None)
    image = permit_image()
    left = [2]

    def first_two(service: str, request: object) -> bool:
        left[0] -= 1
        return left[0] >= 0

    ocr_faults.only = first_two
    ocr_faults.set("ocr", throttle=1.0)
    result = recognizer.recognize(body=image, budget=Deadline(soon()))
    assert result.attempts == 3 and billed(stack, image) == 1


def test_no_retry_is_started_that_the_deadline_cannot_wait_for(recognizer: Recognizer, ocr_faults: FaultPlan,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr("permit_ocr.recognize.time.sleep", slept.append)
    ocr_faults.set("ocr", throttle=1.0)
    class ClosesAfterTheFirstCall:  # the budget has room for one call and no pause after it
        asked = 0

        def latest_start(self, call_s: float) -> float:
            self.asked += 1
            return time.monotonic() + (60 if self.asked == 1 else -1)

        def cover(self, call_s: float) -> bool:
            return True

    with pytest.raises(OcrFailure) as info:
        recognizer.recognize(body=permit_image(), budget=ClosesAfterTheFirstCall())
    assert (info.value.attempts, info.value.transient, slept) == (1, True, [])


def test_rotated_sts_credentials_rebuild_the_client(cfg: Config, env: dict[str, str], stack: LocalStack) -> None:
    current = [resolve(env)]
    recognizer = Recognizer(cfg, lambda: current[0])
    recognizer.recognize(body=permit_image(), budget=Deadline(soon()))
    stack.keyring.add("STS.rotated", "rotated-secret", "CAIS-rotated")
    current[0] = Credentials("STS.rotated", "rotated-secret", "CAIS-rotated")
    assert recognizer.recognize(body=permit_image(), budget=Deadline(soon())).attempts == 1
    current[0] = Credentials("STS.rotated", "stale-secret", "CAIS-rotated")  # proves the triple is read anew
    with pytest.raises(OcrFailure) as info:
        recognizer.recognize(body=permit_image(), budget=Deadline(soon()))
    assert info.value.transient is False
