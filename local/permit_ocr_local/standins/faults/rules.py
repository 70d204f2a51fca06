"""Scripted fault rules, as pure data and pure functions: the rule model, its validation (from JSON or from
Python), matching a request's (service, operation, key) and the step of a rule's counters. The running plan
(``plan.py``) holds the state; each service's routing says what a request is (``Target``).

The format is documented in docs/faults.md; keep the two together.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

SERVICES: Final = ("oss", "ocr", "mns", "fc")
# the operations each stand-in's routing names (tests/standins/test_fault_routing.py ties them to the routing)
OPERATIONS: Final[Mapping[str, frozenset[str]]] = {
    "oss": frozenset({"GetObject", "PutObject", "HeadObject", "GetObjectMeta", "DeleteObject", "ListObjectsV2",
                      "PutBucket", "GetBucketVersioning", "PutBucketVersioning"}),
    "ocr": frozenset({"RecognizeExitEntryPermitToMainland"}),
    "mns": frozenset({"PublishMessage"}),
    "fc": frozenset({"InvokeFunction", "GetFunction"}),
}
AT: Final = ("request", "answer")
MAX_DELAY_S: Final = 3600.0
_MATCH_FIELDS: Final = ("service", "operation", "key", "bucket")
_RULE_FIELDS: Final = (*_MATCH_FIELDS, "delay_s", "status", "code", "message", "drop", "at", "times", "after",
                       "for_s", "start_on", "note")


class RuleError(ValueError):
    """A rule that cannot be used; ``str()`` is one line naming the rule index (when known) and the field."""

    def __init__(self, message: str, field: str | None = None, index: int | None = None) -> None:
        self.message, self.field, self.index = message, field, index
        where = [f"rule {index}"] if index is not None else []
        where += [f"field '{field}'"] if field else []
        super().__init__(f"{', '.join(where)}: {message}" if where else message)

    def at(self, index: int) -> RuleError:
        return RuleError(self.message, self.field, index)

    def within(self, parent: str) -> RuleError:
        return RuleError(self.message, f"{parent}.{self.field}" if self.field else parent, self.index)


@dataclass(frozen=True)
class Target:
    """What one request is, as its service's routing says: ``operation`` is the API action ("" when the
    stand-in does not serve it); ``key`` the OSS object key (a listing: its prefix), the MNS topic, the FC
    function, or for OCR the object key in ``Url`` ("" for bytes); ``bucket`` is OSS's."""

    operation: str
    key: str = ""
    bucket: str = ""


def glob(pattern: str, value: str) -> bool:
    """``*`` is any run of characters ('/' included), ``?`` one character; '[' is literal (keys hold it)."""
    return fnmatch.fnmatchcase(value, pattern.replace("[", "[[]"))


@dataclass(frozen=True)
class Matcher:
    """Which requests: a service, operation patterns, and optional key and bucket (OSS) patterns."""

    service: str
    operation: tuple[str, ...] | str = ("*",)
    key: str | None = None
    bucket: str | None = None

    def __post_init__(self) -> None:
        if self.service not in SERVICES:
            raise RuleError(f"must be one of {', '.join(SERVICES)}, not {self.service!r}", "service")
        ops: object = self.operation  # one pattern, or a list of them (JSON, or Python)
        ops = (ops,) if isinstance(ops, str) else tuple(ops) if isinstance(ops, list | tuple) else None
        if ops is None or not all(isinstance(p, str) for p in ops):
            raise RuleError("must be a string or a list of strings", "operation")
        object.__setattr__(self, "operation", ops)
        _check_strings(self, ("key", "bucket"))
        if not self.operation:
            raise RuleError("must name at least one operation (or \"*\")", "operation")
        for pattern in self.operations:
            if not any(glob(pattern, op) for op in OPERATIONS[self.service]):
                known = ", ".join(sorted(OPERATIONS[self.service]))
                raise RuleError(f"{pattern!r} names no {self.service} operation (known: {known}, or \"*\")",
                                "operation")
        if self.bucket is not None and self.service != "oss":
            raise RuleError("only OSS rules have a bucket", "bucket")

    @property
    def operations(self) -> tuple[str, ...]:
        return self.operation if isinstance(self.operation, tuple) else (self.operation,)


