"""Sequences found while building the chaos run's world (issue 21) that broke a promise of the function, each
against the real handler and the stand-ins: a result PUT applied seconds after the fence's listing (the write now
goes to a URL signed to expire seconds later, which OSS refuses late), and a policy denying the image with outputs
kept apart (the fence now lists the image's key instead of reading it)."""

from __future__ import annotations

import time
from collections.abc import Callable

import alibabacloud_oss_v2 as oss
import orjson
import pytest

from permit_ocr.config import load_config
from permit_ocr.handler import App, RetryLater
from permit_ocr_local.fcruntime.stack import LocalStack
from support import Bucket, image, in_thread, invoke


def test_a_slow_result_put_of_an_older_version_never_replaces_the_newer_versions_result(
        make_app: Callable[..., App], bucket: Bucket, stack: LocalStack) -> None:
    v1, v2 = image("H0000000101"), image("H0000000201")
    up1 = bucket.put("uploads/slow-put.png", v1)
    # OSS is slow for one request: v1's result PUT is applied 4 s after the function sent it (SINKS=oss)
    slow = stack.faults.add_rule({"service": "oss", "operation": "PutObject", "key": "uploads/slow-put.png.json",
                                  "delay_s": 4, "times": 1})
    first, _box = in_thread(lambda: invoke(make_app(), up1))
    end = time.monotonic() + 20
    while not stack.faults.hits(slow) and time.monotonic() < end:  # v1's fence looked (v1 current, slot
        time.sleep(0.05)  # empty) and its PUT is on its way
    up2 = bucket.put("uploads/slow-put.png", v2)
    assert invoke(make_app(), up2)["counts"] == {"result": 1}
    first.join(30)
    stored = bucket.head_meta("uploads/slow-put.png.json")
    number = orjson.loads(bucket.get("uploads/slow-put.png.json"))["data"]["data"]["permitNumber"]
    assert (stored["source-etag"], number) == (up2.etag, "H0000000201")


def test_a_policy_denying_the_image_leaves_a_non_final_record_when_outputs_live_apart(
        env: dict[str, str], bucket: Bucket, stack: LocalStack) -> None:
    bucket.client.put_bucket(oss.PutBucketRequest(bucket="results-x"))
    e = {**env, "OUTPUT_BUCKET": "results-x", "OUTPUT_PREFIX": "out/{bucket}/"}
    up = bucket.put("uploads/denied.png", image("H1234567801"))
    stack.keyring.set_policy(stack.access_key_id, {"Version": "1", "Statement": [
        {"Effect": "Allow", "Action": "*", "Resource": "*"},
        {"Effect": "Deny", "Action": "oss:GetObject", "Resource": f"acs:oss:*:*:{bucket.name}/{up.key}"}]})
    with pytest.raises(RetryLater):  # FC retries; if it gives up, the record is what says why
        invoke(App(load_config(e), environ=e), up)
    results, record_key = Bucket(stack, "results-x"), f"out/{bucket.name}/uploads/denied.png.error.json"
    assert results.exists(record_key)
    record = orjson.loads(results.get(record_key))
    assert (record["error"]["code"], record["error"]["transient"]) == ("AccessDenied", True)
