"""Retry rules of the paid call: classify(), backoff_s(), RateLimiter, decode_data and Recognizer.recognize.

Errors come from the real SDK talking HTTP to a tiny local server that answers like the OCR service (the error
body shape of ocr-api.md §9.3); nothing in the SDK is mocked.
"""

from __future__ import annotations

import random
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import pytest
from alibabacloud_ocr_api20210707 import models
from alibabacloud_ocr_api20210707.client import Client
from alibabacloud_tea_openapi.models import Config as ApiConfig
from alibabacloud_tea_util.models import RuntimeOptions
from hypothesis import given
from hypothesis import strategies as st

from permit_ocr.config import Config, load_config
from permit_ocr.credentials import Credentials
from permit_ocr.recognize import (
    BASE_BACKOFF_S,
    LIMITED_RETRY,
    MAX_BACKOFF_S,
    TRANSIENT_CODES,
    Deadline,
    OcrFailure,
    RateLimiter,
    Recognizer,
    backoff_s,
    classify,
    decode_data,
)

AK, SECRET = "LTAI_UNIT_AK", "UNIT_SECRET"
HOST_ID = "ocr-api.cn-hangzhou.aliyuncs.com"


# --- a tiny OCR look-alike -----------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def ocr_error(status: int, code: str, message: str = "An error occurred.", *, request_id: str = "RID-ERR",
              headers: dict[str, str] | None = None) -> Reply:
    """The body shape of a real OCR error (ocr-api.md §9.3)."""
    body = {"RequestId": request_id, "HostId": HOST_ID, "Code": code, "Message": message,
            "Recommend": f"https://api.aliyun.com/troubleshoot?q={code}&product=ocr-api&requestId={request_id}"}
    return Reply(status, orjson.dumps(body), {"Content-Type": "application/json;charset=utf-8", **(headers or {})})


def ocr_ok(data: dict[str, Any] | str, request_id: str = "RID-OK") -> Reply:
    raw = data if isinstance(data, str) else orjson.dumps(data).decode()
    return Reply(200, orjson.dumps({"RequestId": request_id, "Data": raw, "Code": "200", "Message": "success"}),
                 {"Content-Type": "application/json;charset=utf-8"})


class FakeOcr(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.replies: list[Reply] = []
        self.requests: list[dict[str, Any]] = []

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"

    def script(self, *replies: Reply) -> None:
        with self.lock:
            self.replies = list(replies)
            self.requests = []

    def take(self, record: dict[str, Any]) -> Reply:
        with self.lock:
            self.requests.append(record)
            if self.replies:
                return self.replies.pop(0)
        return ocr_error(599, "ScriptExhausted", "the test scripted fewer replies than calls")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: FakeOcr

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        reply = self.server.take({"path": self.path, "headers": dict(self.headers), "body": body})
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOcr]:
    srv = FakeOcr()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def make_config(endpoint: str, **env: str) -> Config:
    base = {"SOURCE_BUCKETS": "photos", "OCR_ENDPOINT": endpoint, "OCR_PROTOCOL": "http", "OCR_QPS": "1000",
            "OCR_CONNECT_TIMEOUT_MS": "1000", "OCR_READ_TIMEOUT_MS": "2000"}
    return load_config({**base, **env})


def creds() -> Credentials:
    return Credentials(AK, SECRET, None)


def _first_draws(seed: int, n: int) -> list[float]:
    rng = random.Random(seed)
    return [rng.random() for _ in range(n)]


# a seed whose first backoff draws are tiny, so retried tests stay fast and deterministic
FAST_SEED = next(s for s in range(100_000) if all(x < 0.05 for x in _first_draws(s, 3)))


def recognizer(server: FakeOcr, **env: str) -> Recognizer:
    return Recognizer(make_config(server.endpoint, **env), creds, seed=FAST_SEED)


def far_deadline() -> float:
    return time.monotonic() + 60


