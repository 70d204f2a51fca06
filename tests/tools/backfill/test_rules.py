"""The pure parts of backfill/replay: classification, batching, pacing, checkpoints, cursors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from permit_ocr.config import load_config
from permit_ocr.layout import META_ETAG, META_KIND, META_PENDING
from permit_ocr.storage import ObjectHead
from permit_ocr_local.fcruntime.context import Upload
from permit_ocr_local.tools.backfill import (
    REPLAY_MARK,
    Checkpoint,
    CheckpointError,
    CheckpointMismatch,
    Item,
    Listed,
    ListingError,
    RecordGone,
    RunOptions,
    SentBatch,
    classify,
    encode_event,
    fc_endpoint,
    is_final_record,
    load_checkpoint,
    option_problem,
    replay_decision,
    run_items,
    save_checkpoint,
)
from permit_ocr_local.tools.replay import Replayer, failure_log_events, log_cursor

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


def test_batches_are_paced_at_the_rate_with_the_functions_token_bucket() -> None:
    now = [0.0]
    slept: list[float] = []
    run_items(items(KEYS[:4]), Checkpoint("backfill", "b", ""), Recorder(), RunOptions(batch=1, rate=4.0),
              clock=lambda: now[0], sleep=slept.append)
    assert slept == pytest.approx([0.25, 0.5, 0.75])  # the first event goes at once, then one every 1/rate s


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


# --- issue 12 -------------------------------------------------------------------------------------------------


class MarkRecorder(Recorder):
    """Also keeps which keys carried the replay mark."""

    def __init__(self) -> None:
        super().__init__()
        self.marked: list[list[str]] = []

    def send(self, event: bytes) -> str:
        records = json.loads(event)["events"]
        self.marked.append([r["oss"]["object"]["key"] for r in records if r.get(REPLAY_MARK) == {"replay": True}])
        return super().send(event)


@pytest.mark.parametrize("max_batches", [0, -1])
def test_max_batches_below_one_is_refused(max_batches: int) -> None:
    problem = option_problem(batch=10, rate=5, max_batches=max_batches)
    assert problem is not None and "--max-batches" in problem


@pytest.mark.parametrize("rate", [float("nan"), float("inf"), -1.0, 0.0, 1e-300, 1e9])
def test_rate_must_be_finite_and_sane(rate: float) -> None:
    problem = option_problem(batch=10, rate=rate, max_batches=None)
    assert problem is not None and "--rate" in problem


def test_sane_options_pass() -> None:
    assert option_problem(batch=100, rate=0.01, max_batches=1) is None
    assert option_problem(batch=1, rate=1000, max_batches=None) is None


def test_max_batches_counts_the_batches_of_this_run_not_of_earlier_runs(tmp_path: Path) -> None:
    cp = Checkpoint("backfill", "b", "", batches=5)  # a resumed job that already sent 5
    sender = Recorder()
    r = run_items(items(KEYS), cp, sender, RunOptions(batch=2, rate=1000, max_batches=2))
    assert r.stopped == "max-batches" and len(sender.events) == 2 and r.checkpoint.batches == 7


def test_each_accepted_batch_is_reported_with_its_request_id() -> None:
    seen: list[SentBatch] = []
    r = run_items(items(KEYS[:5]), Checkpoint("backfill", "b", ""), Recorder(), RunOptions(batch=2, rate=1000),
                  on_batch=seen.append)
    assert [b.request_id for b in seen] == r.request_ids == ["rid-1", "rid-2", "rid-3"]
    assert [b.number for b in seen] == [1, 2, 3] and seen[0].keys == ("k00.png", "k01.png")
    assert "rid-2" in seen[1].line() and "k02.png .. k03.png" in seen[1].line()
    assert seen[2].as_dict()["keys"] == ["k04.png"]


def test_a_listing_error_stops_the_run_resumably_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "cp.json"

    def listing() -> Iterator[Item]:
        yield from items(KEYS[:5])
        raise ListingError("OSS HEAD oss://b/k05.png: InternalError (503) after 4 tries: boom")

    sender = Recorder()
    r = run_items(listing(), Checkpoint("backfill", "b", ""), sender,
                  RunOptions(batch=2, rate=1000, checkpoint_path=path))
    assert r.stopped == "error" and "\n" not in r.error and "k05.png" in r.error
    assert sender.events == [["k00.png", "k01.png"], ["k02.png", "k03.png"]]  # k04 was never sent ...
    assert json.loads(path.read_text())["cursor"] == "k03.png"  # ... so the resume starts with it


def head(etag: str, kind: str, pending: bool = False) -> ObjectHead:
    return ObjectHead("X", 1, {META_ETAG: etag, META_KIND: kind, **({META_PENDING: "mns"} if pending else {})})


@pytest.mark.parametrize(("result", "error", "include", "expected"), [
    (None, None, False, (None, False)),  # no outcome at all: send
    (None, head("E", "error-retrying"), False, (None, False)),  # transient record: send, no delete needed
    (None, head("E", "error"), False, ("skipped_permanent", False)),  # a verdict is kept ...
    (None, head("E", "error"), True, (None, True)),  # ... unless the operator insists, with the mark
    (None, head("OLD", "error"), False, (None, False)),  # a verdict about another version says nothing
    (head("E", "result"), head("E", "error"), True, ("skipped_done", False)),
    # stored with its MNS message still owed: sent, so the function (claim holder) publishes it
    (None, head("E", "error", pending=True), False, (None, False)),
    (head("E", "result", pending=True), None, False, (None, False)),
])
def test_replay_decision(result: ObjectHead | None, error: ObjectHead | None, include: bool,
                         expected: tuple[str | None, bool]) -> None:
    assert replay_decision(result, error, "E", include_permanent=include) == expected


def test_backfill_skips_a_verdict_only_once_its_message_is_delivered() -> None:
    assert is_final_record(head("E", "error"), "E")
    assert not is_final_record(head("E", "error", pending=True), "E")  # owed: backfill sends it, the function publishes
    assert not is_final_record(head("E", "error-retrying"), "E") and not is_final_record(head("OLD", "error"), "E")


def test_a_marked_record_travels_alone_and_carries_the_mark() -> None:
    sender = MarkRecorder()
    batch = [Item(k, Upload("b", k, "E", 1), replay=k in ("k02.png", "k03.png")) for k in KEYS[:6]]
    run_items(batch, Checkpoint("replay", "b", ""), sender, RunOptions(batch=10, rate=1000))
    assert sender.events == [["k00.png", "k01.png"], ["k02.png"], ["k03.png"], ["k04.png", "k05.png"]]
    assert sender.marked == [[], ["k02.png"], ["k03.png"], []]


@pytest.mark.parametrize("text", ["[]", "{}", "[1, 2]", "null", "7", '"x"'])
def test_a_checkpoint_that_is_not_one_is_refused_in_one_line(tmp_path: Path, text: str) -> None:
    path = tmp_path / "cp.json"
    path.write_text(text)
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(path, Checkpoint("backfill", "b", ""))
    assert "\n" not in str(e.value) and str(path) in str(e.value)


@pytest.mark.parametrize(("field_", "value"), [
    ("counts", [1]), ("counts", {"listed": -1}), ("counts", {"listed": True}), ("batches", "2"),
    ("batches", True), ("cursor", None), ("complete", "yes"), ("job", []), ("version", 1),
])
def test_a_checkpoint_with_a_wrong_field_is_refused(tmp_path: Path, field_: str, value: object) -> None:
    path = tmp_path / "cp.json"
    save_checkpoint(path, Checkpoint("backfill", "b", ""))
    doc = json.loads(path.read_text())
    path.write_text(json.dumps(doc | {field_: value}))
    with pytest.raises(CheckpointError):
        load_checkpoint(path, Checkpoint("backfill", "b", ""))


def test_a_directory_or_garbage_is_not_a_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="directory"):
        load_checkpoint(tmp_path, Checkpoint("backfill", "b", ""))
    (tmp_path / "x.json").write_bytes(b"\xff{")
    with pytest.raises(CheckpointError, match="not JSON"):
        load_checkpoint(tmp_path / "x.json", Checkpoint("backfill", "b", ""))


@pytest.mark.parametrize(("saved", "fresh"), [
    ({"suffixes": [".png"]}, {"suffixes": [".jpg"]}),
    ({"since": "2024-01-01T00:00:00+00:00"}, {"since": ""}),
    ({"codes": ["Throttling.User"]}, {"codes": []}),
    ({"function": "permit-ocr"}, {"function": "other"}),
    ({"qualifier": "LATEST"}, {"qualifier": "prod"}),
    ({"includePermanent": False}, {"includePermanent": True}),
])
def test_a_checkpoint_belongs_to_every_filter_and_target_of_its_job(
        tmp_path: Path, saved: dict[str, object], fresh: dict[str, object]) -> None:
    path = tmp_path / "cp.json"
    save_checkpoint(path, Checkpoint("backfill", "b", "", job=saved, cursor="k5"))
    with pytest.raises(CheckpointMismatch) as e:
        load_checkpoint(path, Checkpoint("backfill", "b", "", job=fresh))
    name = next(iter(saved))
    assert name in str(e.value) and "\n" not in str(e.value)
    assert load_checkpoint(path, Checkpoint("backfill", "b", "", job=dict(saved))).cursor == "k5"


@pytest.mark.parametrize("value", ["ftp://host", "http://", "https://h/path", "a b", ""])
def test_endpoint_that_is_no_endpoint_is_refused(value: str) -> None:
    with pytest.raises(ValueError):
        fc_endpoint(value)


BESIDE = load_config({"SOURCE_BUCKETS": "bkt"})  # outputs beside the image


class Outputs:
    """A bucket as the Replayer sees it: HEADs and GETs answered from a dict (no SDK involved)."""

    def __init__(self, heads: dict[str, ObjectHead]) -> None:
        self.heads = heads

    def head(self, bucket: str, key: str) -> ObjectHead | None:
        return self.heads.get(key)

    def read(self, bucket: str, key: str) -> bytes:
        raise RecordGone(key)  # every record vanishes between its HEAD and its GET


def test_a_record_replaced_between_head_and_get_is_skipped_not_a_crash() -> None:
    world = Outputs({"a.png": ObjectHead("E", 1, {}), "a.png.error.json": head("E", "error-retrying")})
    replayer = Replayer(BESIDE, world.head, world.read, codes=frozenset({"ServiceUnavailable"}))
    assert replayer.item("c", "bkt", "a.png", "E").skip == "skipped_replaced"
    listed = list(replayer.from_records([Listed("a.png.error.json", "X", 1, None)], "bkt"))
    assert [i.skip for i in listed] == ["skipped_replaced"]


def test_replayer_sends_transient_and_missing_keeps_permanent_and_done() -> None:
    world = Outputs({k: ObjectHead("E", 1, {}) for k in ("t.png", "m.png", "p.png", "d.png")} | {
        "t.png.error.json": head("E", "error-retrying"), "p.png.error.json": head("E", "error"),
        "d.png.json": head("E", "result")})
    replayer = Replayer(BESIDE, world.head, world.read)
    got = {k: replayer.item(k, "bkt", k, "E") for k in ("t.png", "m.png", "p.png", "d.png")}
    assert {k: (i.upload is not None, i.skip, i.replay) for k, i in got.items()} == {
        "t.png": (True, None, False), "m.png": (True, None, False),
        "p.png": (False, "skipped_permanent", False), "d.png": (False, "skipped_done", False)}
    insist = Replayer(BESIDE, world.head, world.read, include_permanent=True)
    assert insist.item("p.png", "bkt", "p.png", "E").replay


class WithMarkers(Outputs):
    """The bucket with the version's marker chain readable (the claim a verdict leaves for the function timeout)."""

    def __init__(self, heads: dict[str, ObjectHead], markers: dict[str, bytes]) -> None:
        super().__init__(heads)
        self.markers = markers

    def read(self, bucket: str, key: str) -> bytes:
        if key in self.markers:
            return self.markers[key]
        raise RecordGone(key)


