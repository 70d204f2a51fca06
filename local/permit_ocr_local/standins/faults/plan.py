"""Fault injection at run time: the plan the stand-ins' HTTP layer asks, per request, whether to misbehave.

Two sources, asked in this order: scripted rules (``rules.py``; first matching rule in force wins) and seeded
random rates per service ("oss", "ocr", "mns", "fc") that a test or ``make chaos`` sets. The HTTP layer applies
a fault before the service sees the request (or, for a rule ``at: answer``, after it acted and instead of its
answer), so state is never half-changed by an injected fault.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .rules import FaultRule, RuleState, Target, armed_by, initial_state, matches, rule_from, spent, step


@dataclass(frozen=True)
class Fault:
    status: int = 0  # answer with this HTTP status in the service's error shape
    delay_s: float = 0.0  # sleep first (a slow response, or a timeout if longer than the client waits)
    drop: bool = False  # close the connection without answering
    code: str | None = None  # the error code to answer with (None: the service's usual one for the status)
    message: str | None = None
    at_answer: bool = False  # let the service act first, then delay, replace or drop its answer


@dataclass
class FaultRates:
    """Probabilities (0..1) per request; they are drawn in this order and at most one applies."""

    throttle: float = 0.0  # 429 (OCR: Throttling.User)
    server_error: float = 0.0  # 500/503
    drop: float = 0.0  # connection closed without a response
    slow: float = 0.0  # answered late by slow_s
    slow_s: float = 0.5


RuleInput = FaultRule | Mapping[str, Any]
# (rule id, rule, service, target, hits so far): told on every hit, e.g. to print it
HitListener = Callable[[int, FaultRule, str, Target, int], None]


def fault_of(rule: FaultRule) -> Fault:
    return Fault(status=rule.status or 0, delay_s=rule.delay_s, drop=rule.drop, code=rule.code,
                 message=rule.message, at_answer=rule.at == "answer")


@dataclass
class FaultPlan:
    seed: int = 0
    rates: dict[str, FaultRates] = field(default_factory=dict)
    # optional predicate: only requests it accepts may be faulted, by rules or rates (e.g. not the harness's own)
    only: Callable[[str, Any], bool] | None = None
    rules: Iterable[RuleInput] = ()  # the first rules (ids 0, 1, ... in this order); more with add_rule()
    clock: Callable[[], float] = time.monotonic  # for_s windows
    on_hit: HitListener | None = None

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()
        self.injected: Counter[str] = Counter()  # "oss:server_error", "mns:rule#0", ...
        self._rules: dict[int, FaultRule] = {}  # insertion order is rule order
        self._states: dict[int, RuleState] = {}
        self._next_id = 0
        self._any_start_on = False
        initial = [rule_from(r) for r in self.rules]  # all validated before any is added
        for rule in initial:
            self.add_rule(rule)

    # -- random rates -----------------------------------------------------------------------------------------
    def set(self, service: str, **rates: float) -> None:
        self.rates[service] = FaultRates(**rates)

    # -- scripted rules ---------------------------------------------------------------------------------------
    def add_rule(self, rule: RuleInput, *, first: bool = False) -> int:
        """Add a rule (last, or ``first`` to take precedence over the others); returns its id. A dict is
        validated as a JSON rule is (RuleError naming the field)."""
        parsed = rule_from(rule)
        with self._lock:
            rule_id = self._next_id
            self._next_id += 1
            self._rules[rule_id] = parsed
            if first:
                self._rules = {rule_id: parsed} | {k: v for k, v in self._rules.items() if k != rule_id}
            self._states[rule_id] = initial_state(parsed)
            self._any_start_on = any(r.start_on is not None for r in self._rules.values())
        return rule_id

    def remove_rule(self, rule_id: int) -> None:
        """Stop applying a rule; its hit count stays readable."""
        with self._lock:
            del self._rules[rule_id]
            self._any_start_on = any(r.start_on is not None for r in self._rules.values())

    def clear_rules(self) -> None:
        with self._lock:
            self._rules.clear()
            self._any_start_on = False

    def hits(self, rule_id: int) -> int:
        with self._lock:
            return self._states[rule_id].hits

    def active_rules(self) -> list[tuple[int, FaultRule, bool]]:
        """(id, rule, spent) of every rule still in the plan, in the order they are asked."""
        now = self.clock()
        with self._lock:
            return [(i, r, spent(r, self._states[i], now)) for i, r in self._rules.items()]

    # -- asked by the HTTP layer ------------------------------------------------------------------------------
    def draw(self, service: str, request: Any, target: Target | None = None) -> Fault | None:
        """The fault for this request, if any: the first rule that hits it, else a draw of the rates. Without
        a ``target`` (what the request is) only the rates apply."""
        if self.only is not None and not self.only(service, request):
            return None
        if target is not None and self._rules:
            hit = self._rule_hit(service, target)
            if hit is not None:
                return hit
        return self._draw_rates(service)

    def observe(self, service: str, target: Target, status: int) -> None:
        """The service answered ``status`` to ``target``: wake rules waiting for it (``start_on``)."""
        if not self._any_start_on:
            return
        with self._lock:
            for rule_id, rule in self._rules.items():
                self._states[rule_id] = armed_by(rule, self._states[rule_id], service, target, status)

    def _rule_hit(self, service: str, target: Target) -> Fault | None:
        now = self.clock()
        with self._lock:
            for rule_id, rule in self._rules.items():
                if not matches(rule, service, target):
                    continue
                applies, self._states[rule_id] = step(rule, self._states[rule_id], now)
                if applies:
                    hits = self._states[rule_id].hits
                    self.injected[f"{service}:rule#{rule_id}"] += 1
                    break
            else:
                return None
        if self.on_hit is not None:
            self.on_hit(rule_id, rule, service, target, hits)
        return fault_of(rule)

    def _draw_rates(self, service: str) -> Fault | None:
        r = self.rates.get(service)
        if r is None:
            return None
        with self._lock:
            x = self._rng.random()
        fault: Fault | None = None
        kind = ""
        for name, p, f in (
            ("throttle", r.throttle, Fault(status=429)),
            ("server_error", r.server_error, Fault(status=503)),
            ("drop", r.drop, Fault(drop=True)),
            ("slow", r.slow, Fault(delay_s=r.slow_s)),
        ):
            if x < p:
                fault, kind = f, name
                break
            x -= p
        if fault is not None:
            with self._lock:
                self.injected[f"{service}:{kind}"] += 1
        return fault


def as_plan(faults: FaultPlan | Iterable[RuleInput] | None, **options: Any) -> FaultPlan:
    """A plan from what StackOptions(faults=...) accepts: a plan as it is, rules (FaultRule or JSON-like
    dicts) in a fresh plan, or None for an empty plan that rules can still be added to at run time."""
    if isinstance(faults, FaultPlan):
        return faults
    return FaultPlan(rules=faults or (), **options)
