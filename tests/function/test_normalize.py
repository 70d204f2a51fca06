"""normalize.review: the API sample, the three kinds, each failure mode, and totality over arbitrary input."""

from __future__ import annotations

import datetime
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from permit_ocr.normalize import CHECK_CODES, FIELDS, NORMALIZED_KEYS, review

D = datetime.date
MIN_PROB = 90
SAMPLE_DAY = D(2018, 1, 1)  # the sample permit (2014-04-10 to 2019-04-09) is current

# The `Data` of the API document's sample response (RecognizeExitEntryPermitToMainland, 2021-07-07).
SAMPLE: dict[str, Any] = json.loads(
    '{"data":{"permitType":"港澳居民来往内地通行证","nameCn":"何郑","nameEn":"HE,CHENG","birthDate":"2000.01.01",'
    '"sex":"男","validPeriod":"2014.04.10-2019.04.09","issueAuthority":"公安部出入境管理局","issuePlace":"",'
    '"permitNumber":"H10387877","issueCount":"01"},"ftype":0,"height":626,"orgHeight":626,"orgWidth":928,'
    '"prism_keyValueInfo":['
    '{"key":"permitType","keyProb":100,"value":"港澳居民来往内地通行证","valueProb":100},'
    '{"key":"nameCn","keyProb":100,"value":"何郑","valueProb":100},'
    '{"key":"nameEn","keyProb":100,"value":"HE,CHENG","valueProb":100},'
    '{"key":"birthDate","keyProb":100,"value":"2000.01.01","valueProb":100},'
    '{"key":"sex","keyProb":100,"value":"男","valueProb":100},'
    '{"key":"validPeriod","keyProb":100,"value":"2014.04.10-2019.04.09","valueProb":100},'
    '{"key":"issueAuthority","keyProb":100,"value":"公安部出入境管理局","valueProb":100},'
    '{"key":"issuePlace","keyProb":100,"value":"","valueProb":100},'
    '{"key":"permitNumber","keyProb":100,"value":"H10387877","valueProb":100},'
    '{"key":"issueCount","keyProb":100,"value":"01","valueProb":100}],"width":928}'
)
TAIWAN: dict[str, Any] = {
    "permitType": "台湾居民来往大陆通行证",
    "nameCn": "林小明",
    "nameEn": "LIN,HSIAO MING",
    "birthDate": "1985.07.15",
    "sex": "男",
    "validPeriod": "2020.03.01-2025.02.28",
    "issueAuthority": "公安部出入境管理局",
    "issuePlace": "福建",
    "permitNumber": "01234567",
    "issueCount": "",
}
MACAO: dict[str, Any] = {
    **SAMPLE["data"],
    "nameCn": "陈美",
    "nameEn": "CHAN,MEI",
    "birthDate": "1990.02.03",
    "sex": "女",
    "validPeriod": "2018.05.06-2028.05.05",
    "permitNumber": "M12345678",
    "issueCount": "00",
}


def run(data: Any, prism: Any = None, today: D = SAMPLE_DAY, min_prob: int = MIN_PROB) -> dict[str, Any]:
    return review(data, prism, today=today, min_prob=min_prob)


def verdicts(result: dict[str, Any]) -> dict[str, bool | None]:
    return {c["code"]: c["passed"] for c in result["checks"]}


def unparsed(result: dict[str, Any]) -> dict[str, str]:
    return {u["field"]: u["reason"] for u in result["normalized"]["unparsed"]}


def assert_shape(result: dict[str, Any]) -> None:
    """The documented keys, every check code once, and needsReview consistent with the reasons."""
    assert list(result) == ["normalized", "checks", "needsReview", "reviewReasons"]
    assert list(result["normalized"]) == list(NORMALIZED_KEYS)
    assert [c["code"] for c in result["checks"]] == list(CHECK_CODES)
    for c in result["checks"]:
        assert c["passed"] in (True, False, None)
        assert isinstance(c["message"], str) and c["message"]
    failed = [c["code"] for c in result["checks"] if c["passed"] is False]
    expected = failed + [f"unparsed:{u['field']}" for u in result["normalized"]["unparsed"]]
    assert result["reviewReasons"] == expected
    assert result["needsReview"] is bool(expected)
    json.dumps(result, allow_nan=False)  # it goes into a JSON document as is