def held_world(expires_at: float) -> WithMarkers:
    from permit_ocr.layout import marker_key
    from permit_ocr.ledger import RUNNING, Holder, marker_body

    marker = marker_body("E", Holder("t", "verdict", expires_at, RUNNING), 1000.0)
    return WithMarkers({"p.png": ObjectHead("E", 1, {}), "p.png.error.json": head("E", "error")},
                       {marker_key("bkt", "p.png", "E", 0): marker})


def test_replay_right_after_a_verdict_waits_for_its_claim_instead_of_sending_what_the_function_would_defer() -> None:
    world, now = held_world(expires_at=1095.0), [1000.0]
    slept: list[float] = []
    said: list[str] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    replayer = Replayer(BESIDE, world.head, world.read, include_permanent=True, clock=lambda: now[0],
                        sleep=sleep, say=said.append)
    item = replayer.item("c", "bkt", "p.png", "E")
    assert item.upload is not None and item.replay  # sent, once the claim expired: the function takes over
    assert slept == [98.0] and len(said) == 1 and "waiting 97 s" in said[0] and "ClaimHeld" in said[0]  # + skew
    free = Replayer(BESIDE, world.head, world.read, include_permanent=True, clock=lambda: 2000.0,
                    sleep=lambda s: pytest.fail("no claim held: no wait"), say=said.append)
    assert free.item("c", "bkt", "p.png", "E").upload is not None


