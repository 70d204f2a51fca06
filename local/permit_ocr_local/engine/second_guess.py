"""Fields put right from the recognizer's second guesses.

On a photo the recognizer misreads a character now and then (磊 as 温, 女 as 文), but the right one is nearly
always among its next guesses for that character (``ReadLine.alts``). Where something independent of the
read says which guess is right, it is taken:

- **the name, twice**: the permit prints the name in Chinese and in Latin letters, and the Latin form is
  the pinyin of the Chinese one: the guesses whose pinyin spells the Latin name exactly are the name. The
  same agreement picks the name among several Chinese words when position alone could not, mends one
  Latin letter the recognizer doubted (LIN,TINGSH beside 林婷诗; a surely read spelling never: WONG,MEI),
  and finds a Latin name the patterns missed (OUEANGWEN beside 欧阳文). Only pinyin is checked (pypinyin's
  dictionary, every reading of a character); real permits also carry Cantonese spellings (CHAN for 陈) and
  Taiwan's Wade-Giles forms: such names never agree and are left as read. Disagreement never lowers trust.
- **sex**: 男 or 女, nothing else; a sex box read as another character has one of them among its guesses.
- **digits**: a character read between digits (199%.05.22, 1966.07.2k03) is a digit; its likeliest digit
  guess is taken before the fields are extracted.
- **the number's letter**: a Hong Kong/Macao number is H or M and 8 digits; a capital read as another letter
  in front of 8 digits (K30991642) takes its likeliest H/M guess.

Every value with a character or letter taken from a guess or put right by the agreement (a Latin name's
comma put back too) is marked in doubt and suspect: its valueProb stays under the review line whatever the
recognizer's confidence or the per-cue trust (a Latin letter mended from the pinyin, the rest of the name read
at 0.99, was 97). A name picked among Chinese words by the agreement, as read, is in doubt only.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from .layout import Field, Line, sub_quad
from .lines import CONFIRMED, char_scores
from .ocr import Alternatives

_MIN_ALT = 0.005  # a guess less likely than this is noise, not a candidate
_SURE_LETTER = 0.8  # a Latin letter read at least this surely is not mended to agree with the pinyin
_MAX_CHANGED = 2  # characters a correction may replace: more and it is another name, not a misread
_CJK_RUN = re.compile(r"[\u4e00-\u9fff]{2,}")
_LATIN_RUN = re.compile(r"[A-Z][A-Z ]{3,}[A-Z]")  # a Latin name whose comma was lost or misread
# two-character surnames: without a comma, the only way to know where the surname ends
COMPOUND_SURNAMES = frozenset(("欧阳", "司马", "上官", "诸葛", "东方", "皇甫", "尉迟", "公孙", "慕容", "长孙", "宇文",
                               "司徒", "夏侯", "令狐", "端木", "独孤", "南宫", "闻人", "轩辕", "西门", "申屠"))


@dataclass
class ReadLine(Line):
    """A recognized line with the recognizer's alternatives for each of its characters."""

    alts: Alternatives | None = None
    guessed: frozenset[int] = frozenset()  # characters taken from their guesses before extraction (``_with``)


@dataclass(frozen=True)
class Fit:
    chinese: str
    latin: str  # SURNAME,GIVEN as the fitted characters spell it
    edits: int  # letters the read Latin name differs by
    changed: int  # characters taken from the alternatives instead of the greedy read
    logp: float


def preload() -> None:
    """Load the pinyin dictionary now (a third of a second) rather than inside the first request."""
    spellings("中")


@cache
def spellings(ch: str) -> tuple[str, ...]:
    """Every pinyin of ``ch`` in capitals, without tones; ü also as U and YU (LV, LU, LYU are all used)."""
    from pypinyin import Style, pinyin

    out: list[str] = []
    readings = pinyin(ch, style=Style.NORMAL, heteronym=True, errors="ignore")  # [] for a non-Chinese character
    for reading in readings[0] if readings else []:
        up = reading.upper()
        for s in ((up, up.replace("V", "U"), up.replace("V", "YU")) if "V" in up else (up,)):
            if s.isalpha() and s not in out:
                out.append(s)
    return tuple(out)


def _edits(a: str, b: str) -> int:
    """Levenshtein distance (names are short)."""
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


def _prefix_edits(part: str, target: str) -> int:
    """How far ``part`` is from the nearest prefix of ``target``."""
    return min(_edits(part, target[:j]) for j in range(len(target) + 1))


