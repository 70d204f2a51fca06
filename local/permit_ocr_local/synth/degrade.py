"""Photo-like degradations; geometric ones also move the tracked points (card corners, face box)."""

from __future__ import annotations

import random
from typing import Any

import cv2
import numpy as np

Img = np.ndarray[Any, Any]
Pts = np.ndarray[Any, Any]

DEGRADATIONS = (
    "rotate", "rot90", "rot180", "rot270", "perspective", "blur", "noise", "jpeg", "light", "photocopy",
)
# applied in this order whatever order they are asked in: light and copying happen to the paper,
# then the camera (geometry), then the sensor and the encoder
_ORDER = {name: i for i, name in enumerate(("light", "photocopy", "perspective", "rotate", "rot90", "rot180",
                                            "rot270", "blur", "noise", "jpeg"))}


def _f32(rows: Any) -> Img:
    return np.asarray(rows, dtype=np.float32)


def _warp(img: Img, pts: Pts, m: Img, size: tuple[int, int], border: tuple[int, int, int]) -> tuple[Img, Pts]:
    out = cv2.warpPerspective(img, m, size, flags=cv2.INTER_LINEAR, borderValue=border)
    moved = cv2.perspectiveTransform(pts.reshape(-1, 1, 2).astype(np.float64), m).reshape(-1, 2)
    return out, moved


def _border(img: Img) -> tuple[int, int, int]:
    c = img[:8, :8].reshape(-1, 3).mean(axis=0)
    return int(c[0]), int(c[1]), int(c[2])


def rotate_small(rng: random.Random, img: Img, pts: Pts) -> tuple[Img, Pts]:
    h, w = img.shape[:2]
    angle = rng.choice((-1, 1)) * rng.uniform(3, 12)
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    cos, sin = abs(m[0, 0]), abs(m[0, 1])
    nw, nh = int(h * sin + w * cos), int(h * cos + w * sin)
    m[0, 2] += nw / 2 - w / 2
    m[1, 2] += nh / 2 - h / 2
    return _warp(img, pts, np.vstack([m, [0, 0, 1]]), (nw, nh), _border(img))


def rot_quarter(img: Img, pts: Pts, quarters: int) -> tuple[Img, Pts]:
    """Rotate counter-clockwise by 90 degrees * quarters (np.rot90 semantics)."""
    for _ in range(quarters % 4):
        w = img.shape[1]
        img = np.ascontiguousarray(np.rot90(img))
        pts = np.stack([pts[:, 1], (w - 1) - pts[:, 0]], axis=1)
    return img, pts


def perspective(rng: random.Random, img: Img, pts: Pts) -> tuple[Img, Pts]:
    h, w = img.shape[:2]
    src = _f32([[0, 0], [w, 0], [w, h], [0, h]])
    j = 0.09
    dst = _f32([[x + rng.uniform(-j, j) * w, y + rng.uniform(-j, j) * h] for x, y in src])
    dst -= dst.min(axis=0)
    size = (int(dst[:, 0].max()) + 1, int(dst[:, 1].max()) + 1)
    return _warp(img, pts, cv2.getPerspectiveTransform(src, dst), size, _border(img))


def uneven_light(rng: random.Random, img: Img) -> Img:
    h, w = img.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy = rng.uniform(0, w), rng.uniform(0, h)
    dist = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2) / np.hypot(w, h)
    gain = 1.15 - rng.uniform(0.45, 0.6) * dist
    return np.clip(img.astype(np.float32) * gain[..., None], 0, 255).astype(np.uint8)


def photocopy(rng: random.Random, img: Img) -> Img:
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32)
    gray = (gray - 128) * rng.uniform(1.2, 1.5) + 140
    gray += np.random.default_rng(rng.randrange(2**32)).normal(0, 4, gray.shape)
    g = np.clip(gray, 0, 255).astype(np.uint8)
    return cv2.cvtColor(g, cv2.COLOR_GRAY2RGB)


