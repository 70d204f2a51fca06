"""HEIC/HEIF photos decoded a tile at a time, so a 12 MP or 48 MP phone photo fits a 128 MB instance.

Phones store a photo as a ``grid`` item: a mosaic of independently coded tiles (512 x 512 on iPhones). libheif
(through pi-heif) decodes only the primary item, and decoding the whole grid holds it in YCbCr and RGB at once
(about 7 bytes a pixel: 160 MB for 12 MP). Here the container is read for the grid (its tiles, their order, the
output size and the rotation/mirroring that apply to the whole picture), and each tile is decoded alone by
pointing the file's primary item at it: a two-byte change in ``pitm`` and the tile's ``hidden`` flag cleared,
so libheif still does all of the decoding. The caller shrinks each tile as it comes and pastes it into the output.

Box layouts from ISO/IEC 14496-12 (ISOBMFF: ``meta``, ``pitm``, ``iinf``/``infe``, ``iref``, ``iloc``, ``idat``,
``iprp``/``ipco``/``ipma``) and 23008-12 (HEIF: ``grid``, ``irot``, ``imir``).
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


class NotAGrid(ValueError):
    """The file is not a readable grid: the caller decodes it whole (or refuses it)."""


@dataclass(frozen=True)
class Grid:
    rows: int
    columns: int
    width: int  # the composed picture, before rotation
    height: int
    tiles: tuple[int, ...]  # item ids, row by row
    transforms: tuple[tuple[str, int], ...]  # ("irot", quarter turns anticlockwise) / ("imir", axis), in order
    _pitm: tuple[int, int]  # (offset, width) of the primary item id
    _hidden: dict[int, int]  # tile id -> offset of its infe flags' last byte


def _boxes(b: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, end) of each box in b[start:end]."""
    i = start
    while i + 8 <= end:
        size, kind = struct.unpack(">I4s", b[i : i + 8])
        head = 8
        if size == 1:
            (size,) = struct.unpack(">Q", b[i + 8 : i + 16])
            head = 16
        elif size == 0:
            size = end - i
        if size < head or i + size > end:
            raise NotAGrid("a box runs past its parent")
        yield kind, i + head, i + size
        i += size


def _uint(b: bytes, at: int, width: int) -> int:
    return int.from_bytes(b[at : at + width], "big") if width else 0


def read_grid(b: bytes) -> Grid:
    """The primary item's grid; NotAGrid when the primary item is a single coded image (or unreadable)."""
    try:
        return _read_grid(b)
    except (IndexError, KeyError, StopIteration, struct.error) as exc:
        raise NotAGrid(f"unreadable container: {type(exc).__name__}") from None


def _read_grid(b: bytes) -> Grid:
    s, e = next((s, e) for kind, s, e in _boxes(b, 0, len(b)) if kind == b"meta")
    meta = {kind: (ks, ke) for kind, ks, ke in _boxes(b, s + 4, e)}  # meta is a FullBox
    ps, _ = meta[b"pitm"]
    pitm = (ps + 4, 2 if b[ps] == 0 else 4)
    primary = _uint(b, *pitm)
    items, hidden = _items(b, *meta[b"iinf"])
    if items.get(primary) != b"grid":
        raise NotAGrid("the primary item is not a grid")
    tiles = _references(b, *meta[b"iref"]).get(primary, [])
    if not tiles or any(items.get(t) != b"hvc1" for t in tiles):
        raise NotAGrid("grid tiles that are not HEVC images")
    payload = _item_data(b, meta, primary)
    rows, columns = payload[2] + 1, payload[3] + 1
    wide = 4 if payload[1] & 1 else 2
    width, height = _uint(payload, 4, wide), _uint(payload, 4 + wide, wide)
    if rows * columns != len(tiles) or not width or not height:
        raise NotAGrid("grid geometry does not match its tiles")
    return Grid(rows, columns, width, height, tuple(tiles), _transforms(b, meta[b"iprp"], primary), pitm,
                {t: hidden[t] for t in tiles})


