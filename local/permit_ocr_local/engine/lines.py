"""A card's detected lines, split into values and the labels that name them.

A label followed by text in the same box names that text (``姓名：林嘉欣``, ``性别 女``); a bare label names
the nearest value right of it on its row, else the one below it. Misread labels are matched loosely
(``cues.fuzzy_label``) and a colon still separates label from value.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .cues import _AUTH_THEN_PLACE, _CJK, _DATE, _DATE_START, _LABEL_RE, LABELS, authority, fuzzy_label, normalize
from .geometry import CARD_W, f32

Quad = np.ndarray[Any, Any]

@dataclass
class Line:
    quad: Quad  # (4, 2) TL, TR, BR, BL in card coordinates
    text: str
    score: float

    @property
    def x0(self) -> float:
        return float(self.quad[:, 0].min())

    @property
    def x1(self) -> float:
        return float(self.quad[:, 0].max())

    @property
    def y0(self) -> float:
        return float(self.quad[:, 1].min())

    @property
    def y1(self) -> float:
        return float(self.quad[:, 1].max())

    @property
    def cx(self) -> float:
        return (self.x0 + self.x1) / 2

    @property
    def cy(self) -> float:
        return (self.y0 + self.y1) / 2

    @property
    def h(self) -> float:
        return self.y1 - self.y0


CONFIRMED = 0.97  # the score of a value an independent check confirms (rules.self_checked, second_guess.agree)


@dataclass
class Field:
    value: str
    score: float  # 0..1: how much to trust the value (becomes valueProb)
    quad: Quad | None
    cue: str = "pattern"  # what decided it: label, pattern, position (joined with + when several agreed)
    doubted: bool = False  # picked among several candidates, or breaks a rule between fields
    # where it came from puts it in doubt whatever the recognizer's confidence (it stands apart from the card's
    # other lines, or the card read too few fields to vouch for it): valueProb stays under the review line
    suspect: bool = False


@dataclass
class Piece(Line):
    """A value-bearing part of a line, with the field a label in front of or above it names."""

    hint: str | None = None
    hint_how: str = ""  # "same box", "left", "above"
    used: bool = field(default=False)
    tops: list[float] | None = None  # the recognizer's confidence in each character of ``text``, when known

    def score_of(self, value: str) -> float:
        """The confidence in ``value`` taken from this piece: its own characters' when it is a part of the
        text (a sex character after a misread label), else the piece's."""
        if self.tops is None or not value or (at := self.text.rfind(value)) < 0:
            return self.score
        return float(np.mean(self.tops[at:at + len(value)]))


# --- splitting lines into labels and values --------------------------------------------------------

def _count_after(rest: str) -> bool:
    """``rest`` (what follows a date in its box) is a short misread label and a one- or two-digit count;
    never a second date (a validity period is one box)."""
    rest = rest.strip()
    return re.fullmatch(r"(?:.{0,12}\D)?\d{1,2}", rest) is not None and re.search(r"\d{3}", rest) is None


def sub_quad(line: Line, start: int, end: int, total: int) -> Quad:
    """The part of an axis-aligned line box holding characters [start, end) (by character share)."""
    w = line.x1 - line.x0
    a, b = line.x0 + w * start / max(1, total), line.x0 + w * end / max(1, total)
    return f32([[a, line.y0], [b, line.y0], [b, line.y1], [a, line.y1]])


def _misread_label_start(head: str) -> int:
    """Where a misread label at the end of ``head`` begins (len(head) when there is none)."""
    for n in (4, 3, 2):
        if len(head) >= n and fuzzy_label(head[-n:]) is not None:
            return len(head) - n
    return 0 if len(head) <= 5 else len(head)  # a short head before a colon is a label we cannot read


def char_scores(line: Line) -> list[float] | None:
    """The recognizer's confidence in each character of ``line`` when it was kept (a read line's
    alternatives), else None."""
    alts = getattr(line, "alts", None)
    if alts is None or len(alts) != len(line.text):
        return None
    top = getattr(alts, "top", None)  # Guesses: without sorting the ~18,000 classes
    return [float(top(i)) if top is not None else float(alts[i][0][1]) for i in range(len(alts))]


