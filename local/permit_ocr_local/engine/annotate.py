"""Draw a recognize result over its image so a person can check what was read and where."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont, ImageOps

CARD = (0, 160, 255)
FACE = (255, 120, 0)
FIELD = (0, 200, 80)


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        from permit_ocr_local.synth.fonts import font

        return font(size)
    except Exception:  # no CJK font: Latin-only default still shows the boxes
        return ImageFont.load_default()


def _poly(points: list[dict[str, int]]) -> list[tuple[int, int]]:
    return [(int(p["x"]), int(p["y"])) for p in points]


def annotate(image: bytes, data: dict[str, Any], out: Path) -> Path:
    with Image.open(io.BytesIO(image)) as src:
        img = ImageOps.exif_transpose(src).convert("RGB")
    draw = ImageDraw.Draw(img)
    width = max(2, round(max(img.size) / 400))
    size = max(12, round(max(img.size) / 72))
    f = _font(size)

    r = data.get("sliceRect") or {}
    if r:
        card = [(r[f"x{i}"], r[f"y{i}"]) for i in range(4)]
        draw.line([*card, card[0]], fill=CARD, width=width)
        draw.text(card[0], "card", fill=CARD, font=f, anchor="lb")
    for fig in data.get("figure", []):
        pts = _poly(fig["points"])
        draw.line([*pts, pts[0]], fill=FACE, width=width)
        draw.text(pts[0], fig["type"], fill=FACE, font=f, anchor="lb")
    for kv in data.get("prism_keyValueInfo", []):
        if "valuePos" not in kv:
            continue
        pts = _poly(kv["valuePos"])
        draw.line([*pts, pts[0]], fill=FIELD, width=width)
        label = f"{kv['key']}: {kv['value']} ({kv['valueProb']})"
        x, y = pts[0]
        box = draw.textbbox((x, y), label, font=f, anchor="lb")
        draw.rectangle(box, fill=(255, 255, 255))
        draw.text((x, y), label, fill=(0, 110, 40), font=f, anchor="lb")
    out.parent.mkdir(parents=True, exist_ok=True)
    img.save(out, format="PNG")
    return out
