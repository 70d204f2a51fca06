"""Exactly once for a PDF's pages (pages.py): each page is claimed and paid for at most once per version, through
a crash between two pages, a crash inside a page's paid call, redeliveries while the first delivery still works
and after it is done, and a page that fails transiently; the key ends with one index a reader finds.

The OCR stand-in's truth backend cannot read a truth mark from a rendered page, so it is wrapped here by a
recognizer that answers the sample permit for any JPEG and refuses anything else, as the API refuses PDF."""

from __future__ import annotations

import hashlib
import io
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
from PIL import Image

from permit_ocr.config import load_config
from permit_ocr.handler import App, RetryLater
from permit_ocr_local.fcruntime.context import oss_event
from permit_ocr_local.fcruntime.crash import Crash
from permit_ocr_local.fcruntime.stack import LocalStack
from permit_ocr_local.standins.ocr.backends import RecognitionError, build_data
from permit_ocr_local.standins.ocr.imageinfo import dimensions, sniff_format
from support import SAMPLE_TRUTH, Bucket, ctx, hold, in_thread, release

KEY = "uploads/scan.pdf"


class AnyJpeg:
    """Answers the sample permit for any JPEG (a rendered page), counting what it was sent; PDF is refused."""

    def __init__(self) -> None:
        self.seen: Counter[str] = Counter()

    def recognize(self, image: bytes, output_figure: bool) -> dict[str, Any]:
        if sniff_format(image) != "jpeg":
            raise RecognitionError("unsupportedImageFormat", "not an image the API takes")
        self.seen[hashlib.sha256(image).hexdigest()] += 1
        w, h = dimensions(image) or (0, 0)
        return build_data({**SAMPLE_TRUTH, "permitNumber": f"H{len(self.seen):08d}"}, w, h, output_figure)


@pytest.fixture
def ocr(stack: LocalStack) -> Iterator[AnyJpeg]:
    assert stack.ocr is not None
    original = stack.ocr.service.backend
    stack.ocr.service.backend = backend = AnyJpeg()
    yield backend
    stack.ocr.service.backend = original


def scan(pages: int) -> bytes:
    shots = [Image.new("RGB", (1100, 700), (200 + 10 * n, 210, 230)) for n in range(pages)]
    out = io.BytesIO()
    shots[0].save(out, "PDF", resolution=300, save_all=True, append_images=shots[1:])
    return out.getvalue()


def paid_per_page(stack: LocalStack) -> list[int]:
    """Paid calls per distinct image sent, in the order first sent (one entry per page)."""
    assert stack.ocr is not None
    billed = stack.ocr.service.billed_by_image()
    order = list(dict.fromkeys(c.sha256 for c in stack.ocr.service.calls if c.status == 200))
    return [billed[sha] for sha in order]


def outputs(bucket: Bucket) -> list[str]:
    root = bucket.root / "uploads"
    return sorted(p.name for p in root.iterdir() if p.name.startswith("scan.pdf."))


def index(bucket: Bucket) -> dict[str, Any]:
    return dict(orjson.loads(bucket.get(f"{KEY}.json")))


@pytest.fixture
def apps(env: dict[str, str]) -> Callable[..., App]:
    now = [1000.0]

    def build(advance: float = 0.0) -> App:
        now[0] += advance
        return App(load_config(env), environ=env, clock=lambda: now[0])

    return build


def crash_on_call(app: App, n: int) -> None:
    """The instance dies as its ``n``-th paid call starts (before anything is sent)."""
    calls = [0]
    inner = app.recognizer.recognize

    def dying(**kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] == n:
            raise Crash
        return inner(**kwargs)

    app.recognizer.recognize = dying  # type: ignore[method-assign]


def test_a_crash_between_two_pages_pays_each_page_once(apps: Callable[..., App], bucket: Bucket,
                                                        stack: LocalStack, ocr: AnyJpeg) -> None:
    up = bucket.put(KEY, scan(3))
    first = apps()
    crash_on_call(first, 2)  # page 1 is stored; the instance dies as page 2's call starts
    with pytest.raises(Crash):
        first.handle(oss_event([up]), ctx("first"))
    assert paid_per_page(stack) == [1]
    assert outputs(bucket) == ["scan.pdf.page-1.json"]  # no index yet: the key's outcome comes with the last page
    with pytest.raises(RetryLater):  # FC's retry while the dead instance's claims still run: deferred, nothing paid
        apps().handle(oss_event([up]), ctx("retry-early"))
    assert paid_per_page(stack) == [1]
    assert apps(advance=3600).handle(oss_event([up]), ctx("retry"))["counts"] == {"result": 1}
    assert paid_per_page(stack) == [1, 1, 1]
    assert outputs(bucket) == ["scan.pdf.json", "scan.pdf.page-1.json", "scan.pdf.page-2.json",
                               "scan.pdf.page-3.json"]
    assert [(p["page"], p["outcome"]) for p in index(bucket)["pages"]] == [(1, "result"), (2, "result"),
                                                                           (3, "result")]
    assert apps().handle(oss_event([up]), ctx("again"))["counts"] == {"duplicate": 1}
    assert paid_per_page(stack) == [1, 1, 1]


