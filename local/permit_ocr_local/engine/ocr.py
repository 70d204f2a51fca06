"""Thin wrapper over RapidOCR 3.x's PP-OCRv6 detector and recognizer (the ONNX models ship in its wheel).

We call the two stages directly rather than ``RapidOCR()(img)``: the pipeline upsizes every image so the
short side is 736 px and runs the angle classifier on every crop; we detect on a straightened card of a
size we choose and only recognize crops whose orientation we already know.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, overload

import cv2
import numpy as np

Img = np.ndarray[Any, Any]
Quad = np.ndarray[Any, Any]  # (4, 2) float32: TL, TR, BR, BL
# per character read: (character, probability), likeliest first (a list, or Guesses worked out on first use)
Alternatives = Sequence[list[tuple[str, float]]]

_DET_MODEL = "PP-OCRv6_det_small.onnx"
_REC_MODEL = "PP-OCRv6_rec_small.onnx"
_CLS_MODEL = "ch_ppocr_mobile_v2.0_cls_mobile.onnx"
_DET_LIMIT = 960  # the detector shrinks a larger image's long side to this (RapidOCR's limit_type "max")


def _f32(rows: Any) -> Img:
    return np.asarray(rows, dtype=np.float32)


def _threads() -> int:
    # FC instances have 1-2 vCPU; beyond 2 threads these small models gain little and contend more
    env = os.environ.get("PERMIT_OCR_THREADS")
    return int(env) if env else max(1, min(2, os.cpu_count() or 1))


@contextlib.contextmanager
def _quiet_threads(threads: int) -> Iterator[None]:
    """RapidOCR builds its own SessionOptions; while our sessions are created, add what it lacks.

    ORT's worker threads spin-wait between ops by default: on a shared 2-core box that burns the other
    core (the legacy engine's p50 went 5.4 s -> 2.7 s on a busy box once spinning was off).
    """
    from rapidocr.inference_engine.onnxruntime import main as ort_main

    cls = ort_main.OrtInferSession
    original = cls._init_sess_opts

    def patched(config: Any) -> Any:
        opts = original(config)
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return opts

    setattr(cls, "_init_sess_opts", staticmethod(patched))  # noqa: B010 (mypy: a method is not assignable)
    try:
        yield
    finally:
        setattr(cls, "_init_sess_opts", staticmethod(original))  # noqa: B010


def bundled_models() -> tuple[Path, Path, Path]:
    """The det, rec and 0/180 classifier models inside the rapidocr wheel; a missing one is an install
    error, never a download."""
    import rapidocr

    root = Path(rapidocr.__file__).parent / "models"
    paths = (root / _DET_MODEL, root / _REC_MODEL, root / _CLS_MODEL)
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise RuntimeError(f"rapidocr's bundled models are missing ({', '.join(missing)}): reinstall "
                           "requirements/engine.txt; the engine never downloads models")
    return paths


class Ocr:
    def __init__(self) -> None:
        from rapidocr import RapidOCR

        logging.getLogger("RapidOCR").setLevel(logging.WARNING)
        det_path, rec_path, cls_path = bundled_models()
        # limit_type "max": keep our small card as is (the default upsizes the short side to 736 px).
        # rec_batch_num 1: a batch is padded to its widest line, and a card's lines range from 男 to a
        # 20-character period; the model costs the same per pixel of width at any batch size, so one line
        # a run cut recognition from 0.78 to 0.45 CPU s per card (bench/bench_engine.py's images)
        pipeline = RapidOCR(params={
            "Global.log_level": "warning",
            "Det.model_path": str(det_path), "Det.limit_type": "max", "Det.limit_side_len": _DET_LIMIT,
            "Det.box_thresh": 0.5, "Det.unclip_ratio": 1.6,
            "Rec.model_path": str(rec_path), "Rec.rec_batch_num": 1, "Rec.rec_img_shape": [3, 48, 96],
            "Cls.model_path": str(cls_path),
        })
        # the models' work since they were loaded, the same on any machine however busy: the pixels the detector
        # was given (on its 32-px grid) and the columns the recognizer read (48-px-high lines)
        self.det_pixels = 0
        self.rec_columns = 0
        with _quiet_threads(_threads()):
            self._det = pipeline._load_det_model()
            self._rec = pipeline._load_rec_model()
            self._cls = pipeline._load_cls_model()

    def detect(self, img: Img) -> list[Quad]:
        """Text line quads in ``img`` coordinates (the caller picks the resolution; <= 960 px is kept)."""
        self.det_pixels += det_input_pixels(*img.shape[:2])
        out = self._det(img)
        if out.boxes is None or len(out.boxes) == 0:
            return []
        return [np.asarray(b, np.float32) for b in out.boxes]

    def upside_down(self, crops: list[Img]) -> float:
        """Confidence-weighted vote of the 0/180 classifier over ``crops``: > 0 means turned 180 degrees."""
        if not crops:
            return 0.0
        out = self._cls(crops)
        return float(sum(s if label == "180" else -s for label, s in out.cls_res or ()))

    def recognize(self, crops: list[Img], k: int = 8) -> list[tuple[str, float, Alternatives]]:
        """(text, score, alternatives) per crop: the greedy CTC read (the text and mean character
        probability RapidOCR's own decoder gives) and, for every character read, the ``k`` likeliest
        characters at its step (a misread name character is usually among them: engine/second_guess.py).

        One line a run: a batch is padded to its widest line (see ``__init__``)."""
        rec = self._rec
        charset = rec.postprocess_op.character
        _, height, width = rec.rec_image_shape
        out: list[tuple[str, float, Alternatives]] = []
        for crop in crops:
            ratio = max(width / height, crop.shape[1] / crop.shape[0])
            self.rec_columns += round(height * ratio)
            batch = rec.resize_norm_img(crop, ratio)[np.newaxis].astype(np.float32)
            out.append(_alternatives(np.asarray(rec.session(batch))[0], charset, k))
        return out


class Guesses(Sequence[list[tuple[str, float]]]):
    """The recognizer's ``k`` likeliest characters at each character it read, likeliest first, worked out on
    first use: a partial sort of ~18,000 classes costs about a millisecond a line, and most lines never need
    their guesses (only a name, a sex box or a digit in doubt does)."""

    def __init__(self, rows: Img, charset: list[str], k: int) -> None:
        self._rows, self._charset, self._k = rows, charset, k
        self._done: dict[int, list[tuple[str, float]]] = {}

    def __len__(self) -> int:
        return len(self._rows)

    def top(self, i: int) -> float:
        """The probability of the character read at ``i`` (no sort needed)."""
        return float(self._rows[i].max())

    @overload
    def __getitem__(self, i: int) -> list[tuple[str, float]]: ...

    @overload
    def __getitem__(self, i: slice) -> list[list[tuple[str, float]]]: ...

    def __getitem__(self, i: int | slice) -> list[tuple[str, float]] | list[list[tuple[str, float]]]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        i %= len(self)
        if i not in self._done:
            row = self._rows[i]
            top = np.argpartition(-row, self._k)[:self._k + 1]
            top = top[np.argsort(-row[top])]
            self._done[i] = [(self._charset[j], float(row[j])) for j in top if j != 0][:self._k]
        return self._done[i]


def det_input_pixels(h: int, w: int) -> int:
    """The pixels the detector runs on for an ``h`` x ``w`` image: as RapidOCR's DetPreProcess sizes it (a long
    side over _DET_LIMIT shrunk to it, each side truncated, then rounded to a multiple of 32)."""
    ratio = min(1.0, _DET_LIMIT / max(h, w))
    return round(int(h * ratio) / 32) * 32 * round(int(w * ratio) / 32) * 32


def _alternatives(preds: Img, charset: list[str], k: int) -> tuple[str, float, Guesses]:
    """Greedy CTC decoding of one line's ``preds`` (time x classes, class 0 the blank): the text, its mean
    character probability (as RapidOCR's decoder gives them) and the guesses at each character read."""
    best = preds.argmax(axis=1)
    prev = np.concatenate(([0], best[:-1]))
    steps = np.flatnonzero((best != 0) & (best != prev))  # a new character: not blank, not a repeat
    text = "".join(charset[j] for j in best[steps])
    score = float(preds[steps, best[steps]].mean()) if steps.size else 0.0
    return text, score, Guesses(preds[steps], charset, k)


def crop_quad(img: Img, quad: Quad, pad: float = 0.0, min_ratio: float = 0.0, max_h: float = 0.0) -> Img:
    """Perspective-crop a text line; ``pad`` grows it by that fraction of its height on each side, a
    line narrower than ``min_ratio`` times its height is widened to that with the image around it, and
    one higher than ``max_h`` (when given) is shrunk to it."""
    q = np.asarray(quad, np.float32)
    w = float(max(np.linalg.norm(q[0] - q[1]), np.linalg.norm(q[3] - q[2])))
    h = float(max(np.linalg.norm(q[0] - q[3]), np.linalg.norm(q[1] - q[2])))
    k = min(1.0, max_h / h) if max_h and h > 0 else 1.0
    w, h = max(int(w * k), 4), max(int(h * k), 4)
    p = pad * h
    px = max(p, (min_ratio * (h + 2 * p) - w) / 2)
    dst = _f32([[px, p], [w + px, p], [w + px, h + p], [px, h + p]])
    m = cv2.getPerspectiveTransform(q, dst)
    out: Img = cv2.warpPerspective(img, m, (int(w + 2 * px), int(h + 2 * p)), flags=cv2.INTER_CUBIC,
                                   borderMode=cv2.BORDER_REPLICATE)
    return out
