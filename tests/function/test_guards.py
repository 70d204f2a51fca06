"""Step 2: the verdicts decided from the event alone (reject, skip, fail, or go on)."""

from __future__ import annotations

import pytest

from permit_ocr.config import OCR_MAX_IMAGE_BYTES, Config, load_config
from permit_ocr.events import ObjectRef
from permit_ocr.guards import MAX_KEY_BYTES, Action, Verdict, check, has_image_suffix, is_own_output
from permit_ocr.layout import OVERLONG_PREFIX, key_digest, outputs_for


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


@pytest.mark.parametrize("key", ["a.docx", "a", "jpg", "a.jpg/", "a.jpg.txt", "a.svg", "a_jpg", "a.heic.txt"])
def test_keys_without_an_image_suffix_are_skipped(key: str) -> None:
    assert verdict(ref(key)) == (Action.SKIP, "NotAnImage")


@pytest.mark.parametrize("key", ["a.heic", "IMG_0001.HEIC", "a.heif", "scan.pdf", "SCAN.PDF"])
def test_phone_photos_and_scans_are_images_by_default(key: str) -> None:
    """What phones and scanners upload is converted before OCR (issue 23), so its suffixes are not skipped."""
    assert verdict(ref(key)) is None


def test_the_image_suffix_list_is_configurable() -> None:
    cfg = make_config(IMAGE_SUFFIXES=".png")
    assert verdict(ref("a.jpg"), cfg) == (Action.SKIP, "NotAnImage")
    assert has_image_suffix("A.PNG", cfg)


@pytest.mark.parametrize("size", [0, OCR_MAX_IMAGE_BYTES + 1, 50_000_000, None])
def test_the_events_size_is_a_hint_that_decides_nothing(size: int | None) -> None:
    # the size is checked on the object itself (source + precheck): an event that lies must not poison it
    assert check(ref(size=size), CFG) is None


def test_a_non_image_is_skipped_whatever_its_size() -> None:
    assert verdict(ref("a.docx", size=0)) == (Action.SKIP, "NotAnImage")
    assert verdict(ref("a.docx", size=OCR_MAX_IMAGE_BYTES + 1)) == (Action.SKIP, "NotAnImage")


def test_a_key_over_oss_limit_is_rejected_as_no_object_can_have_it() -> None:
    assert verdict(ref("k" * MAX_KEY_BYTES + ".jpg")) == (Action.REJECT, "InvalidObjectName")


# --- outputs of keys too long to have them beside: a digest-named record ----------------------------------------


def key_of_bytes(n: int, suffix: str = ".jpg") -> str:
    return "k" * (n - len(suffix)) + suffix


ERROR_MARGIN = len(".error.json")  # the longer default output suffix


def test_outputs_sit_beside_a_key_while_they_fit_1023_bytes() -> None:
    key = key_of_bytes(MAX_KEY_BYTES - ERROR_MARGIN)
    out = outputs_for(CFG, "photos", key)
    assert not out.overlong and out.error_key == key + ".error.json" and out.result_key == key + ".json"
    assert out.lists_image and out.listing_prefix == key


def test_a_key_one_byte_too_long_gets_a_digest_named_record_in_the_output_bucket() -> None:
    key = key_of_bytes(MAX_KEY_BYTES - ERROR_MARGIN + 1)
    out = outputs_for(CFG, "photos", key)
    assert out.overlong and out.error_key == f"{OVERLONG_PREFIX}{key_digest('photos', key)}.error.json"
    assert len(out.error_key.encode()) < 100 and is_own_output(out.error_key, CFG)


def test_the_output_prefix_and_utf8_bytes_count_towards_the_limit() -> None:
    assert outputs_for(make_config(OUTPUT_PREFIX="ocr/"), "photos", key_of_bytes(MAX_KEY_BYTES - ERROR_MARGIN)).overlong
    key = "证" * 337 + ".jpg"  # 341 characters, 1015 bytes
    assert outputs_for(CFG, "photos", key).overlong
    cfg = make_config(ERROR_SUFFIX=".错误错误错误错误")  # 9 characters, 25 bytes
    assert outputs_for(cfg, "photos", key_of_bytes(MAX_KEY_BYTES - 24)).overlong


def test_outputs_elsewhere_need_the_image_listed_apart() -> None:
    out = outputs_for(make_config(OUTPUT_BUCKET="results", OUTPUT_PREFIX="ocr/{bucket}/"), "photos", "in/a.jpg")
    assert out.bucket == "results" and not out.lists_image
    assert not outputs_for(make_config(OUTPUT_PREFIX="ocr/"), "photos", "in/a.jpg").lists_image
