"""Field extraction that does not depend on one card layout.

Three kinds of cue decide each field, and losing one does not lose the field:
- **label**: a label word (姓名, 出生日期, Sex, Permit No., ...) wherever it is: in front of the value in the
  same detected box (``姓名：林嘉欣``, ``性别 女``), left of it on the same row, or above it;
- **pattern**: what the value looks like (one date, two ordered dates, ``H``/``M`` + 8 digits or 8 digits,
  ``SURNAME,GIVEN``, a two-digit count, 男/女, the authority's words, a place name);
- **position**: only where label and pattern leave a choice (a Chinese name or a place): the place shares
  the authority's row, the Chinese name sits next to the Latin name.
Reading order is never used; the engine hands us boxes on an upright, straightened card.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
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
# label words -> the field they name; longer alternatives first so 姓名拼音 is not read as 姓名
LABELS: tuple[tuple[str, str], ...] = (
    (r"姓名拼音|英文姓名|拼音姓名|Name\s*in\s*Latin", "nameEn"),
    (r"姓\s*名|Name", "nameCn"),
    (r"出生日期|出生|Date\s*of\s*birth", "birthDate"),
    (r"性\s*别|Sex", "sex"),
    (r"有效期限|有效期|Period\s*of\s*validity|Valid\w*", "validPeriod"),
    (r"签发机关|Issuing\s*authority|Authority", "issueAuthority"),
    (r"签?发地点|签发地|地点|Place\s*of\s*issue|Place", "issuePlace"),
    (r"证件号码|证件号|Permit\s*No\.?|No\.", "permitNumber"),
    (r"(?:换证|签发)次[^\d\s]?|次数|Issue", "issueCount"),
)
# case-sensitive: printed English labels are title case, and a capitalised pinyin name may hold NAME
_LABEL_RE = re.compile("|".join(f"(?P<f{i}>{pat})" for i, (pat, _) in enumerate(LABELS)))
_SUBTITLE = re.compile(r"MAINLAND|TRAVEL|PERMIT\s*FOR|RESIDENTS", re.IGNORECASE)
# provinces and cities an issuing office may name (Taiwan residents' permits print the place)
PLACES = ("北京", "天津", "上海", "重庆", "河北", "山西", "辽宁", "吉林", "黑龙江", "江苏", "浙江", "安徽", "福建",
          "江西", "山东", "河南", "湖北", "湖南", "广东", "海南", "四川", "贵州", "云南", "陕西", "甘肃", "青海",
          "内蒙古", "广西", "西藏", "宁夏", "新疆", "厦门", "福州", "泉州", "深圳", "广州", "珠海", "南京", "杭州",
          "武汉", "成都", "西安", "昆山", "东莞", "漳州")

_PLACE_AFTER_LATIN = re.compile(r"[A-Za-z.:\s]*(" + "|".join(PLACES) + ")")
_AUTH_THEN_PLACE = re.compile(r"(.{4,}?)\s*(" + "|".join(PLACES) + r")\s*")
_AMBIGUOUS = 0.85  # a field decided without a label among several candidates of its pattern
_SURE = 0.9  # a read this confident is kept as read, never snapped to a near known value
_MIN_SCORE = 0.35  # recognizer confidence below which a piece is noise rather than a misread value
_DATE = re.compile(r"((?:19|20)\d{2})[^\d]{0,2}([01]\d)[^\d]{0,2}([0-3]\d)")
_DATE_START = re.compile(r"(?:19|20)\d{2}[^\d]{0,2}[01]\d[^\d]{0,2}[0-3]\d?")  # a date whose day is misread
_HKM_NUMBER = re.compile(r"([HM])(\d{8})(\d{2})?")
_CJK = re.compile(r"^[\u4e00-\u9fff]+$")
_DIGIT_FIX = str.maketrans({"O": "0", "o": "0", "D": "0", "I": "1", "l": "1", "|": "1", "Z": "2", "S": "5",
                            "B": "8"})


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


@dataclass
class Field:
    value: str
    score: float  # 0..1: how much to trust the value (becomes valueProb)
    quad: Quad | None
    cue: str = "pattern"  # what decided it: label, pattern, position (joined with + when several agreed)
    doubted: bool = False  # picked among several candidates, or breaks a rule between fields


@dataclass
class Piece(Line):
    """A value-bearing part of a line, with the field a label in front of or above it names."""

    hint: str | None = None
    hint_how: str = ""  # "same box", "left", "above"
    used: bool = field(default=False)


def normalize(text: str) -> str:
    """NFKC folds full-width digits, letters and punctuation (，．：) to ASCII; spaces carry no meaning."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text))


