"""The chaos run's invariants, checked against what the stand-ins hold: one outcome per current version, no
image paid twice, nothing owed, no personal data in the logs."""

from __future__ import annotations

import contextlib
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson

from permit_ocr.config import Config
from permit_ocr.layout import META_ETAG, META_PENDING, etag_form, outputs_for
from permit_ocr_local.standins.oss.errors import OssError
from permit_ocr_local.standins.oss.state import ObjectMeta, OssState

from .workload import EXPECT, PRECHECKED, SAME_BYTES_KINDS, Item, Workload

PII_FIELDS = ("nameCn", "nameEn", "permitNumber", "birthDate")



@dataclass
class Observed:
    """Everything the run saw, for ``check``."""

    workload: Workload
    wall_s: float
    idle: bool
    stats: Counter[str]  # the invoker's: events, invocations, retries, failed
    trigger_events: int
    loop_keys: list[str]
    direct_events: Counter[str]  # seq / concurrent / stale / malformed
    statuses: Counter[str]  # per-record statuses from the handler's answers
    unhandled: Counter[str]  # exception types that left the handler (RetryLater is the designed one)
    log_lines: list[str]
    failed_payloads: list[str]  # requestPayload of each onFailure message
    results_topic: list[str]  # bodies published on the results topic
    state: OssState
    bucket: str
    cfg: Config  # the function's configuration: where it writes
    ocr_calls: list[tuple[str, int]]  # (sha256, status) of every request that carried image bytes
    billed: Counter[str]
    injected: Counter[str]
    upload_failures: list[str]
    sinks: str
    crashes: list[tuple[str, bool]] = field(default_factory=list)  # (key, paid then died)
    backend: str = "api"  # OCR_BACKEND of the run
    engine_calls: int = 0  # the engine function's invocations (the FC stand-in's log)


@dataclass
class Row:
    label: str
    value: str
    ok: bool | None = None  # None: information, no invariant


@dataclass(frozen=True)
class Violation:
    label: str
    count: int
    detail: str

    def __str__(self) -> str:
        return f"{self.label}: {self.count}" + (f" — {self.detail}" if self.detail else "")


@dataclass
class Report:
    rows: list[Row]
    violations: list[Violation]
    outcomes: Counter[str]  # final outcome -> keys

    @property
    def ok(self) -> bool:
        return not self.violations


def _head(state: OssState, bucket: str, key: str) -> ObjectMeta | None:
    try:
        return state.head(bucket, key)
    except OssError:
        return None


def _short(key: str) -> str:
    return key if len(key) <= 100 else f"{key[:50]}…{key[-40:]}"


def _examples(keys: list[str], n: int = 5) -> str:
    shown = "; ".join(keys[:n])
    return shown + (f" (+{len(keys) - n} more)" if len(keys) > n else "")


def _payload_keys(payload: str) -> list[str]:
    try:
        return [str(r["oss"]["object"]["key"]) for r in orjson.loads(payload)["events"]]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return []


def final_state(obs: Observed, item: Item) -> tuple[str, dict[str, Any]]:
    """What the image's CURRENT version ended as: result | error:<code> | transient | lost | stale | both."""
    etag = item.etag
    info: dict[str, Any] = {}
    out = outputs_for(obs.cfg, obs.bucket, item.key)
    res = _head(obs.state, out.bucket, out.result_key)
    err = _head(obs.state, out.bucket, out.error_key)
    mine = [m for m in (res, err) if m is not None and etag and etag_form(m.user_meta.get(META_ETAG)) == etag]
    info["pending"] = any(m.user_meta.get(META_PENDING) for m in mine)
    if res in mine and err in mine and res is not None:
        info["both"] = True
    if res is not None and res in mine:
        doc = orjson.loads(obs.state.get(out.bucket, res.key)[1])
        truth = item.truths[-1]
        fields = (doc.get("data") or {}).get("data") or {}
        info["mismatch"] = truth is not None and fields.get("permitNumber") != truth.get("permitNumber")
        info["backend"] = str((doc.get("ocr") or {}).get("backend") or "")
        return "result", info
    if err is not None and err in mine:
        e = orjson.loads(obs.state.get(out.bucket, err.key)[1])["error"]
        info["error"] = e
        return ("transient" if e["transient"] else f"error:{e['code']}"), info
    info["stale"] = res is not None or err is not None  # only outputs describing an older version
    return "lost", info


