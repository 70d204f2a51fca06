"""Normalize one permit's OCR fields and run the consistency checks a careful consumer would run.

``review(data, prism, today=..., min_prob=...)`` is pure and total: whatever the API returned (missing keys,
non-strings, garbage) it returns the same four keys and never raises, because a bug or an odd response here
must not lose an otherwise good OCR result. Rules come from docs/result-document.md and the reference
notes on the two permits (number formats, validity spans).

Check messages and ``unparsed`` reasons never contain the values read from the card, so they can be logged
and printed (``permit-ocr validate``) without leaking a name, birth date or permit number.

Deployed: stdlib only, and importing it must stay cheap.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

# The ten fields of the API's ``data`` object, all strings ("" when absent on the card).
FIELDS: Final = (
    "permitType", "nameCn", "nameEn", "birthDate", "sex",
    "validPeriod", "issueAuthority", "issuePlace", "permitNumber", "issueCount",
)  # fmt: skip

# Every check code, in the order ``checks`` lists them; every code is always present.
CHECK_CODES: Final = (
    "kind.known",
    "number.format",
    "number.kind",
    "issueCount.format",
    "birthDate.valid",
    "birthDate.notFuture",
    "validPeriod.valid",
    "validPeriod.order",
    "validPeriod.afterBirth",
    "validPeriod.span",
    "nameEn.format",
    "nameCn.present",
    "sex.valid",
    "confidence",
)

NORMALIZED_KEYS: Final = (
    "kind", "birthDate", "validFrom", "validTo", "expired", "surname", "givenNames",
    "sex", "permitNumber", "issueCount", "unparsed",
)  # fmt: skip

# ``unparsed[].reason`` values
MISSING: Final = "missing"  # key absent, null or empty string
NOT_STRING: Final = "notString"  # the API promises strings; anything else is not interpreted
BAD_FORMAT: Final = "badFormat"  # does not have the documented shape
INVALID_DATE: Final = "invalidDate"  # right shape, but no such day (2001.02.29)
UNKNOWN_TITLE: Final = "unknownTitle"  # permitType names neither 港澳 nor 台湾

HKMO: Final = "hkmo"  # family of the Hong Kong/Macao permit: the title cannot tell the two apart
TAIWAN: Final = "taiwan"

ADULT_AGE: Final = 18
HKMO_ADULT_YEARS: Final = 10
HKMO_MINOR_YEARS: Final = 5
TAIWAN_ADULT_YEARS: Final = 5  # minors: "shorter", length not documented -> span not decidable

_DATE_RE: Final = re.compile(r"(\d{4})\.(\d{2})\.(\d{2})")
_PERIOD_RE: Final = re.compile(r"(\d{4}\.\d{2}\.\d{2})\s*-\s*(\d{4}\.\d{2}\.\d{2})")
_HKMO_NUMBER_RE: Final = re.compile(r"[HM]\d{8}")
_TAIWAN_NUMBER_RE: Final = re.compile(r"\d{8}")
_HKMO_COUNT_RE: Final = re.compile(r"\d{2}")
_TAIWAN_COUNT_RE: Final = re.compile(r"\d*")
# SURNAME,GIVEN NAMES: A-Z words separated by single spaces, one comma (spaces around it tolerated)
_NAME_EN_RE: Final = re.compile(r"[A-Z]+(?: [A-Z]+)* ?, ?[A-Z]+(?: [A-Z]+)*")
_SEX: Final = {"男": "M", "女": "F"}


@dataclass(frozen=True)
class Field:
    """One ``data`` field as read: ``text`` is the stripped string, or None with ``problem`` set."""

    text: str | None
    problem: str | None = None


@dataclass(frozen=True)
class Period:
    start: datetime.date
    end: datetime.date


# --- reading the raw fields -----------------------------------------------------------------------------


def read_field(data: Mapping[str, Any], name: str) -> Field:
    value = data.get(name)
    if value is None:
        return Field(None, MISSING)
    if not isinstance(value, str):
        return Field(None, NOT_STRING)
    text = value.strip()
    return Field(text) if text else Field(None, MISSING)


def parse_date(text: str) -> tuple[datetime.date | None, str | None]:
    """``YYYY.MM.DD`` -> (date, None), or (None, reason)."""
    m = _DATE_RE.fullmatch(text)
    if not m:
        return None, BAD_FORMAT
    try:
        return datetime.date(int(m[1]), int(m[2]), int(m[3])), None
    except ValueError:
        return None, INVALID_DATE


def parse_period(text: str) -> tuple[Period | None, str | None]:
    """``YYYY.MM.DD-YYYY.MM.DD`` -> (Period, None), or (None, reason); both halves or nothing."""
    m = _PERIOD_RE.fullmatch(text)
    if not m:
        return None, BAD_FORMAT
    start, why_start = parse_date(m[1])
    end, why_end = parse_date(m[2])
    if start is None or end is None:
        return None, why_start or why_end
    return Period(start, end), None


def split_name_en(text: str) -> tuple[str, str] | None:
    """``"HE,CHENG"`` -> ("HE", "CHENG"); None unless there is exactly one comma with text on both sides."""
    parts = text.split(",")
    if len(parts) != 2:
        return None
    surname, given = parts[0].strip(), parts[1].strip()
    return (surname, given) if surname and given else None


# --- deciding the permit kind ---------------------------------------------------------------------------


def title_family(title: str | None) -> str | None:
    """港澳… (including the 2024 非中国籍 version) -> HKMO, 台湾… -> TAIWAN, anything else -> None."""
    if title is None:
        return None
    hkmo = "港澳" in title
    taiwan = "台湾" in title or "臺灣" in title
    if hkmo == taiwan:  # neither, or a title claiming both
        return None
    return HKMO if hkmo else TAIWAN


def number_family(number: str | None) -> str | None:
    """What the number's shape says: a leading H/M -> HKMO, a leading digit -> TAIWAN, else None."""
    if not number:
        return None
    if number[0] in "HM":
        return HKMO
    return TAIWAN if number[0].isascii() and number[0].isdigit() else None