def matches(m: Matcher, service: str, target: Target) -> bool:
    return (m.service == service and any(glob(p, target.operation) for p in m.operations)
            and (m.key is None or glob(m.key, target.key))
            and (m.bucket is None or glob(m.bucket, target.bucket)))


@dataclass(frozen=True)
class FaultRule(Matcher):
    """One scripted fault: which requests (the Matcher fields), what to do to them, and when. Fields and
    defaults are those of the JSON format (docs/faults.md)."""

    delay_s: float = 0.0  # answer late by this much
    status: int | None = None  # answer this HTTP error in the service's own shape
    code: str | None = None
    message: str | None = None
    drop: bool = False  # close the connection without an answer
    at: str = "request"  # "request": before the service sees it; "answer": after it acted, instead of its answer
    times: int | None = None  # hits before the rule is spent; None = unlimited
    after: int = 0  # matching requests let through before the first hit
    for_s: float | None = None  # the rule holds this long from its first hit
    start_on: Matcher | None = None  # dormant until a request matching this was answered with 2xx
    note: str = ""

    def __post_init__(self) -> None:
        super().__post_init__()  # service, operation, key and bucket
        _check_strings(self, ("code", "message", "at", "note"))
        if not isinstance(self.drop, bool):
            raise RuleError(f"must be true or false, not {self.drop!r}", "drop")
        _check_answer(self)
        _check_when(self)
        if not (self.delay_s or self.status is not None or self.drop):
            raise RuleError("does nothing: give delay_s, status or drop", None)

    def describe(self) -> str:
        """One line for the stack's listing; names the pattern the user wrote, never a request's key."""
        what = f"{self.service} {'|'.join(self.operations)}"
        what += f" key={self.key}" if self.key is not None else ""
        what += f" bucket={self.bucket}" if self.bucket is not None else ""
        does = [f"delay {self.delay_s:g} s"] if self.delay_s else []
        if self.status is not None:
            does.append(f"answer {self.status}" + (f" {self.code}" if self.code else ""))
        does += ["drop the connection"] if self.drop else []
        when = ["at the answer (after the service acted)"] if self.at == "answer" else []
        when += [f"after {self.after} matching"] if self.after else []
        when += [f"{self.times} time{'s' if self.times != 1 else ''}"] if self.times is not None else []
        when += [f"for {self.for_s:g} s from its first hit"] if self.for_s is not None else []
        if self.start_on is not None:
            s = self.start_on
            when.append(f"once {s.service} {'|'.join(s.operations)}" + (f" key={s.key}" if s.key else "")
                        + " has answered 2xx")
        line = f"{what}: {', '.join(does)}" + (f" ({'; '.join(when)})" if when else "")
        return line + (f"  # {self.note}" if self.note else "")


def _check_strings(obj: object, names: Sequence[str]) -> None:
    for name in names:
        value = getattr(obj, name)
        if value is not None and not isinstance(value, str):
            raise RuleError(f"must be a string, not {value!r}", name)


def _check_answer(rule: FaultRule) -> None:
    """What the rule does: delay, status (with code and message), drop, and at which side of the service."""
    _check_number(rule.delay_s, "delay_s", low=0.0, high=MAX_DELAY_S)
    if rule.status is not None and (isinstance(rule.status, bool) or not isinstance(rule.status, int)
                                    or not 400 <= rule.status <= 599):
        raise RuleError(f"must be an HTTP error status 400..599, not {rule.status!r}", "status")
    for name in ("code", "message"):
        if getattr(rule, name) is not None and rule.status is None:
            raise RuleError("needs a status to answer with", name)
    if rule.code is not None and not rule.code.strip():
        raise RuleError("must not be empty", "code")
    if rule.drop and rule.status is not None:
        raise RuleError("a dropped connection answers nothing: give status or drop, not both", "drop")
    if rule.at not in AT:
        raise RuleError(f"must be \"request\" or \"answer\", not {rule.at!r}", "at")


def _check_when(rule: FaultRule) -> None:
    """When the rule holds: times, after, for_s, and start_on (a dict written in Python becomes a Matcher)."""
    if rule.times is not None:
        _check_count(rule.times, "times", low=1)
    _check_count(rule.after, "after", low=0)
    if rule.for_s is not None:
        _check_number(rule.for_s, "for_s", low=0.0, high=math.inf, open_low=True)
    start_on: object = rule.start_on
    if isinstance(start_on, Mapping):
        try:
            object.__setattr__(rule, "start_on", matcher_from(start_on))
        except RuleError as exc:
            raise exc.within("start_on") from None
    elif start_on is not None and not isinstance(start_on, Matcher):
        raise RuleError("must name a service (and operation, key) to wait for", "start_on")


