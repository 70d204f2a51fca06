# ruff: noqa: F811  (the MNS stand-in's fixtures imported below are parameters by name)
"""permit_ocr.publish: the message format, and MnsPublisher through the real SDK against the MNS stand-in."""

from __future__ import annotations

import hashlib
import logging
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import pytest
from standins.mns.test_standin import (  # noqa: F401  (the MNS stand-in's fixtures, found by name)
    AK,
    SECRET,
    STS_AK,
    STS_SECRET,
    STS_TOKEN,
    TOPIC,
    keyring,
    mns,
    shared_mns,
)

from permit_ocr.publish import (
    MAX_MESSAGE_BYTES,
    MnsPublisher,
    PublishError,
    escaped_size,
    message_body,
    tag_for,
)
from permit_ocr_local.standins.faults import FaultPlan
from permit_ocr_local.standins.keyring import Keyring
from permit_ocr_local.standins.mns import MnsServer, start_mns

LOCATION = {"bucket": "permits", "key": "uploads/照片 1.jpg.json"}


def publisher(server: MnsServer, topic: str = TOPIC, ak: str = AK, secret: str = SECRET,
              token: str | None = None) -> MnsPublisher:
    return MnsPublisher(server.url, topic, ak, secret, token)


def document(**extra: Any) -> dict[str, Any]:
    return {
        "schemaVersion": 1, "type": "result", "needsReview": False,
        "source": {"bucket": "permits", "key": "uploads/照片 1.jpg", "etag": "5B3C", "ossRequestId": "ABC"},
        "data": {"nameCn": "张三", "nameEn": "ZHANG, SAN", "note": "a<b & \"c\" 'd' >"},
        **extra,
    }


def publish_error(fn: Any) -> PublishError:
    with pytest.raises(PublishError) as info:
        fn()
    return info.value


# --- message format (pure) -------------------------------------------------------------------------


def test_tags() -> None:
    assert tag_for(document()) == "result"
    assert tag_for(document(needsReview=True)) == "result-review"
    assert tag_for(document(type="error")) == "error"
    assert all(len(t) <= 16 for t in ("result", "result-review", "error"))


def test_escaped_size_counts_every_expansion() -> None:
    assert escaped_size("照") == 3
    assert escaped_size("&<>\"'") == len("&amp;&lt;&gt;&quot;&apos;")


def test_small_document_goes_out_whole() -> None:
    doc = document()
    assert message_body(doc, LOCATION) == orjson.dumps(doc).decode()


def test_large_document_becomes_a_pointer_that_fits() -> None:
    doc = document(data={"blob": "x" * 70_000})
    pointer = orjson.loads(message_body(doc, LOCATION))
    size = escaped_size(orjson.dumps(doc).decode())
    assert pointer == {
        "schemaVersion": 1, "type": "pointer", "source": doc["source"], "documentType": "result",
        "location": LOCATION, "needsReview": False,
        "reason": f"document of {size} bytes exceeds the MNS 64 KB message limit",
    }
    assert escaped_size(orjson.dumps(pointer).decode()) < 1024


def test_escaping_alone_can_push_a_document_over_the_limit() -> None:
    doc = document(data={"q": "&" * 20_000})  # ~20 KB raw, ~100 KB once XML-escaped
    assert len(orjson.dumps(doc)) < MAX_MESSAGE_BYTES
    assert orjson.loads(message_body(doc, LOCATION))["type"] == "pointer"


def test_too_large_without_a_pointer_is_a_permanent_error() -> None:
    err = publish_error(lambda: message_body(document(data={"blob": "x" * 70_000}), None))
    assert (err.code, err.transient) == ("MessageTooLarge", False)


# --- through the SDK and the stand-in ----------------------------------------------------------------


def test_publish_round_trips_cjk_and_xml_specials_exactly(mns: MnsServer) -> None:
    doc = document()
    body = message_body(doc, LOCATION)
    receipt = publisher(mns).publish(body, tag_for(doc))
    [msg] = mns.state.messages(TOPIC)
    assert msg.body == body and orjson.loads(msg.body) == doc and msg.tag == "result"
    assert (receipt.message_id, receipt.body_md5) == (msg.message_id, hashlib.md5(body.encode()).hexdigest().upper())
    log = mns.state.log_path(TOPIC)
    assert log is not None and f'"message_id": "{receipt.message_id}"' in log.read_text(encoding="utf-8")


