"""End to end over real HTTP: the handler, the real SDKs and the OSS/OCR stand-ins."""

from __future__ import annotations

from collections.abc import Callable

import orjson
import pytest

from permit_ocr.handler import App
from permit_ocr_local.fcruntime.context import Upload
from permit_ocr_local.fcruntime.stack import LocalStack
from permit_ocr_local.standins.faults import FaultPlan
from support import SAMPLE_TRUTH, Bucket, invoke, permit_image


@pytest.mark.parametrize("mode", ["url", "body"])
def test_upload_gets_decoded_result_beside_the_image(mode: str, make_app: Callable[..., App], bucket: Bucket,
                                                     stack: LocalStack) -> None:
    up = bucket.put("uploads/hk-permit.png", permit_image())
    summary = invoke(make_app(IMAGE_SOURCE=mode), up)
    assert summary["counts"] == {"result": 1}
    doc = orjson.loads((bucket.root / "uploads/hk-permit.png.json").read_bytes())
    assert doc["type"] == "result" and doc["schemaVersion"] == 1
    assert doc["data"]["data"] == SAMPLE_TRUTH
    assert doc["source"]["etag"] == up.etag and doc["source"]["key"] == up.key
    assert doc["ocr"]["imageSource"] == mode and doc["ocr"]["requestId"]
    meta = bucket.head_meta("uploads/hk-permit.png.json")
    assert meta["source-etag"] == up.etag
    assert stack.ocr is not None
    assert [c.source for c in stack.ocr.service.calls] == [mode]


HOSTILE_KEYS = ["uploads/with space.png", "uploads/a+b.png", "uploads/100%real.png", "uploads/张三 通行证.png",
                "uploads/深/層/フォルダ/x+y %20.png"]


@pytest.mark.parametrize("mode", ["url", "body"])
def test_hostile_keys_are_used_raw_and_get_their_result_beside_them(mode: str, make_app: Callable[..., App],
                                                                    bucket: Bucket) -> None:
    ups = [bucket.put(k, permit_image()) for k in HOSTILE_KEYS]
    summary = invoke(make_app(IMAGE_SOURCE=mode), *ups)
    assert summary["counts"] == {"result": len(HOSTILE_KEYS)}
    for k in HOSTILE_KEYS:
        assert (bucket.root / (k + ".json")).is_file(), k


def test_multi_record_event_processes_every_record(make_app: Callable[..., App], bucket: Bucket,
                                                   stack: LocalStack) -> None:
    ups = [bucket.put(f"uploads/{i}.png", permit_image()) for i in range(7)]
    summary = invoke(make_app(WORKERS="3"), *ups)
    assert summary["records"] == 7 and summary["counts"] == {"result": 7}
    assert stack.ocr is not None and stack.ocr.service.stats["billed"] == 7


def test_percent_encoded_event_key_falls_back_to_the_decoded_object(make_app: Callable[..., App],
                                                                    bucket: Bucket) -> None:
    real = bucket.put("uploads/张 三.png", permit_image())
    encoded = Upload(real.bucket, "uploads/%E5%BC%A0%20%E4%B8%89.png", real.etag, real.size)
    summary = invoke(make_app(), encoded)
    assert summary["counts"] == {"result": 1}
    assert (bucket.root / "uploads/张 三.png.json").is_file()


