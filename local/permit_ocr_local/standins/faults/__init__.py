"""Fault injection for the stand-ins: scripted rules (``rules``: the model, validation and matching, all pure)
and the run-time plan (``plan``: rule state, hit counts and the seeded random rates) the HTTP layer asks."""

from .plan import Fault, FaultPlan, FaultRates, HitListener, RuleInput, as_plan
from .rules import OPERATIONS, SERVICES, FaultRule, Matcher, RuleError, Target, load_rules, parse_rules

__all__ = ["OPERATIONS", "SERVICES", "Fault", "FaultPlan", "FaultRates", "FaultRule", "HitListener", "Matcher",
           "RuleError", "RuleInput", "Target", "as_plan", "load_rules", "parse_rules"]