def sdk_error(server: FakeOcr, reply: Reply) -> Exception:
    """What the real SDK raises when the service answers ``reply``."""
    server.script(reply)
    client = Client(ApiConfig(access_key_id=AK, access_key_secret=SECRET, endpoint=server.endpoint, protocol="http",
                              connect_timeout=1000, read_timeout=2000))
    try:
        client.recognize_exit_entry_permit_to_mainland_with_options(
            models.RecognizeExitEntryPermitToMainlandRequest(url="https://example.com/a.jpg"),
            RuntimeOptions(connect_timeout=1000, read_timeout=2000))
    except Exception as exc:
        return exc
    raise AssertionError("the SDK did not raise")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- classify ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "code"), [
    (503, "algorithmError"), (503, "AlgorithmTimeout"), (503, "ServiceUnavailable"), (504, "ServiceTimeout"),
    (429, "Throttling.User"), (400, "Throttling.User"), (500, "InternalError"), (400, "imageTimeOut"),
    (400, "SignatureNonceUsed"),
])
def test_classify_marks_documented_retryable_codes_transient(server: FakeOcr, status: int, code: str) -> None:
    failure = classify(sdk_error(server, ocr_error(status, code, "raw message", request_id="RID-T")))
    assert failure.code == code
    assert failure.transient is True
    assert failure.status == status
    assert failure.request_id == "RID-T"
    assert failure.message == "raw message"  # the service's Message, not the SDK's reformatted one


@pytest.mark.parametrize(("status", "code"), [
    (413, "exceededImageContent"), (416, "illegalImageSize"), (400, "ExceededImageSize"),
    (415, "unsupportedImageFormat"), (400, "illegalImageContent"), (400, "unmatchedImageType"),
    (400, "imageUrlOrBodyEmpty"), (400, "exceededImageUrlLength"), (400, "notSafeImageUrl"),
    (401, "noPermission"), (401, "ocrServiceNotOpen"), (401, "OcrServiceExpired"), (400, "invalidStsToken"),
    (400, "SignatureDoesNotMatch"), (404, "InvalidAccessKeyId.NotFound"),
])
def test_classify_marks_permanent_codes_not_transient(server: FakeOcr, status: int, code: str) -> None:
    failure = classify(sdk_error(server, ocr_error(status, code)))
    assert (failure.code, failure.transient, failure.status) == (code, False, status)


def test_classify_goes_by_code_not_status_for_a_4xx_throttling(server: FakeOcr) -> None:
    assert classify(sdk_error(server, ocr_error(400, "Throttling.User"))).transient is True


def test_classify_treats_an_unknown_code_with_a_5xx_status_as_transient(server: FakeOcr) -> None:
    failure = classify(sdk_error(server, ocr_error(502, "SomethingNew")))
    assert (failure.code, failure.transient, failure.status) == ("SomethingNew", True, 502)


def test_classify_treats_an_unknown_code_with_a_4xx_status_as_permanent(server: FakeOcr) -> None:
    assert classify(sdk_error(server, ocr_error(400, "SomethingNew"))).transient is False


def test_classify_counts_illegal_image_url_as_transient_before_its_limited_retries(server: FakeOcr) -> None:
    failure = classify(sdk_error(server, ocr_error(400, "IllegalImageUrl")))
    assert failure.code == "IllegalImageUrl" and failure.transient is True


def test_classify_reads_retry_after_milliseconds_as_seconds(server: FakeOcr) -> None:
    exc = sdk_error(server, ocr_error(429, "Throttling.User", headers={"x-acs-retry-after": "1500"}))
    assert type(exc).__name__ == "ThrottlingException"
    failure = classify(exc)
    assert failure.retry_after_s == pytest.approx(1.5)
    assert failure.transient is True


def test_classify_leaves_retry_after_unset_without_the_header(server: FakeOcr) -> None:
    assert classify(sdk_error(server, ocr_error(429, "Throttling.User"))).retry_after_s is None


def test_classify_truncates_a_long_service_message(server: FakeOcr) -> None:
    failure = classify(sdk_error(server, ocr_error(400, "unmatchedImageType", "x" * 2000)))
    assert failure.message == "x" * 500


def test_classify_maps_connection_refused_to_a_transient_network_error() -> None:
    client = Client(ApiConfig(access_key_id=AK, access_key_secret=SECRET, endpoint=f"127.0.0.1:{closed_port()}",
                              protocol="http", connect_timeout=500, read_timeout=500))
    try:
        client.recognize_exit_entry_permit_to_mainland_with_options(
            models.RecognizeExitEntryPermitToMainlandRequest(url="https://example.com/a.jpg"), RuntimeOptions())
    except Exception as exc:
        failure = classify(exc)
    else:
        raise AssertionError("the SDK did not raise")
    assert failure.code == "NetworkError"
    assert failure.transient is True
    assert failure.status is None


def test_classify_maps_a_non_json_error_page_to_a_transient_network_error(server: FakeOcr) -> None:
    exc = sdk_error(server, Reply(502, b"<html>bad gateway</html>", {"Content-Type": "text/html"}))
    failure = classify(exc)
    assert (failure.code, failure.transient) == ("NetworkError", True)