def apply(rng: random.Random, img: Img, pts: Pts, names: list[str]) -> tuple[Img, Pts, int]:
    """Apply degradations; returns (RGB image, moved points, JPEG quality to encode with)."""
    unknown = set(names) - set(DEGRADATIONS)
    if unknown:
        raise ValueError(f"unknown degradation(s) {sorted(unknown)}; known: {', '.join(DEGRADATIONS)}")
    quality = 70 if "noise" in names else 85  # noise is costly to encode; keeps samples small
    for name in sorted(set(names), key=_ORDER.__getitem__):
        if name == "light":
            img = uneven_light(rng, img)
        elif name == "photocopy":
            img = photocopy(rng, img)
        elif name == "perspective":
            img, pts = perspective(rng, img, pts)
        elif name == "rotate":
            img, pts = rotate_small(rng, img, pts)
        elif name.startswith("rot"):
            img, pts = rot_quarter(img, pts, int(name[3:]) // 90)
        elif name == "blur":
            img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.9, 1.5))
        elif name == "noise":
            noise = np.random.default_rng(rng.randrange(2**32)).normal(0, rng.uniform(6, 12), img.shape)
            img = np.clip(img.astype(np.float32) + noise, 0, 255).astype(np.uint8)
        elif name == "jpeg":
            quality = rng.randint(25, 45)
    return img, pts, quality


# --- a phone photo of a card on a desk ---------------------------------------------------------------