class _PiiIndex:
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


def check(obs: Observed) -> Report:
    w = obs.workload
    rows: list[Row] = []
    bad: list[Violation] = []

    def inv(label: str, value: int, detail: str = "") -> None:
        rows.append(Row(label, str(value), value == 0))
        if value:
            bad.append(Violation(label, value, detail))

    failed_keys = {k for p in obs.failed_payloads for k in _payload_keys(p)}
    outcomes: Counter[str] = Counter()
    lost: list[str] = []
    stale: list[str] = []
    wrong: list[str] = []
    both: list[str] = []
    mismatch: list[str] = []
    pending: list[str] = []
    unpublished: list[str] = []
    failed_end: Counter[str] = Counter()
    published = _published(obs.results_topic)
    uploaded = [it for it in w.items if it.etag]
    for item in uploaded:
        outcome, info = final_state(obs, item)
        outcomes[outcome] += 1
        ident = f"{item.kind} {_short(item.key)!r} etag {item.etag}"
        if outcome == "lost":
            (stale if info.get("stale") else lost).append(ident)
        elif outcome not in EXPECT[item.kind] and not (outcome == "transient" and item.key in failed_keys):
            code = info.get("error", {})
            wrong.append(f"{ident} ended as {outcome}" + (f" ({code.get('message', '')[:80]})" if code else ""))
        if info.get("both"):
            both.append(ident)
        if info.get("mismatch"):
            mismatch.append(ident)
        if info.get("pending") and item.key not in failed_keys:  # owed after onFailure: a replay sends it
            pending.append(ident)
        if ("mns" in obs.sinks and outcome != "lost" and outcome != "transient"
                and (item.key, item.etag) not in published and item.key not in failed_keys):
            unpublished.append(f"{ident} ({outcome})")
        if item.key in failed_keys:
            failed_end[outcome] += 1

    n_results = outcomes["result"]
    n_errors = sum(v for k, v in outcomes.items() if k.startswith("error:") or k == "transient")
    rows += [
        Row("uploads (PUTs)", f"{w.uploads} ({len(w.items)} keys, {len(w.items) - len(uploaded)} not uploaded)"),
        Row("events delivered", f"{obs.stats['events']} (trigger {obs.trigger_events}, "
            + ", ".join(f"{k} {v}" for k, v in sorted(obs.direct_events.items())) + ")"),
        Row("invocations", f"{obs.stats['invocations']} (FC retries {obs.stats['retries']})"),
        Row("results", str(n_results)),
        Row("error records", f"{n_errors} (transient {outcomes['transient']})"),
    ]
    inv("lost (no result/error record for the current ETag)", len(lost) + len(stale),
        _examples(lost + [s + " (outputs describe an older version)" for s in stale]))
    paid = sum(obs.billed.values())
    # each upload of a version may be paid once (a re-upload of the same bytes after a delete is a new upload);
    # a crash between the paid answer and the stored document is the one documented way to pay once more
    # per key: each upload may be paid once (a re-upload of the same bytes after a delete is a new upload; in
    # url mode, an older version's call may have read the newer bytes, then its result was discarded), plus
    # one per crash between the paid answer and the stored document (the one documented window)
    window = Counter(k for k, paid_then_died in obs.crashes if paid_then_died)
    over: list[str] = []
    allowed_total = 0
    for it in w.items:
        allowed = 1 + sum(1 for n in range(1, len(it.versions))
                          if it.kind in SAME_BYTES_KINDS or it.versions[n] != it.versions[n - 1])
        allowed_total += allowed
        got = sum(obs.billed.get(s, 0) for s in {_sha(v) for v in it.versions})
        if got > allowed + window[it.key]:
            over.append(f"{it.kind} {_short(it.key)!r} ({it.dup or 'no'} duplicate) billed {got}x for {allowed}")
    rows.append(Row("paid OCR calls / image versions uploaded", f"{paid} / {allowed_total}"))
    rows.append(Row("instances crashed mid-invocation",
                    f"{len(obs.crashes)} ({sum(window.values())} between the paid answer and the stored document)"))
    inv("extra paid calls", len(over), _examples(over))
    if obs.backend != "api":
        _cascade_rows(obs, rows, inv)
    inv("loops (events for our own outputs)", len(obs.loop_keys), _examples(obs.loop_keys))
    pii = _PiiIndex({t[f] for t in w.truths() for f in PII_FIELDS if t.get(f)})
    hits = [(n, v) for n, line in enumerate(obs.log_lines) for v in pii.hits(line)]
    inv("PII hits in logs", len(hits), _examples([f"line {n}: {v}" for n, v in hits]))
    rows.append(Row("log lines scanned", str(len(obs.log_lines))))
    unexpected = [ln for ln in obs.log_lines if '"unexpected failure"' in ln]
    inv("unhandled exceptions", sum(obs.unhandled.values()) + len(unexpected),
        f"escaped the handler: {dict(obs.unhandled)}; caught by its safety net: "
        f"{dict(Counter(orjson.loads(ln).get('code') for ln in unexpected))}")
    rows.append(Row("final FC failures (onFailure)", f"{obs.stats['failed']} events; their images ended as "
                    + (", ".join(f"{k} {v}" for k, v in sorted(failed_end.items())) or "-")))
    inv("  of which without a result or error record", failed_end["lost"])
    inv("wrong outcome (vs. the kind of upload)", len(wrong), _examples(wrong))
    inv("result and error record both current", len(both), _examples(both))
    inv("result content of another version", len(mismatch), _examples(mismatch))
    if "mns" in obs.sinks:
        inv("MNS message still owed (pending flag)", len(pending), _examples(pending))
        inv("outcome never published on MNS", len(unpublished), _examples(unpublished))
    kinds_by_sha = {_sha(v): it.kind for it in w.items for v in it.versions}
    leaks = [s for s, _ in obs.ocr_calls if kinds_by_sha.get(s) in PRECHECKED]
    inv("OCR calls the precheck should have stopped", len(leaks))
    inv("handler still busy at the end", 0 if obs.idle else 1)
    inv("uploads the harness could not make", len(obs.upload_failures), _examples(obs.upload_failures))
    rows.append(Row("malformed events (no image; not in 'lost')",
                    f"{obs.direct_events['malformed']} (answered 'malformed' records: {obs.statuses['malformed']})"))
    rows.append(Row("record statuses", ", ".join(f"{k} {v}" for k, v in sorted(obs.statuses.items()))))
    rows.append(Row("final outcomes", ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items()))))
    rows.append(Row("injected faults", ", ".join(f"{k} {v}" for k, v in sorted(obs.injected.items()))))
    rows.append(Row("wall time", f"{obs.wall_s:.1f} s ({w.uploads / max(obs.wall_s, 1e-9):.0f} uploads/s)"))
    return Report(rows, bad, outcomes)


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def _published(bodies: list[str]) -> set[tuple[str, str]]:
    out: set[tuple[str, str]] = set()
    for body in bodies:
        with contextlib.suppress(orjson.JSONDecodeError, AttributeError, TypeError):
            src = orjson.loads(body).get("source") or {}
            out.add((str(src.get("key")), etag_form(str(src.get("etag") or "")) or ""))
    return out




