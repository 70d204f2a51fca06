"""convert.py: the memory plan (what is decoded smaller, what waits for a larger memorySize, before anything is
read or decoded) and what a conversion does to the picture: upright, plain, within the API's limits, a JPEG."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from permit_ocr import convert
from permit_ocr.errors import StepError
from permit_ocr.precheck import HEAD_BYTES, check_limits, inspect

MB = 2**20


def converted(data: bytes, memory: int = 128) -> convert.Converted:
    info = check_limits(inspect(data[:HEAD_BYTES], len(data)), len(data), 10 * MB, 40 * MB)
    assert info.convert, "the premise: the precheck marks it for conversion"
    return convert.convert_image(data, info, 10 * MB, memory)


def encode(im: Image.Image, fmt: str, **params: object) -> bytes:
    out = io.BytesIO()
    im.save(out, fmt, **params)
    return out.getvalue()


def test_an_upload_that_could_not_even_be_read_waits_for_more_memory() -> None:
    """Read whole, an upload is held twice for a moment: at 128 MB about 19 MB can be, at 256 MB about 83."""
    convert.check_read(19 * MB, 128)
    convert.check_read(None, 128)  # size unknown: the conversion's own plan still guards
    with pytest.raises(StepError) as err:
        convert.check_read(20 * MB, 128)
    assert (err.value.code, err.value.final, err.value.stage) == ("notEnoughMemory", False, "convert")
    assert "130 MB" in err.value.message and "128 MB" in err.value.message
    convert.check_read(40 * MB, 256)


def test_the_uploads_own_bytes_come_out_of_the_budget_for_pixels() -> None:
    assert convert.budget_bytes(128) == (128 - convert.FOOTPRINT_MB - convert.MARGIN_MB) * MB
    assert convert.budget_bytes(128, held=10 * MB) == convert.budget_bytes(128) - 10 * MB
    assert convert.budget_bytes(128, held=10**9) == 0


@pytest.mark.parametrize(("size", "memory", "scale"), [
    ((9000, 1400), 128, 1 / 2),  # the smallest decode that still gives the 4096 px output
    ((9000, 6750), 128, 1 / 4),  # 1/2 would not fit: smaller than the output, but read
    ((9000, 6750), 256, 1 / 2),
    ((3000, 2000), 128, 1 / 2),  # 6 MP with their working copies: not whole beside the function in 128 MB
    ((3000, 2000), 256, 1.0),  # fits whole: never shrunk below the output
    ((2400, 600), 128, 1.0),
])
def test_a_png_read_in_strips_is_decoded_as_small_as_the_output_allows_and_the_memory_needs(
        size: tuple[int, int], memory: int, scale: float) -> None:
    scales = convert._decode_scales("PNG", strips=True)
    assert convert._decode_scale(scales, *size, memory, 0) == pytest.approx(scale)


def test_what_does_not_fit_even_at_the_smallest_decode_waits_for_more_memory() -> None:
    with pytest.raises(StepError) as err:
        convert._decode_scale(convert._decode_scales("PNG", strips=False), 9000, 1400, 128, 0)
    assert err.value.code == "notEnoughMemory"  # an interlaced PNG is decoded whole: 50 MB of pixels
    with pytest.raises(StepError):
        convert._decode_scale(convert._decode_scales("JPEG", strips=False), 30000, 20000, 128, 0)


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_an_exif_orientation_is_applied_and_said(orientation: int) -> None:
    stored = Image.new("RGB", (60, 30), "white")
    stored.paste((255, 0, 0), (0, 0, 10, 10))  # a red corner, top left as stored
    exif = Image.Exif()
    exif[0x0112] = orientation
    out = converted(encode(stored, "JPEG", exif=exif.tobytes(), quality=95))
    with Image.open(io.BytesIO(out.body)) as im:
        assert im.size == ((30, 60) if orientation in (6, 8) else (60, 30))
        corner = {3: (55, 25), 6: (25, 5), 8: (5, 55)}[orientation]  # where a viewer shows the red corner
        r, g, b = im.convert("RGB").getpixel(corner)  # type: ignore[misc]
        assert r > 200 and g < 80 and b < 80
    assert out.input["rotation"] == {3: 180, 6: 90, 8: 270}[orientation] and out.input["reasons"] == ["orientation"]


def test_transparency_is_laid_on_white_and_16_bit_grey_made_8_bit() -> None:
    clear = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
    with Image.open(io.BytesIO(converted(encode(clear, "PNG")).body)) as im:
        assert im.convert("RGB").getpixel((20, 20)) == (255, 255, 255)
    deep = Image.new("I;16", (40, 40), 0x8000)
    with Image.open(io.BytesIO(converted(encode(deep, "PNG")).body)) as im:
        assert im.mode == "L" and abs(im.getpixel((20, 20)) - 128) <= 1  # type: ignore[operator]


def test_over_the_sides_the_output_is_4096_px_long_and_at_least_500_px_short_where_the_upload_has_it() -> None:
    out = converted(encode(Image.new("RGB", (9000, 900), "white"), "PNG"))
    assert (out.info.width, out.info.height) == (4096, 410)  # 900 px short side: the long one rules
    assert out.info.format == "jpeg" and out.body[:3] == b"\xff\xd8\xff"
    assert out.input["scale"] == pytest.approx(4096 / 9000, abs=1e-3)
