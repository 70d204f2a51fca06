"""Thin wrapper over RapidOCR's PP-OCRv4 detector and recognizer (ONNX models ship inside the wheel).

We call the two stages directly rather than ``RapidOCR()``: the pipeline upsizes every image so the
short side is 736 px and runs the angle classifier on every crop, which is most of its 1.3 s; we
detect once on a small straightened card and only recognize crops whose orientation we already know.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

Img = np.ndarray[Any, Any]
Quad = np.ndarray[Any, Any]  # (4, 2) float32: TL, TR, BR, BL


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
    core: with other work on the machine our p50 went 5.4 s -> 2.7 s once spinning was off (and 0.95 s with
    PERMIT_OCR_THREADS=1, the better setting when the box is shared).
    """
    from rapidocr_onnxruntime.utils.infer_engine import OrtInferSession

    original = OrtInferSession._init_sess_opts

    def patched(config: dict[str, Any]) -> Any:
        opts = original(config)
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return opts

    OrtInferSession._init_sess_opts = staticmethod(patched)
    try:
        yield
    finally:
        OrtInferSession._init_sess_opts = original


class Ocr:
    def __init__(self) -> None:
        import rapidocr_onnxruntime as pkg
        from rapidocr_onnxruntime.ch_ppocr_det import TextDetector
        from rapidocr_onnxruntime.ch_ppocr_rec import TextRecognizer
        from rapidocr_onnxruntime.utils import read_yaml

        root = Path(pkg.__file__).parent
        cfg = read_yaml(str(root / "config.yaml"))
        # limit_type "max": keep our small card as is (the default upsizes the short side to 736 px)
        det = dict(cfg["Det"], model_path=str(root / cfg["Det"]["model_path"]), limit_type="max",
                   box_thresh=0.5, unclip_ratio=1.6)
        rec = dict(cfg["Rec"], model_path=str(root / cfg["Rec"]["model_path"]), rec_batch_num=8)
        with _quiet_threads(_threads()):
            self._det = TextDetector(det)
            self._rec = TextRecognizer(rec)

    def detect(self, img: Img) -> list[Quad]:
        """Text line quads in ``img`` coordinates (the caller picks the resolution; < 960 px is kept)."""
        boxes, _ = self._det(img)
        if boxes is None or len(boxes) == 0:
            return []
        return [np.asarray(b, np.float32) for b in boxes]

    def recognize(self, crops: list[Img]) -> list[tuple[str, float]]:
        if not crops:
            return []
        res, _ = self._rec(crops)
        return [(str(t), float(s)) for t, s in res]


def crop_quad(img: Img, quad: Quad, pad: float = 0.0) -> Img:
    """Perspective-crop a text line; ``pad`` grows it by that fraction of its height on each side."""
    q = np.asarray(quad, np.float32)
    w = int(max(np.linalg.norm(q[0] - q[1]), np.linalg.norm(q[3] - q[2])))
    h = int(max(np.linalg.norm(q[0] - q[3]), np.linalg.norm(q[1] - q[2])))
    w, h = max(w, 4), max(h, 4)
    p = pad * h
    dst = _f32([[p, p], [w + p, p], [w + p, h + p], [p, h + p]])
    m = cv2.getPerspectiveTransform(q, dst)
    out: Img = cv2.warpPerspective(img, m, (int(w + 2 * p), int(h + 2 * p)), flags=cv2.INTER_CUBIC,
                                   borderMode=cv2.BORDER_REPLICATE)
    return out
