"""Step 3: format and dimensions from real headers (written by Pillow), and the API's limits."""

from __future__ import annotations

import io
import struct

import pytest
from PIL import Image

from permit_ocr.precheck import (
    HEAD_BYTES,
    MAX_HEAD_BYTES,
    ImageInfo,
    NeedMoreBytes,
    PrecheckError,
    check_limits,
    inspect,
    sniff_format,
)

W, H = 37, 23  # not square, so a swapped width/height shows


def encode(im: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **params)
    return buf.getvalue()


def rgb(size: tuple[int, int] = (W, H)) -> Image.Image:
    return Image.new("RGB", size, (120, 130, 140))


def bmp_top_down(size: tuple[int, int] = (W, H)) -> bytes:
    data = bytearray(encode(rgb(size), "BMP"))
    (height,) = struct.unpack("<i", data[22:26])
    data[22:26] = struct.pack("<i", -height)
    return bytes(data)


def bmp_os2(width: int, height: int) -> bytes:
    """A BITMAPCOREHEADER (12-byte) bitmap header, as old OS/2 tools write it."""
    return b"BM" + struct.pack("<IHHI", 26 + width * height * 3, 0, 0, 26) + struct.pack("<IHHHH", 12, width,
                                                                                        height, 1, 24)


def jpeg_with_big_app_blocks() -> bytes:
    """A JPEG whose EXIF (APP1) and ICC (APP2) blocks push the frame header (SOF) beyond HEAD_BYTES."""
    return encode(rgb(), "JPEG", exif=b"Exif\x00\x00" + b"\x00" * 65000, icc_profile=b"\x00" * 70000)


SAMPLES: dict[str, tuple[bytes, str]] = {
    "png": (encode(rgb(), "PNG"), "png"),
    "png-rgba": (encode(Image.new("RGBA", (W, H)), "PNG"), "png"),
    "jpeg-baseline": (encode(rgb(), "JPEG"), "jpeg"),
    "jpeg-progressive": (encode(rgb(), "JPEG", progressive=True), "jpeg"),
    "jpeg-grayscale": (encode(Image.new("L", (W, H)), "JPEG"), "jpeg"),
    "jpeg-exif": (encode(rgb(), "JPEG", exif=b"Exif\x00\x00" + b"\x00" * 1000), "jpeg"),
    "bmp-bottom-up": (encode(rgb(), "BMP"), "bmp"),
    "bmp-top-down": (bmp_top_down(), "bmp"),
    "gif": (encode(rgb(), "GIF"), "gif"),
    "tiff-le": (encode(rgb(), "TIFF"), "tiff"),
    "tiff-be": (encode(Image.new("I;16B", (W, H)), "TIFF"), "tiff"),
    "tiff-deflate": (encode(rgb(), "TIFF", compression="tiff_adobe_deflate"), "tiff"),
    "webp-lossy": (encode(rgb(), "WEBP", quality=80), "webp"),
    "webp-lossless": (encode(rgb(), "WEBP", lossless=True), "webp"),
    "webp-extended": (encode(Image.new("RGBA", (W, H), (1, 2, 3, 4)), "WEBP", quality=80), "webp"),
}


def test_the_samples_are_what_they_claim() -> None:
    assert SAMPLES["tiff-le"][0][:2] == b"II" and SAMPLES["tiff-be"][0][:2] == b"MM"
    assert SAMPLES["webp-lossy"][0][12:16] == b"VP8 "
    assert SAMPLES["webp-lossless"][0][12:16] == b"VP8L"
    assert SAMPLES["webp-extended"][0][12:16] == b"VP8X"
    assert struct.unpack("<i", SAMPLES["bmp-top-down"][0][22:26])[0] == -H


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_inspect_reads_format_and_exact_dimensions(name: str) -> None:
    data, fmt = SAMPLES[name]
    assert inspect(data, len(data)) == ImageInfo(fmt, W, H)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_inspect_needs_only_the_first_head_bytes(name: str) -> None:
    data, fmt = SAMPLES[name]
    assert inspect(data[:HEAD_BYTES], None) == ImageInfo(fmt, W, H)


@pytest.mark.parametrize(("size", "fmt"), [((8191, 16), "PNG"), ((16, 8191), "GIF"), ((3000, 2000), "WEBP")])
def test_inspect_reads_large_dimensions(size: tuple[int, int], fmt: str) -> None:
    data = encode(Image.new("L" if fmt != "WEBP" else "RGB", size), fmt)
    assert (inspect(data).width, inspect(data).height) == size