def test_classify_reads_the_tea_0_3_style_attributes() -> None:
    class OldTeaException(Exception):  # tea-openapi 0.3.x: code + data only, no status_code/request_id
        def __init__(self) -> None:
            super().__init__("code: 503, Server error. request id: RID-03")
            self.code = "ServiceUnavailable"
            self.data = {"RequestId": "RID-03", "Message": "Server error.", "statusCode": 503}

    failure = classify(OldTeaException())
    assert (failure.code, failure.status, failure.request_id, failure.message, failure.transient) == (
        "ServiceUnavailable", 503, "RID-03", "Server error.", True)


def test_classify_treats_the_string_none_code_as_no_code() -> None:
    class NoCode(Exception):
        code = "None"
        data = None

    assert classify(NoCode("boom")).code == "NetworkError"


def test_transient_and_limited_retry_codes_do_not_overlap() -> None:
    assert not TRANSIENT_CODES & set(LIMITED_RETRY)


# --- backoff -------------------------------------------------------------------------------------------------


@given(attempt=st.integers(min_value=0, max_value=200), seed=st.integers(min_value=0, max_value=2**32))
def test_backoff_is_full_jitter_under_the_exponential_cap(attempt: int, seed: int) -> None:
    pause = backoff_s(attempt, random.Random(seed))
    assert 0 <= pause <= min(MAX_BACKOFF_S, BASE_BACKOFF_S * 2**attempt)


def test_backoff_never_exceeds_the_cap_for_late_attempts() -> None:
    rng = random.Random(7)
    assert max(backoff_s(30, rng) for _ in range(2000)) <= MAX_BACKOFF_S


def test_backoff_uses_the_whole_jitter_range() -> None:
    rng = random.Random(11)
    draws = [backoff_s(3, rng) for _ in range(2000)]  # window 1.6 s
    assert min(draws) < 0.1 and max(draws) > 1.5


def test_backoff_is_reproducible_with_the_same_seed() -> None:
    assert [backoff_s(i, random.Random(3)) for i in range(5)] == [backoff_s(i, random.Random(3)) for i in range(5)]


# --- rate limiter --------------------------------------------------------------------------------------------


class FakeClock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_rate_limiter_lets_the_first_call_through_at_once() -> None:
    assert RateLimiter(10, clock=FakeClock()).reserve() == 0


def test_rate_limiter_spaces_a_burst_by_one_interval_each() -> None:
    limiter = RateLimiter(4, clock=FakeClock())
    assert [limiter.reserve() for _ in range(5)] == pytest.approx([0, 0.25, 0.5, 0.75, 1.0])


def test_rate_limiter_forgets_idle_time_instead_of_banking_it() -> None:
    clock = FakeClock()
    limiter = RateLimiter(2, clock=clock)
    limiter.reserve()
    clock.now += 10  # a long idle spell gives no burst credit
    assert limiter.reserve() == 0
    assert limiter.reserve() == pytest.approx(0.5)


def test_rate_limiter_waits_only_the_rest_of_the_interval() -> None:
    clock = FakeClock()
    limiter = RateLimiter(1, clock=clock)
    limiter.reserve()
    clock.now += 0.3
    assert limiter.reserve() == pytest.approx(0.7)