# --- the API sample -------------------------------------------------------------------------------------


def test_api_sample_normalizes_exactly() -> None:
    result = run(SAMPLE["data"], SAMPLE["prism_keyValueInfo"])
    assert result["normalized"] == {
        "kind": "hk",
        "birthDate": "2000-01-01",
        "validFrom": "2014-04-10",
        "validTo": "2019-04-09",
        "expired": False,
        "surname": "HE",
        "givenNames": "CHENG",
        "sex": "M",
        "permitNumber": "H10387877",
        "issueCount": "01",
        "unparsed": [],
    }
    assert all(passed is True for passed in verdicts(result).values())
    assert result["needsReview"] is False and result["reviewReasons"] == []
    assert_shape(result)


def test_sample_uses_the_five_year_rule_for_a_minor() -> None:
    span = next(c for c in run(SAMPLE["data"])["checks"] if c["code"] == "validPeriod.span")
    assert span["passed"] is True and "under 18" in span["message"] and "5 years" in span["message"]


def test_expired_is_reported_but_is_not_a_review_reason() -> None:
    later = run(SAMPLE["data"], SAMPLE["prism_keyValueInfo"], today=D(2026, 6, 1))
    assert later["normalized"]["expired"] is True
    assert later["needsReview"] is False
    assert run(SAMPLE["data"], today=D(2019, 4, 9))["normalized"]["expired"] is False  # valid on its last day
    assert run(SAMPLE["data"], today=D(2019, 4, 10))["normalized"]["expired"] is True


def test_a_datetime_for_today_is_accepted() -> None:
    result = run(SAMPLE["data"], today=datetime.datetime(2026, 1, 1, 12, 0))
    assert result["normalized"]["expired"] is True and "normalize.error" not in result["reviewReasons"]


# --- kinds ----------------------------------------------------------------------------------------------


def test_taiwan_permit() -> None:
    result = run(TAIWAN, today=D(2024, 1, 1))
    n = result["normalized"]
    assert n["kind"] == "taiwan"
    assert (n["surname"], n["givenNames"], n["sex"]) == ("LIN", "HSIAO MING", "M")
    assert (n["validFrom"], n["validTo"], n["expired"]) == ("2020-03-01", "2025-02-28", False)
    assert n["permitNumber"] == "01234567" and n["issueCount"] is None  # empty count is normal for Taiwan
    assert result["needsReview"] is False, result["reviewReasons"]
    assert_shape(result)


def test_taiwan_with_printed_issue_count_and_minor_span_not_decidable() -> None:
    minor = {**TAIWAN, "birthDate": "2010.01.01", "validPeriod": "2020.03.01-2023.02.28", "issueCount": "3"}
    result = run(minor, today=D(2021, 1, 1))
    assert verdicts(result)["issueCount.format"] is True
    assert verdicts(result)["validPeriod.span"] is None  # "shorter for minors": length undocumented
    assert result["needsReview"] is False


def test_taiwan_adult_with_wrong_span_fails() -> None:
    result = run({**TAIWAN, "validPeriod": "2020.03.01-2030.02.28"}, today=D(2021, 1, 1))
    assert result["reviewReasons"] == ["validPeriod.span"]


def test_macao_permit_from_the_m_letter() -> None:
    result = run(MACAO, today=D(2020, 1, 1))
    n = result["normalized"]
    assert (n["kind"], n["sex"], n["validTo"]) == ("macao", "F", "2028-05-05")
    assert verdicts(result)["validPeriod.span"] is True  # adult at the start: 10 years
    assert result["needsReview"] is False
    assert_shape(result)


def test_non_chinese_national_title_is_hk_or_macao() -> None:
    title = "港澳居民来往内地通行证（非中国籍）"
    assert run({**SAMPLE["data"], "permitType": title})["normalized"]["kind"] == "hk"
    assert run({**MACAO, "permitType": title})["normalized"]["kind"] == "macao"


def test_letter_decides_without_a_title_but_bare_digits_do_not() -> None:
    no_title = run({**SAMPLE["data"], "permitType": ""})
    assert no_title["normalized"]["kind"] == "hk"
    assert "unparsed:permitType" in no_title["reviewReasons"]
    digits = run({**SAMPLE["data"], "permitType": "", "permitNumber": "10387877"})
    assert digits["normalized"]["kind"] is None
    assert "kind.known" in digits["reviewReasons"]


