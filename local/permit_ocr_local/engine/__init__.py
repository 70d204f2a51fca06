"""Embedded permit recognizer: the Data object of RecognizeExitEntryPermitToMainland, offline.

Pipeline: decode -> card quad -> perspective warp to a fixed card frame -> one text detection on a
downscaled card -> 0/180 from the title position -> recognize the crops right of the photo -> layout
extraction -> map every box back to original image coordinates.
"""

from __future__ import annotations

import threading
from typing import Any

import cv2
import numpy as np

from . import face, geometry, layout
from .errors import EngineError
from .ocr import Ocr, crop_quad

__all__ = ["Engine", "EngineError"]

Img = np.ndarray[Any, Any]
Quad = np.ndarray[Any, Any]

_DET_WIDTH = 640  # detection resolution of the card: 26-px values stay > 19 px, labels still show
_MIN_FIELDS = 3  # fewer readable fields than this and it is not a permit


class Engine:
    """Loads the models on first use; one ``recognize`` at a time (a lock serializes callers)."""

    def __init__(self) -> None:
        self._ocr: Ocr | None = None
        self._lock = threading.Lock()

    def _models(self) -> Ocr:
        if self._ocr is None:
            self._ocr = Ocr()
        return self._ocr

    def recognize(self, image: bytes, output_figure: bool = False) -> dict[str, Any]:
        with self._lock:
            return self._recognize(image, output_figure)

    def _recognize(self, image: bytes, output_figure: bool) -> dict[str, Any]:
        img = geometry.decode(image)
        ocr = self._models()
        quad = geometry.card_corners(img)
        card = geometry.warp(img, geometry.homography(quad))

        scale = _DET_WIDTH / geometry.CARD_W
        small = cv2.resize(card, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        boxes = [b / scale for b in ocr.detect(small)]
        if not geometry.text_is_upright(boxes, geometry.CARD_H):
            quad = geometry.rotate_quad_180(quad)
            card = cv2.rotate(card, cv2.ROTATE_180)
            size = geometry.f32([geometry.CARD_W, geometry.CARD_H])
            boxes = [np.roll(size - b, 2, axis=0) for b in boxes]

        boxes = [b for b in boxes if _wanted(b)]
        texts = ocr.recognize([crop_quad(card, b, pad=0.08) for b in boxes])
        lines = [layout.Line(b, t, s) for b, (t, s) in zip(boxes, texts, strict=True) if t.strip()]
        fields, family = layout.extract(lines)
        if family is None or len(fields) < _MIN_FIELDS:
            raise EngineError("unmatchedImageType", "no Mainland Travel Permit found in the image")

        m_inv = np.linalg.inv(geometry.homography(quad))
        return _data(img, card, quad, m_inv, fields, output_figure)


def _wanted(box: Quad) -> bool:
    """Skip the small label lines and anything inside the photo: they carry no field values."""
    h = float(box[:, 1].max() - box[:, 1].min())
    cx = float(box[:, 0].mean())
    return h >= 0.045 * geometry.CARD_H and cx >= 0.25 * geometry.CARD_W


def _points(q: Quad) -> list[dict[str, int]]:
    return [{"x": round(float(x)), "y": round(float(y))} for x, y in q]


def _data(img: Img, card: Img, quad: Quad, m_inv: Img, fields: dict[str, layout.Field],
          output_figure: bool) -> dict[str, Any]:
    org_h, org_w = img.shape[:2]
    top = quad[1] - quad[0]
    sideways = abs(float(top[1])) > abs(float(top[0]))  # card read at 90/270: straightened image is turned
    kv = []
    for key in layout.FIELDS:
        f = fields.get(key)
        item: dict[str, Any] = {"key": key, "keyProb": 100, "value": f.value if f else ""}
        if f is not None and f.value and f.quad is not None:
            item["valuePos"] = _points(geometry.to_original(f.quad, m_inv))
        item["valueProb"] = round(100 * f.score) if f and f.value else 100
        kv.append(item)
    corners = geometry.to_original(geometry.f32([[0, 0], [geometry.CARD_W, 0],
                                               [geometry.CARD_W, geometry.CARD_H], [0, geometry.CARD_H]]), m_inv)
    out: dict[str, Any] = {
        "data": {k: (fields[k].value if k in fields else "") for k in layout.FIELDS},
        "prism_keyValueInfo": kv,
        "sliceRect": {f"{a}{i}": round(float(v)) for i, pt in enumerate(corners)
                      for a, v in zip("xy", pt, strict=True)},
        "ftype": 1 if geometry.is_photocopy(card) else 0,
        "width": org_h if sideways else org_w,
        "height": org_w if sideways else org_h,
        "orgWidth": org_w,
        "orgHeight": org_h,
    }
    if output_figure:
        out["figure"] = [_figure(geometry.to_original(face.photo_box(card), m_inv))]
    return out


def _figure(pts: Quad) -> dict[str, Any]:
    """Axis-aligned x/y/w/h plus a rotated box (centre, size, angle) and the four corners, like the API."""
    x0, y0 = pts.min(axis=0)
    x1, y1 = pts.max(axis=0)
    (cx, cy), (w, h), angle = cv2.minAreaRect(np.asarray(pts, np.float32))
    return {
        "type": "face",
        "x": round(float(x0)), "y": round(float(y0)),
        "w": round(float(x1 - x0)), "h": round(float(y1 - y0)),
        "box": {"x": round(cx), "y": round(cy), "w": round(w), "h": round(h), "angle": round(angle)},
        "points": _points(pts),
    }
