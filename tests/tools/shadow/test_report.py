"""permit-ocr shadow-report's sums (tools/shadow/report.py, pure): agreement per field and per kind, what a
cascade would have done and cost, from comparison records as function/permit_ocr/shadow.py writes them."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from permit_ocr.config import load_config
from permit_ocr.normalize import FIELDS
from permit_ocr.recognize import OcrResult
from permit_ocr.shadow import compare, record
from permit_ocr_local.standins.ocr.backends import build_data
from permit_ocr_local.tools.shadow import cost_of, render, summarize
from permit_ocr_local.tools.shadow.cost import fc_cost_per_1000
from support import SAMPLE_TRUTH

NOW = datetime.datetime(2026, 12, 7, 12, 0, tzinfo=datetime.UTC)
CFG = load_config({"SOURCE_BUCKETS": "permit-ocr-demo"})
TAIWAN = {**SAMPLE_TRUTH, "permitType": "台湾居民来往大陆通行证", "permitNumber": "12345678", "issueCount": ""}


def data(truth: dict[str, Any]) -> dict[str, Any]:
    return build_data(truth, 928, 626, False)


def rec(api: dict[str, Any], engine: dict[str, Any] | None, ms: int = 800) -> dict[str, Any]:
    from permit_ocr.document import review_data
    from permit_ocr.engineclient import EngineFailure

    a = OcrResult("A", data(api), 1, 500)
    e = OcrResult("E", data(engine), 1, ms, backend="engine") if engine is not None else None
    failure = None if engine is not None else EngineFailure("unmatchedImageType", "no", about_image=True)
    return record(a, review_data(a.data, 90, NOW), e, failure, CFG, {"format": "jpeg"}, NOW)


def test_fields_agree_as_printed_and_both_confidences_are_kept() -> None:
    fields = compare(data(SAMPLE_TRUTH), data({**SAMPLE_TRUTH, "nameCn": "何 郑", "permitNumber": "Ｈ10387877",
                                               "valueProb": {"sex": 55}}))
    assert all(f["agree"] for f in fields.values())  # white space and full-width forms are not a disagreement
    assert (fields["sex"]["apiProb"], fields["sex"]["engineProb"]) == (100, 55)
    assert not compare(data(SAMPLE_TRUTH), data({**SAMPLE_TRUTH, "nameCn": "何正"}))["nameCn"]["agree"]


def test_the_summary_counts_agreement_per_field_and_kind_and_what_a_cascade_would_do() -> None:
    records = [rec(SAMPLE_TRUTH, SAMPLE_TRUTH), rec(SAMPLE_TRUTH, {**SAMPLE_TRUTH, "nameCn": "何正"}),
               rec(SAMPLE_TRUTH, {**SAMPLE_TRUTH, "valueProb": {"birthDate": 30}}), rec(SAMPLE_TRUTH, None),
               rec(TAIWAN, TAIWAN)]
    s = summarize(records)
    assert (s.records, s.answered, dict(s.refused)) == (5, 4, {"unmatchedImageType": 1})
    assert (s.fields["nameCn"].compared, s.fields["nameCn"].agreed) == (4, 3)
    assert (s.fields["birthDate"].sure, s.fields["birthDate"].sure_agreed) == (3, 3)
    assert (s.escalated, s.kept, s.kept_disagreeing) == (2, 3, 1)  # the doubtful and the refused one go on
    assert (s.kinds["hk"].uploads, s.kinds["hk"].all_agreed, s.kinds["taiwan"].uploads) == (4, 2, 1)


def test_an_engine_that_could_not_answer_decides_nothing_for_the_cascade() -> None:
    down = rec(SAMPLE_TRUTH, SAMPLE_TRUTH)
    down.update(engine={"code": "ResourceThrottled", "needsReview": None, "reasons": [], "latencyMs": None},
                wouldEscalate=None)
    down.pop("fields")
    s = summarize([down, rec(SAMPLE_TRUTH, SAMPLE_TRUTH)])
    assert (s.decided, dict(s.unavailable)) == (1, {"ResourceThrottled": 1})


def test_cost_per_1000_prices_the_api_calls_a_cascade_still_makes_and_the_engines_seconds() -> None:
    s = summarize([rec(SAMPLE_TRUTH, SAMPLE_TRUTH, ms=1000)] * 3 + [rec(SAMPLE_TRUTH, None)])
    c = cost_of(s, api_price_usd=0.02, memory_mb=1024, vcpu=1.0)
    assert c is not None
    assert c.api_usd == pytest.approx(20.0) and c.escalated == pytest.approx(0.25)
    engine = fc_cost_per_1000(1.0, 1024, 1.0)  # 1,000 s of 1 vCPU and 1 GB: 1,150 CU + 7.5 CU of invocations
    assert engine.usd == pytest.approx((1000 + 150 + 7.5) * 0.000020)
    assert c.cascade_usd == pytest.approx(engine.usd + c.waiting.usd + 0.25 * 20.0)


def test_the_rendered_report_names_every_field_and_says_when_there_is_nothing_yet() -> None:
    text = render(summarize([rec(SAMPLE_TRUTH, SAMPLE_TRUTH)]))
    assert all(f in text for f in FIELDS) and "would go to the API" in text and "USD" in text
    assert "no comparison records" in render(summarize([]))