def test_hkmo_title_without_letter_is_unknown_kind() -> None:
    result = run({**SAMPLE["data"], "permitNumber": "10387877"})
    assert result["normalized"]["kind"] is None
    assert result["reviewReasons"][:3] == ["kind.known", "number.format", "number.kind"]


def test_number_letter_disagreeing_with_taiwan_title() -> None:
    result = run({**TAIWAN, "permitNumber": "H10387877"}, today=D(2021, 1, 1))
    assert result["normalized"]["kind"] == "taiwan"  # the title decides; the checks flag the number
    assert {"number.format", "number.kind"} <= set(result["reviewReasons"])


def test_unknown_title() -> None:
    result = run({**SAMPLE["data"], "permitType": "往来通行证"})
    assert unparsed(result)["permitType"] == "unknownTitle"


# --- failures -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "reasons"),
    [
        ({"permitNumber": "H1038787"}, ["number.format"]),
        ({"issueCount": "1"}, ["issueCount.format"]),
        ({"issueCount": ""}, ["issueCount.format", "unparsed:issueCount"]),
        ({"birthDate": "2001.02.29"}, ["birthDate.valid", "unparsed:birthDate"]),
        ({"birthDate": "2000/01/01"}, ["birthDate.valid", "unparsed:birthDate"]),
        ({"birthDate": "2020.01.01"}, ["birthDate.notFuture", "validPeriod.afterBirth"]),
        ({"validPeriod": "2019.04.09-2014.04.10"}, ["validPeriod.order"]),
        ({"validPeriod": "2014.04.10-2024.04.09"}, ["validPeriod.span"]),
        ({"validPeriod": "2014.04.10-2019.04.10"}, ["validPeriod.span"]),
        ({"validPeriod": "2014.04.10"}, ["validPeriod.valid", "unparsed:validPeriod"]),
        ({"validPeriod": "2014.04.10-2019.13.09"}, ["validPeriod.valid", "unparsed:validPeriod"]),
        ({"nameEn": "He,Cheng"}, ["nameEn.format"]),
        ({"nameEn": "HE CHENG"}, ["nameEn.format", "unparsed:nameEn"]),
        ({"nameEn": "HE,CHENG,X"}, ["nameEn.format", "unparsed:nameEn"]),
        ({"nameCn": ""}, ["nameCn.present"]),
        ({"sex": "M"}, ["sex.valid", "unparsed:sex"]),
        ({"sex": 1}, ["sex.valid", "unparsed:sex"]),
    ],
)
def test_failed_checks_set_needs_review_with_codes(change: dict[str, Any], reasons: list[str]) -> None:
    result = run({**SAMPLE["data"], **change}, today=D(2018, 1, 1))
    assert result["needsReview"] is True
    assert result["reviewReasons"] == reasons
    assert_shape(result)


def test_unparsed_fields_are_null_with_a_reason() -> None:
    data = {**SAMPLE["data"], "birthDate": 20000101, "validPeriod": "2014.04.10-2019.02.30", "sex": "?"}
    del data["nameEn"]
    result = run(data)
    n = result["normalized"]
    assert (n["birthDate"], n["validFrom"], n["validTo"], n["expired"]) == (None, None, None, None)
    assert (n["surname"], n["givenNames"], n["sex"]) == (None, None, None)
    assert unparsed(result) == {
        "birthDate": "notString",
        "validPeriod": "invalidDate",
        "nameEn": "missing",
        "sex": "badFormat",
    }


def test_span_with_unknown_birth_date() -> None:
    no_birth = {**SAMPLE["data"], "birthDate": ""}
    assert verdicts(run(no_birth))["validPeriod.span"] is None  # 5 or 10 years: cannot tell which applies
    odd = run({**no_birth, "validPeriod": "2014.04.10-2021.04.09"})
    assert verdicts(odd)["validPeriod.span"] is False  # 7 years matches neither rule