def snap(text: str, choices: tuple[str, ...], cutoff: float) -> str | None:
    best = max(choices, key=lambda c: difflib.SequenceMatcher(None, text, c).ratio())
    return best if difflib.SequenceMatcher(None, text, best).ratio() >= cutoff else None


def title_of(text: str) -> str | None:
    t = normalize(text)
    if re.fullmatch(r"[地陆]通行证", t):  # the title's end, the rest off the edge of a photo
        return TITLE_TAIWAN if t[0] == "陆" else TITLE_HK_MACAO
    if len(t) < 5:
        return None
    if "台湾" in t or "大陆" in t:
        return TITLE_TAIWAN
    if "港澳" in t or "内地" in t:
        return TITLE_HK_MACAO_FOREIGN if "非中国籍" in t else TITLE_HK_MACAO
    return snap(t, (TITLE_HK_MACAO, TITLE_TAIWAN), 0.6)


# --- content patterns: small pure functions --------------------------------------------------------

def dates(text: str) -> list[str]:
    """Every plausible yyyy.mm.dd in ``text`` (any or no separator)."""
    out = []
    for y, m, d in _DATE.findall(text.translate(_DIGIT_FIX)):
        try:
            dt.date(int(y), int(m), int(d))
        except ValueError:
            continue
        out.append(f"{y}.{m}.{d}")
    return out


def valid_period(text: str) -> str | None:
    """``start-end`` when ``text`` holds two dates in order."""
    ds = dates(text)
    if len(ds) >= 2 and ds[0] < ds[1]:
        return f"{ds[0]}-{ds[1]}"
    return None


def span_is_regular(period: str) -> bool:
    """A permit runs 5 or 10 years and ends the day before the anniversary (or on 28 Feb/1 Mar)."""
    try:
        start, end = (dt.datetime.strptime(d, "%Y.%m.%d").date() for d in period.split("-"))
    except ValueError:
        return False
    back = end + dt.timedelta(days=1)  # the anniversary the permit runs up to
    return back.year - start.year in (5, 10) and (back.month, back.day) in ((start.month, start.day), (3, 1))


