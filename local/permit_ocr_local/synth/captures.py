"""How a person sends a card, beyond a phone photo of it on a desk: capture families.

Each takes the card (RGB) and card-frame points and returns the image a person would upload, the points in
its pixels and a JPEG quality. The engine is scored per capture family, each held out in turn
(``bench/bench_engine.py``):

- ``copier``: a whole A4 page from an office copier or scanner, the card a third of the page wide, skewed a
  few degrees, black and white (thresholded or halftoned), speckled, a dark band where the lid did not close;
- ``screenshot``: a phone's image viewer: status bar (clock, battery), a title bar with the photo's date, the
  card photo in the middle, a date-time stamp below it, a tool bar, 480 px wide, heavy JPEG;
- ``lowlight``: a phone photo in a dim room: dark, noisy, a warm cast, motion blur;
- ``corner``: a large photo (2000-3000 px) with the card small in one corner (at least 420 px wide);
- ``chat`` (blind): a chat app's screenshot, the card photo an image message between text messages;
- ``duplex`` (blind): an A4 copy of the front and the back of the permit on one page, with a handwritten-style
  note of what the copy is for.

``chat`` and ``duplex`` were written with the others, before any tuning, and never looked at (their images,
their misreads) while the engine's rules were changed: see ``BLIND_CAPTURES``.
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageDraw

from . import degrade as _degrade
from .fonts import font

Img = np.ndarray[Any, Any]
Pts = np.ndarray[Any, Any]

CAPTURES = ("copier", "screenshot", "lowlight", "corner", "chat", "duplex")
BLIND_CAPTURES = ("chat", "duplex")


def _f32(rows: Any) -> Img:
    return np.asarray(rows, dtype=np.float32)


def _place(card: Img, pts: Pts, canvas: Img, quad: Pts) -> tuple[Img, Pts]:
    """Warp ``card`` onto ``canvas`` (both RGB) so its corners land on ``quad``; returns canvas and points."""
    ch, cw = card.shape[:2]
    h, w = canvas.shape[:2]
    m = cv2.getPerspectiveTransform(_f32([[0, 0], [cw, 0], [cw, ch], [0, ch]]), _f32(quad))
    mask = cv2.warpPerspective(np.ones((ch, cw), np.float32), m, (w, h))[..., None]
    warped = cv2.warpPerspective(card, m, (w, h), flags=cv2.INTER_AREA if m[0, 0] < 1 else cv2.INTER_LINEAR)
    out = (canvas.astype(np.float32) * (1 - mask) + warped.astype(np.float32) * mask).astype(np.uint8)
    moved = cv2.perspectiveTransform(pts.reshape(-1, 1, 2).astype(np.float64), m.astype(np.float64)).reshape(-1, 2)
    return out, moved


def _rect(x: float, y: float, w: float, h: float, deg: float = 0.0) -> Pts:
    c = np.array([x + w / 2, y + h / 2])
    a = np.deg2rad(deg)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return np.array([[-w / 2, -h / 2], [w / 2, -h / 2], [w / 2, h / 2], [-w / 2, h / 2]]) @ rot.T + c


# --- copies -------------------------------------------------------------------------------------------

def _copier_look(rng: random.Random, page: Img) -> Img:
    """A copier's or scanner's black and white: thresholded or halftoned, speckle, a dark lid edge."""
    gray: Img = cv2.GaussianBlur(cv2.cvtColor(page, cv2.COLOR_RGB2GRAY).astype(np.float32), (0, 0),
                                 rng.uniform(0.5, 1.0))
    h, w = gray.shape
    nrng = np.random.default_rng(rng.randrange(2**32))
    style = rng.choice(("threshold", "halftone", "grey"))
    if style == "threshold":
        level = rng.uniform(150, 190)  # a copier's default darkness keeps thin strokes
        out = np.where(gray + nrng.normal(0, 10, gray.shape) > level, 250.0, 15.0)
    elif style == "halftone":  # an ordered screen: tints and the photo become dots, print stays solid
        cell = rng.choice((3, 4))
        yy, xx = np.mgrid[0:h, 0:w]
        screen = 45 + (np.sin(np.pi * xx / cell) * np.sin(np.pi * yy / cell) + 1) * 85
        out = np.where(gray * rng.uniform(1.0, 1.25) > screen, 245.0, 20.0)
    else:
        out = np.clip((gray - 128) * rng.uniform(1.6, 2.2) + 150, 0, 255)
    speck = nrng.random(gray.shape)
    out[speck < rng.uniform(0.001, 0.006)] = 10
    out[speck > 1 - rng.uniform(0.001, 0.004)] = 250
    band = rng.randint(int(0.01 * w), int(0.05 * w))  # the lid's shadow along one or two edges
    for side in rng.sample(("top", "bottom", "left", "right"), rng.randint(1, 2)):
        ramp = np.linspace(25, 1, band)[:, None] if side in ("top", "bottom") else np.linspace(25, 1, band)[None, :]
        dark = np.clip(ramp / 25, 0, 1) * rng.uniform(0.7, 1.0)
        if side == "top":
            out[:band] = out[:band] * (1 - dark) + 20 * dark
        elif side == "bottom":
            out[-band:] = out[-band:] * (1 - dark[::-1]) + 20 * dark[::-1]
        elif side == "left":
            out[:, :band] = out[:, :band] * (1 - dark) + 20 * dark
        else:
            out[:, -band:] = out[:, -band:] * (1 - dark[:, ::-1]) + 20 * dark[:, ::-1]
    g = np.clip(out, 0, 255).astype(np.uint8)
    return cv2.cvtColor(g, cv2.COLOR_GRAY2RGB)


def _page(rng: random.Random) -> tuple[Img, int]:
    w = rng.choice((1240, 1240, 1654))  # A4 at 150 and 200 dpi
    h = round(w * 297 / 210)
    return np.full((h, w, 3), rng.randint(238, 252), np.uint8), w


def copier(rng: random.Random, card: Img, pts: Pts) -> tuple[Img, Pts, int]:
    page, w = _page(rng)
    h = page.shape[0]
    ch, cw = card.shape[:2]
    cw2 = w * rng.uniform(0.3, 0.42)
    ch2 = cw2 * ch / cw
    x = rng.uniform(0.06, 0.94) * w - cw2 / 2 if rng.random() < 0.5 else rng.uniform(0.04, 0.12) * w
    y = rng.uniform(0.04, 0.35) * h
    x = min(max(x, 0.03 * w), 0.97 * w - cw2)
    img, moved = _place(card, pts, page, _rect(x, y, cw2, ch2, rng.uniform(-4, 4)))
    return _copier_look(rng, img), moved, rng.randint(55, 85)


def duplex(rng: random.Random, card: Img, pts: Pts, back: Img) -> tuple[Img, Pts, int]:
    """Front above back (or side by side) on one A4 page, and a note of what the copy is for."""
    page, w = _page(rng)
    h = page.shape[0]
    ch, cw = card.shape[:2]
    cw2 = w * rng.uniform(0.34, 0.44)
    ch2 = cw2 * ch / cw
    side_by_side = rng.random() < 0.3
    x, y = rng.uniform(0.08, 0.2) * w, rng.uniform(0.06, 0.18) * h
    if side_by_side:
        cw2 = min(cw2, 0.42 * w)
        ch2 = cw2 * ch / cw
    deg = rng.uniform(-3, 3)
    bx, by = (x + cw2 + 0.05 * w, y) if side_by_side else (x + rng.uniform(-0.02, 0.05) * w, y + ch2 + 0.06 * h)
    front_first = rng.random() < 0.75
    fq, bq = (_rect(x, y, cw2, ch2, deg), _rect(bx, by, cw2, ch2, deg + rng.uniform(-1, 1)))
    if not front_first:
        fq, bq = bq, fq
    page, _ = _place(back, np.zeros((4, 2)), page, bq)
    page, moved = _place(card, pts, page, fq)
    pil = Image.fromarray(page)
    draw = ImageDraw.Draw(pil)
    note = rng.choice(("复印件仅供办理业务使用", "再复印无效"))
    size = round(w * rng.uniform(0.025, 0.035))
    ny = max(by, y) + ch2 + rng.uniform(0.04, 0.12) * h if not side_by_side else y + ch2 + 0.1 * h
    draw.text((rng.uniform(0.1, 0.4) * w, min(ny, h - 2 * size)), note, font=font(size, "Regular", "serif"),
              fill=(40, 40, 40))
    return _copier_look(rng, np.asarray(pil)), moved, rng.randint(55, 85)


# --- screens ------------------------------------------------------------------------------------------

def _clock(rng: random.Random) -> tuple[str, dt.datetime]:
    when = dt.datetime(2024, 1, 1) + dt.timedelta(minutes=rng.randrange(0, 60 * 24 * 700))
    return f"{when:%H:%M}", when


def _status_bar(rng: random.Random, draw: ImageDraw.ImageDraw, w: int, ink: tuple[int, int, int], clock: str) -> int:
    s = round(w * 0.036)
    draw.text((round(0.06 * w), round(0.012 * w)), clock, font=font(s, "Bold", "sans"), fill=ink)
    draw.text((round(0.7 * w), round(0.012 * w)), f"5G  {rng.randint(8, 99)}%", font=font(s, "Regular", "sans"),
              fill=ink)
    return round(0.07 * w)


def _photo_of(rng: random.Random, card: Img, pts: Pts) -> tuple[Img, Pts]:
    """What is shown on the screen: the card itself (a saved scan) or a phone photo of it."""
    if rng.random() < 0.4:
        return card, pts
    img, moved, _q = _degrade.phone_photo(rng, card, pts)
    return img, moved


def screenshot(rng: random.Random, card: Img, pts: Pts) -> tuple[Img, Pts, int]:
    w = rng.choice((480, 480, 540))
    h = round(w * rng.choice((2.0, 2.17, 2.22)))
    dark = rng.random() < 0.7
    bg, ink = ((0, 0, 0), (235, 235, 235)) if dark else ((246, 246, 246), (20, 20, 20))
    pil = Image.new("RGB", (w, h), bg)
    draw = ImageDraw.Draw(pil)
    clock, when = _clock(rng)
    top = _status_bar(rng, draw, w, ink, clock)
    s = round(w * 0.038)
    draw.text((round(0.05 * w), top + 10), "<", font=font(s + 6, "Bold", "sans"), fill=ink)
    title = f"{when.year}年{when.month}月{when.day}日" if rng.random() < 0.5 else f"{when:%Y-%m-%d}"
    draw.text((round(0.3 * w), top + 8), title, font=font(s, "Bold", "sans"), fill=ink)
    draw.text((round(0.36 * w), top + 14 + s), f"{clock}", font=font(round(s * 0.8), "Regular", "sans"), fill=ink)
    photo, moved = _photo_of(rng, card, pts)
    ph, pw = photo.shape[:2]
    scale = w / pw * rng.uniform(0.96, 1.0)
    sh = round(ph * scale)
    y = round((h - sh) / 2 + rng.uniform(-0.05, 0.05) * h)
    x = round((w - pw * scale) / 2)
    small = cv2.resize(photo, (round(pw * scale), sh), interpolation=cv2.INTER_AREA)
    pil.paste(Image.fromarray(small), (x, y))
    moved = moved * scale + np.array([x, y])
    stamp = f"{when:%Y-%m-%d %H:%M}" if rng.random() < 0.5 else f"{when:%Y/%m/%d} {clock}"
    if rng.random() < 0.5:  # the camera's stamp on the photo itself, orange, bottom right
        draw.text((x + round(0.55 * small.shape[1]), y + sh - round(0.09 * sh)), stamp,
                  font=font(round(w * 0.032), "Bold", "sans"), fill=(255, 150, 40))
    else:  # the viewer's caption under the photo
        draw.text((round(0.08 * w), y + sh + 14), stamp, font=font(round(w * 0.034), "Regular", "sans"), fill=ink)
    by = h - round(0.09 * w)
    for i, word in enumerate(rng.sample(("分享", "编辑", "收藏", "删除", "更多"), 4)):
        draw.text((round((0.08 + 0.24 * i) * w), by), word, font=font(round(w * 0.032), "Regular", "sans"), fill=ink)
    return np.asarray(pil), moved, rng.randint(25, 45)


def chat(rng: random.Random, card: Img, pts: Pts) -> tuple[Img, Pts, int]:
    """A chat screenshot: text bubbles above and below, the card photo as an image message."""
    w = rng.choice((540, 720))
    h = round(w * 2.1)
    pil = Image.new("RGB", (w, h), (237, 237, 237))
    draw = ImageDraw.Draw(pil)
    clock, when = _clock(rng)
    top = _status_bar(rng, draw, w, (20, 20, 20), clock)
    s = round(w * 0.04)
    draw.text((round(0.4 * w), top + 6), rng.choice(("张先生", "李经理", "客服")), font=font(s, "Bold", "sans"),
              fill=(20, 20, 20))
    y = top + 3 * s
    texts = ["好的，我把证件照片发给你", "请核对一下信息", "明天下午三点在大厅见",
             f"电话 1{rng.randint(3, 9)}{rng.randrange(10**9):09d}", f"{when.month}月{when.day}日 {clock}"]
    rng.shuffle(texts)

    def bubble(text: str, mine: bool) -> None:
        nonlocal y
        tw = draw.textlength(text, font=font(s, "Regular", "sans"))
        x0 = w - tw - 0.18 * w if mine else 0.16 * w
        draw.rounded_rectangle((x0 - 12, y - 8, x0 + tw + 12, y + s + 10), 8,
                               fill=(149, 236, 105) if mine else (255, 255, 255))
        draw.text((x0, y), text, font=font(s, "Regular", "sans"), fill=(20, 20, 20))
        y += s + 36

    for text in texts[: rng.randint(1, 3)]:
        bubble(text, rng.random() < 0.5)
    photo, moved = _photo_of(rng, card, pts)
    ph, pw = photo.shape[:2]
    scale = w * rng.uniform(0.5, 0.68) / pw
    small = cv2.resize(photo, (round(pw * scale), round(ph * scale)), interpolation=cv2.INTER_AREA)
    mine = rng.random() < 0.5
    x = round(w - small.shape[1] - 0.16 * w) if mine else round(0.16 * w)
    pil.paste(Image.fromarray(small), (x, round(y)))
    moved = moved * scale + np.array([x, round(y)])
    y += small.shape[0] + 30
    for text in texts[3:]:
        if y < h - 3 * s:
            bubble(text, rng.random() < 0.5)
    draw.rectangle((0, h - round(0.1 * w), w, h), fill=(247, 247, 247))
    draw.text((round(0.35 * w), h - round(0.07 * w)), "按住说话", font=font(s, "Regular", "sans"), fill=(60, 60, 60))
    return np.asarray(pil), moved, rng.randint(35, 60)


# --- photos -------------------------------------------------------------------------------------------

def lowlight(rng: random.Random, card: Img, pts: Pts) -> tuple[Img, Pts, int]:
    """A phone photo in a dim room: the camera raises its gain, so the picture is darker than by day but
    mostly noisy (grain in brightness and colour), with a warm cast from tungsten light and a longer
    exposure's shake. (First written darker still, 0.22-0.42 of the light: its JPEG blocks made the cards
    unreadable to a person, which no camera's auto-exposure would deliver.)"""
    img, moved, _q = _degrade.phone_photo(rng, card, pts)
    f = img.astype(np.float32) * rng.uniform(0.45, 0.7)
    f *= np.array([1.0, rng.uniform(0.82, 0.92), rng.uniform(0.6, 0.75)], np.float32)  # tungsten: warm, little blue
    nrng = np.random.default_rng(rng.randrange(2**32))
    f += nrng.normal(0, rng.uniform(3, 7), f.shape) + nrng.normal(0, 3, f.shape[:2])[..., None]
    out = np.clip(f, 0, 255).astype(np.uint8)
    blurred = _degrade.motion_blur(rng, out, 2, 6)
    return blurred, moved, rng.randint(50, 75)