def test_a_crash_inside_a_pages_paid_call_leaves_only_that_page_to_pay_again(
        apps: Callable[..., App], bucket: Bucket, stack: LocalStack, ocr: AnyJpeg) -> None:
    up = bucket.put(KEY, scan(2))
    first = apps()
    inner = first.recognizer.recognize

    def paid_then_died(**kwargs: Any) -> Any:
        inner(**kwargs)
        raise Crash  # the answer came back; the instance died before storing it (docs/reliability.md's window)

    first.recognizer.recognize = paid_then_died  # type: ignore[method-assign]
    with pytest.raises(Crash):
        first.handle(oss_event([up]), ctx("first"))
    assert paid_per_page(stack) == [1] and outputs(bucket) == []
    assert apps(advance=3600).handle(oss_event([up]), ctx("retry"))["counts"] == {"result": 1}
    assert paid_per_page(stack) == [2, 1]  # the one window: page 1 paid again, page 2 once


def test_a_redelivery_while_the_first_delivery_works_a_page_pays_nothing(
        apps: Callable[..., App], bucket: Bucket, stack: LocalStack, ocr: AnyJpeg) -> None:
    from support import Gate

    assert stack.ocr is not None
    gate = Gate(ocr)
    stack.ocr.service.backend = gate  # type: ignore[assignment]
    data = scan(2)
    up = bucket.put(KEY, data)
    first_page = _first_page_jpeg(apps, data)
    entered = hold(gate, first_page)
    worker, box = in_thread(lambda: apps().handle(oss_event([up]), ctx("first")))
    assert entered.wait(30)
    with pytest.raises(RetryLater):  # the duplicate event: the version's claim is held, so it defers
        apps().handle(oss_event([up]), ctx("duplicate"))
    release(gate, first_page)
    worker.join(60)
    assert box and box[0]["counts"] == {"result": 1}
    assert apps().handle(oss_event([up]), ctx("duplicate-later"))["counts"] == {"duplicate": 1}
    assert paid_per_page(stack) == [1, 1]


def test_a_page_that_fails_transiently_is_the_only_one_paid_again(
        apps: Callable[..., App], bucket: Bucket, stack: LocalStack, ocr: AnyJpeg) -> None:
    up = bucket.put(KEY, scan(2))
    answers = {"n": 0}
    real = ocr.recognize

    def flaky(image: bytes, output_figure: bool) -> dict[str, Any]:
        answers["n"] += 1
        if answers["n"] == 2:
            raise RecognitionError("algorithmError", "the recognizer failed")
        return real(image, output_figure)

    ocr.recognize = flaky  # type: ignore[method-assign]
    first = apps()
    first.cfg = first.cfg.__class__(**{**first.cfg.__dict__, "ocr_max_attempts": 1})
    first.recognizer._cfg = first.cfg
    with pytest.raises(RetryLater):
        first.handle(oss_event([up]), ctx("first"))
    assert outputs(bucket) == ["scan.pdf.page-1.json", "scan.pdf.page-2.error.json"]
    assert orjson.loads(bucket.get(f"{KEY}.page-2.error.json"))["error"]["transient"] is True
    assert apps().handle(oss_event([up]), ctx("retry"))["counts"] == {"result": 1}
    assert paid_per_page(stack) == [1, 1]  # page 2's failed call was not billed; page 1 was not paid again
    assert outputs(bucket) == ["scan.pdf.json", "scan.pdf.page-1.json", "scan.pdf.page-2.json"]


def _first_page_jpeg(apps: Callable[..., App], data: bytes) -> bytes:
    """The bytes the function sends for page 1 (conversion is deterministic): what the gate holds."""
    from permit_ocr import pdf
    from permit_ocr.precheck import check_limits, inspect

    app = apps()
    info = check_limits(inspect(data), len(data), app.cfg.max_image_bytes, app.cfg.convert_max_bytes)
    return pdf.convert_page(pdf.open_pdf(data, 10), 1, info, app.cfg.max_image_bytes, 128, len(data)).body