def test_inspect_reads_the_os2_bitmap_header() -> None:
    assert inspect(bmp_os2(300, 200)) == ImageInfo("bmp", 300, 200)


def test_inspect_reads_tiff_dimensions_stored_as_short_and_as_long() -> None:
    def tiff(width_type: int, height_type: int) -> bytes:
        def entry(tag: int, typ: int, value: int) -> bytes:
            packed = struct.pack("<H", value) + b"\0\0" if typ == 3 else struct.pack("<I", value)
            return struct.pack("<HHI", tag, typ, 1) + packed
        return b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 2) + entry(256, width_type, 700) + entry(
            257, height_type, 500) + b"\0\0\0\0"

    assert inspect(tiff(3, 4)) == ImageInfo("tiff", 700, 500)
    assert inspect(tiff(4, 3)) == ImageInfo("tiff", 700, 500)


def test_a_jpeg_frame_header_beyond_head_bytes_asks_for_more_then_succeeds() -> None:
    data = jpeg_with_big_app_blocks()
    assert data.find(b"\xff\xc0") > HEAD_BYTES  # the premise: the SOF is past the first read
    with pytest.raises(NeedMoreBytes) as more:
        inspect(data[:HEAD_BYTES], len(data))
    assert HEAD_BYTES < more.value.total <= MAX_HEAD_BYTES
    assert inspect(data[: more.value.total], len(data)) == ImageInfo("jpeg", W, H)


