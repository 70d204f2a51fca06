"""The review page's rules, pure: what a queue entry is, which fields a person may change, and the reviewed
document (corrected fields, recomputed ``normalized``/``checks``, the ``review`` block).

Nothing here does I/O; the store (store.py) reads and writes, the app (app.py) talks HTTP.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from permit_ocr.document import CHINA_TZ, rfc3339
from permit_ocr.normalize import FIELDS, check, review

MAX_FIELD_CHARS: Final = 200  # longer than any printed field; keeps a pasted page out of the document
MAX_REVIEWER_CHARS: Final = 64
CONFIDENCE: Final = "confidence"


class BadInput(ValueError):
    """A submitted value the document cannot take; the message names the field, never its value."""


@dataclass(frozen=True)
class QueueEntry:
    """One result waiting for a person: sorted by ``processed_at`` (oldest first)."""

    result_key: str
    result_etag: str
    processed_at: str
    reasons: tuple[str, ...]  # failed check codes and unparsed:<field>, as the function wrote them


@dataclass(frozen=True)
class Box:
    """A field's position on the image, as an SVG polygon ``points`` string."""

    field: str
    points: str


def needs_review(doc: Mapping[str, Any]) -> bool:
    return doc.get("type") == "result" and doc.get("needsReview") is True


def queue_entry(key: str, etag: str, doc: Mapping[str, Any]) -> QueueEntry | None:
    if not needs_review(doc):
        return None
    reasons = doc.get("reviewReasons")
    codes = tuple(str(r) for r in reasons) if isinstance(reasons, list) else ()
    return QueueEntry(key, etag, str(doc.get("processedAt") or ""), codes)


def ordered(entries: Sequence[QueueEntry], reason: str | None = None) -> list[QueueEntry]:
    """Oldest first (then by key, so the order is stable), optionally only those failing ``reason``."""
    kept = [e for e in entries if reason is None or reason in e.reasons]
    return sorted(kept, key=lambda e: (e.processed_at, e.result_key))


