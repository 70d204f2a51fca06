"""The fonts the generator renders permits in: subsets of Noto Sans/Serif CJK SC committed beside this file.

They cover every character the generator prints (``charset()``), so rendering needs no system font and
no package manager. Drawing other text with them (an annotation of a real photo, say) shows boxes for
the characters they lack; ``annotate`` falls back to Pillow's default font then.
"""

from __future__ import annotations

import functools
from pathlib import Path

from PIL import ImageFont

FONT_DIR = Path(__file__).parent / "fonts"
FACES = ("sans", "serif")
WEIGHTS = ("Regular", "Bold")


class FontMissingError(RuntimeError):
    """A committed font file is missing (a broken checkout); the message names it."""


def font_path(face: str = "sans", weight: str = "Regular") -> Path:
    if face not in FACES or weight not in WEIGHTS:
        raise ValueError(f"face must be one of {FACES} and weight one of {WEIGHTS}, not {face!r}/{weight!r}")
    path = FONT_DIR / f"Noto{face.title()}SC-{weight}.subset.otf"
    if not path.is_file():
        raise FontMissingError(f"{path} is missing: the generator's fonts are part of the repository")
    return path


@functools.lru_cache(maxsize=128)
def font(size: int, weight: str = "Regular", face: str = "sans") -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(font_path(face, weight)), size)


def font_exists() -> bool:
    try:
        font_path()
    except FontMissingError:
        return False
    return True


def covers(text: str) -> bool:
    """Whether the committed subset has a glyph for every character of ``text``."""
    return set(text) <= set(charset())


@functools.lru_cache(maxsize=1)
def charset() -> str:
    """Every character the generator can print (the subset is built from this)."""
    from . import fields, names, render, texts

    parts = [c for pair in names.SURNAMES + names.GIVEN for c in pair[0]]
    parts += [fields.TITLE_HK_MACAO, fields.TITLE_TAIWAN, fields.AUTHORITY, "（非中国籍）", *fields.TAIWAN_PLACES]
    parts += [text for pair in render.LABELS.values() for text in pair] + list(render.COUNT_LABELS.values())
    parts += [texts.DOCUMENT_TEXT, texts.UI_TEXT]  # what is not a permit's front: a back, other cards, a phone's screen
    parts += ["男女：:·（）()-.,/", "".join(chr(c) for c in range(0x20, 0x7F))]
    return "".join(sorted(set("".join(parts))))