def _items(b: bytes, s: int, e: int) -> tuple[dict[int, bytes], dict[int, int]]:
    count_width = 2 if b[s] == 0 else 4
    types: dict[int, bytes] = {}
    flags: dict[int, int] = {}
    for kind, fs, _ in _boxes(b, s + 4 + count_width, e):
        if kind != b"infe" or b[fs] < 2:
            continue
        id_width = 2 if b[fs] == 2 else 4
        item = _uint(b, fs + 4, id_width)
        types[item] = b[fs + 4 + id_width + 2 : fs + 4 + id_width + 6]
        flags[item] = fs + 3  # the FullBox flags' last byte: bit 0 is "hidden"
    return types, flags


def _references(b: bytes, s: int, e: int) -> dict[int, list[int]]:
    id_width = 2 if b[s] == 0 else 4
    out: dict[int, list[int]] = {}
    for kind, rs, _ in _boxes(b, s + 4, e):
        if kind == b"dimg":
            n = _uint(b, rs + id_width, 2)
            first = rs + id_width + 2
            out[_uint(b, rs, id_width)] = [_uint(b, first + k * id_width, id_width) for k in range(n)]
    return out


def _item_data(b: bytes, meta: dict[bytes, tuple[int, int]], item: int) -> bytes:
    s, _ = meta[b"iloc"]
    version = b[s]
    offset_size, length_size = b[s + 4] >> 4, b[s + 4] & 15
    base_size, index_size = b[s + 5] >> 4, (b[s + 5] & 15 if version in (1, 2) else 0)
    id_width = 4 if version == 2 else 2
    i = s + 6
    count = _uint(b, i, 4 if version == 2 else 2)
    i += 4 if version == 2 else 2
    for _ in range(count):
        this = _uint(b, i, id_width)
        i += id_width
        method = _uint(b, i, 2) & 15 if version in (1, 2) else 0
        i += (2 if version in (1, 2) else 0) + 2  # construction method, data reference index
        base = _uint(b, i, base_size)
        i += base_size
        extents = _uint(b, i, 2)
        i += 2
        chunks = []
        for _ in range(extents):
            i += index_size
            offset, length = _uint(b, i, offset_size), _uint(b, i + offset_size, length_size)
            i += offset_size + length_size
            start = base + offset + (meta[b"idat"][0] if method == 1 else 0)
            chunks.append(b[start : start + length])
        if this == item:
            return b"".join(chunks)
    raise NotAGrid("the grid item has no data")


def _transforms(b: bytes, iprp: tuple[int, int], item: int) -> tuple[tuple[str, int], ...]:
    boxes = {kind: (s, e) for kind, s, e in _boxes(b, *iprp)}
    properties = [(kind, s) for kind, s, _ in _boxes(b, *boxes[b"ipco"])]
    s, _ = boxes[b"ipma"]
    version, flags = b[s], b[s + 3]
    i = s + 4
    count = _uint(b, i, 4)
    i += 4
    for _ in range(count):
        this = _uint(b, i, 2 if version < 1 else 4)
        i += 2 if version < 1 else 4
        n = b[i]
        i += 1
        wide = flags & 1
        found = []
        for _ in range(n):
            index = (_uint(b, i, 2) & 0x7FFF) if wide else (b[i] & 0x7F)
            i += 2 if wide else 1
            if this == item and index:
                kind, ps = properties[index - 1]
                if kind in (b"irot", b"imir"):
                    found.append((kind.decode(), b[ps] & (3 if kind == b"irot" else 1)))
        if this == item:
            return tuple(found)
    return ()


def tiles(b: bytes, grid: Grid) -> Iterator[tuple[int, int, Any]]:
    """(row, column, Pillow image) of each tile, decoded one at a time by libheif."""
    import pi_heif

    patched = bytearray(b)
    at, width = grid._pitm
    for n, tile in enumerate(grid.tiles):
        patched[at : at + width] = tile.to_bytes(width, "big")
        patched[grid._hidden[tile]] &= 0xFE
        image = pi_heif.open_heif(io.BytesIO(patched), convert_hdr_to_8bit=True).to_pillow()
        yield n // grid.columns, n % grid.columns, image
