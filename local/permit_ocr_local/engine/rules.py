"""Rules between fields: which fields a permit kind prints, and what a value that breaks a rule costs.

A value that breaks a rule is kept but trusted less (it will need review): a validity span that is not 5 or
10 years less a day, a birth date after issue, a number that does not fit the permit kind.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import numpy as np

from .cues import AUTHORITY, FIELDS, TITLE_TAIWAN, place, span_is_regular
from .lines import CONFIRMED, Field, Piece


def printed(family: str) -> list[str]:
    """The fields a permit of ``family`` prints (a Hong Kong/Macao permit has no issue place)."""
    return [f for f in FIELDS if not (f == "issuePlace" and family == "hk_macao")]


def missing(found: dict[str, Field], family: str | None) -> list[str]:
    """The fields the permit kind prints that were not found (none known before the kind is)."""
    return [] if family is None else [f for f in printed(family) if f not in found]


def settled(found: dict[str, Field], family: str | None) -> bool:
    """Every field the permit kind prints was found, none picked among rivals or breaking a rule: reading
    more lines (the small print: labels, the subtitle) could not change the answer."""
    return family is not None and all(f in found and not found[f].doubted for f in printed(family))


def _nearest_to_number(found: dict[str, Field], cands: list[tuple[Piece, str]]) -> tuple[Piece, str]:
    """Several small numbers: the count is printed as two digits (a lone digit may be a fragment of a label),
    and beside the permit number: two digits first, then the nearest."""
    num = found.get("permitNumber")
    two = [pv for pv in cands if len(re.sub(r"\D", "", pv[0].text)) == 2] or cands
    if num is None or num.quad is None:
        return two[0]
    nx, ny = num.quad[:, 0].mean(), num.quad[:, 1].mean()
    return min(two, key=lambda pv: float(np.hypot(pv[0].cx - nx, 2 * (pv[0].cy - ny))))


def _cross_check(found: dict[str, Field], family: str | None) -> None:
    """Rules between fields: a value that breaks one is kept but trusted less (it will need review); a
    Hong Kong/Macao permit prints no issue place, so what reads as one there is something else."""
    if family == "hk_macao":
        found.pop("issuePlace", None)
    def doubt(name: str, factor: float) -> None:
        if name in found:
            found[name].score *= factor
            found[name].doubted = True

    period = found.get("validPeriod")
    if period is not None and not span_is_regular(period.value):
        doubt("validPeriod", 0.8)
    birth = found.get("birthDate")
    if birth is not None and period is not None and birth.value >= period.value[:10]:
        doubt("birthDate", 0.8)
    number = found.get("permitNumber")
    if number is not None and family is not None and number.value.isdigit() != (family == "taiwan"):
        doubt("permitNumber", 0.8)
    if family == "taiwan" and "issuePlace" in found and place(found["issuePlace"].value) is None:
        doubt("issuePlace", 0.85)
    name = found.get("nameCn")
    if name is not None and not 2 <= len(name.value) <= 4:
        doubt("nameCn", 0.85)


_UNLABELLED = 0.93  # a value no label names, on a card whose other values have theirs
_ODD_SIZE = 0.85  # a value printed much smaller or larger than the card's other values
_LABELLED_CARD = 3  # this many values named by their labels make a labelled card
_SPARSE = 6  # a read with fewer fields seen than this is a sparse one
_FAR = 5.0  # a value no label named, further than this many of its heights from any other line, stands apart


def where_from(found: dict[str, Field], pieces: list[Piece]) -> None:
    """Trust a value less for where it came from: on a card that labels its values, one that no label named
    (a date stamped beside the card, a number in the margin is read by its pattern alone); one whose print is
    far smaller or larger than the other values'; and one no label named that stands apart from every other
    line read on the card (a stamp in its corner, a caption below it), further than five of its heights, is
    suspect:
    its valueProb stays under the review line (the per-cue trust, refitted on right values, would undo a
    mere factor). The first two are not doubted: the value may well be right; it is only less sure."""
    values = {k: f for k, f in found.items() if f.quad is not None and k not in ("permitType", "nameCn")}
    labelled = sum(f.cue == "label+pattern" for f in values.values()) >= _LABELLED_CARD
    heights = [float(f.quad[:, 1].max() - f.quad[:, 1].min()) for f in values.values() if f.quad is not None]
    common = float(np.median(heights)) if len(heights) >= 3 else 0.0
    for f in values.values():
        if labelled and f.cue in ("pattern", "position"):
            f.score *= _UNLABELLED
        h = float(f.quad[:, 1].max() - f.quad[:, 1].min()) if f.quad is not None else 0.0
        if common and not 0.6 * common <= h <= 1.7 * common:
            f.score *= _ODD_SIZE
        if f.cue != "label+pattern" and f.quad is not None and len(pieces) >= 4 \
                and _apart(f.quad, pieces) > _FAR * max(h, 1.0):
            f.suspect = True


def sparse(found: dict[str, Field]) -> None:
    """A card that read few of its fields (glare, small print, or the wrong part of the frame taken for the
    card) vouches for none of them: every value is suspect (valueProb under the review line)."""
    if sum(f.quad is not None for f in found.values()) < _SPARSE:
        for f in found.values():
            f.suspect = True


def _apart(quad: np.ndarray[Any, Any], pieces: list[Piece]) -> float:
    """The gap between ``quad`` and the nearest piece that is not its own line (edge to edge)."""
    x0, y0, x1, y1 = (float(quad[:, 0].min()), float(quad[:, 1].min()), float(quad[:, 0].max()),
                      float(quad[:, 1].max()))
    gaps = [max(p.x0 - x1, x0 - p.x1, p.y0 - y1, y0 - p.y1, 0.0) for p in pieces
            if not (p.x0 <= (x0 + x1) / 2 <= p.x1 and p.y0 <= (y0 + y1) / 2 <= p.y1)]
    return min(gaps, default=0.0)


def self_checked(found: dict[str, Field], family: str | None, today: dt.date | None = None) -> None:
    """Trust a value that something besides the recognizer confirms as much as a sure read, whatever the
    confidence of its characters and however few fields the card gave (``sparse``): the printed title when the
    permit number's form names the same permit (H or M and 8 digits, or 8 digits for Taiwan); a validity period
    whose two dates keep the span rule (5 or 10 years less a day, a misread digit breaks it) and which began by
    today; the authority when its line was snapped to the one authority these permits name. Each is output in
    a canonical form or checked digit by digit, so one doubtful character does not make it doubtful. A value
    that was reconstructed, picked among rivals or broke a rule (``doubted``) is not confirmed. (The Latin name
    the Chinese name's pinyin spells is confirmed in ``second_guess.agree``, which holds the pinyin.)"""
    def confirm(name: str) -> None:
        f = found[name]
        f.score, f.suspect = max(f.score, CONFIRMED), False

    title, number = found.get("permitType"), found.get("permitNumber")
    if title is not None and title.quad is not None and number is not None and number.quad is not None \
            and not number.doubted and number.value.isdigit() == (title.value == TITLE_TAIWAN):
        confirm("permitType")
    period = found.get("validPeriod")
    if period is not None and not period.doubted and span_is_regular(period.value) \
            and period.value[:10] <= (today or dt.date.today()).strftime("%Y.%m.%d"):
        confirm("validPeriod")
    auth = found.get("issueAuthority")
    if auth is not None and not auth.doubted and auth.value == AUTHORITY:
        confirm("issueAuthority")
