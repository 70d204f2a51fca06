"""Field extraction from recognized lines on the straightened card.

Lines are grouped into rows and nearby pieces of a row are merged (the detector sometimes splits
"2014.04.10-2019.04.09"); each piece is then classified by content (dates, 男/女, number formats,
Latin names, the authority) and, where content is ambiguous, by position relative to the title and
the other fields (Chinese name above the Latin name, number on the lowest row, count right of it).
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

import numpy as np

from .geometry import CARD_H, CARD_W, f32

Quad = np.ndarray[Any, Any]

TITLE_HK_MACAO = "港澳居民来往内地通行证"
TITLE_HK_MACAO_FOREIGN = "港澳居民来往内地通行证（非中国籍）"
TITLE_TAIWAN = "台湾居民来往大陆通行证"
AUTHORITY = "公安部出入境管理局"
FIELDS = (
    "permitType", "nameCn", "nameEn", "birthDate", "sex", "validPeriod",
    "issueAuthority", "issuePlace", "permitNumber", "issueCount",
)
PHOTO_RIGHT = 0.28 * CARD_W  # values start right of the photo
LABEL_WORDS = ("姓名", "出生", "性别", "有效期", "签发", "证件号", "次数", "Name", "Date", "Sex", "Period",
               "Issu", "Place", "Permit", "MAINLAND", "TRAVEL", "RESIDENT")

_DATE = re.compile(r"((?:19|20)\d{2})\D?([01]\d)\D?([0-3]\d)")
_HKM_NUMBER = re.compile(r"([HM])(\d{8})(\d{2})?")
_CJK = re.compile(r"^[\u4e00-\u9fff]+$")


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
    def cy(self) -> float:
        return (self.y0 + self.y1) / 2

    @property
    def h(self) -> float:
        return self.y1 - self.y0


@dataclass
class Field:
    value: str
    score: float
    quad: Quad | None


def normalize(text: str) -> str:
    """NFKC folds full-width digits, letters and punctuation (，．) to ASCII; spaces carry no meaning."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text))


