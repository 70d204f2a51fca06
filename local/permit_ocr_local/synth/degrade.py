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