def _check_number(value: Any, field: str, *, low: float, high: float, open_low: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or value < low or (open_low and value == low) or value > high:
        bound = f"> {low:g}" if open_low else f">= {low:g}"
        bound += f" and <= {high:g}" if math.isfinite(high) else ""
        raise RuleError(f"must be a number {bound}, not {value!r}", field)


def _check_count(value: Any, field: str, *, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise RuleError(f"must be a whole number >= {low}, not {value!r}", field)


# -- from JSON ------------------------------------------------------------------------------------------------
def _fields(obj: Any, allowed: Sequence[str]) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise RuleError(f"must be a JSON object, not {type(obj).__name__}")
    unknown = sorted(set(obj) - set(allowed))
    if unknown:
        raise RuleError(f"unknown field (known: {', '.join(allowed)})", unknown[0])
    if "service" not in obj:
        raise RuleError("is required", "service")
    return dict(obj)


def matcher_from(obj: Any) -> Matcher:
    if isinstance(obj, Matcher):
        return obj
    return Matcher(**_fields(obj, _MATCH_FIELDS))


def rule_from(obj: Any) -> FaultRule:
    """A FaultRule from one decoded JSON rule (or a dict written in Python), or RuleError naming the field."""
    if isinstance(obj, FaultRule):
        return obj
    raw = _fields(obj, _RULE_FIELDS)
    if "start_on" in raw and not isinstance(raw["start_on"], dict):
        raise RuleError("must be a JSON object naming a service (and operation, key)", "start_on")
    return FaultRule(**raw)


def parse_rules(data: Any) -> list[FaultRule]:
    """Every rule of a decoded fault file (a JSON list), or the first RuleError with its index and field."""
    if not isinstance(data, list):
        raise RuleError(f"the file must hold a JSON list of rules, not {type(data).__name__}")
    out = []
    for index, obj in enumerate(data):
        try:
            out.append(rule_from(obj))
        except RuleError as exc:
            raise exc.at(index) from None
    return out


def load_rules(path: Path) -> list[FaultRule]:
    """Read and validate a fault file; RuleError (one line) for anything wrong with it, I/O included."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise RuleError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise RuleError(f"{path} is not JSON: {exc}") from None
    return parse_rules(data)


# -- counters: one pure step per matching request ---------------------------------------------------------------
@dataclass(frozen=True)
class RuleState:
    armed: bool  # False while a start_on condition has not been met
    matches: int = 0  # matching requests that reached the rule while armed
    hits: int = 0
    first_hit: float | None = None  # clock time of the first hit (for_s counts from it)


def initial_state(rule: FaultRule) -> RuleState:
    return RuleState(armed=rule.start_on is None)


def spent(rule: FaultRule, state: RuleState, now: float) -> bool:
    """True once the rule will never hit again (its times used up, or its window over)."""
    if rule.times is not None and state.hits >= rule.times:
        return True
    return rule.for_s is not None and state.first_hit is not None and now - state.first_hit >= rule.for_s


def step(rule: FaultRule, state: RuleState, now: float) -> tuple[bool, RuleState]:
    """A request matching ``rule`` reached it: whether the rule hits it, and the rule's next state. A rule
    that does not hit (dormant, still skipping ``after``, spent) leaves the request to the rules below it."""
    if not state.armed or spent(rule, state, now):
        return False, state
    seen = state.matches + 1
    if seen <= rule.after:
        return False, dataclasses.replace(state, matches=seen)
    first = state.first_hit if state.first_hit is not None else now
    return True, dataclasses.replace(state, matches=seen, hits=state.hits + 1, first_hit=first)


def armed_by(rule: FaultRule, state: RuleState, service: str, target: Target, status: int) -> RuleState:
    """The state after a request the service answered with ``status``: a dormant rule wakes on its start_on."""
    if state.armed or rule.start_on is None or not 200 <= status < 300:
        return state
    return dataclasses.replace(state, armed=True) if matches(rule.start_on, service, target) else state
