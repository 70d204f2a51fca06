"""The FC 3.0 API's rules, as pure functions: routes, invocation types, payload limits and FC's answers for a
request the gateway refused or a function that raised."""

from __future__ import annotations

import re
import traceback
from typing import Any
from urllib.parse import parse_qsl, unquote

from .. import acs3
from ..faults import Target
from ..http import Request
from .errors import FcError
from .state import Function

API_VERSION = "2023-03-30"
_ROUTE = re.compile(rf"^/{API_VERSION}/functions/([^/]+)(/invocations)?$")
SYNC_PAYLOAD_MAX = 32 * 1024 * 1024  # FC: 32 MB for a synchronous request body
ASYNC_PAYLOAD_MAX = 128 * 1024  # FC: 128 KB for an asynchronous one (the event is queued)
# The ACS3 verifier speaks the OCR gateway's codes; FC's own table names the signature and key failures.
_GATEWAY_TO_FC = {
    "IncompleteSignature": "SignatureNotMatch",
    "SignatureDoesNotMatch": "SignatureNotMatch",
    "InvalidAccessKeyId.NotFound": "InvalidAccessKeyID",
}


def gateway_error(err: acs3.GatewayError) -> FcError:
    """FC's answer for a request the ACS3 check refused. Signature and key failures take FC's codes; the
    gateway's precise token, clock and nonce codes (InvalidTimeStamp.Expired, ...) pass through as 403."""
    code = _GATEWAY_TO_FC.get(err.code)
    if code is not None:
        detail = err.message if err.code == "IncompleteSignature" else None  # says which header is missing
        return FcError(code, "(redacted)", message=detail)
    return FcError(err.code, status=403, message=err.message)


def route(request: Request) -> tuple[str, str, str]:
    """(operation, function name, qualifier) of an InvokeFunction (POST .../invocations) or GetFunction
    (GET /functions/{name}) request, or FcError."""
    m = _ROUTE.match(request.raw_path)
    op = {("POST", True): "InvokeFunction", ("GET", False): "GetFunction"}.get(
        (request.method, bool(m and m.group(2)))) if m else None
    if m is None or op is None:
        raise FcError("PathNotSupported", f"'{request.method} {request.raw_path}'")
    query = dict(parse_qsl(request.raw_query, keep_blank_values=True))
    return op, unquote(m.group(1)), query.get("qualifier") or "LATEST"


def fault_target(request: Request) -> Target:
    """What a request is, for fault rules: its operation and the function it names ("" when not routed)."""
    try:
        op, name, _qualifier = route(request)
    except FcError:
        return Target("")
    return Target(op, name)


RAM_ACTIONS = {"InvokeFunction": "fc:InvokeFunction", "GetFunction": "fc:GetFunction"}
ACCOUNT_ID = "local"  # the stand-in's account, in ARNs (rendered policies use '*' or a real uid)


def function_arn(name: str, region: str = "cn-hangzhou") -> str:
    """A function's RAM resource, as FC 3.0 names it: acs:fc:<region>:<account>:functions/<name>."""
    return f"acs:fc:{region}:{ACCOUNT_ID}:functions/{name}"


def function_info(fn: Function, region: str = "cn-hangzhou") -> dict[str, Any]:
    """GetFunction's answer: the fields of api-fc-2023-03-30 struct Function the stand-in knows."""
    return {"functionName": fn.name, "functionArn": function_arn(fn.name, region),
            "runtime": "python3.12", "handler": "permit_ocr.handler.handler", "timeout": fn.timeout,
            "memorySize": fn.memory, "environmentVariables": {}, "state": "Active"}


def invocation_type(request: Request) -> str:
    value = request.header("x-fc-invocation-type") or "Sync"
    if value not in ("Sync", "Async"):
        raise FcError("InvalidArgument", f"invalid x-fc-invocation-type {value!r}: Sync or Async")
    return value


def function_error_body(exc: BaseException) -> dict[str, Any]:
    """What FC returns (status 200, ``x-fc-error-type: UnhandledInvocationError``) when the handler raised."""
    return {"errorMessage": str(exc), "errorType": type(exc).__name__,
            "stackTrace": traceback.format_exception(exc)[-6:]}


def payload_limit(kind: str) -> int:
    return ASYNC_PAYLOAD_MAX if kind == "Async" else SYNC_PAYLOAD_MAX
