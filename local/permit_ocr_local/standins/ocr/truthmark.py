"""Ground truth carried inside a test image, so a recognizer stand-in can answer without a model.

PNG: an iTXt chunk (UTF-8) with keyword ``permit-ocr-truth`` right after IHDR. JPEG: a COM segment right after
SOI whose payload is ``permit-ocr-truth:`` + JSON. Pure byte surgery: the pixels are untouched.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterator
from typing import Any

from .imageinfo import PNG_SIGNATURE

KEYWORD = b"permit-ocr-truth"
JPEG_PREFIX = KEYWORD + b":"
_MAX_COM = 0xFFFF - 2  # a JPEG segment length field counts itself


def embed_truth(image: bytes, truth: dict[str, Any]) -> bytes:
    """Return ``image`` carrying ``truth`` (replacing any earlier truth); ValueError for other formats."""
    text = json.dumps(truth, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    if image.startswith(PNG_SIGNATURE):
        return _png_embed(image, text)
    if image.startswith(b"\xff\xd8"):
        return _jpeg_embed(image, text)
    raise ValueError("truth can only be embedded in PNG or JPEG images")


def read_truth(image: bytes) -> dict[str, Any] | None:
    """The embedded truth, or None (other format, no truth, damaged or not a JSON object)."""
    try:
        raw = _png_read(image) if image.startswith(PNG_SIGNATURE) else (
            _jpeg_read(image) if image.startswith(b"\xff\xd8") else None)
        value = json.loads(raw.decode("utf-8")) if raw is not None else None
    except (ValueError, IndexError, zlib.error, struct.error):
        return None
    return value if isinstance(value, dict) else None


# --- PNG ---------------------------------------------------------------------------------------------------

def _png_chunks(image: bytes) -> Iterator[tuple[bytes, bytes, int, int]]:
    """(type, data, start, end) per chunk; stops at a truncated chunk."""
    i = len(PNG_SIGNATURE)
    while i + 12 <= len(image):
        (length,) = struct.unpack(">I", image[i:i + 4])
        end = i + 12 + length
        if end > len(image):
            return
        yield image[i + 4:i + 8], image[i + 8:i + 8 + length], i, end
        i = end


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _is_truth_chunk(kind: bytes, data: bytes) -> bool:
    return kind in (b"iTXt", b"tEXt") and data.split(b"\x00", 1)[0] == KEYWORD


def _png_embed(image: bytes, text: bytes) -> bytes:
    chunks = list(_png_chunks(image))
    if not chunks or chunks[0][0] != b"IHDR":
        raise ValueError("PNG without IHDR")
    # iTXt: keyword NUL, compression flag 0, method 0, empty language NUL, empty translated keyword NUL, text
    truth = _png_chunk(b"iTXt", KEYWORD + b"\x00\x00\x00\x00\x00" + text)
    kept = b"".join(image[s:e] for kind, data, s, e in chunks[1:] if not _is_truth_chunk(kind, data))
    return image[:chunks[0][3]] + truth + kept


def _png_read(image: bytes) -> bytes | None:
    for kind, data, _, _ in _png_chunks(image):
        if not _is_truth_chunk(kind, data):
            continue
        body = data[len(KEYWORD) + 1:]
        if kind == b"tEXt":
            return body.decode("latin-1").encode("utf-8")
        compressed, rest = body[0], body[2:]
        _lang, _translated, text = rest.split(b"\x00", 2)
        return zlib.decompress(text) if compressed else text
    return None


# --- JPEG --------------------------------------------------------------------------------------------------

def _jpeg_segments(image: bytes) -> Iterator[tuple[int, int, int]]:
    """(marker, start, end) of the length-carrying segments between SOI and SOS."""
    i = 2
    while i + 4 <= len(image) and image[i] == 0xFF:
        marker = image[i + 1]
        if marker == 0xDA:
            return
        (length,) = struct.unpack(">H", image[i + 2:i + 4])
        yield marker, i, i + 2 + length
        i += 2 + length


def _is_truth_com(image: bytes, marker: int, start: int) -> bool:
    return marker == 0xFE and image[start + 4:start + 4 + len(JPEG_PREFIX)] == JPEG_PREFIX


def _jpeg_embed(image: bytes, text: bytes) -> bytes:
    payload = JPEG_PREFIX + text
    if len(payload) > _MAX_COM:
        raise ValueError("truth too large for one JPEG COM segment")
    segment = b"\xff\xfe" + struct.pack(">H", len(payload) + 2) + payload
    stale = [(s, e) for m, s, e in _jpeg_segments(image) if _is_truth_com(image, m, s)]
    for s, e in reversed(stale):
        image = image[:s] + image[e:]
    return image[:2] + segment + image[2:]


def _jpeg_read(image: bytes) -> bytes | None:
    for marker, start, end in _jpeg_segments(image):
        if _is_truth_com(image, marker, start):
            return image[start + 4 + len(JPEG_PREFIX):end]
    return None