def fit(alts: Alternatives, latin: str, max_edits: int = 0, both: bool = False) -> Fit | None:
    """The likeliest characters, one among each position's alternatives (the greedy read or a guess of at
    least _MIN_ALT; at most _MAX_CHANGED replaced), whose pinyin spells ``latin`` (SURNAME,GIVEN) within
    ``max_edits`` letters, the surname ending after the first or second character; None when none does.
    A letter off and a character replaced at once only with ``both`` (the Latin read was doubted)."""
    if not 2 <= len(alts) <= 5:
        return None
    surname, given = latin.split(",", 1) if "," in latin else ("", latin)  # no comma: the cut is ours
    target = surname + given
    best: Fit | None = None

    def walk(i: int, chars: list[str], sounds: list[str], changed: int, logp: float) -> None:
        nonlocal best
        if _prefix_edits("".join(sounds), target) > max_edits:
            return
        if i == len(alts):
            for cut in (1, 2) if surname else (2 if "".join(chars[:2]) in COMPOUND_SURNAMES else 1,):
                if cut >= len(sounds):
                    continue
                sur, giv = "".join(sounds[:cut]), "".join(sounds[cut:])
                edits = _edits(sur, surname) + _edits(giv, given) if surname else _edits(sur + giv, given)
                if edits and changed and not both:
                    continue  # a surely read Latin name is matched exactly by any replaced character
                cand = Fit("".join(chars), f"{sur},{giv}", edits, changed, logp)
                if edits <= max_edits and (best is None or (edits, -logp) < (best.edits, -best.logp)):
                    best = cand
            return
        for rank, (ch, p) in enumerate(alts[i]):
            if rank and (p < _MIN_ALT or changed == _MAX_CHANGED):
                break
            for sound in spellings(ch):
                walk(i + 1, [*chars, ch], [*sounds, sound], changed + (rank > 0), logp + math.log(max(p, 1e-9)))

    walk(0, [], [], 0, 0.0)
    return best


def _runs(line: ReadLine) -> Iterator[tuple[int, int]]:
    """Every stretch of 2-5 consecutive Chinese characters in the line (a name may follow a label); not in
    a run longer than a label and a name together (the title, the authority)."""
    for m in _CJK_RUN.finditer(line.text):
        if m.end() - m.start() > 8:
            continue
        for a in range(m.start(), m.end() - 1):
            for b in range(a + 2, min(a + 5, m.end()) + 1):
                yield a, b


def _quad(line: Line, a: int, b: int) -> np.ndarray[Any, Any]:
    return sub_quad(line, a, b, len(line.text))


def _centre_in(line: Line, quad: np.ndarray[Any, Any]) -> bool:
    cx, cy = quad.mean(axis=0)
    return bool(line.x0 - 1 <= cx <= line.x1 + 1 and line.y0 - 1 <= cy <= line.y1 + 1)


def _holds(line: Line, f: Field) -> bool:
    """``line`` is where ``f`` was read."""
    return f.quad is not None and f.value in line.text and _centre_in(line, f.quad)


def agree(lines: list[ReadLine], fields: dict[str, Field]) -> None:
    """Correct ``fields``' nameCn (and one letter of nameEn) in place where the two forms can be made to
    agree; find a nameEn the patterns missed (OUEANGWEN beside 欧阳文)."""
    en, cn = fields.get("nameEn"), fields.get("nameCn")
    if en is None and cn is not None:
        _find_latin(lines, fields, cn)
        return
    if en is None or "," not in en.value:
        return
    if cn is not None and fit([[(ch, 1.0)] for ch in cn.value], en.value) is not None:
        # they agree as read: the Chinese name's pinyin spells every letter of the Latin one, which a misread
        # letter would break, so the Latin name is confirmed whatever its letters' confidence. Not the Chinese
        # name: a misread character often sounds like the right one (晴 for 睛, both QING)
        if not en.doubted and cn.cue != "pinyin":
            en.score, en.suspect = max(en.score, CONFIRMED), False
        return
    best: tuple[Fit, ReadLine, int, int] | None = None
    doubted = _unsure(lines, en)
    for line in lines:
        if not line.alts or len(line.alts) != len(line.text):
            continue
        own = cn.value if cn is not None and _holds(line, cn) else None
        for a, b in _runs(line):
            # a misread Latin letter is mended only beside the name already chosen: elsewhere the match is exact
            found = fit(line.alts[a:b], en.value, 1 if line.text[a:b] == own else 0, both=doubted)
            if found is not None and (best is None or (found.edits, -found.logp) < (best[0].edits, -best[0].logp)):
                best = (found, line, a, b)
    if best is None:
        return
    found, line, a, b = best
    alts = line.alts or []
    probs = [dict(alts[i])[ch] for i, ch in zip(range(a, b), found.chinese, strict=True)]
    score = math.exp(sum(math.log(max(p, 1e-9)) for p in probs) / len(probs))
    if cn is None or found.chinese != cn.value:
        fields["nameCn"] = Field(found.chinese, score, _quad(line, a, b), "pinyin", doubted=True,
                                 suspect=found.changed > 0)
    if found.latin != en.value and doubted:
        fields["nameEn"] = Field(found.latin, min(en.score, score), en.quad, "pinyin", doubted=True, suspect=True)


