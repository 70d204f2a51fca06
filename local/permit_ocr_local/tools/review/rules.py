"""The review page's rules, pure: what a queue entry is, which fields a person may change, and the reviewed
document (corrected fields, recomputed ``normalized``/``checks``, the ``review`` block).

Nothing here does I/O; the store (store.py) reads and writes, the app (app.py) talks HTTP.
"""

from __future__ import annotations

import datetime
import re
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
                        f"({u.get('reason')})", "fields": [u.get("field")], "reason": u.get("reason")})
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


def reviewed_by(doc: Mapping[str, Any], tz: datetime.tzinfo | None = None) -> str | None:
    """Words for a reviewer whose save lost to an earlier one; None when ``doc`` was not reviewed. The time is
    the reviewer's local time (the page is served on their own machine)."""
    block = doc.get("review")
    if not isinstance(block, Mapping):
        return None
    return (f"{block.get('reviewer')} saved this result first (at {local_time(block.get('reviewedAt'), tz)}): "
            "your changes were not saved")


# --- what the page shows: the reviewers' language, not the JSON's ----------------------------------------------

# each field as the permit prints its label (Chinese), then in English; the input keeps its JSON name too
LABELS: Final[Mapping[str, tuple[str, str]]] = {
    "permitType": ("证件类型", "Permit type"),
    "nameCn": ("中文姓名", "Name in Chinese"),
    "nameEn": ("英文姓名", "Name in Latin letters"),
    "birthDate": ("出生日期", "Date of birth"),
    "sex": ("性别", "Sex"),
    "validPeriod": ("有效期限", "Valid period"),
    "issueAuthority": ("签发机关", "Issuing authority"),
    "issuePlace": ("签发地点", "Place of issue"),
    "permitNumber": ("证件号码", "Permit number"),
    "issueCount": ("换证次数", "Issue count"),
}

# a failed check in plain words: (short Chinese, short English for the queue's filters, a sentence in English)
CHECK_WORDS: Final[Mapping[str, tuple[str, str, str]]] = {
    "kind.known": ("证件类型不明", "permit kind unknown",
                   "The permit's kind (Hong Kong/Macao or Taiwan) cannot be told from its title and number."),
    "number.format": ("证件号码格式不符", "permit number's form",
                      "The permit number does not have the printed form: H or M and 8 digits for Hong Kong and "
                      "Macao, 8 digits for Taiwan."),
    "number.kind": ("号码与证件类型不符", "number vs. permit kind",
                    "The permit number does not fit the kind of permit (H or M for Hong Kong and Macao, digits "
                    "for Taiwan)."),
    "issueCount.format": ("换证次数格式不符", "issue count's form", "The issue count is not two digits."),
    "birthDate.valid": ("出生日期无效", "date of birth invalid", "The date of birth is not a real date."),
    "birthDate.notFuture": ("出生日期晚于今天", "date of birth in the future", "The date of birth is in the future."),
    "validPeriod.valid": ("有效期限无效", "valid period invalid", "The valid period is not two real dates."),
    "validPeriod.order": ("有效期限先后颠倒", "valid period reversed", "The valid period ends before it starts."),
    "validPeriod.afterBirth": ("有效期限早于出生", "valid period before birth",
                               "The valid period starts before the holder was born."),
    "validPeriod.span": ("有效期限与年龄不符", "valid period vs. age",
                         "The valid period does not fit the holder's age: a permit runs {years} years less a "
                         "day for a {who}."),
    "nameEn.format": ("英文姓名格式不符", "Latin name's form",
                      "The name in Latin letters is not SURNAME,GIVEN NAMES in capitals."),
    "nameCn.present": ("中文姓名为空", "Chinese name empty", "The name in Chinese is empty."),
    "sex.valid": ("性别不是男或女", "sex not 男/女", "The sex is neither 男 nor 女."),
    "confidence": ("识别把握不足", "low confidence", "The OCR was unsure (under {min} %) of: {fields}."),
    "normalize.error": ("无法校验", "not checked", "The fields could not be checked."),
}
UNPARSED_WORDS: Final[Mapping[str, str]] = {
    "missing": "it is empty", "notString": "it is not text", "badFormat": "it is not in the printed form",
    "invalidDate": "there is no such date", "unknownTitle": "the title names neither 港澳 nor 台湾",
}
CORRECTED: Final = ("已更正", "corrected")


def field_label(name: str) -> tuple[str, str]:
    return LABELS.get(name, (name, name))


def reason_words(code: str) -> tuple[str, str]:
    """A queue reason (a check code or ``unparsed:<field>``) as (Chinese, English) short words."""
    if code.startswith("unparsed:"):
        zh, en = field_label(code.partition(":")[2])
        return f"{zh}无法读取", f"{en.lower()} unreadable"
    zh, en, _ = CHECK_WORDS.get(code, (code, code, code))
    return zh, en


def check_sentence(c: Mapping[str, Any]) -> str:
    """A failed check (as ``failed_checks`` lists it) as one plain English sentence; the card's values never
    appear in check messages, so neither do they here."""
    code, message = str(c.get("code", "")), str(c.get("message", ""))
    if code.startswith("unparsed:"):
        _zh, en = field_label(code.partition(":")[2])
        return f"{en} could not be read: {UNPARSED_WORDS.get(str(c.get('reason')), 'it is not in the printed form')}."
    if code not in CHECK_WORDS:
        return message
    sentence = CHECK_WORDS[code][2]
    if code == "validPeriod.span":
        years = re.search(r"(\d+) years", message)
        who = ("holder 18 or over" if "18 or over" in message else "holder under 18" if "under 18" in message
               else "Taiwan resident 18 or over" if "Taiwan" in message else "holder of this age")
        if years is None:
            return "The valid period is neither 5 nor 10 years less a day."
        return sentence.format(years=years.group(1), who=who)
    if code == "confidence":
        low = re.search(r"below (\d+)", message)
        names = ", ".join(f"{field_label(f)[0]} {field_label(f)[1]}" for f in c.get("fields") or [])
        return sentence.format(min=low.group(1) if low else "the threshold", fields=names or "some fields")
    return sentence


def local_time(text: Any, tz: datetime.tzinfo | None = None) -> str:
    """An RFC 3339 time as the reviewer's local time (``tz``: this machine's zone), e.g. 2026-12-07 18:30."""
    try:
        when = datetime.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return str(text or "")
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return when.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")


def corrected_fields(doc: Mapping[str, Any]) -> set[str]:
    """Fields a reviewer changed: their OCR confidence is about a reading that is no longer the value."""
    block = doc.get("review")
    changes = block.get("changes") if isinstance(block, Mapping) else None
    return {str(c.get("field")) for c in changes or [] if isinstance(c, Mapping)}


def confirmed_confidence() -> dict[str, Any]:
    return check(CONFIDENCE, True, "every field confirmed by a reviewer", fields=[])


def _prism(doc: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    data = doc.get("data")
    prism = data.get("prism_keyValueInfo") if isinstance(data, Mapping) else None
    return [e for e in prism if isinstance(e, Mapping)] if isinstance(prism, list) else []
