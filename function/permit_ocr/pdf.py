"""A PDF upload's pages as images OCR takes (convert.py's rules: JPEG, sizes, memory), with pypdfium2 (PDFium).

A page is rendered at convert.PDF_DPI (less for a page too large for OUT_MAX_SIDE or for the memory). A page that
is a scan, one JPEG filling the page (the usual output of an office scanner or copier, with or without an
invisible text layer), is taken from that JPEG instead: decoded by libjpeg at the scale the DPI asks, it needs
a fraction of the memory PDFium's rendering does (PDFium decodes the whole embedded picture first).
Password-protected, damaged and over-long PDFs are verdicts on the upload: final error records, no paid call.
"""

from __future__ import annotations

from typing import Any

from . import convert
from .convert import Converted, ConvertError
from .precheck import ImageInfo

FPDF_ERR_PASSWORD = 4  # PDFium's load error: a password is needed to open it
MIN_DPI = 100
SCAN_COVERAGE = 0.9  # an image covering this much of the page is the page


def open_pdf(data: bytes, max_pages: int) -> Any:
    """The document, or ConvertError: a password needed, damaged, no pages, or more than ``max_pages``."""
    import pypdfium2 as pdfium

    try:
        doc = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        if exc.err_code == FPDF_ERR_PASSWORD:
            raise ConvertError("passwordProtectedPDF", "the PDF needs a password to open; upload it without "
                               "one") from None
        raise ConvertError("illegalPDFContent", "the PDF is damaged or not a PDF (PDFium could not load it)") \
            from None
    pages = len(doc)
    if not pages:
        raise ConvertError("illegalPDFContent", "the PDF has no pages")
    if pages > max_pages:
        raise ConvertError("exceededPDFPages", f"the PDF has {pages} pages; at most {max_pages} are read "
                           "(PDF_MAX_PAGES): split it, or scan each permit on its own")
    return doc


def convert_page(doc: Any, page: int, info: ImageInfo, max_bytes: int, memory: int, held: int) -> Converted:
    """Page ``page`` (1-based) as a JPEG OCR takes, in ``memory`` MB beside the PDF's ``held`` bytes."""
    import pypdfium2 as pdfium

    with convert._one_at_a_time:
        try:
            pdf_page = doc[page - 1]
            width_pt, height_pt = pdf_page.get_size()
            dpi = min(float(convert.PDF_DPI), convert.OUT_MAX_SIDE * 72 / max(width_pt, height_pt, 1))
            extra = {"page": page, "pages": len(doc), "dpi": round(dpi)}
            scan = _scan(pdf_page, width_pt, height_pt)
            if scan is not None:
                return _from_scan(scan, pdf_page, dpi, width_pt, info, max_bytes, memory, held, extra)
            return _render(pdf_page, dpi, width_pt, height_pt, info, max_bytes, memory, held, extra)
        except pdfium.PdfiumError:
            raise ConvertError("convertPDFToImgError", f"page {page} could not be rendered") from None


def _scan(page: Any, width_pt: float, height_pt: float) -> Any:
    """The page's one JPEG picture when it fills the page upright, else None (the page is rendered)."""
    import pypdfium2.raw as raw

    images = [o for o in page.get_objects(max_depth=1) if o.type == raw.FPDF_PAGEOBJ_IMAGE]
    if len(images) != 1 or images[0].get_filters() != ["DCTDecode"]:
        return None
    a, b, c, d, _, _ = images[0].get_matrix().get()
    left, bottom, right, top = images[0].get_bounds()
    covers = (right - left) * (top - bottom) >= SCAN_COVERAGE * width_pt * height_pt
    return images[0] if covers and a > 0 and d > 0 and b == 0 and c == 0 else None


def _from_scan(image: Any, page: Any, dpi: float, width_pt: float, info: ImageInfo, max_bytes: int, memory: int,
               held: int, extra: dict[str, Any]) -> Converted:
    picture = bytes(image.get_data(decode_simple=False))
    held += len(picture)
    im = convert._open(picture)
    width, height = im.size
    target = min(1.0, width_pt / 72 * dpi / width)  # the page at ``dpi``, from the picture's own pixels
    scales = [s for s in (1.0, 0.5, 0.25, 0.125)
              if width * height * s * s * 4 * convert.WORKING_COPIES <= convert.budget_bytes(memory, held)]
    if not scales:
        raise convert.not_enough_memory(convert.need_mb(width * height / 64, held=held), memory)
    scale = min((s for s in scales if s >= target), default=max(scales))
    if scale < 1:
        im.draft("RGB" if im.mode != "L" else "L", (max(1, int(width * scale)), max(1, int(height * scale))))
    try:
        im.load()
    except convert.DECODE_ERRORS as exc:
        raise ConvertError("convertPDFToImgError", f"page {extra['page']}'s picture could not be decoded "
                           f"({type(exc).__name__})") from None
    im = convert._plain(im)
    if target < 1 and im.size[0] > width * target * 1.05:  # libjpeg's steps are powers of two: the rest here
        from PIL import Image

        im = im.resize((max(1, round(width * target)), max(1, round(height * target))), Image.Resampling.LANCZOS)
    extra["dpi"] = round(im.size[0] / (width_pt / 72))  # libjpeg's steps may land below PDF_DPI
    orientation = {0: 1, 90: 6, 180: 3, 270: 8}.get(page.get_rotation(), 1)
    return convert._finish(im, info, width, height, orientation, max_bytes, **extra)


def _render(page: Any, dpi: float, width_pt: float, height_pt: float, info: ImageInfo, max_bytes: int,
            memory: int, held: int, extra: dict[str, Any]) -> Converted:
    import pypdfium2.raw as raw

    pictures = sum(w * h for w, h in (o.get_px_size() for o in page.get_objects(max_depth=15)
                                      if o.type == raw.FPDF_PAGEOBJ_IMAGE))
    budget = convert.budget_bytes(memory, held)
    while dpi > MIN_DPI and (width_pt * height_pt * (dpi / 72) ** 2 * (4 + 3) + pictures * 4) > budget:
        dpi = max(MIN_DPI, dpi * 0.8)
    pixels = width_pt * height_pt * (dpi / 72) ** 2
    if pixels * (4 + 3) + pictures * 4 > budget:
        raise convert.not_enough_memory(convert.need_mb(pixels * 7 / 4 + pictures, held=held), memory)
    bitmap = page.render(scale=dpi / 72, rev_byteorder=True, may_draw_forms=True)
    im = bitmap.to_pil()
    del bitmap
    extra["dpi"] = round(dpi)  # the page as rendered is the upload's picture: width and height at ``dpi``
    return convert._finish(convert._plain(im), info, im.size[0], im.size[1], 1, max_bytes, **extra)
