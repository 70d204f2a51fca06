"""Configuration: every variable's rule, the derived defaults and the rules that span variables."""

from __future__ import annotations

import pytest

from permit_ocr.config import (
    DEFAULT_SUFFIXES,
    MAX_PRESIGN_SECONDS,
    OCR_MAX_IMAGE_BYTES,
    SPEC,
    Config,
    ConfigError,
    load_config,
)
from permit_ocr.layout import is_own_output, outputs_for

BASE = {"SOURCE_BUCKETS": "photos"}
MNS_OK = {"SINKS": "mns", "MNS_ENDPOINT": "https://123.mns.cn-hangzhou.aliyuncs.com", "MNS_TOPIC": "permit-results"}


def load(**env: str) -> Config:
    return load_config({**BASE, **env})


def problems(**env: str) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        load_config({**BASE, **env})
    return info.value.problems


# one bad value per variable; extra variables make the bad value the only problem
BAD_VALUES: dict[str, tuple[str, dict[str, str]]] = {
    "SOURCE_BUCKETS": ("Photos_Bucket", {}),
    "OSS_ENDPOINT": ("oss internal", {}),
    "OSS_PUBLIC_ENDPOINT": ("oss public", {}),
    "IMAGE_SOURCE": ("ftp", {}),
    "SIGNED_URL_EXPIRES": (str(MAX_PRESIGN_SECONDS + 1), {}),
    "OCR_ENDPOINT": ("ocr api", {}),
    "OCR_PROTOCOL": ("ftp", {}),
    "OCR_OUTPUT_FIGURE": ("maybe", {}),
    "OCR_CONNECT_TIMEOUT_MS": ("99", {}),
    "OCR_READ_TIMEOUT_MS": ("120001", {}),
    "OCR_MAX_ATTEMPTS": ("0", {}),
    "OCR_QPS": ("0", {}),
    "OUTPUT_BUCKET": ("Results", {}),
    "OUTPUT_PREFIX": ("/results/", {}),
    "RESULT_SUFFIX": ("out/.json", {}),
    "ERROR_SUFFIX": ("", {}),
    "SINKS": ("sqs", {}),
    "MNS_ENDPOINT": ("", {"SINKS": "mns", "MNS_TOPIC": "permit-results"}),  # only a cross-variable rule applies
    "MNS_TOPIC": ("", {"SINKS": "oss,mns", "MNS_ENDPOINT": MNS_OK["MNS_ENDPOINT"]}),
    "IMAGE_SUFFIXES": ("jpg,png", {}),
    "MAX_IMAGE_BYTES": (str(OCR_MAX_IMAGE_BYTES + 1), {}),
    "CONVERT_MAX_BYTES": ("0", {}),
    "PDF_MAX_PAGES": ("51", {}),
    "WORKERS": ("33", {}),
    "REVIEW_MIN_PROB": ("101", {}),
    "LOG_LEVEL": ("verbose", {}),
    "LOG_OBJECT_KEYS": ("sometimes", {}),
    "OCR_BACKEND": ("paddle", {}),
    "SHADOW_RATE": ("1.5", {}),
    "ENGINE_FUNCTION": ("", {"OCR_BACKEND": "engine", "ENGINE_ENDPOINT": "https://1.cn-hangzhou.fc.aliyuncs.com"}),
    "ENGINE_ENDPOINT": ("fc api", {}),
    "ENGINE_TIMEOUT_MS": ("999", {}),
}


def test_every_spec_variable_has_a_bad_value_test() -> None:
    assert set(BAD_VALUES) | {"OSS_REGION"} == set(SPEC)  # OSS_REGION: see the malformed-region test below


@pytest.mark.parametrize("name", sorted(BAD_VALUES))
def test_a_bad_value_is_reported_under_its_variable_name(name: str) -> None:
    value, extra = BAD_VALUES[name]
    found = problems(**{**extra, name: value})
    assert set(found) == {name}
    assert found[name]


def test_a_bad_value_is_named_in_the_error_message() -> None:
    with pytest.raises(ConfigError, match="WORKERS: must be between 1 and 32, got 0"):
        load(WORKERS="0")


def test_all_bad_variables_are_reported_at_once() -> None:
    found = problems(WORKERS="x", OCR_QPS="-1", SINKS="", LOG_LEVEL="loud")
    assert set(found) == {"WORKERS", "OCR_QPS", "SINKS", "LOG_LEVEL"}


def test_config_error_is_a_value_error_listing_variables_in_order() -> None:
    err = ConfigError({"WORKERS": "b", "OCR_QPS": "a"})
    assert isinstance(err, ValueError)
    assert str(err) == "invalid configuration: OCR_QPS: a; WORKERS: b"


def test_missing_source_buckets_is_required() -> None:
    with pytest.raises(ConfigError) as info:
        load_config({})
    assert set(info.value.problems) == {"SOURCE_BUCKETS"}


