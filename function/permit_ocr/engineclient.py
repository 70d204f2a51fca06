"""The self-hosted recognizer: the engine function, invoked synchronously through the FC 3.0 API
(``InvokeFunction``, alibabacloud-fc20230330, signed with the function role's STS credentials; the role may
invoke that one function and nothing else). The image's bytes travel in the request body (``enginewire``), so
the engine function reads nothing and needs no role of its own; nothing is billed per call.

Its answer is the API's ``Data``, so every later step (document, checks, review) treats it alike. Failures keep
the API's vocabulary: the engine's refusals (``unmatchedImageType``, ``unsupportedImageFormat``) are verdicts on
the image; FC throttling, 5xx, a function that crashed or timed out, and the network are transient (retried here
within the time budget, then by FC); a refused signature, a missing function or a permission are facts about the
world, never a verdict on the image.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any, NoReturn

from . import enginewire
from .config import Config
from .credentials import Credentials, PerCredentials
from .errors import OcrFailure
from .recognize import VERDICT_CODES, OcrResult, TimeBudget, backoff_s, check_data

ENGINE_ATTEMPTS = 2  # one retry: an engine call that fails twice will not be saved by a third within FC's timeout
CONNECT_TIMEOUT_MS = 5000
TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})
# x-fc-error-type of a 200: the engine function raised, timed out, ran out of memory or failed to initialize
FUNCTION_ERROR_HEADER = "x-fc-error-type"


class EngineFailure(OcrFailure):
    """An engine call that failed. ``about_image``: the engine answered about these very bytes (refused them, or
    failed on them), as opposed to being unreachable, throttled or misdeployed: a cascade asks the API then."""

    def __init__(self, code: str, message: str, *, about_image: bool = False, transient: bool = False,
                 world: bool = False, status: int | None = None, request_id: str | None = None) -> None:
        super().__init__(code, message, transient=transient, world=world, status=status, request_id=request_id)
        self.about_image = about_image


class EngineClient:
    """One FC client per instance (rebuilt when the STS credentials rotate); calls are thread-safe."""

    def __init__(self, cfg: Config, credentials: Callable[[], Credentials], seed: int | None = None) -> None:
        self._cfg = cfg
        self._clients: PerCredentials[Any] = PerCredentials(credentials, self._build)
        self._rng = random.Random(seed)

    def preload(self) -> None:
        """Import the FC SDK in FC's initializer rather than inside the first upload's time budget."""
        from alibabacloud_fc20230330 import client, models  # noqa: F401

    def worst_call_s(self) -> float:
        """The longest one engine call can take before our side gives up on it."""
        return (CONNECT_TIMEOUT_MS + self._cfg.engine_timeout_ms) / 1000

    def _build(self, creds: Credentials) -> Any:
        from alibabacloud_fc20230330.client import Client
        from alibabacloud_tea_openapi.utils_models import Config as ApiConfig

        protocol, _, host = self._cfg.engine_endpoint.partition("://")
        return Client(ApiConfig(
            access_key_id=creds.access_key_id, access_key_secret=creds.access_key_secret,
            security_token=creds.security_token, endpoint=host, protocol=protocol,
            connect_timeout=CONNECT_TIMEOUT_MS, read_timeout=self._cfg.engine_timeout_ms))

    def _call_once(self, request: bytes) -> tuple[str, bytes, str]:
        """(FC request id, answer bytes, x-fc-error-type or '') of one synchronous invocation."""
        from alibabacloud_fc20230330 import models
        from alibabacloud_tea_util.models import RuntimeOptions

        # bytes, never a stream: the SDK reads a stream 1 KB at a time into a growing bytes object (quadratic:
        # a 10 MB image took 78 s to send; reference ocr-api.md §4)
        r = self._clients.get().invoke_function_with_options(
            self._cfg.engine_function, models.InvokeFunctionRequest(body=request),
            models.InvokeFunctionHeaders(x_fc_invocation_type="Sync"),
            RuntimeOptions(connect_timeout=CONNECT_TIMEOUT_MS, read_timeout=self._cfg.engine_timeout_ms))
        headers = {str(k).lower(): str(v) for k, v in (r.headers or {}).items()}
        body = r.body.read() if r.body is not None else b""
        return headers.get("x-fc-request-id", ""), body, headers.get(FUNCTION_ERROR_HEADER, "")

    def recognize(self, body: bytes, budget: TimeBudget, *, reserve_s: float = 0.0) -> OcrResult:
        """The engine's ``Data`` for these bytes. A call starts only when its worst case plus ``reserve_s`` (the
        paid call a cascade may still need after it) fits the budget; retried once on a transient failure."""
        request = enginewire.encode_request(body, output_figure=self._cfg.ocr_output_figure)
        started, worst = time.monotonic(), self.worst_call_s()
        last: OcrFailure | None = None
        for attempt in range(1, ENGINE_ATTEMPTS + 1):
            if time.monotonic() > budget.latest_start(worst + reserve_s) or not budget.cover(worst + reserve_s):
                if last is not None:
                    raise last
                raise OcrFailure("NoTimeLeft", "not enough time left to call the engine safely; FC's retry will",
                                 transient=True, attempts=0, paid=False)
            try:
                request_id, raw, function_error = self._call_once(request)
                if function_error:  # crashed, timed out, out of memory, initializer failed: not the image
                    raise EngineFailure("EngineFunctionError", f"the engine function failed ({function_error})",
                                        transient=True, request_id=request_id)
                return answer(raw, request_id, attempt, int((time.monotonic() - started) * 1000))
            except OcrFailure as err:
                failure = err
            except Exception as exc:  # the SDK's ClientException/ServerException, or the network
                failure = classify(exc)
            failure.attempts = attempt
            if not failure.transient or attempt == ENGINE_ATTEMPTS:
                raise failure
            pause = backoff_s(attempt, self._rng)
            if time.monotonic() + pause > budget.latest_start(worst + reserve_s):
                raise failure
            last = failure
            time.sleep(pause)
        raise AssertionError("unreachable")


def answer(raw: bytes, request_id: str, attempts: int, latency_ms: int) -> OcrResult:
    """The engine function's answer as the result of an OCR call, or the OcrFailure it stands for."""
    try:
        got = enginewire.decode_answer(raw)
    except enginewire.WireError as exc:  # the two packages disagree: every image would fail alike
        raise EngineFailure(enginewire.PROTOCOL_ERROR, str(exc), world=True, request_id=request_id) from None
    if got.code is not None:
        _refused(got, request_id)
    assert got.data is not None
    try:
        data = check_data(got.data, request_id)
    except OcrFailure as err:  # the engine's bug on these bytes, not the image's fault: fixed, it reads them
        raise EngineFailure(err.code, err.message, about_image=True, world=True, request_id=request_id) from None
    return OcrResult(request_id, data, attempts, latency_ms, backend="engine")


