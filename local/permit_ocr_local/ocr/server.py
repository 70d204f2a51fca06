"""The OCR API stand-in: RecognizeExitEntryPermitToMainland over the real wire protocol.

Order of checks, as the cloud: gateway (signature, credentials, action, version), parameters, image fetch,
image limits, then recognition. Every answer is either the success shape or the §9.3 error shape.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from typing import Any, NamedTuple
from urllib.parse import parse_qsl

from permit_ocr_local.common.faults import FaultPlan
from permit_ocr_local.common.http import Request, Response, StandinServer
from permit_ocr_local.common.keyring import Keyring

from . import acs3
from .backends import Backend, RecognitionError, make_backend
from .errors import OcrError, error_response, json_response, new_request_id, service_error
from .imageinfo import dimensions, sniff_format

ACTION = "RecognizeExitEntryPermitToMainland"
VERSION = "2021-07-07"
MAX_IMAGE_BYTES = 10 * 1024 * 1024
MAX_URL_CHARS = 2048
MIN_SIDE, MAX_SIDE, MAX_ASPECT = 15, 8192, 50  # each side > 15 and < 8192, ratio < 50 (§13)


class OcrCall(NamedTuple):
    """One request that got as far as having image bytes."""

    request_id: str
    source: str  # "url" | "body"
    sha256: str
    status: int


def parse_bool(value: str) -> bool:
    """The SDK sends str(bool) ('True'/'False'); other clients send lower case."""
    low = value.lower()
    if low not in ("true", "false"):
        raise OcrError("InvalidParameter", f"The parameter OutputFigure is invalid: {value!r}.")
    return low == "true"


def check_image(image: bytes) -> None:
    """Raise the API's answer for an image outside the documented limits."""
    if len(image) > MAX_IMAGE_BYTES:
        raise OcrError("exceededImageContent")
    size = dimensions(image) if sniff_format(image) else None
    if size is None:  # unknown magic, or a header that does not parse (a decode failure is 415 too)
        raise OcrError("unsupportedImageFormat")
    w, h = size
    if not all(MIN_SIDE < side < MAX_SIDE for side in size) or max(w, h) / min(w, h) >= MAX_ASPECT:
        raise OcrError("illegalImageSize")


# built once: build_opener makes a TLS context each time (~76 ms of CPU); never via an environment proxy
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def fetch(url: str, timeout_s: float) -> bytes:
    """GET the image as the service would: failures are IllegalImageUrl, a timeout is imageTimeOut."""
    if not url.lower().startswith(("http://", "https://")):
        raise OcrError("IllegalImageUrl")
    try:
        with _OPENER.open(url, timeout=timeout_s) as resp:
            data: bytes = resp.read(MAX_IMAGE_BYTES + 1)  # one byte over is enough to refuse
            return data
    except TimeoutError:  # socket.timeout is an alias since 3.10
        raise OcrError("imageTimeOut") from None
    except urllib.error.URLError as exc:  # HTTPError included: an expired or tampered presigned URL is 403
        if isinstance(getattr(exc, "reason", None), TimeoutError):
            raise OcrError("imageTimeOut") from None
        raise OcrError("IllegalImageUrl") from None
    except (OSError, ValueError):
        raise OcrError("IllegalImageUrl") from None


class OcrService:
    """State for assertions. ``stats["calls"]``: every request answered (injected faults never get here);
    ``stats[<code>]``: each error code; ``calls``: every request that carried image bytes, with its status.

    Billing follows the cloud, which bills successful recognitions only: ``stats["billed"]`` and the ``calls``
    entries with status 200. Recognizer refusals (unmatchedImageType, ...) are not billed, only counted.
    """

    name = "ocr"

    def __init__(self, keyring: Keyring, backend: Backend, fetch_timeout_s: float = 5.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.keyring = keyring
        self.backend = backend
        self.fetch_timeout_s = fetch_timeout_s
        self.clock = clock
        self.nonces = acs3.NonceCache()
        self.stats: Counter[str] = Counter()
        self.calls: list[OcrCall] = []
        self._lock = threading.Lock()

    def handle(self, request: Request) -> Response:
        rid = new_request_id()
        try:
            body = self._recognize(request, rid)
        except OcrError as err:
            self._count("calls", err.code)
            return error_response(err, request, rid)
        self._count("calls", "billed")
        return json_response(200, body, rid)

    def reset(self) -> None:
        with self._lock:
            self.stats.clear()
            self.calls.clear()

    def billed_by_image(self) -> Counter[str]:
        """sha256 -> successful recognitions, to assert that no image was billed twice."""
        with self._lock:
            return Counter(c.sha256 for c in self.calls if c.status == 200)

    def _count(self, *keys: str) -> None:
        with self._lock:
            self.stats.update(keys)

    def _recognize(self, request: Request, rid: str) -> dict[str, str]:
        acs3.verify(request.method, request.raw_path, request.raw_query, request.headers, request.body,
                    self.keyring, now=self.clock(), nonces=self.nonces)
        check_route(request)
        query = dict(parse_qsl(request.raw_query, keep_blank_values=True))
        output_figure = parse_bool(query.get("OutputFigure") or "false")
        image, source = self._image(query.get("Url") or "", request.body)
        call = OcrCall(rid, source, hashlib.sha256(image).hexdigest(), 0)
        try:
            check_image(image)
            data = self.backend.recognize(image, output_figure)
        except RecognitionError as exc:
            err = OcrError(exc.code, exc.message)
            self._record(call._replace(status=err.status))
            raise err from None
        except OcrError as err:
            self._record(call._replace(status=err.status))
            raise
        self._record(call._replace(status=200))
        return {"RequestId": rid, "Data": json.dumps(data, ensure_ascii=False, separators=(",", ":"))}

    def _image(self, url: str, body: bytes) -> tuple[bytes, str]:
        if bool(url) == bool(body):  # the doc: exactly one of them, never both, never neither
            message = "Specify the image URL or the body, not both." if url else None
            raise OcrError("imageUrlOrBodyEmpty", message)
        if not url:
            return body, "body"
        if len(url) > MAX_URL_CHARS:
            raise OcrError("exceededImageUrlLength")
        return fetch(url, self.fetch_timeout_s), "url"

    def _record(self, call: OcrCall) -> None:
        with self._lock:
            self.calls.append(call)


def check_route(request: Request) -> None:
    if request.method != "POST" or request.raw_path != "/" or request.header("x-acs-action") != ACTION:
        raise OcrError("InvalidAction.NotFound")
    if request.header("x-acs-version") != VERSION:
        raise OcrError("InvalidVersion")


class OcrStandin(StandinServer):
    """A StandinServer that keeps its OcrService at hand for assertions."""

    def __init__(self, service: OcrService, *, port: int = 0, faults: FaultPlan | None = None) -> None:
        super().__init__(service, port=port, faults=faults, service_error=service_error)
        self.service = service


def start_ocr(keyring: Keyring, backend: Backend | str, port: int = 0, faults: FaultPlan | None = None,
              **options: Any) -> OcrStandin:
    """Serve the OCR stand-in on 127.0.0.1 (port 0: any free port); ``options`` go to OcrService."""
    chosen = make_backend(backend) if isinstance(backend, str) else backend
    server = OcrStandin(OcrService(keyring, chosen, **options), port=port, faults=faults)
    server.start()
    return server