@pytest.mark.parametrize("value", ["cn hangzhou", "https://oss-cn-hangzhou.aliyuncs.com"])
def test_a_malformed_region_is_reported_under_oss_region(value: str) -> None:
    assert "OSS_REGION" in problems(OSS_REGION=value)


def test_a_malformed_mns_endpoint_is_reported_under_mns_endpoint() -> None:
    assert "MNS_ENDPOINT" in problems(**{**MNS_OK, "MNS_ENDPOINT": "not a url"})


# --- defaults and parsing ------------------------------------------------------------------------------------


def test_defaults_with_only_the_required_variable() -> None:
    cfg = load()
    assert cfg.source_buckets == ("photos",)
    assert cfg.region == "cn-hangzhou"
    assert cfg.oss_endpoint == "https://oss-cn-hangzhou-internal.aliyuncs.com"
    assert cfg.oss_public_endpoint == "https://oss-cn-hangzhou.aliyuncs.com"
    assert (cfg.image_source, cfg.signed_url_expires, cfg.sinks) == ("url", 300, ("oss",))
    assert (cfg.ocr_endpoint, cfg.ocr_protocol, cfg.ocr_output_figure) == (
        "ocr-api.cn-hangzhou.aliyuncs.com", "https", False)
    assert (cfg.ocr_connect_timeout_ms, cfg.ocr_read_timeout_ms, cfg.ocr_max_attempts, cfg.ocr_qps) == (
        5000, 10000, 4, 10.0)
    assert (cfg.output_bucket, cfg.output_prefix, cfg.result_suffix, cfg.error_suffix) == (
        "", "", ".json", ".error.json")
    assert cfg.image_suffixes == tuple(DEFAULT_SUFFIXES.split(","))
    assert (cfg.max_image_bytes, cfg.workers, cfg.review_min_prob) == (OCR_MAX_IMAGE_BYTES, 4, 90)
    assert (cfg.log_level, cfg.log_object_keys) == ("INFO", False)


def test_region_falls_back_to_fc_region_for_the_derived_endpoints() -> None:
    cfg = load_config({**BASE, "FC_REGION": "cn-shanghai"})
    assert cfg.region == "cn-shanghai"
    assert cfg.oss_endpoint == "https://oss-cn-shanghai-internal.aliyuncs.com"
    assert cfg.oss_public_endpoint == "https://oss-cn-shanghai.aliyuncs.com"


def test_oss_region_wins_over_fc_region() -> None:
    assert load_config({**BASE, "FC_REGION": "cn-shanghai", "OSS_REGION": "cn-beijing"}).region == "cn-beijing"


def test_an_empty_derived_endpoint_variable_means_use_the_default() -> None:
    cfg = load(OSS_ENDPOINT="  ", OSS_PUBLIC_ENDPOINT="")
    assert cfg.oss_endpoint == "https://oss-cn-hangzhou-internal.aliyuncs.com"
    assert cfg.oss_public_endpoint == "https://oss-cn-hangzhou.aliyuncs.com"


def test_endpoints_lose_a_trailing_slash() -> None:
    cfg = load(OSS_ENDPOINT="http://127.0.0.1:9000/", OCR_ENDPOINT="127.0.0.1:9001/")
    assert (cfg.oss_endpoint, cfg.ocr_endpoint) == ("http://127.0.0.1:9000", "127.0.0.1:9001")


def test_values_are_trimmed_and_choices_case_insensitive() -> None:
    cfg = load(SIGNED_URL_EXPIRES=" 600 ", IMAGE_SOURCE=" BODY ", OCR_PROTOCOL="HTTP", LOG_LEVEL="Debug")
    assert (cfg.signed_url_expires, cfg.image_source, cfg.ocr_protocol, cfg.log_level) == (600, "body", "http",
                                                                                           "DEBUG")


@pytest.mark.parametrize(("raw", "expected"), [
    ("1", True), ("true", True), ("YES", True), (" on ", True),
    ("0", False), ("false", False), ("No", False), ("off", False), ("", False),
])
def test_booleans_accept_the_usual_spellings(raw: str, expected: bool) -> None:
    assert load(OCR_OUTPUT_FIGURE=raw).ocr_output_figure is expected