def _refused(got: enginewire.Answer, request_id: str) -> NoReturn:
    code = got.code or "EngineFailed"
    if code in VERDICT_CODES:  # the engine's verdict on the image, as the API would give it
        raise EngineFailure(code, got.message or code, about_image=True, request_id=request_id)
    # the engine failed on these bytes (a bug): not the image's fault, and retrying the same bytes will not help;
    # the record stays non-final until the engine is fixed (replay); a protocol mismatch is the deployment's
    raise EngineFailure(code, got.message or code, about_image=code != enginewire.PROTOCOL_ERROR, world=True,
                        request_id=request_id)


def classify(exc: Exception) -> EngineFailure:
    """What the FC SDK raised, as an OcrFailure: throttling, 5xx and the network are transient; the rest
    (a signature, a key, a missing function, a permission) is a fact about the deployment."""
    status = getattr(exc, "status_code", None)
    status = status if isinstance(status, int) else None
    code = getattr(exc, "code", None)
    code = None if code in (None, "None", "") else str(code)
    rid = getattr(exc, "request_id", None)
    rid = None if rid in (None, "None", "") else str(rid)
    message = str(getattr(exc, "message", "") or exc)[:300]
    if status is None and code is None:
        return EngineFailure("EngineUnreachable", message, transient=True)
    transient = status is None or status in TRANSIENT_STATUSES
    return EngineFailure(code or f"HTTP{status}", message, transient=transient, status=status, request_id=rid,
                         world=not transient)
