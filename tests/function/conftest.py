"""Fixtures for unit tests of function/ steps that talk to OSS: the step's own Storage adapter (the real OSS
SDK) against the stack's OSS stand-in, and two ways to make that stand-in misbehave on the wire: a seeded
fault plan, and a rewrite of its answers after it served the request (a lost answer, a 416)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from permit_ocr.config import Config, load_config
from permit_ocr.credentials import resolve
from permit_ocr.storage import Storage
from permit_ocr_local.fcruntime.stack import LocalStack
from permit_ocr_local.standins.faults import FaultPlan
from permit_ocr_local.standins.http import Request, Response
from support import Gate

Rewrite = Callable[[Request, Response], Response]
LoseAnswers = Callable[[Callable[[Request], bool], int], None]


@pytest.fixture
def cfg(env: dict[str, str]) -> Config:
    return load_config(env)


@pytest.fixture
def storage(cfg: Config, env: dict[str, str]) -> Storage:
    return Storage(cfg, lambda: resolve(env))


@pytest.fixture
def attach_faults(stack: LocalStack) -> Iterator[Callable[..., FaultPlan]]:
    """``attach_faults("oss" | "ocr" | "mns", plan=None)``: a fault plan on that stand-in's HTTP layer (set rates
    on it with ``plan.set(service, ...)``); detached after the test."""
    attached: list[Any] = []

    def attach(service: str, plan: FaultPlan | None = None) -> FaultPlan:
        server = getattr(stack, service)
        server._httpd.faults = plan = plan or FaultPlan(seed=11)
        attached.append(server)
        return plan

    yield attach
    for server in attached:
        server._httpd.faults = None


@pytest.fixture
def oss_faults(attach_faults: Callable[..., FaultPlan]) -> FaultPlan:
    return attach_faults("oss")


@pytest.fixture
def no_oss_pauses(monkeypatch: pytest.MonkeyPatch) -> None:
    """OSS retries without their backoff pauses: the attempts are what a test counts, not the waiting."""
    monkeypatch.setattr("permit_ocr.storage.time.sleep", lambda s: None)


class _Rewriting:
    """The OSS service, with a hook that sees every request and the answer the stand-in gave it."""

    name = "oss"

    def __init__(self, inner: object, rewrite: Rewrite) -> None:
        self.inner = inner
        self.rewrite = rewrite

    def handle(self, request: Request) -> Response:
        return self.rewrite(request, self.inner.handle(request))  # type: ignore[attr-defined]


@pytest.fixture
def oss_wire(stack: LocalStack) -> Iterator[Callable[[Rewrite], None]]:
    """``oss_wire(rewrite)``: the OSS stand-in serves each request as always (state changes happen), then
    ``rewrite(request, answer)`` decides what goes back on the wire."""
    assert stack.oss is not None
    httpd = stack.oss._httpd
    original = httpd.service

    def install(rewrite: Rewrite) -> None:
        httpd.service = _Rewriting(original, rewrite)

    yield install
    httpd.service = original


@pytest.fixture
def lose_oss_answers(stack: LocalStack, oss_wire: Callable[[Rewrite], None]) -> LoseAnswers:
    """``lose_oss_answers(when, times)``: the first ``times`` requests ``when`` accepts take effect, but their
    answers are lost: the client sees a 503 in OSS's error shape (the connection broke after OSS acted)."""
    assert stack.oss is not None
    service_error = stack.oss._httpd.service_error

    def install(when: Callable[[Request], bool], times: int = 1) -> None:
        left = [times]

        def rewrite(request: Request, answer: Response) -> Response:
            if left[0] > 0 and when(request):
                left[0] -= 1
                return service_error(503, request)
            return answer

        oss_wire(rewrite)

    return install


@pytest.fixture
def gate(stack: LocalStack) -> Iterator[Gate]:
    """The OCR stand-in's recognizer behind a gate: ``support.hold`` makes calls for chosen bytes wait."""
    assert stack.ocr is not None
    g = Gate(stack.ocr.service.backend)
    stack.ocr.service.backend = g
    yield g
    for ev in g.hold.values():
        ev.set()
