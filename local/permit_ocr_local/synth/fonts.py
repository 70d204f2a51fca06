"""Locate the Noto CJK fonts (Debian's fonts-noto-cjk) used to render permits and annotations."""

from __future__ import annotations

import functools
import glob
import shutil
import subprocess
from pathlib import Path

from PIL import ImageFont

_SEARCH = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-{w}.ttc",
    "/usr/share/fonts/opentype/noto/NotoSerifCJK-{w}.ttc",
    "/usr/share/fonts/**/NotoSansCJK*-{w}.tt[cf]",
    "/usr/share/fonts/**/NotoSansCJK*-{w}.otf",
)


class FontMissingError(RuntimeError):
    """No CJK font on this machine; the message says how to get one."""


@functools.lru_cache(maxsize=4)
def cjk_font_path(weight: str = "Regular") -> str:
    for pattern in _SEARCH:
        hits = sorted(glob.glob(pattern.format(w=weight), recursive=True))
        if hits:
            return hits[0]
    if shutil.which("fc-list"):
        out = subprocess.run(["fc-list", ":lang=zh", "file"], capture_output=True, text=True, check=False).stdout
        files = sorted(line.split(":")[0].strip() for line in out.splitlines() if "CJK" in line)
        if files:
            return files[0]
    raise FontMissingError(
        "no Noto CJK font found (looked in /usr/share/fonts and fc-list); run `make fonts` "
        "(installs Debian's fonts-noto-cjk) and try again"
    )


@functools.lru_cache(maxsize=64)
def font(size: int, weight: str = "Regular") -> ImageFont.FreeTypeFont:
    try:
        path = cjk_font_path(weight)
    except FontMissingError:
        if weight == "Regular":
            raise
        path = cjk_font_path("Regular")
    # index 2 of the .ttc collection is the Simplified Chinese face (JP, KR, SC, TC, HK order)
    index = 2 if path.endswith(".ttc") else 0
    return ImageFont.truetype(path, size, index=index)


def font_exists() -> bool:
    try:
        Path(cjk_font_path())
    except FontMissingError:
        return False
    return True
