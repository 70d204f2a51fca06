"""Shadow mode's comparison records (function/permit_ocr/shadow.py) summed up, pure: agreement per field and per
permit kind, what a cascade would have done (how many uploads it would have sent to the API, and how many it
would have kept from the engine with a field the API read otherwise), and what that would have cost.

Agreement is the engine against the API, not against the truth: where they differ either may be wrong. What a
cascade keeps from the engine is what nobody checks, so "kept, with a disagreement" is the rate to watch.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from permit_ocr.normalize import FIELDS

from .cost import API_PRICE_USD, ENGINE_MEMORY_MB, ENGINE_VCPU, Costs, costs

KINDS = ("hk", "macao", "taiwan")


@dataclass
class FieldTally:
    compared: int = 0
    agreed: int = 0
    sure: int = 0  # the engine's valueProb >= REVIEW_MIN_PROB: a cascade would keep the value unasked
    sure_agreed: int = 0


@dataclass
class KindTally:
    uploads: int = 0
    answered: int = 0  # the engine gave an answer to compare
    all_agreed: int = 0
    escalated: int = 0


@dataclass
class Summary:
    records: int = 0
    answered: int = 0
    refused: Counter[str] = field(default_factory=Counter)  # the engine's verdict: a cascade asks the API
    unavailable: Counter[str] = field(default_factory=Counter)  # the engine could not answer: a cascade waits
    fields: dict[str, FieldTally] = field(default_factory=lambda: {f: FieldTally() for f in FIELDS})
    kinds: dict[str, KindTally] = field(default_factory=dict)
    escalated: int = 0
    kept: int = 0
    kept_disagreeing: int = 0  # kept from the engine, yet a field differs from the API's reading
    engine_ms: list[int] = field(default_factory=list)
    min_probs: set[int] = field(default_factory=set)

    @property
    def decided(self) -> int:
        """Uploads whose cascade decision is known (the engine answered or refused)."""
        return self.escalated + self.kept


def summarize(records: Iterable[Mapping[str, Any]]) -> Summary:
    s = Summary()
    for rec in records:
        s.records += 1
        engine = rec.get("engine") or {}
        kind = str(rec.get("kind") or "unknown")
        k = s.kinds.setdefault(kind, KindTally())
        k.uploads += 1
        if isinstance(rec.get("reviewMinProb"), int):
            s.min_probs.add(rec["reviewMinProb"])
        escalate = rec.get("wouldEscalate")
        if escalate is None:
            s.unavailable[str(engine.get("code") or "unknown")] += 1
            continue
        if isinstance(engine.get("latencyMs"), int):
            s.engine_ms.append(engine["latencyMs"])
        fields = rec.get("fields") if isinstance(rec.get("fields"), Mapping) else None
        if fields is None:
            s.refused[str(engine.get("code") or "unknown")] += 1
        else:
            s.answered += 1
            k.answered += 1
            _tally_fields(s, fields, int(rec.get("reviewMinProb") or 90))
            k.all_agreed += all(v.get("agree") for v in fields.values())
        if escalate:
            s.escalated += 1
            k.escalated += 1
        else:
            s.kept += 1
            s.kept_disagreeing += bool(fields) and not all(v.get("agree") for v in (fields or {}).values())
    return s


def _tally_fields(s: Summary, fields: Mapping[str, Any], min_prob: int) -> None:
    for name, v in fields.items():
        t = s.fields.setdefault(name, FieldTally())
        t.compared += 1
        t.agreed += bool(v.get("agree"))
        prob = v.get("engineProb")
        if isinstance(prob, int) and prob >= min_prob:
            t.sure += 1
            t.sure_agreed += bool(v.get("agree"))


def _pct(n: int, d: int) -> str:
    return f"{100 * n / d:.1f} %" if d else "-"


def _table(head: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
             for r in [head, ["-" * w for w in widths], *rows]]
    return "\n".join(line.rstrip() for line in lines)


def cost_of(s: Summary, *, api_price_usd: float = API_PRICE_USD, memory_mb: int = ENGINE_MEMORY_MB,
            vcpu: float = ENGINE_VCPU) -> Costs | None:
    """Per 1,000 uploads, at the engine's mean measured call time; None without a decided upload."""
    if not s.decided:
        return None
    seconds = statistics.fmean(s.engine_ms) / 1000 if s.engine_ms else 0.0
    return costs(seconds, s.escalated / s.decided, api_price_usd=api_price_usd, memory_mb=memory_mb, vcpu=vcpu)


def render(s: Summary, *, api_price_usd: float = API_PRICE_USD, memory_mb: int = ENGINE_MEMORY_MB,
           vcpu: float = ENGINE_VCPU) -> str:
    if not s.records:
        return "no comparison records (is SHADOW_RATE above 0, and did uploads arrive since then?)"
    min_prob = "/".join(str(p) for p in sorted(s.min_probs)) or "90"
    out = [f"{s.records} comparison record(s): the engine answered {s.answered}, refused {sum(s.refused.values())}"
           + (f" ({', '.join(f'{c} {n}' for c, n in s.refused.most_common())})" if s.refused else "")
           + f", could not answer {sum(s.unavailable.values())}"
           + (f" ({', '.join(f'{c} {n}' for c, n in s.unavailable.most_common())})" if s.unavailable else ""), ""]
    rows = [[f, str(t.compared), _pct(t.agreed, t.compared), str(t.sure), _pct(t.sure_agreed, t.sure)]
            for f, t in s.fields.items()]
    total = FieldTally(*(sum(getattr(t, a) for t in s.fields.values()) for a in ("compared", "agreed", "sure",
                                                                                 "sure_agreed")))
    rows.append(["all fields", str(total.compared), _pct(total.agreed, total.compared), str(total.sure),
                 _pct(total.sure_agreed, total.sure)])
    out += [_table(["field", "compared", "agree", f"engine sure (>= {min_prob})", "agree when sure"], rows), ""]
    kinds = sorted(s.kinds, key=lambda k: (KINDS.index(k) if k in KINDS else len(KINDS), k))
    out += [_table(["permit kind (API's)", "uploads", "engine answered", "every field agrees", "cascade → API"],
                   [[k, str(s.kinds[k].uploads), str(s.kinds[k].answered),
                     _pct(s.kinds[k].all_agreed, s.kinds[k].answered),
                     _pct(s.kinds[k].escalated, s.kinds[k].uploads)] for k in kinds]), ""]
    out.append(f"cascade (OCR_BACKEND=cascade, REVIEW_MIN_PROB {min_prob}): of {s.decided} upload(s) it could decide, "
               f"{s.escalated} ({_pct(s.escalated, s.decided)}) would go to the API; {s.kept} would be kept from the "
               f"engine, {s.kept_disagreeing} of them ({_pct(s.kept_disagreeing, s.kept)}) with a field the API "
               "read otherwise")
    c = cost_of(s, api_price_usd=api_price_usd, memory_mb=memory_mb, vcpu=vcpu)
    if c is not None:
        secs = statistics.fmean(s.engine_ms) / 1000 if s.engine_ms else 0.0
        out.append(f"cost per 1,000 uploads (USD): API alone {c.api_usd:.2f} (at {api_price_usd:g} per call); "
                   f"cascade {c.cascade_usd:.2f} = API {c.escalated * c.api_usd:.2f} + engine {c.engine_usd:.3f} "
                   f"({secs:.2f} s a call at {memory_mb} MB / {vcpu:g} vCPU: {c.engine.vcpu_s:.0f} vCPU-s, "
                   f"{c.engine.gb_s:.0f} GB-s, 1,000 invocations; FC list price, tier 1)")
    return "\n".join(out)
