"""Draw the front of a permit like the real card: title across the top, photo left, fields right.

Coordinates are card pixels on an 848x536 card (ID-1 ratio), which is pasted onto a 928x626 canvas like
the API's sample photo (card corners near (46,30)-(892,567)).
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from .fonts import font

CARD_W, CARD_H = 848, 536
CANVAS_W, CANVAS_H = 928, 626
PHOTO = (34, 128, 186, 262)  # x, y, w, h on the card
VX = 250  # left edge of the value column
INK = (28, 28, 32)
LABEL_INK = (70, 78, 90)

# (field, x, y, font size); labels are drawn small above their values as on the real card
_VALUES: dict[str, tuple[int, int, int]] = {
    "nameCn": (VX, 92, 32),
    "nameEn": (VX, 140, 26),
    "birthDate": (VX, 204, 26),
    "sex": (560, 202, 28),
    "validPeriod": (VX, 268, 26),
    "issueAuthority": (VX, 332, 28),
    "issuePlace": (600, 332, 28),
    "permitNumber": (VX, 400, 30),
    "issueCount": (600, 400, 30),
}
_LABELS: tuple[tuple[str, int, int], ...] = (
    ("姓名 Name", VX, 75),
    ("出生日期 Date of birth", VX, 184),
    ("性别 Sex", 560, 184),
    ("有效期限 Period of validity", VX, 248),
    ("签发机关 Issuing authority", VX, 312),
    ("证件号码 Permit No.", VX, 380),
)
_COUNT_LABEL = {"hk": "换证次数 Issue", "macao": "换证次数 Issue", "taiwan": "签发次数 Issue"}


@dataclass(frozen=True)
class Card:
    image: Image.Image  # RGB, CARD_W x CARD_H
    face: tuple[int, int, int, int]  # x, y, w, h of the photo on the card
    boxes: dict[str, tuple[int, int, int, int]]  # field -> text box (x0, y0, x1, y1) on the card


@functools.lru_cache(maxsize=1)
def _astronaut() -> np.ndarray[Any, Any]:
    from skimage import data  # the public-domain NASA portrait ships inside the scikit-image wheel

    img: np.ndarray[Any, Any] = data.astronaut()
    return img


def _portrait(rng: random.Random, w: int, h: int) -> Image.Image:
    src = _astronaut()
    x0, y0 = 120 + rng.randint(-15, 15), rng.randint(0, 20)
    cw = 230 + rng.randint(-15, 15)
    crop = src[y0 : y0 + int(cw * h / w), x0 : x0 + cw]
    photo = Image.fromarray(crop).resize((w, h), Image.Resampling.BILINEAR)
    backdrop = Image.new("RGB", (w, h), (236, 240, 245))
    return Image.blend(photo, backdrop, 0.08)


def _background(rng: random.Random, kind: str) -> Image.Image:
    """Pale tinted card with a soft gradient and faint wavy security lines (low contrast, like the print)."""
    tint = (222, 236, 230) if kind == "taiwan" else (230, 232, 214)
    base = [c + rng.randint(-6, 6) for c in tint]
    yy, xx = np.mgrid[0:CARD_H, 0:CARD_W].astype(np.float32)
    arr = np.empty((CARD_H, CARD_W, 3), np.float32)
    shade = 1.0 - 0.05 * (xx / CARD_W) - 0.03 * (yy / CARD_H)
    for c in range(3):
        arr[..., c] = base[c] * shade
    phase = rng.uniform(0, 6.28)
    waves = np.sin(xx / 23.0 + 4 * np.sin(yy / 41.0 + phase)) > 0.93
    arr[waves] -= 10
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def render_card(rng: random.Random, kind: str, fields: dict[str, str]) -> Card:
    card = _background(rng, kind)
    draw = ImageDraw.Draw(card)
    boxes: dict[str, tuple[int, int, int, int]] = {}

    title = fields["permitType"]
    title_font = font(40, "Bold")
    tw = draw.textlength(title, font=title_font)
    tx, ty = int((CARD_W - tw) / 2) + 20, 12
    draw.text((tx, ty), title, font=title_font, fill=(20, 40, 70))
    boxes["permitType"] = _bbox(draw, (tx, ty), title, title_font)
    subtitle = "MAINLAND TRAVEL PERMIT FOR " + (
        "TAIWAN RESIDENTS" if kind == "taiwan" else "HONG KONG AND MACAO RESIDENTS"
    )
    draw.text((tx + 4, ty + 48), subtitle, font=font(11), fill=LABEL_INK)

    labels = [*_LABELS, (_COUNT_LABEL[kind], 600, 380)]
    if kind == "taiwan":
        labels.append(("签发地点 Place", 600, 312))
    for text, x, y in labels:
        draw.text((x, y), text, font=font(13), fill=LABEL_INK)

    for field, (x, y, size) in _VALUES.items():
        value = fields.get(field, "")
        if not value:
            continue
        f = font(size, "Bold" if field == "nameCn" else "Regular")
        draw.text((x, y), value, font=f, fill=INK)
        boxes[field] = _bbox(draw, (x, y), value, f)

    px, py, pw, ph = PHOTO
    card.paste(_portrait(rng, pw, ph), (px, py))
    return Card(card, PHOTO, boxes)


def _bbox(draw: ImageDraw.ImageDraw, xy: tuple[int, int], text: str, f: Any) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = draw.textbbox(xy, text, font=f)
    return int(x0), int(y0), int(x1), int(y1)


def compose(rng: random.Random, card: Card) -> tuple[np.ndarray[Any, Any], tuple[int, int]]:
    """Place the card on a desk-like background; returns RGB canvas and the card's top-left offset."""
    tone = rng.randint(40, 110)
    tint = np.array([tone + rng.randint(-15, 15) for _ in range(3)], np.float32)
    nrng = np.random.default_rng(rng.randrange(2**32))
    canvas = np.clip(tint + nrng.normal(0, 6, (CANVAS_H, CANVAS_W, 3)), 0, 255).astype(np.uint8)
    ox, oy = 40 + rng.randint(-8, 8), 45 + rng.randint(-10, 10)
    canvas[oy : oy + CARD_H, ox : ox + CARD_W] = np.asarray(card.image)
    return canvas, (ox, oy)
