"""The review page's fixtures: the local stack with both sinks on, seeded through the real handler with
results that need review (each flagged by a different deterministic check), and a ReviewStore over it."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from permit_ocr.config import load_config
from permit_ocr.credentials import resolve
from permit_ocr.handler import App
from permit_ocr_local.fcruntime.context import Upload
from permit_ocr_local.fcruntime.stack import DEFAULT_BUCKET, LocalStack
from permit_ocr_local.tools.review.store import ReviewStore
from support import SAMPLE_TRUTH, Bucket, invoke, permit_image

PREFIX = "review/"
SINKS = "oss,mns"

# the committed flagged sample: an adult Hong Kong holder with a 5-year validity (validPeriod.span fails)
SPAN_SAMPLE = Path(__file__).resolve().parents[3] / "samples" / "hk-review-span.jpg"
SPAN = json.loads(SPAN_SAMPLE.with_name("hk-review-span.truth.json").read_text("utf-8"))["data"]
SPAN_READ = SPAN["validPeriod"]
RECORDED = Path(__file__).with_name("fixtures") / "hk-review-span.engine.json"  # permit-ocr recognize's output
SPAN_FIXED = SPAN_READ[:11] + str(int(SPAN_READ[11:15]) + 5) + SPAN_READ[15:]  # the 10-year span
# a Hong Kong number one digit short: number.format fails
NUMBER = {**SAMPLE_TRUTH, "nameCn": "林小文", "nameEn": "LIN,XIAOWEN", "permitNumber": "H1038787"}
NUMBER_FIXED = "H10387871"
CLEAN = {**SAMPLE_TRUTH, "nameCn": "王明", "nameEn": "WANG,MING"}


class Recorded:
    """The OCR stand-in's recognizer, answering the flagged sample with the embedded engine's recorded Data
    (real field positions, so the boxes on the page and in docs/review-screen.png sit on the card) and any
    other image from its embedded truth. Recorded rather than recognized: the engine is tuned independently."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.sample = hashlib.sha256(SPAN_SAMPLE.read_bytes()).hexdigest()

    def recognize(self, image: bytes, output_figure: bool) -> dict[str, Any]:
        if hashlib.sha256(image).hexdigest() == self.sample:
            data: dict[str, Any] = json.loads(RECORDED.read_text("utf-8"))
            return data
        return dict(self.inner.recognize(image, output_figure))


@dataclass
class Seeded:
    stack: LocalStack
    env: dict[str, str]
    bucket: Bucket
    uploads: dict[str, Upload]  # name -> the image upload (span, number, clean)
    app: App

    def result_key(self, name: str) -> str:
        return self.uploads[name].key + ".json"

    def result(self, name: str) -> dict[str, Any]:
        doc: dict[str, Any] = orjson.loads(self.bucket.get(self.result_key(name)))
        return doc

    def store(self, **kw: Any) -> ReviewStore:
        env = self.env
        return ReviewStore(load_config(env), lambda: resolve(env), DEFAULT_BUCKET, PREFIX, **kw)

    def reviewed_messages(self) -> list[Any]:
        assert self.stack.mns is not None
        return [m for m in self.stack.mns.state.messages(self.env["MNS_TOPIC"]) if m.tag == "result-reviewed"]


@pytest.fixture
def seeded(stack: LocalStack, bucket: Bucket, make_app: Callable[..., App]) -> Seeded:
    env = {**stack.env(), "SINKS": SINKS}
    app = make_app(SINKS=SINKS)
    uploads = {}
    assert stack.ocr is not None
    stack.ocr.service.backend = Recorded(stack.ocr.service.backend)
    images = {"span": SPAN_SAMPLE.read_bytes(), "number": permit_image(NUMBER),
              "clean": permit_image(CLEAN)}
    for name, image in images.items():
        up = bucket.put(f"{PREFIX}{name}.{'jpg' if name == 'span' else 'png'}", image)
        assert invoke(app, up)["counts"] == {"result": 1}
        uploads[name] = up
        time.sleep(0.005)  # processedAt has millisecond resolution: keep the oldest-first order certain
    return Seeded(stack, env, bucket, uploads, app)
