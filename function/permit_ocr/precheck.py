"""Step 3: the API's image limits, checked on the first bytes of the object before the paid call.

``inspect`` reads format and dimensions from the header bytes of PNG, JPEG, BMP, GIF, TIFF and WebP; the
caller fetches a small range first and more only when a JPEG's frame header lies further in (EXIF blocks).
Error codes are the API's own, so consumers see one vocabulary whether we or the service refused the image.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .errors import PrecheckError

__all__ = ["HEAD_BYTES", "ImageInfo", "NeedMoreBytes", "PrecheckError", "check_limits", "inspect"]

HEAD_BYTES = 64 * 1024  # enough for every format's header, and for most JPEGs' SOF behind EXIF
MAX_HEAD_BYTES = 1024 * 1024  # JPEGs with huge EXIF/ICC blocks: look this far, then give up
MIN_SIDE, MAX_SIDE, MAX_RATIO = 15, 8192, 50  # API document: 15 < side < 8192, ratio < 50


@dataclass(frozen=True)
class ImageInfo:
    format: str  # jpeg | png | bmp | gif | tiff | webp
    width: int
    height: int


class NeedMoreBytes(Exception):
    """The header is longer than what was read; read at least ``total`` bytes and try again."""

    def __init__(self, total: int) -> None:
        super().__init__(total)
        self.total = total


def sniff_format(head: bytes) -> str | None:
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if head.startswith(b"BM"):
        return "bmp"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "tiff"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return None


def inspect(head: bytes, object_size: int | None = None) -> ImageInfo:
    """Format and dimensions from the header bytes; raises PrecheckError or NeedMoreBytes."""
    fmt = sniff_format(head)
    if fmt is None:
        raise PrecheckError("unsupportedImageFormat",
                            "not a PNG, JPEG, BMP, GIF, TIFF or WebP image (checked by its first bytes)")
    try:
        width, height = _DIMENSIONS[fmt](head)
    except (struct.error, IndexError, ValueError):
        if object_size is not None and len(head) >= object_size:
            raise PrecheckError("unsupportedImageFormat", f"{fmt} header is truncated or corrupt") from None
        raise NeedMoreBytes(min(max(len(head) * 4, HEAD_BYTES), MAX_HEAD_BYTES)) from None
    return ImageInfo(fmt, width, height)


def check_limits(info: ImageInfo, size: int | None, max_bytes: int) -> None:
    if size is not None and size > max_bytes:
        raise PrecheckError("exceededImageContent", f"image is {size} bytes; the limit is {max_bytes}")
    w, h = info.width, info.height
    if not (MIN_SIDE < w < MAX_SIDE and MIN_SIDE < h < MAX_SIDE):
        raise PrecheckError("illegalImageSize",
                            f"image is {w}x{h} px; each side must be over {MIN_SIDE} and under {MAX_SIDE} px")
    if max(w, h) / min(w, h) >= MAX_RATIO:
        raise PrecheckError("illegalImageSize", f"image is {w}x{h} px; the aspect ratio must be under {MAX_RATIO}")


def _png(b: bytes) -> tuple[int, int]:
    if b[12:16] != b"IHDR":
        raise ValueError("no IHDR")
    w, h = struct.unpack(">II", b[16:24])
    return w, h


def _gif(b: bytes) -> tuple[int, int]:
    w, h = struct.unpack("<HH", b[6:10])
    return w, h


def _bmp(b: bytes) -> tuple[int, int]:
    (header_size,) = struct.unpack("<I", b[14:18])
    if header_size == 12:  # OS/2 BITMAPCOREHEADER
        w, h = struct.unpack("<HH", b[18:22])
        return w, h
    w, h = struct.unpack("<ii", b[18:26])
    return abs(w), abs(h)  # a negative height means a top-down bitmap


_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg(b: bytes) -> tuple[int, int]:
    i = 2
    while True:
        if b[i] != 0xFF:
            raise PrecheckError("unsupportedImageFormat", "JPEG marker stream is corrupt")
        marker = b[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            i += 2
            continue
        if marker == 0xD9:
            raise PrecheckError("unsupportedImageFormat", "JPEG ends before any frame header")
        (length,) = struct.unpack(">H", b[i + 2 : i + 4])
        if marker in _SOF:
            h, w = struct.unpack(">HH", b[i + 5 : i + 9])
            return w, h
        i += 2 + length


def _tiff(b: bytes) -> tuple[int, int]:
    end = "<" if b[:2] == b"II" else ">"
    (ifd,) = struct.unpack(end + "I", b[4:8])
    (count,) = struct.unpack(end + "H", b[ifd : ifd + 2])
    found: dict[int, int] = {}
    for n in range(count):
        off = ifd + 2 + 12 * n
        tag, typ = struct.unpack(end + "HH", b[off : off + 4])
        if tag in (256, 257):  # ImageWidth, ImageLength: SHORT (3) or LONG (4)
            fmt = end + ("H" if typ == 3 else "I")
            (found[tag],) = struct.unpack(fmt, b[off + 8 : off + 8 + struct.calcsize(fmt)])
    if 256 not in found or 257 not in found:
        raise ValueError("TIFF without width/height tags")
    return found[256], found[257]


def _webp(b: bytes) -> tuple[int, int]:
    if len(b) < 30:  # every variant's size fields end by byte 30; int.from_bytes would read a short head as 1x1
        raise ValueError("WebP header is truncated")
    chunk = b[12:16]
    if chunk == b"VP8 ":
        w, h = struct.unpack("<HH", b[26:30])
        return w & 0x3FFF, h & 0x3FFF
    if chunk == b"VP8L":
        bits = int.from_bytes(b[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        return int.from_bytes(b[24:27], "little") + 1, int.from_bytes(b[27:30], "little") + 1
    raise PrecheckError("unsupportedImageFormat", "WebP with an unknown chunk")


_DIMENSIONS = {"png": _png, "gif": _gif, "bmp": _bmp, "jpeg": _jpeg, "tiff": _tiff, "webp": _webp}