def decide_kind(family: str | None, number: str | None) -> str | None:
    """hk/macao need the number's letter (the title is shared); taiwan needs only the title.

    Without a recognised title the letter alone still decides hk/macao (it is assigned by law), but eight
    bare digits do not make a Taiwan permit: an H/M permit whose letter was misread looks the same.
    """
    letter = number[0] if number else ""
    if family == TAIWAN:
        return "taiwan"
    if family in (HKMO, None) and letter == "H":
        return "hk"
    if family in (HKMO, None) and letter == "M":
        return "macao"
    return None


# --- dates ----------------------------------------------------------------------------------------------


def age_on(birth: datetime.date, day: datetime.date) -> int:
    """Completed years; a 29 February birthday completes on 1 March in common years."""
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def expected_ends(start: datetime.date, years: int) -> set[datetime.date]:
    """The day before the ``years``-th anniversary of ``start``.

    From 29 February the anniversary in a common year is 28 February or 1 March depending on convention;
    both are accepted rather than guessing which one the issuing office used.
    """
    one_day = datetime.timedelta(days=1)
    try:
        return {start.replace(year=start.year + years) - one_day}
    except ValueError:  # 29 February into a common year, or past year 9999
        pass
    try:
        feb28 = datetime.date(start.year + years, 2, 28)
    except ValueError:
        return set()  # beyond the calendar: no end date can match
    return {feb28 - one_day, feb28}


# --- checks ---------------------------------------------------------------------------------------------


def check(code: str, passed: bool | None, message: str, **extra: Any) -> dict[str, Any]:
    """passed: True/False, or None when the check does not apply or cannot be decided from what was read."""
    return {"code": code, "passed": passed, "message": message, **extra}


def check_kind(kind: str | None, family: str | None) -> dict[str, Any]:
    if kind is not None:
        return check("kind.known", True, f"permit kind is {kind}")
    if family == HKMO:
        return check("kind.known", False, "港澳 title but no H/M letter to tell Hong Kong from Macao")
    return check("kind.known", False, "permitType names neither 港澳 nor 台湾 and the number has no H/M letter")


def check_number_format(number: str | None, family: str | None) -> dict[str, Any]:
    code = "number.format"
    if number is None:
        return check(code, False, "permitNumber is missing or not a string")
    if family == HKMO:
        ok = _HKMO_NUMBER_RE.fullmatch(number) is not None
        return check(code, ok, r"Hong Kong/Macao number must match ^[HM]\d{8}$")
    if family == TAIWAN:
        ok = _TAIWAN_NUMBER_RE.fullmatch(number) is not None
        return check(code, ok, r"Taiwan number must match ^\d{8}$")
    ok = bool(_HKMO_NUMBER_RE.fullmatch(number) or _TAIWAN_NUMBER_RE.fullmatch(number))
    return check(code, ok, r"kind unknown: number must match ^[HM]\d{8}$ or ^\d{8}$")


def check_number_kind(title_fam: str | None, number: str | None) -> dict[str, Any]:
    code = "number.kind"
    num_fam = number_family(number)
    if title_fam is None or num_fam is None:
        return check(code, None, "not applicable: permitType or the number's first character not recognised")
    if title_fam == num_fam:
        return check(code, True, "number agrees with permitType (H/M for 港澳, digits for 台湾)")
    return check(code, False, "number disagrees with permitType (H/M for 港澳, digits for 台湾)")


