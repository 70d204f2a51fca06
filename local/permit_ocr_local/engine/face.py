"""The holder's photo: a large block, unlike the card's background, on the left or the right of the card.

Some card designs print no photo: then there is no face box (``None``), rather than a guess.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from .geometry import CARD_H, CARD_W, f32

Img = np.ndarray[Any, Any]
Quad = np.ndarray[Any, Any]

# search areas on the straightened card (x0, y0, x1, y1) as fractions: each outer third below the title
_AREAS = ((0.01, 0.15, 0.34, 0.92), (0.66, 0.15, 0.99, 0.92))
_MIN_W, _MIN_H = 0.12, 0.30  # a photo is at least this big (fractions of the card)


def _block(card: Img, area: tuple[float, float, float, float]) -> tuple[float, Quad] | None:
    x0, y0, x1, y1 = (int(area[0] * CARD_W), int(area[1] * CARD_H), int(area[2] * CARD_W),
                      int(area[3] * CARD_H))
    region = cv2.GaussianBlur(card[y0:y1, x0:x1], (5, 5), 0).astype(np.float32)
    bg = np.median(region.reshape(-1, 3), axis=0)  # the card's background dominates the area
    diff = np.abs(region - bg).max(axis=2) > 40
    diff = cv2.morphologyEx(diff.astype(np.uint8), cv2.MORPH_OPEN, np.ones((5, 5), np.uint8))
    cols = np.flatnonzero(diff.mean(axis=0) > 0.45)
    rows = np.flatnonzero(diff.mean(axis=1) > 0.3)
    if cols.size < _MIN_W * CARD_W or rows.size < _MIN_H * CARD_H:
        return None
    fx0, fx1 = x0 + cols[0], x0 + cols[-1] + 1
    fy0, fy1 = y0 + rows[0], y0 + rows[-1] + 1
    fill = float(diff[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].mean())
    return fill, f32([[fx0, fy0], [fx1, fy0], [fx1, fy1], [fx0, fy1]])


def photo_box(card: Img) -> Quad | None:
    """Photo corners (TL, TR, BR, BL) in card coordinates, or None when the card shows no photo."""
    found = [b for area in _AREAS if (b := _block(card, area)) is not None and b[0] > 0.5]
    if not found:
        return None
    return max(found, key=lambda b: b[0])[1]
