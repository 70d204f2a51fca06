"""The review page's pure rules: queue order and navigation, input cleaning, the reviewed document."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import pytest

from permit_ocr.normalize import review
from permit_ocr_local.cli import main
from permit_ocr_local.tools.review import rules
from permit_ocr_local.tools.schemas import validate_document
from support import SAMPLE_TRUTH

NOW = datetime.datetime(2026, 12, 1, 20, 0, tzinfo=datetime.UTC)


def _entry(key: str, at: str, *reasons: str) -> rules.QueueEntry:
    return rules.QueueEntry(key, "E", at, reasons)


def _doc(fields: dict[str, str], prob: int = 100) -> dict[str, Any]:
    prism = [{"key": k, "value": v, "valueProb": prob, "valuePos": [{"x": 1, "y": 2}, {"x": 3, "y": 2},
                                                                    {"x": 3, "y": 4}]} for k, v in fields.items()]
    checked = review(fields, prism, today=NOW.date(), min_prob=90)
    return {"schemaVersion": 1, "type": "result",
            "source": {"bucket": "b", "key": "k.png", "etag": "E", "size": 1, "region": "cn-hangzhou",
                       "ossRequestId": "o", "eventName": "ObjectCreated:PutObject",
                       "eventTime": "2026-12-01T00:00:00.000Z"},
            "image": {"format": "png", "width": 10, "height": 10},
            "ocr": {"action": "RecognizeExitEntryPermitToMainland", "apiVersion": "2021-07-07", "requestId": "r",
                    "imageSource": "body", "outputFigure": False, "attempts": 1, "latencyMs": 1},
            "processedAt": "2026-12-01T00:00:00.000Z", "functionRequestId": "f",
            "data": {"data": dict(fields), "prism_keyValueInfo": prism}, **checked}


def test_queue_is_oldest_first_and_filters_by_reason() -> None:
    entries = [_entry("b", "2026-02", "x"), _entry("a", "2026-03", "y"), _entry("c", "2026-01", "x", "y")]
    assert [e.result_key for e in rules.ordered(entries)] == ["c", "b", "a"]
    assert [e.result_key for e in rules.ordered(entries, "y")] == ["c", "a"]
    assert rules.reason_counts(entries) == {"x": 2, "y": 2}


def test_next_after_wraps_and_passes_over_skipped_and_itself() -> None:
    entries = rules.ordered([_entry("a", "1"), _entry("b", "2"), _entry("c", "3")])
    assert rules.next_after(entries, "b").result_key == "c"  # type: ignore[union-attr]
    assert rules.next_after(entries, "c").result_key == "a"  # type: ignore[union-attr]
    assert rules.next_after(entries, "a", frozenset({"b"})).result_key == "c"  # type: ignore[union-attr]
    assert rules.next_after(entries, "gone").result_key == "a"  # type: ignore[union-attr]
    assert rules.next_after(entries, "a", frozenset({"b", "c"})) is None


def test_a_low_confidence_flag_clears_once_a_person_approves() -> None:
    doc = _doc(dict(SAMPLE_TRUTH), prob=40)
    assert doc["needsReview"] and doc["reviewReasons"] == ["confidence"]
    out = rules.reviewed_document(doc, rules.fields_of(doc), reviewer="R", now=NOW, min_prob=90)
    assert out["needsReview"] is False and out["review"]["changes"] == []
    assert out["review"]["previousReasons"] == ["confidence"] and out["review"]["acceptedChecks"] == []
    assert next(c for c in out["checks"] if c["code"] == "confidence")["passed"] is True
    assert validate_document(out) == []
    assert doc["needsReview"] is True  # the input document is left as it was


def test_a_check_still_failing_after_approval_is_recorded_as_accepted() -> None:
    doc = _doc({**SAMPLE_TRUTH, "permitNumber": "H1"})
    out = rules.reviewed_document(doc, {**rules.fields_of(doc), "nameEn": "HE,CHENG X"}, reviewer="R", now=NOW,
                                  min_prob=90)
    assert out["review"]["acceptedChecks"] == ["number.format"]
    assert out["review"]["changes"] == [{"field": "nameEn", "before": "HE,CHENG", "after": "HE,CHENG X"}]
    assert out["normalized"]["givenNames"] == "CHENG X" and out["reviewReasons"] == []
    assert validate_document(out) == []


def test_fields_are_stripped_and_bad_input_names_the_field_only() -> None:
    fields = {f: f" {v} " for f, v in SAMPLE_TRUTH.items()}
    assert rules.clean_fields(fields) == SAMPLE_TRUTH
    with pytest.raises(rules.BadInput, match="nameCn") as err:
        rules.clean_fields({**fields, "nameCn": "何\n郑"})
    assert "何" not in str(err.value)
    with pytest.raises(rules.BadInput, match="permitNumber"):
        rules.clean_fields({**fields, "permitNumber": "H" * 201})
    with pytest.raises(rules.BadInput):
        rules.clean_reviewer("   ")
    assert rules.clean_reviewer("  Chen   Li ") == "Chen Li"


def test_boxes_come_from_value_positions_and_skip_unusable_ones() -> None:
    doc = _doc({"nameCn": "何郑"})
    doc["data"]["prism_keyValueInfo"] += [{"key": "sex", "valuePos": [{"x": "a", "y": 1}] * 4},
                                          {"key": "nope", "valuePos": [{"x": 1, "y": 1}] * 4}]
    assert rules.boxes(doc) == [rules.Box("nameCn", "1,2 3,2 3,4")]


def test_validate_accepts_a_reviewed_result_and_shows_the_persons_verdict(tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    doc = _doc({**SAMPLE_TRUTH, "permitNumber": "H1"}, prob=40)
    out = rules.reviewed_document(doc, rules.fields_of(doc), reviewer="R", now=NOW, min_prob=90)
    path = tmp_path / "r.json"
    path.write_text(json.dumps(out, ensure_ascii=False), "utf-8")
    assert main(["validate", str(path)]) == 0
    shown = capsys.readouterr().out
    assert "valid result" in shown and "failing checks accepted: number.format" in shown
    assert "stored verdict differs" not in shown


# -- the page speaks its users' language ------------------------------------------------------------------------

def test_every_field_has_a_chinese_and_an_english_label_and_every_check_code_its_words() -> None:
    from permit_ocr.normalize import CHECK_CODES, FIELDS

    assert set(rules.LABELS) == set(FIELDS)
    assert set(CHECK_CODES) <= set(rules.CHECK_WORDS)  # a new check cannot reach the page as a bare code
    for zh, en in rules.LABELS.values():
        assert any("\u4e00" <= ch <= "\u9fff" for ch in zh) and en.isascii()


def test_failed_checks_read_as_sentences_without_codes_or_json_names() -> None:
    doc = _doc({**SAMPLE_TRUTH, "birthDate": "1980.01.01", "validPeriod": "2014.04.10-2019.04.09",
                "nameEn": "he cheng"}, prob=50)
    sentences = [rules.check_sentence(c) for c in rules.failed_checks(doc)]
    assert "The valid period does not fit the holder's age: a permit runs 10 years less a day for a holder 18 " \
           "or over." in sentences
    assert "The name in Latin letters is not SURNAME,GIVEN NAMES in capitals." in sentences
    unsure = next(s for s in sentences if s.startswith("The OCR was unsure (under 90 %) of: "))
    assert "出生日期 Date of birth" in unsure
    for s in sentences:
        assert "valueProb" not in s and "validPeriod" not in s and "nameEn" not in s
    missing = rules.check_sentence({"code": "unparsed:nameEn", "message": "nameEn could not be read (missing)",
                                    "fields": ["nameEn"], "reason": "missing"})
    assert missing == "Name in Latin letters could not be read: it is empty."
    assert rules.reason_words("unparsed:nameEn") == ("英文姓名无法读取", "name in latin letters unreadable")
    assert rules.reason_words("validPeriod.span") == ("有效期限与年龄不符", "valid period vs. age")


def test_times_are_shown_in_the_reviewers_local_time() -> None:
    beijing = datetime.timezone(datetime.timedelta(hours=8))
    assert rules.local_time("2026-12-01T20:30:00.000Z", beijing) == "2026-12-02 04:30:00"
    assert rules.local_time("not a time", beijing) == "not a time"
    taken = rules.reviewed_by({"review": {"reviewer": "Alice", "reviewedAt": "2026-12-01T20:30:00.000Z"}}, beijing)
    assert taken == "Alice saved this result first (at 2026-12-02 04:30:00): your changes were not saved"


def test_a_corrected_field_is_known_as_corrected_after_the_save() -> None:
    doc = _doc(dict(SAMPLE_TRUTH), prob=50)
    saved = rules.reviewed_document(doc, {**rules.fields_of(doc), "permitNumber": "H10387871"}, reviewer="Kim",
                                    now=NOW, min_prob=90)
    assert rules.corrected_fields(saved) == {"permitNumber"}
    assert rules.corrected_fields(doc) == set()