def test_a_signed_url_ocr_cannot_fetch_falls_back_to_sending_the_bytes(env: dict[str, str], bucket: Bucket,
                                                                         stack: LocalStack) -> None:
    from permit_ocr.config import load_config

    assert stack.ocr is not None
    up = bucket.put("uploads/late.png", permit_image())
    faults = FaultPlan(seed=1)
    faults.set("ocr", slow=1.0, slow_s=1.5)  # OCR fetches the 1-second URL after 1.5 s: expired
    stack.ocr._httpd.faults = faults
    e = {**env, "SIGNED_URL_EXPIRES": "1", "OCR_READ_TIMEOUT_MS": "5000"}
    summary = invoke(App(load_config(e), environ=e), up)
    assert summary["counts"] == {"result": 1}
    assert stack.ocr.service.stats["IllegalImageUrl"] == 2  # the URL was tried as LIMITED_RETRY allows
    assert [c.source for c in stack.ocr.service.calls if c.status == 200] == ["body"]
    assert stack.ocr.service.stats["billed"] == 1
    doc = orjson.loads(bucket.get("uploads/late.png.json"))
    assert doc["source"]["etag"] == up.etag and doc["ocr"]["imageSource"] == "body"


def test_duplicate_event_makes_no_second_ocr_call_but_a_new_version_does(make_app: Callable[..., App],
                                                                         bucket: Bucket, stack: LocalStack) -> None:
    assert stack.ocr is not None
    app = make_app()
    first = bucket.put("uploads/dup.png", permit_image())
    assert invoke(app, first)["counts"] == {"result": 1}
    assert invoke(app, first)["counts"] == {"duplicate": 1}
    assert invoke(make_app(), first)["counts"] == {"duplicate": 1}  # a fresh instance reads the stored result
    changed = bucket.put("uploads/dup.png", permit_image(size=(930, 626)))
    assert changed.etag != first.etag
    assert invoke(app, changed)["counts"] == {"result": 1}
    assert stack.ocr.service.stats["billed"] == 2


def test_a_later_success_replaces_a_stale_error_record(make_app: Callable[..., App], bucket: Bucket) -> None:
    app = make_app()
    bad = bucket.put("uploads/fixed.png", permit_image({}))  # not a permit: unmatchedImageType
    assert invoke(app, bad)["counts"] == {"error": 1}
    assert bucket.exists("uploads/fixed.png.error.json")
    good = bucket.put("uploads/fixed.png", permit_image())
    assert invoke(app, good)["counts"] == {"result": 1}
    assert not bucket.exists("uploads/fixed.png.error.json")


@pytest.mark.parametrize(("data", "code"), [
    (b"not an image at all", "unsupportedImageFormat"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "unsupportedImageFormat"),
])
def test_non_images_fail_the_precheck_without_a_paid_call(data: bytes, code: str, make_app: Callable[..., App],
                                                          bucket: Bucket, stack: LocalStack) -> None:
    assert stack.ocr is not None
    up = bucket.put("uploads/fake.jpg", data)
    assert invoke(make_app(), up)["counts"] == {"error": 1}
    err = orjson.loads((bucket.root / "uploads/fake.jpg.error.json").read_bytes())
    assert (err["error"]["code"], err["error"]["stage"]) == (code, "precheck")
    assert stack.ocr.service.stats["calls"] == 0


@pytest.mark.parametrize("size", [(15, 600), (900, 10), (2000, 40)])
def test_images_outside_the_api_limits_fail_the_precheck(size: tuple[int, int], make_app: Callable[..., App],
                                                         bucket: Bucket, stack: LocalStack) -> None:
    assert stack.ocr is not None
    up = bucket.put("uploads/odd.png", permit_image(size=size))
    assert invoke(make_app(), up)["counts"] == {"error": 1}
    err = orjson.loads((bucket.root / "uploads/odd.png.error.json").read_bytes())
    assert err["error"]["code"] == "illegalImageSize"
    assert stack.ocr.service.stats["calls"] == 0


def test_events_for_other_buckets_and_own_outputs_touch_nothing(make_app: Callable[..., App], bucket: Bucket,
                                                                stack: LocalStack) -> None:
    assert stack.ocr is not None
    own = bucket.put("uploads/a.png.json", b"{}")
    other = Upload("someone-elses-bucket", "uploads/a.png", "ABC", 10)
    summary = invoke(make_app(), own, other)
    assert summary["counts"] == {"skipped": 1, "rejected": 1}
    assert stack.ocr.service.stats["calls"] == 0
