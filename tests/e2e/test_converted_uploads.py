"""What phones and scanners upload, end to end on the local stack with the embedded engine as the OCR (issue 23):
a HEIC photo, a two-page PDF scan, a 12 MB JPEG, a 9000 px PNG and a sideways EXIF photo each end with a correct
result; a corrupt HEIC, a password-protected PDF and a 500-page PDF each end with one error record and no paid
call; an upload too large for the instance's memory waits for more, unpaid. The OCR stand-in refuses PDF and
HEIC bodies as the API does, so a result proves the upload was converted. The function plans its memory for FC's
128 MB (FC_FUNCTION_MEMORY_SIZE unset), as deployed."""

from __future__ import annotations

import io
import json
import random
import struct
import zlib
from pathlib import Path
from typing import Any

import orjson
import pytest
from PIL import Image

from permit_ocr.config import load_config
from permit_ocr.handler import App, RetryLater
from permit_ocr_local.fcruntime.stack import LocalStack
from permit_ocr_local.synth import formats, generate
from support import Bucket, invoke

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
FIELDS = ("permitNumber", "nameEn", "birthDate", "validPeriod")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def app(engine_stack: LocalStack) -> App:
    env = dict(engine_stack.env())
    return App(load_config(env), environ=env)


@pytest.fixture(scope="module")
def bucket(engine_stack: LocalStack) -> Bucket:
    return Bucket(engine_stack)


def paid(stack: LocalStack) -> int:
    assert stack.ocr is not None
    return sum(1 for c in stack.ocr.service.calls)


def outcome(bucket: Bucket, key: str) -> dict[str, Any]:
    found = [k for k in (f"{key}.json", f"{key}.error.json") if bucket.exists(k)]
    assert len(found) == 1, f"{key}: outcomes {found}"
    return dict(orjson.loads(bucket.get(found[0])))


def assert_reads(doc: dict[str, Any], truth: dict[str, Any]) -> None:
    assert doc["type"] == "result", doc.get("error")
    read = doc["data"]["data"]
    assert {f: read[f] for f in FIELDS} == {f: truth["data"][f] for f in FIELDS}


def upload(app: App, bucket: Bucket, key: str, data: bytes) -> dict[str, Any]:
    return invoke(app, bucket.put(key, data), timeout=120)


def test_a_heic_photo_from_a_phone_is_converted_and_read(app: App, bucket: Bucket, engine_stack: LocalStack) -> None:
    data = (SAMPLES / "macao-phone.heic").read_bytes()
    assert data[4:12] == b"ftypheic"  # the premise: the stand-in would refuse these bytes
    assert upload(app, bucket, "uploads/photo.heic", data)["counts"] == {"result": 1}
    doc = outcome(bucket, "uploads/photo.heic")
    assert_reads(doc, json.loads((SAMPLES / "macao-phone.heic.truth.json").read_text()))
    assert doc["input"]["format"] == "heif" and doc["image"]["format"] == "jpeg"
    assert doc["ocr"]["imageSource"] == "body"


def test_a_two_page_pdf_scan_gives_one_result_per_page_and_an_index(app: App, bucket: Bucket,
                                                                     engine_stack: LocalStack) -> None:
    before = paid(engine_stack)
    data = (SAMPLES / "two-permits-scan.pdf").read_bytes()
    assert upload(app, bucket, "uploads/scan.pdf", data)["counts"] == {"result": 1}
    truths = json.loads((SAMPLES / "two-permits-scan.pdf.truth.json").read_text())["pages"]
    index = outcome(bucket, "uploads/scan.pdf")
    assert index["type"] == "pages" and index["results"] == 2
    for page, truth in enumerate(truths, start=1):
        entry = index["pages"][page - 1]
        assert (entry["page"], entry["outcome"], entry["key"]) == (page, "result", f"uploads/scan.pdf.page-{page}.json")
        doc = outcome(bucket, f"uploads/scan.pdf.page-{page}")
        assert_reads(doc, truth)
        assert (doc["input"]["page"], doc["input"]["pages"]) == (page, 2)
    assert paid(engine_stack) - before == 2
    assert upload(app, bucket, "uploads/scan.pdf", data)["counts"] == {"duplicate": 1}  # not one page paid again
    assert paid(engine_stack) - before == 2


def test_a_12_mb_jpeg_is_scaled_under_the_api_limit_and_read(app: App, bucket: Bucket) -> None:
    image, truth = generate(20241207, "hk")
    with Image.open(io.BytesIO(image)) as im:
        big = im.convert("RGB").resize((4800, round(4800 * im.height / im.width)), Image.Resampling.BICUBIC)
    noise = Image.effect_noise(big.size, 40).convert("RGB")
    big = Image.blend(big, noise, 0.12)
    out = io.BytesIO()
    big.save(out, "JPEG", quality=100, subsampling=0)
    assert len(out.getvalue()) > 12 * 10**6, len(out.getvalue())
    assert upload(app, bucket, "uploads/big.jpg", out.getvalue())["counts"] == {"result": 1}
    doc = outcome(bucket, "uploads/big.jpg")
    assert_reads(doc, truth)
    assert doc["input"]["reasons"] == ["overBytes"] and doc["input"]["scale"] < 1


