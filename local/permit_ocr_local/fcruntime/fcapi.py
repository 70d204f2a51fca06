"""The FC API stand-in, fed with functions this runtime runs: each deployed function answers a Sync invocation
in the request (with the context FC would give it) and queues an Async one on its own ``AsyncInvoker`` (s.yaml's
retry policy, the onFailure destination). The stand-in (``permit_ocr_local.standins.fc``) only speaks the API."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from permit_ocr_local.standins.faults import FaultPlan
from permit_ocr_local.standins.fc.server import FcServer
from permit_ocr_local.standins.fc.server import start_fc as serve_fc
from permit_ocr_local.standins.fc.state import Function
from permit_ocr_local.standins.keyring import Keyring

from .context import FcContext, FunctionMeta
from .deployment import Deployment
from .invoker import AsyncInvoker, Handler

# name, event, request id, reason, invocations (first + retries): the onFailure destination of one function
FailureSink = Callable[[str, bytes, str, str, int], None]


def deployed(name: str, handler: Handler, deployment: Deployment, *, instances: int = 2,
             on_failure: FailureSink | None = None, backoff_s: float = 0.5) -> Function:
    """One function as the FC stand-in sees it: run once now, or queue with retries."""
    def failed(event: bytes, request_id: str, reason: str, invoke_count: int) -> None:
        if on_failure is not None:
            on_failure(name, event, request_id, reason, invoke_count)

    def run(event: bytes, request_id: str) -> Any:
        meta = FunctionMeta(name=name, timeout=deployment.timeout, memory=deployment.memory)
        return handler(event, FcContext(request_id=request_id, function=meta))

    invoker = AsyncInvoker(handler, deployment=deployment, instances=instances, on_failure=failed,
                           backoff_s=backoff_s)
    return Function(name, deployment.timeout, deployment.memory, run, invoker)


def start_fc(keyring: Keyring, functions: dict[str, tuple[Handler, Deployment]], port: int = 0,
             faults: FaultPlan | None = None, *, instances: int = 2, on_failure: FailureSink | None = None,
             backoff_s: float = 0.5) -> FcServer:
    """Deploy ``functions`` (name -> (handler, s.yaml deployment)) and serve the FC API on 127.0.0.1."""
    fns = [deployed(name, handler, d, instances=instances, on_failure=on_failure, backoff_s=backoff_s)
           for name, (handler, d) in functions.items()]
    return serve_fc(keyring, fns, port=port, faults=faults)
