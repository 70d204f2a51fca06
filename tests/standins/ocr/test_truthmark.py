"""Truth embedded in PNG/JPEG bytes: round trips, replacement, and images that stay valid for decoders."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image

from permit_ocr_local.standins.ocr.truthmark import KEYWORD, embed_truth, read_truth

TRUTH = {"permitType": "港澳居民来往内地通行证", "nameCn": "何郑", "nameEn": "HE,CHENG", "valueProb": {"nameEn": 62}}


def encode(fmt: str, size: tuple[int, int] = (40, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 120, 40)).save(buf, fmt)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_round_trip_keeps_the_image_decodable(fmt: str) -> None:
    plain = encode(fmt)
    marked = embed_truth(plain, TRUTH)
    assert read_truth(plain) is None
    assert read_truth(marked) == TRUTH
    with Image.open(io.BytesIO(marked)) as a, Image.open(io.BytesIO(plain)) as b:
        assert a.size == b.size and a.tobytes() == b.tobytes()


def test_png_uses_an_itxt_chunk_that_decoders_read() -> None:
    marked = embed_truth(encode("PNG"), TRUTH)
    assert marked[33 + 4:33 + 8] == b"iTXt"  # right after the 8-byte signature and the 25-byte IHDR chunk
    with Image.open(io.BytesIO(marked)) as im:
        im.load()
        assert "何郑" in im.info[KEYWORD.decode()]  # Pillow checks the CRC and decodes UTF-8


def test_jpeg_uses_a_com_segment_after_soi() -> None:
    marked = embed_truth(encode("JPEG"), TRUTH)
    assert marked[2:4] == b"\xff\xfe" and marked[6:6 + len(KEYWORD) + 1] == KEYWORD + b":"
    with Image.open(io.BytesIO(marked)) as im:
        assert im.info["comment"].startswith(KEYWORD + b":")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_embedding_again_replaces_the_truth(fmt: str) -> None:
    twice = embed_truth(embed_truth(encode(fmt), {"nameCn": "甲"}), {"nameCn": "乙"})
    assert read_truth(twice) == {"nameCn": "乙"}
    assert twice.count(KEYWORD) == 1


def test_other_formats_have_no_truth_and_refuse_it() -> None:
    gif = encode("GIF")
    assert read_truth(gif) is None
    assert read_truth(b"") is None
    with pytest.raises(ValueError):
        embed_truth(gif, TRUTH)


def test_damaged_or_non_object_truth_reads_as_none() -> None:
    marked = embed_truth(encode("PNG"), TRUTH)
    assert read_truth(marked[:40]) is None  # truncated inside the chunk
    assert read_truth(embed_truth(encode("PNG"), [1, 2])) is None  # type: ignore[arg-type]
    assert read_truth(marked.replace(b'{"', b'{{', 1)) is None  # same length, broken JSON


def test_compressed_itxt_and_text_chunks_are_read() -> None:
    png = encode("PNG")
    text = b'{"nameCn":"x"}'

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ztxt = chunk(b"iTXt", KEYWORD + b"\x00\x01\x00\x00\x00" + zlib.compress(text))
    assert read_truth(png[:33] + ztxt + png[33:]) == {"nameCn": "x"}
    assert read_truth(png[:33] + chunk(b"tEXt", KEYWORD + b"\x00" + text) + png[33:]) == {"nameCn": "x"}
