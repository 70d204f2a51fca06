"""Field cues: what each value looks like (its pattern) and the label words that name it.

Small pure functions over one piece of text, no geometry: one date, two ordered dates, ``H``/``M`` + 8 digits
or 8 digits, ``SURNAME,GIVEN``, a two-digit count, 男/女, the authority, a place name, the title; and a misread
Chinese label matched loosely (经发机关 -> issueAuthority). ``layout.extract`` decides the fields with them.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
import unicodedata
from collections.abc import Sequence

TITLE_HK_MACAO = "港澳居民来往内地通行证"
TITLE_HK_MACAO_FOREIGN = "港澳居民来往内地通行证（非中国籍）"
TITLE_TAIWAN = "台湾居民来往大陆通行证"
# the English title printed under the Chinese one (letters only, as compared)
_ENGLISH_TITLES = {"MAINLANDTRAVELPERMITFORHONGKONGANDMACAORESIDENTS": TITLE_HK_MACAO,
                   "MAINLANDTRAVELPERMITFORTAIWANRESIDENTS": TITLE_TAIWAN}
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
# a time of day, alone or after a date (16:01, 2025/01/27 16:01): a camera's or a viewer's stamp, a phone's
# clock; a permit prints no time. Not one glued between digits (a period whose dash was read as a colon)
_CLOCK = re.compile(r"(?:^|\s|(?:19|20)\d{2}\D{1,2}\d{1,2}\D{1,2}\d{1,2})[0-2]?\d[:：][0-5]\d(?!\d)")
# provinces and cities an issuing office may name (Taiwan residents' permits print the place)
PLACES = ("北京", "天津", "上海", "重庆", "河北", "山西", "辽宁", "吉林", "黑龙江", "江苏", "浙江", "安徽", "福建",
          "江西", "山东", "河南", "湖北", "湖南", "广东", "海南", "四川", "贵州", "云南", "陕西", "甘肃", "青海",
          "内蒙古", "广西", "西藏", "宁夏", "新疆", "厦门", "福州", "泉州", "深圳", "广州", "珠海", "南京", "杭州",
          "武汉", "成都", "西安", "昆山", "东莞", "漳州")

_PLACE_AFTER_LATIN = re.compile(r"[A-Za-z.:\s]*(" + "|".join(PLACES) + ")")
_AUTH_THEN_PLACE = re.compile(r"(.{4,}?)\s*(" + "|".join(PLACES) + r")\s*")
_DATE = re.compile(r"((?:19|20)\d{2})[^\d]{0,2}([01]\d)[^\d]{0,2}([0-3]\d)")
_DATE_START = re.compile(r"(?:19|20)\d{2}[^\d]{0,2}[01]\d[^\d]{0,2}[0-3]\d?")  # a date whose day is misread
_HKM_NUMBER = re.compile(r"([HM])(\d{8})(\d{2})?")
_CJK = re.compile(r"^[\u4e00-\u9fff]+$")
_DIGIT_FIX = str.maketrans({"O": "0", "o": "0", "D": "0", "I": "1", "l": "1", "|": "1", "Z": "2", "S": "5",
                            "B": "8"})


def normalize(text: str) -> str:
    """NFKC folds full-width digits, letters and punctuation (，．：) to ASCII; spaces carry no meaning."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text))


def snap(text: str, choices: tuple[str, ...], cutoff: float) -> str | None:
    best = max(choices, key=lambda c: difflib.SequenceMatcher(None, text, c).ratio())
    return best if difflib.SequenceMatcher(None, text, best).ratio() >= cutoff else None


_TITLE_LIKE = 0.5  # a third of the title's characters in order among others is no read of it


def title_of(text: str) -> str | None:
    """The permit's title a line reads as, or None. A sentence is never the title, even one that names the
    permit (the back's notes: 本证是港澳居民来往内地所持有的旅行证件): the title is a short line of its own."""
    t = normalize(text)
    if (english := _english_title(t)) is not None:
        return english
    if re.fullmatch(r"[地陆]通行证", t):  # the title's end, the rest off the edge of a photo
        return TITLE_TAIWAN if t[0] == "陆" else TITLE_HK_MACAO
    if len(t) < 5 or is_sentence(t) or len(t) > len(TITLE_HK_MACAO_FOREIGN) + 2 \
            or (len(t) > len(TITLE_TAIWAN) + 3 and "非中国籍" not in t):
        return None
    if "台湾" in t or "大陆" in t:
        return _resembling(t, TITLE_TAIWAN)
    if "港澳" in t or "内地" in t:
        return _resembling(t, TITLE_HK_MACAO_FOREIGN if "非中国籍" in t else TITLE_HK_MACAO)
    return snap(t, (TITLE_HK_MACAO, TITLE_TAIWAN), 0.6)


