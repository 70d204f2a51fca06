"""The OCR stand-in driven through the real SDK over HTTP on 127.0.0.1 (no mocks of the SDK)."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import io
import json
import re
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote, urlencode

import pytest
import requests
from alibabacloud_ocr_api20210707 import models
from alibabacloud_ocr_api20210707.client import Client
from alibabacloud_tea_openapi.models import Config
from alibabacloud_tea_util.models import RuntimeOptions
from PIL import Image
from Tea.exceptions import TeaException

from permit_ocr_local.standins.faults import FaultPlan
from permit_ocr_local.standins.http import Request
from permit_ocr_local.standins.keyring import Keyring
from permit_ocr_local.standins.ocr.backends import EngineBackend, RecognitionError, TruthBackend, make_backend
from permit_ocr_local.standins.ocr.errors import service_error
from permit_ocr_local.standins.ocr.imageinfo import dimensions, sniff_format
from permit_ocr_local.standins.ocr.server import OcrStandin, start_ocr
from permit_ocr_local.standins.ocr.truthmark import embed_truth

# The Data string of the API document's sample response (928x626, OutputFigure on)
SAMPLE_DATA = (
    '{"data":{"permitType":"港澳居民来往内地通行证","nameCn":"何郑","nameEn":"HE,CHENG","birthDate":"2000.01.01","sex"'
    ':"男","validPeriod":"2014.04.10-2019.04.09","issueAuthority":"公安部出入境管理局","issuePlace":"","permitNumbe'
    'r":"H10387877","issueCount":"01"},"figure":[{"type":"face","x":80,"y":164,"w":192,"h":273,"box":{"x"'
    ':175,"y":300,"w":187,"h":269,"angle":0},"points":[{"x":80,"y":166},{"x":268,"y":164},{"x":270,"y":43'
    '3},{"x":82,"y":435}]}],"ftype":0,"height":626,"orgHeight":626,"orgWidth":928,"prism_keyValueInfo":[{'
    '"key":"permitType","keyProb":100,"value":"港澳居民来往内地通行证","valuePos":[{"x":680,"y":41},{"x":681,"y":83}'
    ',{"x":177,"y":86},{"x":176,"y":44}],"valueProb":100},{"key":"nameCn","keyProb":100,"value":"何郑","val'
    'uePos":[{"x":346,"y":119},{"x":346,"y":153},{"x":269,"y":153},{"x":269,"y":119}],"valueProb":100},{"'
    'key":"nameEn","keyProb":100,"value":"HE,CHENG","valuePos":[{"x":452,"y":166},{"x":452,"y":195},{"x":'
    '270,"y":195},{"x":270,"y":166}],"valueProb":100},{"key":"birthDate","keyProb":100,"value":"2000.01.0'
    '1","valuePos":[{"x":273,"y":226},{"x":414,"y":226},{"x":414,"y":254},{"x":273,"y":254}],"valueProb":'
    '100},{"key":"sex","keyProb":100,"value":"男","valuePos":[{"x":594,"y":234},{"x":594,"y":268},{"x":562'
    ',"y":268},{"x":562,"y":234}],"valueProb":100},{"key":"validPeriod","keyProb":100,"value":"2014.04.10'
    '-2019.04.09","valuePos":[{"x":700,"y":295},{"x":700,"y":323},{"x":267,"y":324},{"x":267,"y":296}],"v'
    'alueProb":100},{"key":"issueAuthority","keyProb":100,"value":"公安部出入境管理局","valuePos":[{"x":264,"y":38'
    '6},{"x":265,"y":353},{"x":536,"y":357},{"x":536,"y":390}],"valueProb":100},{"key":"issuePlace","keyP'
    'rob":100,"value":"","valueProb":100},{"key":"permitNumber","keyProb":100,"value":"H10387877","valueP'
    'os":[{"x":489,"y":424},{"x":489,"y":457},{"x":268,"y":457},{"x":268,"y":424}],"valueProb":100},{"key'
    '":"issueCount","keyProb":100,"value":"01","valuePos":[{"x":601,"y":425},{"x":601,"y":456},{"x":555,"'
    'y":456},{"x":555,"y":425}],"valueProb":100}],"sliceRect":{"x0":46,"y0":30,"x1":887,"y1":38,"x2":892,'
    '"y2":564,"x3":39,"y3":567},"width":928}'
)
SAMPLE = json.loads(SAMPLE_DATA)
TRUTH = {"permitType": "港澳居民来往内地通行证", "nameCn": "何郑", "nameEn": "HE,CHENG", "birthDate": "2000.01.01",
         "sex": "男", "validPeriod": "2014.04.10-2019.04.09", "issueAuthority": "公安部出入境管理局",
         "issuePlace": "", "permitNumber": "H10387877", "issueCount": "01"}
AK, SECRET = "LTAI_TEST_AK", "TEST_SECRET_123"
STS_AK, STS_SECRET, STS_TOKEN = "STS.AKID", "STS_SECRET", "SECTOKEN==abc/+"


def image(size: tuple[int, int] = (928, 626), truth: dict[str, Any] | None = TRUTH, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (235, 225, 210)).save(buf, fmt)
    return embed_truth(buf.getvalue(), truth) if truth is not None else buf.getvalue()


@pytest.fixture(scope="module")
def keyring() -> Keyring:
    kr = Keyring()
    kr.add(AK, SECRET)
    kr.add(STS_AK, STS_SECRET, STS_TOKEN, expires_at=time.time() + 3600)
    return kr


@pytest.fixture(scope="module")
def faults() -> FaultPlan:
    return FaultPlan(seed=1)


@pytest.fixture(scope="module")
def ocr_server(keyring: Keyring, faults: FaultPlan) -> Iterator[OcrStandin]:
    server = start_ocr(keyring, TruthBackend(), faults=faults, fetch_timeout_s=0.5)
    yield server
    server.stop()


@pytest.fixture
def ocr(ocr_server: OcrStandin, faults: FaultPlan) -> OcrStandin:
    """One server per module (stopping one takes 0.5 s); state and fault rates reset per test."""
    ocr_server.service.reset()
    faults.rates.clear()
    faults.injected.clear()
    return ocr_server


def sdk(server: OcrStandin, ak: str = AK, secret: str = SECRET, token: str | None = None) -> Client:
    return Client(Config(endpoint=server.host, protocol="http", access_key_id=ak, access_key_secret=secret,
                         security_token=token))


def call(client: Client, body: bytes | None = None, url: str | None = None,
         figure: bool | None = None) -> dict[str, Any]:
    req = models.RecognizeExitEntryPermitToMainlandRequest(body=body, url=url, output_figure=figure)
    resp = client.recognize_exit_entry_permit_to_mainland_with_options(req, RuntimeOptions())
    assert resp.status_code == 200 and re.fullmatch(r"[0-9A-F-]{36}", resp.body.request_id)
    data: dict[str, Any] = json.loads(resp.body.data)
    return data


def failure(fn: Callable[[], object]) -> TeaException:
    with pytest.raises(TeaException) as info:
        fn()
    return info.value


def status_of(err: TeaException) -> int:
    return int(err.data["statusCode"])


class ImageHost:
    """A tiny HTTP server the stand-in fetches ``Url`` from: path -> (status, body, delay)."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, bytes, float]] = {}
        routes = self.routes

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, body, delay = routes.get(self.path, (404, b"no such key", 0.0))
                time.sleep(delay)
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the stand-in gave up
                    self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"