def test_span_from_29_february_accepts_either_anniversary_convention() -> None:
    adult = {**MACAO, "birthDate": "1980.01.01"}
    for end in ("2026.02.27", "2026.02.28"):
        assert verdicts(run({**adult, "validPeriod": f"2016.02.29-{end}"}))["validPeriod.span"] is True
    assert verdicts(run({**adult, "validPeriod": "2016.02.29-2026.03.01"}))["validPeriod.span"] is False


def test_age_is_taken_at_the_start_of_validity() -> None:
    # 18th birthday on the start day: adult, 10 years; the day before: minor, 5 years.
    turns_18 = {**SAMPLE["data"], "birthDate": "1996.04.10"}
    assert verdicts(run({**turns_18, "validPeriod": "2014.04.10-2024.04.09"}))["validPeriod.span"] is True
    day_before = {**SAMPLE["data"], "birthDate": "1996.04.11"}
    assert verdicts(run(day_before))["validPeriod.span"] is True


def test_spaces_are_trimmed_and_tolerated() -> None:
    data = {
        **SAMPLE["data"],
        "permitNumber": " H10387877 ",
        "nameEn": "HE, CHENG",
        "validPeriod": "2014.04.10 - 2019.04.09",
    }
    result = run(data)
    assert result["normalized"]["permitNumber"] == "H10387877"
    assert result["normalized"]["givenNames"] == "CHENG"
    assert result["needsReview"] is False


# --- confidence -----------------------------------------------------------------------------------------


def test_low_value_prob_triggers_confidence() -> None:
    prism = [dict(e) for e in SAMPLE["prism_keyValueInfo"]]
    prism[2]["valueProb"] = 72
    prism[4]["valueProb"] = 89
    result = run(SAMPLE["data"], prism)
    check = next(c for c in result["checks"] if c["code"] == "confidence")
    assert check["passed"] is False and check["fields"] == ["nameEn", "sex"]
    assert result["reviewReasons"] == ["confidence"]
    assert run(SAMPLE["data"], prism, min_prob=70)["needsReview"] is False


@pytest.mark.parametrize("prob", [None, "100", True, math.nan])
def test_missing_or_odd_value_prob_counts_as_low(prob: Any) -> None:
    prism = [{"key": "nameEn", "value": "HE,CHENG", "valueProb": prob}]
    assert run(SAMPLE["data"], prism)["reviewReasons"] == ["confidence"]


@pytest.mark.parametrize("prism", [None, [], "garbage", {"key": "x"}, 5])
def test_confidence_not_applicable_without_prism(prism: Any) -> None:
    result = run(SAMPLE["data"], prism)
    assert verdicts(result)["confidence"] is None and result["needsReview"] is False


# --- no personal data in messages -----------------------------------------------------------------------

PII = ("何郑", "HE,CHENG", "CHENG", "2000.01.01", "2000-01-01", "H10387877", "10387877", "2014.04.10")


@pytest.mark.parametrize(
    "data", [SAMPLE["data"], {**SAMPLE["data"], "permitNumber": "H10387877X", "birthDate": "2000.01.01x"}]
)
def test_messages_and_reasons_carry_no_values(data: dict[str, Any]) -> None:
    result = run(data, SAMPLE["prism_keyValueInfo"])
    text = json.dumps([result["checks"], result["normalized"]["unparsed"], result["reviewReasons"]], ensure_ascii=False)
    assert not [v for v in PII if v in text]


# --- totality -------------------------------------------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
garbage = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
date_like = st.builds(
    lambda y, m, d, sep: f"{y:04d}{sep}{m:02d}{sep}{d:02d}",
    st.integers(0, 9999), st.integers(0, 99), st.integers(0, 99), st.sampled_from([".", "-", "/", ""]),
)  # fmt: skip
period_like = st.builds(lambda a, b, sep: f"{a}{sep}{b}", date_like, date_like, st.sampled_from(["-", " - ", "~", ""]))
number_like = st.from_regex(re.compile(r"[HMX]?\d{6,10}"), fullmatch=True)
titles = st.sampled_from(
    ["港澳居民来往内地通行证", "港澳居民来往内地通行证（非中国籍）", "台湾居民来往大陆通行证", "港澳台湾", ""]
)
field_value = st.one_of(st.text(max_size=40), date_like, period_like, number_like, titles, garbage)
data_strategy = st.one_of(
    st.dictionaries(st.sampled_from(FIELDS), field_value, max_size=len(FIELDS)),
    st.fixed_dictionaries({name: field_value for name in FIELDS}),
    garbage,
)
prism_entry = st.one_of(
    st.fixed_dictionaries({"key": st.sampled_from(FIELDS) | json_scalars, "valueProb": json_scalars}),
    garbage,
)
prism_strategy = st.one_of(st.none(), st.lists(prism_entry, max_size=5), garbage)


