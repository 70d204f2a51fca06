"""Cards that are not the front of a permit, for the engine to refuse: the permit's back (the holder's notes),
a resident ID card (front and back), a passport's data page, a driving licence and a blank card.

They share the front's size, tint and security pattern where the real ones do, and carry the words and values
that make them dangerous look-alikes: the passport is issued by the same authority and prints a name, a sex
and a number; the ID card's back prints an authority and a validity period; the permit's back its number in a
machine-readable line. Every person is fictional (the generator's own names and dates).
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from .fields import AUTHORITY, add_years, fmt, random_fields
from .fonts import font
from .render import CARD_W, FAMILIES, Card, _background, _jitter, _portrait
from .texts import ID_TITLE, NOTES, NOTES_TITLE

OTHERS = ("permit-back", "id-front", "id-back", "passport", "licence", "blank")


def _card(rng: random.Random, ratio: float, tint: tuple[int, int, int], guilloche: float) -> Image.Image:
    fam = FAMILIES[rng.choice(list(FAMILIES))]
    fam = type(fam)(**{**fam.__dict__, "tint": tint, "guilloche": guilloche})
    return _background(rng, fam, CARD_W, round(CARD_W / ratio))


def permit_back(rng: random.Random, kind: str | None = None) -> Card:
    """The back of a permit: the notes under their title, and (half the time) a machine-readable line that
    holds the permit number, as a card-type permit prints."""
    fam = FAMILIES[rng.choice(list(FAMILIES))]
    card = _background(rng, fam, CARD_W, round(CARD_W / fam.ratio))
    draw = ImageDraw.Draw(card)
    ink = _jitter(rng, fam.ink, 12)
    x, y = 50 + rng.randint(-10, 20), 28 + rng.randint(0, 10)
    draw.text((CARD_W // 2 - 90 + rng.randint(-30, 30), y), NOTES_TITLE, font=font(34, "Bold", fam.face), fill=ink)
    y += 62
    size = rng.randint(18, 22)
    for note in NOTES[: rng.randint(4, len(NOTES))]:
        draw.text((x, y), note, font=font(size, "Regular", fam.face), fill=ink)
        y += size + rng.randint(10, 16)
    if rng.random() < 0.5:
        fields = random_fields(rng, kind or rng.choice(("hk", "macao", "taiwan")))
        mrz = f"C{fields['permitNumber'][0]}{fields['permitNumber'][1:]}<{fields['issueCount']}<<" \
              f"{fields['birthDate'].replace('.', '')[2:]}<{fields['validPeriod'][-10:].replace('.', '')[2:]}<<<<6"
        draw.text((x, card.height - 60), mrz, font=font(24, "Regular", "sans"), fill=ink)
    return Card(card, None, {})


def _birth(rng: random.Random) -> dt.date:
    return dt.date(1950, 1, 1) + dt.timedelta(days=rng.randrange(0, 365 * 50))


def id_front(rng: random.Random) -> Card:
    """A resident ID card's front: labels left of values, the photo right, the 18-digit number at the bottom."""
    card = _card(rng, 1.58, (226, 234, 238), 0.3)
    draw = ImageDraw.Draw(card)
    fields = random_fields(rng, "hk")
    birth = _birth(rng)
    lab, val = font(20, "Regular", "sans"), font(26, "Regular", "sans")
    label_ink, ink = (40, 90, 150), (20, 20, 20)
    rows = (("姓名", fields["nameCn"]), ("性别", f"{fields['sex']}    民族  汉"),
            ("出生", f"{birth.year}年{birth.month}月{birth.day}日"), ("住址", "广东省深圳市福田区华强北路"),
            ("", f"{rng.randint(1, 300)}号"))
    for i, (label, value) in enumerate(rows):
        y = 50 + 62 * i
        if label:
            draw.text((50, y + 4), label, font=lab, fill=label_ink)
        draw.text((130, y), value, font=val, fill=ink)
    number = f"44030{rng.randint(1, 9)}{birth:%Y%m%d}{rng.randint(100, 999)}{rng.choice('0123456789X')}"
    draw.text((50, card.height - 70), "公民身份号码", font=lab, fill=label_ink)
    draw.text((210, card.height - 76), number, font=font(30, "Bold", "sans"), fill=ink)
    face = (CARD_W - 250, 70, 190, 240)
    card.paste(_portrait(rng, face[2], face[3]), face[:2])
    return Card(card, face, {})


def id_back(rng: random.Random) -> Card:
    """A resident ID card's back: the national title, the issuing police office and a validity period."""
    card = _card(rng, 1.58, (230, 236, 226), 0.5)
    draw = ImageDraw.Draw(card)
    draw.text((200, 110), ID_TITLE, font=font(40, "Bold", "serif"), fill=(20, 20, 20))
    start = dt.date(2010, 1, 1) + dt.timedelta(days=rng.randrange(0, 3650))
    end = add_years(start, rng.choice((10, 20)))
    lab, val = font(20, "Regular", "sans"), font(24, "Regular", "sans")
    draw.text((160, 380), "签发机关", font=lab, fill=(40, 40, 40))
    draw.text((270, 376), "深圳市公安局福田分局", font=val, fill=(20, 20, 20))
    draw.text((160, 430), "有效期限", font=lab, fill=(40, 40, 40))
    draw.text((270, 426), f"{fmt(start)}-{fmt(end) if rng.random() < 0.8 else '长期'}", font=val, fill=(20, 20, 20))
    return Card(card, None, {})


