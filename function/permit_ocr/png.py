"""PNG uploads decoded a strip of rows at a time, so a 9000 px PNG converts in a 128 MB instance.

Pillow decodes a PNG whole, at 4 bytes a pixel (a 9000 x 6000 px scan: 216 MB), and unlike libjpeg it cannot
decode one smaller. But a PNG's pixels are one zlib stream of rows, each prefixed by a filter whose only
reference outside its own row is the row above (W3C PNG, sections 7.3 and 9). So here the stream is inflated a
strip of rows at a time (stdlib zlib), and each strip is handed to Pillow's own PNG row decoder (``zip``, what
``Image.open`` uses) behind a copy of the row above it, stored unfiltered (filter type 0): Pillow undoes the
filters exactly as it would for the whole image. Each strip is made plain and shrunk by an integer factor (a box
average, ``Image.reduce``) as it comes, and pasted into the output: the memory is the output plus one strip,
whatever the upload's size, and the pixels are those of decoding it whole, then reducing.

The row above must be stored back as the PNG had it, which Pillow's modes allow for 1, 2, 4 and 8-bit samples
and 16-bit grey (``STRIPS``); an interlaced PNG (Adam7: seven passes over the whole picture) or 16-bit colour
(Pillow keeps 8 of the 16 bits) is decoded whole, within convert.py's memory plan.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Iterator
from typing import Any

# (Pillow mode, PNG raw mode) pairs whose decoded rows pack back to the PNG's own bytes
STRIPS = frozenset({("1", "1"), ("L", "L;2"), ("L", "L;4"), ("L", "L"), ("I;16", "I;16B"), ("RGB", "RGB"),
                    ("P", "P;1"), ("P", "P;2"), ("P", "P;4"), ("P", "P"), ("LA", "LA"), ("RGBA", "RGBA")})
STRIP_BYTES = 1 << 20  # decoded bytes per strip: the strip's few copies stay a few MB whatever the width
BITS = {"1": 1, "L;2": 2, "L;4": 4, "P;1": 1, "P;2": 2, "P;4": 4, "L": 8, "P": 8, "LA": 16, "RGB": 24,
        "RGBA": 32, "I;16B": 16}  # bits a pixel in the PNG's rows


def in_strips(im: Any) -> bool:
    """Whether ``im`` (a PNG opened by Pillow, not yet loaded) can be decoded strip by strip."""
    if im.format != "PNG" or im.info.get("interlace") or len(im.tile) != 1:
        return False
    tile = im.tile[0]
    return tile.codec_name == "zip" and tile.extents == (0, 0, *im.size) and (im.mode, tile.args) in STRIPS


def decode(im: Any, data: bytes, factor: int, plain: Callable[[Any], Any], strip_bytes: int = STRIP_BYTES) -> Any:
    """The PNG ``im`` (opened from ``data``) made ``plain`` and reduced by ``factor``, one strip at a time.
    Raises OSError when the image data is damaged or ends early (as Pillow does for the whole image)."""
    from PIL import Image

    width, height = im.size
    rawmode = im.tile[0].args
    stride = (width * BITS[rawmode] + 7) // 8
    rows = max(factor, strip_bytes // max(1, width * 4) // factor * factor)
    above = bytes(stride)  # the row above the first: zeros, as the PNG filters define it
    last = 0  # the last byte of the row above, unused bits included
    canvas: Any = None
    y = 0
    for block in _inflate(_idat(data, im.tile[0].offset), rows * (stride + 1)):
        count = min(len(block) // (stride + 1), height - y)  # rows past the last are ignored, as Pillow does
        if count <= 0:
            break
        payload = zlib.compress(b"\x00" + above + block[: count * (stride + 1)], 0)
        strip = Image.frombytes(im.mode, (width, count + 1), payload, "zip", rawmode)
        if im.palette is not None:
            strip.putpalette(im.palette.palette, im.palette.rawmode or "RGB")
        strip.info.update(im.info)
        above = strip.crop((0, count, width, count + 1)).tobytes("raw", rawmode)
        if width * BITS[rawmode] % 8:  # the last byte's unused bits: Pillow's rows zero them, the next row reads them
            last = _last_byte(strip.tobytes("raw", rawmode), block, count, stride, last)
            above = above[:-1] + bytes([last])
        small = plain(strip.crop((0, 1, width, count + 1)))
        small = small.reduce(factor) if factor > 1 else small
        if canvas is None:
            canvas = Image.new(small.mode, (-(-width // factor), -(-height // factor)))
        canvas.paste(small, (0, y // factor))
        y += count
    if y < height:
        raise OSError(f"the PNG's image data ends after {y} of {height} rows")
    return canvas


def _last_byte(packed: bytes, block: bytes, count: int, stride: int, last: int) -> int:
    """The last byte of a strip's last row as the PNG's filters made it, unused bits included: row by row from
    the row's filter and filtered byte, the byte before it (``packed``: the strip as Pillow decoded it, the row
    above first; every byte but the last is exact) and the row above's last byte."""
    i = stride - 1
    for r in range(1, count + 1):
        kind, x = block[(r - 1) * (stride + 1)], block[(r - 1) * (stride + 1) + 1 + i]
        a = packed[r * stride + i - 1] if i else 0
        c = packed[(r - 1) * stride + i - 1] if i else 0
        last = (x + (0, a, last, (a + last) // 2, _paeth(a, last, c))[kind]) & 0xFF
    return last


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c


def _idat(data: bytes, offset: int) -> Iterator[memoryview]:
    """The payloads of the consecutive IDAT chunks, the first one's starting at ``offset`` (Pillow's tile)."""
    view = memoryview(data)
    at = offset - 8
    while at + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[at : at + 8])
        if kind != b"IDAT":
            return
        yield view[at + 8 : at + 8 + length]
        at += 12 + length


def _inflate(chunks: Iterator[memoryview], size: int) -> Iterator[bytes]:
    """The zlib stream split over ``chunks``, inflated ``size`` bytes at a time (the last block may be shorter):
    never more than one block held, however well the stream compresses."""
    inflater = zlib.decompressobj()
    block = bytearray()
    try:
        for chunk in chunks:
            pending: bytes | memoryview = chunk
            while True:
                block += inflater.decompress(pending, size - len(block))
                pending = inflater.unconsumed_tail
                if len(block) == size:
                    yield bytes(block)
                    block.clear()  # more output may wait inside zlib even when the input is used up
                elif not pending:
                    break
    except zlib.error as exc:
        raise OSError(f"the PNG's image data is damaged ({exc})") from None
    if block:
        yield bytes(block)