def merge(lines: list[Line]) -> Line:
    lines = sorted(lines, key=lambda ln: ln.x0)
    pts = np.concatenate([ln.quad for ln in lines])
    x0, y0 = pts.min(axis=0)
    x1, y1 = pts.max(axis=0)
    quad = f32([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    text = "".join(ln.text for ln in lines)
    return Line(quad, text, float(min(ln.score for ln in lines)))


def rows_of(lines: list[Line]) -> list[list[Line]]:
    """Group lines whose vertical centres are close, then merge touching pieces within a row."""
    rows: list[list[Line]] = []
    for ln in sorted(lines, key=lambda ln: ln.cy):
        if rows and abs(rows[-1][-1].cy - ln.cy) < 0.45 * min(rows[-1][-1].h, ln.h):
            rows[-1].append(ln)
        else:
            rows.append([ln])
    merged_rows = []
    for row in rows:
        row.sort(key=lambda ln: ln.x0)
        pieces: list[list[Line]] = [[row[0]]]
        for ln in row[1:]:
            if ln.x0 - pieces[-1][-1].x1 < 0.035 * CARD_W:
                pieces[-1].append(ln)
            else:
                pieces.append([ln])
        merged_rows.append([merge(p) for p in pieces])
    return merged_rows


def snap(text: str, choices: tuple[str, ...], cutoff: float) -> str | None:
    best = max(choices, key=lambda c: difflib.SequenceMatcher(None, text, c).ratio())
    return best if difflib.SequenceMatcher(None, text, best).ratio() >= cutoff else None


def title_of(text: str) -> str | None:
    t = normalize(text)
    if "台湾" in t or "大陆" in t:
        return TITLE_TAIWAN
    if "港澳" in t or "内地" in t:
        return TITLE_HK_MACAO_FOREIGN if "非中国籍" in t else TITLE_HK_MACAO
    return snap(t, (TITLE_HK_MACAO, TITLE_TAIWAN), 0.6)


def _dates(text: str) -> list[str]:
    return [f"{y}.{m}.{d}" for y, m, d in _DATE.findall(text)]


def _is_label(text: str) -> bool:
    return any(w.lower() in text.lower() for w in LABEL_WORDS)


def _name_en(text: str) -> str | None:
    t = re.sub(r"[.，。·:;]", ",", text.upper())
    t = re.sub(r"[^A-Z,]", "", t)
    if len(t) < 3 or not re.fullmatch(r"[A-Z]+(,[A-Z]+)?", t):
        return None
    return t


def extract(lines: list[Line]) -> tuple[dict[str, Field], str | None]:
    """Fields found on the card and the permit family (``hk_macao``, ``taiwan`` or None)."""
    found: dict[str, Field] = {}
    title_line = None
    for ln in sorted(lines, key=lambda ln: ln.cy):
        if ln.cy < 0.3 * CARD_H and (t := title_of(ln.text)) is not None and len(normalize(ln.text)) >= 5:
            title_line = ln
            found["permitType"] = Field(t, ln.score, ln.quad)
            break
    rest = [ln for ln in lines if ln is not title_line and ln.x0 >= PHOTO_RIGHT - 0.03 * CARD_W
            and (title_line is None or ln.cy > title_line.y1)]
    pieces = [p for row in rows_of(rest) for p in row]
    for p in pieces:
        p.text = normalize(p.text)
    pieces = [p for p in pieces if p.text and not _is_label(p.text)]

    numbers: list[tuple[Line, str, str]] = []  # (piece, number, count-in-same-piece)
    counts: list[Line] = []
    cjk: list[Line] = []
    birth: list[Line] = []
    for p in pieces:
        t = p.text
        dates = _dates(t)
        if len(dates) >= 2 and "validPeriod" not in found:
            found["validPeriod"] = Field(f"{dates[0]}-{dates[1]}", p.score, p.quad)
        elif len(dates) == 1 and len(re.sub(r"\D", "", t)) == 8 and "." in t:
            birth.append(p)
        elif t in ("男", "女") or (len(t) <= 2 and ("男" in t) != ("女" in t)):
            found.setdefault("sex", Field("男" if "男" in t else "女", p.score, p.quad))
        elif m := _HKM_NUMBER.search(t.replace("O", "0")):
            numbers.append((p, m.group(1) + m.group(2), m.group(3) or ""))
        elif re.fullmatch(r"\d{8}", t):
            numbers.append((p, t, ""))
        elif re.fullmatch(r"\d{1,2}", t):
            counts.append(p)
        elif (en := _name_en(t)) is not None and "," in en:
            found.setdefault("nameEn", Field(en, p.score, p.quad))
        elif any(k in t for k in ("公安", "出入境", "管理局")):
            found.setdefault("issueAuthority", Field(snap(t, (AUTHORITY,), 0.6) or t, p.score, p.quad))
        elif _CJK.match(t):
            cjk.append(p)

    if birth:
        p = min(birth, key=lambda b: b.cy)
        found["birthDate"] = Field(_dates(p.text)[0], p.score, p.quad)
    if numbers:
        p, number, count = max(numbers, key=lambda n: n[0].cy)  # the number is on the lowest row
        found["permitNumber"] = Field(number, p.score, p.quad)
        if count:
            found["issueCount"] = Field(count, p.score, p.quad)
        right = [c for c in counts if c.x0 > p.x1 and abs(c.cy - p.cy) < 1.5 * p.h]
        if right and "issueCount" not in found:
            c = right[0]
            found["issueCount"] = Field(c.text.zfill(2), c.score, c.quad)
    if "issueCount" not in found and counts:
        c = max(counts, key=lambda c: c.cy)
        found["issueCount"] = Field(c.text.zfill(2), c.score, c.quad)
    _names_and_place(found, cjk)

    family = None
    if "permitType" in found:
        family = "taiwan" if found["permitType"].value == TITLE_TAIWAN else "hk_macao"
    elif "permitNumber" in found:
        family = "taiwan" if found["permitNumber"].value.isdigit() else "hk_macao"
    return found, family


def _names_and_place(found: dict[str, Field], cjk: list[Line]) -> None:
    """Chinese name: the topmost short CJK piece above the Latin name; place: CJK on the authority's row."""
    auth = found.get("issueAuthority")
    en = found.get("nameEn")
    for p in sorted(cjk, key=lambda p: p.cy):
        if auth is not None and auth.quad is not None and abs(p.cy - float(auth.quad[:, 1].mean())) < 0.04 * CARD_H:
            if p.x0 > float(auth.quad[:, 0].max()):
                found.setdefault("issuePlace", Field(p.text, p.score, p.quad))
            continue
        below_name = en is not None and en.quad is not None and p.cy > float(en.quad[:, 1].min())
        if "nameCn" not in found and not below_name and 2 <= len(p.text) <= 5:
            found["nameCn"] = Field(p.text, p.score, p.quad)
