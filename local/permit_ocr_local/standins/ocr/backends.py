"""Pluggable recognizers behind the OCR stand-in: the truth-reading test backend and the embedded engine."""

from __future__ import annotations

import contextlib
import importlib
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from .imageinfo import dimensions
from .truthmark import read_truth

FIELDS = ("permitType", "nameCn", "nameEn", "birthDate", "sex", "validPeriod", "issueAuthority", "issuePlace",
          "permitNumber", "issueCount")

# The layout of the API document's sample response (928x626); scaled to each image.
SAMPLE_SIZE = (928, 626)
Box = tuple[tuple[int, int], tuple[int, int], tuple[int, int], tuple[int, int]]
SAMPLE_BOXES: dict[str, Box] = {
    "permitType": ((680, 41), (681, 83), (177, 86), (176, 44)),
    "nameCn": ((346, 119), (346, 153), (269, 153), (269, 119)),
    "nameEn": ((452, 166), (452, 195), (270, 195), (270, 166)),
    "birthDate": ((273, 226), (414, 226), (414, 254), (273, 254)),
    "sex": ((594, 234), (594, 268), (562, 268), (562, 234)),
    "validPeriod": ((700, 295), (700, 323), (267, 324), (267, 296)),
    "issueAuthority": ((264, 386), (265, 353), (536, 357), (536, 390)),
    "issuePlace": ((560, 355), (700, 355), (700, 390), (560, 390)),  # empty in the sample: placed beside it
    "permitNumber": ((489, 424), (489, 457), (268, 457), (268, 424)),
    "issueCount": ((601, 425), (601, 456), (555, 456), (555, 425)),
}
SAMPLE_SLICE = {"x0": 46, "y0": 30, "x1": 887, "y1": 38, "x2": 892, "y2": 564, "x3": 39, "y3": 567}
# the photo: (x, y, w, h) of the face, its rotated box (centre x, y, w, h) and its four corners
SAMPLE_FACE = (80, 164, 192, 273)
SAMPLE_FACE_BOX = (175, 300, 187, 269)
SAMPLE_FACE_POINTS = ((80, 166), (268, 164), (270, 433), (82, 435))


class RecognitionError(Exception):
    """The recognizer refused the image; ``code`` is an OCR error code (e.g. unmatchedImageType)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class Backend(Protocol):
    def recognize(self, image: bytes, output_figure: bool) -> dict[str, Any]: ...


class _Scale:
    def __init__(self, width: int, height: int) -> None:
        self.fx = width / SAMPLE_SIZE[0]
        self.fy = height / SAMPLE_SIZE[1]

    def x(self, v: int) -> int:
        return round(v * self.fx)

    def y(self, v: int) -> int:
        return round(v * self.fy)

    def point(self, p: tuple[int, int]) -> dict[str, int]:
        return {"x": self.x(p[0]), "y": self.y(p[1])}

    def rect(self, r: tuple[int, int, int, int]) -> dict[str, int]:
        return {"x": self.x(r[0]), "y": self.y(r[1]), "w": self.x(r[2]), "h": self.y(r[3])}


def build_data(truth: dict[str, Any], width: int, height: int, output_figure: bool) -> dict[str, Any]:
    """A full Data object (keys in the sample's order) for ``truth`` on an image of this size."""
    s = _Scale(width, height)
    fields = {k: str(truth.get(k) or "") for k in FIELDS}
    value_prob: dict[str, int] = truth.get("valueProb") or {}
    key_prob: dict[str, int] = truth.get("keyProb") or {}
    kv = []
    for key in FIELDS:
        item: dict[str, Any] = {"key": key, "keyProb": int(key_prob.get(key, 100)), "value": fields[key]}
        if fields[key]:  # the service gives no position for an empty value (issuePlace in the sample)
            item["valuePos"] = [s.point(p) for p in SAMPLE_BOXES[key]]
        item["valueProb"] = int(value_prob.get(key, 100))
        kv.append(item)
    data: dict[str, Any] = {"data": fields}
    if output_figure:
        data["figure"] = [{"type": "face", **s.rect(SAMPLE_FACE),
                           "box": {**s.rect(SAMPLE_FACE_BOX), "angle": 0},
                           "points": [s.point(p) for p in SAMPLE_FACE_POINTS]}]
    data.update({"ftype": int(truth.get("ftype", 0)), "height": height, "orgHeight": height, "orgWidth": width,
                 "prism_keyValueInfo": kv,
                 "sliceRect": {k: (s.x(v) if k[0] == "x" else s.y(v)) for k, v in SAMPLE_SLICE.items()},
                 "width": width})
    return data


class TruthBackend:
    """Deterministic: answers with the truth embedded in the image (truthmark), laid out like the sample."""

    def recognize(self, image: bytes, output_figure: bool) -> dict[str, Any]:
        truth = read_truth(image)
        if truth is None:
            raise RecognitionError("unmatchedImageType", "The image type does not match the API operation.")
        if "delay" in truth:  # lets a test image make a slow OCR call (overwrite-while-recognizing sequences)
            time.sleep(min(5.0, float(truth["delay"])))
        if "error" in truth:  # lets a test image provoke a recognizer failure, e.g. algorithmError
            raise RecognitionError(str(truth["error"]), str(truth.get("message") or truth["error"]))
        size = dimensions(image)
        if size is None:
            raise RecognitionError("unsupportedImageFormat", "The image format or content is not supported.")
        return build_data(truth, size[0], size[1], output_figure)


class EngineBackend:
    """The embedded recognizer (permit_ocr_local.engine), imported on first use; one call at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._engine: Any = None
        self._error_type: type[Exception] = Exception

    def _load(self) -> None:
        if self._engine is None:
            mod = importlib.import_module("permit_ocr_local.engine")
            self._engine, self._error_type = mod.Engine(), mod.EngineError

    def preload(self) -> None:
        """Load the models now (about 5 s) instead of in the first upload's call: the engine loads them on its
        first recognition, so it reads a blank page (which it refuses)."""
        with self._lock:
            self._load()
            with contextlib.suppress(Exception):
                self._engine.recognize(_blank_png(), False)

    def recognize(self, image: bytes, output_figure: bool) -> dict[str, Any]:
        with self._lock:  # the engine is not known to be thread-safe, and one model in memory is enough
            self._load()
            try:
                result: dict[str, Any] = self._engine.recognize(image, output_figure)
            except self._error_type as exc:
                raise RecognitionError(str(getattr(exc, "code", "algorithmError")),
                                       str(getattr(exc, "message", exc))) from exc
            return result


class TruthOrEngineBackend:
    """The truth an image carries, else the embedded engine: an API that reads every sample right, also the
    uploads the function converts first (a HEIC, a PDF page), whose bytes no longer carry their truth."""

    def __init__(self) -> None:
        self._truth, self._engine = TruthBackend(), EngineBackend()

    def preload(self) -> None:
        self._engine.preload()

    def recognize(self, image: bytes, output_figure: bool) -> dict[str, Any]:
        chosen: Backend = self._truth if read_truth(image) is not None else self._engine
        return chosen.recognize(image, output_figure)


def _blank_png() -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (96, 64), "white").save(out, "PNG")
    return out.getvalue()


BACKENDS: dict[str, Callable[[], Backend]] = {"truth": TruthBackend, "engine": EngineBackend,
                                              "truth-or-engine": TruthOrEngineBackend}


def make_backend(name: str) -> Backend:
    try:
        return BACKENDS[name]()
    except KeyError:
        raise ValueError(f"unknown OCR backend {name!r}; choose one of {sorted(BACKENDS)}") from None