def _cascade_rows(obs: Observed, rows: list[Row], inv: Any) -> None:
    """OCR_BACKEND=engine|cascade: the API is paid only for what the engine doubted (or could not read), and each
    result says who answered."""
    w = obs.workload
    sure = [it for it in w.items if it.kind in ("permit", "hostile", "crash") and not it.doubt]
    paid_for_sure = [f"{it.kind} {_short(it.key)!r}" for it in sure
                     if any(obs.billed.get(_sha(v), 0) for v in it.versions)]
    by: Counter[str] = Counter()
    wrong_by: list[str] = []
    for it in (it for it in w.items if it.etag and it.kind in ("permit", "hostile", "crash")):
        outcome, info = final_state(obs, it)
        if outcome != "result":
            continue
        backend = info["backend"]
        by[backend] += 1
        want = "engine" if obs.backend == "engine" or not it.doubt else "api"
        if backend != want:
            wrong_by.append(f"{it.kind} {_short(it.key)!r}: {backend or 'no backend'}, not {want}")
    rows.append(Row(f"OCR_BACKEND={obs.backend}: engine calls / permits doubted",
                    f"{obs.engine_calls} / {sum(1 for it in w.items if it.doubt)}"))
    rows.append(Row("  permit results answered by", ", ".join(f"{k} {v}" for k, v in sorted(by.items())) or "-"))
    inv("  paid calls for permits the engine was sure of", len(paid_for_sure), _examples(paid_for_sure))
    inv("  results answered by the wrong recognizer", len(wrong_by), _examples(wrong_by))