@pytest.fixture(scope="module")
def host() -> Iterator[ImageHost]:
    h = ImageHost()
    yield h
    h.httpd.shutdown()
    h.httpd.server_close()


# --- success -----------------------------------------------------------------------------------------------

def test_body_success(ocr: OcrStandin) -> None:
    img = image()
    data = call(sdk(ocr), body=img)
    assert data["data"] == TRUTH
    assert "figure" not in data
    assert [data[k] for k in ("width", "height", "orgWidth", "orgHeight", "ftype")] == [928, 626, 928, 626, 0]
    assert [kv["key"] for kv in data["prism_keyValueInfo"]] == list(TRUTH)
    assert ocr.service.stats["billed"] == 1 and ocr.service.stats["calls"] == 1
    (rec,) = ocr.service.calls
    assert (rec.source, rec.sha256, rec.status) == ("body", hashlib.sha256(img).hexdigest(), 200)


def test_url_success(ocr: OcrStandin, host: ImageHost) -> None:
    host.routes["/bucket/permit.jpg?Expires=1&Signature=x"] = (200, image(fmt="JPEG"), 0.0)
    data = call(sdk(ocr), url=host.url("/bucket/permit.jpg?Expires=1&Signature=x"))
    assert data["data"] == TRUTH
    assert [c.source for c in ocr.service.calls] == ["url"]


