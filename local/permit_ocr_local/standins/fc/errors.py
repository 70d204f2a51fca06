"""FC 3.0 API errors in the documented shape ``{"Code", "Message", "RequestId"}`` (api-fc-2023-03-30 struct
Error) with the statuses of the FC error-code table; request ids look like FC's (``1-<8 hex>-<24 hex>``)."""

from __future__ import annotations

import secrets
import time

from .. import http
from ..http import Request, Response

JSON_CONTENT_TYPE = "application/json; charset=utf-8"

# code -> (HTTP status, message template); from the FC error-code table (help.aliyun.com/zh/fc/.../error-codes)
ERRORS: dict[str, tuple[int, str]] = {
    "InvalidArgument": (400, "%s"),
    "MissingRequiredHeader": (400, "required HTTP header %s was not specified"),
    "PathNotSupported": (400, "%s is not supported"),
    "EntityTooLarge": (400, "payload size exceeds maximum allowed size (%s bytes)"),
    "AccessDenied": (403, "%s"),
    "SignatureNotMatch": (403, "The request signature we calculated does not match the signature you provided. "
                               "Check your access key and signing method"),
    "InvalidAccessKeyID": (403, "invalid access key ID '%s'"),
    "FunctionNotFound": (404, "function '%s' does not exist"),
    "AliasNotFound": (404, "alias '%s' does not exist"),
    "ResourceExhausted": (429, "Concurrency limit exceeded"),  # too many concurrent invocations
    "InternalServerError": (500, "An internal server error occurred"),
    "ResourceThrottled": (503, "Reserve resource exhausted"),
}
_FAULT_CODES = {429: "ResourceExhausted", 500: "InternalServerError", 503: "ResourceThrottled"}


class FcError(Exception):
    def __init__(self, code: str, detail: str = "", status: int | None = None, message: str | None = None) -> None:
        known_status, template = ERRORS.get(code, (400, "%s"))
        self.code = code
        self.status = status or known_status
        self.message = message or (template % detail if "%s" in template else template)
        super().__init__(f"{code}: {self.message}")


def new_request_id() -> str:
    return f"1-{int(time.time()):08x}-{secrets.token_hex(12)}"


def json_response(status: int, body: object, request_id: str,
                  extra: list[tuple[str, str]] | None = None) -> Response:
    return http.json_response(status, body, JSON_CONTENT_TYPE, [("x-fc-request-id", request_id), *(extra or [])])


def error_response(error: FcError, request_id: str | None = None) -> Response:
    rid = request_id or new_request_id()
    return json_response(error.status, {"Code": error.code, "Message": error.message, "RequestId": rid}, rid)


def service_error(status: int, request: Request, code: str | None = None, message: str | None = None) -> Response:
    """The answer for an injected fault of ``status`` (StandinServer's ``service_error`` hook); ``code`` and
    ``message`` when a fault rule gives them."""
    return error_response(FcError(code or _FAULT_CODES.get(status, "InternalServerError"), status=status,
                                  message=message))
