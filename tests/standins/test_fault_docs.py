"""docs/faults.md matches the code: every field and operation the rules know is documented, the refusal line it
shows is the one printed, and its worked examples are valid rules that do what the text says (stepped here
with a clock the test turns; the shell block is run by tests/test_docs.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from permit_ocr_local.standins.faults import OPERATIONS, FaultPlan, RuleError, Target, parse_rules
from permit_ocr_local.standins.faults.rules import _RULE_FIELDS

DOC = (Path(__file__).resolve().parents[2] / "docs" / "faults.md").read_text(encoding="utf-8")
EXAMPLES = [m.group(1) for m in re.finditer(r"```json\n(.*?)\n```", DOC, flags=re.S)]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def example(word: str) -> list[dict[str, Any]]:
    [found] = [json.loads(e) for e in EXAMPLES if word in e]
    return found  # type: ignore[no-any-return]


def test_every_field_and_operation_is_documented() -> None:
    table = set(re.findall(r"^\| `([a-z_]+)` \|", DOC, flags=re.M))
    assert table == set(_RULE_FIELDS)
    for ops in OPERATIONS.values():
        for op in ops:
            assert f"`{op}`" in DOC, op


def test_the_refusal_shown_is_the_one_given() -> None:
    with pytest.raises(RuleError) as exc:
        parse_rules([{"service": "oss", "status": 503}, {"service": "oss", "status": 302}])
    assert f"permit-ocr: --faults faults.json: {exc.value}" in DOC


def test_the_three_worked_examples_are_valid_rules() -> None:
    assert len(EXAMPLES) == 3
    for text in EXAMPLES:
        assert parse_rules(json.loads(text))


def test_the_brownout_holds_oss_down_for_12_s_after_the_first_paid_call() -> None:
    clock = Clock()
    plan = FaultPlan(rules=example("after the paid call"), clock=clock)
    put = Target("PutObject", "uploads/a.jpg.json", "permit-ocr-demo")
    assert plan.draw("oss", None, put) is None
    plan.observe("ocr", Target("RecognizeExitEntryPermitToMainland", "uploads/a.jpg"), 200)
    clock.now = 5.0
    assert (fault := plan.draw("oss", None, put)) is not None and (fault.status, fault.code) == \
        (503, "ServiceUnavailable")
    clock.now = 16.9
    assert plan.draw("oss", None, Target("HeadObject", "uploads/a.jpg", "permit-ocr-demo")) is not None
    clock.now = 17.0
    assert plan.draw("oss", None, put) is None


def test_the_slow_publish_is_late_by_8_s_once_on_its_topic() -> None:
    plan = FaultPlan(rules=example("slow publish"))
    publish = Target("PublishMessage", "permit-ocr-results")
    assert (fault := plan.draw("mns", None, publish)) is not None and (fault.delay_s, fault.status) == (8, 0)
    assert plan.draw("mns", None, publish) is None
    assert plan.draw("mns", None, Target("PublishMessage", "permit-ocr-failures")) is None


def test_the_prefix_refusal_covers_every_read_of_that_prefix_only() -> None:
    plan = FaultPlan(rules=example("no longer read"))
    for op in ("GetObject", "HeadObject", "GetObjectMeta"):
        fault = plan.draw("oss", None, Target(op, "uploads/private/张三.jpg", "permit-ocr-demo"))
        assert fault is not None and (fault.status, fault.code) == (403, "AccessDenied")
    assert plan.draw("oss", None, Target("GetObject", "uploads/a.jpg", "permit-ocr-demo")) is None
    assert plan.draw("oss", None, Target("PutObject", "uploads/private/a.jpg.json", "permit-ocr-demo")) is None