def test_sample_response_round_trips(ocr: OcrStandin) -> None:
    """On the sample's 928x626 the whole Data equals the API document's sample, byte for byte."""
    req = models.RecognizeExitEntryPermitToMainlandRequest(body=image(truth=SAMPLE["data"]), output_figure=True)
    resp = sdk(ocr).recognize_exit_entry_permit_to_mainland_with_options(req, RuntimeOptions())
    assert resp.body.data == SAMPLE_DATA
    assert json.loads(resp.body.data)["data"] == SAMPLE["data"]


def test_output_figure_scales_with_the_image(ocr: OcrStandin) -> None:
    data = call(sdk(ocr), body=image(size=(1856, 1252)), figure=True)
    (face,) = data["figure"]
    assert (face["type"], face["x"], face["w"], face["box"]["angle"]) == ("face", 160, 384, 0)
    assert data["prism_keyValueInfo"][1]["valuePos"][0] == {"x": 692, "y": 238}
    assert "figure" not in call(sdk(ocr), body=image(), figure=False)


def test_truth_overrides_probabilities_and_ftype(ocr: OcrStandin) -> None:
    data = call(sdk(ocr), body=image(truth={**TRUTH, "valueProb": {"nameEn": 62}, "ftype": 1}))
    probs = {kv["key"]: kv["valueProb"] for kv in data["prism_keyValueInfo"]}
    assert probs["nameEn"] == 62 and probs["nameCn"] == 100 and data["ftype"] == 1


def test_sts_triple(ocr: OcrStandin) -> None:
    assert call(sdk(ocr, STS_AK, STS_SECRET, STS_TOKEN), body=image())["data"] == TRUTH
    err = failure(lambda: call(sdk(ocr, STS_AK, STS_SECRET, "WRONG"), body=image()))
    assert (err.code, status_of(err)) == ("invalidStsToken", 400)


def test_concurrent_calls_are_each_billed_once(ocr: OcrStandin) -> None:
    imgs = [image(truth={**TRUTH, "nameCn": f"人{i}"}) for i in range(8)]
    with ThreadPoolExecutor(4) as pool:
        names = list(pool.map(lambda b: call(sdk(ocr), body=b)["data"]["nameCn"], imgs))
    assert names == [f"人{i}" for i in range(8)]
    assert ocr.service.billed_by_image() == {hashlib.sha256(b).hexdigest(): 1 for b in imgs}


# --- gateway errors ----------------------------------------------------------------------------------------

def test_wrong_secret(ocr: OcrStandin) -> None:
    err = failure(lambda: call(sdk(ocr, secret="nope"), body=image()))
    assert (err.code, status_of(err)) == ("SignatureDoesNotMatch", 400)
    assert set(err.data) == {"RequestId", "HostId", "Code", "Message", "Recommend", "statusCode"}
    assert ocr.service.stats["billed"] == 0 and not ocr.service.calls


def test_unknown_access_key(ocr: OcrStandin) -> None:
    err = failure(lambda: call(sdk(ocr, ak="LTAI_NOBODY"), body=image()))
    assert (err.code, status_of(err)) == ("InvalidAccessKeyId.NotFound", 404)


def signed_raw(ocr: OcrStandin, body: bytes, query: dict[str, str] | None = None, *,
               action: str = "RecognizeExitEntryPermitToMainland", version: str = "2021-07-07") -> requests.Request:
    """A request signed by hand per §5.1 (so tests can alter it after signing)."""
    q = query or {}
    h = {"host": ocr.host, "x-acs-version": version, "x-acs-action": action,
         "x-acs-date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
         "x-acs-signature-nonce": hashlib.md5(str(time.time_ns()).encode()).hexdigest(),
         "content-type": "application/octet-stream", "x-acs-content-sha256": hashlib.sha256(body).hexdigest()}
    names = sorted(h)
    creq = "\n".join(["POST", "/", "&".join(f"{k}={quote(q[k], safe='~')}" for k in sorted(q)),
                      "".join(f"{n}:{h[n]}\n" for n in names), ";".join(names), h["x-acs-content-sha256"]])
    sts = "ACS3-HMAC-SHA256\n" + hashlib.sha256(creq.encode()).hexdigest()
    sig = hmac.new(SECRET.encode(), sts.encode(), hashlib.sha256).hexdigest()
    h["Authorization"] = f"ACS3-HMAC-SHA256 Credential={AK},SignedHeaders={';'.join(names)},Signature={sig}"
    return requests.Request("POST", f"{ocr.url}/?{urlencode(q)}" if q else f"{ocr.url}/", headers=h, data=body)


