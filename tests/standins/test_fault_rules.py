"""Scripted fault rules as pure data: validation (one line naming the rule and the field), matching, and the
counters (after, times, for_s, start_on) stepped with a clock the test turns. The wire side is in
test_fault_routing.py."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from permit_ocr_local.standins.faults import FaultPlan, FaultRule, RuleError, Target, load_rules, parse_rules
from permit_ocr_local.standins.faults.rules import glob

GET = Target("GetObject", "uploads/a.jpg", "bucket-a")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def plan_of(*rules: dict[str, Any], clock: Clock | None = None) -> FaultPlan:
    return FaultPlan(rules=rules, clock=clock or Clock())


def status_of(plan: FaultPlan, service: str = "oss", target: Target = GET) -> int | None:
    fault = plan.draw(service, None, target)
    return None if fault is None else fault.status


@pytest.mark.parametrize(("rule", "field", "says"), [
    ({"operation": "GetObject", "status": 403}, "service", "is required"),
    ({"service": "s3", "status": 500}, "service", "one of oss, ocr, mns, fc"),
    ({"service": "oss", "operation": "GetObjet", "status": 500}, "operation", "names no oss operation"),
    ({"service": "mns", "operation": "GetObject", "status": 500}, "operation", "names no mns operation"),
    ({"service": "oss", "operation": 7, "status": 500}, "operation", "string or a list"),
    ({"service": "oss", "stauts": 503}, "stauts", "unknown field"),
    ({"service": "oss", "status": 200}, "status", "400..599"),
    ({"service": "oss", "status": "503"}, "status", "400..599"),
    ({"service": "oss", "status": True}, "status", "400..599"),
    ({"service": "oss", "code": "AccessDenied", "delay_s": 1}, "code", "needs a status"),
    ({"service": "oss", "status": 503, "code": " "}, "code", "must not be empty"),
    ({"service": "oss", "status": 503, "drop": True}, "drop", "not both"),
    ({"service": "oss", "drop": "yes"}, "drop", "true or false"),
    ({"service": "oss", "delay_s": -1}, "delay_s", ">= 0"),
    ({"service": "oss", "delay_s": float("nan")}, "delay_s", "number"),
    ({"service": "oss", "status": 503, "times": 0}, "times", ">= 1"),
    ({"service": "oss", "status": 503, "times": 1.5}, "times", "whole number"),
    ({"service": "oss", "status": 503, "after": -1}, "after", ">= 0"),
    ({"service": "oss", "status": 503, "for_s": 0}, "for_s", "> 0"),
    ({"service": "oss", "status": 503, "at": "later"}, "at", '"request" or "answer"'),
    ({"service": "mns", "bucket": "b", "status": 503}, "bucket", "only OSS"),
    ({"service": "oss", "key": 3, "status": 503}, "key", "must be a string"),
    ({"service": "oss", "status": 503, "start_on": "ocr"}, "start_on", "JSON object"),
    ({"service": "oss", "status": 503, "start_on": {"service": "ocr", "operation": "Recognize"}},
     "start_on.operation", "names no ocr operation"),
    ({"service": "oss", "status": 503, "start_on": {"service": "ocr", "times": 1}}, "start_on.times",
     "unknown field"),
])
def test_a_bad_rule_is_refused_in_one_line_naming_its_index_and_field(rule: dict[str, Any], field: str,
                                                                       says: str) -> None:
    good = {"service": "fc", "drop": True}
    with pytest.raises(RuleError) as exc:
        parse_rules([good, good, rule])
    line = str(exc.value)
    assert "\n" not in line and line.startswith(f"rule 2, field '{field}': ") and says in line, line


def test_a_rule_that_does_nothing_or_is_not_an_object_is_refused_with_its_index() -> None:
    for rule, says in (({"service": "oss"}, "does nothing"), ([1], "JSON object"), ("oss", "JSON object")):
        with pytest.raises(RuleError, match=rf"^rule 0: .*{says}"):
            parse_rules([rule])
    with pytest.raises(RuleError, match="JSON list of rules"):
        parse_rules({"service": "oss", "status": 503})


def test_a_fault_file_that_cannot_be_read_or_is_not_json_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(RuleError, match="cannot read") as missing:
        load_rules(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text('[{"service": "oss",}]')
    with pytest.raises(RuleError, match="is not JSON") as broken:
        load_rules(bad)
    assert "\n" not in str(missing.value) + str(broken.value)


def test_rules_written_in_python_are_checked_like_the_json_ones() -> None:
    with pytest.raises(RuleError, match="field 'operation'"):
        FaultRule(service="oss", operation="PutObjekt", status=503)
    with pytest.raises(RuleError, match=r"field 'start_on\.service'"):
        FaultRule(service="oss", status=503, start_on={"service": "sms"})  # type: ignore[arg-type]
    with pytest.raises(RuleError, match="field 'status'"):
        FaultPlan().add_rule({"service": "oss", "status": 302})
    rule = FaultRule(service="oss", operation="GetObject", status=403, start_on={"service": "ocr"})  # type: ignore[arg-type]
    assert rule.operation == ("GetObject",) and rule.start_on is not None and rule.start_on.service == "ocr"
    assert parse_rules([{"service": "oss", "operation": "GetObject", "status": 403,
                         "start_on": {"service": "ocr"}}]) == [rule]


def test_patterns_treat_star_as_any_run_including_slashes_and_brackets_literally() -> None:
    assert glob("uploads/*", "uploads/2024/a b.jpg") and glob("*.json", "a/b.jpg.json")
    assert glob("photo?.jpg", "photo1.jpg") and not glob("photo?.jpg", "photo10.jpg")
    assert glob("[x]*", "[x]1.jpg") and not glob("[x]*", "x1.jpg")
    assert not glob("Uploads/*", "uploads/a.jpg")  # case-sensitive, as OSS keys are


def test_a_rule_matches_its_service_operation_key_and_bucket_only() -> None:
    plan = plan_of({"service": "oss", "operation": ["GetObject", "HeadObject"], "key": "uploads/*",
                    "bucket": "bucket-a", "status": 403, "code": "AccessDenied"})
    assert status_of(plan) == 403
    assert status_of(plan, target=Target("HeadObject", "uploads/a.jpg", "bucket-a")) == 403
    assert status_of(plan, target=Target("PutObject", "uploads/a.jpg", "bucket-a")) is None
    assert status_of(plan, target=Target("GetObject", "other/a.jpg", "bucket-a")) is None
    assert status_of(plan, target=Target("GetObject", "uploads/a.jpg", "bucket-b")) is None
    assert status_of(plan, service="mns", target=Target("PublishMessage", "uploads/a.jpg")) is None
    assert plan.draw("oss", None, None) is None  # a stand-in with no routing: rules cannot apply
    assert plan.hits(0) == 2 and plan.injected["oss:rule#0"] == 2


def test_operation_globs_cover_several_actions() -> None:
    plan = plan_of({"service": "oss", "operation": "*Object", "status": 503})
    assert [status_of(plan, target=Target(op, "k")) for op in ("PutObject", "DeleteObject", "ListObjectsV2")] \
        == [503, 503, None]


def test_after_skips_the_first_matches_and_times_bounds_the_hits() -> None:
    plan = plan_of({"service": "oss", "status": 503, "after": 2, "times": 3})
    assert [status_of(plan) for _ in range(7)] == [None, None, 503, 503, 503, None, None]
    assert plan.hits(0) == 3


def test_for_s_holds_the_rule_for_that_long_from_its_first_hit() -> None:
    clock = Clock()
    plan = plan_of({"service": "oss", "status": 503, "for_s": 12}, clock=clock)
    clock.now += 100  # the window starts at the first hit, not at start-up
    assert status_of(plan) == 503
    clock.now += 11.9
    assert status_of(plan) == 503
    clock.now += 0.1
    assert status_of(plan) is None and [s for *_, s in plan.active_rules()] == [True]
    assert plan.hits(0) == 2


def test_start_on_keeps_a_rule_dormant_until_that_request_was_answered_with_2xx() -> None:
    clock = Clock()
    paid = Target("RecognizeExitEntryPermitToMainland", "uploads/a.jpg")
    plan = plan_of({"service": "oss", "status": 503, "for_s": 12,
                    "start_on": {"service": "ocr", "operation": "RecognizeExitEntryPermitToMainland"}}, clock=clock)
    assert status_of(plan) is None  # before the paid call
    plan.observe("ocr", paid, 429)  # a refused call is not a paid one
    assert status_of(plan) is None
    plan.observe("ocr", paid, 200)
    assert status_of(plan) == 503 and status_of(plan, target=Target("PutObject", "uploads/a.jpg.json")) == 503
    clock.now += 12
    assert status_of(plan) is None
    plan.observe("ocr", paid, 200)  # armed once: a later paid call does not start another window
    assert status_of(plan) is None


def test_times_holds_under_concurrent_requests() -> None:
    plan = plan_of({"service": "oss", "status": 503, "times": 5})
    faulted: list[int | None] = []

    def client() -> None:
        faulted.extend(status_of(plan) for _ in range(50))

    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert faulted.count(503) == 5 and plan.hits(0) == 5


def test_the_first_matching_rule_in_force_wins_and_a_spent_one_lets_the_next_apply() -> None:
    plan = plan_of({"service": "oss", "operation": "GetObject", "status": 403, "times": 1},
                   {"service": "oss", "status": 503})
    assert [status_of(plan) for _ in range(3)] == [403, 503, 503]
    assert (plan.hits(0), plan.hits(1)) == (1, 2)


def test_rules_apply_before_the_random_rates_and_the_rates_still_apply_to_the_rest() -> None:
    plan = plan_of({"service": "oss", "operation": "PutObject", "status": 409, "code": "FileAlreadyExists"})
    plan.set("oss", server_error=1.0)
    assert status_of(plan, target=Target("PutObject", "k")) == 409
    assert status_of(plan) == 503
    assert plan.injected == {"oss:rule#0": 1, "oss:server_error": 1}


def test_only_keeps_requests_it_refuses_out_of_rules_and_rates() -> None:
    plan = FaultPlan(rules=[{"service": "oss", "status": 503}], only=lambda service, request: request != "mine")
    assert plan.draw("oss", "mine", GET) is None and plan.draw("oss", "theirs", GET) is not None
    assert plan.hits(0) == 1


def test_rules_are_added_first_or_last_and_removed_while_the_plan_serves() -> None:
    plan = plan_of({"service": "oss", "status": 503})
    first = plan.add_rule({"service": "oss", "status": 429}, first=True)
    assert status_of(plan) == 429
    plan.remove_rule(first)
    assert status_of(plan) == 503 and plan.hits(first) == 1  # its count outlives it
    late = plan.add_rule(FaultRule(service="oss", operation="GetObject", delay_s=0.5))
    assert [i for i, *_ in plan.active_rules()] == [0, late]
    plan.clear_rules()
    assert plan.draw("oss", None, GET) is None


def test_a_fault_carries_what_the_rule_says_to_answer() -> None:
    plan = plan_of({"service": "mns", "status": 503, "code": "ServiceUnavailable", "message": "brownout",
                    "delay_s": 8, "at": "answer"})
    fault = plan.draw("mns", None, Target("PublishMessage", "permit-ocr-results"))
    assert fault is not None
    assert (fault.status, fault.code, fault.message, fault.delay_s, fault.at_answer, fault.drop) == \
        (503, "ServiceUnavailable", "brownout", 8, True, False)


def test_hits_are_told_to_a_listener_without_the_object_key() -> None:
    told: list[tuple[int, str, str, int]] = []
    plan = FaultPlan(rules=[{"service": "oss", "status": 503}],
                     on_hit=lambda i, rule, service, target, hits: told.append((i, service, target.operation, hits)))
    status_of(plan)
    status_of(plan)
    assert told == [(0, "oss", "GetObject", 1), (0, "oss", "GetObject", 2)]


def test_describe_names_the_pattern_and_what_the_rule_does_on_one_line() -> None:
    [rule] = parse_rules(json.loads(
        '[{"service": "oss", "operation": "*", "status": 503, "code": "ServiceUnavailable", "for_s": 12,'
        ' "start_on": {"service": "ocr"}, "note": "brownout"}]'))
    line = rule.describe()
    assert "\n" not in line
    for part in ("oss *", "answer 503 ServiceUnavailable", "for 12 s from its first hit", "once ocr *", "# brownout"):
        assert part in line, line
