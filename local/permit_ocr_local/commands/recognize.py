"""``permit-ocr recognize``: read permits with the embedded engine and print the API's Data JSON."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from permit_ocr.config import MAX_PDF_PAGES, OCR_MAX_IMAGE_BYTES
from permit_ocr.errors import StepError

HELP = "read permits with the embedded engine and print the Data JSON"
DESCRIPTION = """\
Runs the offline recognizer on each IMAGE and prints its Data object (the JSON the cloud API returns in
its Data field), one JSON document per line, in argument order. An image that cannot be read prints
{"image": ..., "Code": ..., "Message": ...} on stderr instead, and the exit status is 1.

What the deployed function converts before OCR is converted here by the function's own code first: a HEIC/HEIF
photo, an image over 10 MB or 8192 px, an EXIF orientation, CMYK, 16-bit, transparency, animation; a PDF
prints one line per page, in page order (its error lines carry "page"). The instance's memory limit does not
apply here.

--annotate OUT.png draws what was read, where, and why: the card outline, each field's numbered box, and a
panel listing every field's value, valueProb and the cue that decided it (label, pattern, position; red
when below the review threshold); the face box too with --figure. The suffix picks the format (.png, .jpg,
.webp, ...). With one IMAGE it writes OUT.png; with several OUT-1.png, OUT-2.png, ... (argument order).

Exit codes: 0 every image read · 1 an image could not be read (its line on stderr says why) · 2 usage (e.g. an
--annotate suffix it cannot write)."""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("recognize", help=HELP, description=DESCRIPTION,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("images", nargs="+", metavar="IMAGE", type=Path,
                   help="permit photo(s) or scan(s): JPG, PNG, HEIC, PDF, ...")
    p.add_argument("--figure", action="store_true", help="also detect the face photo (OutputFigure=true)")
    p.add_argument("--annotate", metavar="OUT.png", type=Path,
                   help="write an annotated copy of the image (OUT-<n>.png when several images)")
    p.add_argument("--indent", type=int, default=None,
                   help="pretty-print the JSON with this indent (default: one line per image)")
    p.set_defaults(func=run)


def annotated_path(out: Path, index: int, count: int) -> Path:
    """OUT.png for a single image; OUT-<n>.png (1-based) when there are several."""
    if count == 1:
        return out
    return out.with_name(f"{out.stem}-{index}{out.suffix or '.png'}")


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except KeyboardInterrupt:  # one line; os._exit: the engine's native threads abort an ordinary shutdown
        sys.stdout.flush()
        print("permit-ocr recognize: interrupted", file=sys.stderr, flush=True)
        os._exit(130)


def _run(args: argparse.Namespace) -> int:
    from permit_ocr_local.engine import Engine, EngineError
    from permit_ocr_local.engine.annotate import annotate, output_format

    if args.annotate:
        try:
            output_format(args.annotate)
        except ValueError as exc:
            print(f"permit-ocr recognize: {exc}", file=sys.stderr)
            return 2
    engine = Engine()
    if sys.stderr.isatty():  # a sign of life for a person; scripts read stderr as JSON error lines
        print("permit-ocr recognize: loading the models (about 5 s, once per run) ...", file=sys.stderr, flush=True)
    status = 0
    images = [(path, page, image) for path in args.images for page, image in as_sent(path)]
    for i, (path, page, image) in enumerate(images, start=1):
        where: dict[str, Any] = {"image": str(path), **({"page": page} if page else {})}
        try:
            if isinstance(image, Exception):
                raise image
            data = engine.recognize(image, output_figure=bool(args.figure))
        except (OSError, EngineError, StepError) as exc:
            code = getattr(exc, "code", "fileNotReadable")
            message = getattr(exc, "message", str(exc))
            print(json.dumps({**where, "Code": code, "Message": message}, ensure_ascii=False), file=sys.stderr)
            status = 1
            continue
        if args.annotate:
            annotate(image, data, annotated_path(args.annotate, i, len(images)), engine.cues)
        print(json.dumps(data, ensure_ascii=False, indent=args.indent), flush=True)
    return status


LOCAL_MEMORY_MB = 1 << 16  # a person's machine: convert whatever the file needs


def as_sent(path: Path) -> Iterator[tuple[int, bytes | Exception]]:
    """(page, bytes) as the deployed function would send OCR: the file as it is, or converted by the function's
    own steps (precheck, convert.py, pdf.py); page 0 for a file that is not a PDF. An error is yielded, not
    raised, so the other files and pages still run."""
    from permit_ocr import convert, pdf
    from permit_ocr.precheck import check_limits, inspect

    try:
        data = path.read_bytes()
        info = check_limits(inspect(data, len(data)), len(data), OCR_MAX_IMAGE_BYTES, len(data))
        if not info.convert:
            yield 0, data
        elif info.format != "pdf":
            yield 0, convert.convert_image(data, info, OCR_MAX_IMAGE_BYTES, LOCAL_MEMORY_MB).body
        else:
            doc = pdf.open_pdf(data, MAX_PDF_PAGES)
            for page in range(1, len(doc) + 1):
                try:
                    yield page, pdf.convert_page(doc, page, info, OCR_MAX_IMAGE_BYTES, LOCAL_MEMORY_MB, len(data)).body
                except StepError as exc:
                    yield page, exc
    except (OSError, StepError) as exc:
        yield 0, exc
