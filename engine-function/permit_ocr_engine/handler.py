"""The engine function: one image in (``permit_ocr.enginewire``'s request: the bytes behind a line of options),
the API's ``Data`` out, or the API's error code for an image it refuses.

It reads nothing and writes nothing (no OSS, no role needed for data); its log lines carry codes, counts and
times, never a value read from a permit. The models load in FC's initializer, once per instance; one recognition
runs at a time (FC 3.0's built-in runtimes serve one request per instance anyway).

A refusal the API also gives (``unmatchedImageType``, ``unsupportedImageFormat``) is answered as such: a verdict
on the image. Anything else that goes wrong inside the recognizer is answered ``EngineFailed`` (its exception's
type only): the caller records it as not final, since the same bytes would fail again until the engine is fixed.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from permit_ocr import enginewire, log
from permit_ocr.config import OCR_MAX_IMAGE_BYTES
from permit_ocr.recognize import VERDICT_CODES

Recognize = Callable[[bytes, bool], dict[str, Any]]  # (image, output_figure) -> Data; raises with a .code
ENGINE_FAILED = "EngineFailed"


def embedded() -> Recognize:
    """The embedded recognizer through its public entry point, its models loaded (it loads them on its first
    image: a blank page, which it refuses)."""
    import cv2
    import numpy as np

    from permit_ocr_local.engine import Engine, EngineError

    engine = Engine()
    ok, blank = cv2.imencode(".png", np.full((64, 96, 3), 255, np.uint8))
    assert ok
    with contextlib.suppress(EngineError):  # no permit on a blank page: the models are in memory now
        engine.recognize(blank.tobytes(), False)
    return engine.recognize


class EngineFunction:
    def __init__(self, load: Callable[[], Recognize] = embedded) -> None:
        self._load = load
        self._recognize: Recognize | None = None
        self._lock = threading.Lock()
        self.calls = 0  # invocations this instance answered (tests count them)

    def initialize(self, context: Any) -> None:
        log.configure(os.environ.get("LOG_LEVEL", "info").upper(), False)
        log.bind_request(str(getattr(context, "request_id", "") or "") or None)
        t0 = time.monotonic()
        self._models()
        log.info("engine loaded", ms=int((time.monotonic() - t0) * 1000))

    def _models(self) -> Recognize:
        with self._lock:
            if self._recognize is None:
                self._recognize = self._load()
            return self._recognize

    def handle(self, event: bytes, context: Any) -> bytes:
        log.bind_request(str(getattr(context, "request_id", "") or "") or None)
        t0 = time.monotonic()
        self.calls += 1
        try:
            request = enginewire.decode_request(bytes(event))
        except enginewire.WireError as exc:
            log.warning("engine request refused", code=enginewire.PROTOCOL_ERROR, reason=str(exc))
            return enginewire.encode_answer(code=enginewire.PROTOCOL_ERROR, message=str(exc))
        if len(request.image) > OCR_MAX_IMAGE_BYTES:  # what the API refuses, the engine refuses alike
            return self._refuse("ExceededImageSize", "the image is larger than 10 MB", t0)
        recognize = self._models()
        try:
            with self._lock:
                data = recognize(request.image, request.output_figure)
        except Exception as exc:  # the recognizer's refusal carries the API's code; anything else is ours
            code = getattr(exc, "code", None)
            if isinstance(code, str) and code in VERDICT_CODES:
                return self._refuse(code, str(getattr(exc, "message", "") or code), t0)
            log.error("engine failed", code=ENGINE_FAILED, errorType=type(exc).__name__)
            return self._refuse(ENGINE_FAILED, f"the engine failed on this image ({type(exc).__name__})", t0)
        ms = int((time.monotonic() - t0) * 1000)
        fields = data.get("data")
        read = sum(1 for v in fields.values() if v) if isinstance(fields, dict) else 0
        log.info("engine answered", ms=ms, fields=read, imageBytes=len(request.image))
        return enginewire.encode_answer(data, ms=ms)

    def _refuse(self, code: str, message: str, t0: float) -> bytes:
        ms = int((time.monotonic() - t0) * 1000)
        log.info("engine refused", code=code, ms=ms)
        return enginewire.encode_answer(code=code, message=message, ms=ms)


_function = EngineFunction()


def initialize(context: Any) -> None:
    _function.initialize(context)


def handler(event: bytes, context: Any) -> bytes:
    return _function.handle(event, context)