def desk(rng: random.Random, w: int, h: int) -> Img:
    """A cluttered desk: wood-like grain, papers, a mug ring, pens and a dark object, in RGB."""
    nrng = np.random.default_rng(rng.randrange(2**32))
    base = np.array([rng.randint(60, 190) for _ in range(3)], np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    grain = 12 * np.sin(xx / rng.uniform(6, 20) + 3 * np.sin(yy / rng.uniform(40, 120)))
    img = np.clip(base + grain[..., None] + nrng.normal(0, 5, (h, w, 3)), 0, 255).astype(np.uint8)
    for _ in range(rng.randint(2, 6)):
        colour = tuple(rng.randint(0, 255) for _ in range(3))
        kind = rng.random()
        x, y = rng.randint(-w // 4, w), rng.randint(-h // 4, h)
        if kind < 0.4:  # a sheet of paper, maybe with lines of "text"
            pw, ph = rng.randint(w // 8, w // 2), rng.randint(h // 8, h // 2)
            box = cv2.boxPoints(((x, y), (pw, ph), rng.uniform(0, 90))).astype(np.int32)
            cv2.fillPoly(img, [box], (235, 235, 228))
            for k in range(rng.randint(0, 6)):
                cv2.line(img, (x - pw // 3, y - ph // 3 + 14 * k), (x + pw // 4, y - ph // 3 + 14 * k),
                         (70, 70, 70), 2)
        elif kind < 0.6:  # a mug ring
            cv2.circle(img, (x, y), rng.randint(20, 70), colour, rng.randint(3, 12))
        elif kind < 0.8:  # a pen
            cv2.line(img, (x, y), (x + rng.randint(-200, 200), y + rng.randint(-200, 200)), colour,
                     rng.randint(4, 10))
        else:  # a phone or wallet
            cv2.rectangle(img, (x, y), (x + rng.randint(40, 160), y + rng.randint(40, 160)), colour, -1)
    return img


def _card_quad(rng: random.Random, cw: int, ch: int, w: int, h: int, fill: float) -> Pts:
    """Where the card's corners land: area ``fill`` of the image, turned up to 25 deg, tilted (keystone)."""
    scale = float(np.sqrt(fill * w * h / (cw * ch)))
    angle = np.deg2rad(rng.uniform(-25, 25))
    tilt = rng.uniform(0.0, 0.22)  # the far edge looks this much shorter
    hw, hh = cw * scale / 2, ch * scale / 2
    far_top = rng.random() < 0.5
    top_k, bottom_k = (1 - tilt, 1.0) if far_top else (1.0, 1 - tilt)
    corners = np.array([[-hw * top_k, -hh], [hw * top_k, -hh], [hw * bottom_k, hh], [-hw * bottom_k, hh]])
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    q = corners @ rot.T
    span = q.max(axis=0) - q.min(axis=0)
    room = np.array([w, h]) * 0.94  # a person keeps the whole card in frame, with a little desk around it
    if span[0] > room[0] or span[1] > room[1]:
        q *= min(room[0] / span[0], room[1] / span[1])
    lo, hi = -q.min(axis=0) + 0.03 * np.array([w, h]), np.array([w, h]) * 0.97 - q.max(axis=0)
    centre = np.array([rng.uniform(lo[0], max(lo[0], hi[0])), rng.uniform(lo[1], max(lo[1], hi[1]))])
    return q + centre


def motion_blur(rng: random.Random, img: Img, shortest: int, longest: int) -> Img:
    """A shake of ``shortest``..``longest`` pixels along a random direction."""
    length = rng.randint(shortest, longest)
    kernel: Img = np.zeros((length, length), np.float32)
    kernel[length // 2, :] = 1.0 / length
    rot = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5), rng.uniform(0, 180), 1.0)
    kernel = cv2.warpAffine(kernel, rot, (length, length))
    kernel = (kernel / max(1e-6, float(kernel.sum()))).astype(np.float32)
    out: Img = cv2.filter2D(img, -1, kernel)
    return out


def phone_photo(rng: random.Random, card: Img, pts: Pts) -> tuple[Img, Pts, int]:
    """The card (RGB) photographed on a desk; ``pts`` are card-frame points, returned in image pixels.

    Perspective up to ~25 deg, a drop shadow, a lighting gradient, a shadow band, glare, motion blur,
    noise, a 600-700 px wide image and JPEG quality 35-60; the card fills 40-80 % of the frame.
    """
    ch, cw = card.shape[:2]
    big_w = 1400
    big_h = round(big_w * rng.choice((0.75, 0.75, 0.5625)))
    img = desk(rng, big_w, big_h)
    dst = _card_quad(rng, cw, ch, big_w, big_h, rng.uniform(0.4, 0.8))
    m = cv2.getPerspectiveTransform(_f32([[0, 0], [cw, 0], [cw, ch], [0, ch]]), _f32(dst))
    mask = cv2.warpPerspective(np.ones((ch, cw), np.float32), m, (big_w, big_h))
    shadow = cv2.GaussianBlur(np.roll(mask, (12, 9), axis=(0, 1)), (0, 0), 9)
    img = img.astype(np.float32) * (1 - 0.45 * shadow[..., None])
    warped = cv2.warpPerspective(card, m, (big_w, big_h), flags=cv2.INTER_LINEAR).astype(np.float32)
    img = img * (1 - mask[..., None]) + warped * mask[..., None]

    yy, xx = np.mgrid[0:big_h, 0:big_w].astype(np.float32)
    a = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(a) * xx / big_w + np.sin(a) * yy / big_h)
    gain = 1.05 - rng.uniform(0.25, 0.45) * (ramp - ramp.min()) / max(1e-6, float(np.ptp(ramp)))
    if rng.random() < 0.6:  # a soft shadow band (a hand or the phone) across part of the frame
        b = rng.uniform(0, 2 * np.pi)
        edge = np.cos(b) * (xx - rng.uniform(0, big_w)) + np.sin(b) * (yy - rng.uniform(0, big_h))
        gain *= 1 - rng.uniform(0.2, 0.4) / (1 + np.exp(-edge / 40))
    img *= gain[..., None]
    if rng.random() < 0.7:  # glare: a bright blob somewhere on the card
        gx, gy = dst.mean(axis=0) + np.array([rng.uniform(-0.3, 0.3) * big_w / 2, rng.uniform(-0.3, 0.3) * big_h / 2])
        r = rng.uniform(40, 110)
        img += rng.uniform(60, 130) * np.exp(-((xx - gx) ** 2 + (yy - gy) ** 2) / (2 * r * r))[..., None]
    img = np.clip(img, 0, 255).astype(np.uint8)

    img = motion_blur(rng, img, 3, 9)
    noise = np.random.default_rng(rng.randrange(2**32)).normal(0, rng.uniform(2, 6), img.shape)
    img = np.clip(img.astype(np.float32) + noise, 0, 255).astype(np.uint8)

    out_w = rng.randint(600, 700)
    s = out_w / big_w
    img = cv2.resize(img, (out_w, round(big_h * s)), interpolation=cv2.INTER_AREA)
    moved = cv2.perspectiveTransform(pts.reshape(-1, 1, 2).astype(np.float64), m.astype(np.float64)).reshape(-1, 2)
    return img, moved * s, rng.randint(35, 60)
