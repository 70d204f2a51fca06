"""The chaos run's invariants, checked against what the stand-ins hold once the end stage is over: one final
outcome per current version with that version's content (stored, and as published), nothing pending, paid
calls above uploads only in the documented windows (each counted), the review page's saves kept, refusals of
the world never taken as verdicts, no personal data in the logs."""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import orjson

from permit_ocr.config import Config
from permit_ocr.layout import KIND_RECEIPT, META_ETAG, META_KIND, META_PENDING, etag_form, outputs_for
from permit_ocr_local.standins.oss.errors import OssError
from permit_ocr_local.standins.oss.state import ObjectMeta, OssState

from . import cascade
from .pii import PiiIndex
from .reviewers import REVIEWER
from .scripts import Saves
from .tap import WINDOWS, Windows
from .workload import EXPECT, PRECHECKED, SAME_BYTES_KINDS, Item, Workload

PII_FIELDS = ("nameCn", "nameEn", "permitNumber", "birthDate")
Version = tuple[str, str, str]  # bucket, key, ETag


@dataclass
class Observed:
    """Everything the run saw, for ``check``."""

    workload: Workload
    phases: dict[str, float]  # wall seconds per phase; flags ("busy after ...") when a wait ran out
    stats: Counter[str]  # the invokers': events, invocations, retries, failed ("api ..." for FC's API)
    trigger_events: int
    loop_keys: list[str]
    direct_events: Counter[str]  # deliveries by origin: seq / concurrent / stale / malformed / batch / ...
    statuses: Counter[str]  # per-record statuses from the handler's answers
    unhandled: Counter[str]  # exception types that left the handler (RetryLater is the designed one)
    answers: dict[str, list[dict[str, Any]]]  # origin -> the handler's answers to those deliveries
    log_lines: list[str]
    failure_messages: int  # onFailure messages (FC gave an event up)
    published: list[str]  # bodies published on the results topic, in order
    state: OssState
    bucket: str
    cfg: Config  # the function's configuration: where it writes
    ocr_calls: list[tuple[str, int]]  # (sha256, status) of every request that carried image bytes
    billed: Counter[str]
    injected: Counter[str]
    upload_failures: list[str]
    sinks: str
    layout: str
    crashes: list[tuple[str, str, bool]]  # (bucket, key, paid then died)
    windows: Windows
    saves: Saves
    destroyed: list[str]  # stored outcomes a refusal of the world replaced
    notes: Counter[str]  # what the world and the scripts did
    harness_errors: list[str]
    ending: list[dict[str, int]]
    valve_holds: int
    permission_changes: int
    backend: str = "api"  # OCR_BACKEND of the run
    engine_calls: int = 0  # the engine function's synchronous invocations (the FC stand-in's log)


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
    windows: dict[str, tuple[int, int]] = field(default_factory=dict)  # window -> (occurrences, paid again)

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


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Final:
    """What an item's current version ended as, and what is stored for it."""

    outcome: str  # result | error:<code> | transient | lost
    kind: str = ""  # the stored object's kind: result | receipt | error | error-retrying
    pending: bool = False
    both: bool = False  # a result and an error record both describe it
    stale: bool = False  # lost, and only outputs of an older version are there
    doc: dict[str, Any] | None = None  # the stored document (a result or an error record; not a receipt)


def final_state(obs: Observed, bucket: str, item: Item) -> Final:
    etag = item.etag
    out = outputs_for(obs.cfg, bucket, item.key)
    res = _head(obs.state, out.bucket, out.result_key)
    err = _head(obs.state, out.bucket, out.error_key)
    mine = [m for m in (res, err) if m is not None and etag and etag_form(m.user_meta.get(META_ETAG)) == etag]
    pending = any(bool(m.user_meta.get(META_PENDING)) for m in mine)
    both = res in mine and err in mine and res is not None
    if res is not None and res in mine:
        kind = res.user_meta.get(META_KIND) or "result"
        doc = None if kind == KIND_RECEIPT else _doc(obs.state, out.bucket, res.key)
        return Final("result", kind, pending, both, doc=doc)
    if err is not None and err in mine:
        doc = _doc(obs.state, out.bucket, err.key) or {}
        e = doc.get("error") or {}
        outcome = "transient" if e.get("transient") else f"error:{e.get('code')}"
        return Final(outcome, err.user_meta.get(META_KIND) or "error", pending, both, doc=doc)
    return Final("lost", stale=res is not None or err is not None)


def _doc(state: OssState, bucket: str, key: str) -> dict[str, Any] | None:
    with contextlib.suppress(OssError, orjson.JSONDecodeError):
        doc = orjson.loads(state.get(bucket, key)[1])
        return doc if isinstance(doc, dict) else None
    return None