@settings(max_examples=400, deadline=None)
@given(data=data_strategy, prism=prism_strategy, today=st.dates(), min_prob=st.integers(0, 100))
def test_review_never_raises_and_keeps_its_shape(data: Any, prism: Any, today: D, min_prob: int) -> None:
    result = review(data, prism, today=today, min_prob=min_prob)
    assert "normalize.error" not in result["reviewReasons"]  # the guard is a last resort, not a code path
    assert_shape(result)
    n = result["normalized"]
    for key in ("birthDate", "validFrom", "validTo"):
        assert n[key] is None or D.fromisoformat(n[key])
    assert n["kind"] in ("hk", "macao", "taiwan", None)
    assert n["sex"] in ("M", "F", None)


@settings(max_examples=300, deadline=None)
@given(
    birth=st.dates(D(1900, 1, 1), D(2030, 12, 31)),
    start=st.dates(D(1990, 1, 1), D(2040, 12, 31)),
    years=st.sampled_from([5, 10]),
    letter=st.sampled_from("HM"),
)
def test_generated_well_formed_hkmo_permits(birth: D, start: D, years: int, letter: str) -> None:
    try:
        end = start.replace(year=start.year + years) - datetime.timedelta(days=1)
    except ValueError:
        end = D(start.year + years, 2, 28)  # from 29 February: the 1 March convention
    data = {
        **SAMPLE["data"],
        "birthDate": birth.strftime("%Y.%m.%d"),
        "validPeriod": f"{start:%Y.%m.%d}-{end:%Y.%m.%d}",
        "permitNumber": f"{letter}12345678",
    }
    result = review(data, None, today=D(2041, 1, 1), min_prob=MIN_PROB)
    assert_shape(result)
    assert result["normalized"]["kind"] == ("hk" if letter == "H" else "macao")
    assert result["normalized"]["validTo"] == end.isoformat()
    age = start.year - birth.year - ((start.month, start.day) < (birth.month, birth.day))
    adult = age >= 18
    span = verdicts(result)["validPeriod.span"]
    if start < birth:
        assert "validPeriod.afterBirth" in result["reviewReasons"]
    assert span is (years == (10 if adult else 5))


def test_a_bug_is_contained(monkeypatch: pytest.MonkeyPatch) -> None:
    import permit_ocr.normalize as normalize

    def boom(*_: Any, **__: Any) -> Any:
        raise RuntimeError("H10387877")

    monkeypatch.setattr(normalize, "check_sex", boom)
    result = review(SAMPLE["data"], None, today=D(2018, 1, 1), min_prob=MIN_PROB)
    assert result["needsReview"] is True and result["reviewReasons"] == ["normalize.error"]
    assert list(result["normalized"]) == list(NORMALIZED_KEYS)
    assert "H10387877" not in json.dumps(result)


def test_docs_example_matches_the_code() -> None:
    """The example in docs/result-document.md is what review() produces for the API sample on that day."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "result-document.md").read_text(encoding="utf-8")
    blocks = [json.loads(b) for b in re.findall(r"```json\n(.*?)```", text, re.S)]
    example = next(b for b in blocks if b.get("type") == "result")
    day = D.fromisoformat(example["processedAt"][:10])
    fresh = review(example["data"]["data"], example["data"]["prism_keyValueInfo"], today=day, min_prob=MIN_PROB)
    assert {k: example[k] for k in fresh} == fresh


def test_empty_data_lists_every_normalized_field_as_missing_in_api_order() -> None:
    result = run({})
    assert [(u["field"], u["reason"]) for u in result["normalized"]["unparsed"]] == [
        (name, "missing")
        for name in ("permitType", "nameEn", "birthDate", "sex", "validPeriod", "permitNumber", "issueCount")
    ]
    assert result["normalized"]["kind"] is None and result["needsReview"] is True
    assert_shape(result)
