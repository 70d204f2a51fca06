"""Test helpers: test permits carrying their truth, the bucket seen through the real OSS SDK, invoke."""

from __future__ import annotations

import hashlib
import io
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import alibabacloud_oss_v2 as oss
from PIL import Image

from permit_ocr.handler import App
from permit_ocr_local.fcruntime.context import FcContext, Upload, oss_event
from permit_ocr_local.fcruntime.stack import DEFAULT_BUCKET, LocalStack
from permit_ocr_local.standins.ocr.backends import Backend
from permit_ocr_local.standins.ocr.truthmark import embed_truth

SAMPLE_TRUTH: dict[str, str] = {  # the API document's sample response
    "permitType": "港澳居民来往内地通行证", "nameCn": "何郑", "nameEn": "HE,CHENG", "birthDate": "2000.01.01",
    "sex": "男", "validPeriod": "2014.04.10-2019.04.09", "issueAuthority": "公安部出入境管理局", "issuePlace": "",
    "permitNumber": "H10387877", "issueCount": "01",
}


def permit_image(truth: dict[str, Any] | None = None, size: tuple[int, int] = (928, 626), fmt: str = "PNG") -> bytes:
    """A plain test picture carrying its truth (the OCR stand-in's truth backend reads it back)."""
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 210, 230)).save(buf, fmt)
    data = buf.getvalue()
    return embed_truth(data, truth if truth is not None else SAMPLE_TRUTH) if truth != {} else data





@dataclass
class Held:
    """A claim as the fence sees it (sinks unit tests): the version it is for and the seconds it still holds."""

    etag: str
    left: float = 60.0

    def time_left(self) -> float:
        return self.left


class Bucket:
    """The test's view of the stand-in bucket, through the real OSS SDK."""

    def __init__(self, stack: LocalStack, name: str = DEFAULT_BUCKET,
                 credentials: tuple[str, str, str | None] | None = None) -> None:
        e = stack.env()
        cfg = oss.config.load_default()
        creds = credentials or (e["ALIBABA_CLOUD_ACCESS_KEY_ID"], e["ALIBABA_CLOUD_ACCESS_KEY_SECRET"],
                                e["ALIBABA_CLOUD_SECURITY_TOKEN"])
        cfg.credentials_provider = oss.credentials.StaticCredentialsProvider(*creds)
        cfg.region = e["OSS_REGION"]
        cfg.endpoint = e["OSS_ENDPOINT"]
        cfg.retry_max_attempts = 1
        self.client = oss.Client(cfg)
        self.name = name
        self.root = stack.options.root / name

    def put(self, key: str, data: bytes) -> Upload:
        r = self.client.put_object(oss.PutObjectRequest(bucket=self.name, key=key, body=data))
        return Upload(self.name, key, str(r.etag).strip('"'), len(data))

    def get(self, key: str) -> bytes:
        return bytes(self.client.get_object(oss.GetObjectRequest(bucket=self.name, key=key)).body.content)

    def head_meta(self, key: str) -> dict[str, str]:
        return dict(self.client.head_object(oss.HeadObjectRequest(bucket=self.name, key=key)).metadata or {})

    def exists(self, key: str) -> bool:
        return bool(self.client.is_object_exist(self.name, key))



def invoke(app: App, *uploads: Upload, timeout: int = 60) -> dict[str, Any]:
    from permit_ocr_local.fcruntime.context import FunctionMeta

    return app.handle(oss_event(uploads), FcContext(function=FunctionMeta(timeout=timeout)))


class Gate:
    """Wraps the OCR stand-in's recognizer: images on hold wait (a slow OCR call) until released."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.hold: dict[str, threading.Event] = {}
        self.entered: dict[str, threading.Event] = {}

    def recognize(self, image: bytes, output_figure: bool) -> dict[str, Any]:
        sha = hashlib.sha256(image).hexdigest()
        if sha in self.hold:
            self.entered[sha].set()
            self.hold[sha].wait(30)
        return self.inner.recognize(image, output_figure)


def billed(stack: LocalStack, data: bytes) -> int:
    """Paid OCR calls for these image bytes so far."""
    assert stack.ocr is not None
    return stack.ocr.service.billed_by_image()[hashlib.sha256(data).hexdigest()]


def image(number: str) -> bytes:
    """A test permit whose permit number tells it apart (its bytes, and so its ETag, differ)."""
    return permit_image({**SAMPLE_TRUTH, "permitNumber": number})


def in_thread(fn: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    box: list[object] = []

    def run() -> None:
        try:
            box.append(fn())
        except BaseException as exc:
            box.append(exc)

    t = threading.Thread(target=run)
    t.start()
    return t, box


def hold(gate: Gate, data: bytes) -> threading.Event:
    """OCR calls for ``data`` wait until ``release``; the event returned is set once one has begun."""
    sha = hashlib.sha256(data).hexdigest()
    gate.hold[sha], gate.entered[sha] = threading.Event(), threading.Event()
    return gate.entered[sha]


def release(gate: Gate, data: bytes) -> None:
    gate.hold[hashlib.sha256(data).hexdigest()].set()


def ctx(request_id: str, timeout: int = 60) -> FcContext:
    from permit_ocr_local.fcruntime.context import FunctionMeta

    return FcContext(request_id=request_id, function=FunctionMeta(timeout=timeout))