def _fields(doc: dict[str, Any]) -> dict[str, Any]:
    return (doc.get("data") or {}).get("data") or {}


def published_by_version(bodies: list[str]) -> dict[Version, list[dict[str, Any]]]:
    """Every message on the results topic, by the image version its source names, in publish order."""
    out: dict[Version, list[dict[str, Any]]] = defaultdict(list)
    for body in bodies:
        with contextlib.suppress(orjson.JSONDecodeError, AttributeError, TypeError):
            doc = orjson.loads(body)
            src = doc.get("source") or {}
            out[(str(src.get("bucket")), str(src.get("key")), etag_form(str(src.get("etag") or "")) or "")].append(doc)
    return out


class _Checker:
    def __init__(self, obs: Observed) -> None:
        self.obs = obs
        self.rows: list[Row] = []
        self.bad: list[Violation] = []

    def inv(self, label: str, found: list[str] | int, detail: str = "") -> None:
        n = found if isinstance(found, int) else len(found)
        self.rows.append(Row(label, str(n), n == 0))
        if n:
            self.bad.append(Violation(label, n, detail or ("" if isinstance(found, int) else _examples(found))))

    def info(self, label: str, value: str) -> None:
        self.rows.append(Row(label, value))


def check(obs: Observed) -> Report:
    w = obs.workload
    c = _Checker(obs)
    bucket_of = {id(it): it.bucket or obs.bucket for it in w.items}
    uploaded = [it for it in w.items if it.etag]
    published = published_by_version(obs.published)
    mns = "mns" in obs.sinks
    saves = {(b, k, e): fields for b, k, e, fields in obs.saves.landed}
    outcomes: Counter[str] = Counter()
    lost, wrong, both, pending, unpublished, content, overwritten, after_review, again = ([] for _ in range(9))
    finals: dict[int, Final] = {}
    for item in uploaded:
        b = bucket_of[id(item)]
        assert item.etag
        version = (b, item.key, item.etag)
        f = finals[id(item)] = final_state(obs, b, item)
        outcomes[f.outcome] += 1
        ident = f"{item.kind} {b}/{_short(item.key)!r} etag {item.etag}"
        if f.outcome == "lost":
            lost.append(ident + (" (outputs describe an older version)" if f.stale else ""))
        elif f.outcome not in EXPECT[item.kind]:
            e = (f.doc or {}).get("error") or {}
            wrong.append(f"{ident} ended as {f.outcome}" + (f" ({str(e.get('message', ''))[:80]})" if e else ""))
        if f.both:
            both.append(ident)
        if f.pending:
            pending.append(ident)
        truth = item.truths[-1]
        reviewed = saves.get(version)
        if f.doc is not None and f.outcome == "result":
            content += _content_problems(ident, f.doc, truth, reviewed, "stored")
            if reviewed is not None and (f.doc.get("review") or {}).get("reviewer") != REVIEWER:
                overwritten.append(ident)
        if mns and f.outcome != "lost":
            msgs = published.get(version, [])
            want = "result" if f.outcome == "result" else "error"
            if not any(m.get("type") == want for m in msgs):
                unpublished.append(f"{ident} ({f.outcome})")
            if sum(1 for m in msgs if m.get("type") == want and not m.get("review")) > 1:
                again.append(ident)  # at-least-once: allowed, counted (a reviewer's save publishes its own)
            for m in msgs:
                if m.get("type") == "result":
                    content += _content_problems(ident, m, truth, None, "published")
            if reviewed is not None:
                kinds = [bool(m.get("review")) for m in msgs if m.get("type") == "result"]
                if True in kinds and False in kinds[kinds.index(True):]:
                    after_review.append(ident)
    n_results = outcomes["result"]
    n_errors = sum(v for k, v in outcomes.items() if k.startswith("error:") or k == "transient")
    st = obs.stats
    c.info("uploads (PUTs)", f"{w.uploads} ({len(w.items)} keys in 2 source buckets, "
           f"{len(w.items) - len(uploaded)} not uploaded; layout {obs.layout}, sinks {obs.sinks})")
    c.info("events delivered", f"{st['events'] + st['api events']} (trigger {obs.trigger_events}, "
           + ", ".join(f"{k} {v}" for k, v in sorted(obs.direct_events.items()))
           + f", replay/backfill {st['api events']})")
    c.info("invocations", f"{st['invocations'] + st['api invocations']} (FC retries "
           f"{st['retries'] + st['api retries']}, gave up {st['failed'] + st['api failed']})")
    c.info("results", f"{n_results} ({sum(1 for f in finals.values() if f.kind == KIND_RECEIPT)} receipts)")
    c.info("error records", f"{n_errors} (transient {outcomes['transient']})")
    c.inv("lost (no result/error record for the current ETag)", lost)
    c.inv("wrong outcome (vs. the kind of upload; no transient record may stay)", wrong)
    c.inv("result and error record both current", both)
    c.inv("result content of another version (stored or published)", content)
    c.inv("message still owed at the end (pending flag)", pending)
    if mns:
        c.inv("outcome never published on MNS", unpublished)
        c.info("versions whose outcome was published twice or more (at-least-once)", str(len(again)))
    report_windows = _paid(c, obs, bucket_of)
    if obs.backend != "api":
        _recognizer_rows(c, obs, finals)
    _review_rows(c, obs, overwritten, after_review, mns)
    _world_rows(c, obs)
    _safety_rows(c, obs, w)
    c.info("final outcomes", ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())))
    c.info("record statuses", ", ".join(f"{k} {v}" for k, v in sorted(obs.statuses.items())))
    c.info("injected faults", ", ".join(f"{k} {v}" for k, v in sorted(_fold_rules(obs.injected).items())))
    c.info("end stage (faults off)", "; ".join(
        f"round {r['round']}: {r['failed events']} failed events, replayed {r['replayed']}, "
        f"backfilled {r['backfilled']}" for r in obs.ending) or "-")
    timed = {k: v for k, v in obs.phases.items() if not k.startswith("busy")}
    c.info("wall time", " + ".join(f"{k} {v:.1f} s" for k, v in timed.items())
           + f" = {sum(timed.values()):.1f} s ({w.uploads / max(sum(timed.values()), 1e-9):.1f} uploads/s)")
    return Report(c.rows, c.bad, outcomes, report_windows)


