"""Property-based tests (hypothesis) of the pure steps: parse_event, precheck.inspect, check_limits."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from permit_ocr.events import MalformedEvent, ObjectRef, ParsedEvent, RecordProblem, parse_event
from permit_ocr.precheck import (
    HEAD_BYTES,
    MAX_HEAD_BYTES,
    MAX_RATIO,
    MAX_SIDE,
    MIN_SIDE,
    ImageInfo,
    NeedMoreBytes,
    PrecheckError,
    check_limits,
    inspect,
)

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- parse_event ---------------------------------------------------------------------------------------------

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20)
names = st.sampled_from(["ObjectCreated:PutObject", "oss:ObjectCreated:PostObject", "ObjectRemoved:DeleteObject",
                         "ObjectCreated:CompleteMultipartUpload", "", "oss:", "ObjectCreated"])
strings = st.sampled_from(["", "photos", "a.jpg", "证件/张三 a+b%20.png", '"abc"', "12", "-1", "²"]) | st.text(
    max_size=12)
objects = st.fixed_dictionaries({}, optional={
    "key": strings | json_values, "eTag": strings | json_values,
    "size": st.integers(min_value=-5, max_value=2**70) | st.booleans() | strings | json_values})
oss_blocks = st.fixed_dictionaries({}, optional={
    "bucket": st.fixed_dictionaries({}, optional={"name": strings | json_values}) | json_values,
    "object": objects | json_values})
records = st.fixed_dictionaries({}, optional={
    "eventName": names | json_values, "oss": oss_blocks | json_values, "region": strings | json_values,
    "eventTime": strings | json_values,
    "responseElements": st.fixed_dictionaries({}, optional={"requestId": strings | json_values}) | json_values,
}) | json_values
events = st.fixed_dictionaries({"events": st.lists(records, max_size=6)}) | st.dictionaries(
    st.sampled_from(["events", "Events", "x"]), json_values, max_size=2)


def check_parsed(parsed: ParsedEvent, n_records: int) -> None:
    assert len(parsed.refs) + len(parsed.problems) + parsed.duplicates == n_records
    seen = set()
    for ref in parsed.refs:
        assert isinstance(ref, ObjectRef)
        assert isinstance(ref.bucket, str) and ref.bucket
        assert isinstance(ref.key, str) and ref.key
        assert ref.etag is None or (isinstance(ref.etag, str) and ref.etag and ref.etag == ref.etag.upper())
        assert ref.size is None or (type(ref.size) is int and ref.size >= 0)
        assert ref.event_name is None or ref.event_name.startswith("ObjectCreated:")
        for text in (ref.region, ref.event_time, ref.oss_request_id):
            assert text is None or (isinstance(text, str) and text)
        ident = (ref.bucket, ref.key, ref.etag)
        assert ident not in seen
        seen.add(ident)
    indexes = [p.index for p in parsed.problems]
    assert indexes == sorted(set(indexes))
    for problem in parsed.problems:
        assert isinstance(problem, RecordProblem)
        assert 0 <= problem.index < n_records
        assert problem.code in ("MalformedRecord", "NotACreateEvent")


def parse_or_malformed(raw: Any) -> ParsedEvent | None:
    try:
        return parse_event(raw)
    except MalformedEvent:
        return None


@SETTINGS
@given(st.binary(max_size=300))
@example(b'{"events":[{"oss":{"bucket":{"name":"b"},"object":{"key":"k","size":"\xc2\xb2"}}}]}')
@example(b"[" * 5000)
def test_parse_event_on_arbitrary_bytes_raises_only_malformed_event(raw: bytes) -> None:
    parsed = parse_or_malformed(raw)
    if parsed is not None:
        check_parsed(parsed, len(orjson_events(raw)))


def orjson_events(raw: bytes) -> list[Any]:
    doc = json.loads(raw)
    return list(doc["events"])


@SETTINGS
@given(json_values)
def test_parse_event_on_arbitrary_json_raises_only_malformed_event(value: Any) -> None:
    raw = json.dumps(value)
    parsed = parse_or_malformed(raw)
    if parsed is not None:
        check_parsed(parsed, len(value["events"]))


@SETTINGS
@given(events)
def test_parse_event_on_event_shaped_input_returns_refs_or_problems(doc: dict[str, Any]) -> None:
    parsed = parse_or_malformed(doc)
    if not isinstance(doc.get("events"), list):
        assert parsed is None
        return
    assert parsed is not None
    check_parsed(parsed, len(doc["events"]))
    again = parse_or_malformed(json.dumps(doc).encode())  # bytes, as FC delivers it
    if again is not None:  # ints beyond 64 bits do not survive orjson: the event is malformed then
        assert again == parsed


@SETTINGS
@given(st.lists(st.sampled_from(["a.jpg", "b.png", "a.jpg"]), max_size=8),
       st.sampled_from(["E1", '"e1"', None]))
def test_parse_event_collapses_repeats_of_one_upload(keys: list[str], etag: str | None) -> None:
    recs = [{"oss": {"bucket": {"name": "b"}, "object": {"key": k, **({"eTag": etag} if etag else {})}}}
            for k in keys]
    parsed = parse_event({"events": recs})
    assert [r.key for r in parsed.refs] == list(dict.fromkeys(keys))
    assert parsed.duplicates == len(keys) - len(set(keys))


# --- precheck.inspect ----------------------------------------------------------------------------------------


def encode(im: Image.Image, fmt: str, **params: Any) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **params)
    return buf.getvalue()


SIZE = (53, 29)
VALID: dict[str, bytes] = {
    "png": encode(Image.new("RGB", SIZE), "PNG"),
    "jpeg": encode(Image.new("RGB", SIZE), "JPEG", exif=b"Exif\x00\x00" + b"\x00" * 300),
    "jpeg-progressive": encode(Image.new("L", SIZE), "JPEG", progressive=True),
    "gif": encode(Image.new("RGB", SIZE), "GIF"),
    "bmp": encode(Image.new("RGB", SIZE), "BMP"),
    "tiff-le": encode(Image.new("RGB", SIZE), "TIFF"),
    "tiff-be": encode(Image.new("I;16B", SIZE), "TIFF"),
    "webp-lossy": encode(Image.new("RGB", SIZE), "WEBP", quality=50),
    "webp-lossless": encode(Image.new("RGB", SIZE), "WEBP", lossless=True),
    "webp-extended": encode(Image.new("RGBA", SIZE, (1, 2, 3, 4)), "WEBP", quality=50),
}
BIG_JPEG = encode(Image.new("RGB", SIZE), "JPEG", exif=b"Exif\x00\x00" + b"\x00" * 65000,
                  icc_profile=b"\x00" * 140000)
MAGICS = [b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM", b"II*\x00",
          b"MM\x00*", b"RIFF\x00\x00\x00\x00WEBPVP8 ", b"RIFF\x00\x00\x00\x00WEBPVP8L",
          b"RIFF\x00\x00\x00\x00WEBPVP8X"]


def inspect_safely(head: bytes, object_size: int | None) -> ImageInfo | NeedMoreBytes | PrecheckError:
    """inspect's outcome; any exception other than its two is a failure of the property."""
    try:
        info = inspect(head, object_size)
    except (NeedMoreBytes, PrecheckError) as exc:
        return exc
    assert isinstance(info, ImageInfo)
    assert info.width >= 0 and info.height >= 0
    return info


