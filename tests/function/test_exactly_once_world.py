"""One regression test per way the exactly-once promise broke in a world with time and other writers (issue 21,
findings 1-9): slow publishes, claims that run out while their holder runs, permissions that change, markers that
expire, a second source bucket, OSS brownouts, the review page as a second writer. Each drives the real handler
(and the real review store) through the real SDKs against the stand-ins."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import alibabacloud_oss_v2 as oss
import orjson
import pytest

from permit_ocr.config import ConfigError, load_config
from permit_ocr.credentials import resolve
from permit_ocr.handler import App, RetryLater
from permit_ocr.layout import MARKERS_PREFIX, key_digest
from permit_ocr.ledger import FRESH_VERSION_S
from permit_ocr_local.fcruntime.context import Upload, oss_event
from permit_ocr_local.fcruntime.crash import Crash
from permit_ocr_local.fcruntime.stack import LocalStack
from permit_ocr_local.standins.http import Request, Response
from permit_ocr_local.tools.review import rules
from permit_ocr_local.tools.review.store import Refused, ReviewStore
from support import SAMPLE_TRUTH, Bucket, Gate, billed, ctx, hold, image, in_thread, invoke, permit_image, release


class HeldPublishes:
    """The MNS stand-in with a hand on the valve: while ``closed``, publishes wait (an MNS brownout)."""

    name = "mns"

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.closed = threading.Event()
        self.waiting = threading.Event()
        self.open = threading.Event()

    def handle(self, request: Request) -> Response:
        if self.closed.is_set() and request.method == "POST" and request.path.endswith("/messages"):
            self.waiting.set()
            self.open.wait(30)
        return self.inner.handle(request)  # type: ignore[no-any-return]


@pytest.fixture
def slow_mns(stack: LocalStack) -> Iterator[HeldPublishes]:
    assert stack.mns is not None
    httpd = stack.mns._httpd
    original = httpd.service
    httpd.service = held = HeldPublishes(original)  # type: ignore[assignment]
    yield held
    held.open.set()
    httpd.service = original


def published(stack: LocalStack) -> list[dict[str, Any]]:
    assert stack.mns is not None
    return [orjson.loads(m.body) for m in stack.mns.state.messages(stack.options.topic)]


def number_of(doc: dict[str, Any]) -> str:
    return str(doc["data"]["data"]["permitNumber"])


def markers_of(bucket: Bucket, key: str) -> list[str]:
    prefix = f"{MARKERS_PREFIX}{key_digest(bucket.name, key)}/"
    listed = bucket.client.list_objects_v2(oss.ListObjectsV2Request(bucket=bucket.name, prefix=prefix))
    return [str(o.key) for o in listed.contents or []]


def deny_reading(stack: LocalStack, bucket: Bucket, key: str) -> None:
    """A tightened policy (or a disabled KMS key, an Archive object): the function may no longer read ``key``."""
    stack.keyring.set_policy(stack.access_key_id, {"Version": "1", "Statement": [
        {"Effect": "Allow", "Action": "*", "Resource": "*"},
        {"Effect": "Deny", "Action": "oss:GetObject", "Resource": f"acs:oss:*:*:{bucket.name}/{key}"}]})


# 1 -- a slow publish ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sinks", ["oss,mns", "mns"])
def test_a_slow_publish_never_lets_an_old_version_replace_the_newer_outcome(
        make_app: Callable[..., App], bucket: Bucket, stack: LocalStack, slow_mns: HeldPublishes,
        sinks: str) -> None:
    v1, v2 = image("H0000000101"), image("H0000000201")
    up1 = bucket.put("uploads/brown.png", v1)
    slow_mns.closed.set()  # v1's publish hangs in an MNS brownout
    first, _box = in_thread(lambda: invoke(make_app(SINKS=sinks), up1))
    assert slow_mns.waiting.wait(10)
    slow_mns.closed.clear()  # MNS recovers for everybody else
    up2 = bucket.put("uploads/brown.png", v2)
    assert invoke(make_app(SINKS=sinks), up2)["counts"] == {"result": 1}
    slow_mns.open.set()  # v1's publish returns at last
    first.join(30)
    assert bucket.head_meta("uploads/brown.png.json")["source-etag"] == up2.etag  # v2's outcome stays
    if sinks == "oss,mns":
        assert number_of(orjson.loads(bucket.get("uploads/brown.png.json"))) == "H0000000201"
    assert invoke(make_app(SINKS=sinks), up2)["counts"] == {"duplicate": 1}  # v2's redelivery: done, not held
    assert billed(stack, v1) == 1 and billed(stack, v2) == 1


def test_fcs_retry_republishing_a_stored_document_checks_the_version_before_settling(
        make_app: Callable[..., App], bucket: Bucket, stack: LocalStack, slow_mns: HeldPublishes) -> None:
    v1, v2 = image("H0000000101"), image("H0000000201")
    up1 = bucket.put("uploads/again.png", v1)
    slow_mns.closed.set()
    slow_mns.open.set()
    outage = stack.mns._httpd  # type: ignore[union-attr]
    from permit_ocr_local.standins.faults import FaultPlan

    outage.faults = FaultPlan(seed=1)
    outage.faults.set("mns", server_error=1.0)
    with pytest.raises(RetryLater):  # stored pending; the publish failed
        invoke(make_app(SINKS="oss,mns"), up1)
    outage.faults = None
    slow_mns.open.clear()
    slow_mns.waiting.clear()
    retry, _box = in_thread(lambda: invoke(make_app(SINKS="oss,mns"), up1))  # FC's retry: re-publishes, slowly
    assert slow_mns.waiting.wait(10)
    slow_mns.closed.clear()
    up2 = bucket.put("uploads/again.png", v2)
    assert invoke(make_app(SINKS="oss,mns"), up2)["counts"] == {"result": 1}
    slow_mns.open.set()
    retry.join(30)
    stored = orjson.loads(bucket.get("uploads/again.png.json"))
    assert number_of(stored) == "H0000000201" and bucket.head_meta("uploads/again.png.json")["pending"] == ""
    assert billed(stack, v1) == 1 and billed(stack, v2) == 1


# 2 -- paid calls only while the claim and the invocation outlive them ------------------------------------------


def test_a_many_record_event_near_its_deadline_pays_once_per_image_across_fcs_retry(
        make_app: Callable[..., App], bucket: Bucket, stack: LocalStack) -> None:
    # the sequence, scaled: OCR_QPS=2 spreads 20 calls over 10 s, the invocation has 8 s, and FC's retry
    # starts on another instance at 8.5 s while the first (never killed here) still works through its records
    fast = {"OCR_QPS": "2", "WORKERS": "4", "OCR_CONNECT_TIMEOUT_MS": "500", "OCR_READ_TIMEOUT_MS": "1000"}
    images = [image(f"H{n:08d}01") for n in range(20)]
    ups = [bucket.put(f"uploads/batch/{n}.png", data) for n, data in enumerate(images)]
    first, _ = in_thread(lambda: make_app(**fast).handle(oss_event(ups), ctx("batch", timeout=8)))
    time.sleep(8.5)
    second, _ = in_thread(lambda: make_app(**fast).handle(oss_event(ups), ctx("batch", timeout=30)))
    first.join(60)
    second.join(60)
    late = make_app(**fast).handle(oss_event(ups), ctx("batch", timeout=60))  # FC's last retry settles the rest
    assert set(late["counts"]) <= {"duplicate", "result"}, late["counts"]
    assert [billed(stack, data) for data in images] == [1] * 20


# 3 -- a verdict is about a version, never about the world -----------------------------------------------------


def test_a_403_on_the_image_never_destroys_its_paid_result(make_app: Callable[..., App], bucket: Bucket,
                                                           stack: LocalStack) -> None:
    data = image("H1234567801")
    up = bucket.put("uploads/locked.png", data)
    assert invoke(make_app(), up)["counts"] == {"result": 1}
    deny_reading(stack, bucket, up.key)  # a tightened role, a disabled KMS key, an Archive object
    assert invoke(make_app(), up)["counts"] == {"duplicate": 1}
    assert number_of(orjson.loads(bucket.get("uploads/locked.png.json"))) == "H1234567801"
    assert not bucket.exists("uploads/locked.png.error.json")
    stack.keyring.set_policy(stack.access_key_id, None)  # access returns
    assert invoke(make_app(), up)["counts"] == {"duplicate": 1}
    assert billed(stack, data) == 1


def test_a_403_before_any_outcome_leaves_a_record_that_is_not_a_verdict(make_app: Callable[..., App],
                                                                         bucket: Bucket, stack: LocalStack) -> None:
    data = image("H1234567801")
    up = bucket.put("uploads/denied.png", data)
    deny_reading(stack, bucket, up.key)
    with pytest.raises(RetryLater):  # FC retries; if it gives up, the record says why and replay can redo it
        invoke(make_app(), up)
    record = orjson.loads(bucket.get("uploads/denied.png.error.json"))
    assert (record["error"]["code"], record["error"]["transient"]) == ("AccessDenied", True)
    assert billed(stack, data) == 0
    stack.keyring.set_policy(stack.access_key_id, None)
    assert invoke(make_app(), up)["counts"] == {"result": 1}
    assert not bucket.exists("uploads/denied.png.error.json") and billed(stack, data) == 1


def test_a_403_on_the_decoded_form_of_an_event_key_leaves_its_record_beside_the_image_that_exists(
        make_app: Callable[..., App], bucket: Bucket, stack: LocalStack) -> None:
    # found by the model-based test: the record went beside the event's encoded key (no such object), so the
    # fence saw "gone", the delivery was skipped and FC never came back: the upload was lost
    data = image("H1234567801")
    up = bucket.put("uploads/a b.png", data)
    deny_reading(stack, bucket, up.key)
    encoded = Upload(up.bucket, "uploads/a%20b.png", up.etag, up.size)
    with pytest.raises(RetryLater):
        invoke(make_app(), encoded)
    assert orjson.loads(bucket.get("uploads/a b.png.error.json"))["error"]["code"] == "AccessDenied"
    stack.keyring.set_policy(stack.access_key_id, None)
    assert invoke(make_app(), encoded)["counts"] == {"result": 1}


def test_a_redeploy_with_a_lower_size_limit_never_replaces_a_stored_result(
        make_app: Callable[..., App], bucket: Bucket, stack: LocalStack) -> None:
    data = image("H1234567801")
    up = bucket.put("uploads/big-enough.png", data)
    assert invoke(make_app(), up)["counts"] == {"result": 1}
    assert invoke(make_app(MAX_IMAGE_BYTES="1000"), up)["counts"] == {"duplicate": 1}
    assert bucket.exists("uploads/big-enough.png.json") and not bucket.exists("uploads/big-enough.png.error.json")


# 4 -- the done-check never depends on a marker surviving --------------------------------------------------------


def test_a_version_whose_marker_was_lost_is_not_paid_for_again(env: dict[str, str], bucket: Bucket,
                                                               stack: LocalStack) -> None:
    data = image("H1234567801")
    up = bucket.put("uploads/old.png", data)
    assert invoke(App(load_config(env), environ=env), up)["counts"] == {"result": 1}
    for marker in markers_of(bucket, up.key):  # the 30-day lifecycle rule, or a hand
        bucket.client.delete_object(oss.DeleteObjectRequest(bucket=bucket.name, key=marker))
    later = App(load_config(env), environ=env, clock=lambda: time.time() + FRESH_VERSION_S + 1)
    assert invoke(later, up)["counts"] == {"duplicate": 1}  # backfill, replay or FC, days later
    assert billed(stack, data) == 1


# 5 -- a version seen superseded is never paid for again --------------------------------------------------------


def test_a_delivery_that_read_the_image_before_its_overwrite_never_pays_for_it_again(
        make_app: Callable[..., App], bucket: Bucket, stack: LocalStack, gate: Gate) -> None:
    v1, v2 = image("H0000000101"), image("H0000000201")
    up1 = bucket.put("uploads/twice.png", v1)
    entered = hold(gate, v1)
    a, a_box = in_thread(lambda: invoke(make_app(), up1))  # run A pays for v1 ...
    assert entered.wait(10)
    b_app = make_app()
    read, go = threading.Event(), threading.Event()
    begin = b_app.ledger.begin

    def slow_begin(*args: Any, **kwargs: Any) -> Any:  # delivery B has read v1, and stalls before claiming
        read.set()
        go.wait(30)
        return begin(*args, **kwargs)

    b_app.ledger.begin = slow_begin  # type: ignore[method-assign]
    b, b_box = in_thread(lambda: invoke(b_app, up1))
    assert read.wait(10)
    up2 = bucket.put("uploads/twice.png", v2)  # the overwrite
    release(gate, v1)
    a.join(30)  # ... finds v2 current, drops its answer and lets go of the claim
    assert a_box[0]["outcomes"][0]["status"] == "skipped"  # type: ignore[index]
    go.set()
    b.join(30)
    assert b_box[0]["outcomes"][0]["code"] == "Superseded"  # type: ignore[index]
    assert invoke(make_app(), up2)["counts"] == {"result": 1}
    assert billed(stack, v1) == 1 and billed(stack, v2) == 1  # 2 paid calls for 2 uploads


# 6 -- the review page is a second writer ------------------------------------------------------------------------


def review_store(env: dict[str, str], bucket: Bucket, **overrides: str) -> ReviewStore:
    cfg = load_config({**env, **overrides})
    return ReviewStore(cfg, lambda: resolve(env), bucket.name)


def flagged(number: str) -> bytes:
    return permit_image({**SAMPLE_TRUTH, "permitNumber": number, "birthDate": "2019.01.01"})  # a child: review


def test_a_review_save_and_fcs_republish_never_overwrite_each_other(
        env: dict[str, str], make_app: Callable[..., App], bucket: Bucket, stack: LocalStack,
        slow_mns: HeldPublishes) -> None:
    from permit_ocr_local.standins.faults import FaultPlan

    data = flagged("H1234567801")
    up = bucket.put("uploads/review.png", data)
    httpd = stack.mns._httpd  # type: ignore[union-attr]
    httpd.faults = FaultPlan(seed=1)
    httpd.faults.set("mns", server_error=1.0)
    with pytest.raises(RetryLater):  # stored pending: its message is owed
        invoke(make_app(SINKS="oss,mns"), up)
    httpd.faults = None
    store = review_store(env, bucket, SINKS="oss,mns")
    item = store.load("uploads/review.png.json")
    assert item is not None and item.doc["needsReview"]
    slow_mns.closed.set()
    retry, _box = in_thread(lambda: invoke(make_app(SINKS="oss,mns"), up))  # FC's retry re-publishes, slowly
    assert slow_mns.waiting.wait(10)
    slow_mns.closed.clear()
    fields = {**rules.fields_of(item.doc), "birthDate": "2001.01.01"}
    with pytest.raises(Refused) as busy:  # the function is delivering this very result: the save waits
        store.save(item.result_key, item.result_etag, "Reviewer", fields)
    assert busy.value.reason == "busy"
    slow_mns.open.set()
    retry.join(30)
    item = store.load("uploads/review.png.json")
    assert item is not None
    store.save(item.result_key, item.result_etag, "Reviewer", fields)
    stored = orjson.loads(bucket.get("uploads/review.png.json"))
    assert stored["review"]["reviewer"] == "Reviewer" and stored["needsReview"] is False
    assert [m.get("review", {}).get("reviewer") for m in published(stack)] == [None, "Reviewer"]


def test_a_review_save_whose_image_is_replaced_before_its_write_never_lands(
        env: dict[str, str], make_app: Callable[..., App], bucket: Bucket, stack: LocalStack,
        monkeypatch: pytest.MonkeyPatch) -> None:
    up1 = bucket.put("uploads/swap.png", flagged("H0000000101"))
    assert invoke(make_app(), up1)["counts"] == {"result": 1}
    store = review_store(env, bucket)
    item = store.load("uploads/swap.png.json")
    assert item is not None and item.image_state == "current"
    claim = store._claim

    def replaced_meanwhile(*args: Any, **kwargs: Any) -> str:  # between the save's check and its write
        up2 = bucket.put("uploads/swap.png", image("H0000000201"))
        assert invoke(make_app(), up2)["counts"] == {"result": 1}
        return claim(*args, **kwargs)

    monkeypatch.setattr(store, "_claim", replaced_meanwhile)
    with pytest.raises(Refused) as stale:
        store.save(item.result_key, item.result_etag, "Reviewer", rules.fields_of(item.doc))
    assert stale.value.reason in ("stale", "changed")
    assert number_of(orjson.loads(bucket.get("uploads/swap.png.json"))) == "H0000000201"


# 7 -- several source buckets, one output bucket ----------------------------------------------------------------


def test_two_source_buckets_sharing_an_output_bucket_must_key_outputs_by_bucket(env: dict[str, str]) -> None:
    shared = {**env, "SOURCE_BUCKETS": "bucket-a,bucket-b", "OUTPUT_BUCKET": "results-x"}
    with pytest.raises(ConfigError) as refused:
        load_config(shared)
    assert set(refused.value.problems) == {"OUTPUT_PREFIX"} and "{bucket}" in refused.value.problems["OUTPUT_PREFIX"]
    assert load_config({**shared, "OUTPUT_PREFIX": "results/{bucket}/"}).output_prefix == "results/{bucket}/"


def test_the_same_key_in_two_source_buckets_gets_two_outcomes_each_paid_once(
        env: dict[str, str], bucket: Bucket, stack: LocalStack) -> None:
    for name in ("bucket-b", "results-x"):
        bucket.client.put_bucket(oss.PutBucketRequest(bucket=name))
    other = Bucket(stack, "bucket-b")
    e = {**env, "SOURCE_BUCKETS": f"{bucket.name},bucket-b", "OUTPUT_BUCKET": "results-x",
         "OUTPUT_PREFIX": "ocr/{bucket}/"}
    a_data, b_data = image("H0000000101"), image("H0000000201")
    ups = [bucket.put("same/key.png", a_data), other.put("same/key.png", b_data)]
    for _ in range(2):  # and FC's redeliveries
        for up in ups:
            invoke(App(load_config(e), environ=e), up)
    results = Bucket(stack, "results-x")
    assert number_of(orjson.loads(results.get(f"ocr/{bucket.name}/same/key.png.json"))) == "H0000000101"
    assert number_of(orjson.loads(results.get("ocr/bucket-b/same/key.png.json"))) == "H0000000201"
    assert billed(stack, a_data) == 1 and billed(stack, b_data) == 1


# 8 -- a paid answer survives an OSS brownout ------------------------------------------------------------------


def brownout_after_the_paid_call(stack: LocalStack, seconds: float) -> Callable[[], float]:
    """Every function request to OSS fails (503) for ``seconds`` from the moment OCR answers."""
    assert stack.oss is not None and stack.ocr is not None
    httpd, ocr = stack.oss._httpd, stack.ocr.service
    inner_oss, inner_ocr = httpd.service, ocr.backend
    began: list[float] = []

    class Answered:
        def recognize(self, img: bytes, output_figure: bool) -> dict[str, Any]:
            out = inner_ocr.recognize(img, output_figure)
            began.append(time.monotonic())
            return out  # type: ignore[no-any-return]

    class Down:
        name = "oss"

        def handle(self, request: Request) -> Response:
            signed = "signature" in request.raw_query.lower()
            if began and not signed and time.monotonic() - began[0] < seconds:
                return httpd.service_error(503, request)  # type: ignore[no-any-return]
            return inner_oss.handle(request)  # type: ignore[no-any-return]

    ocr.backend = Answered()  # type: ignore[assignment]
    httpd.service = Down()  # type: ignore[assignment]
    return lambda: began[0] if began else 0.0


def test_an_oss_brownout_of_twelve_seconds_after_the_paid_call_never_pays_twice(
        make_app: Callable[..., App], bucket: Bucket, stack: LocalStack) -> None:
    data = image("H1234567801")
    up = bucket.put("uploads/brownout.png", data)
    brownout_after_the_paid_call(stack, 12)
    assert invoke(make_app(), up, timeout=120)["counts"] == {"result": 1}
    assert billed(stack, data) == 1


def test_a_paid_answer_oss_would_not_take_is_stored_by_the_next_attempt_on_the_instance(
        env: dict[str, str], bucket: Bucket, stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("permit_ocr.fence.MAX_WRITE_TRIES", 2)  # an outage longer than the store budget
    data = image("H1234567801")
    up = bucket.put("uploads/kept.png", data)
    now = [time.time()]
    app = App(load_config(env), environ=env, clock=lambda: now[0])
    brownout_after_the_paid_call(stack, 3)
    with pytest.raises(RetryLater):
        invoke(app, up)
    assert len(app.unsaved) == 1 and billed(stack, data) == 1
    time.sleep(3)  # OSS is back; the claim the failed write held has expired by FC's retry
    now[0] += 600
    assert invoke(app, up)["counts"] == {"result": 1}
    assert billed(stack, data) == 1 and len(app.unsaved) == 0


# 9 -- smaller ones ----------------------------------------------------------------------------------------------


def test_a_holder_dying_between_its_result_and_the_delete_of_the_earlier_record_leaves_one_outcome(
        env: dict[str, str], bucket: Bucket, stack: LocalStack) -> None:
    data = image("H1234567801")
    up = bucket.put("uploads/died.png", data)
    deny_reading(stack, bucket, up.key)
    with pytest.raises(RetryLater):  # a non-final record first
        invoke(App(load_config(env), environ=env), up)
    stack.keyring.set_policy(stack.access_key_id, None)
    dying = App(load_config(env), environ=env)

    def die_before_delete(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if name == "delete":
                raise Crash
            return fn(*args, **kwargs)
        return wrapped

    dying.storage.delete = die_before_delete("delete", dying.storage.delete)  # type: ignore[method-assign]
    with pytest.raises(Crash):
        invoke(dying, up)
    assert bucket.exists("uploads/died.png.json") and bucket.exists("uploads/died.png.error.json")
    assert invoke(App(load_config(env), environ=env), up)["counts"] == {"duplicate": 1}  # FC's retry tidies
    assert bucket.exists("uploads/died.png.json") and not bucket.exists("uploads/died.png.error.json")
    assert billed(stack, data) == 1


def test_a_precheck_verdict_is_recorded_and_published_once_however_often_it_is_delivered(
        make_app: Callable[..., App], bucket: Bucket, stack: LocalStack) -> None:
    up = bucket.put("uploads/empty.jpg", b"")
    doc = bucket.put("uploads/letter.jpg", b"PK\x03\x04 a .docx, not an image")
    pdf = bucket.put("uploads/scan.jpg", b"%PDF-1.7\n damaged")  # the convert step's verdict, after the claim
    invoke(make_app(SINKS="oss,mns"), up, doc, pdf)
    first = {k: bucket.head_meta(k)["request-id"] for k in ("uploads/empty.jpg.error.json",
                                                             "uploads/letter.jpg.error.json",
                                                             "uploads/scan.jpg.error.json")}
    for _ in range(2):  # FC's duplicates and retries
        assert invoke(make_app(SINKS="oss,mns"), up, doc, pdf)["counts"] == {"duplicate": 3}
    codes = sorted(m["error"]["code"] for m in published(stack))
    assert codes == ["illegalImageContent", "illegalPDFContent", "unsupportedImageFormat"]
    assert {k: bucket.head_meta(k)["request-id"] for k in first} == first  # never rewritten


# 10 -- versioned buckets -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["Enabled", "Suspended"])
def test_a_versioned_output_bucket_would_let_two_claims_win_so_the_function_refuses_to_start(
        env: dict[str, str], bucket: Bucket, stack: LocalStack, status: str) -> None:
    assert stack.oss is not None
    stack.oss.service.state.set_versioning(bucket.name, status)  # type: ignore[arg-type]
    app = App(load_config(env), environ=env)
    out = app.sinks.outputs(bucket.name, "uploads/v.png")
    claims = [app.ledger.begin(out, bucket.name, "uploads/v.png", "ETAG", f"r{i}", expires_at=time.time() + 60,
                               fresh=True) for i in range(2)]
    assert [type(c).__name__ for c in claims] == ["Ticket", "Ticket"]  # why: forbid-overwrite is ignored there
    up = bucket.put("uploads/v.png", image("H1234567801"))
    with pytest.raises(ConfigError) as refused:
        invoke(App(load_config(env), environ=env), up)
    assert set(refused.value.problems) == {"SOURCE_BUCKETS"} and status in refused.value.problems["SOURCE_BUCKETS"]
    bucket.client.put_bucket(oss.PutBucketRequest(bucket="results-plain"))
    apart = {**env, "OUTPUT_BUCKET": "results-plain"}
    assert invoke(App(load_config(apart), environ=apart), up)["counts"] == {"result": 1}