def corner(rng: random.Random, card: Img, pts: Pts) -> tuple[Img, Pts, int]:
    """A large photo (a table, a floor), the card small in one corner, slightly turned."""
    w = rng.choice((2000, 2400, 3000))
    h = round(w * rng.choice((0.75, 0.5625, 1.333)))
    canvas = _degrade.desk(rng, w, h)
    ch, cw = card.shape[:2]
    # at least 420 px wide, as a phone's 12-MP photo shows a card in its corner (first written 16-26 % of a
    # 1600-2400 px frame: a 256-px card's print is 7 px high, more than a person can read)
    cw2 = max(420.0, w * rng.uniform(0.16, 0.24))
    ch2 = cw2 * ch / cw
    left, up = rng.random() < 0.5, rng.random() < 0.5
    x = rng.uniform(0.01, 0.05) * w if left else w - cw2 - rng.uniform(0.01, 0.05) * w
    y = rng.uniform(0.01, 0.05) * h if up else h - ch2 - rng.uniform(0.01, 0.05) * h
    img, moved = _place(card, pts, canvas, _rect(x, y, cw2, ch2, rng.uniform(-8, 8)))
    img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.6, 1.2))
    noise = np.random.default_rng(rng.randrange(2**32)).normal(0, rng.uniform(2, 5), img.shape)
    return np.clip(img.astype(np.float32) + noise, 0, 255).astype(np.uint8), moved, rng.randint(60, 85)


def capture(rng: random.Random, name: str, card: Img, pts: Pts, back: Img | None = None) -> tuple[Img, Pts, int]:
    """The card (RGB) as capture family ``name`` delivers it."""
    if name == "duplex":
        if back is None:
            raise ValueError("duplex needs the card's back")
        return duplex(rng, card, pts, back)
    makers = {"copier": copier, "screenshot": screenshot, "lowlight": lowlight, "corner": corner, "chat": chat}
    if name not in makers:
        raise ValueError(f"capture must be one of {CAPTURES}, not {name!r}")
    return makers[name](rng, card, pts)


def screen_without_card(rng: random.Random) -> Img:
    """A screenshot that holds no card: a chat of text only, or the viewer showing a desk photo."""
    if rng.random() < 0.5:
        desk = _degrade.desk(rng, 1400, 1050)
        img, _, _ = screenshot(rng, desk, np.zeros((4, 2)))
        return img
    blank = np.full((10, 10, 3), 237, np.uint8)
    img, _, _ = chat(rng, blank, np.zeros((4, 2)))
    return img
