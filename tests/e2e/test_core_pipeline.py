"""End to end over real HTTP: the handler, the real SDKs and the OSS/OCR stand-ins."""

from __future__ import annotations

from collections.abc import Callable

import orjson
import pytest
from permit_ocr.handler import App
from permit_ocr_local.stack import LocalStack
from support import SAMPLE_TRUTH, Bucket, invoke, permit_image


@pytest.mark.parametrize("mode", ["url", "body"])
def test_upload_gets_decoded_result_beside_the_image(mode: str, make_app: Callable[..., App], bucket: Bucket,
                                                     stack: LocalStack) -> None:
    up = bucket.put("uploads/hk-permit.png", permit_image())
    summary = invoke(make_app(IMAGE_SOURCE=mode), up)
    assert summary["counts"] == {"result": 1}
    doc = orjson.loads((bucket.root / "uploads/hk-permit.png.json").read_bytes())
    assert doc["type"] == "result" and doc["schemaVersion"] == 1
    assert doc["data"]["data"] == SAMPLE_TRUTH
    assert doc["source"]["etag"] == up.etag and doc["source"]["key"] == up.key
    assert doc["ocr"]["imageSource"] == mode and doc["ocr"]["requestId"]
    meta = bucket.head_meta("uploads/hk-permit.png.json")
    assert meta["source-etag"] == up.etag
    assert stack.ocr is not None
    assert [c.source for c in stack.ocr.service.calls] == [mode]
