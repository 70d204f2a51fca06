"""The chaos run's table, as docs/chaos.md explains it."""

from __future__ import annotations

from .invariants import Report


def render(report: Report) -> str:
    width = max(len(r.label) for r in report.rows)
    lines = [f"{'':3}{'metric':<{width}}  value", f"{'':3}{'-' * width}  {'-' * 40}"]
    for r in report.rows:
        mark = "" if r.ok is None else ("ok" if r.ok else "!!")
        lines.append(f"{mark:3}{r.label:<{width}}  {r.value}")
    if report.violations:
        lines += ["", "INVARIANTS VIOLATED:"] + [f"  - {v}" for v in report.violations]
    else:
        lines += ["", "all invariants hold"]
    return "\n".join(lines)
