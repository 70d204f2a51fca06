"""Step 2: the verdicts decided from the event alone (reject, skip, fail, or go on)."""

from __future__ import annotations

import pytest

from permit_ocr.config import OCR_MAX_IMAGE_BYTES, Config, load_config
from permit_ocr.events import ObjectRef
from permit_ocr.guards import MAX_KEY_BYTES, Action, Verdict, check, has_image_suffix, is_own_output


def make_config(**env: str) -> Config:
    return load_config({"SOURCE_BUCKETS": "photos,scans", **env})


CFG = make_config()


def ref(key: str = "in/a.jpg", bucket: str = "photos", size: int | None = 1000) -> ObjectRef:
    return ObjectRef(bucket=bucket, key=key, etag="E1", size=size)


def verdict(r: ObjectRef, cfg: Config = CFG) -> tuple[Action, str] | None:
    v = check(r, cfg)
    return None if v is None else (v.action, v.code)


@pytest.mark.parametrize("key", ["in/a.jpg", "A.JPG", "b.jpeg", "c.png", "d.bmp", "e.gif", "f.tif", "g.TIFF",
                                 "h.webp", "证件/张三 a+b%20.jpg"])
def test_an_image_in_an_allowed_bucket_goes_on(key: str) -> None:
    assert check(ref(key), CFG) is None


def test_every_listed_source_bucket_is_allowed() -> None:
    assert check(ref(bucket="scans"), CFG) is None


def test_a_bucket_outside_source_buckets_is_rejected() -> None:
    v = check(ref(bucket="someone-else"), CFG)
    assert isinstance(v, Verdict)
    assert (v.action, v.code) == (Action.REJECT, "BucketNotAllowed")


def test_bucket_names_match_exactly() -> None:
    assert verdict(ref(bucket="photo")) == (Action.REJECT, "BucketNotAllowed")
    assert verdict(ref(bucket="PHOTOS")) == (Action.REJECT, "BucketNotAllowed")


def test_the_bucket_rule_comes_before_every_other_rule() -> None:
    assert verdict(ref("a.jpg.json", bucket="other", size=0)) == (Action.REJECT, "BucketNotAllowed")


@pytest.mark.parametrize("key", ["in/a.jpg.json", "in/a.jpg.error.json", "a.png.json"])
def test_our_own_result_and_error_records_are_skipped(key: str) -> None:
    assert verdict(ref(key)) == (Action.SKIP, "OwnOutput")


def test_keys_under_the_output_prefix_are_skipped_even_when_images() -> None:
    cfg = make_config(OUTPUT_PREFIX="ocr/")
    assert verdict(ref("ocr/in/a.jpg"), cfg) == (Action.SKIP, "OwnOutput")
    assert verdict(ref("in/ocr/a.jpg"), cfg) is None


def test_an_empty_output_prefix_does_not_match_every_key() -> None:
    assert is_own_output("in/a.jpg", CFG) is False


def test_custom_output_suffixes_are_recognised_as_own_output() -> None:
    cfg = make_config(RESULT_SUFFIX=".ocr", ERROR_SUFFIX=".ocr-error")
    assert is_own_output("a.jpg.ocr", cfg) and is_own_output("a.jpg.ocr-error", cfg)
    assert not is_own_output("a.jpg.json", cfg)


def test_own_output_is_decided_before_the_image_suffix() -> None:
    assert verdict(ref("notes.json")) == (Action.SKIP, "OwnOutput")


@pytest.mark.parametrize("key", ["a.pdf", "a", "jpg", "a.jpg/", "a.jpg.txt", "a.svg", "a_jpg"])
def test_keys_without_an_image_suffix_are_skipped(key: str) -> None:
    assert verdict(ref(key)) == (Action.SKIP, "NotAnImage")


def test_the_image_suffix_list_is_configurable() -> None:
    cfg = make_config(IMAGE_SUFFIXES=".png")
    assert verdict(ref("a.jpg"), cfg) == (Action.SKIP, "NotAnImage")
    assert has_image_suffix("A.PNG", cfg)