def check_issue_count(count: Field, family: str | None) -> dict[str, Any]:
    code = "issueCount.format"
    if count.problem == NOT_STRING:
        return check(code, False, "issueCount is not a string")
    text = count.text or ""
    if family == HKMO:
        return check(code, _HKMO_COUNT_RE.fullmatch(text) is not None, "Hong Kong/Macao: two digits")
    if family == TAIWAN:
        return check(code, _TAIWAN_COUNT_RE.fullmatch(text) is not None, "Taiwan: empty or digits")
    return check(code, None, "not applicable: permit kind unknown")


def check_birth(birth: datetime.date | None, today: datetime.date) -> list[dict[str, Any]]:
    if birth is None:
        return [
            check("birthDate.valid", False, "birthDate is not a real YYYY.MM.DD date"),
            check("birthDate.notFuture", None, "not applicable: birthDate not parsed"),
        ]
    return [
        check("birthDate.valid", True, "birthDate is a real date"),
        check("birthDate.notFuture", birth <= today, "birthDate is not after the processing date"),
    ]


def check_span(period: Period, family: str | None, birth: datetime.date | None) -> dict[str, Any]:
    """The span is the validity rule minus one day; the holder's age at the start picks the rule."""
    code = "validPeriod.span"
    if family is None:
        return check(code, None, "not applicable: permit kind unknown")
    age = age_on(birth, period.start) if birth is not None else None
    if family == TAIWAN:
        if age is None:
            return check(code, None, "not applicable: birthDate unknown, the Taiwan rule for minors differs")
        if age < ADULT_AGE:
            return check(code, None, "not applicable: no documented Taiwan rule for holders under 18")
        return _span_result(period, TAIWAN_ADULT_YEARS, "Taiwan adult")
    if age is None:
        # Either rule could apply; a span matching neither is still decidably wrong.
        if any(period.end in expected_ends(period.start, y) for y in (HKMO_ADULT_YEARS, HKMO_MINOR_YEARS)):
            return check(code, None, "not applicable: birthDate unknown, span matches one of 5/10 years")
        return check(code, False, "span is neither 5 nor 10 years minus one day")
    if age >= ADULT_AGE:
        return _span_result(period, HKMO_ADULT_YEARS, "Hong Kong/Macao holder 18 or over")
    return _span_result(period, HKMO_MINOR_YEARS, "Hong Kong/Macao holder under 18")


def _span_result(period: Period, years: int, who: str) -> dict[str, Any]:
    ok = period.end in expected_ends(period.start, years)
    verb = "is" if ok else "is not"
    return check("validPeriod.span", ok, f"{who}: span {verb} {years} years minus one day")


def check_period(period: Period | None, family: str | None, birth: datetime.date | None) -> list[dict[str, Any]]:
    if period is None:
        na = "not applicable: validPeriod not parsed"
        return [
            check("validPeriod.valid", False, "validPeriod is not YYYY.MM.DD-YYYY.MM.DD with real dates"),
            check("validPeriod.order", None, na),
            check("validPeriod.afterBirth", None, na),
            check("validPeriod.span", None, na),
        ]
    ordered = period.start < period.end
    out = [
        check("validPeriod.valid", True, "validPeriod holds two real dates"),
        check("validPeriod.order", ordered, "validity starts before it ends"),
    ]
    if birth is None:
        out.append(check("validPeriod.afterBirth", None, "not applicable: birthDate not parsed"))
    else:
        out.append(check("validPeriod.afterBirth", period.start >= birth, "validity starts on or after birth"))
    if ordered:
        out.append(check_span(period, family, birth))
    else:
        out.append(check("validPeriod.span", None, "not applicable: validity does not start before it ends"))
    return out


def check_name_en(name: Field) -> dict[str, Any]:
    ok = name.text is not None and _NAME_EN_RE.fullmatch(name.text) is not None
    return check("nameEn.format", ok, "nameEn is upper-case Latin words with one comma: SURNAME,GIVEN NAMES")


def check_name_cn(name: Field) -> dict[str, Any]:
    return check("nameCn.present", name.text is not None, "nameCn is a non-empty string")


def check_sex(sex: str | None) -> dict[str, Any]:
    return check("sex.valid", sex is not None, "sex is 男 or 女")


def _prob(entry: Mapping[str, Any]) -> float | None:
    value = entry.get("valueProb")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value


