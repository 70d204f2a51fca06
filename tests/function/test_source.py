"""source: find the object the event names (as sent, then decoded), pin the version that exists, precheck its
header with a range GET, and hand OCR a signed URL or the bytes. Driven through the real OSS SDK against the
OSS stand-in, calling prepare() and read_pinned() directly."""

from __future__ import annotations

import io
import struct
import urllib.request
from collections.abc import Callable

import alibabacloud_oss_v2 as oss
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from permit_ocr.config import Config, load_config
from permit_ocr.credentials import Credentials, resolve
from permit_ocr.errors import PrecheckError
from permit_ocr.events import ObjectRef
from permit_ocr.layout import etag_form
from permit_ocr.precheck import HEAD_BYTES
from permit_ocr.source import GONE, MAX_URL_CHARS, SUPERSEDED, SourceError, key_candidates, prepare, read_pinned
from permit_ocr.storage import Storage
from permit_ocr_local.fcruntime.stack import LocalStack
from permit_ocr_local.standins.faults import FaultPlan
from permit_ocr_local.standins.http import Request, Response
from permit_ocr_local.standins.oss.errors import InvalidRange
from support import Bucket, permit_image

Rewrite = Callable[[Request, Response], Response]


def ref_of(bucket: Bucket, key: str, etag: str | None = None) -> ObjectRef:
    return ObjectRef(bucket.name, key, etag_form(etag))


def put(bucket: Bucket, key: str, data: bytes) -> ObjectRef:
    return ref_of(bucket, key, bucket.put(key, data).etag)


def gets(stack: LocalStack) -> int:
    assert stack.oss is not None
    return sum(n for op, n in stack.oss.service.stats.items() if op == "GetObject")


# -- key_candidates: pure --------------------------------------------------------------------------------------


@given(st.text(max_size=40))
def test_the_key_as_sent_is_tried_first_and_no_form_twice(key: str) -> None:
    forms = key_candidates(key)
    assert forms[0] == key
    assert len(forms) == len(set(forms))
    assert len(forms) == 1 or "%" in key or "+" in key  # decoded forms only for keys that can be encoded


def test_an_encoded_key_is_also_tried_url_decoded_and_form_decoded() -> None:
    assert key_candidates("a%20b+c.png") == ["a%20b+c.png", "a b+c.png", "a b c.png"]
    assert key_candidates("a+b.png") == ["a+b.png", "a b.png"]


# -- prepare ------------------------------------------------------------------------------------------------


def test_url_mode_pins_the_current_version_and_hands_over_a_signed_url_that_reads_it(
        cfg: Config, storage: Storage, bucket: Bucket) -> None:
    data = permit_image()
    ref = put(bucket, "uploads/a.png", data)
    p = prepare(ref, cfg, storage)
    assert (p.key, p.etag, p.size, p.body) == ("uploads/a.png", ref.etag, len(data), None)
    assert (p.info.format, p.info.width, p.info.height) == ("png", 928, 626)
    assert p.url is not None
    with urllib.request.urlopen(p.url, timeout=10) as r:
        assert r.read() == data


def test_body_mode_hands_over_the_bytes_of_the_version_read(env: dict[str, str], storage: Storage,
                                                            bucket: Bucket) -> None:
    data = permit_image()
    ref = put(bucket, "uploads/b.png", data)
    p = prepare(ref, load_config({**env, "IMAGE_SOURCE": "body"}), storage)
    assert (p.body, p.url, p.etag) == (data, None, ref.etag)


def test_an_event_without_an_etag_takes_the_version_that_exists(cfg: Config, storage: Storage,
                                                                bucket: Bucket) -> None:
    ref = put(bucket, "uploads/c.png", permit_image())
    assert prepare(ref_of(bucket, "uploads/c.png"), cfg, storage).etag == ref.etag


def test_an_overwritten_object_is_superseded_by_its_own_event(cfg: Config, storage: Storage,
                                                              bucket: Bucket) -> None:
    old = put(bucket, "uploads/d.png", permit_image(size=(900, 600)))
    bucket.put("uploads/d.png", permit_image(size=(901, 600)))
    with pytest.raises(SourceError) as info:
        prepare(old, cfg, storage)
    assert (info.value.code, info.value.transient) == (SUPERSEDED, False)


def test_a_deleted_object_is_gone_a_fact_not_a_failure_worth_retrying(cfg: Config, storage: Storage,
                                                                      bucket: Bucket) -> None:
    with pytest.raises(SourceError) as info:
        prepare(ObjectRef(bucket.name, "uploads/never.png", "ABC"), cfg, storage)
    err = info.value
    assert (err.code, err.transient, err.stage) == (GONE, False, "source")
    assert err.request_id  # the 404's request id