def _unsure(lines: list[ReadLine], f: Field) -> bool:
    """A Latin name is mended by a letter only where the recognizer doubted a letter of it: WONG,MEI beside
    王美 is a Cantonese spelling read right, not WANG,MEI misread."""
    line = _line_of(lines, f.quad) if f.quad is not None else None
    probs = _char_probs(line, f.quad, f.value) if line is not None and f.quad is not None else []
    return bool(probs) and min(probs) < _SURE_LETTER


def _find_latin(lines: list[ReadLine], fields: dict[str, Field], cn: Field) -> None:
    """A run of capitals one letter away from the pinyin of the Chinese name as read is the Latin name."""
    as_read = [[(ch, 1.0)] for ch in cn.value]
    for line in lines:
        for m in _LATIN_RUN.finditer(line.text):
            found = fit(as_read, m.group().replace(" ", ""), 1)
            probs = [p for (ch, p), *_ in (line.alts or [])[m.start():m.end()] if ch != " "]
            if found is not None and (found.edits == 0 or (probs and min(probs) < _SURE_LETTER)):
                fields["nameEn"] = Field(found.latin, min(cn.score, line.score) * 0.8, _quad(line, *m.span()),
                                         "pinyin", doubted=True, suspect=True)
                return


# the label (or part of it) and one character, or one character alone (a lone 女 may even read as 4)
_SEX_BOX = re.compile(r"(?:.*(?:性|别|Sex|sex|Se|se)\W*([\u4e00-\u9fff])|(\S))")
_SEX_AFTER_LABEL = re.compile(r"[^男女\d]{1,3}([男女])")  # 姓奶女: 性别 misread, then the value as read
_MIN_SEX = 0.05


def sex(lines: list[ReadLine], fields: dict[str, Field]) -> None:
    """Sex the patterns missed: a lone character, or one after (part of) its label, whose guesses hold 男
    or 女; or a short box ending in 男/女 after a misread label that the Chinese name did not keep."""
    if "sex" in fields:
        return
    name = fields.get("nameCn")
    for line in lines:
        text = line.text.strip()
        if not line.alts or len(line.alts) != len(line.text) or (name is not None and _holds(line, name)):
            continue
        if (m := _SEX_AFTER_LABEL.fullmatch(text)) is not None:
            at = line.text.rindex(m.group(1))
            own = char_scores(line)  # the character's own confidence, not the misread label's
            fields["sex"] = Field(m.group(1), own[at] if own else line.score, _quad(line, at, at + 1), "pattern",
                                  doubted=True)
            return
        if (m := _SEX_BOX.fullmatch(text)) is None:
            continue
        ch = m.group(1) or m.group(2)
        at = line.text.rindex(ch)
        guesses = {c: p for c, p in line.alts[at] if c in "男女" and p >= _MIN_SEX}
        if guesses:
            best = max(guesses, key=lambda c: guesses[c])
            fields["sex"] = Field(best, guesses[best], _quad(line, at, at + 1), "pattern", doubted=True,
                                  suspect=best != ch)
            return


_MEANINGFUL = re.compile(r"[0-9A-Za-z\u4e00-\u9fff]")  # separators (. : -) carry no value


def _line_of(lines: list[ReadLine], quad: np.ndarray[Any, Any]) -> ReadLine | None:
    """The read line (with its guesses) that holds ``quad``'s centre."""
    return next((ln for ln in lines if ln.alts and len(ln.alts) == len(ln.text) and _centre_in(ln, quad)), None)


