"""Step 5, after the claim and before the paid call: turn what a phone or a scanner uploaded into what the OCR API
takes (PNG, JPEG, BMP, GIF, TIFF, WebP; at most 10 MB; sides under 8192 px), as a person would see it.

Only uploads the precheck marked (``ImageInfo.convert``) come here; every other image goes to OCR as stored,
and this module (and Pillow, pi-heif, pypdfium2) is never imported for it. What is done, and why:
- HEIC/HEIF: decoded with libheif (pi-heif), a tile at a time for phone photos (heif.py);
- PDF: each page rendered (pypdfium2) at PDF_DPI, so a permit's 2-4 mm print lands at 16-31 px, inside the
  API's recommended 10-50 px; a scanner's page that is one JPEG is decoded straight from that JPEG instead;
- over the byte or side limits: scaled down, aspect kept, the long side at most OUT_MAX_SIDE and the short one
  kept at MIN_SIDE_KEPT or more where the upload has it;
- an EXIF/TIFF orientation applied, CMYK and 16-bit samples made 8-bit RGB, transparency laid on white, the
  first frame of an animation or a multi-page TIFF taken.
The result is always a JPEG (quality 90). Memory is planned before anything is read or decoded: FC's memorySize
(FC_FUNCTION_MEMORY_SIZE, 128 MB when unset) less the function's own footprint and the upload's own bytes bounds
the decoded pixels, and a JPEG, PNG or HEIC photo is decoded smaller (libjpeg's DCT scaling, a PNG a strip of
rows at a time (png.py), a HEIC tile by tile) until it fits. What cannot fit, an upload too large even to read
whole among them, is refused before reading or decoding (``notEnoughMemory``, not a verdict on the image: a
larger memorySize reads it), never left to the OOM killer, which would leave the upload without an outcome.
One conversion runs at a time per instance (a lock), because the WORKERS threads of a backfill event share one
instance's memory.
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import StepError
from .precheck import MAX_SIDE, ImageInfo

JPEG_QUALITY = 90
OUT_MAX_SIDE = 4096  # a card filling a twelfth of the frame's width still prints its text at 10 px or more
MIN_SIDE_KEPT = 500  # the API's advice for accuracy: sides over 500 px
PDF_DPI = 200
DEFAULT_MEMORY_MB = 128  # s.yaml's memorySize; FC tells the instance its own in FC_FUNCTION_MEMORY_SIZE
FOOTPRINT_MB = 80  # the function's RSS with the SDKs and the conversion libraries loaded (make bench)
MARGIN_MB = 10  # allocator slack, the JPEG encoder's buffers, the upload's own bytes
WORKING_COPIES = 2.2  # Pillow keeps 4 bytes a pixel; a turn or a shrink holds a second copy while it runs
HEIF_WHOLE_BYTES_PER_PX = 7.5  # libheif holds YCbCr and RGB of a whole non-grid picture at once (measured)
# the upload's own bytes are in memory too: twice while the OSS SDK reads them (it joins the body's chunks:
# +81 MB for a 41 MB object, measured), once while a raster or PDF converts, about three times while a HEIC's
# tiles decode (the file patched for each tile, and libheif's own copy of it)
READ_COPIES, HEIF_COPIES = 2, 3
# orientation tag -> (degrees turned clockwise to stand upright, mirrored)
ORIENTATIONS = {1: (0, False), 2: (0, True), 3: (180, False), 4: (180, True), 5: (90, True), 6: (90, False),
                7: (270, True), 8: (270, False)}

_one_at_a_time = threading.Lock()
# what decoders raise on bytes they cannot read (Pillow, libheif through pi-heif): a verdict on the upload;
# MemoryError is not among them (it is about the instance)
DECODE_ERRORS = (ValueError, RuntimeError, OSError, EOFError, SyntaxError, IndexError)


class ConvertError(StepError):
    """The upload cannot be turned into an image: a verdict on these bytes (final, never paid for)."""

    stage = "convert"

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message, transient=False)


def not_enough_memory(need_mb: float, have_mb: int) -> StepError:
    """Not a verdict on the image: with a larger memorySize the same upload converts (replay it then)."""
    return StepError("notEnoughMemory", f"converting this upload needs about {need_mb:.0f} MB; the function has "
                     f"{have_mb} MB (memorySize in s.yaml)", transient=False, stage="convert", world=True)


@dataclass(frozen=True)
class Converted:
    body: bytes  # the JPEG sent to OCR
    info: ImageInfo  # what was sent: the documents' ``image`` block
    input: dict[str, Any]  # what was uploaded and what was done to it: the documents' ``input`` block


def memory_mb(environ: Mapping[str, str] = os.environ) -> int:
    try:
        return int(environ.get("FC_FUNCTION_MEMORY_SIZE") or DEFAULT_MEMORY_MB)
    except ValueError:
        return DEFAULT_MEMORY_MB


def budget_bytes(memory: int, held: int = 0) -> int:
    """Bytes left for decoded pixels in ``memory`` MB while ``held`` bytes (the upload's) are in memory too."""
    return max(0, (memory - FOOTPRINT_MB - MARGIN_MB) * 2**20 - held)


def need_mb(pixels: float, per_px: float = 4 * WORKING_COPIES, held: int = 0) -> float:
    return FOOTPRINT_MB + MARGIN_MB + (pixels * per_px + held) / 2**20


def check_read(size: int | None, memory: int) -> None:
    """Before an upload is read whole to be converted: notEnoughMemory when even reading it would not fit (an
    OOM kill would leave the upload without an outcome)."""
    if size is not None and need_mb(0, held=READ_COPIES * size) > memory:
        raise not_enough_memory(need_mb(0, held=READ_COPIES * size), memory)


def fit(width: int, height: int, limit: int = OUT_MAX_SIDE) -> float:
    """The scale that brings the long side to ``limit`` (1.0: already within)."""
    return min(1.0, limit / max(width, height))


def _input(info: ImageInfo, width: int, height: int, out: tuple[int, int], orientation: int = 1,
           **pdf: Any) -> dict[str, Any]:
    degrees, mirrored = ORIENTATIONS.get(orientation, (0, False))
    upright_w = height if degrees in (90, 270) else width
    return {"format": info.format, "width": width, "height": height, "page": pdf.get("page"),
            "pages": pdf.get("pages"), "dpi": pdf.get("dpi"), "rotation": degrees, "mirrored": mirrored,
            "scale": round(out[0] / upright_w, 4) if upright_w else 1.0, "reasons": list(info.convert)}


# -- images ---------------------------------------------------------------------------------------------------


def convert_image(data: bytes, info: ImageInfo, max_bytes: int, memory: int) -> Converted:
    """One upload (any format but PDF) as a JPEG OCR takes; ConvertError or notEnoughMemory."""
    with _one_at_a_time:
        if info.format == "heif":
            return _heif(data, info, max_bytes, memory)
        return _raster(data, info, max_bytes, memory)


def _open(data: bytes) -> Any:
    from PIL import Image, UnidentifiedImageError

    Image.MAX_IMAGE_PIXELS = None  # the memory plan below is the guard, not Pillow's bomb warning
    try:
        return Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, *DECODE_ERRORS) as exc:
        raise ConvertError("unsupportedImageFormat", f"the {type(exc).__name__} decoder refused the image") from None


