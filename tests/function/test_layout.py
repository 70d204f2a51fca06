"""layout: the one spelling of ETags, the fixed-length bookkeeping keys, where outputs go (OUTPUT_PREFIX,
OUTPUT_BUCKET, OSS's 1023-byte key limit) and which keys are the function's own."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from permit_ocr.config import Config, load_config
from permit_ocr.layout import (
    BOOKKEEPING_PREFIX,
    MARKERS_PREFIX,
    MAX_KEY_BYTES,
    OVERLONG_PREFIX,
    etag_form,
    is_own_output,
    key_digest,
    marker_key,
    outputs_for,
)

ETAG = "5B3C1F2E8A7D4C6B9E0F1A2B3C4D5E6F"


def config(**env: str) -> Config:
    return load_config({"SOURCE_BUCKETS": "photos", **env})


# -- etag_form ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "form"), [
    ('"5b3c1f2e"', "5B3C1F2E"),  # OSS quotes ETags in headers and listings
    ("5b3c1f2e", "5B3C1F2E"),  # events carry them bare, in either case
    (' "5B3C1F2E-3" ', "5B3C1F2E-3"),  # multipart ETags keep their part count
    ("", None),
    (None, None),
    ('""', None),  # quotes around nothing are no ETag
])
def test_etag_form_drops_quotes_and_case_and_calls_empty_absent(raw: str | None, form: str | None) -> None:
    assert etag_form(raw) == form


@given(st.text(alphabet="0123456789abcdefABCDEF-", max_size=40))
def test_etag_form_is_idempotent_so_any_two_spellings_of_one_etag_compare_equal(raw: str) -> None:
    once = etag_form(raw)
    assert etag_form(once) == once
    assert etag_form(f'"{raw.lower()}"') == etag_form(f" {raw.upper()} ") == etag_form(raw)


# -- bookkeeping keys -----------------------------------------------------------------------------------------


@given(key=st.text(min_size=1, max_size=600), generation=st.integers(0, 63))
def test_a_marker_key_has_a_fixed_length_whatever_the_image_key(key: str, generation: int) -> None:
    mkey = marker_key("photos", key, ETAG, generation)
    assert mkey.startswith(MARKERS_PREFIX)
    assert mkey.endswith(f"/{ETAG}.{generation}")
    assert len(mkey) == len(MARKERS_PREFIX) + 40 + 1 + len(ETAG) + 1 + len(str(generation))


def test_the_key_digest_tells_buckets_and_keys_apart() -> None:
    digests = {key_digest("photos", "a.png"), key_digest("photos", "b.png"), key_digest("scans", "a.png")}
    assert len(digests) == 3
    assert key_digest("photos", "a.png") == key_digest("photos", "a.png")


# -- outputs_for ----------------------------------------------------------------------------------------------


def test_outputs_sit_beside_the_image_by_default_and_one_listing_shows_image_and_both_outputs() -> None:
    out = outputs_for(config(), "photos", "uploads/a.png")
    assert (out.bucket, out.result_key, out.error_key) == ("photos", "uploads/a.png.json", "uploads/a.png.error.json")
    assert out.listing_prefix == "uploads/a.png"
    assert out.lists_image and not out.overlong


def test_output_prefix_goes_in_front_of_both_output_keys_and_the_listing_no_longer_shows_the_image() -> None:
    out = outputs_for(config(OUTPUT_PREFIX="ocr-results/"), "photos", "uploads/a.png")
    assert out.result_key == "ocr-results/uploads/a.png.json"
    assert out.error_key == "ocr-results/uploads/a.png.error.json"
    assert out.listing_prefix == "ocr-results/uploads/a.png"
    assert not out.lists_image


def test_an_output_bucket_takes_the_outputs_and_the_listing_no_longer_shows_the_image() -> None:
    out = outputs_for(config(OUTPUT_BUCKET="results"), "photos", "a.png")
    assert (out.bucket, out.result_key) == ("results", "a.png.json")
    assert not out.lists_image


def test_custom_suffixes_name_the_outputs() -> None:
    out = outputs_for(config(RESULT_SUFFIX=".ocr.json", ERROR_SUFFIX=".ocr-error.json"), "photos", "a.png")
    assert (out.result_key, out.error_key) == ("a.png.ocr.json", "a.png.ocr-error.json")


def _key_with_error_key_of(total_bytes: int, cfg: Config, char: str = "k") -> str:
    room = total_bytes - len(cfg.output_prefix.encode()) - len(cfg.error_suffix.encode())
    width = len(char.encode())
    return "u/" + char * ((room - 2) // width) + "x" * ((room - 2) % width)


@pytest.mark.parametrize("prefix", ["", "ocr-results/"])
@pytest.mark.parametrize("char", ["k", "证"])  # the limit is on UTF-8 bytes, not characters
def test_outputs_at_the_1023_byte_limit_stay_beside_the_image_and_one_byte_more_goes_overlong(
        prefix: str, char: str) -> None:
    cfg = config(OUTPUT_PREFIX=prefix) if prefix else config()
    at_limit = _key_with_error_key_of(MAX_KEY_BYTES, cfg, char)
    out = outputs_for(cfg, "photos", at_limit)
    assert len(out.error_key.encode()) == MAX_KEY_BYTES and not out.overlong
    assert out.error_key == f"{prefix}{at_limit}.error.json"

    over = at_limit + "x"
    long = outputs_for(cfg, "photos", over)
    digest = key_digest("photos", over)
    assert long.overlong and not long.lists_image
    assert long.error_key == f"{OVERLONG_PREFIX}{digest}.error.json"
    assert long.result_key == f"{OVERLONG_PREFIX}{digest}.json"
    assert long.listing_prefix == f"{OVERLONG_PREFIX}{digest}"
    assert long.bucket == "photos"


def test_a_long_result_suffix_alone_can_push_the_outputs_over_the_limit() -> None:
    cfg = config(RESULT_SUFFIX=".result-of-the-permit-ocr-function.json")
    key = _key_with_error_key_of(MAX_KEY_BYTES, cfg)  # the error key fits, the longer result key does not
    assert outputs_for(cfg, "photos", key).overlong


# -- is_own_output --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", [
    "uploads/a.png.json", "uploads/a.png.error.json", f"{MARKERS_PREFIX}abc/{ETAG}.0",
    f"{OVERLONG_PREFIX}abc.error.json", f"{BOOKKEEPING_PREFIX}anything.png",
])
def test_the_function_never_takes_its_own_writes_for_uploads(key: str) -> None:
    assert is_own_output(key, config())


@pytest.mark.parametrize("key", ["uploads/a.png", "uploads/json.png", "permit-ocr/a.png", "a.json.png"])
def test_an_image_key_is_not_an_own_output(key: str) -> None:
    assert not is_own_output(key, config())


def test_everything_under_the_output_prefix_is_own_output_and_nothing_else_is() -> None:
    cfg = config(OUTPUT_PREFIX="ocr-results/")
    assert is_own_output("ocr-results/uploads/a.png", cfg)
    assert not is_own_output("uploads/ocr-results/a.png", cfg)
