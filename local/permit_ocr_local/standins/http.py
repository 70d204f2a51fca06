"""A small threaded HTTP/1.1 server on 127.0.0.1 that hands each request to a service as plain data.

Services implement ``handle(Request) -> Response`` and never touch sockets, so protocol code (parse, verify,
serialize) stays testable without a network and state stays apart from both.
"""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import unquote

from .faults import Fault, FaultPlan, Target


@dataclass(frozen=True)
class Request:
    method: str
    raw_path: str  # as sent, still percent-encoded, without the query
    raw_query: str  # as sent, without the leading '?'
    headers: tuple[tuple[str, str], ...]  # original names and order
    body: bytes

    @property
    def path(self) -> str:
        """The percent-decoded path (signatures cover decoded keys)."""
        return unquote(self.raw_path)

    def header(self, name: str, default: str = "") -> str:
        low = name.lower()
        for k, v in self.headers:
            if k.lower() == low:
                return v
        return default

    def header_map(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for k, v in self.headers:
            out.setdefault(k.lower(), []).append(v)
        return out


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


def json_response(status: int, body: object, content_type: str, headers: list[tuple[str, str]]) -> Response:
    """A compact UTF-8 JSON body, as the Alibaba Cloud JSON APIs (OCR, FC) write theirs."""
    raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return Response(status, [("Content-Type", content_type), *headers], raw)


class Service(Protocol):
    name: str

    def handle(self, request: Request) -> Response: ...


class ErrorShape(Protocol):
    """A service's error answer for an injected fault: ``status`` with ``code``/``message`` when given, else
    the code the service uses for that status."""

    def __call__(self, status: int, request: Request, code: str | None = None,
                 message: str | None = None) -> Response: ...


Describe = Callable[[Request], Target]  # a service's routing: what (operation, key) a request is, for fault rules


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # keep-alive + Nagle costs ~40 ms per reused-connection call
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        return  # the stand-ins keep their own state; stderr noise helps nobody

    def _serve(self) -> None:
        raw_path, _, raw_query = self.path.partition("?")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        req = Request(self.command, raw_path, raw_query, tuple(self.headers.items()), body)
        plan, name = self.server.faults, self.server.service.name
        target = self.server.describe(req) if plan is not None and self.server.describe is not None else None
        fault = plan.draw(name, req, target) if plan is not None else None
        if fault is not None and not fault.at_answer and self._apply_fault(fault, req):
            return
        try:
            resp = self.server.service.handle(req)
        except Exception as exc:  # a stand-in bug must surface as a 500, not a hung client
            resp = Response(500, [("Content-Type", "text/plain")], f"stand-in error: {exc!r}".encode())
        if plan is not None and target is not None:  # before the answer leaves: the client acts on it at once
            plan.observe(name, target, resp.status)
        if fault is not None and fault.at_answer and self._apply_fault(fault, req):
            return
        self._send(resp, head=self.command == "HEAD")

    def _apply_fault(self, fault: Fault, req: Request) -> bool:
        """Apply an injected fault; True when the request is fully answered (or dropped)."""
        if fault.delay_s:
            time.sleep(fault.delay_s)
        if fault.drop:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return True
        if fault.status:
            answer = self.server.service_error(fault.status, req, fault.code, fault.message)
            self._send(answer, head=self.command == "HEAD")
            return True
        return False

    def _send(self, resp: Response, head: bool = False) -> None:
        self.send_response(resp.status)
        names = {k.lower() for k, _ in resp.headers}
        for k, v in resp.headers:
            self.send_header(k, v)
        if "content-length" not in names:
            self.send_header("Content-Length", str(len(resp.body)))
        self.end_headers()
        if not head and resp.body:
            self.wfile.write(resp.body)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _serve


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, service: Service, faults: FaultPlan | None, service_error: ErrorShape,
                 describe: Describe | None, port: int) -> None:
        self.service = service
        self.faults = faults
        self.service_error = service_error
        self.describe = describe
        super().__init__(("127.0.0.1", port), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up (a timeout, a dropped-connection fault) is normal here, as it is for a real
        service: no traceback on stderr. Anything else is still reported."""
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)


def _plain_error(status: int, request: Request, code: str | None = None, message: str | None = None) -> Response:
    text = " ".join(p for p in (f"injected fault {status}", code, message) if p)
    return Response(status, [("Content-Type", "text/plain")], text.encode())


class StandinServer:
    """Runs one service on 127.0.0.1 in a background thread; use as a context manager or start()/stop().
    ``service_error`` shapes injected error answers as the service would; ``describe`` (the service's routing)
    says what a request is, so fault rules can match it (without it only the plan's random rates apply)."""

    def __init__(self, service: Service, *, port: int = 0, faults: FaultPlan | None = None,
                 service_error: ErrorShape | None = None, describe: Describe | None = None) -> None:
        self._httpd = _Server(service, faults, service_error or _plain_error, describe, port)
        # a short poll interval: stop() waits up to one interval, and test suites stop many servers
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"standin-{service.name}", daemon=True)

    @property
    def faults(self) -> FaultPlan | None:
        """The fault plan asked on every request (None: no faults); may be swapped while serving."""
        return self._httpd.faults

    @faults.setter
    def faults(self, plan: FaultPlan | None) -> None:
        self._httpd.faults = plan

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def start(self) -> StandinServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> StandinServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