def _english_title(text: str) -> str | None:
    """The permit's title when ``text`` is a read of its English title (the Chinese one above it may be lost
    to glare, or boxed with it and read as the English alone)."""
    letters = re.sub(r"[^A-Z]", "", text.upper())
    if len(letters) < 20 or len(letters) < 0.8 * len(text):
        return None
    ratio, title = max((difflib.SequenceMatcher(None, letters, e).ratio(), t) for e, t in _ENGLISH_TITLES.items())
    return title if ratio >= 0.8 else None


def _resembling(text: str, title: str) -> str | None:
    """``title`` when ``text`` is a read of it, even a poor one (a copy's title: 海渍居民来征内地易行证), not a
    line that only shares a place word with it (a fragment of the back's notes: 本派源施来注内地有的)."""
    return title if difflib.SequenceMatcher(None, text, title).ratio() >= _TITLE_LIKE else None


# words that only another document prints: a permit's back (its notes), a resident ID card, a passport, a
# driving licence. A card that shows them and no permit title is not a permit's front
_OTHER_DOCUMENT = re.compile(r"须知|注意事项|护照|PASSPORT|Passport|身份证|公民身份|驾驶证|Driving|准驾|民族|住址")
_SENTENCE = re.compile(r"[、，。；！？]|^[一二三四五六七八九十\d][、.)]")


def is_stamp(text: str) -> bool:
    """A line that shows a time of day is a stamp or an interface's, never a permit's print."""
    return _CLOCK.search(text.strip()) is not None


def is_sentence(text: str) -> bool:
    """Running text (a note, a rule): clause punctuation, or a numbered item's head (一、 3.)."""
    return _SENTENCE.search(text) is not None and len(text) >= 8


def other_document(texts: list[str]) -> bool:
    """The lines of a card say it is another document: its own words (护照, 身份证, 须知, ...), or sentences,
    two or more, which a permit's front never prints (the back's notes)."""
    return any(_OTHER_DOCUMENT.search(t) for t in texts) or sum(is_sentence(normalize(t)) for t in texts) >= 2


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


_SURER = 0.2  # how much surer the recognizer must have been of one mend's digits than of its rival's


def _years_on(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February in a year without one
        return dt.date(day.year + years, 3, 1)


def mended_period(text: str, spans: tuple[int, ...] = (5, 10), sure: Sequence[float] | None = None) -> str | None:
    """Two dates of which one reads and the other is a digit or two off (``2016.06.662026.06.15``): a permit
    runs ``spans`` years (a Taiwan resident's 5) to the day before the anniversary, so the readable date
    gives the other; the span whose date differs least from what was read (at most 2 of its 8 digits) is
    taken. When two differ as little (``2023.03.06-2033.03.03``: 2033.03.05 or 2023.03.04), ``sure`` (the
    recognizer's confidence in each character of ``text``) decides: the digits it was less sure of are the
    misread ones. None when two fit as well and nothing decides, or when the dates as read keep the rule."""
    fixed = text.translate(_DIGIT_FIX)
    at = [i for i, ch in enumerate(fixed) if ch.isdigit()]
    digits = "".join(fixed[i] for i in at)
    if not 15 <= len(digits) <= 17:
        return None
    conf = [sure[i] for i in at] if sure is not None and len(sure) == len(text) else None
    best: list[tuple[int, float, str]] = []  # (digits changed, confidence in them as read, period)
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
            changed = [k for k, (a, b) in enumerate(zip(guess, other, strict=True)) if a != b]
            if len(changed) <= 2:
                first = len(digits) - 8 if known_first else 0  # where ``other`` starts among the digits
                cost = sum(conf[first + k] for k in changed) if conf is not None else 0.0
                best.append((len(changed), cost, f"{start:%Y.%m.%d}-{end:%Y.%m.%d}"))
    best.sort()
    if not best or best[0][0] == 0:
        return None
    rivals = [b for b in best[1:] if b[0] == best[0][0] and b[2] != best[0][2]]
    if rivals and (conf is None or rivals[0][1] - best[0][1] < _SURER):
        return None
    return best[0][2]


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
