"""Embedded permit recognizer: the Data object of RecognizeExitEntryPermitToMainland, offline.

Pipeline: decode -> card quad (an outline along the text lines, else the text's extent; from a 320-px
text detection) -> perspective warp to a fixed card frame -> one text detection on the card -> 0/180 by
the orientation classifier's vote -> recognize the large print (each line cropped from the original image)
-> layout-free field extraction (labels, patterns, positions) -> the small print (labels above values)
only when a field is missing or in doubt -> second guesses (the recognizer's alternatives, where the name's
two spellings or a field's vocabulary decide) -> a finer detection only when a field is still missing ->
map boxes back to the original image.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import cv2
import numpy as np

from . import block, confidence, face, geometry, layout, ranking, rules, search, second_guess
from .errors import EngineError
from .ocr import Ocr, crop_quad

__all__ = ["Engine", "EngineError"]

Img = np.ndarray[Any, Any]
Quad = np.ndarray[Any, Any]

_DET_WIDTH = 640  # detection resolution of the card: 13-px labels still show as lines
_FINE_WIDTH = 960  # a second, finer detection when a field is still missing
_MIN_FIELDS = ranking.MIN_FIELDS  # a look that sees fewer lines than this saw no card
_VOTERS = 5  # widest lines that vote on 0/180
_CLEAR_VOTE = 3.0  # a vote this one-sided (of 5 voters, scores 0..1 each) is not read the other way up too
_FEW_MISSING = 3  # a finer look for a field or three lost at 640 px; more missing is a card that does not read
# one or two characters (男, 01, a place) read better with the card around them than padded out to the
# recognizer's minimum width (2 heights) with grey
_MIN_RATIO = 2.0
_MAX_CROP_H = 96  # a line cropped from a large photo is shrunk to this (the recognizer reads 48-px lines)
# text detection on the whole photo: where the text is, to tell the card from other objects; 320 px where the
# card fills the frame, 640 where it does not (a card inside a screenshot's photo: its text 5 px high at 320)
_FIND_SIDES = (320, 640)
_LAST_LOOK = 1120  # before a refusal, the whole frame once more at this size (a larger frame only)
_LAST_WINDOWS = 2  # ... and a closer look around this many of the blocks of text it sees, the largest first


class Engine:
    """Loads the models on first use; one ``recognize`` at a time (a lock serializes callers).

    ``stages`` holds the seconds each stage took in the last call, ``stages_cpu`` the process CPU seconds
    (both ONNX threads; less hurt by a busy machine): the benchmark prints the slowest.
    """

    def __init__(self) -> None:
        self._ocr: Ocr | None = None
        self._lock = threading.Lock()
        self.stages: dict[str, float] = {}
        self.stages_cpu: dict[str, float] = {}
        self.cues: dict[str, str] = {}  # field -> the cue that decided it, for the last call
        self.raw: dict[str, float] = {}  # field -> its score before the cue's trust scale
        self.suspect: set[str] = set()  # fields whose valueProb is kept under the review line
        # the models' work in the last call (Ocr.det_pixels, rec_columns): compares two versions of the engine
        # without the noise of a shared machine's timings
        self.work: dict[str, int] = {}
        self._bilevel = False  # the image being read is a black-and-white copy
        self._saw_block = False  # a look saw lines close together, enough for a card (see _look_finer)

    def _models(self) -> Ocr:
        if self._ocr is None:
            self._ocr = Ocr()
            second_guess.preload()
        return self._ocr

    @contextmanager
    def _stage(self, name: str) -> Iterator[None]:
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.stages[name] = self.stages.get(name, 0.0) + time.perf_counter() - t0
            self.stages_cpu[name] = self.stages_cpu.get(name, 0.0) + time.process_time() - c0

    def recognize(self, image: bytes, output_figure: bool = False) -> dict[str, Any]:
        with self._lock:
            self.stages, self.stages_cpu, self.cues, self.raw, self.suspect = {}, {}, {}, {}, set()
            before = (self._ocr.det_pixels, self._ocr.rec_columns) if self._ocr is not None else (0, 0)
            try:
                return self._recognize(image, output_figure)
            finally:
                ocr = self._ocr
                self.work = {} if ocr is None else {"det_pixels": ocr.det_pixels - before[0],
                                                    "rec_columns": ocr.rec_columns - before[1]}

    def _recognize(self, image: bytes, output_figure: bool) -> dict[str, Any]:
        with self._stage("decode"):
            img = search.normalized(geometry.decode(image))
            self._bilevel = search.is_bilevel(img)
        self._saw_block = False
        ocr = self._models()
        # the likeliest card first; the others (the text's own extent, then the frame's regions of detail: a
        # card small on a page, inside a screenshot, in a corner) while no read is good. A card whose printed
        # title reads but little else (tiny type, glare) is still a permit: it is answered with what was read,
        # every missing field at valueProb 0, rather than refused as no permit
        best = self._best(ocr, img, self._find_card(ocr, img))
        if best is None:  # before refusing: the card may be too small for the looks so far
            best = self._best(ocr, img, self._look_finer(ocr, img))
        if best is None:
            raise EngineError("unmatchedImageType", "no Mainland Travel Permit found in the image")
        quad, card, m_inv, fields, family = best
        self.cues = {k: f.cue for k, f in fields.items()}
        self.raw = {k: f.score for k, f in fields.items()}
        self.suspect = {k for k, f in fields.items() if f.suspect}
        return _data(img, card, quad, m_inv, fields, family, output_figure)

    def _best(self, ocr: Ocr, img: Img, candidates: Iterator[Quad]) -> _CardRead | None:
        """The best read of the ``candidates``, read in turn until one is good enough."""
        best: tuple[ranking.Rank, _CardRead] | None = None
        seen: list[Quad] = []
        for candidate in candidates:
            # the frame's look and a region's look often outline the same card: reading it again (a detection,
            # a read, a finer detection: up to 1 s of CPU on a dim photo) would give the same answer
            if any(geometry.same_quad(candidate, q) for q in seen):
                continue
            seen.append(candidate)
            tried = len(seen)
            read, complete = self._read_card(ocr, img, candidate)
            if read is not None and (complete or best is None):
                rank = ranking.rank(read[3], complete)
                if best is None or rank > best[0]:
                    best = rank, read
            if best is not None and (best[0] >= ranking.GOOD or (tried >= ranking.MAX_READS
                                                                  and best[0] >= ranking.FAIR)):
                break  # good enough, or fair after a few tries: each try costs a detection and a read
        return None if best is None else best[1]

    def _read_card(self, ocr: Ocr, img: Img, quad: Quad) -> tuple[_CardRead | None, bool]:
        """The permit on the card outlined by ``quad``, straightened and turned upright, and whether it is
        complete (``ranking.complete``), either way up when the 0/180 vote was close (it can lose
        to glare or blur on a photo). Fewer, it is kept (not complete) only when the printed title was read;
        else None."""
        quad = geometry.long_edge_first(quad)
        card = geometry.warp(img, geometry.homography(quad))
        with self._stage("detect"):
            scale = _DET_WIDTH / geometry.CARD_W
            small = cv2.resize(card, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            boxes = [b / scale for b in ocr.detect(search.for_detection(small, self._bilevel))]
        boxes = block.printed(card, [b for b in boxes if _wanted(b)])
        with self._stage("orient"):
            widest = sorted(boxes, key=lambda b: -float(np.linalg.norm(b[0] - b[1])))[:_VOTERS]
            vote = ocr.upside_down([crop_quad(card, b, pad=0.08) for b in widest])
        flipped = vote > 0
        upright = _turned(quad, card, boxes) if flipped else (quad, card, boxes)
        titled: _CardRead | None = None
        # the other way up only when the vote was close (glare or blur can make it lose): a clear vote that
        # read no permit is a card that reads no better turned, and reading it twice doubles a refusal's cost
        ways = (upright, _turned(*upright)) if abs(vote) < _CLEAR_VOTE else (upright,)
        for quad, card, boxes in ways:
            fields, family, m_inv = self._fields(ocr, img, quad, card, boxes)
            titled_read = ranking.titled(fields)
            if family is not None and ranking.complete(fields):
                return (quad, card, m_inv, fields, family), True
            if titled is None and family is not None and titled_read:
                titled = quad, card, m_inv, fields, family
            if titled_read:
                break  # the title read this way up: the card is upright, reading it turned would find nothing
        return titled, False

    def _fields(self, ocr: Ocr, img: Img, quad: Quad, card: Img,
                boxes: list[Quad]) -> tuple[dict[str, layout.Field], str | None, Img]:
        """The fields read from the card's ``boxes``: the large print first (values, the title); the small
        print (labels above values, the subtitle) only when the large print leaves a field missing or in
        doubt, as it is half the recognition time; a finer detection only when a field is still missing."""
        m_inv = np.linalg.inv(geometry.homography(quad))
        large, small_print = block.split_print(boxes)
        lines = self._read(ocr, img, m_inv, large)
        with self._stage("extract"):
            fields, family = layout.extract(lines)
        if small_print and not layout.settled(fields, family):
            lines += self._read(ocr, img, m_inv, small_print)
            with self._stage("extract"):
                fields, family = layout.extract(lines)
        self._second_guesses(lines, fields)
        missing = layout.missing(fields, family)
        if 0 < len(missing) <= _FEW_MISSING:
            # a lone 女 or a faint place can be lost at 640 px: detect once more, finer, and read only the
            # lines that are new; what was found stays (more lines could only add rivals to it)
            with self._stage("detect"):
                scale = _FINE_WIDTH / geometry.CARD_W
                fine = cv2.resize(card, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
                new = [b / scale for b in ocr.detect(search.for_detection(fine, self._bilevel))]
            new = [b for b in new if _wanted(b) and not any(geometry.covers(old, b) for old in boxes)]
            new = [b for b in block.printed(card, boxes + new) if any(b is n for n in new)]
            if new:
                more = lines + self._read(ocr, img, m_inv, new)
                with self._stage("extract"):
                    again, _ = layout.extract(more)
                self._second_guesses(more, again)
                fields.update({k: again[k] for k in missing if k in again})
        rules.self_checked(fields, family)
        return fields, family, m_inv

    def _second_guesses(self, lines: list[second_guess.ReadLine], fields: dict[str, layout.Field]) -> None:
        with self._stage("extract"):
            second_guess.agree(lines, fields)
            second_guess.sex(lines, fields)
            second_guess.weakest_character(lines, fields)
            second_guess.from_guesses(lines, fields)

    def _read(self, ocr: Ocr, img: Img, m_inv: Img, boxes: list[Quad]) -> list[second_guess.ReadLine]:
        """Recognize card-frame ``boxes``, each cropped straight from the original image (one resampling:
        the straightened card is a photo's card upsampled once already)."""
        with self._stage("recognize"):
            crops = [crop_quad(img, geometry.to_original(b, m_inv).astype(np.float32), pad=0.08,
                              min_ratio=_MIN_RATIO, max_h=_MAX_CROP_H) for b in boxes]
            texts = ocr.recognize(crops)
        return [second_guess.number_letter(second_guess.digits_in_numbers(second_guess.ReadLine(b, t, s, alts)))
                for b, (t, s, alts) in zip(boxes, texts, strict=True) if t.strip()]

    def _find_card(self, ocr: Ocr, img: Img) -> Iterator[Quad]:
        """Where the card may be, likeliest first, worked out as asked for: the card's outline that holds the
        text on the frame, then the text's own extent (a tight crop, a card on a background of its colour, an
        outline found wrong); then the same inside each region of the frame that holds detail, cut out at full
        resolution (a card a third of a copier page wide, inside a screenshot, in a large photo's corner shows
        no text at the first scale); the whole frame last."""
        with self._stage("card"):
            quads, texts = self._look_closer(ocr, img)
        if texts:
            yield from quads
        with self._stage("card"):
            regions = search.detail_regions(img)
        for x0, y0, x1, y1 in regions:
            with self._stage("card"):
                inner, inner_texts = self._look_closer(ocr, img[y0:y1, x0:x1])
            if inner_texts:  # no text there: a photo, a pen, a mug
                for q in inner:
                    yield q + geometry.f32([x0, y0])
        if not texts:
            yield from quads

    def _look_finer(self, ocr: Ocr, img: Img) -> Iterator[Quad]:
        """Where the card may be when none of ``_find_card``'s places held one: too small for its looks (a fifth
        of a large photo on a patterned cloth, which is all detail and no region). The whole frame once more at
        _LAST_LOOK px, then a closer look at a window around each block of text seen there, the largest first:
        its title shows there, and the window holds the card around it. Only a frame larger than that, and only
        when no look so far saw a block of print (a copier page's card that was seen and did not read would be
        looked for again at a cost, to no end)."""
        s = _LAST_LOOK / max(img.shape[:2])
        if s >= 1 or self._saw_block:  # a card whose block of print was seen but did not read is no smaller
            return
        with self._stage("card"):
            small = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
            boxes = [b / s for b in ocr.detect(search.for_detection(small, self._bilevel))]
        # the lines' blocks first, then each box that is no line (a card seen as one block): a sheet of paper
        # boxed whole is no line either, and would join the card's title to the sheets around it
        lines = [b for b in boxes if search.is_line(b)]
        groups = geometry.text_blocks(lines, own_heights=True) + [[b] for b in boxes if not search.is_line(b)]
        for group in groups[:_LAST_WINDOWS]:
            window = search.around_text(group, img.shape[:2])
            if window is None:
                continue
            x0, y0, x1, y1 = window
            with self._stage("card"):
                inner, inner_boxes = self._look(ocr, img[y0:y1, x0:x1])
            if len(inner_boxes) >= _MIN_FIELDS:
                for q in inner:
                    yield q + geometry.f32([x0, y0])

    def _look_closer(self, ocr: Ocr, img: Img) -> tuple[list[Quad], bool]:
        """``_look``, and when it saw a line or two but too little for a card (a card's title is its largest
        print: at a card an eighth of the frame wide, the rest is too small to show), a second look at a
        window around what it saw, a card's size around its title, cut out at full resolution."""
        quads, boxes = self._look(ocr, img)
        window = search.around_text(boxes, img.shape[:2]) if 0 < len(boxes) < _MIN_FIELDS else None
        if window is not None:
            x0, y0, x1, y1 = window
            inner, inner_boxes = self._look(ocr, img[y0:y1, x0:x1])
            if len(inner_boxes) >= _MIN_FIELDS:
                return [q + geometry.f32([x0, y0]) for q in inner], True
        return quads, len(boxes) >= _MIN_FIELDS

    def _look(self, ocr: Ocr, img: Img) -> tuple[list[Quad], list[Quad]]:
        """Card quads in ``img`` from a 320-px text detection: the outline that holds the text, then the
        text's extent (without text, the outline or the whole image); and the text boxes seen."""
        h, w = img.shape[:2]
        boxes: list[Quad] = []
        for side, most in zip(_FIND_SIDES, (1.0, 2.0), strict=True):
            # a second, finer look when the first finds too little text to be a card; a small frame (a chat's
            # thumbnail, a region cut out of a page) is enlarged for it, up to twice
            s = min(most, side / max(h, w))
            inter = cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC
            small = cv2.resize(img, None, fx=s, fy=s, interpolation=inter) if s != 1 else img
            boxes = [b / s for b in ocr.detect(search.for_detection(small, self._bilevel))]
            if len(boxes) >= _MIN_FIELDS:
                lines = [b for b in boxes if search.is_line(b)]
                self._saw_block |= any(len(g) >= _MIN_FIELDS for g in geometry.text_blocks(lines, own_heights=True))
                break
        centres = np.array([b.mean(axis=0) for b in boxes], np.float32).reshape(-1, 2)
        angle = geometry.text_direction(boxes)
        found = geometry.find_card(img, centres, angle)
        if len(boxes) < _MIN_FIELDS:
            return [found if found is not None else
                    geometry.f32([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]])], boxes
        extent = geometry.text_extent(boxes, angle, 0.02 * max(w, h))
        return ([found, extent] if found is not None else [extent]), boxes


