"""Both sinks over real HTTP: the same document in the object and the message, the 64 KB pointer rule, MNS
outages that lose nothing and never bill OCR twice, and concurrent duplicate deliveries."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from permit_ocr.handler import App, RetryLater
from permit_ocr_local.fcruntime.stack import LocalStack
from permit_ocr_local.standins.faults import FaultPlan
from support import SAMPLE_TRUTH, Bucket, invoke, permit_image


def published(stack: LocalStack) -> list[Any]:
    assert stack.mns is not None
    return stack.mns.state.messages(stack.options.topic)


def test_both_sinks_carry_the_same_document(make_app: Callable[..., App], bucket: Bucket, stack: LocalStack) -> None:
    up = bucket.put("uploads/both.png", permit_image())
    assert invoke(make_app(SINKS="oss,mns"), up)["counts"] == {"result": 1}
    stored = orjson.loads(bucket.get("uploads/both.png.json"))
    [msg] = published(stack)
    assert orjson.loads(msg.body) == stored
    assert msg.tag == "result"
    assert bucket.head_meta("uploads/both.png.json")["pending"] == ""


def test_mns_only_publishes_the_document_and_keeps_a_receipt_without_personal_data(
        make_app: Callable[..., App], bucket: Bucket, stack: LocalStack) -> None:
    up = bucket.put("uploads/mns.png", permit_image())
    app = make_app(SINKS="mns")
    assert invoke(app, up)["counts"] == {"result": 1}
    [msg] = published(stack)
    assert orjson.loads(msg.body)["data"]["data"] == SAMPLE_TRUTH
    receipt = bucket.get("uploads/mns.png.json").decode()
    assert "HE,CHENG" not in receipt and "H10387877" not in receipt and '"type":"receipt"' in receipt
    assert invoke(app, up)["counts"] == {"duplicate": 1}
    assert len(published(stack)) == 1


def test_a_document_over_64_kb_goes_out_as_a_pointer(make_app: Callable[..., App], bucket: Bucket,
                                                     stack: LocalStack) -> None:
    big = {**SAMPLE_TRUTH, "issuePlace": "深圳" * 20000}  # ~120 KB of UTF-8 in one field
    up = bucket.put("uploads/big.png", permit_image(big))
    assert invoke(make_app(SINKS="oss,mns"), up)["counts"] == {"result": 1}
    [msg] = published(stack)
    pointer = orjson.loads(msg.body)
    assert pointer["type"] == "pointer"
    assert pointer["location"] == {"bucket": up.bucket, "key": "uploads/big.png.json"}
    assert len(msg.body.encode()) < 65536
    assert orjson.loads(bucket.get("uploads/big.png.json"))["data"]["data"]["issuePlace"] == big["issuePlace"]


def test_permanent_failure_publishes_a_failure_message(make_app: Callable[..., App], bucket: Bucket,
                                                       stack: LocalStack) -> None:
    up = bucket.put("uploads/cat.png", permit_image({}))
    assert invoke(make_app(SINKS="oss,mns"), up)["counts"] == {"error": 1}
    [msg] = published(stack)
    assert msg.tag == "error"
    assert orjson.loads(msg.body)["error"]["code"] == "unmatchedImageType"


def test_mns_outage_keeps_the_result_and_a_retry_only_republishes(make_app: Callable[..., App], bucket: Bucket,
                                                                  stack: LocalStack) -> None:
    assert stack.mns is not None and stack.ocr is not None
    up = bucket.put("uploads/flaky.png", permit_image())
    app = make_app(SINKS="oss,mns")
    faults = FaultPlan(seed=3)
    faults.set("mns", server_error=1.0)
    stack.mns._httpd.faults = faults
    with pytest.raises(RetryLater):  # FC's async retry will come back
        invoke(app, up)
    assert bucket.head_meta("uploads/flaky.png.json")["pending"] == "mns"  # the result is safe already
    stack.mns._httpd.faults = None
    assert invoke(app, up)["counts"] == {"redelivered": 1}
    assert len(published(stack)) == 1
    assert bucket.head_meta("uploads/flaky.png.json")["pending"] == ""
    assert stack.ocr.service.stats["billed"] == 1  # never a second paid call


def test_concurrent_duplicate_deliveries_make_one_paid_call(make_app: Callable[..., App], bucket: Bucket,
                                                            stack: LocalStack) -> None:
    assert stack.ocr is not None
    up = bucket.put("uploads/twice.png", permit_image())
    faults = FaultPlan(seed=5)
    faults.set("ocr", slow=1.0, slow_s=0.5)  # the OCR call is slow, so the two deliveries overlap
    stack.ocr._httpd.faults = faults
    results: list[dict[str, Any]] = []

    def deliver() -> None:
        try:
            results.append(invoke(make_app(), up))
        except RetryLater as deferred:  # the claim was held: FC retries this delivery later
            results.append(deferred.summary)

    threads = [threading.Thread(target=deliver) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = sorted(s for r in results for s in r["counts"])
    assert statuses.count("result") == 1 and statuses.count("retrying") == 3
    assert invoke(make_app(), up)["counts"] == {"duplicate": 1}  # FC's retries find the outcome
    assert stack.ocr.service.stats["billed"] == 1


def test_a_transient_error_record_does_not_stop_the_retry_from_recognizing(make_app: Callable[..., App],
                                                                           bucket: Bucket, stack: LocalStack) -> None:
    assert stack.ocr is not None
    up = bucket.put("uploads/outage.png", permit_image())
    app = make_app(OCR_MAX_ATTEMPTS="1")
    faults = FaultPlan(seed=9)
    faults.set("ocr", server_error=1.0)
    stack.ocr._httpd.faults = faults
    with pytest.raises(RetryLater):
        invoke(app, up)
    err = orjson.loads(bucket.get("uploads/outage.png.error.json"))
    assert err["error"]["transient"] is True  # an outcome exists even if FC gives up now
    stack.ocr._httpd.faults = None
    assert invoke(app, up)["counts"] == {"result": 1}  # FC's retry recognizes, and replaces the record
    assert not bucket.exists("uploads/outage.png.error.json")