def test_a_claim_held_longer_than_any_function_timeout_is_not_waited_for_and_not_sent() -> None:
    world = held_world(expires_at=1000.0 + 3600)
    said: list[str] = []
    replayer = Replayer(BESIDE, world.head, world.read, include_permanent=True, clock=lambda: 1000.0,
                        sleep=lambda s: pytest.fail("must not wait an hour"), say=said.append)
    assert replayer.item("c", "bkt", "p.png", "E").skip == "skipped_held"
    assert "not sent" in said[0] and "run again after" in said[0]


def test_replay_does_not_wait_for_a_claim_whose_holder_stored_the_verdict_it_asks_about_again() -> None:
    # the function lets a replay take over from a live holder that stored this very verdict, settled: it writes
    # nothing more (ledger.begin), so waiting for its claim to run out only costs the operator time
    from permit_ocr.layout import META_REQUEST, marker_key
    from permit_ocr.ledger import RUNNING, Holder, marker_body

    verdict = head("E", "error")
    verdict = ObjectHead(verdict.etag, verdict.size, {**verdict.metadata, META_REQUEST: "verdict"})
    marker = marker_body("E", Holder("t", "verdict", 1095.0, RUNNING), 1000.0)
    world = WithMarkers({"p.png": ObjectHead("E", 1, {}), "p.png.error.json": verdict},
                        {marker_key("bkt", "p.png", "E", 0): marker})
    replayer = Replayer(BESIDE, world.head, world.read, include_permanent=True, clock=lambda: 1000.0,
                        sleep=lambda s: pytest.fail("the holder is done: no wait"), say=lambda line: None)
    assert replayer.item("c", "bkt", "p.png", "E").upload is not None
