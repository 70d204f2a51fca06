"""The card's block: which detected lines are the card's own print, before any is read as a value.

A card's title, labels and values are printed in its ink: dark on the card's light ground (navy, brown or
black; labels a little lighter; glare lightens ink but does not colour it). A camera's date stamp (bright
orange) or a phone's interface (white on black) is not, even where it overlaps the straightened card. Each
line's ink is the minority class of its box's pixels (Otsu): a line of light ink on a dark ground (a screen's
white text on black), or of ink both lighter and far more coloured than the card's common ink (an orange
stamp), is not the card's print. Glare is neither: it lightens a line's ground and ink without colouring them,
and a glared line can look light-on-light, never light-on-dark.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

Img = np.ndarray[Any, Any]
Quad = np.ndarray[Any, Any]

_LIGHTER = 15  # ink this much lighter (0-255) than the card's common ink ...
_MORE_COLOUR = 45  # ... and this much more saturated is a stamp or a coloured button, not the card's ink
_SMALL = 0.7  # small print: lower than this share of the tall lines' height (labels above values are ~0.6)
_LIGHT_INK, _DARK_GROUND = 170, 110  # light ink on a dark ground: a screen's text, not a card's print


def ink(card: Img, box: Quad) -> tuple[float, float, bool]:
    """(lightness, saturation, light on dark) of a line's ink: the minority of its box's pixels after an
    Otsu split; light on dark when that ink is light and the rest of the box dark."""
    x0, y0 = np.floor(box.min(axis=0)).astype(int)
    x1, y1 = np.ceil(box.max(axis=0)).astype(int)
    patch = card[max(0, y0):max(0, y1), max(0, x0):max(0, x1)]
    if patch.size < 12:
        return 0.0, 0.0, False
    hsv = cv2.cvtColor(patch, cv2.COLOR_BGR2HSV).reshape(-1, 3).astype(np.float32)
    gray = cv2.cvtColor(patch, cv2.COLOR_BGR2GRAY)
    _, mask = cv2.threshold(gray, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    light = mask.reshape(-1).astype(bool)
    minority = light if light.mean() < 0.5 else ~light
    if not minority.any() or minority.all():
        return float(gray.mean()), float(hsv[:, 1].mean()), False
    g = gray.reshape(-1).astype(np.float32)
    lt, ground = float(g[minority].mean()), float(g[~minority].mean())
    return lt, float(hsv[minority, 1].mean()), lt > _LIGHT_INK and ground < _DARK_GROUND


def printed(card: Img, boxes: list[Quad]) -> list[Quad]:
    """The boxes whose ink is the card's own (see the module's docstring); all of them when fewer than three
    (no common ink to compare with)."""
    if len(boxes) < 3:
        return boxes
    inks = [ink(card, b) for b in boxes]
    common_l = float(np.median([i[0] for i in inks]))
    common_s = float(np.median([i[1] for i in inks]))
    if sum(i[2] for i in inks) > len(inks) / 2:
        return boxes  # light print on a dark card: nothing to compare with
    return [b for b, (lt, sat, reverse) in zip(boxes, inks, strict=True)
            if not reverse and not (lt - common_l > _LIGHTER and sat - common_s > _MORE_COLOUR)]


def split_print(boxes: list[Quad]) -> tuple[list[Quad], list[Quad]]:
    """(large, small) print: a line under _SMALL of the card's common tall line height (its 75th
    percentile: values and title outnumber nothing else) is a label or fine print. Fewer than three
    small lines are not worth a second pass."""
    if not boxes:
        return [], []
    heights = [float(b[:, 1].max() - b[:, 1].min()) for b in boxes]
    ref = float(np.percentile(heights, 75))
    small = [h < _SMALL * ref for h in heights]
    if sum(small) < 3:
        return list(boxes), []
    return ([b for b, s in zip(boxes, small, strict=True) if not s],
            [b for b, s in zip(boxes, small, strict=True) if s])