def reason_counts(entries: Sequence[QueueEntry]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for e in entries:
        for r in e.reasons:
            counts[r] = counts.get(r, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def next_after(entries: Sequence[QueueEntry], key: str, skipped: frozenset[str] = frozenset()) -> QueueEntry | None:
    """The entry after ``key`` in queue order, wrapping around, never ``key`` itself nor a skipped one."""
    keys = [e.result_key for e in entries]
    start = keys.index(key) + 1 if key in keys else 0
    for e in [*entries[start:], *entries[:start]]:
        if e.result_key != key and e.result_key not in skipped:
            return e
    return None


def fields_of(doc: Mapping[str, Any]) -> dict[str, str]:
    data = doc.get("data")
    inner = data.get("data") if isinstance(data, Mapping) else None
    inner = inner if isinstance(inner, Mapping) else {}
    return {name: v if isinstance(v := inner.get(name), str) else "" for name in FIELDS}


def confidences(doc: Mapping[str, Any]) -> dict[str, float | None]:
    out: dict[str, float | None] = dict.fromkeys(FIELDS)
    for entry in _prism(doc):
        key, prob = entry.get("key"), entry.get("valueProb")
        if key in out and isinstance(prob, int | float) and not isinstance(prob, bool):
            out[key] = prob
    return out


def boxes(doc: Mapping[str, Any]) -> list[Box]:
    """Each field's ``valuePos`` quadrilateral; entries without usable points are left out."""
    out = []
    for entry in _prism(doc):
        pos = entry.get("valuePos")
        if entry.get("key") not in FIELDS or not isinstance(pos, list) or len(pos) < 3:
            continue
        pts = [(p.get("x"), p.get("y")) for p in pos if isinstance(p, Mapping)]
        if len(pts) == len(pos) and all(isinstance(c, int | float) for xy in pts for c in xy):
            out.append(Box(str(entry["key"]), " ".join(f"{x:g},{y:g}" for x, y in pts)))
    return out


def image_size(doc: Mapping[str, Any]) -> tuple[int, int] | None:
    img = doc.get("image")
    if isinstance(img, Mapping) and isinstance(img.get("width"), int) and isinstance(img.get("height"), int):
        return int(img["width"]), int(img["height"])
    return None


def failed_checks(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The checks that failed, with their words (messages never hold card values), and unparsed fields."""
    checks = doc.get("checks")
    out = [dict(c) for c in checks if isinstance(c, Mapping) and c.get("passed") is False] if isinstance(
        checks, list) else []
    norm = doc.get("normalized")
    unparsed = norm.get("unparsed") if isinstance(norm, Mapping) else None
    for u in unparsed if isinstance(unparsed, list) else []:
        if isinstance(u, Mapping):
            out.append({"code": f"unparsed:{u.get('field')}", "message": f"{u.get('field')} could not be read "
                        f"({u.get('reason')})", "fields": [u.get("field")]})
    return out


def clean_reviewer(name: str) -> str:
    text = " ".join(name.split())
    if not text:
        raise BadInput("give your name before reviewing: it goes into the review block")
    if len(text) > MAX_REVIEWER_CHARS:
        raise BadInput(f"the reviewer name is longer than {MAX_REVIEWER_CHARS} characters")
    return text


def clean_fields(submitted: Mapping[str, str]) -> dict[str, str]:
    """The ten fields as submitted, stripped; a missing field is an error (a page that lost an input must not
    blank a value), and so is an over-long or multi-line one."""
    out = {}
    for name in FIELDS:
        if name not in submitted:
            raise BadInput(f"the form did not send {name}: reload the page")
        value = submitted[name].strip()
        if len(value) > MAX_FIELD_CHARS or "\n" in value or "\r" in value:
            raise BadInput(f"{name} is longer than {MAX_FIELD_CHARS} characters or spans several lines")
        out[name] = value
    return out


def changes(before: Mapping[str, str], after: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"field": f, "before": before.get(f, ""), "after": after[f]} for f in FIELDS
            if after[f] != before.get(f, "")]


def reviewed_document(doc: Mapping[str, Any], corrected: Mapping[str, str], *, reviewer: str,
                      now: datetime.datetime, min_prob: int) -> dict[str, Any]:
    """The stored result as a person approved it: ``data.data`` holds the corrected fields (the OCR's own
    reading of each changed field stays in ``review.changes[].before``), ``normalized`` and ``checks`` are
    recomputed on the review date, and ``needsReview`` is false: a person has looked.

    The OCR's ``valueProb`` is about its own reading, which a person has now confirmed or replaced, so the
    ``confidence`` check records that instead of failing again. Checks that still fail were accepted by the
    reviewer and are listed in ``review.acceptedChecks``.
    """
    before = fields_of(doc)
    out = {k: v for k, v in doc.items()}
    data = dict(doc.get("data") or {})
    data["data"] = {**(data.get("data") or {}), **corrected}
    out["data"] = data
    checked = review(data["data"], None, today=now.astimezone(CHINA_TZ).date(), min_prob=min_prob)
    checked["checks"] = [confirmed_confidence() if c["code"] == CONFIDENCE else c for c in checked["checks"]]
    still = [c["code"] for c in checked["checks"] if c["passed"] is False]
    still += [f"unparsed:{u['field']}" for u in checked["normalized"]["unparsed"]]
    out.update(normalized=checked["normalized"], checks=checked["checks"], needsReview=False, reviewReasons=[])
    out["review"] = {
        "reviewer": reviewer,
        "reviewedAt": rfc3339(now),
        "changes": changes(before, corrected),
        "previousReasons": list(doc.get("reviewReasons") or []),
        "acceptedChecks": still,
    }
    return out


def reviewed_by(doc: Mapping[str, Any]) -> str | None:
    """Words for a reviewer whose save lost to an earlier one; None when ``doc`` was not reviewed."""
    block = doc.get("review")
    if not isinstance(block, Mapping):
        return None
    return (f"{block.get('reviewer')} saved this result first (at {block.get('reviewedAt')}): your changes were "
            "not saved")


def confirmed_confidence() -> dict[str, Any]:
    return check(CONFIDENCE, True, "every field confirmed by a reviewer", fields=[])


def _prism(doc: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    data = doc.get("data")
    prism = data.get("prism_keyValueInfo") if isinstance(data, Mapping) else None
    return [e for e in prism if isinstance(e, Mapping)] if isinstance(prism, list) else []