def _raster(data: bytes, info: ImageInfo, max_bytes: int, memory: int) -> Converted:
    from . import png

    im = _open(data)
    width, height = im.size
    strips = png.in_strips(im)
    scale = _decode_scale(_decode_scales(im.format, strips), width, height, memory, len(data))
    if im.format == "JPEG" and scale < 1:
        im.draft("RGB" if im.mode != "L" else "L", (max(1, int(width * scale)), max(1, int(height * scale))))
    orientation = _orientation(im, info)
    try:
        if strips:
            return _finish(png.decode(im, data, round(1 / scale), _plain), info, width, height, orientation,
                           max_bytes)
        im.load()
        return _finish(_plain(im), info, width, height, orientation, max_bytes)
    except DECODE_ERRORS as exc:
        raise ConvertError("unsupportedImageFormat", f"the image could not be decoded ({type(exc).__name__})") \
            from None


def _decode_scales(image_format: str | None, strips: bool) -> tuple[float, ...]:
    """The scales an image can be decoded at without holding it whole: libjpeg's 1/2, 1/4, 1/8 for a JPEG,
    any 1/n up to 1/8 for a PNG read in strips (png.py); other formats only whole."""
    if image_format == "JPEG":
        return (1.0, 0.5, 0.25, 0.125)
    return tuple(1 / n for n in range(1, 9)) if strips else (1.0,)


def _decode_scale(scales: tuple[float, ...], width: int, height: int, memory: int, held: int) -> float:
    """How much smaller to decode: the smallest decode that still holds the output (never upscaled) and the
    short side's MIN_SIDE_KEPT, among those that fit the memory beside ``held`` bytes; none: notEnoughMemory."""
    fitting = [s for s in scales if width * height * s * s * 4 * WORKING_COPIES <= budget_bytes(memory, held)]
    if not fitting:
        raise not_enough_memory(need_mb(width * height * scales[-1] ** 2, held=held), memory)
    short = min(width, height)
    good = [s for s in fitting if s >= fit(width, height) and short * s >= min(MIN_SIDE_KEPT, short)]
    return min(good) if good else max(fitting)


def _orientation(im: Any, info: ImageInfo) -> int:
    try:
        value = int(im.getexif().get(0x0112, 1)) if "orientation" in info.convert else 1
    except (ValueError, TypeError, SyntaxError, OSError):
        return 1
    return value if value in ORIENTATIONS else 1


def _plain(im: Any) -> Any:
    """8-bit RGB (or grey), transparency laid on white, as a person sees it."""
    from PIL import Image

    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        im = im.convert("I").point(lambda v: v * (1 / 256)).convert("L")
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return im if im.mode in ("RGB", "L") else im.convert("RGB")