def test_a_9000_px_png_is_read_in_strips_at_128_mb(app: App, bucket: Bucket, engine_stack: LocalStack) -> None:
    """Pillow would hold 9000 x 1400 px whole (50 MB, more than a 128 MB instance has beside the function): the
    PNG is decoded a strip of rows at a time (png.py), so it converts at the deployed memory size (its peak RSS is
    make bench's "9000 px PNG" row)."""
    image, truth = generate(20241208, "taiwan")
    with Image.open(io.BytesIO(image)) as im:
        wide = Image.new("RGB", (9000, 1400), (235, 235, 230))
        card = im.convert("RGB").resize((1800, round(1800 * im.height / im.width)))
        wide.paste(card, (3000, 60))
    out = io.BytesIO()
    wide.save(out, "PNG")
    before = paid(engine_stack)
    assert upload(app, bucket, "uploads/wide.png", out.getvalue())["counts"] == {"result": 1}
    doc = outcome(bucket, "uploads/wide.png")
    assert_reads(doc, truth)
    assert doc["input"]["reasons"] == ["overSide"] and (doc["image"]["width"], doc["image"]["height"]) == (4096, 637)
    assert paid(engine_stack) - before == 1


def test_an_upload_too_large_to_read_at_128_mb_waits_for_more_memory_and_is_never_paid_for(
        app: App, bucket: Bucket, engine_stack: LocalStack) -> None:
    """Reading an upload whole holds it twice (the SDK joins its chunks): 25 MB would not fit beside the function
    in 128 MB. It gets a non-final notEnoughMemory record before it is read (never an OOM kill, which leaves no
    outcome), and converts once memorySize is larger (here 256 MB: FC_FUNCTION_MEMORY_SIZE)."""
    image, truth = generate(20241211, "hk")
    with Image.open(io.BytesIO(image)) as im:
        out = io.BytesIO()
        im.convert("RGB").save(out, "PNG")
    small = out.getvalue()
    pad = bytes(25 * 2**20)  # a camera's private chunk: the picture is small, the file is not
    chunk = struct.pack(">I", len(pad)) + b"prVt" + pad + struct.pack(">I", zlib.crc32(b"prVt" + pad))
    data = small[:33] + chunk + small[33:]  # after the signature and IHDR
    before = paid(engine_stack)
    with pytest.raises(RetryLater):
        upload(app, bucket, "uploads/padded.png", data)
    record = outcome(bucket, "uploads/padded.png")
    assert (record["error"]["code"], record["error"]["transient"]) == ("notEnoughMemory", True)
    assert "MB" in record["error"]["message"] and paid(engine_stack) == before
    env = {**dict(engine_stack.env()), "FC_FUNCTION_MEMORY_SIZE": "256"}
    assert invoke(App(load_config(env), environ=env), bucket.put("uploads/padded-256.png", data),
                  timeout=120)["counts"] == {"result": 1}
    assert_reads(outcome(bucket, "uploads/padded-256.png"), truth)
    assert paid(engine_stack) - before == 1


@pytest.mark.parametrize("orientation", [6, 8])
def test_a_sideways_photo_is_stood_up_by_its_exif_orientation(app: App, bucket: Bucket, orientation: int) -> None:
    image, truth = generate(20241209 + orientation, "hk")
    data = formats.sideways_jpeg(image, orientation)
    key = f"uploads/sideways-{orientation}.jpg"
    assert upload(app, bucket, key, data)["counts"] == {"result": 1}
    doc = outcome(bucket, key)
    assert_reads(doc, truth)
    assert doc["input"]["rotation"] == {6: 90, 8: 270}[orientation]


@pytest.mark.parametrize(("name", "code"), [
    ("corrupt.heic", "unsupportedImageFormat"),
    ("locked.pdf", "passwordProtectedPDF"),
    ("long.pdf", "exceededPDFPages"),
])
def test_unreadable_uploads_end_with_one_final_error_record_and_no_paid_call(
        app: App, bucket: Bucket, engine_stack: LocalStack, name: str, code: str) -> None:
    scan = (SAMPLES / "two-permits-scan.pdf").read_bytes()
    heic = (SAMPLES / "macao-phone.heic").read_bytes()
    rng = random.Random(7)
    data = {"corrupt.heic": heic[:4096] + bytes(rng.randrange(256) for _ in range(200_000)),
            "locked.pdf": formats.encrypted_pdf(scan),
            "long.pdf": formats.many_pages_pdf(500)}[name]
    before = paid(engine_stack)
    key = f"uploads/{name}"
    assert upload(app, bucket, key, data)["counts"] == {"error": 1}
    doc = outcome(bucket, key)
    assert (doc["error"]["code"], doc["error"]["stage"], doc["error"]["transient"]) == (code, "convert", False)
    assert paid(engine_stack) == before
    assert not [k for k in (f"{key}.page-1.json", f"{key}.page-1.error.json") if bucket.exists(k)]
    assert upload(app, bucket, key, data)["counts"] == {"duplicate": 1}
