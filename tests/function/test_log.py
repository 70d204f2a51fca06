"""Logs: one JSON object per line with the request id; no signed URLs, secrets, permit numbers or dates."""

from __future__ import annotations

import io
import logging
import re
import threading
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from permit_ocr import log


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    """Configure the function's logger and catch what its handler writes."""
    logger = logging.getLogger("permit_ocr")
    saved_level, saved_keys = logger.level, log._log_keys
    log.configure("DEBUG", False)
    buf = io.StringIO()
    log.use_stream(buf)
    try:
        yield buf
    finally:
        log.use_stream(None)
        logger.setLevel(saved_level)
        log._log_keys = saved_keys
        log.bind_request(None)


def records(buf: io.StringIO) -> list[dict[str, Any]]:
    text = buf.getvalue()
    assert text.endswith("\n")
    out = []
    for line in text.splitlines():
        doc = orjson.loads(line)
        assert isinstance(doc, dict)
        out.append(doc)
    return out


# --- scrub ---------------------------------------------------------------------------------------------------


def test_scrub_removes_the_query_of_a_signed_url() -> None:
    url = ("https://photos.oss-cn-hangzhou.aliyuncs.com/in/a.jpg?x-oss-signature-version=OSS4-HMAC-SHA256"
           "&x-oss-credential=STS.AK%2F20250101&x-oss-signature=abcdef0123&x-oss-security-token=CAIS%2Bxyz")
    expected = "fetch https://photos.oss-cn-hangzhou.aliyuncs.com/in/a.jpg?<redacted> failed"
    assert log.scrub(f"fetch {url} failed") == expected


def test_scrub_removes_the_query_of_a_v1_signed_url() -> None:
    url = "http://127.0.0.1:9000/b/a.jpg?OSSAccessKeyId=LTAI123&Expires=1700000000&Signature=abc%3D"
    assert log.scrub(url) == "http://127.0.0.1:9000/b/a.jpg?<redacted>"


@pytest.mark.parametrize(("text", "expected"), [
    ("security-token=CAIS.secret/+= next", "security-token=<redacted> next"),
    ("Signature=abc123&Expires=1", "Signature=<redacted>&Expires=1"),
    ("AccessKeySecret=s3cr3t", "AccessKeySecret=<redacted>"),
    ("accesskeyid=LTAIabc", "accesskeyid=<redacted>"),
    ("x-oss-security-token=tok", "x-oss-security-token=<redacted>"),
    ("secret=hunter2", "secret=<redacted>"),
])
def test_scrub_removes_credential_values(text: str, expected: str) -> None:
    assert log.scrub(text) == expected


@pytest.mark.parametrize("permit", ["H10387877", "M12345678", "H1038787701"])
def test_scrub_removes_hong_kong_and_macao_permit_numbers(permit: str) -> None:
    assert log.scrub(f"permit {permit} rejected") == "permit <permit-no> rejected"


@pytest.mark.parametrize("number", ["12345678", "1234567801"])
def test_scrub_removes_taiwan_permit_numbers_and_other_long_digit_runs(number: str) -> None:
    assert log.scrub(f"no. {number}.") == "no. <number>."


@pytest.mark.parametrize(("text", "expected"), [
    ("born 2000.01.01", "born <date>"),
    ("valid 2014.04.10-2019.04.09", "valid <date>-<date>"),
    ("on 2019-04-09 and 2014/4/1", "on <date> and <date>"),
])
def test_scrub_removes_dates(text: str, expected: str) -> None:
    assert log.scrub(text) == expected


@pytest.mark.parametrize("text", [
    "3 record(s) failed transiently; FC will retry the event", "illegalImageSize: image is 15x900 px",
    "elapsed 1234567 ms", "Throttling.User", "", "证件识别完成",
])
def test_scrub_leaves_ordinary_messages_alone(text: str) -> None:
    assert log.scrub(text) == text


@pytest.mark.parametrize("text", ["号码H10387877", "scan_H10387877.jpg", "张三12345678"])
def test_scrub_removes_permit_numbers_glued_to_other_word_characters(text: str) -> None:
    assert "10387877" not in log.scrub(text) and "12345678" not in log.scrub(text)


# --- key_ref -------------------------------------------------------------------------------------------------


def test_key_ref_hides_the_key_by_default(lines: io.StringIO) -> None:
    ref = log.key_ref("photos", "证件/张三 H10387877.jpg")
    assert re.fullmatch(r"k:[0-9a-f]{16}", ref)
    assert "张三" not in ref and "photos" not in ref


def test_key_ref_is_stable_and_distinguishes_objects(lines: io.StringIO) -> None:
    assert log.key_ref("photos", "a.jpg") == log.key_ref("photos", "a.jpg")
    assert len({log.key_ref("photos", "a.jpg"), log.key_ref("photos", "b.jpg"), log.key_ref("scans", "a.jpg")}) == 3