def test_rate_limiter_gives_concurrent_threads_distinct_slots() -> None:
    clock = FakeClock()
    limiter = RateLimiter(100, clock=clock)
    waits: list[float] = []
    lock = threading.Lock()

    def take() -> None:
        w = [limiter.reserve() for _ in range(50)]
        with lock:
            waits.extend(w)

    threads = [threading.Thread(target=take) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(round(w * 100) for w in waits) == list(range(400))


# --- decode_data ---------------------------------------------------------------------------------------------


def test_decode_data_returns_the_json_object() -> None:
    assert decode_data('{"data":{"permitNumber":"H10387877"}}', "RID") == {"data": {"permitNumber": "H10387877"}}


@pytest.mark.parametrize("raw", ["", "not json", "{", "[1,2]", '"text"', "null", "42"])
def test_decode_data_rejects_a_data_string_that_is_not_a_json_object_as_permanent(raw: str) -> None:
    with pytest.raises(OcrFailure) as info:
        decode_data(raw, "RID-D")
    assert (info.value.code, info.value.transient, info.value.request_id) == ("InvalidData", False, "RID-D")


# --- Recognizer.recognize against the look-alike -------------------------------------------------------------


def test_recognize_returns_decoded_data_request_id_and_one_attempt(server: FakeOcr) -> None:
    server.script(ocr_ok({"data": {"permitType": "港澳居民来往内地通行证"}}, request_id="RID-1"))
    result = recognizer(server).recognize(url="https://bucket.example/a.jpg?sig=1", budget=Deadline(far_deadline()))
    assert result.request_id == "RID-1"
    assert result.data == {"data": {"permitType": "港澳居民来往内地通行证"}}
    assert result.attempts == 1
    assert result.latency_ms >= 0
    assert len(server.requests) == 1


def test_recognize_sends_the_body_bytes_in_body_mode(server: FakeOcr) -> None:
    server.script(ocr_ok({"data": {}}))
    recognizer(server).recognize(body=b"\x89PNG-bytes", budget=Deadline(far_deadline()))
    assert server.requests[0]["body"] == b"\x89PNG-bytes"


def test_recognize_turns_a_200_with_bad_data_into_a_permanent_invalid_data(server: FakeOcr) -> None:
    server.script(ocr_ok("not json", request_id="RID-BAD"))
    with pytest.raises(OcrFailure) as info:
        recognizer(server).recognize(url="https://x/a.jpg", budget=Deadline(far_deadline()))
    assert (info.value.code, info.value.transient, info.value.request_id) == ("InvalidData", False, "RID-BAD")
    assert len(server.requests) == 1


def test_recognize_never_retries_a_permanent_error(server: FakeOcr) -> None:
    server.script(ocr_error(416, "illegalImageSize", request_id="RID-416"))
    with pytest.raises(OcrFailure) as info:
        recognizer(server, OCR_MAX_ATTEMPTS="4").recognize(url="https://x/a.jpg", budget=Deadline(far_deadline()))
    failure = info.value
    assert (failure.code, failure.transient, failure.status, failure.attempts) == ("illegalImageSize", False, 416, 1)
    assert failure.request_id == "RID-416"
    assert len(server.requests) == 1


def test_recognize_retries_transient_errors_until_success(server: FakeOcr) -> None:
    server.script(ocr_error(503, "ServiceUnavailable"), ocr_error(429, "Throttling.User"), ocr_ok({"data": {}}))
    result = recognizer(server, OCR_MAX_ATTEMPTS="4").recognize(url="https://x/a.jpg", budget=Deadline(far_deadline()))
    assert result.attempts == 3
    assert len(server.requests) == 3


def test_recognize_stops_at_the_attempt_cap_and_stays_transient(server: FakeOcr) -> None:
    server.script(*[ocr_error(503, "algorithmError")] * 5)
    with pytest.raises(OcrFailure) as info:
        recognizer(server, OCR_MAX_ATTEMPTS="3").recognize(url="https://x/a.jpg", budget=Deadline(far_deadline()))
    assert (info.value.code, info.value.transient, info.value.attempts) == ("algorithmError", True, 3)
    assert len(server.requests) == 3


def test_recognize_makes_a_single_attempt_when_max_attempts_is_one(server: FakeOcr) -> None:
    server.script(ocr_error(503, "ServiceUnavailable"), ocr_ok({"data": {}}))
    with pytest.raises(OcrFailure) as info:
        recognizer(server, OCR_MAX_ATTEMPTS="1").recognize(url="https://x/a.jpg", budget=Deadline(far_deadline()))
    assert info.value.transient is True and info.value.attempts == 1
    assert len(server.requests) == 1


def test_recognize_tries_illegal_image_url_twice_then_calls_it_permanent(server: FakeOcr) -> None:
    server.script(*[ocr_error(400, "IllegalImageUrl")] * 4)
    with pytest.raises(OcrFailure) as info:
        recognizer(server, OCR_MAX_ATTEMPTS="4").recognize(url="https://x/a.jpg", budget=Deadline(far_deadline()))
    assert (info.value.code, info.value.transient, info.value.attempts) == ("IllegalImageUrl", False, 2)
    assert len(server.requests) == LIMITED_RETRY["IllegalImageUrl"]


def test_recognize_lets_illegal_image_url_recover_on_its_second_attempt(server: FakeOcr) -> None:
    server.script(ocr_error(400, "IllegalImageUrl"), ocr_ok({"data": {}}))
    assert recognizer(server).recognize(url="https://x/a.jpg", budget=Deadline(far_deadline())).attempts == 2


def test_recognize_caps_illegal_image_url_by_max_attempts_when_that_is_lower(server: FakeOcr) -> None:
    server.script(*[ocr_error(400, "IllegalImageUrl")] * 3)
    with pytest.raises(OcrFailure) as info:
        recognizer(server, OCR_MAX_ATTEMPTS="1").recognize(url="https://x/a.jpg", budget=Deadline(far_deadline()))
    assert (info.value.transient, info.value.attempts) == (False, 1)
    assert len(server.requests) == 1


def test_recognize_waits_the_retry_after_the_service_asks_for(server: FakeOcr) -> None:
    server.script(ocr_error(429, "Throttling.User", headers={"x-acs-retry-after": "300"}), ocr_ok({"data": {}}))
    t0 = time.monotonic()
    result = recognizer(server).recognize(url="https://x/a.jpg", budget=Deadline(far_deadline()))
    assert result.attempts == 2
    assert time.monotonic() - t0 >= 0.3


def test_recognize_gives_up_transiently_when_the_deadline_leaves_no_room_for_another_try(server: FakeOcr) -> None:
    server.script(ocr_error(503, "ServiceUnavailable"), ocr_ok({"data": {}}))
    class RoomForOne:  # the budget has room for the first call, and none left after it
        asked = 0

        def latest_start(self, call_s: float) -> float:
            self.asked += 1
            return time.monotonic() + (60 if self.asked == 1 else -1)

        def cover(self, call_s: float) -> bool:
            return self.asked == 1

    with pytest.raises(OcrFailure) as info:
        recognizer(server, OCR_MAX_ATTEMPTS="4").recognize(url="https://x/a.jpg", budget=RoomForOne())
    assert (info.value.code, info.value.transient, info.value.attempts) == ("ServiceUnavailable", True, 1)
    assert len(server.requests) == 1


def test_no_call_starts_when_the_budget_cannot_hold_its_worst_case(server: FakeOcr) -> None:
    # a call FC's timeout cuts off may be billed with nobody left to store its answer: do not start one
    server.script(ocr_ok({"data": {}}))
    rec = recognizer(server)
    with pytest.raises(OcrFailure) as info:
        rec.recognize(url="https://x/a.jpg", budget=Deadline(time.monotonic() + rec.worst_call_s() - 0.5))
    assert (info.value.code, info.value.transient, info.value.paid) == ("NoTimeLeft", True, False)
    assert server.requests == []


def test_an_ocr_qps_wait_that_would_outlive_the_budget_is_never_begun(server: FakeOcr) -> None:
    server.script(ocr_ok({"data": {}}), ocr_ok({"data": {}}))
    rec = recognizer(server, OCR_QPS="0.05")  # one call per 20 s
    end_by = time.monotonic() + rec.worst_call_s() + 5  # the second slot is 20 s away: it cannot fit
    rec.recognize(url="https://x/a.jpg", budget=Deadline(end_by))
    t0 = time.monotonic()
    with pytest.raises(OcrFailure) as info:
        rec.recognize(url="https://x/b.jpg", budget=Deadline(end_by))
    assert info.value.code == "NoTimeLeft" and time.monotonic() - t0 < 1  # refused at once, no 20 s wait
    assert len(server.requests) == 1


def test_recognize_retries_network_errors_as_transient() -> None:
    cfg = make_config(f"127.0.0.1:{closed_port()}", OCR_MAX_ATTEMPTS="2", OCR_CONNECT_TIMEOUT_MS="200")
    with pytest.raises(OcrFailure) as info:
        Recognizer(cfg, creds, seed=FAST_SEED).recognize(url="https://x/a.jpg", budget=Deadline(far_deadline()))
    assert (info.value.code, info.value.transient, info.value.attempts) == ("NetworkError", True, 2)


def test_recognize_rebuilds_the_client_when_credentials_rotate(server: FakeOcr) -> None:
    current = [Credentials("STS.ONE", "S1", "TOKEN-1")]
    rec = Recognizer(make_config(server.endpoint), lambda: current[0], seed=FAST_SEED)
    server.script(ocr_ok({"data": {}}), ocr_ok({"data": {}}))
    rec.recognize(url="https://x/a.jpg", budget=Deadline(far_deadline()))
    current[0] = Credentials("STS.TWO", "S2", "TOKEN-2")
    rec.recognize(url="https://x/a.jpg", budget=Deadline(far_deadline()))
    tokens = [{k.lower(): v for k, v in r["headers"].items()}.get("x-acs-security-token") for r in server.requests]
    assert tokens == ["TOKEN-1", "TOKEN-2"]


def test_classify_keeps_the_status_of_an_http_error_without_a_code_and_calls_a_4xx_permanent(server: FakeOcr) -> None:
    exc = sdk_error(server, Reply(400, b'{"Message":"bad request"}', {"Content-Type": "application/json"}))
    failure = classify(exc)
    assert failure.status == 400
    assert failure.transient is False
