"""png.py: a PNG decoded a strip of rows at a time gives exactly the pixels of decoding it whole with Pillow, then
making it plain and reducing it, for every bit depth and colour type it takes, every filter, any strip cut; and
it refuses damaged image data as Pillow does. The PNGs are written here by a small encoder that picks a random
filter for every row (Pillow's own encoder would pick few), so each filter meets a strip's first row."""

from __future__ import annotations

import io
import random
import struct
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from permit_ocr import convert, png

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# (bit depth, colour type, samples a pixel): each (Pillow mode, raw mode) pair of png.STRIPS
KINDS = [(1, 0, 1), (2, 0, 1), (4, 0, 1), (8, 0, 1), (16, 0, 1), (8, 2, 3), (1, 3, 1), (2, 3, 1), (4, 3, 1),
         (8, 3, 1), (8, 4, 2), (8, 6, 4)]


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c


def _filtered(row: bytes, above: bytes, kind: int, bpp: int) -> bytes:
    out = bytearray([kind])
    for i, x in enumerate(row):
        a = row[i - bpp] if i >= bpp else 0
        b, c = above[i], (above[i - bpp] if i >= bpp else 0)
        out.append((x - (0, a, b, (a + b) // 2, _paeth(a, b, c))[kind]) & 0xFF)
    return bytes(out)


def encode(width: int, height: int, depth: int, colour: int, samples: int, rng: random.Random,
           idat_size: int = 997, transparent: bool = False, interlace: int = 0) -> bytes:
    """A PNG of random samples, each row under a random filter, its zlib stream split into IDAT chunks of
    ``idat_size`` bytes; a palette image gets a palette (and, ``transparent``, a tRNS alpha per entry)."""
    stride = (width * depth * samples + 7) // 8
    bpp = max(1, depth * samples // 8)
    # random bytes: unused bits at the end of a row too (the PNG spec leaves them to the encoder), and palette
    # indices within the palette's 2**depth entries
    rows = [bytes(rng.randrange(256) for _ in range(stride)) for _ in range(height)]
    above, stream = bytes(stride), b""
    for row in rows:
        stream += _filtered(row, above, rng.randrange(5), bpp)
        above = row
    data = zlib.compress(stream, 6)
    out = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0,
                                                               interlace))
    if colour == 3:
        entries = 2**depth
        out += _chunk(b"PLTE", bytes(rng.randrange(256) for _ in range(3 * entries)))
        if transparent:
            out += _chunk(b"tRNS", bytes(rng.randrange(256) for _ in range(entries)))
    for at in range(0, len(data), idat_size):
        out += _chunk(b"IDAT", data[at : at + idat_size])
    return out + _chunk(b"IEND", b"")


def whole(data: bytes, factor: int) -> Image.Image:
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        plain = convert._plain(im)
    return plain.reduce(factor) if factor > 1 else plain


def strips(data: bytes, factor: int, strip_bytes: int = png.STRIP_BYTES) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    assert png.in_strips(im)
    return png.decode(im, data, factor, convert._plain, strip_bytes)


@SETTINGS
@given(kind=st.sampled_from(KINDS), width=st.integers(1, 70), height=st.integers(1, 40),
       factor=st.integers(1, 5), strip_bytes=st.sampled_from([1, 64, 300, 4096]),
       idat_size=st.sampled_from([1, 7, 997, 10**6]), transparent=st.booleans(), seed=st.integers(0, 2**16))
def test_a_png_decoded_in_strips_is_pixel_for_pixel_the_png_decoded_whole_then_reduced(
        kind: tuple[int, int, int], width: int, height: int, factor: int, strip_bytes: int, idat_size: int,
        transparent: bool, seed: int) -> None:
    data = encode(width, height, *kind, random.Random(seed), idat_size, transparent)
    got, want = strips(data, factor, strip_bytes), whole(data, factor)  # strips of a row up to the whole image
    assert (got.mode, got.size) == (want.mode, want.size)
    assert got.tobytes() == want.tobytes()


def test_a_wide_png_is_held_a_strip_at_a_time_not_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """What decode() holds at once: never more rows than one strip of STRIP_BYTES (plus the row above)."""
    seen: list[int] = []
    frombytes = Image.frombytes

    def counting(mode: str, size: tuple[int, int], *args: object) -> Image.Image:
        seen.append(size[1])
        return frombytes(mode, size, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(Image, "frombytes", counting)
    data = encode(600, 200, 8, 2, 3, random.Random(1))
    decoded = strips(data, 2)
    assert decoded.size == (300, 100)
    assert sum(n - 1 for n in seen) == 200 and max(seen) - 1 <= png.STRIP_BYTES // (600 * 4)


@pytest.mark.parametrize("interlace", [1])
def test_an_interlaced_png_is_not_read_in_strips(interlace: int) -> None:
    data = encode(20, 10, 8, 2, 3, random.Random(2), interlace=0)
    laced = data[:28] + bytes([interlace]) + data[29:]  # the IHDR flag only: Pillow reads it at open
    laced = laced[:29] + struct.pack(">I", zlib.crc32(laced[12:29])) + laced[33:]
    assert not png.in_strips(Image.open(io.BytesIO(laced)))


def test_16_bit_colour_is_not_read_in_strips() -> None:
    """Pillow keeps 8 of the 16 bits of a colour sample, so a row cannot be stored back: decoded whole."""
    data = encode(8, 4, 16, 2, 3, random.Random(3))
    assert not png.in_strips(Image.open(io.BytesIO(data)))


@pytest.mark.parametrize("cut", ["truncated", "damaged"])
def test_damaged_image_data_is_refused_like_pillow_refuses_it(cut: str) -> None:
    data = encode(64, 48, 8, 2, 3, random.Random(4), idat_size=10**6)
    start = data.index(b"IDAT") + 4
    bad = data[: start + 300] if cut == "truncated" else data[:start + 40] + b"\xff" * 40 + data[start + 80:]
    with pytest.raises(OSError):
        whole(bad, 1)
    with pytest.raises(OSError):
        strips(bad, 1)
