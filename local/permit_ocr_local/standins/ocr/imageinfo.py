"""Image format and dimensions from the first bytes: enough to enforce the API limits without decoding.

Written apart from function/permit_ocr/precheck.py on purpose: the stand-in plays the service, so a bug in the
function's precheck must meet an independent judge rather than its own mirror image.
"""

from __future__ import annotations

import struct

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# SOFn markers carry the frame size; C4 (DHT), C8 (JPG) and CC (DAC) share the range but are not frames
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def sniff_format(data: bytes) -> str | None:
    """One of png, jpeg, bmp, gif, tiff, webp by magic bytes, else None."""
    if data.startswith(PNG_SIGNATURE):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"BM"):
        return "bmp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def dimensions(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the header, or None when the format is unknown or the header is damaged."""
    fmt = sniff_format(data)
    parser = _PARSERS.get(fmt or "")
    if parser is None:
        return None
    try:
        return parser(data)
    except (struct.error, IndexError, ValueError):
        return None


def _png(d: bytes) -> tuple[int, int] | None:
    if d[12:16] != b"IHDR":
        return None
    w, h = struct.unpack(">II", d[16:24])
    return w, h


def _jpeg(d: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 4 <= len(d):
        if d[i] != 0xFF:
            return None
        marker = d[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # standalone markers have no length
            i += 2
            continue
        (length,) = struct.unpack(">H", d[i + 2:i + 4])
        if marker in _JPEG_SOF:
            h, w = struct.unpack(">HH", d[i + 5:i + 9])
            return w, h
        if marker == 0xDA:  # start of scan before any frame header
            return None
        i += 2 + length
    return None


def _gif(d: bytes) -> tuple[int, int]:
    w, h = struct.unpack("<HH", d[6:10])
    return w, h


def _bmp(d: bytes) -> tuple[int, int]:
    (dib_size,) = struct.unpack("<I", d[14:18])
    if dib_size == 12:  # OS/2 BITMAPCOREHEADER
        w, h = struct.unpack("<HH", d[18:22])
        return w, h
    w, h = struct.unpack("<ii", d[18:26])
    return abs(w), abs(h)  # negative height = top-down rows


def _tiff(d: bytes) -> tuple[int, int] | None:
    end = "<" if d[:2] == b"II" else ">"
    (ifd,) = struct.unpack(end + "I", d[4:8])
    (count,) = struct.unpack(end + "H", d[ifd:ifd + 2])
    found: dict[int, int] = {}
    for n in range(count):
        entry = d[ifd + 2 + 12 * n: ifd + 14 + 12 * n]
        tag, typ = struct.unpack(end + "HH", entry[:4])
        if tag in (256, 257):  # ImageWidth, ImageLength: SHORT or LONG, stored inline
            found[tag] = struct.unpack(end + ("H" if typ == 3 else "I"), entry[8:10 if typ == 3 else 12])[0]
    if 256 in found and 257 in found:
        return found[256], found[257]
    return None


def _webp(d: bytes) -> tuple[int, int] | None:
    chunk = d[12:16]
    if chunk == b"VP8 ":
        w, h = struct.unpack("<HH", d[26:30])
        return w & 0x3FFF, h & 0x3FFF
    if chunk == b"VP8L":
        (bits,) = struct.unpack("<I", d[21:25])
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        return int.from_bytes(d[24:27], "little") + 1, int.from_bytes(d[27:30], "little") + 1
    return None


_PARSERS = {"png": _png, "jpeg": _jpeg, "gif": _gif, "bmp": _bmp, "tiff": _tiff, "webp": _webp}
