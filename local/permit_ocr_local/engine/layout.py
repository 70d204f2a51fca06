"""Field extraction that does not depend on one card layout.

Three kinds of cue decide each field, and losing one does not lose the field:
- **label**: a label word (姓名, 出生日期, Sex, Permit No., ...) wherever it is: in front of the value in the
  same detected box (``姓名：林嘉欣``, ``性别 女``), left of it on the same row, or above it;
- **pattern**: what the value looks like (one date, two ordered dates, ``H``/``M`` + 8 digits or 8 digits,
  ``SURNAME,GIVEN``, a two-digit count, 男/女, the authority's words, a place name);
- **position**: only where label and pattern leave a choice (a Chinese name or a place): the place shares
  the authority's row, the Chinese name sits next to the Latin name.
Reading order is never used; the engine hands us boxes on an upright, straightened card.

The pieces live beside this module: ``cues`` (patterns and label words), ``lines`` (values and labels of
a line), ``rules`` (between fields); ``block`` decides which lines belong to the card at all.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .cues import (
    _SUBTITLE,
    AUTHORITY,
    FIELDS,
    PLACES,
    TITLE_HK_MACAO,
    TITLE_HK_MACAO_FOREIGN,
    TITLE_TAIWAN,
    authority,
    birth_date,
    chinese,
    dates,
    is_stamp,
    issue_count,
    mended_period,
    name_en,
    name_en_without_comma,
    near_place,
    other_document,
    permit_number,
    place,
    sex,
    sex_after_label,
    span_is_regular,
    title_of,
    valid_period,
)
from .geometry import CARD_H
from .lines import Field, Line, Piece, attach_labels, split_line, sub_quad
from .rules import _cross_check, _nearest_to_number, missing, printed, settled, sparse, where_from

__all__ = ["AUTHORITY", "FIELDS", "PLACES", "TITLE_HK_MACAO", "TITLE_HK_MACAO_FOREIGN", "TITLE_TAIWAN", "Field",
           "Line", "Piece", "authority", "birth_date", "dates", "extract", "mended_period", "missing", "name_en",
           "permit_number", "place", "printed", "settled", "sex", "sex_after_label", "span_is_regular", "sub_quad",
           "valid_period"]

_AMBIGUOUS = 0.85  # a field decided without a label among several candidates of its pattern
_SURE = 0.9  # a read this confident is kept as read, never snapped to a near known value
_MIN_SCORE = 0.35  # recognizer confidence below which a piece is noise rather than a misread value

# --- deciding the fields ---------------------------------------------------------------------------

def _parse(name: str, text: str) -> str | None:
    if name == "validPeriod":
        return valid_period(text)
    if name == "birthDate":
        return birth_date(text)
    if name == "sex":
        return sex(text)
    if name == "permitNumber":
        n = permit_number(text)
        return n[0] if n else None
    if name == "issueCount":
        return issue_count(text)
    if name == "nameEn":
        return name_en(text)
    if name == "issueAuthority":
        return authority(text)
    if name == "issuePlace":
        return place(text) or chinese(text)
    if name == "nameCn":
        return chinese(text) if place(text) is None else None
    return None


# patterns that decide a field on their own, strongest first; a name or a place needs more (below)
_SELF_EVIDENT = ("validPeriod", "permitNumber", "nameEn", "issueAuthority", "birthDate", "sex", "issueCount")


def _take(found: dict[str, Field], name: str, p: Piece, value: str, cue: str) -> None:
    old = found.get(name)
    score = p.score_of(value)
    if old is None or score > old.score:
        found[name] = Field(value, score, p.quad, cue)
        p.used = True


def _mend_span(found: dict[str, Field], values: list[Piece], family: str | None) -> None:
    """A validity period read as two dates that break the span rule (a digit misread into another valid date,
    2033.03.03 for 2033.03.05) is mended as one with a date unreadable is: from the date that reads, the span
    rule and, where two mends fit as well, the digit the recognizer doubted. Kept as read (and doubted, by
    ``_cross_check``) when nothing decides."""
    f = found.get("validPeriod")
    if f is None or span_is_regular(f.value):
        return
    p = next((p for p in values if p.quad is f.quad), None)
    if p is not None and (v := mended_period(p.text, (5,) if family == "taiwan" else (5, 10), p.tops)) is not None:
        found["validPeriod"] = Field(v, f.score, f.quad, f.cue)
        _rebuilt(found["validPeriod"])


def _own(p: Piece, value: str) -> Piece:
    """``value``, read last in ``p`` (a count printed after the permit number in its box), as a piece of its own:
    its own characters' box and confidence, not the whole box's (the count's valuePos was the number's, and
    the number's weakest digit, or a digit taken from a guess, was held against it)."""
    at = p.text.rfind(value)
    if at < 0:
        return p
    tops = p.tops[at:at + len(value)] if p.tops is not None else None
    return Piece(sub_quad(p, at, at + len(value), len(p.text)), value, p.score_of(value), p.hint, p.hint_how,
                 tops=tops)


_REBUILT = 0.8  # a value rebuilt by a rule is never as sure as a read


def _rebuilt(f: Field, factor: float = _REBUILT) -> None:
    """``f`` was rebuilt by a rule or a guess, not read as it is (a period from the span rule, a comma put back,
    a place snapped to a known one, a count cut from its misread label, the permit's kind from its number's
    form): trusted less, and suspect, so its valueProb stays under the review line. A factor alone does not
    keep it there: the per-cue trust above 1 undid it (a rebuilt period at 0.79 x 1.24 was 98)."""
    f.score *= factor
    f.doubted = f.suspect = True


def extract(lines: Sequence[Line]) -> tuple[dict[str, Field], str | None]:
    """Fields found on the card and the permit family (``hk_macao``, ``taiwan`` or None)."""
    found: dict[str, Field] = {}
    titles = [(ln, t) for ln in lines if (t := title_of(ln.text)) is not None]
    title_line = None
    if titles:
        title_line, t = max(titles, key=lambda lt: lt[0].h * (lt[0].x1 - lt[0].x0))
        found["permitType"] = Field(t, title_line.score, title_line.quad, "pattern")

    values: list[Piece] = []
    labels: list[Piece] = []
    for ln in lines:
        if ln is title_line or _SUBTITLE.search(ln.text) or is_stamp(ln.text):
            continue  # not a value: the subtitle, a stamp's date and time
        vals, labs = split_line(ln)
        values += vals
        labels += labs
    attach_labels(values, labels)
    values = [p for p in values if p.score >= _MIN_SCORE]  # noise: guilloche, a photo's edge, a smudge

    # 1. a label and the value's pattern agree: strongest
    for p in values:
        if p.hint and (v := _parse(p.hint, p.text)) is not None:
            _take(found, p.hint, p, v, "label+pattern")
        elif p.hint == "issueCount" and (m := re.fullmatch(r"\d{1,2}(\d{2})", p.text)):
            # "次数 1509": the count's Latin label read as digits (Is -> 15) in front of it; flagged
            _take(found, "issueCount", _own(p, m.group(1)), m.group(1), "label+pattern")
            _rebuilt(found["issueCount"], _AMBIGUOUS)
            p.used = True
        if p.hint == "permitNumber" and (n := permit_number(p.text)) and n[1]:
            _take(found, "issueCount", _own(p, n[1]), n[1], "label+pattern")
    # 2. unmistakable patterns, whatever the labels say (a label may have been misread or missing)
    for name in _SELF_EVIDENT:
        if name in found:
            continue
        cands = [(p, v) for p in values if not p.used and (v := _parse(name, p.text)) is not None]
        if name == "validPeriod" and not cands:  # one date misread: the other and the span rule give it
            spans = (5,) if "permitType" in found and found["permitType"].value == TITLE_TAIWAN else (5, 10)
            mended = [(p, v) for p in values if not p.used and (v := mended_period(p.text, spans, p.tops)) is not None]
            if mended:
                p, v = mended[0]
                _take(found, name, p, v, "pattern")
                _rebuilt(found[name])
            continue
        if name == "permitNumber":
            cands = [(p, v) for p, v in cands if len(re.sub(r"\D", "", p.text)) >= 8]
        if name == "issueCount":
            cands = [(p, v) for p, v in cands if len(re.sub(r"\D", "", p.text)) <= 2]
        if not cands:
            continue
        p, v = _nearest_to_number(found, cands) if name == "issueCount" else cands[0]
        _take(found, name, p, v, "pattern")
        if len(cands) > 1:  # the pattern alone had a choice to make: trust the pick less
            found[name].score *= _AMBIGUOUS
            found[name].doubted = True
        if name == "permitNumber" and (n := permit_number(p.text)) and n[1] and "issueCount" not in found:
            _take(found, "issueCount", _own(p, n[1]), n[1], "pattern")
    if "nameEn" not in found:
        for p in values:
            if not p.used and (v := name_en_without_comma(p.text)) is not None:
                _take(found, "nameEn", p, v, "pattern")
                _rebuilt(found["nameEn"])
                break
    # 3. Chinese name and place: a place name, the authority's row, the Latin name's neighbourhood
    cjk = [p for p in values if not p.used and chinese(p.text)]
    if "issuePlace" not in found:
        places = [(p, v) for p in values if not p.used and (v := place(p.text))]
        auth = found.get("issueAuthority")
        same_row = [p for p in cjk if auth is not None and auth.quad is not None
                    and abs(p.cy - float(auth.quad[:, 1].mean())) < 0.04 * CARD_H]
        if places:
            _take(found, "issuePlace", places[0][0], places[0][1], "pattern")
        elif same_row:
            p = same_row[0]
            near = near_place(p.text) if p.score < _SURE else None
            _take(found, "issuePlace", p, near or p.text, "position")
            if near:  # a correction: never as sure as a read
                _rebuilt(found["issuePlace"], _AMBIGUOUS)
    if "nameCn" not in found:
        rest = [p for p in cjk if not p.used and not place(p.text)]
        en = found.get("nameEn")
        if rest:
            if en is not None and en.quad is not None:
                ey = float(en.quad[:, 1].mean())
                p = min(rest, key=lambda p: abs(p.cy - ey))
            else:
                p = min(rest, key=lambda p: p.cy)
            _take(found, "nameCn", p, chinese(p.text) or p.text, "position")
            if len(rest) > 1:
                found["nameCn"].score *= _AMBIGUOUS
                found["nameCn"].doubted = True
    if "sex" not in found:
        for p in values:
            if not p.used and (v := sex_after_label(p.text)) is not None:
                _take(found, "sex", p, v, "pattern")
                found["sex"].score *= _AMBIGUOUS
                found["sex"].doubted = True
                break

    family = None
    if "permitType" in found:
        family = "taiwan" if found["permitType"].value == TITLE_TAIWAN else "hk_macao"
    elif other_document([ln.text for ln in lines]):
        return {}, None  # a permit is its front: without its title, another document's words say what this is
    elif "permitNumber" in found:
        number = found["permitNumber"]
        family = "taiwan" if number.value.isdigit() else "hk_macao"
        # the title unreadable (glare, off the edge): the number's form tells the permit; a guess to review,
        # as the number cannot tell the 非中国籍 version
        found["permitType"] = Field(TITLE_TAIWAN if family == "taiwan" else TITLE_HK_MACAO, number.score, None,
                                    "pattern")
        _rebuilt(found["permitType"])
    _mend_span(found, values, family)
    _cross_check(found, family)
    where_from(found, values + labels)
    sparse(found)
    return found, family
