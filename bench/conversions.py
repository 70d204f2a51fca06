"""The uploads `make bench` converts (bench/run.py's conversion rows), made offline from the synthetic permits."""

from __future__ import annotations

import io
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def conversion_inputs(tmp: Path) -> dict[str, Path]:
    """A 12 MB JPEG (4800 px, noise), a 12 MP HEIC photo, the 2-page PDF scan (samples/) and a 9000 x 1400 px PNG
    (a permit on a wide scan: Pillow would hold 50 MB of it whole; png.py reads it in strips)."""
    from PIL import Image

    from permit_ocr_local.synth import formats, generate

    image, _ = generate(20241207, "hk")
    with Image.open(io.BytesIO(image)) as im:
        big = im.convert("RGB").resize((4800, round(4800 * im.height / im.width)), Image.Resampling.BICUBIC)
    big = Image.blend(big, Image.effect_noise(big.size, 40).convert("RGB"), 0.12)
    jpeg = io.BytesIO()
    big.save(jpeg, "JPEG", quality=100, subsampling=0)
    wide = Image.new("RGB", (9000, 1400), (235, 235, 230))
    with Image.open(io.BytesIO(image)) as im:
        wide.paste(im.convert("RGB").resize((1800, round(1800 * im.height / im.width))), (3000, 60))
    paths = {"12 MB JPEG": tmp / "big.jpg", "12 MP HEIC": tmp / "photo.heic", "2-page PDF": tmp / "scan.pdf",
             "9000 px PNG": tmp / "wide.png"}
    paths["12 MB JPEG"].write_bytes(jpeg.getvalue())
    wide.save(paths["9000 px PNG"], "PNG")
    paths["12 MP HEIC"].write_bytes(formats.heic_photo(image))
    paths["2-page PDF"].write_bytes((REPO / "samples" / "two-permits-scan.pdf").read_bytes())
    return paths
