"""Step 5: the paid call. One OCR client per instance; transient failures retried here with exponential
backoff and full jitter, bounded by the time the invocation has left; permanent ones never retried.

Errors are classified by the service's ``Code`` (the HTTP status is inconsistent across codes), and network
failures (no code) count as transient. The SDK itself is kept at one attempt so every try is ours to count.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from .config import Config
from .credentials import Credentials, PerCredentials
from .errors import OcrFailure

TRANSIENT_CODES = frozenset({
    "Throttling.User", "Throttling", "algorithmError", "AlgorithmTimeout", "ServiceUnavailable",
    "ServiceTimeout", "InternalError", "imageTimeOut", "SignatureNonceUsed",
})
# retried, but only this many attempts: a bad signed URL is usually permanent, sometimes an OSS hiccup
LIMITED_RETRY = {"IllegalImageUrl": 2}
# The service's verdicts on the image itself: final (an error record, never paid for again). Every other code that
# is not transient is about the world (permissions, an unopened or expired service, credentials, signatures, a
# code this list does not know): not a verdict on the image, so the record stays non-final and a later delivery
# (FC's retry, replay, backfill) recognizes the image once the world is fixed.
VERDICT_CODES = frozenset({
    "exceededImageContent", "illegalImageSize", "ExceededImageSize", "unsupportedImageFormat", "illegalImageContent",
    "unmatchedImageType", "imageUrlOrBodyEmpty", "IllegalImageUrl", "exceededImageUrlLength", "notSafeImageUrl",
    "unsupportedEncodeImageUrl", "InvalidData",
})
BASE_BACKOFF_S, MAX_BACKOFF_S = 0.2, 8.0


@dataclass(frozen=True)
class OcrResult:
    request_id: str
    data: dict[str, Any]
    attempts: int
    latency_ms: int
    backend: str = "api"  # which recognizer answered: api (the paid call) or engine (the engine function)
    cascade: dict[str, Any] | None = None  # OCR_BACKEND=cascade: what the engine said first (backend.py)


def classify(exc: Exception) -> OcrFailure:
    """Map whatever the SDK raised to an OcrFailure (works with tea-openapi 0.4.x and 0.3.x attributes)."""
    data = getattr(exc, "data", None)
    data = data if isinstance(data, dict) else {}
    code = getattr(exc, "code", None)
    code = None if code in (None, "None", "") else str(code)
    status = data.get("statusCode") or getattr(exc, "status_code", None)
    status = int(status) if isinstance(status, int | str) and str(status).isdigit() else None
    rid = data.get("RequestId") or data.get("requestId")
    message = str(data.get("Message") or data.get("message") or "")[:500]
    retry_after = getattr(exc, "retry_after", None)
    if code is None and status is not None:  # an HTTP error without a Code: judge by its status
        return OcrFailure(f"HTTP{status}", message or f"HTTP {status} without an error code",
                          transient=status >= 500 or status == 429, status=status, request_id=rid)
    if code is None:  # connection refused, timeouts, unparseable bodies: nothing reached a verdict
        inner = getattr(exc, "inner_exception", None)
        return OcrFailure("NetworkError", str(inner or exc)[:300], transient=True)
    transient = code in TRANSIENT_CODES or code in LIMITED_RETRY or (status is not None and status >= 500)
    return OcrFailure(code, message or code, transient=transient, status=status, request_id=rid,
                      retry_after_s=retry_after / 1000 if isinstance(retry_after, int) and retry_after > 0 else None,
                      world=not transient and code not in VERDICT_CODES)


def backoff_s(attempt: int, rng: random.Random) -> float:
    """Full jitter: uniform(0, min(cap, base * 2^attempt)) spreads retries of many instances apart."""
    return rng.uniform(0, min(MAX_BACKOFF_S, BASE_BACKOFF_S * (2 ** attempt)))


class TimeBudget(Protocol):
    """When a paid call may start (see handler._Budget): before ``latest_start`` (time.monotonic), and only once
    ``cover`` made the claim outlive it."""

    def latest_start(self, call_s: float) -> float: ...

    def cover(self, call_s: float) -> bool: ...


@dataclass(frozen=True)
class Deadline:
    """A budget without a claim behind it (tools, tests): every call must end by ``end_by`` (time.monotonic)."""

    end_by: float

    def latest_start(self, call_s: float) -> float:
        return self.end_by - call_s

    def cover(self, call_s: float) -> bool:
        return time.monotonic() + call_s <= self.end_by


class RateLimiter:
    """A token bucket shared by an instance's worker threads: at most ``qps`` calls per second."""

    def __init__(self, qps: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = 1.0 / qps
        self._next = 0.0
        self._lock = threading.Lock()
        self._clock = clock

    def reserve(self) -> float:
        """Reserve the next slot; returns how long to wait for it."""
        wait = self.try_reserve(float("inf"))
        assert wait is not None
        return wait

    def try_reserve(self, latest_start: float) -> float | None:
        """Reserve the next slot if it starts by ``latest_start`` (the limiter's clock); how long to wait for it,
        or None (nothing reserved: the slot stays free for a caller with time to use it)."""
        with self._lock:
            now = self._clock()
            slot = max(now, self._next)
            if slot > latest_start:
                return None
            self._next = slot + self._interval
            return slot - now


class Recognizer:
    def __init__(self, cfg: Config, credentials: Callable[[], Credentials], seed: int | None = None) -> None:
        self._cfg = cfg
        self._clients: PerCredentials[Any] = PerCredentials(credentials, self._build)
        self._rng = random.Random(seed)
        self.limiter = RateLimiter(cfg.ocr_qps)

    def preload(self) -> None:
        """Import the OCR SDK now (in FC's initializer) rather than inside the first upload's time budget."""
        from alibabacloud_ocr_api20210707 import client, models  # noqa: F401
        from alibabacloud_tea_util import models as util_models  # noqa: F401

    def _build(self, creds: Credentials) -> Any:
        from alibabacloud_ocr_api20210707.client import Client
        from alibabacloud_tea_openapi.models import Config as ApiConfig

        return Client(ApiConfig(
            access_key_id=creds.access_key_id, access_key_secret=creds.access_key_secret,
            security_token=creds.security_token, endpoint=self._cfg.ocr_endpoint, protocol=self._cfg.ocr_protocol,
            connect_timeout=self._cfg.ocr_connect_timeout_ms, read_timeout=self._cfg.ocr_read_timeout_ms))

    def _get_client(self) -> Any:
        return self._clients.get()

    def _call_once(self, url: str | None, body: bytes | None) -> tuple[str, str]:
        from alibabacloud_ocr_api20210707 import models
        from alibabacloud_tea_util.models import RuntimeOptions

        request = models.RecognizeExitEntryPermitToMainlandRequest(
            output_figure=self._cfg.ocr_output_figure, url=url, body=body)  # bytes, never a stream: see README
        response = self._get_client().recognize_exit_entry_permit_to_mainland_with_options(
            request, RuntimeOptions(read_timeout=self._cfg.ocr_read_timeout_ms,
                                    connect_timeout=self._cfg.ocr_connect_timeout_ms))
        return str(response.body.request_id or ""), response.body.data or ""

    def worst_call_s(self) -> float:
        """The longest one call can take before our side gives up on it (the SDK makes one attempt per call)."""
        return (self._cfg.ocr_connect_timeout_ms + self._cfg.ocr_read_timeout_ms) / 1000

    def recognize(self, *, url: str | None = None, body: bytes | None = None, budget: TimeBudget) -> OcrResult:
        """Call OCR until success, a permanent error, the attempt cap, or the time runs out. No call starts, and
        no wait for an OCR_QPS slot begins, unless the call's worst case still fits the budget: a call cut off by
        FC's timeout may be billed with nobody left to store its answer, and one that outlives the claim may be
        paid for again by whoever takes the claim over."""
        started = time.monotonic()
        attempt = 0
        worst = self.worst_call_s()
        last: OcrFailure | None = None
        while True:
            attempt += 1
            wait = self.limiter.try_reserve(budget.latest_start(worst))
            if wait is not None and wait:
                time.sleep(wait)
            if wait is None or not budget.cover(worst):
                if last is not None:  # the failure that made a retry necessary says more than the clock
                    raise last
                raise OcrFailure("NoTimeLeft", "not enough time left to make the call safely; FC's retry will",
                                 transient=True, attempts=0, paid=False)
            try:
                request_id, raw = self._call_once(url, body)
            except Exception as exc:  # the SDK raises its own hierarchy; classify() reads it
                failure = classify(exc)
            else:
                return OcrResult(request_id, decode_data(raw, request_id), attempt,
                                 int((time.monotonic() - started) * 1000))
            failure.attempts = attempt
            cap = LIMITED_RETRY.get(failure.code, self._cfg.ocr_max_attempts)
            if not failure.transient or attempt >= min(cap, self._cfg.ocr_max_attempts):
                if failure.code in LIMITED_RETRY:
                    failure.transient = False  # retried enough: treat as the image's fault
                raise failure
            pause = failure.retry_after_s or backoff_s(attempt, self._rng)
            if time.monotonic() + pause > budget.latest_start(worst):
                raise failure  # still transient: the caller decides (raise so FC retries later)
            last = failure
            time.sleep(pause)


def decode_data(raw: str, request_id: str) -> dict[str, Any]:
    """The API returns ``Data`` as a JSON string; a 200 without a usable one is the service's fault."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise OcrFailure("InvalidData", "OCR answered 200 with a Data string that is not JSON",
                         transient=False, request_id=request_id) from None
    if not isinstance(data, dict):
        raise OcrFailure("InvalidData", "OCR Data is not a JSON object", transient=False, request_id=request_id)
    return check_data(data, request_id)


def check_data(data: dict[str, Any], request_id: str) -> dict[str, Any]:
    """``Data`` as every later step needs it, whoever answered (the API or the engine function)."""
    if not isinstance(data.get("data"), dict):  # the fields live in data.data; a result without them is no result
        raise OcrFailure("InvalidData", "OCR Data has no 'data' object with the fields", transient=False,
                         request_id=request_id)
    return data