def _value_chars(line: ReadLine, quad: np.ndarray[Any, Any], value: str) -> list[int]:
    """Where ``value``'s characters under ``quad`` are in ``line`` (a misread label in the same box, 出日Da of
    bith 1954.07.17, is not the value; separators carry no value)."""
    n, w = len(line.text), max(1.0, line.x1 - line.x0)
    a = max(0, int((float(quad[:, 0].min()) - line.x0) / w * n + 0.5))
    b = min(n, int((float(quad[:, 0].max()) - line.x0) / w * n + 0.5))
    return [i for i in range(a, b)
            if _MEANINGFUL.match(line.text[i]) and unicodedata.normalize("NFKC", line.text[i]) in value]


def _char_probs(line: ReadLine, quad: np.ndarray[Any, Any], value: str) -> list[float]:
    """The recognizer's confidence in each of ``value``'s characters under ``quad`` in ``line``."""
    tops = char_scores(line) or []
    return [tops[i] for i in _value_chars(line, quad, value) if i < len(tops)]


def weakest_character(lines: list[ReadLine], fields: dict[str, Field]) -> None:
    """A value is as sure as its least sure character, not as the mean of its line: one doubtful digit in a
    permit number (3 at 0.78, 1 the next guess) hides in a line of sure ones. Each field's score becomes
    the geometric mean of the two."""
    for name, f in fields.items():
        if f.quad is None or f.cue == "pinyin" or name == "permitType":
            continue
        line = _line_of(lines, f.quad)
        probs = _char_probs(line, f.quad, f.value) if line is not None else []
        if probs:
            f.score = math.sqrt(f.score * min(probs))


def from_guesses(lines: list[ReadLine], fields: dict[str, Field]) -> None:
    """A value with a character taken from its guesses before extraction (a digit for a letter read between
    digits, a number's H or M) is in doubt and suspect, as a reconstruction: not marked, a period whose digit
    came from a guess was confirmed by the span rule it then kept (``rules.self_checked``), and the guess's
    own low probability is all that kept any other such value under the review line."""
    for f in fields.values():
        if f.quad is None or (line := _line_of(lines, f.quad)) is None:
            continue
        if line.guessed.intersection(_value_chars(line, f.quad, f.value)):
            f.doubted = f.suspect = True


_DIGITISH = set("0123456789.,-:/ ")
_MIN_DIGIT = 0.0  # a non-digit between digits is wrong for sure: any digit guess is better


def digits_in_numbers(line: ReadLine) -> ReadLine:
    """``line`` with each character read between digits (a digit on one side, a digit or separator on
    the other: ``199%.05.22``) replaced by its likeliest digit guess, when it has one."""
    if not line.alts or len(line.alts) != len(line.text):
        return line
    text, fixed = line.text, {}
    for i in range(1, len(text) - 1):
        if not (text[i].isalpha() or text[i] in "%&$#@") or text[i].isdigit():
            continue  # punctuation is a separator (1966,07.21), a digit needs nothing
        left, right = text[i - 1], text[i + 1]
        if not (left.isdigit() and (right.isdigit() or right in _DIGITISH)):
            continue
        digit = next(((ch, p) for ch, p in line.alts[i] if ch.isdigit() and ch.isascii() and p >= _MIN_DIGIT), None)
        if digit is not None:
            fixed[i] = digit
    return _with(line, fixed)


def _with(line: ReadLine, fixed: dict[int, tuple[str, float]]) -> ReadLine:
    """``line`` with the guesses in ``fixed`` (position -> guess) taken in place of what was read."""
    if not fixed or line.alts is None:
        return line
    alts = [[fixed[i], *(a for a in line.alts[i] if a != fixed[i])] if i in fixed else line.alts[i]
            for i in range(len(line.text))]
    text = "".join(fixed[i][0] if i in fixed else ch for i, ch in enumerate(line.text))
    return ReadLine(line.quad, text, line.score, alts, line.guessed | fixed.keys())


_LETTERED_NUMBER = re.compile(r"(?<![A-Za-z0-9])([A-GI-LN-Z])(?=\d{8}(?:\d{2})?(?!\d))")
_MIN_LETTER = 0.01


def number_letter(line: ReadLine) -> ReadLine:
    """``line`` with the letter of a H/M number read as another capital replaced by its likeliest H/M guess."""
    if not line.alts or len(line.alts) != len(line.text):
        return line
    m = _LETTERED_NUMBER.search(line.text)
    if m is None:
        return line
    i = m.start(1)
    guess = next(((ch, p) for ch, p in line.alts[i] if ch in "HM" and p >= _MIN_LETTER), None)
    return line if guess is None else _with(line, {i: guess})
