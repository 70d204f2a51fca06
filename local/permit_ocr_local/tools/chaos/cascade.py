"""The chaos run with the engine function (OCR_BACKEND=engine|cascade): which keys the engine doubts, and what
that must mean for the paid calls and for who answered.

The engine function's truth recognizer reads an image's embedded truth; an ``engine`` key in it makes the engine
unsure of a field, so a cascade escalates that image to the paid API. Every scripted kind is doubted: its script
plays around the paid call (an answer lost to the read timeout, a brownout after it, an OCR that fails the image
until it recovers), so it still meets one. Plain permits are doubted at the run's ``doubt_share``."""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from permit_ocr_local.standins.ocr.truthmark import embed_truth, read_truth

# the engine's view of a doubted permit (fcruntime/enginefn.py reads it): one field under REVIEW_MIN_PROB
ENGINE_DOUBT: dict[str, Any] = {"valueProb": {"nameCn": 40}}
# what a sure engine reads, and a cascade must then keep without a paid call
READABLE = frozenset({"permit", "hostile", "crash", "overwrite", "reupload", "twobucket", "batch"})


def doubt(items: Iterable[Any], always: frozenset[str], share: float, seed: int) -> None:
    """Mark the items whose images the engine is unsure of (``always`` their kinds, else ``share`` of them),
    re-embedding their truth; items without a readable truth stay as they are. Drawn from a stream of its own."""
    rng = random.Random(seed + 7919)
    for it in items:
        if not (it.kind in always or rng.random() < share):
            continue
        doubted = [_doubted(v) for v in it.versions]
        if doubted != it.versions:
            it.versions, it.doubt = doubted, True


def _doubted(image: bytes) -> bytes:
    truth = read_truth(image)
    return image if truth is None else embed_truth(image, {**truth, "engine": ENGINE_DOUBT})


def check(items: Iterable[Any], answered: Mapping[int, str], billed: Mapping[str, int],
          backend: str) -> tuple[list[str], list[str], Counter[str]]:
    """(paid calls for images the engine was sure of, results answered by the wrong recognizer, results by
    recognizer); ``answered``: id(item) -> the ``ocr.backend`` of its stored result."""
    paid_for_sure: list[str] = []
    wrong_by: list[str] = []
    by: Counter[str] = Counter()
    for it in items:
        ident = f"{it.kind} {it.key[:80]!r}"
        sure = backend == "engine" or not it.doubt
        if sure and it.kind in READABLE and any(billed.get(hashlib.sha256(v).hexdigest(), 0) for v in it.versions):
            paid_for_sure.append(ident)
        got = answered.get(id(it))
        if got is None:
            continue
        by[got] += 1
        want = "engine" if sure else "api"
        if (it.doubt or it.kind in READABLE) and got != want:
            wrong_by.append(f"{ident}: answered by {got or 'no backend'}, not {want}")
    return paid_for_sure, wrong_by, by
