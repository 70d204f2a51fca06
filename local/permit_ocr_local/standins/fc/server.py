"""The FC 3.0 InvokeFunction API on 127.0.0.1: ``POST /2023-03-30/functions/{name}/invocations[?qualifier=]``.

Order, as the cloud: gateway (ACS3 signature, credentials), route, the key's RAM policy (``fc:InvokeFunction``
on ``acs:fc:<region>:<account>:functions/<name>``: a role restricted to one function may invoke only that one),
function, qualifier, invocation type, payload limit. Sync runs the handler in this request and answers 200 with
its JSON (a function error is still 200, flagged by ``x-fc-error-type``); Async puts the event on the function's
async queue (the runtime's: s.yaml's retry policy and onFailure destination) and answers 202 with
``x-fc-request-id``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from .. import acs3, ram
from ..faults import FaultPlan
from ..http import Request, Response, StandinServer
from ..keyring import Keyring
from .errors import FcError, error_response, json_response, new_request_id, service_error
from .rules import (
    RAM_ACTIONS,
    fault_target,
    function_arn,
    function_error_body,
    function_info,
    gateway_error,
    invocation_type,
    payload_limit,
    route,
)
from .state import QUALIFIERS, FcState, Function, Invocation


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
                signer = acs3.verify(request.method, request.raw_path, request.raw_query, request.headers,
                                     request.body, self.keyring, now=self.clock(), nonces=self.nonces)
            except acs3.GatewayError as err:
                raise gateway_error(err) from None
            op, name, qualifier = route(request)
            policy = self.keyring.policy_for(signer.access_key_id)
            if policy is not None and not ram.allowed(policy, RAM_ACTIONS[op], function_arn(name)):
                raise FcError("AccessDenied", f"{RAM_ACTIONS[op]} on {function_arn(name)} is not allowed by the "
                              "caller's policy")
            fn = self.state.get(name)
            if fn is None:
                raise FcError("FunctionNotFound", name)
            if qualifier not in QUALIFIERS:
                raise FcError("AliasNotFound", qualifier)
            if op == "GetFunction":
                self.state.count("get")
                return json_response(200, function_info(fn), rid)
            kind = invocation_type(request)
            limit = payload_limit(kind)
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
        try:
            result = fn.run(event, rid)
        except Exception as exc:  # a function error is the function's answer, not the API's
            return json_response(200, function_error_body(exc), rid,
                                 [("x-fc-error-type", "UnhandledInvocationError")])
        return json_response(200, result, rid) if not isinstance(result, bytes | str) else Response(
            200, [("x-fc-request-id", rid)], result.encode() if isinstance(result, str) else result)


class FcServer(StandinServer):
    def __init__(self, service: FcService, *, port: int = 0, faults: FaultPlan | None = None) -> None:
        super().__init__(service, port=port, faults=faults, service_error=service_error, describe=fault_target)
        self.service = service

    @property
    def state(self) -> FcState:
        return self.service.state

    def wait_idle(self, timeout_s: float) -> bool:
        return self.state.wait_idle(timeout_s)

    def stop(self) -> None:
        super().stop()
        self.state.close()


def start_fc(keyring: Keyring, functions: list[Function], port: int = 0,
             faults: FaultPlan | None = None) -> FcServer:
    """Serve the FC API for ``functions`` on 127.0.0.1 (port 0: any free port)."""
    state = FcState()
    for fn in functions:
        state.deploy(fn)
    server = FcServer(FcService(keyring, state), port=port, faults=faults)
    server.start()
    return server
