"""`make bench` (second table): the exactly-once windows that remain, measured on the local stack with the real
handler and the real SDKs. docs/reliability.md lists them; this prints how wide each one is here.

    .venv/bin/python bench/windows.py [--images 100]

- fence -> write: from the fence's listing (the version is current, the slot as expected) to the outcome PUT's
  answer. A write of a newer version landing inside it is the one race OSS (no conditional PUT) leaves open.
- paid answer -> stored: from the OCR answer to the stored document's PUT answer: an instance dying inside it
  loses the answer, and the next attempt pays again.
- store budget: how long the fence keeps retrying the first write through an OSS outage right after the paid
  call, measured against an outage that never ends (longer outages: the answer stays in the instance's memory).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from permit_ocr.config import load_config
from permit_ocr.fence import BACKOFF_S, MAX_BACKOFF_S, MAX_WRITE_TRIES, Fence
from permit_ocr.handler import App, RetryLater
from permit_ocr.layout import JSON_TYPE
from permit_ocr.ledger import CLOCK_SKEW_S, FRESH_VERSION_S
from permit_ocr.storage import OUTCOME_PUT_EXPIRES_S
from permit_ocr_local.fcruntime.context import FcContext, FunctionMeta, oss_event
from permit_ocr_local.fcruntime.stack import LocalStack, StackOptions
from support import SAMPLE_TRUTH, Bucket, permit_image


class Stamps:
    """When the fence's listing answered and when OCR answered, per thread (one record per invocation here)."""

    def __init__(self) -> None:
        self.local = threading.local()
        self.fence_to_write: list[float] = []
        self.answer_to_stored: list[float] = []


def instrument(app: App, stamps: Stamps) -> None:
    look, put, recognize = app.sinks.fence.look, app.storage.put_outcome, app.recognizer.recognize

    def timed_look(*args: Any, **kwargs: Any) -> Any:
        out = look(*args, **kwargs)
        stamps.local.looked = time.perf_counter()
        return out

    def timed_recognize(*args: Any, **kwargs: Any) -> Any:
        out = recognize(*args, **kwargs)
        stamps.local.answered = time.perf_counter()
        return out

    def timed_put(bucket: str, key: str, body: bytes, content_type: str, meta: Any) -> Any:
        out = put(bucket, key, body, content_type, meta)
        now = time.perf_counter()
        if content_type == JSON_TYPE:
            looked = getattr(stamps.local, "looked", None)
            answered = getattr(stamps.local, "answered", None)
            if looked is not None:
                stamps.fence_to_write.append(now - looked)
            if answered is not None:
                stamps.answer_to_stored.append(now - answered)
                stamps.local.answered = None
        return out

    app.sinks.fence.look = timed_look  # type: ignore[method-assign]
    app.storage.put_outcome = timed_put  # type: ignore[method-assign]
    app.recognizer.recognize = timed_recognize  # type: ignore[method-assign]


def ms(xs: list[float], q: float) -> str:
    xs = sorted(xs)
    return f"{xs[min(len(xs) - 1, int(q * len(xs)))] * 1000:.1f} ms" if xs else "-"


def store_budget_s(stack: LocalStack, env: dict[str, str]) -> float:
    """Seconds the first write is retried through an outage that starts with the OCR answer and never ends."""
    bucket = Bucket(stack)
    up = bucket.put("windows/outage.png", permit_image({**SAMPLE_TRUTH, "permitNumber": "H7777777701"}))
    rule = stack.faults.add_rule({"service": "oss", "status": 503, "code": "ServiceUnavailable",
                                  "start_on": {"service": "ocr"}}, first=True)
    app = App(load_config(env), environ=env)
    answered: list[float] = []
    recognize = app.recognizer.recognize

    def stamp(*args: Any, **kwargs: Any) -> Any:
        out = recognize(*args, **kwargs)
        answered.append(time.perf_counter())
        return out

    app.recognizer.recognize = stamp  # type: ignore[method-assign]
    gave_up = 0.0
    write: Callable[..., Any] = Fence._until_claim_ends

    def timed(self: Fence, claim: Any, call: Callable[[], Any]) -> Any:
        nonlocal gave_up
        try:
            return write(self, claim, call)
        finally:
            if answered and not gave_up:
                gave_up = time.perf_counter()

    Fence._until_claim_ends = timed  # type: ignore[method-assign]
    try:
        app.handle(oss_event([up]), FcContext(function=FunctionMeta(timeout=120)))
    except RetryLater:
        pass
    finally:
        Fence._until_claim_ends = write  # type: ignore[method-assign]
        stack.faults.remove_rule(rule)
    return gave_up - answered[0] if answered and gave_up else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, LocalStack(StackOptions(root=Path(tmp))) as stack:
        env = {**stack.env(), "OCR_QPS": "1000"}
        bucket = Bucket(stack)
        stamps = Stamps()
        app = App(load_config(env), environ=env)
        instrument(app, stamps)
        print(f"bench: exactly-once windows ({args.images} uploads through the real handler) ...", file=sys.stderr)
        for n in range(args.images):
            up = bucket.put(f"windows/{n}.png", permit_image({**SAMPLE_TRUTH, "permitNumber": f"H{n:08d}01"}))
            app.handle(oss_event([up]), FcContext(function=FunctionMeta(timeout=120)))
        budget = store_budget_s(stack, env)
        cfg = load_config(env)
    scheduled = sum(min(MAX_BACKOFF_S, BACKOFF_S * 2**a) for a in range(MAX_WRITE_TRIES - 1))
    rows = [
        ("fence -> write (check to the PUT's answer)", f"p50 {ms(stamps.fence_to_write, .5)}, "
         f"p99 {ms(stamps.fence_to_write, .99)}, max {ms(stamps.fence_to_write, 1)}; a PUT OSS receives more "
         f"than {OUTCOME_PUT_EXPIRES_S - 1}-{OUTCOME_PUT_EXPIRES_S} s after signing is refused",
         "a newer version's outcome written inside it is replaced by the older one"),
        ("paid answer -> stored (crash window)", f"p50 {ms(stamps.answer_to_stored, .5)}, "
         f"p99 {ms(stamps.answer_to_stored, .99)}", "an instance dying inside it: one paid call again"),
        ("store budget (OSS outage after the paid call)", f"{budget:.1f} s measured ({scheduled:.1f} s of "
         f"backoff over {MAX_WRITE_TRIES} tries)", "longer: kept in the instance's memory; a retry elsewhere pays"),
        ("a call our side gives up on (OCR_READ_TIMEOUT_MS)", f"calls longer than {cfg.ocr_read_timeout_ms / 1000:g} s",
         "the service may bill it, and the retry again"),
        ("a marker deleted by hand before its version is old", f"{FRESH_VERSION_S / 60:g} min after the upload",
         "a delivery inside it pays again"),
        ("clock skew between instances", f"> {CLOCK_SKEW_S:g} s", "a live claim taken over: two paid calls"),
    ]
    print("| window | width here | cost when hit |")
    print("|---|---|---|")
    for name, width, cost in rows:
        print(f"| {name} | {width} | {cost} |")
    print(f"\n(local stack on 127.0.0.1, {args.images} images: fence-to-write mean "
          f"{statistics.mean(stamps.fence_to_write) * 1000:.1f} ms; against OSS it is one PUT's round trip)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