@pytest.mark.parametrize(("name", "good", "bad"), [
    ("SIGNED_URL_EXPIRES", ["1", str(MAX_PRESIGN_SECONDS)], ["0", str(MAX_PRESIGN_SECONDS + 1)]),
    ("OCR_CONNECT_TIMEOUT_MS", ["100", "60000"], ["99", "60001"]),
    ("OCR_READ_TIMEOUT_MS", ["100", "120000"], ["99", "120001"]),
    ("OCR_MAX_ATTEMPTS", ["1", "10"], ["0", "11"]),
    ("MAX_IMAGE_BYTES", ["1", str(OCR_MAX_IMAGE_BYTES)], ["0", str(OCR_MAX_IMAGE_BYTES + 1)]),
    ("WORKERS", ["1", "32"], ["0", "33"]),
    ("REVIEW_MIN_PROB", ["0", "100"], ["-1", "101"]),
])
def test_integer_ranges_include_both_ends(name: str, good: list[str], bad: list[str]) -> None:
    for value in good:
        load(**{name: value})
    for value in bad:
        assert name in problems(**{name: value})


@pytest.mark.parametrize("value", ["abc", "1.5", "", "0x10"])
def test_integers_reject_non_integers(value: str) -> None:
    assert "must be an integer" in problems(WORKERS=value)["WORKERS"]


@pytest.mark.parametrize("value", ["abc", "-1", "0", "nan"])
def test_qps_must_be_a_positive_number(value: str) -> None:
    assert "OCR_QPS" in problems(OCR_QPS=value)


def test_qps_accepts_fractions() -> None:
    assert load(OCR_QPS="0.5").ocr_qps == 0.5


def test_source_buckets_is_a_trimmed_comma_list() -> None:
    assert load(SOURCE_BUCKETS=" photos , scans-2024,").source_buckets == ("photos", "scans-2024")


@pytest.mark.parametrize("value", ["ab", "-photos", "photos-", "Photos", "photo_s", "a" * 64])
def test_source_buckets_rejects_invalid_bucket_names(value: str) -> None:
    assert "invalid bucket name" in problems(SOURCE_BUCKETS=f"photos,{value}")["SOURCE_BUCKETS"]


def test_output_bucket_may_be_empty_and_then_is_the_source_bucket() -> None:
    cfg = load()
    assert cfg.output_bucket_for("photos") == "photos"
    assert load(OUTPUT_BUCKET="results").output_bucket_for("photos") == "results"


@pytest.mark.parametrize(("value", "ok"), [
    ("", True), ("ocr/", True), ("ocr/results/", True), ("ocr", False), ("/ocr/", False), ("ocr\\x/", False),
])
def test_output_prefix_is_empty_or_a_relative_folder(value: str, ok: bool) -> None:
    if ok:
        assert load(OUTPUT_PREFIX=value).output_prefix == value
    else:
        assert "OUTPUT_PREFIX" in problems(OUTPUT_PREFIX=value)


def test_sinks_are_lower_cased_and_deduplicated() -> None:
    assert load(**{**MNS_OK, "SINKS": "OSS, mns ,oss"}).sinks == ("oss", "mns")


@pytest.mark.parametrize("value", ["", " , ", "oss,sqs"])
def test_sinks_must_name_known_sinks(value: str) -> None:
    assert "SINKS" in problems(SINKS=value)


def test_image_suffixes_are_lower_cased() -> None:
    assert load(IMAGE_SUFFIXES=".JPG, .Png").image_suffixes == (".jpg", ".png")


def test_output_keys_are_prefix_key_suffix() -> None:
    cfg = load(OUTPUT_PREFIX="ocr/")
    out = outputs_for(cfg, "b", "in/张三 a.jpg")
    assert (out.result_key, out.error_key) == ("ocr/in/张三 a.jpg.json", "ocr/in/张三 a.jpg.error.json")


def test_the_bucket_placeholder_names_each_source_bucket_in_its_output_keys() -> None:
    cfg = load(SOURCE_BUCKETS="bucket-a,bucket-b", OUTPUT_BUCKET="results-x", OUTPUT_PREFIX="ocr/{bucket}/")
    assert outputs_for(cfg, "bucket-a", "k.jpg").result_key == "ocr/bucket-a/k.jpg.json"
    assert outputs_for(cfg, "bucket-b", "k.jpg").result_key == "ocr/bucket-b/k.jpg.json"
    assert is_own_output("ocr/bucket-b/k.jpg.json", cfg) and is_own_output("ocr/other/x.jpg", cfg)


@pytest.mark.parametrize("prefix", ["{bucket}/", "ocr/{bucket}x/", "ocr/{bucket}/{bucket}/", "ocr/{key}/", "a{/"])
def test_a_misplaced_or_unknown_placeholder_in_output_prefix_is_refused(prefix: str) -> None:
    assert "OUTPUT_PREFIX" in problems(OUTPUT_PREFIX=prefix)


# --- rules spanning variables (_derive) ----------------------------------------------------------------------


def test_url_mode_rejects_an_internal_public_endpoint() -> None:
    found = problems(OSS_PUBLIC_ENDPOINT="https://oss-cn-hangzhou-internal.aliyuncs.com")
    assert set(found) == {"OSS_PUBLIC_ENDPOINT"}
    assert "internal" in found["OSS_PUBLIC_ENDPOINT"]


