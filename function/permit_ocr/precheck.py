"""Step 3: the API's image limits, checked on the first bytes of the object before the paid call.

``inspect`` reads format and dimensions from the header bytes of PNG, JPEG, BMP, GIF, TIFF and WebP, and
recognizes HEIF/HEIC (by the ``ftyp`` brands) and PDF; the caller fetches a small range first and more only
when a JPEG's frame header lies further in (EXIF blocks). ``check_limits`` then says whether the bytes go to OCR
as stored, must be converted first (``ImageInfo.convert`` names why: convert.py does it after the claim), or
can never be read (a PrecheckError, recorded as the version's outcome). Error codes are the API's own, so
consumers see one vocabulary whether we or the service refused the image.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field, replace

from .errors import PrecheckError

__all__ = ["CONVERT_REASONS", "HEAD_BYTES", "ImageInfo", "NeedMoreBytes", "PrecheckError", "check_limits",
           "inspect"]

HEAD_BYTES = 64 * 1024  # enough for every format's header, and for most JPEGs' SOF behind EXIF
MAX_HEAD_BYTES = 1024 * 1024  # JPEGs with huge EXIF/ICC blocks: look this far, then give up
MIN_SIDE, MAX_SIDE, MAX_RATIO = 15, 8192, 50  # API document: 15 < side < 8192, ratio < 50


# Why an upload is converted before OCR (ImageInfo.convert, the result's input.reasons): what the API does not
# take (heif, pdf, over its bytes or sides), or takes without saying how it reads it (an EXIF orientation, CMYK,
# 16-bit samples, transparency, several frames): a person sees the picture upright, in colour, on white, once.
CONVERT_REASONS = ("heif", "pdf", "overBytes", "overSide", "orientation", "cmyk", "deepColor", "transparency",
                   "multiFrame")
HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx"})  # HEVC-coded HEIF (not AVIF)
PDF_MAGIC_WITHIN = 1024  # the PDF spec lets %PDF- start anywhere in the first 1024 bytes


@dataclass(frozen=True)
class ImageInfo:
    format: str  # jpeg | png | bmp | gif | tiff | webp, and (converted only) heif | pdf
    width: int  # 0 for heif and pdf: known once decoded
    height: int
    convert: tuple[str, ...] = ()  # CONVERT_REASONS that apply; empty: the bytes go to OCR as stored
    # header facts that decide ``convert`` (check_limits), kept out of equality and repr
    orientation: int = field(default=1, compare=False, repr=False)  # EXIF/TIFF orientation, 1 = as stored
    traits: frozenset[str] = field(default=frozenset(), compare=False, repr=False)  # cmyk, deepColor, ...


class NeedMoreBytes(Exception):
    """The header is longer than what was read; read at least ``total`` bytes and try again."""

    def __init__(self, total: int) -> None:
        super().__init__(total)
        self.total = total


def sniff_format(head: bytes) -> str | None:
    if head[4:8] == b"ftyp" and _heif_brand(head):
        return "heif"
    if b"%PDF-" in head[:PDF_MAGIC_WITHIN]:
        return "pdf"
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


def _heif_brand(head: bytes) -> bool:
    """An HEVC-coded HEIF: the major brand, or (mif1/msf1 files) a compatible brand, is an HEVC one."""
    size = int.from_bytes(head[:4], "big")
    brands = [head[8:12]] + [head[i:i + 4] for i in range(16, min(size, len(head)) - 3, 4)]
    return brands[0] in HEIF_BRANDS or (brands[0] in (b"mif1", b"msf1") and any(b in HEIF_BRANDS for b in brands))


def inspect(head: bytes, object_size: int | None = None) -> ImageInfo:
    """Format and dimensions (and the facts convert.py acts on) from the header bytes; raises PrecheckError or
    NeedMoreBytes."""
    fmt = sniff_format(head)
    if fmt is None:
        raise PrecheckError("unsupportedImageFormat", "not a PNG, JPEG, BMP, GIF, TIFF, WebP, HEIC/HEIF image or "
                            "PDF (checked by its first bytes)")
    if fmt in ("heif", "pdf"):  # sizes live deep inside (HEIF item properties, PDF page tree): read when decoded
        return ImageInfo(fmt, 0, 0)
    try:
        width, height = _DIMENSIONS[fmt](head)
    except (struct.error, IndexError, ValueError):
        if object_size is not None and len(head) >= object_size:
            raise PrecheckError("unsupportedImageFormat", f"{fmt} header is truncated or corrupt") from None
        raise NeedMoreBytes(min(max(len(head) * 4, HEAD_BYTES), MAX_HEAD_BYTES)) from None
    try:
        orientation, traits = _TRAITS[fmt](head) if fmt in _TRAITS else (1, frozenset())
    except (struct.error, IndexError, ValueError):  # a damaged block after the sizes: read it as plain
        orientation, traits = 1, frozenset()
    return ImageInfo(fmt, width, height, orientation=orientation, traits=traits)


def check_limits(info: ImageInfo, size: int | None, max_bytes: int, convert_max_bytes: int) -> ImageInfo:
    """``info`` with the reasons it must be converted before OCR (empty: sent as stored); PrecheckError when no
    conversion helps: too small, too narrow, or too large an upload to convert."""
    if size is not None and size > max(max_bytes, convert_max_bytes):
        raise PrecheckError("exceededImageContent", f"the upload is {size} bytes; uploads over "
                            f"{max(max_bytes, convert_max_bytes)} bytes are not converted (CONVERT_MAX_BYTES)")
    if info.format in ("heif", "pdf"):
        return replace(info, convert=(info.format,))
    w, h = info.width, info.height
    if min(w, h) <= MIN_SIDE:
        raise PrecheckError("illegalImageSize", f"image is {w}x{h} px; each side must be over {MIN_SIDE} px")
    if max(w, h) / min(w, h) >= MAX_RATIO:
        raise PrecheckError("illegalImageSize", f"image is {w}x{h} px; the aspect ratio must be under {MAX_RATIO}")
    facts = {"overBytes": size is not None and size > max_bytes, "overSide": max(w, h) >= MAX_SIDE,
             "orientation": info.orientation != 1, **{t: True for t in info.traits}}
    return replace(info, convert=tuple(r for r in CONVERT_REASONS if facts.get(r)))


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


# --- the facts that make an accepted format worth converting (convert.py acts on them) ----------------------

Traits = tuple[int, frozenset[str]]  # (orientation, traits)
_ORIENTATION, _BITS, _SAMPLES, _PHOTOMETRIC, _EXTRA_SAMPLES = 274, 258, 277, 262, 338


def _ifd0(tiff: bytes) -> tuple[dict[int, int], int]:
    """IFD0 of a TIFF structure (a TIFF file, or EXIF's): tag -> first value, and the next IFD's offset."""
    end = "<" if tiff[:2] == b"II" else ">"
    (ifd,) = struct.unpack(end + "I", tiff[4:8])
    (count,) = struct.unpack(end + "H", tiff[ifd : ifd + 2])
    tags: dict[int, int] = {}
    for n in range(count):
        off = ifd + 2 + 12 * n
        tag, typ, num = struct.unpack(end + "HHI", tiff[off : off + 8])
        if typ not in (3, 4):  # SHORT, LONG: the only types these tags use
            continue
        width = 2 if typ == 3 else 4
        at = off + 8 if num * width <= 4 else struct.unpack(end + "I", tiff[off + 8 : off + 12])[0]
        (tags[tag],) = struct.unpack(end + ("H" if typ == 3 else "I"), tiff[at : at + width])
    (next_ifd,) = struct.unpack(end + "I", tiff[ifd + 2 + 12 * count : ifd + 6 + 12 * count])
    return tags, next_ifd


def _tiff_traits(b: bytes) -> Traits:
    tags, next_ifd = _ifd0(b)
    traits = {"cmyk": tags.get(_PHOTOMETRIC) == 5, "deepColor": tags.get(_BITS, 8) > 8,
              "transparency": _EXTRA_SAMPLES in tags, "multiFrame": next_ifd != 0}
    return tags.get(_ORIENTATION, 1), frozenset(k for k, v in traits.items() if v)


def _jpeg_traits(b: bytes) -> Traits:
    orientation, traits = 1, set()
    i = 2
    while i + 4 <= len(b) and b[i] == 0xFF:
        marker = b[i + 1]
        if marker == 0xFF or marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 1 if marker == 0xFF else 2
            continue
        (length,) = struct.unpack(">H", b[i + 2 : i + 4])
        if marker == 0xE1 and b[i + 4 : i + 10] == b"Exif\x00\x00":
            orientation = _ifd0(b[i + 10 : i + 2 + length])[0].get(_ORIENTATION, 1)
        if marker in _SOF:
            if b[i + 9] == 4:  # four components: CMYK (or YCCK), which not every decoder turns into colour
                traits.add("cmyk")
            if b[i + 4] > 8:  # 12-bit samples
                traits.add("deepColor")
            break
        i += 2 + length
    return orientation, frozenset(traits)


def _png_traits(b: bytes) -> Traits:
    depth, colour = b[24], b[25]
    traits = {"deepColor"} if depth == 16 else set()
    if colour in (4, 6):  # grey or RGB with an alpha channel
        traits.add("transparency")
    i = 8
    while i + 8 <= len(b):
        (length,) = struct.unpack(">I", b[i : i + 4])
        kind = b[i + 4 : i + 8]
        if kind == b"IDAT":
            break
        if kind == b"tRNS":
            traits.add("transparency")
        elif kind == b"acTL":  # an animated PNG
            traits.add("multiFrame")
        i += 12 + length
    return 1, frozenset(traits)


def _gif_traits(b: bytes) -> Traits:
    """Frames and transparency, as far as the header bytes go (a long first frame hides the second)."""
    traits: set[str] = set()
    i = 13 + ((3 << ((b[10] & 7) + 1)) if b[10] & 0x80 else 0)
    frames = 0
    while i < len(b) and b[i] != 0x3B:
        if b[i] == 0x21:  # extension: graphic control (transparency), application (NETSCAPE2.0: animation)
            if b[i + 1] == 0xF9 and b[i + 3] & 1:
                traits.add("transparency")
            if b[i + 1] == 0xFF and b[i + 3 : i + 14] in (b"NETSCAPE2.0", b"ANIMEXTS1.0"):
                traits.add("multiFrame")
            i += 2
        elif b[i] == 0x2C:  # image descriptor, its local colour table, the LZW minimum code size
            frames += 1
            packed = b[i + 9]
            i += 11 + ((3 << ((packed & 7) + 1)) if packed & 0x80 else 0)
        else:
            break
        while i < len(b) and b[i]:  # data sub-blocks
            i += b[i] + 1
        i += 1
    if frames > 1:
        traits.add("multiFrame")
    return 1, frozenset(traits)


def _webp_traits(b: bytes) -> Traits:
    chunk = b[12:16]
    if chunk == b"VP8X":
        flags = b[20]
        return 1, frozenset(t for t, bit in (("multiFrame", 0x02), ("transparency", 0x10)) if flags & bit)
    if chunk == b"VP8L" and (int.from_bytes(b[21:25], "little") >> 28) & 1:
        return 1, frozenset({"transparency"})
    return 1, frozenset()


_TRAITS = {"jpeg": _jpeg_traits, "png": _png_traits, "gif": _gif_traits, "tiff": _tiff_traits, "webp": _webp_traits}
