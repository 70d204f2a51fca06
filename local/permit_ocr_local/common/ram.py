"""RAM policy evaluation, as far as the stand-ins need it: explicit Deny wins, then any Allow; action and
resource patterns use ``*`` (any run of characters, '/' included) and ``?``, matched case-sensitively."""

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


def allowed(policy: Mapping[str, Any], action: str, resource: str) -> bool:
    verdict = False
    for st in policy.get("Statement") or ():
        if not (_matches(_as_list(st.get("Action")), action) and _matches(_as_list(st.get("Resource")), resource)):
            continue
        if st.get("Effect") == "Deny":
            return False
        if st.get("Effect") == "Allow":
            verdict = True
    return verdict
