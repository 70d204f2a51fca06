"""Against real Alibaba Cloud: skipped unless PERMIT_OCR_LIVE=1 and credentials are set (it bills one OCR call).

Checks what no stand-in can: that the real service accepts our signed request, and that its answer (a result,
or a refusal of a synthetic card) is classified by code rather than taken for a network failure.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from permit_ocr.config import load_config
from permit_ocr.credentials import resolve
from permit_ocr.recognize import OcrFailure, Recognizer

REPO = Path(__file__).resolve().parents[2]
LIVE = os.environ.get("PERMIT_OCR_LIVE") == "1" and bool(os.environ.get("ALIBABA_CLOUD_ACCESS_KEY_ID"))

pytestmark = [pytest.mark.live, pytest.mark.skipif(not LIVE, reason="set PERMIT_OCR_LIVE=1 and credentials")]


def test_real_ocr_answers_a_body_request_with_data_or_a_classified_error() -> None:
    env = {"SOURCE_BUCKETS": "permit-ocr-live", **os.environ}
    cfg = load_config(env)
    recognizer = Recognizer(cfg, lambda: resolve(env))
    image = (REPO / "samples" / "hk-clean.jpg").read_bytes()
    try:
        result = recognizer.recognize(body=image, deadline=time.monotonic() + 60)
    except OcrFailure as err:
        assert err.code not in ("NetworkError", "SignatureDoesNotMatch", "IncompleteSignature"), err
        assert err.request_id
    else:
        assert result.request_id and isinstance(result.data.get("data"), dict)