def _finish(im: Any, info: ImageInfo, width: int, height: int, orientation: int, max_bytes: int,
            **pdf: Any) -> Converted:
    from PIL import Image

    if orientation != 1:
        im = _turn(im, orientation)
    limit = min(OUT_MAX_SIDE, MAX_SIDE - 1)
    while True:
        if max(im.size) > limit:
            im.thumbnail((limit, limit), Image.Resampling.LANCZOS, reducing_gap=2.0)
        out = io.BytesIO()
        im.save(out, "JPEG", quality=JPEG_QUALITY)
        body = out.getvalue()
        if len(body) <= max_bytes or min(im.size) <= MIN_SIDE_KEPT:
            break
        limit = int(max(im.size) * 0.75)  # a photo of noise: smaller until it fits the byte limit
    if len(body) > max_bytes:
        raise ConvertError("exceededImageContent", f"even at {im.size[0]}x{im.size[1]} px the image takes "
                           f"{len(body)} bytes; the limit is {max_bytes}")
    sent = ImageInfo("jpeg", im.size[0], im.size[1])
    return Converted(body, sent, _input(info, width, height, im.size, orientation, **pdf))


def _turn(im: Any, orientation: int) -> Any:
    from PIL import Image

    steps = {2: [Image.Transpose.FLIP_LEFT_RIGHT], 3: [Image.Transpose.ROTATE_180],
             4: [Image.Transpose.FLIP_TOP_BOTTOM], 5: [Image.Transpose.TRANSPOSE], 6: [Image.Transpose.ROTATE_270],
             7: [Image.Transpose.TRANSVERSE], 8: [Image.Transpose.ROTATE_90]}
    for step in steps.get(orientation, []):
        im = im.transpose(step)
    return im


# -- HEIC/HEIF ------------------------------------------------------------------------------------------------


def _heif(data: bytes, info: ImageInfo, max_bytes: int, memory: int) -> Converted:
    from . import heif

    try:
        grid = heif.read_grid(data)
    except heif.NotAGrid:
        return _heif_whole(data, info, max_bytes, memory)
    from PIL import Image

    tile_w, tile_h = -(-grid.width // grid.columns), -(-grid.height // grid.rows)
    budget = budget_bytes(memory, HEIF_COPIES * len(data))
    wanted = fit(grid.width, grid.height)
    factor = 1
    while (grid.width // factor) * (grid.height // factor) * 4 * WORKING_COPIES > budget or (
            1 / (factor * 2) >= wanted and min(grid.width, grid.height) // (factor * 2) >= MIN_SIDE_KEPT):
        factor *= 2
        if factor > 8:
            raise not_enough_memory(need_mb(grid.width * grid.height / 64, held=HEIF_COPIES * len(data)), memory)
    canvas = Image.new("RGB", (-(-tile_w * grid.columns // factor), -(-tile_h * grid.rows // factor)))
    try:
        for row, column, tile in heif.tiles(data, grid):
            small = tile.reduce(factor) if factor > 1 else tile
            canvas.paste(small.convert("RGB"), (column * tile_w // factor, row * tile_h // factor))
    except DECODE_ERRORS as exc:
        raise ConvertError("unsupportedImageFormat", f"a HEIC tile could not be decoded ({type(exc).__name__})") \
            from None
    im = canvas.crop((0, 0, grid.width // factor, grid.height // factor))
    orientation = _heif_orientation(grid.transforms)
    return _finish(im, info, grid.width, grid.height, orientation, max_bytes)


def _heif_orientation(transforms: tuple[tuple[str, int], ...]) -> int:
    """HEIF's irot (anticlockwise quarter turns) then imir (0: left-right, 1: top-bottom), as an EXIF
    orientation: the few combinations cameras write."""
    turns = next((v for k, v in transforms if k == "irot"), 0)
    mirror = next((v for k, v in transforms if k == "imir"), None)
    plain = {0: 1, 1: 8, 2: 3, 3: 6}[turns]
    if mirror is None:
        return plain
    return {(1, 0): 2, (1, 1): 4, (3, 0): 4, (3, 1): 2, (8, 0): 7, (8, 1): 5, (6, 0): 5, (6, 1): 7}[(plain, mirror)]


def _heif_whole(data: bytes, info: ImageInfo, max_bytes: int, memory: int) -> Converted:
    try:
        import pi_heif

        heif_file = pi_heif.open_heif(io.BytesIO(data), convert_hdr_to_8bit=True)
        width, height = heif_file.size
    except DECODE_ERRORS as exc:
        raise ConvertError("unsupportedImageFormat", f"the HEIC/HEIF file could not be read ({type(exc).__name__})") \
            from None
    need = need_mb(width * height, HEIF_WHOLE_BYTES_PER_PX + 4, held=HEIF_COPIES * len(data))
    if need > memory:
        raise not_enough_memory(need, memory)
    try:
        im = heif_file.to_pillow()  # libheif applied irot/imir itself
    except DECODE_ERRORS as exc:
        raise ConvertError("unsupportedImageFormat", f"the HEIC/HEIF image could not be decoded "
                           f"({type(exc).__name__})") from None
    return _finish(_plain(im), info, width, height, 1, max_bytes)
