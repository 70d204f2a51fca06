"""The log scan for personal data: every name, birth date and permit number the run's truths hold, looked for in
every line the function logged."""

from __future__ import annotations

import re


class PiiIndex:
    """Finds any of many literal values in log text: candidates by their first two characters."""

    def __init__(self, values: set[str]) -> None:
        self._by_prefix: dict[str, list[str]] = {}
        for v in values:
            if len(v) >= 2:
                self._by_prefix.setdefault(v[:2], []).append(v)
        firsts = "".join(sorted({v[0] for v in values if len(v) >= 2}))
        self._starts = re.compile("[" + re.escape(firsts) + "]") if firsts else None

    def hits(self, line: str) -> list[str]:
        found: list[str] = []
        if self._starts is None:
            return found
        for m in self._starts.finditer(line):
            i = m.start()
            for v in self._by_prefix.get(line[i : i + 2], ()):
                if line.startswith(v, i) and not (v.isdigit() and _in_word(line, i, len(v))):
                    found.append(v)
        return found


def _in_word(line: str, i: int, n: int) -> bool:
    """A digits-only value inside a longer alphanumeric run (a hex id) is a coincidence, not a leak."""
    return (i > 0 and line[i - 1].isalnum()) or (i + n < len(line) and line[i + n].isalnum())