def test_need_more_bytes_asks_for_at_least_head_bytes_and_at_most_max_head_bytes() -> None:
    data = jpeg_with_big_app_blocks()
    with pytest.raises(NeedMoreBytes) as small:
        inspect(data[:100])
    assert small.value.total == HEAD_BYTES
    huge = b"\xff\xd8" + (b"\xff\xe1\xff\xff" + b"\0" * 65533) * 20  # 1.3 MB of APP1 blocks, no SOF
    with pytest.raises(NeedMoreBytes) as capped:
        inspect(huge[: MAX_HEAD_BYTES // 2])
    assert capped.value.total == MAX_HEAD_BYTES


def shortest_readable(data: bytes) -> int:
    """The fewest leading bytes from which ``inspect`` reads the dimensions."""
    for n in range(len(data) + 1):
        try:
            inspect(data[:n])
        except (NeedMoreBytes, PrecheckError):
            continue
        return n
    raise AssertionError("never readable")


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_a_header_cut_short_of_the_whole_object_is_unsupported(name: str) -> None:
    data, _ = SAMPLES[name]
    head = data[: shortest_readable(data) - 1]
    with pytest.raises(PrecheckError) as info:
        inspect(head, len(head))  # the object is only this long: there is nothing more to read
    assert info.value.code == "unsupportedImageFormat"


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_a_header_cut_short_of_a_longer_object_asks_for_more(name: str) -> None:
    data, _ = SAMPLES[name]
    head = data[: shortest_readable(data) - 1]
    with pytest.raises(NeedMoreBytes):
        inspect(head, len(data))


def test_a_truncated_webp_is_not_read_as_a_1x1_image() -> None:
    data = SAMPLES["webp-lossless"][0]
    with pytest.raises(NeedMoreBytes):
        inspect(data[:18])


@pytest.mark.parametrize("head", [b"", b"hello world", b"\x00\x00\x00\x0cjP  \r\n\x87\n",
                                  b"RIFF\x00\x00\x00\x00WAVEfmt ", b"<svg xmlns='http://www.w3.org/2000/svg'/>"])
def test_other_formats_are_unsupported_by_their_first_bytes(head: bytes) -> None:
    with pytest.raises(PrecheckError) as info:
        inspect(head, len(head))
    assert info.value.code == "unsupportedImageFormat"


def test_a_jpeg_ending_before_any_frame_header_is_unsupported() -> None:
    with pytest.raises(PrecheckError, match="before any frame header"):
        inspect(b"\xff\xd8\xff\xe0\x00\x04ab\xff\xd9")


def test_a_jpeg_with_a_broken_marker_stream_is_unsupported() -> None:
    with pytest.raises(PrecheckError, match="corrupt") as info:
        inspect(b"\xff\xd8\xff\xe0\x00\x04abXX" + b"\0" * 20)
    assert info.value.code == "unsupportedImageFormat"


def test_jpeg_fill_bytes_and_restart_markers_are_stepped_over() -> None:
    sof = b"\xff\xc0\x00\x11\x08" + struct.pack(">HH", 480, 640) + b"\x03" + b"\0" * 9
    assert inspect(b"\xff\xd8\xff\xff\xff\xd0\xff\x01" + sof) == ImageInfo("jpeg", 640, 480)


def test_a_webp_with_an_unknown_chunk_is_unsupported() -> None:
    with pytest.raises(PrecheckError) as info:
        inspect(b"RIFF\x00\x00\x00\x00WEBPVP9 " + b"\0" * 40)
    assert info.value.code == "unsupportedImageFormat"


def test_a_tiff_without_size_tags_is_unsupported_once_complete() -> None:
    head = b"II*\x00" + struct.pack("<IH", 8, 0) + b"\0\0\0\0"
    with pytest.raises(PrecheckError):
        inspect(head, len(head))


@pytest.mark.parametrize(("head", "fmt"), [
    (b"\x89PNG\r\n\x1a\n", "png"), (b"\xff\xd8\xff", "jpeg"), (b"GIF87a", "gif"), (b"GIF89a", "gif"),
    (b"BM", "bmp"), (b"II*\x00", "tiff"), (b"MM\x00*", "tiff"), (b"RIFF\0\0\0\0WEBP", "webp"),
    (b"RIFF\0\0\0\0AVI ", None), (b"\x89PNG", None), (b"GIF88a", None), (b"II\x00*", None),
])
def test_sniff_format_goes_by_the_magic_bytes(head: bytes, fmt: str | None) -> None:
    assert sniff_format(head) == fmt


# --- what the API does not take, told by the first bytes: HEIC/HEIF and PDF (converted after the claim) ------


def ftyp(major: bytes, *compatible: bytes) -> bytes:
    body = b"ftyp" + major + b"\0\0\0\0" + b"".join(compatible)
    return struct.pack(">I", 4 + len(body)) + body + b"\0\0\0\x08meta"


@pytest.mark.parametrize(("head", "fmt"), [
    (ftyp(b"heic", b"mif1", b"heic"), "heif"),  # an iPhone photo
    (ftyp(b"heix", b"mif1"), "heif"),  # 10-bit
    (ftyp(b"mif1", b"heic", b"miaf"), "heif"),  # the generic HEIF brand, HEVC among the compatible ones
    (ftyp(b"hevc", b"msf1"), "heif"),  # an image sequence (burst, live photo)
    (ftyp(b"avif", b"mif1", b"miaf"), None),  # AV1 in HEIF: libheif here decodes HEVC only
    (ftyp(b"mif1", b"avif", b"miaf"), None),
    (ftyp(b"isom", b"mp41"), None),  # a video
    (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "pdf"),
    (b"\0" * 600 + b"%PDF-1.4\n", "pdf"),  # the spec lets the header start anywhere in the first 1024 bytes
    (b"\0" * 1100 + b"%PDF-1.4\n", None),
])
def test_heif_and_pdf_are_told_by_their_first_bytes(head: bytes, fmt: str | None) -> None:
    assert sniff_format(head) == fmt
    if fmt is None:
        with pytest.raises(PrecheckError):
            inspect(head, len(head))
    else:  # their sizes are read when they are decoded (HEIF item properties, each PDF page)
        assert inspect(head, len(head)) == ImageInfo(fmt, 0, 0)


# --- the API's limits: what is sent as stored, what is converted first, what no conversion helps -------------

MB = 1024 * 1024


def info(w: int, h: int) -> ImageInfo:
    return ImageInfo("png", w, h)


@pytest.mark.parametrize(("w", "h"), [(16, 16), (8191, 8191), (16, 20), (998, 20), (20, 998), (499, 16)])
def test_sides_between_16_and_8191_with_a_ratio_under_50_are_sent_as_stored(w: int, h: int) -> None:
    assert check_limits(info(w, h), 1000, 10 * MB, 40 * MB).convert == ()


@pytest.mark.parametrize(("w", "h"), [(15, 100), (100, 15), (0, 0), (15, 15), (15, 9000)])
def test_a_side_of_15_or_less_is_illegal(w: int, h: int) -> None:
    with pytest.raises(PrecheckError) as err:
        check_limits(info(w, h), 1000, 10 * MB, 40 * MB)
    assert err.value.code == "illegalImageSize"
    assert "each side" in err.value.message


@pytest.mark.parametrize(("w", "h"), [(8192, 500), (500, 8192), (9000, 1400), (12000, 9000)])
def test_a_side_of_8192_or_more_is_scaled_down_not_refused(w: int, h: int) -> None:
    assert check_limits(info(w, h), 1000, 10 * MB, 40 * MB).convert == ("overSide",)


@pytest.mark.parametrize(("w", "h"), [(1000, 20), (20, 1000), (800, 16), (2000, 39), (9000, 180)])
def test_an_aspect_ratio_of_50_or_more_is_illegal_at_any_size(w: int, h: int) -> None:
    """Scaling keeps the ratio: an upload over the sides with a ratio of 50 is refused, not converted."""
    with pytest.raises(PrecheckError) as err:
        check_limits(info(w, h), 1000, 10 * MB, 40 * MB)
    assert err.value.code == "illegalImageSize"
    assert "aspect ratio" in err.value.message


def test_a_ratio_just_under_50_passes() -> None:
    assert check_limits(info(998, 20), None, 1, 1).convert == ()  # 49.9
    assert check_limits(info(20, 998), None, 1, 1).convert == ()


def test_an_object_over_the_byte_limit_is_scaled_down_and_over_convert_max_bytes_is_exceeded() -> None:
    assert check_limits(info(500, 500), 10 * MB + 1, 10 * MB, 40 * MB).convert == ("overBytes",)
    assert check_limits(info(500, 500), 40 * MB, 10 * MB, 40 * MB).convert == ("overBytes",)
    with pytest.raises(PrecheckError) as err:
        check_limits(info(500, 500), 40 * MB + 1, 10 * MB, 40 * MB)
    assert err.value.code == "exceededImageContent"
    assert "CONVERT_MAX_BYTES" in err.value.message


def test_an_object_at_the_byte_limit_or_of_unknown_size_is_sent_as_stored() -> None:
    assert check_limits(info(500, 500), 10 * MB, 10 * MB, 40 * MB).convert == ()
    assert check_limits(info(500, 500), None, 10 * MB, 40 * MB).convert == ()


@pytest.mark.parametrize("fmt", ["heif", "pdf"])
def test_heif_and_pdf_are_always_converted_up_to_convert_max_bytes(fmt: str) -> None:
    assert check_limits(ImageInfo(fmt, 0, 0), 1000, 10 * MB, 40 * MB).convert == (fmt,)
    assert check_limits(ImageInfo(fmt, 0, 0), 20 * MB, 10 * MB, 40 * MB).convert == (fmt,)
    with pytest.raises(PrecheckError) as err:
        check_limits(ImageInfo(fmt, 0, 0), 40 * MB + 1, 10 * MB, 40 * MB)
    assert err.value.code == "exceededImageContent"


# --- what the API takes without saying how it reads it: converted as a person sees it ------------------------


def exif_jpeg(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(rgb(), "JPEG", exif=exif.tobytes())


def palette_with_transparency() -> bytes:
    im = Image.new("P", (W, H))
    im.putpalette([0, 0, 0, 255, 255, 255])
    return encode(im, "PNG", transparency=0)


def animated(fmt: str) -> bytes:
    frames = [rgb(), Image.new("RGB", (W, H), (1, 2, 3))]
    return encode(frames[0], fmt, save_all=True, append_images=frames[1:])


@pytest.mark.parametrize(("data", "reasons"), [
    (exif_jpeg(1), ()),
    (exif_jpeg(6), ("orientation",)),
    (exif_jpeg(8), ("orientation",)),
    (encode(Image.new("CMYK", (W, H)), "JPEG"), ("cmyk",)),
    (encode(Image.new("CMYK", (W, H)), "TIFF"), ("cmyk",)),
    (encode(Image.new("I;16", (W, H)), "PNG"), ("deepColor",)),
    (SAMPLES["tiff-be"][0], ("deepColor",)),  # a 16-bit TIFF
    (SAMPLES["png-rgba"][0], ("transparency",)),
    (SAMPLES["webp-extended"][0], ("transparency",)),
    (palette_with_transparency(), ("transparency",)),
    (animated("GIF"), ("transparency", "multiFrame")),  # Pillow gives the second frame a transparent colour
    (animated("PNG"), ("multiFrame",)),  # APNG
    (animated("TIFF"), ("multiFrame",)),
    (SAMPLES["png"][0], ()),
    (SAMPLES["gif"][0], ()),
], ids=["exif-1", "exif-6", "exif-8", "cmyk-jpeg", "cmyk-tiff", "png-16", "tiff-16", "png-rgba", "webp-alpha",
        "png-trns", "gif-anim", "apng", "tiff-pages", "png", "gif"])
def test_the_header_names_what_is_made_plain_before_ocr(data: bytes, reasons: tuple[str, ...]) -> None:
    assert check_limits(inspect(data[:HEAD_BYTES], len(data)), len(data), 10 * MB, 40 * MB).convert == reasons