@pytest.mark.parametrize(("event_key", "stored_key"), [
    ("uploads/a%20b.png", "uploads/a b.png"),
    ("uploads/a+b.png", "uploads/a b.png"),
    ("uploads/%E8%AF%81.png", "uploads/证.png"),
    ("uploads/100%25+sure.png", "uploads/100%25+sure.png"),  # a key that merely looks encoded: found as sent
])
def test_the_key_that_exists_is_found_and_used_for_everything_after(cfg: Config, storage: Storage, bucket: Bucket,
                                                                   event_key: str, stored_key: str) -> None:
    stored = put(bucket, stored_key, permit_image())
    p = prepare(ref_of(bucket, event_key, stored.etag), cfg, storage)
    assert (p.key, p.etag) == (stored_key, stored.etag)


def test_an_empty_object_is_a_final_precheck_failure_about_that_version(cfg: Config, storage: Storage,
                                                                        bucket: Bucket) -> None:
    ref = put(bucket, "uploads/empty.png", b"")
    verdict = prepare(ref, cfg, storage).verdict  # handed over, not raised: the claim holder records it
    assert isinstance(verdict, PrecheckError) and verdict.final
    assert (verdict.code, verdict.found) == ("illegalImageContent", ("uploads/empty.png", ref.etag))


def test_an_image_breaking_the_apis_limits_is_a_precheck_failure_bound_to_the_key_found(
        cfg: Config, storage: Storage, bucket: Bucket) -> None:
    ref = put(bucket, "uploads/t y.png", permit_image(size=(10, 10)))
    prepared = prepare(ref_of(bucket, "uploads/t%20y.png", ref.etag), cfg, storage)
    assert prepared.verdict is not None and (prepared.key, prepared.etag) == ("uploads/t y.png", ref.etag)
    assert (prepared.verdict.code, prepared.verdict.found) == ("illegalImageSize", ("uploads/t y.png", ref.etag))


def test_not_an_image_is_refused_by_its_first_bytes(cfg: Config, storage: Storage, bucket: Bucket) -> None:
    verdict = prepare(put(bucket, "uploads/x.png", b"PK\x03\x04 a .docx, not an image"), cfg, storage).verdict
    assert verdict is not None and verdict.code == "unsupportedImageFormat"


def test_a_pdf_under_an_image_suffix_is_told_by_its_bytes_and_converted(cfg: Config, storage: Storage,
                                                                        bucket: Bucket) -> None:
    prepared = prepare(put(bucket, "uploads/x.png", b"%PDF-1.7\n a scan saved as .png"), cfg, storage)
    assert prepared.verdict is None and prepared.info is not None
    assert (prepared.info.format, prepared.info.convert, prepared.url) == ("pdf", ("pdf",), None)


def _answer_416_to_range_gets(stack: LocalStack) -> Rewrite:
    """An OSS that answers 416 InvalidRange to a range it cannot serve (x-oss-range-behavior: standard)."""
    assert stack.oss is not None
    service = stack.oss.service

    def rewrite(request: Request, answer: Response) -> Response:
        if request.method == "GET" and request.header("Range") and answer.status < 300:
            return service.error(InvalidRange(Range=request.header("Range")), request, "RID416", "bucket")
        return answer

    return rewrite


@pytest.mark.parametrize("data", [b"", permit_image()], ids=["empty", "image"])
def test_a_416_to_the_range_get_falls_back_to_reading_the_whole_object(
        cfg: Config, storage: Storage, bucket: Bucket, stack: LocalStack,
        oss_wire: Callable[[Rewrite], None], data: bytes) -> None:
    ref = put(bucket, "uploads/r.png", data)
    oss_wire(_answer_416_to_range_gets(stack))
    if not data:
        verdict = prepare(ref, cfg, storage).verdict
        assert verdict is not None and verdict.code == "illegalImageContent"
    else:
        assert prepare(ref, cfg, storage).size == len(data)
    assert gets(stack) == 2  # the refused range, then the whole object


def _jpeg_with_long_header(extra: int) -> bytes:
    """A JPEG whose SOF sits behind ``extra`` bytes of APP segments (a big EXIF/ICC block)."""
    buf = io.BytesIO()
    Image.new("RGB", (640, 400), (180, 180, 180)).save(buf, "JPEG")
    jpeg = buf.getvalue()
    segments = b""
    while extra > 0:
        n = min(extra, 60000)
        segments += b"\xff\xe2" + struct.pack(">H", n + 2) + bytes(n)
        extra -= n
    return jpeg[:2] + segments + jpeg[2:]


def test_a_header_longer_than_the_first_read_is_read_further_and_found(cfg: Config, storage: Storage,
                                                                       bucket: Bucket, stack: LocalStack) -> None:
    data = _jpeg_with_long_header(HEAD_BYTES + 10_000)
    ref = put(bucket, "uploads/exif.jpg", data)
    p = prepare(ref, cfg, storage)
    assert (p.info.format, p.info.width, p.info.height, p.size) == ("jpeg", 640, 400, len(data))
    assert gets(stack) == 2