def split_line(line: Line) -> tuple[list[Piece], list[Piece]]:
    """(values, bare labels): a label followed by text in the same box names that text."""
    raw = unicodedata.normalize("NFKC", line.text)
    tops = char_scores(line) if len(raw) == len(line.text) else None

    def value(a: int, b: int, text: str, hint: str | None) -> Piece:
        """The value ``text`` read in characters [a, b) of the line, scored by the recognizer's confidence
        in its own characters (a label misread beside it, 性別女 or Hs女, says nothing of the value)."""
        kept = [] if tops is None else [(ch, t) for ch, t in zip(raw[a:b], tops[a:b], strict=True) if not ch.isspace()]
        at = "".join(ch for ch, _ in kept).find(text) if kept else -1
        own = [t for _, t in kept[at:at + len(text)]] if at >= 0 else None
        return Piece(sub_quad(line, a, b, len(raw)), text, float(np.mean(own)) if own else line.score, hint,
                     "same box" if hint else "", tops=own)

    values: list[Piece] = []
    labels: list[Piece] = []
    pos, hint, label_at = 0, None, 0
    spans = [(m.start(), m.end(), LABELS[int(next(k for k, v in m.groupdict().items() if v)[1:])][1])
             for m in _LABEL_RE.finditer(raw)]
    cuts = [*spans, (len(raw), len(raw), None)]
    for start, end, nxt in cuts:
        chunk = raw[pos:start]
        while chunk.startswith((":", " ")):
            chunk, pos = chunk[1:], pos + 1
        if colon := re.search(r"(?<!\d):|:(?!\d)", chunk):  # "label：value", the label unreadable (not 11:12)
            head, tail = chunk[:colon.start()], chunk[colon.end():]
            cut = _misread_label_start(normalize(head))
            if head[:cut].strip():
                values.append(value(pos, pos + cut, normalize(head[:cut]), hint))
            hint = fuzzy_label(normalize(head[cut:])) if cut < len(head) else hint
            pos += len(head) + 1
            chunk = tail
        if (k := chunk.find("管理局")) >= 0 and len(normalize(chunk[k + 3:])) >= 2:  # authority, then place
            values.append(value(pos, pos + k + 3, normalize(chunk[:k + 3]), hint))
            pos, chunk, hint = pos + k + 3, chunk[k + 3:], None
        elif (ap := _AUTH_THEN_PLACE.fullmatch(chunk)) and authority(normalize(ap.group(1))):
            # the same, the authority misread (公安部出入境开理局上海): a known place ends it
            values.append(value(pos, pos + ap.end(1), normalize(ap.group(1)), hint))
            pos, chunk, hint = pos + ap.start(2), ap.group(2), None
        if m := re.fullmatch(r"\s*\S{1,6}\s+(\d{1,2})\s*", chunk):  # "9证式R 01": a misread label, a count
            pos, chunk = pos + m.start(1), m.group(1)
        if (d := _DATE.search(chunk) or _DATE_START.search(chunk)) and _count_after(chunk[d.end():]):
            # "1968.01.25 hsue 02", "1956.09151sste 02", "1995.07.3数 lsso02": a date (or what is left of
            # it), then a count whose label was misread, in one box
            values.append(value(pos, pos + d.end(), normalize(chunk[:d.end()]), hint))
            # where the count's digits begin (junk dropped; "1979.05.0604": not inside the date)
            digits = max(d.end(), len(chunk.rstrip().rstrip("0123456789")))
            pos, chunk, hint = pos + digits, chunk[digits:], None
        text = normalize(chunk).strip(":：.,-_/")
        if hint is None and nxt is not None and _CJK.match(text or "-") and len(text) <= 2:
            text = ""  # a fragment glued to the label after it (美文 of 英文姓名) is no value
        if text and hint is None and (guess := fuzzy_label(text)) is not None:
            labels.append(Piece(sub_quad(line, pos, start, len(raw)), "", line.score, guess))
        elif text:
            values.append(value(pos, start, text, hint))
        elif hint is not None:
            labels.append(Piece(sub_quad(line, label_at, pos, len(raw)), "", line.score, hint))
        pos, hint, label_at = end, nxt, start
    return values, labels


def attach_labels(values: list[Piece], labels: list[Piece]) -> None:
    """A bare label names the nearest unlabelled value right of it on its row, else the one below it."""
    for lab in labels:
        right = [v for v in values if v.hint is None and v.x0 >= lab.x1 - 4
                 and abs(v.cy - lab.cy) < 0.6 * max(v.h, lab.h) and v.x0 - lab.x1 < 0.25 * CARD_W]
        below = [v for v in values if v.hint is None and 0 < v.cy - lab.cy < 2.2 * max(v.h, lab.h)
                 and abs(v.x0 - lab.x0) < 0.06 * CARD_W]
        if right:
            v = min(right, key=lambda v: v.x0 - lab.x1)
            v.hint, v.hint_how = lab.hint, "left"
        elif below:
            v = min(below, key=lambda v: v.cy - lab.cy)
            v.hint, v.hint_how = lab.hint, "above"