def check_need_more(more: NeedMoreBytes, head: bytes) -> None:
    """The request grows, so a caller reading ``total`` bytes and retrying makes progress or stops."""
    assert more.total <= MAX_HEAD_BYTES
    assert more.total > len(head) or more.total == MAX_HEAD_BYTES


sizes = st.none() | st.integers(min_value=0, max_value=20 * 1024 * 1024)


@SETTINGS
@given(st.binary(max_size=4096), sizes)
def test_inspect_on_arbitrary_bytes_raises_only_its_own_errors(head: bytes, object_size: int | None) -> None:
    outcome = inspect_safely(head, object_size)
    if isinstance(outcome, NeedMoreBytes):
        check_need_more(outcome, head)


@SETTINGS
@given(st.sampled_from(MAGICS), st.binary(max_size=2048), sizes)
@example(b"\xff\xd8\xff", b"\xe0\x00\x00" * 10, None)
@example(b"II*\x00", b"\xff\xff\xff\x7f", None)
@example(b"II*\x00", b"\x08\x00\x00\x00\xff\xff", None)
def test_inspect_on_bytes_behind_a_known_magic_raises_only_its_own_errors(magic: bytes, tail: bytes,
                                                                          object_size: int | None) -> None:
    head = magic + tail
    outcome = inspect_safely(head, object_size)
    if isinstance(outcome, NeedMoreBytes):
        check_need_more(outcome, head)
        assert object_size is None or len(head) < object_size  # a complete object is never "need more"


@SETTINGS
@given(st.sampled_from(sorted(VALID)), st.data())
def test_a_truncated_valid_header_gives_the_true_size_or_asks_for_more(name: str, data: st.DataObject) -> None:
    whole = VALID[name]
    cut = data.draw(st.integers(min_value=0, max_value=len(whole)), label="cut")
    head = whole[:cut]
    for object_size in (None, len(whole)):
        outcome = inspect_safely(head, object_size)
        if isinstance(outcome, ImageInfo):
            assert (outcome.width, outcome.height) == SIZE  # never a wrong size from a short read
        elif isinstance(outcome, NeedMoreBytes):
            check_need_more(outcome, head)
        else:
            assert cut < 12  # only too few bytes to even tell the format
    complete = inspect_safely(head, cut)  # the object really is this short
    assert not isinstance(complete, NeedMoreBytes)


