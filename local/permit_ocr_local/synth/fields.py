"""Random but rule-consistent field values for the two permit kinds (see docs: permits.md)."""

from __future__ import annotations

import datetime as dt
import random

from .names import random_name

KINDS = ("hk", "macao", "taiwan")
TITLE_HK_MACAO = "港澳居民来往内地通行证"
TITLE_TAIWAN = "台湾居民来往大陆通行证"
AUTHORITY = "公安部出入境管理局"
# places printed on Taiwan residents' permits issued by authorised local offices
TAIWAN_PLACES = ("福建", "上海", "北京", "广东", "江苏", "浙江", "厦门", "福州")
FIELDS = (
    "permitType", "nameCn", "nameEn", "birthDate", "sex", "validPeriod",
    "issueAuthority", "issuePlace", "permitNumber", "issueCount",
)


def fmt(d: dt.date) -> str:
    return d.strftime("%Y.%m.%d")


def add_years(d: dt.date, years: int) -> dt.date:
    try:
        return d.replace(year=d.year + years)
    except ValueError:  # 29 Feb -> 1 Mar in a common year
        return dt.date(d.year + years, 3, 1)


def validity_years(kind: str, birth: dt.date, start: dt.date) -> int:
    """10 years for adult HK/Macao holders, 5 for minors; Taiwan permits run 5 years."""
    if kind == "taiwan":
        return 5
    return 10 if add_years(birth, 18) <= start else 5


def random_fields(rng: random.Random, kind: str) -> dict[str, str]:
    name_cn, name_en = random_name(rng)
    start = dt.date(2015, 1, 1) + dt.timedelta(days=rng.randrange(0, 365 * 10))
    birth = dt.date(1945, 1, 1) + dt.timedelta(days=rng.randrange(0, (start - dt.date(1945, 1, 1)).days - 400))
    end = add_years(start, validity_years(kind, birth, start)) - dt.timedelta(days=1)
    if kind == "taiwan":
        number, count, place = f"{rng.randrange(10**8):08d}", f"{rng.randint(1, 9):02d}", rng.choice(TAIWAN_PLACES)
    else:
        letter = "H" if kind == "hk" else "M"
        number, count, place = f"{letter}{rng.randrange(10**8):08d}", f"{rng.randint(0, 4):02d}", ""
    return {
        "permitType": TITLE_TAIWAN if kind == "taiwan" else TITLE_HK_MACAO,
        "nameCn": name_cn,
        "nameEn": name_en,
        "birthDate": fmt(birth),
        "sex": rng.choice("男女"),
        "validPeriod": f"{fmt(start)}-{fmt(end)}",
        "issueAuthority": AUTHORITY,
        "issuePlace": place,
        "permitNumber": number,
        "issueCount": count,
    }