def _content_problems(ident: str, doc: dict[str, Any], truth: dict[str, str] | None,
                      reviewed: dict[str, str] | None, where: str) -> list[str]:
    if truth is None:
        return []
    fields = _fields(doc)
    if fields.get("permitNumber") != truth.get("permitNumber"):
        return [f"{ident}: {where} permitNumber is not this version's"]
    if reviewed is not None and doc.get("review") and fields.get("birthDate") != reviewed.get("birthDate"):
        return [f"{ident}: {where} review lost its fields"]
    return []


def _paid(c: _Checker, obs: Observed, bucket_of: dict[int, str]) -> dict[str, tuple[int, int]]:
    """Per key: paid calls above the uploads of distinct versions must each be explained by a documented window
    that happened to that key. Per key, not per content: in url mode an older version's call may read the newer
    bytes, whose result is then discarded."""
    attributed: Counter[str] = Counter()
    over: list[str] = []
    allowed_total = 0
    for it in obs.workload.items:
        allowed = (1 + sum(1 for n in range(1, len(it.etags)) if it.kind in SAME_BYTES_KINDS
                           or it.versions[n] != it.versions[n - 1])) if it.etags else 0
        allowed_total += allowed
        got = sum(obs.billed.get(s, 0) for s in {_sha(v) for v in it.versions})
        extra = got - allowed
        if extra <= 0:
            continue
        b = bucket_of[id(it)]
        for window, n in obs.windows.allowance(b, it.key).items():
            used = min(extra, n)
            attributed[window] += used
            extra -= used
        if extra > 0:
            over.append(f"{it.kind} {b}/{_short(it.key)!r} ({it.dup or 'no'} duplicate) billed {got}x for {allowed}")
    paid = sum(obs.billed.values())
    c.info("paid OCR calls / image versions uploaded", f"{paid} / {allowed_total}")
    windows: dict[str, tuple[int, int]] = {}
    for window, text in WINDOWS.items():
        windows[window] = (obs.windows.total(window), attributed[window])
        c.info(f"  window ({window}) occurrences, paid again", f"{windows[window][0]}, {attributed[window]}: {text}")
    crashed = f"{len(obs.crashes)} ({sum(1 for *_, died in obs.crashes if died)} between the paid answer and a write)"
    c.info("instances killed mid-invocation", crashed)
    c.inv("paid above uploads outside the documented windows", over)
    return windows


def _recognizer_rows(c: _Checker, obs: Observed, finals: dict[int, Final]) -> None:
    """OCR_BACKEND=engine|cascade: the API paid only for what the engine doubted; each result names who answered."""
    w = obs.workload
    answered = {id(it): str(((f.doc or {}).get("ocr") or {}).get("backend") or "")
                for it in w.items if (f := finals.get(id(it))) and f.outcome == "result" and f.kind != KIND_RECEIPT}
    paid_for_sure, wrong_by, by = cascade.check(w.items, answered, obs.billed, obs.backend)
    c.info(f"OCR_BACKEND={obs.backend}: engine calls / keys the engine doubts",
           f"{obs.engine_calls} / {sum(1 for it in w.items if it.doubt)}")
    c.info("  results answered by", ", ".join(f"{k} {v}" for k, v in sorted(by.items())) or "-")
    c.inv("  paid calls for permits the engine was sure of", paid_for_sure)
    c.inv("  results answered by the wrong recognizer", wrong_by)