def check_confidence(prism: Any, min_prob: int) -> dict[str, Any]:
    """Every prism_keyValueInfo entry's valueProb >= min_prob; a missing or non-numeric valueProb is low."""
    code = "confidence"
    if not isinstance(prism, Sequence) or isinstance(prism, str | bytes) or not prism:
        return check(code, None, "not applicable: no prism_keyValueInfo")
    low: list[str] = []
    for i, entry in enumerate(prism):
        if not isinstance(entry, Mapping):
            continue
        key = entry.get("key")
        prob = _prob(entry)
        if prob is None or not prob >= min_prob:  # `not >=` so NaN counts as low
            low.append(key if isinstance(key, str) else f"#{i}")
    if low:
        return check(code, False, f"valueProb below {min_prob}: {', '.join(low)}", fields=low)
    return check(code, True, f"every valueProb >= {min_prob}", fields=[])


# --- the entry point ------------------------------------------------------------------------------------


def review(
    data: Mapping[str, Any],
    prism: Sequence[Mapping[str, Any]] | None,
    *,
    today: datetime.date,
    min_prob: int,
) -> dict[str, Any]:
    """{"normalized": {...}, "checks": [...], "needsReview": bool, "reviewReasons": [...]} for one permit.

    ``today`` is the processing date (use the date in China, UTC+8: the card's dates are local); it only
    decides ``expired`` and ``birthDate.notFuture``. ``expired`` is reported but is not a review reason.
    """
    try:
        return _review(data, prism, today=today, min_prob=min_prob)
    except Exception as exc:  # a bug here must not cost the OCR result: flag it for a person instead
        return _failed_review(exc)


def _review(data: Any, prism: Any, *, today: Any, min_prob: int) -> dict[str, Any]:
    if isinstance(today, datetime.datetime):  # a datetime does not compare with a date
        today = today.date()
    fields = (
        {name: read_field(data, name) for name in FIELDS}
        if isinstance(data, Mapping)
        else {name: Field(None, MISSING) for name in FIELDS}
    )
    problems: dict[str, str] = {}

    def note(name: str, reason: str | None) -> None:
        if reason is not None:
            problems[name] = reason

    title, number, count = fields["permitType"], fields["permitNumber"], fields["issueCount"]
    title_fam = title_family(title.text)
    kind = decide_kind(title_fam, number.text)
    family = title_fam or (HKMO if kind in ("hk", "macao") else None)  # picks the number/span rules
    note("permitType", title.problem or (UNKNOWN_TITLE if title_fam is None else None))

    birth_field = fields["birthDate"]
    birth, birth_why = parse_date(birth_field.text) if birth_field.text is not None else (None, None)
    note("birthDate", birth_field.problem or birth_why)

    period_field = fields["validPeriod"]
    period, period_why = parse_period(period_field.text) if period_field.text is not None else (None, None)
    note("validPeriod", period_field.problem or period_why)

    name_field = fields["nameEn"]
    names = split_name_en(name_field.text) if name_field.text is not None else None
    note("nameEn", name_field.problem or (BAD_FORMAT if names is None else None))

    sex_field = fields["sex"]
    sex = _SEX.get(sex_field.text) if sex_field.text is not None else None
    note("sex", sex_field.problem or (BAD_FORMAT if sex is None else None))

    note("permitNumber", number.problem)
    # Taiwan permits print the issue count outside the number: empty is normal there.
    if count.problem == NOT_STRING or (count.problem == MISSING and family != TAIWAN):
        note("issueCount", count.problem)

    unparsed = [{"field": name, "reason": problems[name]} for name in FIELDS if name in problems]
    normalized: dict[str, Any] = {
        "kind": kind,
        "birthDate": birth.isoformat() if birth else None,
        "validFrom": period.start.isoformat() if period else None,
        "validTo": period.end.isoformat() if period else None,
        "expired": period.end < today if period else None,
        "surname": names[0] if names else None,
        "givenNames": names[1] if names else None,
        "sex": sex,
        "permitNumber": number.text,
        "issueCount": count.text,
        "unparsed": unparsed,
    }
    checks = [
        check_kind(kind, title_fam),
        check_number_format(number.text, family),
        check_number_kind(title_fam, number.text),
        check_issue_count(count, family),
        *check_birth(birth, today),
        *check_period(period, family, birth),
        check_name_en(name_field),
        check_name_cn(fields["nameCn"]),
        check_sex(sex),
        check_confidence(prism, min_prob),
    ]
    reasons = [c["code"] for c in checks if c["passed"] is False]
    reasons += [f"unparsed:{u['field']}" for u in unparsed]
    return {"normalized": normalized, "checks": checks, "needsReview": bool(reasons), "reviewReasons": reasons}


def _failed_review(exc: Exception) -> dict[str, Any]:
    """The same shape with nothing interpreted; the message names the exception type only (no values)."""
    normalized: dict[str, Any] = dict.fromkeys(NORMALIZED_KEYS)
    normalized["unparsed"] = []
    failed = check("normalize.error", False, f"normalization failed: {type(exc).__name__}")
    return {"normalized": normalized, "checks": [failed], "needsReview": True, "reviewReasons": ["normalize.error"]}
