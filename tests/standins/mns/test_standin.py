"""The MNS stand-in, driven by the real aliyun-mns-sdk 1.3.0 and by hand-signed requests over 127.0.0.1."""

from __future__ import annotations

import hashlib
import http.client
import json
import threading
import time
from collections.abc import Iterator
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from mns.account import Account
from mns.mns_exception import MNSServerException
from mns.topic import TopicMessage

from permit_ocr_local.standins.faults import FaultPlan
from permit_ocr_local.standins.http import Request
from permit_ocr_local.standins.keyring import Keyring
from permit_ocr_local.standins.mns import MnsServer, start_mns
from permit_ocr_local.standins.mns.auth import sdk_content_md5, signature, string_to_sign
from permit_ocr_local.standins.mns.errors import service_error

TOPIC = "ocr-results"
AK, SECRET = "LTAI5tTESTKEY", "test-secret"
STS_AK, STS_SECRET, STS_TOKEN = "STS.NTestTempKey", "sts-secret", "CAIS+tok/en=="


@pytest.fixture(scope="module")
def keyring() -> Keyring:
    kr = Keyring()
    kr.add(AK, SECRET)
    kr.add(STS_AK, STS_SECRET, STS_TOKEN, expires_at=time.time() + 3600)
    kr.add("STS.Expired", "old", "old-token", expires_at=time.time() - 1)
    return kr


@pytest.fixture(scope="module")
def shared_mns(keyring: Keyring, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MnsServer]:
    # one server per module: each stop costs the base server's 0.5 s shutdown poll
    with start_mns(keyring, tmp_path_factory.mktemp("mns"), topics=[TOPIC]) as server:
        yield server


@pytest.fixture
def mns(shared_mns: MnsServer) -> MnsServer:
    shared_mns.state.reset()
    return shared_mns


def sdk_topic(server: MnsServer, ak: str = AK, secret: str = SECRET, token: str = "",
              topic: str = TOPIC) -> Any:
    return Account(server.url, ak, secret, security_token=token).get_topic(topic)


def sdk_error(server: MnsServer, body: str = "x", **kw: str) -> MNSServerException:
    with pytest.raises(MNSServerException) as info:
        sdk_topic(server, **kw).publish_message(TopicMessage(body, "t"))
    return info.value


def raw_publish(server: MnsServer, xml: bytes, *, secret: str = SECRET, date: str | None = None,
                md5: str | None = None, signature_override: str | None = None,
                path: str = f"/topics/{TOPIC}/messages") -> tuple[int, str]:
    headers = {"content-md5": md5 or sdk_content_md5(xml), "content-type": "text/xml;charset=UTF-8",
               "date": date or formatdate(usegmt=True), "x-mns-version": "2015-06-06"}
    sig = signature_override or signature(secret, string_to_sign("POST", headers, path))
    conn = http.client.HTTPConnection(server.host, timeout=5)
    conn.request("POST", path, xml, {**headers, "Authorization": f"MNS {AK}:{sig}"})
    resp = conn.getresponse()
    out = resp.status, resp.read().decode()
    conn.close()
    return out


def message_xml(body: str, tag: str = "") -> bytes:
    from xml.sax.saxutils import escape

    tag_el = f"<MessageTag>{tag}</MessageTag>" if tag else ""
    return (f'<?xml version="1.0" encoding="utf-8"?><Message xmlns="http://mns.aliyuncs.com/doc/v1/">'
            f"<MessageBody>{escape(body, {chr(34): '&quot;'})}</MessageBody>{tag_el}</Message>").encode()


# --- the algorithm against the captures in mns.md §5 (independent of the SDK's signer) -----------------