def send(req: requests.Request) -> requests.Response:
    with requests.Session() as s:
        return s.send(req.prepare(), timeout=10)


def test_raw_signed_request_then_tampered_body(ocr: OcrStandin) -> None:
    img = image()
    assert send(signed_raw(ocr, img, {"OutputFigure": "true"})).status_code == 200  # the hand signer is right
    req = signed_raw(ocr, img)
    req.data = img[:-1] + bytes([img[-1] ^ 1])
    resp = send(req)
    assert resp.status_code == 400 and resp.headers["Content-Type"] == "application/json;charset=utf-8"
    body = resp.json()
    assert list(body) == ["RequestId", "HostId", "Code", "Message", "Recommend"]
    assert body["Code"] == "SignatureDoesNotMatch" and body["HostId"] == ocr.host
    assert body["RequestId"] in body["Recommend"]


def test_replayed_request_is_refused(ocr: OcrStandin) -> None:
    req = signed_raw(ocr, image())
    assert send(req).status_code == 200
    resp = send(req)
    assert (resp.status_code, resp.json()["Code"]) == (400, "SignatureNonceUsed")
    assert ocr.service.stats["billed"] == 1


@pytest.mark.parametrize(("action", "version", "code", "status"), [
    ("RecognizeIdcard", "2021-07-07", "InvalidAction.NotFound", 404),
    ("RecognizeExitEntryPermitToMainland", "2019-12-30", "InvalidVersion", 400),
])
def test_wrong_action_or_version(ocr: OcrStandin, action: str, version: str, code: str, status: int) -> None:
    resp = send(signed_raw(ocr, image(), action=action, version=version))
    assert (resp.status_code, resp.json()["Code"]) == (status, code)


# --- parameters and image limits ---------------------------------------------------------------------------

def test_both_url_and_body_or_neither(ocr: OcrStandin, host: ImageHost) -> None:
    host.routes["/a.png"] = (200, image(), 0.0)
    for kwargs in ({"body": image(), "url": host.url("/a.png")}, {}):
        err = failure(lambda kw=kwargs: call(sdk(ocr), **kw))  # type: ignore[misc]
        assert (err.code, status_of(err)) == ("imageUrlOrBodyEmpty", 400)


def test_bad_output_figure(ocr: OcrStandin) -> None:
    resp = send(signed_raw(ocr, image(), {"OutputFigure": "yes"}))
    assert (resp.status_code, resp.json()["Code"]) == (400, "InvalidParameter")


@pytest.mark.parametrize("size", [(15, 100), (100, 15), (8192, 100), (2000, 40)])
def test_illegal_image_size(ocr: OcrStandin, size: tuple[int, int]) -> None:
    err = failure(lambda: call(sdk(ocr), body=image(size=size)))
    assert (err.code, status_of(err)) == ("illegalImageSize", 416)


def test_limits_at_the_edges_pass(ocr: OcrStandin) -> None:
    assert call(sdk(ocr), body=image(size=(16, 16)))["width"] == 16
    assert call(sdk(ocr), body=image(size=(1960, 40)))["width"] == 1960  # ratio 49


def test_body_over_10_mb(ocr: OcrStandin) -> None:
    big = image() + b"\0" * (11 * 1024 * 1024)
    err = failure(lambda: call(sdk(ocr), body=big))
    assert (err.code, status_of(err)) == ("exceededImageContent", 413)
    assert ocr.service.calls[0].status == 413 and ocr.service.stats["billed"] == 0


def test_not_an_image(ocr: OcrStandin) -> None:
    err = failure(lambda: call(sdk(ocr), body=b"%PDF-1.7 not an image at all"))
    assert (err.code, status_of(err)) == ("unsupportedImageFormat", 415)


def test_image_without_truth_is_unmatched(ocr: OcrStandin) -> None:
    err = failure(lambda: call(sdk(ocr), body=image(truth=None)))
    assert (err.code, status_of(err)) == ("unmatchedImageType", 400)
    assert ocr.service.stats["unmatchedImageType"] == 1 and ocr.service.stats["billed"] == 0
    assert [c.status for c in ocr.service.calls] == [400]


def test_truth_can_provoke_a_recognizer_failure(ocr: OcrStandin) -> None:
    err = failure(lambda: call(sdk(ocr), body=image(truth={"error": "algorithmError"})))
    assert (err.code, status_of(err)) == ("algorithmError", 503)


