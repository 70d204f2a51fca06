"""The OCR API stand-in's HTTP layer: RecognizeExitEntryPermitToMainland over the real wire protocol.

Order of checks, as the cloud: gateway (signature, credentials, action, version), parameters, image fetch,
image limits (``rules``), then recognition (``backends``). Every answer is either the success shape or the
§9.3 error shape (``errors``); what was asked and billed is kept in ``state``.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from .. import acs3
from ..faults import FaultPlan
from ..http import Request, Response, StandinServer
from ..keyring import Keyring
from .backends import Backend, RecognitionError, make_backend
from .errors import OcrError, error_response, json_response, new_request_id, service_error
from .fetch import fetch
from .rules import check_action, check_image, fault_target, image_source, parse_bool
from .state import OcrCall, OcrState


class OcrService:
    """The OCR API behind the gateway; ``state`` keeps the answers and the billing ledger."""

    name = "ocr"

    def __init__(self, keyring: Keyring, backend: Backend, fetch_timeout_s: float = 5.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.keyring = keyring
        self.backend = backend
        self.fetch_timeout_s = fetch_timeout_s
        self.clock = clock
        self.nonces = acs3.NonceCache()
        self.state = OcrState()

    @property
    def stats(self) -> Counter[str]:
        return self.state.stats

    @property
    def calls(self) -> list[OcrCall]:
        return self.state.calls

    def reset(self) -> None:
        self.state.reset()

    def billed_by_image(self) -> Counter[str]:
        return self.state.billed_by_image()

    def handle(self, request: Request) -> Response:
        rid = new_request_id()
        try:
            body = self._recognize(request, rid)
        except OcrError as err:
            self.state.count("calls", err.code)
            return error_response(err, request, rid)
        self.state.count("calls", "billed")
        return json_response(200, body, rid)

    def _recognize(self, request: Request, rid: str) -> dict[str, str]:
        try:
            acs3.verify(request.method, request.raw_path, request.raw_query, request.headers, request.body,
                        self.keyring, now=self.clock(), nonces=self.nonces)
        except acs3.GatewayError as refused:
            raise OcrError(refused.code, refused.message) from None
        check_action(request.method, request.raw_path, request.header("x-acs-action"),
                     request.header("x-acs-version"))
        query = dict(parse_qsl(request.raw_query, keep_blank_values=True))
        output_figure = parse_bool(query.get("OutputFigure") or "false")
        url = query.get("Url") or ""
        source = image_source(url, request.body)
        image = fetch(url, self.fetch_timeout_s) if source == "url" else request.body
        call = OcrCall(rid, source, hashlib.sha256(image).hexdigest(), 0)
        try:
            check_image(image)
            data = self.backend.recognize(image, output_figure)
        except RecognitionError as exc:
            err = OcrError(exc.code, exc.message)
            self.state.record(call._replace(status=err.status))
            raise err from None
        except OcrError as err:
            self.state.record(call._replace(status=err.status))
            raise
        self.state.record(call._replace(status=200))
        return {"RequestId": rid, "Data": json.dumps(data, ensure_ascii=False, separators=(",", ":"))}


class OcrStandin(StandinServer):
    """A StandinServer that keeps its OcrService at hand for assertions."""

    def __init__(self, service: OcrService, *, port: int = 0, faults: FaultPlan | None = None) -> None:
        super().__init__(service, port=port, faults=faults, service_error=service_error, describe=fault_target)
        self.service = service


def start_ocr(keyring: Keyring, backend: Backend | str, port: int = 0, faults: FaultPlan | None = None,
              **options: Any) -> OcrStandin:
    """Serve the OCR stand-in on 127.0.0.1 (port 0: any free port); ``options`` go to OcrService."""
    chosen = make_backend(backend) if isinstance(backend, str) else backend
    server = OcrStandin(OcrService(keyring, chosen, **options), port=port, faults=faults)
    server.start()
    return server
