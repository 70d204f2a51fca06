"""What phones and scanners upload, made from the generator's permits: a HEIC photo (a grid of 512-px tiles, as
iPhones write it), a sideways JPEG with an EXIF orientation, and a PDF scan (a permit per page at 300 dpi, each page
one JPEG, as office scanners write them). The truth of each permit is the generator's."""

from __future__ import annotations

import io
import random

from PIL import Image

PHONE_SIZE = (4032, 3024)  # a 12 MP phone photo
CARD_MM = 85.6  # ID-1, the permits' size


def _photo(jpeg: bytes, size: tuple[int, int]) -> Image.Image:
    """The generator's photo enlarged to a phone camera's resolution (the card keeps its place in the frame)."""
    with Image.open(io.BytesIO(jpeg)) as im:
        return im.convert("RGB").resize(size, Image.Resampling.BICUBIC)


def heic_photo(jpeg: bytes, size: tuple[int, int] = PHONE_SIZE, quality: int = 80) -> bytes:
    """A HEIC of the photo, stored as a grid of 512-px tiles (pillow-heif's encoder, x265)."""
    import pillow_heif

    out = io.BytesIO()
    pillow_heif.from_pillow(_photo(jpeg, size)).save(out, quality=quality, tile_size=512)
    return out.getvalue()


def sideways_jpeg(jpeg: bytes, orientation: int = 6) -> bytes:
    """The photo stored turned, with the EXIF orientation that tells a viewer how to stand it up (6: turn it 90°
    clockwise; 8: 90° anticlockwise; 3: 180°), as phone cameras save portrait shots."""
    undo = {6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270, 3: Image.Transpose.ROTATE_180}[orientation]
    with Image.open(io.BytesIO(jpeg)) as im:
        stored = im.convert("RGB").transpose(undo)
    exif = Image.Exif()
    exif[0x0112] = orientation
    out = io.BytesIO()
    stored.save(out, "JPEG", quality=92, exif=exif.tobytes())
    return out.getvalue()


def pdf_scan(jpegs: list[bytes], dpi: int = 300, seed: int = 0) -> bytes:
    """A multi-page PDF as a scanner's ID-card preset writes it: each permit on its own page, the page cropped to
    the scanned area (the card, 85.6 mm wide, and a margin of glass around it), one JPEG per page at ``dpi``."""
    rng = random.Random(seed)
    pages: list[Image.Image] = []
    for jpeg in jpegs:
        with Image.open(io.BytesIO(jpeg)) as im:
            photo = im.convert("RGB")
        card_w = round(CARD_MM / 25.4 * dpi * photo.width / (photo.width * 0.8))  # the card fills ~80 % of it
        photo = photo.resize((card_w, round(card_w * photo.height / photo.width)), Image.Resampling.BICUBIC)
        margin = round(rng.uniform(6, 12) / 25.4 * dpi)
        page = Image.new("RGB", (photo.width + 2 * margin, photo.height + 2 * margin), (250, 250, 248))
        page.paste(photo, (margin, margin))
        pages.append(page)
    out = io.BytesIO()
    pages[0].save(out, "PDF", resolution=dpi, save_all=True, append_images=pages[1:], quality=85)
    return out.getvalue()


def encrypted_pdf(pdf: bytes, password: str = "secret") -> bytes:
    """The PDF locked with a user password (pypdf), as a scanner's "secure PDF" option writes it."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf)))
    writer.encrypt(user_password=password, owner_password=password + "-owner", algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def many_pages_pdf(pages: int) -> bytes:
    """A PDF of ``pages`` small blank pages (a whole document scanned by mistake)."""
    blank = Image.new("RGB", (85, 54), "white")
    out = io.BytesIO()
    blank.save(out, "PDF", resolution=25, save_all=True, append_images=[blank] * (pages - 1))
    return out.getvalue()