def test_body_mode_accepts_an_internal_public_endpoint() -> None:
    cfg = load(IMAGE_SOURCE="body", OSS_PUBLIC_ENDPOINT="https://oss-cn-hangzhou-internal.aliyuncs.com")
    assert cfg.image_source == "body"


def test_the_derived_public_endpoint_is_not_internal() -> None:
    assert "-internal." not in load(OSS_REGION="cn-beijing").oss_public_endpoint


@pytest.mark.parametrize("sinks", ["mns", "oss,mns"])
def test_mns_sink_requires_endpoint_and_topic(sinks: str) -> None:
    found = problems(SINKS=sinks)
    assert set(found) == {"MNS_ENDPOINT", "MNS_TOPIC"}
    assert all("SINKS includes mns" in why for why in found.values())


def test_mns_sink_without_topic_names_only_the_topic() -> None:
    assert set(problems(**{**MNS_OK, "MNS_TOPIC": ""})) == {"MNS_TOPIC"}


def test_mns_settings_are_not_needed_for_the_oss_sink() -> None:
    assert load(SINKS="oss").mns_topic == ""


def test_a_complete_mns_configuration_loads() -> None:
    cfg = load(**MNS_OK)
    assert (cfg.sinks, cfg.mns_topic) == (("mns",), "permit-results")


def test_equal_result_and_error_suffixes_are_rejected() -> None:
    found = problems(RESULT_SUFFIX=".out.json", ERROR_SUFFIX=".out.json")
    assert set(found) == {"ERROR_SUFFIX"}


@pytest.mark.parametrize(("name", "value"), [
    ("RESULT_SUFFIX", ".jpg"), ("RESULT_SUFFIX", ".result.PNG"), ("ERROR_SUFFIX", ".error.webp"),
])
def test_an_output_suffix_ending_in_an_image_suffix_is_rejected_as_a_loop(name: str, value: str) -> None:
    found = problems(**{name: value})
    assert set(found) == {name}
    assert "loop" in found[name]


def test_the_loop_rule_follows_custom_image_suffixes() -> None:
    assert load(IMAGE_SUFFIXES=".png", RESULT_SUFFIX=".jpg").result_suffix == ".jpg"
    assert "RESULT_SUFFIX" in problems(IMAGE_SUFFIXES=".png,.json")


def test_an_output_suffix_that_image_keys_end_in_is_rejected() -> None:
    assert "RESULT_SUFFIX" in problems(RESULT_SUFFIX="png")


# --- the engine function (docs/selfhosted.md) ---------------------------------------------------------------


ENGINE_OK = {"ENGINE_FUNCTION": "permit-ocr-engine", "ENGINE_ENDPOINT": "https://1.cn-hangzhou.fc.aliyuncs.com"}


def test_the_default_backend_is_the_paid_api_and_needs_no_engine() -> None:
    cfg = load()
    assert (cfg.ocr_backend, cfg.shadow_rate, cfg.uses_engine) == ("api", 0.0, False)


@pytest.mark.parametrize("wanted", [{"OCR_BACKEND": "engine"}, {"OCR_BACKEND": "cascade"}, {"SHADOW_RATE": "0.1"}])
def test_every_use_of_the_engine_needs_the_engine_functions_name(wanted: dict[str, str]) -> None:
    found = problems(**wanted, ENGINE_ENDPOINT=ENGINE_OK["ENGINE_ENDPOINT"])
    assert set(found) == {"ENGINE_FUNCTION"}
    assert load(**wanted, **ENGINE_OK).uses_engine


def test_shadow_mode_goes_with_the_api_only_the_engine_answers_every_upload_otherwise() -> None:
    found = problems(OCR_BACKEND="cascade", SHADOW_RATE="0.5", **ENGINE_OK)
    assert set(found) == {"SHADOW_RATE"} and "OCR_BACKEND=api" in found["SHADOW_RATE"]


def test_the_engine_endpoint_is_the_accounts_fc_api_in_fc_and_required_elsewhere() -> None:
    cfg = load(OCR_BACKEND="engine", ENGINE_FUNCTION="e", FC_ACCOUNT_ID="1234567890123456", OSS_REGION="cn-beijing")
    assert cfg.engine_endpoint == "https://1234567890123456.cn-beijing.fc.aliyuncs.com"
    assert set(problems(OCR_BACKEND="engine", ENGINE_FUNCTION="e")) == {"ENGINE_ENDPOINT"}


@pytest.mark.parametrize("name", ["9lives", "has space", "a" * 65, "dots.are.not.names"])
def test_an_engine_function_name_fc_would_refuse_is_refused_at_start(name: str) -> None:
    assert set(problems(ENGINE_FUNCTION=name)) == {"ENGINE_FUNCTION"}
