"""The pure parts of backfill/replay: classification, batching, the token bucket, checkpoints, cursors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from permit_ocr.config import load_config
from permit_ocr_local.backfill import (
    Checkpoint,
    CheckpointMismatch,
    Item,
    Listed,
    RunOptions,
    TokenBucket,
    classify,
    encode_event,
    failure_log_events,
    fc_endpoint,
    load_checkpoint,
    log_cursor,
    run_items,
    save_checkpoint,
)
from permit_ocr_local.fcemu import Upload

CFG = load_config({"SOURCE_BUCKETS": "bkt", "OUTPUT_PREFIX": "out/"})


def obj(key: str) -> Listed:
    return Listed(key, "E", 10, None)


@pytest.mark.parametrize(("key", "why"), [
    ("a.png", None), ("a.PNG", None), ("a.png.json", "skipped_output"), ("a.png.error.json", "skipped_output"),
    ("out/a.png", "skipped_output"), ("a.txt", "skipped_not_image"), ("a.png.claim.json", "skipped_output"),
])
def test_classify(key: str, why: str | None) -> None:
    assert classify(obj(key), CFG) == why


def test_suffix_filter_narrows_the_functions_suffixes() -> None:
    assert classify(obj("a.png"), CFG, suffixes=(".jpg",)) == "skipped_not_image"
    assert classify(obj("a.jpg"), CFG, suffixes=(".jpg",)) is None


def test_endpoint_forms() -> None:
    assert fc_endpoint("http://127.0.0.1:9000") == ("127.0.0.1:9000", "http")
    assert fc_endpoint("127.0.0.1:9000") == ("127.0.0.1:9000", "http")
    assert fc_endpoint("123.cn-hangzhou.fc.aliyuncs.com") == ("123.cn-hangzhou.fc.aliyuncs.com", "https")


def test_token_bucket_spaces_events_at_the_rate() -> None:
    now = [0.0]
    slept: list[float] = []
    tb = TokenBucket(4.0, clock=lambda: now[0], sleep=slept.append)
    assert tb.reserve() == 0.0  # the burst token
    assert tb.reserve() == pytest.approx(0.25)
    assert tb.reserve() == pytest.approx(0.5)
    now[0] = 10.0
    assert tb.reserve() == 0.0  # refilled, but never beyond the burst
    assert tb.reserve() == pytest.approx(0.25)


class Recorder:
    def __init__(self, fail_at: int | None = None) -> None:
        self.events: list[list[str]] = []
        self.fail_at = fail_at

    def send(self, event: bytes) -> str:
        if self.fail_at is not None and len(self.events) == self.fail_at:
            raise RuntimeError("FC said no")
        self.events.append([r["oss"]["object"]["key"] for r in json.loads(event)["events"]])
        return f"rid-{len(self.events)}"


def items(keys: list[str], skip: frozenset[str] = frozenset()) -> list[Item]:
    return [Item(k, None if k in skip else Upload("b", k, "E", 1), "skipped_done" if k in skip else None)
            for k in keys]


KEYS = [f"k{i:02d}.png" for i in range(10)]


def test_batches_checkpoint_after_each_and_resume_after_the_cursor(tmp_path: Path) -> None:
    path = tmp_path / "cp.json"
    sender = Recorder()
    opts = RunOptions(batch=3, rate=1000, checkpoint_path=path, max_batches=2)
    r = run_items(items(KEYS, frozenset({"k03.png"})), Checkpoint("backfill", "b", ""), sender, opts)
    assert r.stopped == "max-batches"
    assert sender.events == [["k00.png", "k01.png", "k02.png"], ["k04.png", "k05.png", "k06.png"]]
    saved = load_checkpoint(path, Checkpoint("backfill", "b", ""))
    assert saved.cursor == "k06.png" and saved.counts["listed"] == 7 and saved.counts["skipped_done"] == 1
    rest = [i for i in items(KEYS, frozenset({"k03.png"})) if i.cursor > saved.cursor]
    r2 = run_items(rest, saved, sender, RunOptions(batch=3, rate=1000, checkpoint_path=path))
    assert sender.events[2:] == [["k07.png", "k08.png", "k09.png"]]
    assert r2.checkpoint.complete and r2.checkpoint.counts["listed"] == 10
    assert r2.checkpoint.counts["invoked_records"] == 9 and r2.checkpoint.batches == 3


def test_a_batch_fc_refused_is_not_checkpointed(tmp_path: Path) -> None:
    path = tmp_path / "cp.json"
    r = run_items(items(KEYS), Checkpoint("backfill", "b", ""), Recorder(fail_at=1),
                  RunOptions(batch=4, rate=1000, checkpoint_path=path))
    assert r.stopped == "error" and "FC said no" in r.error
    assert json.loads(path.read_text())["cursor"] == "k03.png"  # the resume re-sends k04..


def test_payload_budget_splits_batches() -> None:
    sender = Recorder()
    one = len(encode_event([Upload("b", "k00.png", "E", 1)]))
    run_items(items(KEYS), Checkpoint("backfill", "b", ""), sender,
              RunOptions(batch=100, rate=1000, payload_budget=one * 3))
    assert all(len(e) <= 3 for e in sender.events) and sum(map(len, sender.events)) == 10


def test_checkpoint_of_another_job_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cp.json"
    save_checkpoint(path, Checkpoint("backfill", "b", "x/"))
    with pytest.raises(CheckpointMismatch):
        load_checkpoint(path, Checkpoint("backfill", "b", "y/"))
    assert not list(tmp_path.glob(".cp.json.*"))  # no temp file left behind


def test_failure_log_lines_plain_payloads_and_mns_messages() -> None:
    event = json.dumps({"events": []})
    payload = {"requestPayload": event, "requestContext": {"requestId": "r"}}
    lines = [json.dumps(payload), "", json.dumps({"message_id": "m", "body": json.dumps(payload)}), "junk"]
    assert list(failure_log_events(lines)) == [(1, event.encode()), (3, event.encode()), (4, None)]
    assert log_cursor(12, 3) < log_cursor(12, 10) < log_cursor(100, 0)