def _years_on(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February in a year without one
        return dt.date(day.year + years, 3, 1)


def mended_period(text: str, spans: tuple[int, ...] = (5, 10)) -> str | None:
    """Two dates of which one reads and the other is a digit or two off (``2016.06.662026.06.15``): a permit
    runs ``spans`` years (a Taiwan resident's 5) to the day before the anniversary, so the readable date
    gives the other; the span whose date differs least from what was read (at most 2 of its 8 digits) is
    taken. None when two fit as well, or when the dates as read already keep the rule."""
    digits = re.sub(r"\D", "", text.translate(_DIGIT_FIX))
    if not 15 <= len(digits) <= 17:
        return None
    best: list[tuple[int, str]] = []
    for known_first in (True, False):
        known = digits[:8] if known_first else digits[-8:]
        other = digits[-8:] if known_first else digits[:8]
        try:
            day = dt.datetime.strptime(known, "%Y%m%d").date()
        except ValueError:
            continue
        if not 1990 <= day.year <= 2100:  # what a current permit's validity can start or end in
            continue
        for years in spans:
            if known_first:
                start, end = day, _years_on(day, years) - dt.timedelta(days=1)
            else:
                start, end = _years_on(day + dt.timedelta(days=1), -years), day
            guess = (end if known_first else start).strftime("%Y%m%d")
            off = sum(a != b for a, b in zip(guess, other, strict=True))
            if off <= 2:
                best.append((off, f"{start:%Y.%m.%d}-{end:%Y.%m.%d}"))
    best.sort()
    if not best or best[0][0] == 0 or (len(best) > 1 and best[1][0] == best[0][0] and best[1][1] != best[0][1]):
        return None
    return best[0][1]


def birth_date(text: str) -> str | None:
    if len(re.sub(r"\D", "", text)) > 10:
        return None  # a validity period with one date unreadable (2021.12.10-293412.09), not a birth date
    ds = dates(text)
    return ds[0] if len(ds) == 1 else None


def sex(text: str) -> str | None:
    t = re.sub(r"[A-Za-z性别:\s]", "", text)  # a misread label (性ses) may cling to the value
    if len(t) <= 2 and ("男" in t) != ("女" in t):
        return "男" if "男" in t else "女"
    return None


def permit_number(text: str) -> tuple[str, str] | None:
    """(number, issue count printed after it or "") for ``H/M`` + 8 digits, or 8 digits alone (Taiwan)."""
    t = text.upper().replace(" ", "")
    if m := _HKM_NUMBER.search(t[:1] + t[1:].translate(_DIGIT_FIX)):
        return m.group(1) + m.group(2), m.group(3) or ""
    if m := re.search(r"(?:^|[^\dA-Z])(\d{8})$", t[:1] + t[1:].translate(_DIGIT_FIX)):  # "No.07455973" too
        return m.group(1), ""
    return None


def issue_count(text: str) -> str | None:
    m = re.fullmatch(r"[A-Za-z:.\s]{0,6}(\d[\dOoIl]?|[OoIl]\d)", text)  # a misread label may precede it
    return m.group(1).translate(_DIGIT_FIX).zfill(2) if m else None


# common Chinese surnames in pinyin: put back a comma the recognizer dropped (GUOWENYU -> GUO,WENYU)
SURNAMES_PINYIN = frozenset((
    "WANG", "LI", "ZHANG", "LIU", "CHEN", "YANG", "HUANG", "ZHAO", "WU", "ZHOU", "XU", "SUN", "MA", "ZHU", "HU",
    "GUO", "HE", "LIN", "LUO", "GAO", "ZHENG", "LIANG", "XIE", "SONG", "TANG", "HAN", "FENG", "DENG", "CAO", "PENG",
    "ZENG", "XIAO", "TIAN", "DONG", "PAN", "YUAN", "CAI", "JIANG", "YU", "DU", "YE", "CHENG", "WEI", "SU", "LV",
    "LU", "DING", "REN", "YAO", "SHEN", "ZHONG", "CUI", "TAN", "FAN", "LIAO", "SHI", "JIN", "JIA", "XIA", "FU",
    "FANG", "ZOU", "XIONG", "BAI", "MENG", "QIN", "QIU", "HOU", "YIN", "XUE", "YAN", "DUAN", "LEI", "LONG", "TAO",
    "GU", "MAO", "HAO", "GONG", "SHAO", "WAN", "QIAN", "DAI", "MO", "KONG", "XIANG", "CHAN", "CHEUNG", "WONG",
    "LEUNG", "LAU", "NG", "HO", "KWOK", "TSANG", "OUYANG", "SIMA", "SHANGGUAN", "ZHUGE", "DONGFANG",
))


def name_en(text: str) -> str | None:
    """``SURNAME,GIVEN`` in capitals (the comma may be read as . or ，), found anywhere in ``text``."""
    t = re.sub(r"[.，。·:;]", ",", text).replace("l", "I")  # a capital I is often read as a small l
    m = re.search(r"(?<![A-Z])([A-Z]{1,20}),([A-Z]{1,30})(?![A-Za-z])", t)
    return f"{m.group(1)},{m.group(2)}" if m else None


def name_en_without_comma(text: str) -> str | None:
    """A capitals-only run whose start is a known surname: the comma was lost (trusted less)."""
    if not re.fullmatch(r"[A-Z]{4,40}", text):
        return None
    for n in range(min(len(text) - 2, 9), 0, -1):
        if text[:n] in SURNAMES_PINYIN:
            return f"{text[:n]},{text[n:]}"
    return None


def authority(text: str) -> str | None:
    """The authority's words, also when a misread label clings to them (发析关lamgmthority公安部出入境管理局) or
    three of its characters are misread (安疾部出入域管理用: two thirds of its words, in order)."""
    keyword = any(k in text for k in ("公安", "出入境", "管理局"))
    if not keyword and not _CJK.match(text[:2] or "-"):
        return None
    n = len(AUTHORITY)
    windows = [text[i:i + w] for w in (n - 1, n, n + 1) for i in range(max(1, len(text) - w + 1))]
    if not keyword:
        return AUTHORITY if len(text) <= n + 2 and any(snap(w, (AUTHORITY,), 0.66) for w in windows) else None
    return snap(text, (AUTHORITY,), 0.6) or (AUTHORITY if any(snap(w, (AUTHORITY,), 0.7) for w in windows)
                                             else text)


def place(text: str) -> str | None:
    """A known place, alone or after a misread Latin label (``ofissue浙江`` of ``Place of issue 浙江``)."""
    m = _PLACE_AFTER_LATIN.fullmatch(text)
    return m.group(1) if m else None


def near_place(text: str) -> str | None:
    """The known place a two- or three-character read is one character away from (注苏 -> 江苏)."""
    return snap(text, PLACES, 0.5) if 2 <= len(text) <= 3 and place(text) is None else None


def sex_after_label(text: str) -> str | None:
    """男/女 at the end of a short box whose head is a misread label (``改洲男`` of ``性别 男``)."""
    m = re.fullmatch(r"([^男女]{1,5})([男女])", text)
    return m.group(2) if m else None


def chinese(text: str) -> str | None:
    text = re.sub(r"^(姓名|姓|名)(?=.{2})", "", text)  # the label's first characters read into the name
    return text if _CJK.match(text) and 2 <= len(text) <= 5 else None


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


_CN_LABELS = {"姓名": "nameCn", "英文姓名": "nameEn", "姓名拼音": "nameEn", "出生日期": "birthDate", "性别": "sex",
              "有效期限": "validPeriod", "签发机关": "issueAuthority", "签发地点": "issuePlace",
              "证件号码": "permitNumber", "换证次数": "issueCount", "签发次数": "issueCount"}


def fuzzy_label(text: str) -> str | None:
    """The field a misread Chinese label names (经发机关 -> issueAuthority), or None."""
    if not _CJK.match(text) or not 2 <= len(text) <= 5 or text in PLACES:
        return None
    best = max(_CN_LABELS, key=lambda c: difflib.SequenceMatcher(None, text, c).ratio())
    ratio = difflib.SequenceMatcher(None, text, best).ratio()
    return _CN_LABELS[best] if ratio >= 0.6 or (len(text) >= 4 and ratio >= 0.5) else None


def _misread_label_start(head: str) -> int:
    """Where a misread label at the end of ``head`` begins (len(head) when there is none)."""
    for n in (4, 3, 2):
        if len(head) >= n and fuzzy_label(head[-n:]) is not None:
            return len(head) - n
    return 0 if len(head) <= 5 else len(head)  # a short head before a colon is a label we cannot read


def split_line(line: Line) -> tuple[list[Piece], list[Piece]]:
    """(values, bare labels): a label followed by text in the same box names that text."""
    raw = unicodedata.normalize("NFKC", line.text)
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
                values.append(Piece(sub_quad(line, pos, pos + cut, len(raw)), normalize(head[:cut]), line.score,
                                    hint, "same box" if hint else ""))
            hint = fuzzy_label(normalize(head[cut:])) if cut < len(head) else hint
            pos += len(head) + 1
            chunk = tail
        if (k := chunk.find("管理局")) >= 0 and len(normalize(chunk[k + 3:])) >= 2:  # authority, then place
            values.append(Piece(sub_quad(line, pos, pos + k + 3, len(raw)), normalize(chunk[:k + 3]), line.score,
                                hint, "same box" if hint else ""))
            pos, chunk, hint = pos + k + 3, chunk[k + 3:], None
        elif (ap := _AUTH_THEN_PLACE.fullmatch(chunk)) and authority(normalize(ap.group(1))):
            # the same, the authority misread (公安部出入境开理局上海): a known place ends it
            values.append(Piece(sub_quad(line, pos, pos + ap.end(1), len(raw)), normalize(ap.group(1)),
                                line.score, hint, "same box" if hint else ""))
            pos, chunk, hint = pos + ap.start(2), ap.group(2), None
        if m := re.fullmatch(r"\s*\S{1,6}\s+(\d{1,2})\s*", chunk):  # "9证式R 01": a misread label, a count
            pos, chunk = pos + m.start(1), m.group(1)
        if (d := _DATE.search(chunk) or _DATE_START.search(chunk)) and _count_after(chunk[d.end():]):
            # "1968.01.25 hsue 02", "1956.09151sste 02", "1995.07.3数 lsso02": a date (or what is left of
            # it), then a count whose label was misread, in one box
            values.append(Piece(sub_quad(line, pos, pos + d.end(), len(raw)), normalize(chunk[:d.end()]),
                                line.score, hint, "same box" if hint else ""))
            # where the count's digits begin (junk dropped; "1979.05.0604": not inside the date)
            start = max(d.end(), len(chunk.rstrip().rstrip("0123456789")))
            pos, chunk, hint = pos + start, chunk[start:], None
        text = normalize(chunk).strip(":：.,-_/")
        if hint is None and nxt is not None and _CJK.match(text or "-") and len(text) <= 2:
            text = ""  # a fragment glued to the label after it (美文 of 英文姓名) is no value
        if text and hint is None and (guess := fuzzy_label(text)) is not None:
            labels.append(Piece(sub_quad(line, pos, start, len(raw)), "", line.score, guess))
        elif text:
            values.append(Piece(sub_quad(line, pos, start, len(raw)), text, line.score, hint,
                                "same box" if hint else ""))
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
    score = p.score
    if old is None or score > old.score:
        found[name] = Field(value, score, p.quad, cue)
        p.used = True


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
        if ln is title_line or _SUBTITLE.search(ln.text):
            continue
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
            _take(found, "issueCount", p, m.group(1), "label+pattern")
            found["issueCount"].score *= _AMBIGUOUS
            found["issueCount"].doubted = True
        if p.hint == "permitNumber" and (n := permit_number(p.text)) and n[1]:
            _take(found, "issueCount", p, n[1], "label+pattern")
    # 2. unmistakable patterns, whatever the labels say (a label may have been misread or missing)
    for name in _SELF_EVIDENT:
        if name in found:
            continue
        cands = [(p, v) for p in values if not p.used and (v := _parse(name, p.text)) is not None]
        if name == "validPeriod" and not cands:  # one date misread: the other and the span rule give it
            spans = (5,) if "permitType" in found and found["permitType"].value == TITLE_TAIWAN else (5, 10)
            mended = [(p, v) for p in values if not p.used and (v := mended_period(p.text, spans)) is not None]
            if mended:
                p, v = mended[0]
                _take(found, name, p, v, "pattern")
                found[name].score *= 0.8  # a reconstruction, never as sure as a read
                found[name].doubted = True
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
            _take(found, "issueCount", p, n[1], "pattern")
    if "nameEn" not in found:
        for p in values:
            if not p.used and (v := name_en_without_comma(p.text)) is not None:
                _take(found, "nameEn", p, v, "pattern")
                found["nameEn"].score *= 0.8
                found["nameEn"].doubted = True
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
                found["issuePlace"].score *= _AMBIGUOUS
                found["issuePlace"].doubted = True
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
    elif "permitNumber" in found:
        number = found["permitNumber"]
        family = "taiwan" if number.value.isdigit() else "hk_macao"
        # the title unreadable (glare, off the edge): the number's form tells the permit; a guess to review,
        # as the number cannot tell the 非中国籍 version
        found["permitType"] = Field(TITLE_TAIWAN if family == "taiwan" else TITLE_HK_MACAO, number.score * 0.8,
                                    None, "pattern", doubted=True)
    _cross_check(found, family)
    return found, family


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
