"""The FC adapter: InvokeFunction (Async) with the FC 3.0 SDK, retried on throttling, 5xx and network errors."""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Mapping
from typing import TypeVar

from .rules import one_line

T = TypeVar("T")

class InvokeError(Exception):
    """FC refused or never answered, after the retries; ``final`` when retrying cannot help (4xx)."""

    def __init__(self, message: str, *, final: bool) -> None:
        super().__init__(one_line(message))
        self.final = final


class FcInvoker:
    """InvokeFunction(Async) with the FC 3.0 SDK. The SDK does not retry by default: throttling (429), 5xx and
    network failures (refused, reset, timeout) are retried here with exponential backoff; anything else is
    final. A timed-out request may still have been accepted: the resend is then a duplicate the function
    answers without paying again."""

    RETRY_STATUSES = (429, 500, 502, 503, 504)

    def __init__(self, endpoint: str, protocol: str, function: str, env: Mapping[str, str], *,
                 qualifier: str | None = None, attempts: int = 5, backoff_s: float = 0.5, timeout_s: float = 30.0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        from alibabacloud_fc20230330.client import Client
        from alibabacloud_tea_openapi.utils_models import Config as ApiConfig

        self._client = Client(ApiConfig(
            access_key_id=env["ALIBABA_CLOUD_ACCESS_KEY_ID"], access_key_secret=env["ALIBABA_CLOUD_ACCESS_KEY_SECRET"],
            security_token=env.get("ALIBABA_CLOUD_SECURITY_TOKEN") or None, endpoint=endpoint, protocol=protocol,
            read_timeout=int(timeout_s * 1000), connect_timeout=min(5_000, int(timeout_s * 1000))))
        self.endpoint = f"{protocol}://{endpoint}"
        self.function = function
        self.qualifier = qualifier
        self._attempts = attempts
        self._backoff_s = backoff_s
        self._sleep = sleep

    def _call(self, what: str, call: Callable[[], T]) -> T:
        last: Exception | None = None
        for attempt in range(self._attempts):
            try:
                return call()
            except Exception as exc:  # the SDK's ClientException/ServerException/UnretryableException
                status = getattr(exc, "status_code", None)
                if status is not None and status not in self.RETRY_STATUSES:
                    raise InvokeError(f"{what}: {getattr(exc, 'code', '')} ({status}): "
                                      f"{getattr(exc, 'message', exc)}", final=True) from None
                last = exc
                if attempt < self._attempts - 1:
                    self._sleep(self._backoff_s * 2**attempt)
        reason = getattr(last, "message", None) or str(last)
        raise InvokeError(f"{what}: no success after {self._attempts} attempts at {self.endpoint}: {reason}",
                          final=False)

    def send(self, event: bytes) -> str:
        from alibabacloud_fc20230330 import models
        from alibabacloud_tea_util.models import RuntimeOptions

        def call() -> str:
            r = self._client.invoke_function_with_options(
                self.function, models.InvokeFunctionRequest(body=io.BytesIO(event), qualifier=self.qualifier),
                models.InvokeFunctionHeaders(x_fc_invocation_type="Async"), RuntimeOptions())
            return str((r.headers or {}).get("x-fc-request-id", ""))

        return self._call("InvokeFunction", call)

    def check(self) -> None:
        """GetFunction: endpoint, credentials, function and qualifier, before the first batch is built."""
        from alibabacloud_fc20230330 import models

        self._call("GetFunction", lambda: self._client.get_function(
            self.function, models.GetFunctionRequest(qualifier=self.qualifier)))
