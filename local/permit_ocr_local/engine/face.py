"""The holder's photo: found as the large non-card-coloured block left of the fields.

Starts from the layout's photo area and tightens it to where the pixels stop looking like the card
background, so a photo printed a little off-template still gets a snug box.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from .geometry import CARD_H, CARD_W, f32

Img = np.ndarray[Any, Any]
Quad = np.ndarray[Any, Any]

# search area on the straightened card (x0, y0, x1, y1) as fractions: the left third below the title
_AREA = (0.01, 0.17, 0.30, 0.85)


def photo_box(card: Img) -> Quad:
    """Photo corners (TL, TR, BR, BL) in card coordinates."""
    x0, y0, x1, y1 = (int(_AREA[0] * CARD_W), int(_AREA[1] * CARD_H), int(_AREA[2] * CARD_W),
                      int(_AREA[3] * CARD_H))
    region = cv2.GaussianBlur(card[y0:y1, x0:x1], (5, 5), 0).astype(np.float32)
    border = np.concatenate([region[:, :4].reshape(-1, 3), region[:4, :].reshape(-1, 3)])
    bg = np.median(border, axis=0)
    diff = np.abs(region - bg).max(axis=2) > 28
    cols = np.flatnonzero(diff.mean(axis=0) > 0.35)
    rows = np.flatnonzero(diff.mean(axis=1) > 0.35)
    if cols.size < 20 or rows.size < 20:  # nothing photo-like: fall back to the layout's photo area
        fx0, fy0, fx1, fy1 = 0.04 * CARD_W, 0.24 * CARD_H, 0.26 * CARD_W, 0.73 * CARD_H
    else:
        fx0, fx1 = x0 + cols[0], x0 + cols[-1] + 1
        fy0, fy1 = y0 + rows[0], y0 + rows[-1] + 1
    return f32([[fx0, fy0], [fx1, fy0], [fx1, fy1], [fx0, fy1]])
