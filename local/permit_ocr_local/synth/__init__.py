"""Synthetic permit generator: images of both permit kinds with the truth alongside.

The people are fictional: random names from a small table, random dates that obey the validity rules,
numbers in the real formats, and the public-domain NASA astronaut portrait as the photo.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from . import degrade as _degrade
from .fields import FIELDS, KINDS, random_fields
from .fonts import FontMissingError
from .render import CANVAS_H, CANVAS_W, CARD_H, CARD_W, compose, render_card

__all__ = ["DEGRADATIONS", "FIELDS", "KINDS", "FontMissingError", "generate", "write_samples"]
DEGRADATIONS = _degrade.DEGRADATIONS


def generate(seed: int, kind: str | None = None, degrade: Sequence[str] = ()) -> tuple[bytes, dict[str, Any]]:
    """One synthetic permit photo as JPEG bytes and its truth; the same arguments give the same bytes."""
    rng = random.Random(seed)
    kind = kind or rng.choice(KINDS)
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    fields = random_fields(rng, kind)
    card = render_card(rng, kind, fields)
    canvas, (ox, oy) = compose(rng, card)

    fx, fy, fw, fh = card.face
    corners = [[0, 0], [CARD_W, 0], [CARD_W, CARD_H], [0, CARD_H]]
    photo = [[fx, fy], [fx + fw, fy], [fx + fw, fy + fh], [fx, fy + fh]]
    pts = np.asarray(corners + photo, dtype=np.float64) + np.array([ox, oy])
    img, pts, quality = _degrade.apply(rng, canvas, pts, list(degrade))
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - OpenCV always encodes a uint8 RGB image
        raise RuntimeError("JPEG encoding failed")

    face = pts[4:8]
    x0, y0 = face.min(axis=0)
    x1, y1 = face.max(axis=0)
    truth: dict[str, Any] = {
        "kind": kind,
        "data": {k: fields[k] for k in FIELDS},
        "seed": seed,
        "degrade": sorted(set(degrade)),
        "ftype": int("photocopy" in degrade),
        "width": int(img.shape[1]),
        "height": int(img.shape[0]),
        "card": [{"x": round(float(x), 1), "y": round(float(y), 1)} for x, y in pts[:4]],
        "face": {"x": int(x0), "y": int(y0), "w": int(x1 - x0), "h": int(y1 - y0)},
        "canvas": [CANVAS_W, CANVAS_H],
    }
    return buf.tobytes(), truth


# the committed set: both kinds, clean and a few typical degradations
SAMPLE_PLAN: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("hk-clean", "hk", ()),
    ("macao-clean", "macao", ()),
    ("taiwan-clean", "taiwan", ()),
    ("hk-rot90", "hk", ("rot90",)),
    ("taiwan-rot180", "taiwan", ("rot180",)),
    ("macao-perspective", "macao", ("perspective", "light")),
    ("hk-photocopy", "hk", ("photocopy",)),
    ("taiwan-blur", "taiwan", ("blur", "noise", "rotate")),
)


def write_samples(dir: str | Path, n: int = len(SAMPLE_PLAN), seed: int = 20240501) -> list[Path]:
    """Write ``<name>.jpg`` + ``<name>.truth.json`` for the first ``n`` entries of SAMPLE_PLAN (cycled)."""
    out = Path(dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for i in range(n):
        name, kind, deg = SAMPLE_PLAN[i % len(SAMPLE_PLAN)]
        if i >= len(SAMPLE_PLAN):
            name = f"{name}-{i}"
        image, truth = generate(seed + i, kind, deg)
        (out / f"{name}.jpg").write_bytes(image)
        (out / f"{name}.truth.json").write_text(json.dumps(truth, ensure_ascii=False, indent=2) + "\n", "utf-8")
        written.append(out / f"{name}.jpg")
    return written