def test_key_ref_shows_bucket_and_key_when_enabled(lines: io.StringIO) -> None:
    log.configure("INFO", True)
    assert log.key_ref("photos", "in/a.jpg") == "photos/in/a.jpg"
    log.configure("INFO", False)
    assert log.key_ref("photos", "in/a.jpg").startswith("k:")


# --- the line format -----------------------------------------------------------------------------------------


def test_every_line_is_one_json_object_with_time_level_request_id_and_message(lines: io.StringIO) -> None:
    log.bind_request("req-1")
    log.info("record done", keyRef="k:0123", status="result", ms=12)
    log.warning("two\nlines\r\nin one message")
    log.error("failed", code="X")
    docs = records(lines)
    assert len(docs) == 3
    assert all(d["requestId"] == "req-1" for d in docs)
    assert [d["level"] for d in docs] == ["INFO", "WARNING", "ERROR"]
    assert docs[0] | {"time": None} == {"time": None, "level": "INFO", "requestId": "req-1", "msg": "record done",
                                        "keyRef": "k:0123", "status": "result", "ms": 12}
    assert docs[1]["msg"] == "two\nlines\r\nin one message"
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", d["time"]) for d in docs)


def test_the_message_is_scrubbed_in_the_line(lines: io.StringIO) -> None:
    log.info("OCR fetch of https://b.oss/a.jpg?x-oss-signature=abc failed for H10387877 born 2000.01.01")
    assert records(lines)[0]["msg"] == "OCR fetch of https://b.oss/a.jpg?<redacted> failed for <permit-no> born <date>"


def test_a_line_carries_the_request_id_key_even_when_none_is_bound(lines: io.StringIO) -> None:
    log.bind_request(None)
    log.info("instance initialized")
    assert records(lines)[0]["requestId"] is None


def test_each_thread_logs_its_own_request_id(lines: io.StringIO) -> None:
    log.bind_request("main-req")

    def worker(rid: str) -> None:
        log.bind_request(rid)
        log.info("work", who=rid)

    threads = [threading.Thread(target=worker, args=(f"req-{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.info("main")
    docs = records(lines)
    assert {(d.get("who"), d["requestId"]) for d in docs[:4]} == {(f"req-{i}", f"req-{i}") for i in range(4)}
    assert docs[4]["requestId"] == "main-req"
    assert log.current_request_id() == "main-req"


def test_fields_that_json_cannot_hold_are_written_as_text(lines: io.StringIO) -> None:
    log.info("odd fields", what=ValueError("x"), tags=("a",))
    doc = records(lines)[0]
    assert doc["what"] == "x" and doc["tags"] == ["a"]


def test_an_exception_is_logged_by_its_class_name_only(lines: io.StringIO) -> None:
    try:
        raise KeyError("H10387877")
    except KeyError:
        logging.getLogger("permit_ocr").error("boom", exc_info=True)
    doc = records(lines)[0]
    assert doc["exception"] == "KeyError"
    assert "H10387877" not in lines.getvalue()


def test_the_level_set_by_configure_filters_lines(lines: io.StringIO) -> None:
    log.configure("WARNING", False)
    log.info("hidden")
    log.warning("shown")
    assert [d["msg"] for d in records(lines)] == ["shown"]


def test_configure_adds_its_handler_only_once() -> None:
    logger = logging.getLogger("permit_ocr")
    saved = logger.level
    log.configure("INFO", False)
    log.configure("INFO", False)
    assert sum(1 for h in logger.handlers if getattr(h, "_permit_ocr", False)) == 1
    assert logger.propagate is False
    logger.setLevel(saved)


@given(bucket=st.from_regex(r"[a-z0-9][a-z0-9-]{1,20}[a-z0-9]", fullmatch=True), key=st.text(min_size=1, max_size=80),
       before=st.text(max_size=20), after=st.text(max_size=20))
def test_key_digests_survive_scrubbing_intact_wherever_they_stand(bucket: str, key: str, before: str,
                                                                  after: str) -> None:
    ref = log.key_ref(bucket, key)
    assert log.scrub(ref) == ref
    assert ref in log.scrub(f"{before} {ref} {after}")  # also beside digits, dates or permit-like text


def test_a_key_digest_in_a_log_line_matches_its_key(lines: io.StringIO) -> None:
    for i in range(300):  # ~10 % of digests hold an 8-digit run; the scrubber must leave every one alone
        ref = log.key_ref("b", f"uploads/{i}.jpg")
        log.info("record done", keyRef=ref)
        assert orjson.loads(lines.getvalue().splitlines()[-1])["keyRef"] == ref