def test_pointer_for_a_70_kb_document_is_published(mns: MnsServer) -> None:
    doc = document(needsReview=True, data={"blob": "永" * 25_000})  # 75 KB of UTF-8
    body = message_body(doc, LOCATION)
    publisher(mns).publish(body, tag_for(doc))
    [msg] = mns.state.messages(TOPIC)
    assert msg.tag == "result-review"
    assert orjson.loads(msg.body)["location"] == LOCATION


def test_sts_credentials(mns: MnsServer) -> None:
    publisher(mns, ak=STS_AK, secret=STS_SECRET, token=STS_TOKEN).publish("{}", "result")
    err = publish_error(lambda: publisher(mns, ak=STS_AK, secret=STS_SECRET, token="forged").publish("{}", "r"))
    assert (err.code, err.transient) == ("AccessDenied", False)
    assert len(mns.state.messages()) == 1


def test_permanent_errors(mns: MnsServer) -> None:
    wrong = publish_error(lambda: publisher(mns, secret="wrong").publish("{}", "result"))
    assert (wrong.code, wrong.transient) == ("SignatureDoesNotMatch", False) and wrong.request_id
    missing = publish_error(lambda: publisher(mns, topic="no-such-topic").publish("{}", "result"))
    assert (missing.code, missing.transient) == ("TopicNotExist", False)
    long_tag = publish_error(lambda: publisher(mns).publish("{}", "x" * 17))  # refused by the SDK itself
    assert long_tag.transient is False
    huge = publish_error(lambda: publisher(mns).publish("x" * 70_000, "result"))  # never sent
    assert (huge.code, huge.transient) == ("MessageTooLarge", False)
    assert mns.state.messages() == []


@pytest.mark.parametrize(("rate", "code"), [("server_error", "ServiceUnavailable"), ("throttle", "Throttling")])
def test_injected_faults_are_transient(keyring: Keyring, rate: str, code: str) -> None:
    plan = FaultPlan(seed=7)
    plan.set("mns", **{rate: 1.0})
    with start_mns(keyring, topics=[TOPIC], faults=plan) as server:
        err = publish_error(lambda: publisher(server).publish("{}", "result"))
    assert (err.code, err.transient) == (code, True)


def test_unreachable_endpoint_is_transient(keyring: Keyring) -> None:
    with start_mns(keyring, topics=[TOPIC]) as server:
        url = server.url
    err = publish_error(lambda: MnsPublisher(url, TOPIC, AK, SECRET, None, timeout_s=2).publish("{}", "result"))
    assert (err.code, err.transient) == ("NetWorkException", True)


def test_skewed_clock_is_rejected(keyring: Keyring) -> None:
    with start_mns(keyring, topics=[TOPIC], clock=lambda: time.time() - 20 * 60) as server:
        err = publish_error(lambda: publisher(server).publish("{}", "result"))
    assert (err.code, err.transient) == ("RequestTimeTooSkewed", False)


def test_one_publisher_shared_by_threads(mns: MnsServer) -> None:
    pub = publisher(mns)
    with ThreadPoolExecutor(8) as pool:
        receipts = list(pool.map(lambda i: pub.publish(f'{{"n": {i}}}', "result"), range(40)))
    assert len({r.message_id for r in receipts}) == 40
    assert sorted(orjson.loads(m.body)["n"] for m in mns.state.messages()) == list(range(40))


def test_subscription_endpoint_receives_the_document(mns: MnsServer) -> None:
    got: list[bytes] = []
    arrived = threading.Event()

    class Endpoint(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            got.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(204)
            self.end_headers()
            arrived.set()

        def log_message(self, format: str, *args: object) -> None:
            return

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Endpoint)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    try:
        mns.state.subscribe(TOPIC, f"http://127.0.0.1:{httpd.server_address[1]}/notifications")
        doc = document()
        publisher(mns).publish(message_body(doc, LOCATION), tag_for(doc))
        assert arrived.wait(5)
        assert orjson.loads(got[0]) == doc
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_body_is_never_logged(mns: MnsServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    publisher(mns).publish(message_body(document(), LOCATION), "result")
    publish_error(lambda: publisher(mns, secret="wrong").publish('{"nameCn": "张三"}', "result"))
    assert "张三" not in caplog.text


def test_importing_publish_does_not_import_the_sdk() -> None:
    code = "import sys, permit_ocr.publish; print('mns' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
