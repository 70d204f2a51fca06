"""Converted uploads (issue 23) with the self-hosted recognizer: the bytes convert.py made, not the stored HEIC or
PDF, go to the engine function in the request, a PDF page by page; shadow mode compares each page on its own.
The engine function and the OCR stand-in are both the embedded engine here (the truth recognizers cannot read a
converted image), and the engine function refuses a HEIC or PDF body as the API does, so a result it answered
proves the conversion reached it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from permit_ocr.config import load_config
from permit_ocr.handler import App
from permit_ocr.layout import SHADOW_PREFIX
from permit_ocr_local.fcruntime.enginefn import EngineService, serve_engine
from permit_ocr_local.fcruntime.stack import LocalStack
from support import Bucket, invoke

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
PDF = (SAMPLES / "two-permits-scan.pdf").read_bytes()

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def engine(engine_stack: LocalStack) -> Iterator[EngineService]:
    service = serve_engine(engine_stack.keyring, "engine")
    service.preload()
    yield service
    service.stop()


@pytest.fixture(scope="module")
def app_with(engine_stack: LocalStack, engine: EngineService) -> Callable[..., App]:
    def build(**overrides: str) -> App:
        env = {**engine_stack.env(), **engine.env(), **overrides}
        return App(load_config(env), environ=env)

    return build


@pytest.fixture(scope="module")
def bucket(engine_stack: LocalStack) -> Bucket:
    return Bucket(engine_stack)


def paid(stack: LocalStack) -> int:
    assert stack.ocr is not None
    return int(stack.ocr.service.stats["billed"])


def doc(bucket: Bucket, key: str) -> dict[str, Any]:
    return dict(orjson.loads(bucket.get(key)))


def test_each_page_of_a_pdf_goes_to_the_engine_function_as_its_own_image_and_nothing_is_paid(
        app_with: Callable[..., App], bucket: Bucket, engine_stack: LocalStack, engine: EngineService) -> None:
    before, calls = paid(engine_stack), engine.calls()
    up = bucket.put("uploads/engine/scan.pdf", PDF)
    assert invoke(app_with(OCR_BACKEND="engine"), up, timeout=120)["counts"] == {"result": 1}
    index = doc(bucket, "uploads/engine/scan.pdf.json")
    assert index["type"] == "pages" and [p["outcome"] for p in index["pages"]] == ["result", "result"]
    for page in index["pages"]:
        result = doc(bucket, page["key"])
        assert result["ocr"]["backend"] == "engine" and result["input"]["format"] == "pdf"
    assert (paid(engine_stack) - before, engine.calls() - calls) == (0, 2)


def test_shadow_mode_compares_each_page_of_a_pdf_on_its_own(app_with: Callable[..., App], bucket: Bucket,
                                                            engine_stack: LocalStack, engine: EngineService) -> None:
    before, calls = paid(engine_stack), engine.calls()
    up = bucket.put("uploads/shadow/scan.pdf", PDF)
    assert invoke(app_with(SHADOW_RATE="1"), up, timeout=120)["counts"] == {"result": 1}
    assert (paid(engine_stack) - before, engine.calls() - calls) == (2, 2)
    records = [orjson.loads(p.read_bytes()) for p in (bucket.root / SHADOW_PREFIX).rglob("*.json")]
    assert len(records) == 2  # one per page, not one overwriting the other
    assert all(r["engine"]["code"] is None and r["compared"] == 10 for r in records)  # the pages, not the PDF


def test_a_heic_photo_reaches_the_engine_converted_in_a_cascade(app_with: Callable[..., App], bucket: Bucket,
                                                                engine: EngineService) -> None:
    calls = engine.calls()
    up = bucket.put("uploads/cascade/phone.heic", (SAMPLES / "macao-phone.heic").read_bytes())
    assert invoke(app_with(OCR_BACKEND="cascade"), up, timeout=120)["counts"] == {"result": 1}
    result = doc(bucket, "uploads/cascade/phone.heic.json")
    assert result["input"]["format"] == "heif" and engine.calls() - calls == 1
    reasons = result["ocr"]["cascade"].get("engineReasons") or []
    assert not any(r.startswith("engine.") for r in reasons), reasons  # the engine read it: no refusal
