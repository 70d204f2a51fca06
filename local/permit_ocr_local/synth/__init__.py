"""Synthetic permit generator: images of both permit kinds, in several layout families, with the truth.

The people are fictional: random names from a small table, random dates that obey the validity rules,
numbers in the real formats, and the public-domain NASA astronaut portrait as the photo. ``phone`` turns
the card into a phone photo of it lying on a desk (see ``degrade.phone_photo``).
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from . import degrade as _degrade
from .captures import BLIND_CAPTURES, CAPTURES, capture, screen_without_card
from .fields import FIELDS, KINDS, random_fields
from .fonts import FontMissingError
from .others import OTHERS, other_card, permit_back
from .render import FAMILIES, compose, render_card

__all__ = ["BLIND_CAPTURES", "CAPTURES", "DEGRADATIONS", "FAMILIES", "FIELDS", "KINDS", "OTHERS", "FontMissingError",
           "desk_photo", "generate", "not_a_permit", "write_samples"]
DEGRADATIONS = (*_degrade.DEGRADATIONS, "phone", *CAPTURES)


def _jpeg(img: np.ndarray[Any, Any], quality: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - OpenCV always encodes a uint8 RGB image
        raise RuntimeError("JPEG encoding failed")
    return bytes(buf.tobytes())


def generate(seed: int, kind: str | None = None, degrade: Sequence[str] = (),
             family: str = "classic") -> tuple[bytes, dict[str, Any]]:
    """One synthetic permit image as JPEG bytes and its truth; the same arguments give the same bytes.

    ``phone`` in ``degrade`` photographs the card on a desk, a capture family (``captures.CAPTURES``: a copier
    page, a phone screenshot, ...) delivers it so instead; other degradations still apply after either.
    """
    rng = random.Random(seed)
    kind = kind or rng.choice(KINDS)
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {sorted(FAMILIES)}, not {family!r}")
    fields = random_fields(rng, kind)
    card = render_card(rng, kind, fields, family)
    cw, ch = card.image.size
    fx, fy, fw, fh = card.face or (0, 0, 0, 0)
    corners = [[0, 0], [cw, 0], [cw, ch], [0, ch]]
    photo = [[fx, fy], [fx + fw, fy], [fx + fw, fy + fh], [fx, fy + fh]]
    pts = np.asarray(corners + photo, dtype=np.float64)
    rest = [d for d in degrade if d != "phone" and d not in CAPTURES]
    how = [d for d in degrade if d in CAPTURES]
    if len(how) > 1 or (how and "phone" in degrade):
        raise ValueError(f"one capture at a time, not {sorted(set(degrade) - set(rest))}")
    if how:
        back = np.asarray(permit_back(rng, kind).image) if how[0] == "duplex" else None
        canvas, pts, phone_quality = capture(rng, how[0], np.asarray(card.image), pts, back)
    elif "phone" in degrade:
        canvas, pts, phone_quality = _degrade.phone_photo(rng, np.asarray(card.image), pts)
    else:
        canvas, (ox, oy) = compose(rng, card)
        pts = pts + np.array([ox, oy])
    img, pts, quality = _degrade.apply(rng, canvas, pts, rest)
    if ("phone" in degrade or how) and "jpeg" not in rest:
        quality = phone_quality
    image = _jpeg(img, quality)

    face_box = None
    if card.face is not None:
        face = pts[4:8]
        x0, y0 = face.min(axis=0)
        x1, y1 = face.max(axis=0)
        face_box = {"x": int(x0), "y": int(y0), "w": int(x1 - x0), "h": int(y1 - y0)}
    truth: dict[str, Any] = {
        "kind": kind,
        "family": family,
        "data": {k: fields[k] for k in FIELDS},
        "seed": seed,
        "degrade": sorted(set(degrade)),
        "ftype": int("photocopy" in degrade),
        "width": int(img.shape[1]),
        "height": int(img.shape[0]),
        "card": [{"x": round(float(x), 1), "y": round(float(y), 1)} for x, y in pts[:4]],
        "face": face_box,
    }
    return image, truth


def desk_photo(seed: int) -> bytes:
    """A phone photo of a cluttered desk with no card on it (what the engine must refuse)."""
    rng = random.Random(seed)
    img = _degrade.desk(rng, 1400, 1050)
    w = rng.randint(600, 700)
    img = cv2.resize(img, (w, round(w * 0.75)), interpolation=cv2.INTER_AREA)
    return _jpeg(img, rng.randint(35, 60))


def not_a_permit(seed: int, what: str, how: str = "") -> bytes:
    """An image the engine must refuse, as JPEG: ``what`` is one of ``OTHERS`` (a permit's back, an ID card's
    front or back, a passport page, a driving licence, a blank card), delivered by ``how`` ("" as a scan on a
    dark background, "phone", or a capture family); or ``what`` "screen": a screenshot with no card in it."""
    rng = random.Random(seed)
    if what == "screen":
        return _jpeg(screen_without_card(rng), rng.randint(30, 50))
    card = other_card(rng, what)
    pts = np.zeros((4, 2))
    if how == "phone":
        img, _, quality = _degrade.phone_photo(rng, np.asarray(card.image), pts)
    elif how:
        # an ID card is copied front and back on one page, as a permit is
        back = np.asarray(other_card(rng, "id-back" if what == "id-front" else "permit-back").image)
        img, _, quality = capture(rng, how, np.asarray(card.image), pts, back)
    else:
        img, quality = compose(rng, card)[0], 85
    return _jpeg(img, quality)


# the committed set: both kinds, clean and a few typical degradations (classic layout), then one clean
# card and one phone photo per layout family under families/
SAMPLE_PLAN: tuple[tuple[str, str, tuple[str, ...], str], ...] = (
    ("hk-clean", "hk", (), "classic"),
    ("macao-clean", "macao", (), "classic"),
    ("taiwan-clean", "taiwan", (), "classic"),
    ("hk-rot90", "hk", ("rot90",), "classic"),
    ("taiwan-rot180", "taiwan", ("rot180",), "classic"),
    ("macao-perspective", "macao", ("perspective", "light"), "classic"),
    ("hk-photocopy", "hk", ("photocopy",), "classic"),
    ("taiwan-blur", "taiwan", ("blur", "noise", "rotate"), "classic"),
    *((f"families/{fam}-{kind}-{'photo' if deg else 'clean'}", kind, deg, fam)
      for i, fam in enumerate(FAMILIES) for j, deg in enumerate(((), ("phone",)))
      for kind in (KINDS[(i + j) % 3],)),
)


def write_samples(dir: str | Path, seed: int = 20240501) -> list[Path]:
    """Write ``<name>.jpg`` + ``<name>.truth.json`` for every entry of SAMPLE_PLAN."""
    out = Path(dir)
    written = []
    for i, (name, kind, deg, fam) in enumerate(SAMPLE_PLAN):
        image, truth = generate(seed + i, kind, deg, fam)
        path = out / f"{name}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(image)
        path.with_name(f"{path.stem}.truth.json").write_text(json.dumps(truth, ensure_ascii=False, indent=2) + "\n",
                                                            "utf-8")
        written.append(path)
    return written


# what phones and scanners upload besides JPEG (converted by the function before OCR): name -> (kinds, maker)
FORMAT_SAMPLES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("macao-phone.heic", ("macao",)),  # a 12 MP iPhone-style HEIC (512-px tiles)
    ("two-permits-scan.pdf", ("hk", "taiwan")),  # an office scanner's PDF: one permit per A4 page, 300 dpi
)


def write_format_samples(dir: str | Path, seed: int = 20241207) -> list[Path]:
    """Write the HEIC photo and the PDF scan of FORMAT_SAMPLES, each with ``<name>.truth.json`` (a PDF's lists
    its pages' truths under ``pages``)."""
    from . import formats

    out = Path(dir)
    written = []
    for i, (name, kinds) in enumerate(FORMAT_SAMPLES):
        made = [generate(seed + 10 * i + j, kind) for j, kind in enumerate(kinds)]
        path = out / name
        if name.endswith(".heic"):
            path.write_bytes(formats.heic_photo(made[0][0]))
            truth: dict[str, Any] = made[0][1]
        else:
            path.write_bytes(formats.pdf_scan([image for image, _ in made], seed=seed + i))
            truth = {"pages": [t for _, t in made]}
        path.with_name(f"{name}.truth.json").write_text(json.dumps(truth, ensure_ascii=False, indent=2) + "\n",
                                                          "utf-8")
        written.append(path)
    return written