def _review_rows(c: _Checker, obs: Observed, overwritten: list[str], after_review: list[str], mns: bool) -> None:
    s = obs.saves
    c.info("review saves (the page as a second writer)", f"{len(s.landed)} landed; "
           + (", ".join(f"{k} {v}" for k, v in sorted(s.refused.items())) or "none refused"))
    c.inv("landed saves overwritten by the function (same version)", overwritten)
    if mns:
        c.inv("unreviewed message published after the reviewed one", after_review)


def _world_rows(c: _Checker, obs: Observed) -> None:
    answers = obs.answers
    changes = [*(f"{k} {v}" for k, v in sorted(obs.notes.items())), f"policy changes {obs.permission_changes}",
               f"publishes held {obs.valve_holds}"]
    c.info("world changes", ", ".join(changes))
    c.inv("stored outcome replaced after a 403/KMS refusal", obs.destroyed)
    refused = Counter(o["status"] for a in answers.get("refused", []) for o in a.get("outcomes", []))
    c.info("  deliveries while the world refused (after the result)",
           ", ".join(f"{k} {v}" for k, v in sorted(refused.items())) or "-")
    lifecycle = Counter(o["status"] for a in answers.get("lifecycle", []) for o in a.get("outcomes", []))
    c.info("  deliveries 30 days on, markers expired", ", ".join(f"{k} {v}" for k, v in sorted(lifecycle.items()))
           or "-")
    c.inv("  of which recognized again (paid or recorded)", lifecycle["result"] + lifecycle["error"])
    takeover = Counter(o["status"] for a in answers.get("takeover", []) for o in a.get("outcomes", []))
    c.info("  taker-overs of a claim expired mid-publish", ", ".join(f"{k} {v}" for k, v in sorted(takeover.items()))
           or "-")
    batch = Counter(o["status"] + (f" {o['code']}" if o["status"] == "retrying" and o.get("code") else "")
                    for a in answers.get("batch", []) for o in a.get("outcomes", []))
    c.info("many-record events near the deadline",
           f"{obs.direct_events['batch']} events, {sum(len(g) for g in obs.workload.batches.values())} records; "
           "per record: " + ", ".join(f"{k} {v}" for k, v in sorted(batch.items())))


def _safety_rows(c: _Checker, obs: Observed, w: Workload) -> None:
    c.inv("loops (events for our own outputs)", obs.loop_keys)
    pii = PiiIndex({t[f] for t in w.truths() for f in PII_FIELDS if t.get(f)})
    hits = [f"line {n}: {v}" for n, line in enumerate(obs.log_lines) for v in pii.hits(line)]
    c.inv("PII hits in logs", hits)
    c.info("log lines scanned", str(len(obs.log_lines)))
    unexpected = [ln for ln in obs.log_lines if '"unexpected failure"' in ln]
    c.inv("unhandled exceptions", sum(obs.unhandled.values()) + len(unexpected),
          f"escaped the handler: {dict(obs.unhandled)}; caught by its safety net: "
          f"{dict(Counter(orjson.loads(ln).get('code') for ln in unexpected))}")
    kinds_by_sha = {_sha(v): it.kind for it in w.items for v in it.versions}
    c.inv("OCR calls the precheck should have stopped", sum(1 for s, _ in obs.ocr_calls
                                                            if kinds_by_sha.get(s) in PRECHECKED))
    c.inv("handler still busy at a wait's end", [k for k in obs.phases if k.startswith("busy")])
    c.inv("uploads the harness could not make", obs.upload_failures)
    c.inv("harness errors (scheduled actions that failed)", obs.harness_errors)
    c.info("malformed events (no image; not in 'lost')",
           f"{obs.direct_events['malformed']} (answered 'malformed' records: {obs.statuses['malformed']})")
    c.info("FC gave up (onFailure messages)", str(obs.failure_messages))


def _fold_rules(injected: Counter[str]) -> Counter[str]:
    """Scripted rules by service ("oss:rule#12" -> "oss:scripted"), random rates as they are."""
    out: Counter[str] = Counter()
    for k, v in injected.items():
        out[re.sub(r":rule#\d+$", ":scripted rules", k)] += v
    return out


__all__ = ["Final", "Observed", "Report", "Row", "Violation", "check", "final_state", "published_by_version"]