def test_string_to_sign_and_content_md5_match_the_captured_requests() -> None:
    captured = ('<?xml version="1.0" encoding="utf-8"?><Message xmlns="http://mns.aliyuncs.com/doc/v1/">'
                "<MessageBody>{&quot;bucket&quot;: &quot;mybucket&quot;, &quot;key&quot;: &quot;uploads/照片.jpg"
                "&quot;, &quot;text&quot;: &quot;a&lt;b &amp; \\&quot;c\\&quot;&quot;}</MessageBody>"
                "<MessageTag>ocr-done</MessageTag></Message>").encode()
    assert len(captured) == 308
    assert sdk_content_md5(captured) == "NzdmNGEyYjg5OGYwNTliNzJkZDIwNzVjMDVkMGZjNTc="
    headers = {"content-md5": sdk_content_md5(captured), "content-type": "text/xml;charset=UTF-8",
               "date": "Wed, 25 Nov 2026 05:49:15 GMT", "x-mns-version": "2015-06-06",
               "security-token": "CAIS+tok/en==", "host": "127.0.0.1:35651"}
    assert string_to_sign("POST", headers, "/topics/ocr-results/messages") == (
        "POST\nNzdmNGEyYjg5OGYwNTliNzJkZDIwNzVjMDVkMGZjNTc=\ntext/xml;charset=UTF-8\n"
        "Wed, 25 Nov 2026 05:49:15 GMT\nx-mns-version:2015-06-06\n/topics/ocr-results/messages")


# --- through the real SDK -------------------------------------------------------------------------


def test_sdk_publish_is_verified_recorded_and_logged(mns: MnsServer) -> None:
    body = '{"key": "uploads/照片.jpg", "text": "a<b & \\"c\\" \'d\'"}'
    sent = sdk_topic(mns).publish_message(TopicMessage(body, "result"))
    [msg] = mns.state.messages(TOPIC)
    assert (msg.body, msg.tag, msg.message_id) == (body, "result", sent.message_id)
    assert sent.message_body_md5 == msg.body_md5 == hashlib.md5(body.encode()).hexdigest().upper()
    log = mns.state.log_path(TOPIC)
    assert log is not None and log.parent.name == ".mns"
    [logged] = [r for r in map(json.loads, log.read_text(encoding="utf-8").splitlines())
                if r["message_id"] == sent.message_id]
    assert (logged["body"], logged["tag"], logged["message_id"]) == (body, "result", sent.message_id)


def test_sts_credentials_are_accepted_and_checked(mns: MnsServer) -> None:
    sdk_topic(mns, ak=STS_AK, secret=STS_SECRET, token=STS_TOKEN).publish_message(
        TopicMessage("sts body"))
    assert [m.body for m in mns.state.messages()] == ["sts body"]
    assert sdk_error(mns, ak=STS_AK, secret=STS_SECRET, token="forged").type == "AccessDenied"
    assert sdk_error(mns, ak=STS_AK, secret=STS_SECRET).type == "AccessDenied"  # token missing
    assert sdk_error(mns, ak="STS.Expired", secret="old", token="old-token").type == "AccessDenied"


def test_credential_and_topic_errors(mns: MnsServer) -> None:
    wrong = sdk_error(mns, secret="wrong")
    assert (wrong.type, wrong.req_id, wrong.host_id) == ("SignatureDoesNotMatch", wrong.req_id, f"http://{mns.host}")
    assert wrong.req_id
    assert sdk_error(mns, ak="LTAInobody").type == "InvalidAccessKeyId"
    missing = sdk_error(mns, topic="no-such-topic")
    assert (missing.type, missing.message) == ("TopicNotExist", "The topic you provided does not exist.")
    assert mns.state.messages() == []


def test_body_over_64_kb_is_refused(mns: MnsServer) -> None:
    assert sdk_error(mns, body="x" * 70_000).type == "MessageTooLarge"  # the SDK sends it; MNS must refuse
    sdk_topic(mns).publish_message(TopicMessage("é" * 32_768))  # 65,536 bytes


@pytest.mark.parametrize(("rate", "code"), [("server_error", "ServiceUnavailable"), ("throttle", "Throttling")])
def test_injected_faults_come_back_in_mns_shape(keyring: Keyring, rate: str, code: str) -> None:
    plan = FaultPlan(seed=1)
    plan.set("mns", **{rate: 1.0})
    with start_mns(keyring, topics=[TOPIC], faults=plan) as server:
        assert sdk_error(server).type == code
        assert server.state.messages() == []


