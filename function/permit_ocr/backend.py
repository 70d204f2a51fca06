"""Step 5, which recognizer answers (OCR_BACKEND): ``api`` the paid OCR call, ``engine`` the engine function
only, ``cascade`` the engine first and the paid call only when the engine's answer would need review.

A cascade asks ``normalize.review`` of the engine's answer, the same rules every result is flagged by (a field
under REVIEW_MIN_PROB, a failed check): an answer it would not flag is the result; one it would flag, or an engine
refusal of the image, goes to the API, whose answer is kept. An engine that cannot answer now (throttled, down,
out of time, misdeployed) is not replaced by a paid call: the record is retried, so an engine outage never turns
silently into a bill for every upload (OCR_BACKEND=api chooses the bill). Both calls run inside the version's one
claim, each started only when its worst case still fits (budget.py), and the claim is taken for both.

The engine reads the exact bytes of the version the claim is for (read once here in url mode), and in a cascade
the API gets the same bytes: no signed URL, so no other version can be read in between.
"""

from __future__ import annotations

import dataclasses
import datetime
import time
from collections.abc import Callable

from . import log
from .config import Config
from .credentials import Credentials
from .document import review_data
from .engineclient import EngineClient, EngineFailure
from .errors import OcrFailure
from .recognize import OcrResult, Recognizer, TimeBudget
from .source import Prepared

# the OCR service could not read the signed URL (an OSS hiccup on its side, a slow fetch): we can read the bytes
URL_FETCH_FAILURES = frozenset({"IllegalImageUrl", "imageTimeOut"})


class Backend:
    def __init__(self, cfg: Config, api: Recognizer, credentials: Callable[[], Credentials]) -> None:
        self._cfg = cfg
        self._api = api
        self.engine = EngineClient(cfg, credentials) if cfg.uses_engine else None

    def preload(self) -> None:
        """The SDKs' imports, in FC's initializer: no upload waits for them."""
        self._api.preload()
        if self.engine is not None:
            self.engine.preload()

    def worst_call_s(self) -> float:
        """The recognize step's worst case, which a claim must cover: in a cascade, both calls."""
        api = self._api.worst_call_s()
        if self.engine is None or self._cfg.ocr_backend == "api":
            return api
        engine = self.engine.worst_call_s()
        return engine if self._cfg.ocr_backend == "engine" else engine + api

    def recognize(self, prepared: Prepared, read: Callable[[], bytes],
                  budget: TimeBudget) -> tuple[OcrResult, Prepared]:
        """The answer for the claimed version, and the version as it was sent (``read``: its exact bytes)."""
        if self._cfg.ocr_backend == "api" or self.engine is None:
            return self._paid(prepared, read, budget)
        if prepared.body is None:
            prepared = dataclasses.replace(prepared, url=None, body=read())
        assert prepared.body is not None
        if self._cfg.ocr_backend == "engine":
            answered = self.engine.recognize(prepared.body, budget)
            log.info("recognized", backend="engine", attempts=answered.attempts, ms=answered.latency_ms)
            return answered, prepared
        return self._cascade(prepared.body, budget), dataclasses.replace(prepared, url=None)

    def _paid(self, prepared: Prepared, read: Callable[[], bytes], budget: TimeBudget) -> tuple[OcrResult, Prepared]:
        try:
            return self._api.recognize(url=prepared.url, body=prepared.body, budget=budget), prepared
        except OcrFailure as err:
            if prepared.url is None or err.code not in URL_FETCH_FAILURES:
                raise
            log.warning("OCR could not fetch the signed URL; sending the bytes", code=err.code)
        # a failed fetch is not billed, so this is still the version's one paid call
        sent = dataclasses.replace(prepared, url=None, body=read())
        return self._api.recognize(url=None, body=sent.body, budget=budget), sent

    def _cascade(self, body: bytes, budget: TimeBudget) -> OcrResult:
        assert self.engine is not None
        t0 = time.monotonic()
        try:
            first = self.engine.recognize(body, budget, reserve_s=self._api.worst_call_s())
        except EngineFailure as err:
            if not err.about_image:  # down, throttled, misdeployed: retried, never paid for in its place
                raise
            reasons, engine_rid = [f"engine.{err.code}"], err.request_id or ""  # it refused or failed on them
        else:
            reasons = review_data(first.data, self._cfg.review_min_prob, _now())["reviewReasons"]
            engine_rid = first.request_id
            if not reasons:
                log.info("recognized", backend="engine", escalated=False, ms=first.latency_ms)
                return dataclasses.replace(first, cascade={"escalated": False, "engineRequestId": engine_rid})
        paid = self._api.recognize(url=None, body=body, budget=budget)
        log.info("recognized", backend="api", escalated=True, reasons=",".join(reasons),
                 ms=int((time.monotonic() - t0) * 1000))
        return dataclasses.replace(paid, cascade={"escalated": True, "engineRequestId": engine_rid,
                                                  "engineReasons": reasons})


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)