def test_an_image_over_the_byte_limit_fails_with_the_api_code() -> None:
    v = check(ref(size=OCR_MAX_IMAGE_BYTES + 1), CFG)
    assert v is not None
    assert (v.action, v.code) == (Action.FAIL, "exceededImageContent")
    assert str(OCR_MAX_IMAGE_BYTES + 1) in v.message


def test_an_image_exactly_at_the_byte_limit_goes_on() -> None:
    assert check(ref(size=OCR_MAX_IMAGE_BYTES), CFG) is None


def test_the_byte_limit_follows_max_image_bytes() -> None:
    cfg = make_config(MAX_IMAGE_BYTES="2048")
    assert check(ref(size=2048), cfg) is None
    assert verdict(ref(size=2049), cfg) == (Action.FAIL, "exceededImageContent")


def test_an_empty_object_fails_as_illegal_image_content() -> None:
    assert verdict(ref(size=0)) == (Action.FAIL, "illegalImageContent")


def test_an_unknown_size_goes_on_to_the_precheck() -> None:
    assert check(ref(size=None), CFG) is None


def test_a_non_image_is_skipped_before_its_size_is_judged() -> None:
    assert verdict(ref("a.pdf", size=0)) == (Action.SKIP, "NotAnImage")
    assert verdict(ref("a.pdf", size=OCR_MAX_IMAGE_BYTES + 1)) == (Action.SKIP, "NotAnImage")


# --- output keys must fit OSS's key limit ----------------------------------------------------------------------

OUTPUT_MARGIN = len(".claim.0123456789ab.json")  # the claim key is the longest output key: it adds this much


def key_of_bytes(n: int, suffix: str = ".jpg") -> str:
    return "k" * (n - len(suffix)) + suffix


def test_a_key_whose_outputs_fit_1023_bytes_goes_on() -> None:
    assert check(ref(key_of_bytes(MAX_KEY_BYTES - OUTPUT_MARGIN)), CFG) is None


def test_a_key_whose_outputs_would_exceed_1023_bytes_is_rejected() -> None:
    v = check(ref(key_of_bytes(MAX_KEY_BYTES - OUTPUT_MARGIN + 1)), CFG)
    assert v is not None
    assert (v.action, v.code) == (Action.REJECT, "OutputKeyTooLong")


def test_the_output_prefix_counts_towards_the_key_limit() -> None:
    cfg = make_config(OUTPUT_PREFIX="ocr/")
    assert verdict(ref(key_of_bytes(MAX_KEY_BYTES - OUTPUT_MARGIN)), cfg) == (Action.REJECT, "OutputKeyTooLong")
    assert check(ref(key_of_bytes(MAX_KEY_BYTES - OUTPUT_MARGIN - 4)), cfg) is None


def test_the_key_limit_counts_utf8_bytes_not_characters() -> None:
    key = "证" * 337 + ".jpg"  # 341 characters, 1015 bytes
    assert verdict(ref(key)) == (Action.REJECT, "OutputKeyTooLong")


def test_the_key_limit_counts_a_non_ascii_error_suffix_in_bytes() -> None:
    cfg = make_config(ERROR_SUFFIX=".错.json")  # 7 characters but 9 bytes, under the claim's 24
    key = key_of_bytes(MAX_KEY_BYTES - OUTPUT_MARGIN)  # the claim key fits exactly
    assert check(ref(key), cfg) is None
    cfg = make_config(ERROR_SUFFIX=".错误错误错误错误")  # 9 characters, 25 bytes: the error key alone is too long
    assert verdict(ref(key), cfg) == (Action.REJECT, "OutputKeyTooLong")


def test_the_key_limit_is_judged_before_the_size() -> None:
    assert verdict(ref(key_of_bytes(1100), size=0)) == (Action.REJECT, "OutputKeyTooLong")