def test_service_error_codes() -> None:
    req = Request("POST", "/", "", (("Host", "h"),), b"")
    for status, code in ((429, "Throttling"), (500, "InternalError"), (503, "ServiceUnavailable")):
        resp = service_error(status, req)
        assert resp.status == status and f"<Code>{code}</Code>".encode() in resp.body
        assert dict(resp.headers)["Content-Type"] == "text/xml;charset=utf-8"


def test_clock_skew_is_rejected(keyring: Keyring) -> None:
    with start_mns(keyring, topics=[TOPIC], clock=lambda: time.time() + 16 * 60) as server:
        assert sdk_error(server).type == "RequestTimeTooSkewed"


# --- hand-signed requests -------------------------------------------------------------------------


def test_raw_signed_request_and_its_failures(mns: MnsServer) -> None:
    assert raw_publish(mns, message_xml("ok", "t1"))[0] == 201
    stale = formatdate(time.time() - 20 * 60, usegmt=True)
    status, text = raw_publish(mns, message_xml("late"), date=stale)
    assert status == 400 and "<Code>RequestTimeTooSkewed</Code>" in text
    status, text = raw_publish(mns, message_xml("x"), signature_override="AAAAAAAAAAAAAAAAAAAAAAAAAAA=")
    assert status == 403 and "<Code>SignatureDoesNotMatch</Code>" in text
    status, text = raw_publish(mns, message_xml("x"), md5=sdk_content_md5(b"another body"))
    assert status == 400 and "<Code>InvalidDigest</Code>" in text
    status, text = raw_publish(mns, message_xml("x", "a-tag-of-17-chars"))
    assert status == 400 and "<Code>InvalidArgument</Code>" in text
    status, text = raw_publish(mns, b"<Message><MessageBody>")
    assert status == 400 and "<Code>MalformedXML</Code>" in text
    assert [m.body for m in mns.state.messages()] == ["ok"]


# --- HTTP push subscriptions ------------------------------------------------------------------------


class _Endpoint(BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]]
    arrived: threading.Semaphore
    url: str

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(204)
        self.end_headers()
        self.arrived.release()

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def endpoint() -> Iterator[type[_Endpoint]]:
    class Handler(_Endpoint):  # fresh class state per test
        received = []  # noqa: RUF012
        arrived = threading.Semaphore(0)

    handler = Handler
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    handler.url = f"http://127.0.0.1:{httpd.server_address[1]}/notifications"
    yield handler
    httpd.shutdown()
    httpd.server_close()


def test_subscription_endpoint_receives_pushes(mns: MnsServer, endpoint: type[_Endpoint]) -> None:
    url = endpoint.url
    mns.state.subscribe(TOPIC, url, name="raw")
    mns.state.subscribe(TOPIC, url, name="errors-xml", filter_tag="error", content_format="XML")
    body = '{"name": "张三 <&>"}'
    sent = sdk_topic(mns).publish_message(TopicMessage(body, "result"))
    assert endpoint.arrived.acquire(timeout=5)
    headers, data = endpoint.received[0]
    assert data.decode() == body
    assert (headers["x-mns-message-id"], headers["x-mns-message-tag"]) == (sent.message_id, "result")
    sdk_topic(mns).publish_message(TopicMessage("boom & <bust>", "error"))
    assert endpoint.arrived.acquire(timeout=5) and endpoint.arrived.acquire(timeout=5)
    xml_pushes = [d.decode() for h, d in endpoint.received if h["content-type"].startswith("text/xml")]
    assert len(endpoint.received) == 3 and len(xml_pushes) == 1  # the filter kept "result" from the XML one
    assert "<Message>boom &amp; &lt;bust&gt;</Message>" in xml_pushes[0]


def test_dead_endpoint_never_blocks_publish(mns: MnsServer) -> None:
    mns.state.subscribe(TOPIC, "http://127.0.0.1:9/nowhere")  # discard port: connection refused
    start = time.monotonic()
    for i in range(5):
        sdk_topic(mns).publish_message(TopicMessage(f"m{i}"))
    assert time.monotonic() - start < 2
    assert len(mns.state.messages()) == 5