def passport(rng: random.Random) -> Card:
    """A passport's data page: bilingual labels above values, the same authority as the permit, a name,
    a sex, a letter and 8 digits, and two machine-readable lines."""
    card = _card(rng, 1.42, (232, 222, 226), 0.6)
    draw = ImageDraw.Draw(card)
    f = random_fields(rng, "hk")
    lab, val = font(13, "Regular", "sans"), font(22, "Regular", "sans")
    ink = (20, 20, 30)
    draw.text((240, 16), "中华人民共和国    护照    PASSPORT", font=font(26, "Bold", "serif"), fill=(60, 30, 40))
    number = f"E{rng.randrange(10**8):08d}"
    birth = _birth(rng)
    issue = dt.date(2016, 1, 1) + dt.timedelta(days=rng.randrange(0, 2500))
    sex = "男/M" if f["sex"] == "男" else "女/F"
    cells = (("类型/Type", "P", 230, 70), ("国家码/Country Code", "CHN", 360, 70),
             ("护照号/Passport No.", number, 560, 70), ("姓名/Name", f"{f['nameCn']}  {f['nameEn']}", 230, 125),
             ("性别/Sex", sex, 230, 180),
             ("出生地点/Place of birth", "广东/GUANGDONG", 420, 180),
             ("出生日期/Date of birth", f"{birth:%d %b %Y}".upper(), 230, 235),
             ("签发日期/Date of issue", f"{issue:%d %b %Y}".upper(), 230, 290),
             ("有效期至/Date of expiry", f"{add_years(issue, 10):%d %b %Y}".upper(), 500, 290),
             ("签发机关/Authority", rng.choice((AUTHORITY, "国家移民管理局 NIA")), 230, 345))
    for label, value, x, y in cells:
        draw.text((x, y), label, font=lab, fill=(90, 70, 80))
        draw.text((x, y + 16), value, font=val, fill=ink)
    surname, given = f["nameEn"].split(",")
    mono = font(24, "Regular", "sans")
    draw.text((30, card.height - 110), f"POCHN{surname}<<{given}".ljust(44, "<"), font=mono, fill=ink)
    draw.text((30, card.height - 70), f"{number}<0CHN{birth:%y%m%d}1M{issue:%y%m%d}<<<<<<<<<<<<<<<0", font=mono,
              fill=ink)
    face = (36, 70, 170, 220)
    card.paste(_portrait(rng, face[2], face[3]), face[:2])
    return Card(card, face, {})


def licence(rng: random.Random) -> Card:
    """A driving licence: a bilingual title, labels left of values, birth and issue dates, a validity
    period written with 至."""
    card = _card(rng, 1.45, (236, 232, 240), 0.2)
    draw = ImageDraw.Draw(card)
    f = random_fields(rng, "taiwan")
    birth = _birth(rng)
    draw.text((140, 14), "中华人民共和国机动车驾驶证", font=font(32, "Bold", "sans"), fill=(20, 30, 90))
    draw.text((160, 56), "Driving License of the People's Republic of China", font=font(16, "Regular", "sans"),
              fill=(20, 30, 90))
    lab, val = font(15, "Regular", "sans"), font(22, "Regular", "sans")
    first = dt.date(2005, 1, 1) + dt.timedelta(days=rng.randrange(0, 4000))
    start = add_years(first, 6)
    rows = (("证号", f"11010{rng.randint(1, 9)}{birth:%Y%m%d}{rng.randint(1000, 9999)}"),
            ("姓名 Name", f"{f['nameCn']}      性别 Sex  {f['sex']}      国籍 Nationality  中国"),
            ("住址 Address", "北京市朝阳区建国路"), ("出生日期 Date of Birth", f"{birth:%Y-%m-%d}"),
            ("初次领证日期 Issue Date", f"{first:%Y-%m-%d}"), ("准驾车型 Class", "C1"),
            ("有效期限 Valid Period", f"{start:%Y-%m-%d} 至 {add_years(start, 10):%Y-%m-%d}"))
    for i, (label, value) in enumerate(rows):
        y = 100 + 56 * i
        draw.text((40, y + 6), label, font=lab, fill=(60, 60, 90))
        draw.text((40 + int(draw.textlength(label, font=lab)) + 16, y), value, font=val, fill=(20, 20, 20))
    face = (CARD_W - 200, 150, 150, 200)
    card.paste(_portrait(rng, face[2], face[3]), face[:2])
    return Card(card, face, {})


def blank(rng: random.Random) -> Card:
    """A card with its tint and security pattern and nothing printed (or a plain white one)."""
    if rng.random() < 0.3:
        return Card(Image.new("RGB", (CARD_W, round(CARD_W / 1.58)), _jitter(rng, (240, 240, 236), 8)), None, {})
    fam = FAMILIES[rng.choice(list(FAMILIES))]
    return Card(_background(rng, fam, CARD_W, round(CARD_W / fam.ratio)), None, {})


def other_card(rng: random.Random, what: str) -> Card:
    makers: dict[str, Any] = {"permit-back": permit_back, "id-front": id_front, "id-back": id_back,
                              "passport": passport, "licence": licence, "blank": blank}
    if what not in makers:
        raise ValueError(f"what must be one of {OTHERS}, not {what!r}")
    card: Card = makers[what](rng)
    return card


def as_array(card: Card) -> np.ndarray[Any, Any]:
    return np.asarray(card.image)