# --- Url fetching ------------------------------------------------------------------------------------------

def test_url_forbidden_is_illegal_image_url(ocr: OcrStandin, host: ImageHost) -> None:
    host.routes["/expired.png"] = (403, b"<Error><Code>AccessDenied</Code></Error>", 0.0)
    err = failure(lambda: call(sdk(ocr), url=host.url("/expired.png")))
    assert (err.code, status_of(err)) == ("IllegalImageUrl", 400)
    assert not ocr.service.calls  # no image, nothing recognized


def test_url_timeout_is_image_timeout(ocr: OcrStandin, host: ImageHost) -> None:
    host.routes["/slow.png"] = (200, image(), 2.0)
    err = failure(lambda: call(sdk(ocr), url=host.url("/slow.png")))
    assert (err.code, status_of(err)) == ("imageTimeOut", 400)


def test_url_limits(ocr: OcrStandin) -> None:
    err = failure(lambda: call(sdk(ocr), url="http://127.0.0.1:9/" + "a" * 2048))
    assert (err.code, status_of(err)) == ("exceededImageUrlLength", 400)
    for url in ("file:///etc/passwd", "http://127.0.0.1:9/refused.png"):
        err = failure(lambda u=url: call(sdk(ocr), url=u))  # type: ignore[misc]
        assert err.code == "IllegalImageUrl"


# --- injected faults ---------------------------------------------------------------------------------------

def test_injected_throttling(ocr: OcrStandin, faults: FaultPlan) -> None:
    faults.set("ocr", throttle=1.0)
    err = failure(lambda: call(sdk(ocr), body=image()))
    assert (err.code, status_of(err), err.data["HostId"]) == ("Throttling.User", 429, ocr.host)
    assert ocr.service.stats["calls"] == 0 and faults.injected["ocr:throttle"] == 1


@pytest.mark.parametrize(("status", "code"), [(429, "Throttling.User"), (503, "ServiceUnavailable"),
                                              (500, "InternalError")])
def test_service_error_shapes(status: int, code: str) -> None:
    resp = service_error(status, Request("POST", "/", "", (("host", "h:1"),), b""))
    body = json.loads(resp.body)
    assert (resp.status, body["Code"], body["HostId"]) == (status, code, "h:1")
    assert ("Content-Type", "application/json;charset=utf-8") in resp.headers


# --- backends and header parsing ---------------------------------------------------------------------------

def test_engine_backend_adapts_the_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    """The engine package is another engineer's; a stand-in module with its documented API stands for it."""

    class EngineError(Exception):
        def __init__(self, code: str, message: str) -> None:
            super().__init__(message)
            self.code, self.message = code, message

    class Engine:
        def recognize(self, image: bytes, output_figure: bool) -> dict[str, Any]:
            if not image:
                raise EngineError("unmatchedImageType", "not a permit")
            return {"data": {"nameCn": "x"}, "figure": [] if output_figure else None}

    monkeypatch.setitem(sys.modules, "permit_ocr_local.engine",
                        types.SimpleNamespace(Engine=Engine, EngineError=EngineError))
    backend = make_backend("engine")
    assert isinstance(backend, EngineBackend)
    assert backend.recognize(b"img", True) == {"data": {"nameCn": "x"}, "figure": []}
    with pytest.raises(RecognitionError) as info:
        backend.recognize(b"", False)
    assert (info.value.code, info.value.message) == ("unmatchedImageType", "not a permit")
    with pytest.raises(ValueError):
        make_backend("cloud")


@pytest.mark.parametrize(("fmt", "name"), [("PNG", "png"), ("JPEG", "jpeg"), ("BMP", "bmp"), ("GIF", "gif"),
                                           ("TIFF", "tiff"), ("WEBP", "webp")])
def test_header_dimensions_match_pillow(fmt: str, name: str) -> None:
    for size in ((37, 21), (300, 8000)):
        data = image(size=size, truth=None, fmt=fmt)
        assert (sniff_format(data), dimensions(data)) == (name, size)


def test_webp_lossless_and_damaged_headers() -> None:
    buf = io.BytesIO()
    Image.new("RGBA", (33, 17), (1, 2, 3, 4)).save(buf, "WEBP", lossless=True)
    assert dimensions(buf.getvalue()) == (33, 17)
    assert dimensions(image(truth=None)[:20]) is None
    assert dimensions(b"GIF89a") is None
