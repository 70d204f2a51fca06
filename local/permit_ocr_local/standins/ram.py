"""RAM policy evaluation, as far as the stand-ins need it: explicit Deny wins, then any Allow; action and
resource patterns use ``*`` (any run of characters, '/' included) and ``?``, matched case-sensitively.
Conditions: ``StringLike`` and ``StringEquals`` on the request's context keys (e.g. ``oss:Prefix`` of a
listing); a statement whose condition key the request does not carry does not apply, as in RAM."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from typing import Any


def _as_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value or ()]


def _matches(patterns: Iterable[str], value: str) -> bool:
    # fnmatch treats '[' as a character class; RAM does not, so escape it in the pattern
    return any(fnmatch.fnmatchcase(value, p.replace("[", "[[]")) for p in patterns)


def _conditions_hold(condition: Mapping[str, Any] | None, context: Mapping[str, str]) -> bool:
    for operator, tests in (condition or {}).items():
        for name, patterns in tests.items():
            value = context.get(name)
            if value is None:
                return False
            if operator == "StringLike":
                if not _matches(_as_list(patterns), value):
                    return False
            elif operator == "StringEquals":
                if value not in _as_list(patterns):
                    return False
            else:  # an operator the stand-in does not know: never grant on it
                return False
    return True


def allowed(policy: Mapping[str, Any], action: str, resource: str,
            context: Mapping[str, str] | None = None) -> bool:
    verdict = False
    for st in policy.get("Statement") or ():
        if not (_matches(_as_list(st.get("Action")), action) and _matches(_as_list(st.get("Resource")), resource)):
            continue
        if not _conditions_hold(st.get("Condition"), context or {}):
            continue
        if st.get("Effect") == "Deny":
            return False
        if st.get("Effect") == "Allow":
            verdict = True
    return verdict