def test_a_corrupt_header_in_a_small_object_is_refused_without_more_reads(cfg: Config, storage: Storage,
                                                                          bucket: Bucket) -> None:
    png = permit_image()
    verdict = prepare(put(bucket, "uploads/cut.png", png[:20]), cfg, storage).verdict  # the IHDR is cut off
    assert verdict is not None and verdict.code == "unsupportedImageFormat"


def test_a_signed_url_over_the_apis_limit_sends_the_bytes_instead(cfg: Config, storage: Storage,
                                                                  bucket: Bucket) -> None:
    data = permit_image()
    # about 2,700 URL characters once percent-encoded and signed (in folders: the stand-in keeps keys as files)
    key = "uploads/" + "/".join(["长" * 60] * 5) + ".png"
    ref = put(bucket, key, data)
    assert len(storage.presign_get(bucket.name, key, cfg.signed_url_expires)) > MAX_URL_CHARS
    p = prepare(ref, cfg, storage)
    assert (p.url, p.body, p.size, p.etag) == (None, data, len(data), ref.etag)


def test_a_lasting_oss_outage_is_a_transient_source_failure(cfg: Config, storage: Storage, bucket: Bucket,
                                                            oss_faults: FaultPlan, no_oss_pauses: None) -> None:
    ref = put(bucket, "uploads/o.png", permit_image())
    oss_faults.set("oss", server_error=1.0)
    with pytest.raises(SourceError) as info:
        prepare(ref, cfg, storage)
    assert (info.value.code, info.value.transient) == ("ServiceUnavailable", True)
    assert oss_faults.injected["oss:server_error"] == 4 * 3  # our 4 attempts, each with the SDK's 3


def test_a_refused_read_is_a_permanent_source_failure(cfg: Config, env: dict[str, str], bucket: Bucket) -> None:
    ref = put(bucket, "uploads/p.png", permit_image())
    wrong = Credentials(env["ALIBABA_CLOUD_ACCESS_KEY_ID"], "wrong", env["ALIBABA_CLOUD_SECURITY_TOKEN"])
    with pytest.raises(SourceError) as info:
        prepare(ref, cfg, Storage(cfg, lambda: wrong))
    assert info.value.transient is False and info.value.code != GONE


# -- read_pinned ------------------------------------------------------------------------------------------------


def test_read_pinned_returns_the_bytes_of_the_version_prepared(cfg: Config, storage: Storage,
                                                               bucket: Bucket) -> None:
    data = permit_image()
    p = prepare(put(bucket, "uploads/q.png", data), cfg, storage)
    assert read_pinned(storage, bucket.name, p) == data


def test_read_pinned_refuses_a_newer_version(cfg: Config, storage: Storage, bucket: Bucket) -> None:
    p = prepare(put(bucket, "uploads/q.png", permit_image(size=(900, 600))), cfg, storage)
    bucket.put("uploads/q.png", permit_image(size=(901, 600)))
    with pytest.raises(SourceError) as info:
        read_pinned(storage, bucket.name, p)
    assert (info.value.code, info.value.transient) == (SUPERSEDED, False)


def test_read_pinned_of_a_deleted_image_is_gone(cfg: Config, storage: Storage, bucket: Bucket,
                                                env: dict[str, str]) -> None:
    p = prepare(put(bucket, "uploads/q.png", permit_image()), cfg, storage)
    bucket.client.delete_object(oss.DeleteObjectRequest(bucket=bucket.name, key="uploads/q.png"))
    with pytest.raises(SourceError) as info:
        read_pinned(Storage(cfg, lambda: resolve(env)), bucket.name, p)
    assert (info.value.code, info.value.transient) == (GONE, False)


def test_an_object_overwritten_between_the_header_reads_is_superseded(
        cfg: Config, storage: Storage, bucket: Bucket, oss_wire: Callable[[Rewrite], None]) -> None:
    ref = put(bucket, "uploads/exif.jpg", _jpeg_with_long_header(HEAD_BYTES + 10_000))
    newer = _jpeg_with_long_header(HEAD_BYTES + 20_000)
    first = [True]

    def overwrite_after_the_first_read(request: Request, answer: Response) -> Response:
        if request.method == "GET" and first[0]:
            first[0] = False
            bucket.put("uploads/exif.jpg", newer)  # the next upload lands while we look at the header
        return answer

    oss_wire(overwrite_after_the_first_read)
    with pytest.raises(SourceError) as info:
        prepare(ref, cfg, storage)
    assert (info.value.code, info.value.transient) == (SUPERSEDED, False)