def read_like_the_caller(obj: bytes, first: int = HEAD_BYTES) -> tuple[ImageInfo | PrecheckError, int]:
    """source.prepare's loop: read ``first`` bytes, then ``total`` bytes while inspect asks for more."""
    head, rounds = obj[:first], 1
    while True:
        outcome = inspect_safely(head, len(obj))
        if not isinstance(outcome, NeedMoreBytes):
            return outcome, rounds
        check_need_more(outcome, head)
        assert len(head) < outcome.total  # (the caller gives up otherwise)
        head, rounds = obj[: outcome.total], rounds + 1
        assert rounds <= 4


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=0, max_value=len(BIG_JPEG)))
def test_the_caller_loop_ends_on_a_jpeg_cut_anywhere(cut: int) -> None:
    outcome, _ = read_like_the_caller(BIG_JPEG[:cut])
    assert outcome == ImageInfo("jpeg", *SIZE) or isinstance(outcome, PrecheckError)


def test_the_caller_loop_finds_a_frame_header_beyond_head_bytes_in_two_reads() -> None:
    assert BIG_JPEG.find(b"\xff\xc0") > HEAD_BYTES
    assert read_like_the_caller(BIG_JPEG) == (ImageInfo("jpeg", *SIZE), 2)


def test_the_caller_loop_ends_when_the_frame_header_is_beyond_max_head_bytes() -> None:
    obj = b"\xff\xd8" + (b"\xff\xe1\xff\xff" + b"\x00" * 65533) * 18 + BIG_JPEG[2:]  # SOF after ~1.2 MB
    head = obj[:MAX_HEAD_BYTES]
    with pytest.raises(NeedMoreBytes) as more:
        inspect(head, len(obj))
    assert more.value.total == MAX_HEAD_BYTES == len(head)  # no growth left: the caller stops here


# --- check_limits --------------------------------------------------------------------------------------------

MB = 1024 * 1024


def api_takes(w: int, h: int) -> bool:
    """The API's own rule: 15 < side < 8192, ratio < 50."""
    return MIN_SIDE < w < MAX_SIDE and MIN_SIDE < h < MAX_SIDE and max(w, h) / min(w, h) < MAX_RATIO


def no_conversion_helps(w: int, h: int) -> bool:
    """Scaling down keeps the ratio and never widens a side: only the sides over 8192 px are convertible."""
    return min(w, h) <= MIN_SIDE or max(w, h) / min(w, h) >= MAX_RATIO


@SETTINGS
@given(st.integers(min_value=0, max_value=20_000), st.integers(min_value=0, max_value=20_000))
@example(15, 100)
@example(16, 100)
@example(100, 15)
@example(100, 16)
@example(8191, 8191)
@example(8192, 8191)
@example(8191, 8192)
@example(998, 20)  # ratio 49.9
@example(1000, 20)  # ratio 50
@example(20, 998)
@example(20, 1000)
@example(9000, 181)  # over the sides, ratio 49.7: converted
@example(9000, 180)  # ratio 50: refused
def test_check_limits_refuses_exactly_what_no_conversion_helps_and_converts_exactly_the_oversize(w: int,
                                                                                                   h: int) -> None:
    try:
        checked = check_limits(ImageInfo("png", w, h), None, 10 * MB, 40 * MB)
    except PrecheckError as err:
        assert err.code == "illegalImageSize"
        assert no_conversion_helps(w, h)
    else:
        assert not no_conversion_helps(w, h)
        assert checked.convert == (() if api_takes(w, h) else ("overSide",))


@pytest.mark.parametrize(("w", "h", "outcome"), [
    (15, 500, "refused"), (16, 500, "as stored"), (8191, 500, "as stored"), (8192, 500, "converted"),
    (998, 20, "as stored"), (1000, 20, "refused"), (20, 998, "as stored"), (20, 1000, "refused"),
])
def test_check_limits_boundaries(w: int, h: int, outcome: str) -> None:
    if outcome == "refused":
        with pytest.raises(PrecheckError):
            check_limits(ImageInfo("png", w, h), None, 1, 1)
    else:
        converted = check_limits(ImageInfo("png", w, h), None, 1, 1).convert
        assert converted == (("overSide",) if outcome == "converted" else ())


@SETTINGS
@given(st.integers(min_value=0, max_value=2**40), st.integers(min_value=1, max_value=2**40),
       st.integers(min_value=1, max_value=2**40))
def test_check_limits_refuses_only_what_is_over_both_byte_limits_and_converts_what_is_over_one(
        size: int, limit: int, convert_limit: int) -> None:
    try:
        checked = check_limits(ImageInfo("png", 500, 500), size, limit, convert_limit)
    except PrecheckError as err:
        assert err.code == "exceededImageContent" and size > max(limit, convert_limit)
    else:
        assert size <= max(limit, convert_limit)
        assert checked.convert == (("overBytes",) if size > limit else ())
