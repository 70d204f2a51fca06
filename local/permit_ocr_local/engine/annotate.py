"""Draw a recognize result over its image so a person can check what was read, where, and why.

Each field's box on the image carries only its number, so nothing overlaps or runs off a turned card;
a panel beside the image lists number, field, value, valueProb and the cue that decided it (label,
pattern, position, pinyin). The face box is drawn only when the result has one (``--figure``).
"""

from __future__ import annotations

import functools
import glob
import io
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont, ImageOps

CARD = (0, 160, 255)
FACE = (255, 120, 0)
FIELD = (0, 170, 70)
LOW = (220, 40, 40)  # a value under the review threshold
_SYSTEM_CJK = ("/usr/share/fonts/**/NotoSansCJK*-Regular.tt[cf]", "/usr/share/fonts/**/NotoSansCJK*.otf",
               "/usr/share/fonts/**/wqy*.tt[cf]")


def formats() -> dict[str, str]:
    """Suffix (``.png``) -> Pillow format name, for every format Pillow can write."""
    Image.init()
    return {ext: fmt for ext, fmt in Image.registered_extensions().items() if fmt in Image.SAVE}


def output_format(out: Path) -> str:
    """The format ``out``'s suffix names; ValueError (one line) when Pillow cannot write it."""
    fmt = formats().get(out.suffix.lower())
    if fmt is None:
        raise ValueError(f"cannot write an annotation as {out.suffix or 'a file without a suffix'!r}: "
                         "use .png, .jpg or .webp")
    return fmt


@functools.lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """A system CJK font when there is one (any name prints), else the generator's committed subset."""
    for pattern in _SYSTEM_CJK:
        hits = sorted(glob.glob(pattern, recursive=True))
        if hits:
            return ImageFont.truetype(hits[0], size, index=2 if hits[0].endswith(".ttc") else 0)
    try:
        from permit_ocr_local.synth.fonts import font

        return font(size)
    except Exception:  # no font file at all: Latin-only default still shows the boxes
        return ImageFont.load_default()


def _poly(points: list[dict[str, int]]) -> list[tuple[int, int]]:
    return [(int(p["x"]), int(p["y"])) for p in points]


def _tag(draw: ImageDraw.ImageDraw, xy: tuple[int, int], text: str, f: Any, colour: tuple[int, int, int],
         size: tuple[int, int]) -> None:
    """A small filled tag at ``xy``, moved inside the image if it would run off an edge."""
    x0, y0, x1, y1 = draw.textbbox((0, 0), text, font=f)
    w, h = x1 - x0 + 6, y1 - y0 + 6
    x = min(max(0, xy[0]), size[0] - w)
    y = min(max(0, xy[1] - h), size[1] - h)
    draw.rectangle((x, y, x + w, y + h), fill=colour)
    draw.text((x + 3 - x0, y + 3 - y0), text, fill=(255, 255, 255), font=f)


def render(image: bytes, data: dict[str, Any], cues: dict[str, str] | None = None,
           min_prob: int = 90) -> Image.Image:
    with Image.open(io.BytesIO(image)) as src:
        img = ImageOps.exif_transpose(src).convert("RGB")
    draw = ImageDraw.Draw(img)
    width = max(2, round(max(img.size) / 400))
    small = _font(max(12, round(max(img.size) / 60)))

    r = data.get("sliceRect") or {}
    if r:
        card = [(r[f"x{i}"], r[f"y{i}"]) for i in range(4)]
        draw.line([*card, card[0]], fill=CARD, width=width)
    for fig in data.get("figure", []):
        pts = _poly(fig["points"])
        draw.line([*pts, pts[0]], fill=FACE, width=width)
        _tag(draw, pts[0], fig["type"], small, FACE, img.size)
    rows = []
    for n, kv in enumerate(data.get("prism_keyValueInfo", []), start=1):
        colour = LOW if kv.get("valueProb", 100) < min_prob else FIELD
        if "valuePos" in kv:
            pts = _poly(kv["valuePos"])
            draw.line([*pts, pts[0]], fill=colour, width=width)
            _tag(draw, min(pts, key=lambda p: p[0] + p[1]), str(n), small, colour, img.size)
        cue = (cues or {}).get(kv["key"], "-" if not kv["value"] else "?")
        rows.append((f"{n:>2} {kv['key']}: {kv['value'] or '(empty)'}   {kv.get('valueProb', '')}   [{cue}]", colour))

    panel_font = _font(18)
    line_h = 26
    panel_w = 40 + max((round(draw.textlength(t, font=panel_font)) for t, _ in rows), default=200)
    out = Image.new("RGB", (img.width + panel_w, max(img.height, 20 + line_h * (len(rows) + 2))), "white")
    out.paste(img, (0, 0))
    pd = ImageDraw.Draw(out)
    pd.text((img.width + 20, 10), f"field: value   valueProb   [cue]   (red: below {min_prob})", fill=(60, 60, 60),
            font=panel_font)
    for i, (text, colour) in enumerate(rows, start=1):
        pd.text((img.width + 20, 10 + i * line_h), text, fill=colour, font=panel_font)
    return out


def annotate(image: bytes, data: dict[str, Any], out: Path, cues: dict[str, str] | None = None,
             min_prob: int = 90) -> Path:
    """Write the annotated image to ``out`` in the format its suffix names."""
    fmt = output_format(out)
    picture = render(image, data, cues, min_prob)
    out.parent.mkdir(parents=True, exist_ok=True)
    picture.save(out, format=fmt)
    return out