_CardRead = tuple[Quad, Img, Img, dict[str, layout.Field], str]  # quad, card, m_inv, fields, family


def _turned(quad: Quad, card: Img, boxes: list[Quad]) -> tuple[Quad, Img, list[Quad]]:
    """The card the other way up: its outline, its straightened image and its text boxes, turned 180°."""
    size = geometry.f32([geometry.CARD_W, geometry.CARD_H])
    return (geometry.rotate_quad_180(quad), cv2.rotate(card, cv2.ROTATE_180),
            [np.roll(size - b, 2, axis=0) for b in boxes])


def _wanted(box: Quad) -> bool:
    """Skip specks: a line lower than ~1.5 % of the card holds no field or label."""
    h = float(box[:, 1].max() - box[:, 1].min())
    return h >= 0.015 * geometry.CARD_H


def _points(q: Quad) -> list[dict[str, int]]:
    return [{"x": round(float(x)), "y": round(float(y))} for x, y in q]


def _data(img: Img, card: Img, quad: Quad, m_inv: Img, fields: dict[str, layout.Field], family: str,
          output_figure: bool) -> dict[str, Any]:
    org_h, org_w = img.shape[:2]
    top = quad[1] - quad[0]
    sideways = abs(float(top[1])) > abs(float(top[0]))  # card read at 90/270: straightened image is turned
    kv = []
    for key in layout.FIELDS:
        f = fields.get(key)
        item: dict[str, Any] = {"key": key, "keyProb": 100, "value": f.value if f else ""}
        if f is not None and f.value and f.quad is not None:
            item["valuePos"] = _points(geometry.to_original(f.quad, m_inv))
        item["valueProb"] = value_prob(key, f, family)
        kv.append(item)
    corners = geometry.to_original(geometry.f32([[0, 0], [geometry.CARD_W, 0],
                                               [geometry.CARD_W, geometry.CARD_H], [0, geometry.CARD_H]]), m_inv)
    out: dict[str, Any] = {
        "data": {k: (fields[k].value if k in fields else "") for k in layout.FIELDS},
        "prism_keyValueInfo": kv,
        # a card that runs off the frame (or the text's extent standing in for it) ends at the image's edge
        "sliceRect": {f"{a}{i}": round(min(max(float(v), 0.0), float(size - 1))) for i, pt in enumerate(corners)
                      for a, v, size in zip("xy", pt, (org_w, org_h), strict=True)},
        "ftype": 1 if geometry.is_photocopy(card) else 0,
        "width": org_h if sideways else org_w,
        "height": org_w if sideways else org_h,
        "orgWidth": org_w,
        "orgHeight": org_h,
    }
    if output_figure:
        box = face.photo_box(card)
        out["figure"] = [] if box is None else [_figure(geometry.to_original(box, m_inv))]
    return out


def value_prob(key: str, f: layout.Field | None, family: str) -> int:
    """0..100. A field that should be there but was not found is 0 (needs review); an empty field the
    kind does not print (a Hong Kong/Macao permit's issuePlace) is certain."""
    if f is None or not f.value:
        return 100 if key == "issuePlace" and family == "hk_macao" else 0
    return confidence.value_prob(f.score, f.cue, suspect=f.suspect)


def _figure(pts: Quad) -> dict[str, Any]:
    """Axis-aligned x/y/w/h plus a rotated box (centre, size, angle) and the four corners, like the API."""
    x0, y0 = pts.min(axis=0)
    x1, y1 = pts.max(axis=0)
    (cx, cy), (w, h), angle = cv2.minAreaRect(np.asarray(pts, np.float32))
    return {
        "type": "face",
        "x": round(float(x0)), "y": round(float(y0)),
        "w": round(float(x1 - x0)), "h": round(float(y1 - y0)),
        "box": {"x": round(cx), "y": round(cy), "w": round(w), "h": round(h), "angle": round(angle)},
        "points": _points(pts),
    }
