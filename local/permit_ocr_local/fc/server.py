"""The FC 3.0 InvokeFunction API on 127.0.0.1: ``POST /2023-03-30/functions/{name}/invocations[?qualifier=]``.

Order, as the cloud: gateway (ACS3 signature, credentials), route, function, qualifier, invocation type,
payload limit. Sync runs the handler in this request and answers 200 with its JSON (a function error is still
200, flagged by ``x-fc-error-type``); Async puts the event on the function's AsyncInvoker (s.yaml's retry
policy and onFailure destination) and answers 202 with ``x-fc-request-id``.
"""

from __future__ import annotations

import re
import time
import traceback
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, unquote

from permit_ocr_local.common.faults import FaultPlan
from permit_ocr_local.common.http import Request, Response, StandinServer
from permit_ocr_local.common.keyring import Keyring
from permit_ocr_local.fcemu import FcContext, FunctionMeta
from permit_ocr_local.ocr import acs3
from permit_ocr_local.ocr.errors import OcrError
from permit_ocr_local.trigger import Deployment, Handler

from .errors import FcError, error_response, json_response, new_request_id, service_error
from .state import QUALIFIERS, FailureSink, FcState, Function, Invocation

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


def gateway_error(err: OcrError) -> FcError:
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


def function_info(fn: Function, region: str = "cn-hangzhou") -> dict[str, Any]:
    """GetFunction's answer: the fields of api-fc-2023-03-30 struct Function the stand-in knows."""
    d = fn.deployment
    return {"functionName": fn.name, "functionArn": f"acs:fc:{region}:local:functions/{fn.name}",
            "runtime": "python3.12", "handler": "permit_ocr.handler.handler", "timeout": d.timeout,
            "memorySize": d.memory, "environmentVariables": {}, "state": "Active"}


def invocation_type(request: Request) -> str:
    value = request.header("x-fc-invocation-type") or "Sync"
    if value not in ("Sync", "Async"):
        raise FcError("InvalidArgument", f"invalid x-fc-invocation-type {value!r}: Sync or Async")
    return value


def function_error_body(exc: BaseException) -> dict[str, Any]:
    """What FC returns (status 200, ``x-fc-error-type: UnhandledInvocationError``) when the handler raised."""
    return {"errorMessage": str(exc), "errorType": type(exc).__name__,
            "stackTrace": traceback.format_exception(exc)[-6:]}


class FcService:
    name = "fc"

    def __init__(self, keyring: Keyring, state: FcState, clock: Callable[[], float] = time.time) -> None:
        self.keyring = keyring
        self.state = state
        self.clock = clock
        self.nonces = acs3.NonceCache()

    def handle(self, request: Request) -> Response:
        rid = new_request_id()
        try:
            try:
                acs3.verify(request.method, request.raw_path, request.raw_query, request.headers, request.body,
                            self.keyring, now=self.clock(), nonces=self.nonces)
            except OcrError as err:
                raise gateway_error(err) from None
            op, name, qualifier = route(request)
            fn = self.state.get(name)
            if fn is None:
                raise FcError("FunctionNotFound", name)
            if qualifier not in QUALIFIERS:
                raise FcError("AliasNotFound", qualifier)
            if op == "GetFunction":
                self.state.count("get")
                return json_response(200, function_info(fn), rid)
            kind = invocation_type(request)
            limit = ASYNC_PAYLOAD_MAX if kind == "Async" else SYNC_PAYLOAD_MAX
            if len(request.body) > limit:
                raise FcError("EntityTooLarge", str(limit))
        except FcError as err:
            self.state.count(f"error:{err.code}")
            return error_response(err, rid)
        self.state.record(Invocation(rid, name, qualifier, kind, len(request.body), self.clock()))
        if kind == "Async":  # the function sees the request id the caller got: it finds the logs of the event
            fn.invoker.submit(request.body, request_id=rid)
            return Response(202, [("x-fc-request-id", rid), ("Content-Length", "0")])
        return self._sync(fn, request.body, rid)

    def _sync(self, fn: Function, event: bytes, rid: str) -> Response:
        d = fn.deployment
        context = FcContext(request_id=rid, function=FunctionMeta(name=fn.name, timeout=d.timeout, memory=d.memory))
        try:
            result = fn.handler(event, context)
        except Exception as exc:  # a function error is the function's answer, not the API's
            return json_response(200, function_error_body(exc), rid,
                                 [("x-fc-error-type", "UnhandledInvocationError")])
        return json_response(200, result, rid) if not isinstance(result, bytes | str) else Response(
            200, [("x-fc-request-id", rid)], result.encode() if isinstance(result, str) else result)


class FcServer(StandinServer):
    def __init__(self, service: FcService, *, port: int = 0, faults: FaultPlan | None = None) -> None:
        super().__init__(service, port=port, faults=faults, service_error=service_error)
        self.service = service

    @property
    def state(self) -> FcState:
        return self.service.state

    def wait_idle(self, timeout_s: float) -> bool:
        return self.state.wait_idle(timeout_s)

    def stop(self) -> None:
        super().stop()
        self.state.close()


def start_fc(keyring: Keyring, functions: dict[str, tuple[Handler, Deployment]], port: int = 0,
             faults: FaultPlan | None = None, *, instances: int = 2, on_failure: FailureSink | None = None,
             backoff_s: float = 0.5) -> FcServer:
    """Deploy ``functions`` (name -> (handler, s.yaml deployment)) and serve the FC API on 127.0.0.1."""
    state = FcState()
    for name, (handler, deployment) in functions.items():
        state.deploy(name, handler, deployment, instances=instances, on_failure=on_failure, backoff_s=backoff_s)
    server = FcServer(FcService(keyring, state), port=port, faults=faults)
    server.start()
    return server
