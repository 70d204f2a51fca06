"""The holder's photo: the largest portrait-shaped block that differs from the card's background.

It may sit left or right of the fields; some card designs print none, and then there is no face box
(``None``) rather than a guess.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from .geometry import CARD_H, CARD_W, f32

Img = np.ndarray[Any, Any]
Quad = np.ndarray[Any, Any]

_MIN_W, _MIN_H = 0.12, 0.28  # a photo is at least this big (fractions of the card)
_ASPECT = (0.9, 2.3)  # height / width of a portrait


def _mask(card: Img) -> Img:
    """Pixels unlike the background in colour or texture (a photo's background may be as pale as the card)."""
    blur = cv2.GaussianBlur(card, (5, 5), 0).astype(np.float32)
    bg = np.median(blur[::4, ::4].reshape(-1, 3), axis=0)
    colour = np.abs(blur - bg).max(axis=2) > 30
    gray = cv2.cvtColor(card, cv2.COLOR_BGR2GRAY).astype(np.float32)
    texture = cv2.blur(np.abs(cv2.Laplacian(gray, cv2.CV_32F)), (9, 9)) > 6
    mask = (colour | texture).astype(np.uint8)
    return cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((7, 7), np.uint8))


def photo_box(card: Img) -> Quad | None:
    """Photo corners (TL, TR, BR, BL) in card coordinates, or None when the card shows no photo."""
    mask = _mask(card)
    mask[: int(0.12 * CARD_H)] = 0  # the title band
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=4)
    best, best_area = None, 0.0
    for i in range(1, n):
        x, y, w, h, area = (int(v) for v in stats[i])
        if w < _MIN_W * CARD_W or h < _MIN_H * CARD_H or not _ASPECT[0] <= h / w <= _ASPECT[1]:
            continue
        if area / (w * h) < 0.5 or not (x + w < 0.45 * CARD_W or x > 0.55 * CARD_W):  # solid, at a side
            continue
        if area > best_area:
            best, best_area = (x, y, w, h), float(area)
    if best is None:
        return None
    x, y, w, h = best
    return f32([[x, y], [x + w, y], [x + w, y + h], [x, y + h]])
