"""The FC API stand-in on its own, driven by the real alibabacloud-fc20230330 SDK over HTTP on 127.0.0.1:
InvokeFunction Sync and Async, GetFunction, and the gateway's and the API's refusals. The functions it serves
are plain callables here: running the real handler is the runtime's business (tests/fcruntime)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from alibabacloud_fc20230330 import models
from alibabacloud_fc20230330.client import Client
from alibabacloud_tea_openapi.utils_models import Config as ApiConfig
from alibabacloud_tea_util.models import RuntimeOptions

from permit_ocr_local.standins.fc import FcServer, start_fc
from permit_ocr_local.standins.fc.rules import ASYNC_PAYLOAD_MAX
from permit_ocr_local.standins.fc.state import Function
from permit_ocr_local.standins.keyring import Keyring

AK, SECRET = "LTAIfcstandintest", "fc-standin-secret"


@dataclass
class Queue:
    """Stands for the runtime's async queue: keeps what the API accepted."""

    events: list[tuple[bytes, str | None]] = field(default_factory=list)

    def submit(self, event: bytes, request_id: str | None = None) -> str:
        self.events.append((event, request_id))
        return request_id or ""

    def wait_idle(self, timeout_s: float) -> bool:
        return True

    def close(self) -> None:
        pass


def echo(event: bytes, request_id: str) -> Any:
    doc = json.loads(event)
    if doc.get("raise"):
        raise ValueError("the function failed")
    return {"echo": doc, "requestId": request_id}


@pytest.fixture
def served() -> Iterator[tuple[FcServer, Queue]]:
    keyring = Keyring()
    keyring.add(AK, SECRET)
    queue = Queue()
    server = start_fc(keyring, [Function("permit-ocr", 120, 512, echo, queue)])
    try:
        yield server, queue
    finally:
        server.stop()


def client(server: FcServer, secret: str = SECRET) -> Client:
    return Client(ApiConfig(access_key_id=AK, access_key_secret=secret, endpoint=server.host, protocol="http",
                            read_timeout=10_000, connect_timeout=5_000))


def invoke(c: Client, body: bytes, kind: str = "Sync", name: str = "permit-ocr",
           qualifier: str | None = None) -> Any:
    return c.invoke_function_with_options(
        name, models.InvokeFunctionRequest(body=io.BytesIO(body), qualifier=qualifier),
        models.InvokeFunctionHeaders(x_fc_invocation_type=kind), RuntimeOptions())


def test_sync_invocation_answers_with_the_functions_json_and_its_request_id(served: tuple[FcServer, Queue]) -> None:
    server, _ = served
    r = invoke(client(server), b'{"a": 1}')
    rid = r.headers["x-fc-request-id"]
    assert r.status_code == 200 and "x-fc-error-type" not in r.headers
    assert json.loads(r.body.read()) == {"echo": {"a": 1}, "requestId": rid}
    assert [i.kind for i in server.state.invocations] == ["Sync"]


def test_a_function_that_raises_is_still_200_flagged_as_unhandled(served: tuple[FcServer, Queue]) -> None:
    server, _ = served
    r = invoke(client(server), b'{"raise": true}')
    body = json.loads(r.body.read())
    assert r.status_code == 200 and r.headers["x-fc-error-type"] == "UnhandledInvocationError"
    assert (body["errorType"], body["errorMessage"]) == ("ValueError", "the function failed")


def test_async_invocation_is_queued_with_the_request_id_the_caller_got(served: tuple[FcServer, Queue]) -> None:
    server, queue = served
    r = invoke(client(server), b'{"events": []}', kind="Async")
    assert r.status_code == 202
    assert queue.events == [(b'{"events": []}', r.headers["x-fc-request-id"])]
    assert server.state.async_events("permit-ocr") == 1


def test_an_async_payload_over_128_kb_is_refused_and_never_queued(served: tuple[FcServer, Queue]) -> None:
    server, queue = served
    with pytest.raises(Exception) as info:
        invoke(client(server), b"x" * (ASYNC_PAYLOAD_MAX + 1), kind="Async")
    assert (getattr(info.value, "code", None), getattr(info.value, "status_code", None)) == ("EntityTooLarge", 400)
    assert queue.events == [] and server.state.stats["error:EntityTooLarge"] == 1


@pytest.mark.parametrize(("name", "qualifier", "code"), [("other", None, "FunctionNotFound"),
                                                         ("permit-ocr", "prod", "AliasNotFound")])
def test_unknown_functions_and_qualifiers_are_404(served: tuple[FcServer, Queue], name: str,
                                                  qualifier: str | None, code: str) -> None:
    server, _ = served
    with pytest.raises(Exception) as info:
        invoke(client(server), b"{}", name=name, qualifier=qualifier)
    assert (getattr(info.value, "code", None), getattr(info.value, "status_code", None)) == (code, 404)


def test_a_wrong_secret_is_refused_by_the_gateway_before_the_function(served: tuple[FcServer, Queue]) -> None:
    server, queue = served
    with pytest.raises(Exception) as info:
        invoke(client(server, secret="not-the-secret"), b"{}", kind="Async")
    assert (getattr(info.value, "code", None), getattr(info.value, "status_code", None)) == ("SignatureNotMatch", 403)
    assert queue.events == [] and server.state.invocations == []


def test_get_function_reports_what_was_deployed(served: tuple[FcServer, Queue]) -> None:
    server, _ = served
    r = client(server).get_function("permit-ocr", models.GetFunctionRequest())
    assert (r.body.function_name, r.body.timeout, r.body.memory_size) == ("permit-ocr", 120, 512)
