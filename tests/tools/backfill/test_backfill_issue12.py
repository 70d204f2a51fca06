"""Issue 12, one test (or more) per finding: replay keeps every outcome until a new one replaces it, never pays
again for a permanent verdict unless told to, listing survives OSS errors, options and checkpoints are
validated, and every accepted batch is traceable to the function's logs by its request id. All through the
real SDKs against the stand-ins, the commands run as an operator runs them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from permit_ocr.config import load_config
from permit_ocr.credentials import resolve
from permit_ocr.sinks import JSON_TYPE
from permit_ocr.storage import Storage
from permit_ocr_local.fcruntime.context import Upload
from permit_ocr_local.fcruntime.function import FAILURE_TOPIC
from permit_ocr_local.fcruntime.invoker import failure_payload
from permit_ocr_local.tools.backfill import encode_event
from permit_ocr_local.tools.backfill.job import EXIT_NOTHING_SENT
from support import permit_image
from tools.backfill.backfill_env import FAST, Env, md5, summary_of, truth, world

Capture = pytest.CaptureFixture[str]


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    yield from world(tmp_path)


def permits(env: Env, folder: str, n: int, start: int = 0) -> dict[str, bytes]:
    data = {f"{env.prefix}{folder}/{i}.png": permit_image(truth(start + i), size=(40, 40)) for i in range(n)}
    for k, d in data.items():
        env.drop(k, d)
    return data


def transient_records(env: Env, folder: str, n: int, capsys: Capture, start: int = 0) -> dict[str, bytes]:
    """``n`` permits whose only outcome is a transient error record (OCR was down beyond every retry)."""
    data = permits(env, folder, n, start)
    env.plan.set("ocr", server_error=1.0)
    assert env.cli("backfill", "--prefix", f"{env.prefix}{folder}/", "--batch", "5") == 0
    env.idle()
    env.plan.set("ocr")
    for k in data:
        err = env.doc(k + ".error.json")
        assert err is not None and err["error"]["transient"], k
    capsys.readouterr()
    return data


def permanent_records(env: Env, folder: str, n: int, capsys: Capture) -> dict[str, bytes]:
    """``n`` images the recognizer refused: a permanent ``unmatchedImageType`` verdict each."""
    data = {f"{env.prefix}{folder}/{i}.png": permit_image({}, size=(41 + i, 40)) for i in range(n)}
    for k, d in data.items():
        env.drop(k, d)
    assert env.cli("backfill", "--prefix", f"{env.prefix}{folder}/") == 0
    env.idle()
    for k in data:
        err = env.doc(k + ".error.json")
        assert err is not None and err["error"]["code"] == "unmatchedImageType" and not err["error"]["transient"]
    capsys.readouterr()
    return data


def only_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert "Traceback" not in err
    return lines[0]


# --- 1. replay never destroys an outcome before a replacement exists -----------------------------------------


def test_replay_to_a_dead_endpoint_keeps_every_record_and_the_rerun_replays_them(env: Env, capsys: Capture) -> None:
    images = transient_records(env, "a", 2, capsys)
    before = {k: env.doc(k + ".error.json") for k in images}
    assert env.cli("replay", "--endpoint", "http://127.0.0.1:9") == 1  # refused, 5 tries, ~8 s of backoff
    assert "rerun the same command" in only_line(capsys.readouterr().err)
    assert {k: env.doc(k + ".error.json") for k in images} == before  # nothing deleted, nothing changed
    assert env.cli("replay") == 0
    env.idle()
    s = summary_of(capsys.readouterr().out)
    assert s["counts"]["invoked_records"] == 2
    for k, d in images.items():
        assert env.doc(k + ".json")["source"]["etag"] == md5(d)  # type: ignore[index]
        assert not env.path(k + ".error.json").exists()  # replaced by the function, not by replay


def test_fc_failing_mid_replay_leaves_every_record_in_place(env: Env, tmp_path: Path, capsys: Capture) -> None:
    images = transient_records(env, "a", 6, capsys)
    env.plan.only = lambda service, request: request.raw_path.endswith("/invocations")  # GetFunction passes
    env.plan.set("fc", server_error=1.0)
    cp = str(tmp_path / "rp.json")
    sent = env.fc.state.stats["async"]
    assert env.cli("replay", "--batch", "2", "--checkpoint", cp, "--fc-attempts", "2") == 1
    assert "503" in only_line(capsys.readouterr().err)
    assert all(env.doc(k + ".error.json") is not None for k in images) and env.fc.state.stats["async"] == sent
    env.plan.set("fc")
    assert env.cli("replay", "--batch", "2", "--checkpoint", cp) == 0
    env.idle()
    for k in images:
        assert env.doc(k + ".json") is not None and not env.path(k + ".error.json").exists()


# --- 2. permanent verdicts are not paid for again ------------------------------------------------------------


@pytest.mark.parametrize("codes", [(), ("unmatchedImageType",), ("unmatchedImageType", "ServiceUnavailable")])
def test_replay_keeps_permanent_verdicts_and_asks_ocr_nothing_about_them(
        env: Env, capsys: Capture, codes: tuple[str, ...]) -> None:
    refused = permanent_records(env, "p", 2, capsys)
    retry = transient_records(env, "t", 2, capsys)
    records = {k: env.doc(k + ".error.json") for k in refused}
    asked = env.ocr_calls()
    # with --code unmatchedImageType alone nothing is left to send: it changed nothing and says so (exit 4)
    sent_nothing = codes == ("unmatchedImageType",)
    assert env.cli("replay", *[a for c in codes for a in ("--code", c)]) == (EXIT_NOTHING_SENT if sent_nothing else 0)
    env.idle()
    out = capsys.readouterr()
    calls = env.ocr_calls()
    assert all(calls[sha_of(d)] == asked[sha_of(d)] for d in refused.values())  # OCR never asked again
    assert {k: env.doc(k + ".error.json") for k in refused} == records  # untouched
    s = summary_of(out.out)
    assert s["counts"]["skipped_permanent"] == 2 and "--include-permanent" in out.err
    assert s["counts"]["invoked_records"] == (0 if codes == ("unmatchedImageType",) else 2)
    if codes != ("unmatchedImageType",):
        assert all(env.doc(k + ".json") is not None for k in retry)


def sha_of(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def test_failure_log_replays_only_records_whose_outcome_is_transient_or_missing(
        env: Env, capsys: Capture) -> None:
    refused = permanent_records(env, "p", 1, capsys)
    retry = transient_records(env, "t", 1, capsys)
    missing = permits(env, "m", 1, start=50)  # never processed at all
    done = permits(env, "d", 1, start=60)
    assert env.cli("backfill", "--prefix", f"{env.prefix}d/") == 0
    env.idle()
    # one transient record failed a whole backfill batch: FC hands the destination every record of it
    batch = [Upload(env.bucket, k, md5(d), len(d)) for part in (refused, retry, missing, done)
             for k, d in part.items()]
    mns = env.fn.stack.mns
    assert mns is not None
    mns.state.create_topic("mixed")
    mns.state.publish("mixed", json.dumps(failure_payload(encode_event(batch), "1-0-0", "RetryLater", "arn")),
                      "fc-failure")
    asked = env.ocr_calls()
    capsys.readouterr()
    assert env.cli("replay", "--failure-log", str(env.root / ".mns" / "mixed.jsonl")) == 0
    env.idle()
    s = summary_of(capsys.readouterr().out)
    (rk, rd), = refused.items()
    assert env.ocr_calls()[sha_of(rd)] == asked[sha_of(rd)]
    assert env.doc(rk + ".error.json")["error"]["code"] == "unmatchedImageType"  # type: ignore[index]
    assert s["counts"]["invoked_records"] == 2
    assert s["counts"]["skipped_permanent"] == 1 and s["counts"]["skipped_done"] == 1
    for k in (*retry, *missing):
        assert env.doc(k + ".json") is not None and not env.path(k + ".error.json").exists()
    assert env.ocr.billed_by_image()[sha_of(next(iter(done.values())))] == 1


def plant_records(env: Env, images: dict[str, bytes], capsys: Capture, *, final: bool) -> None:
    """Error records for ``images`` as the function writes them (the body of a real one, moved to each image's
    current version), without running the function for each: a permanent one is what a since-fixed bug would
    have left; transient ones are what an OCR outage leaves, made here in bulk."""
    model = permanent_records(env, "model", 1, capsys) if final else transient_records(env, "model", 1, capsys,
                                                                                       start=990)
    template: dict[str, Any] = env.doc(next(iter(model)) + ".error.json")  # type: ignore[assignment]
    storage = Storage(load_config(dict(env.fn.env())), lambda: resolve(env.fn.env()))
    for key, data in images.items():
        doc = template | {"source": template["source"] | {"key": key, "etag": md5(data), "size": len(data)}}
        storage.put(env.bucket, key + ".error.json", json.dumps(doc).encode(), JSON_TYPE,
                    {"source-etag": md5(data), "permit-ocr": "error" if final else "error-retrying", "pending": ""})


def test_include_permanent_sends_the_replay_mark_one_image_per_event_with_a_warning(
        env: Env, capsys: Capture) -> None:
    images = permits(env, "x", 2, start=70)
    plant_records(env, images, capsys, final=True)
    assert env.cli("replay", "--prefix", f"{env.prefix}x/", "--include-permanent", "--batch", "10") == 0
    env.idle()
    out = capsys.readouterr()
    s = summary_of(out.out)
    assert "warning" in out.err and "paid" in out.err
    assert s["counts"]["replayed_permanent"] == 2 and s["batches"] == 2  # alone: an FC retry cannot re-pay it
    for k in images:  # until the function has replaced it, the verdict is still there
        assert env.doc(k + ".json") is not None or env.doc(k + ".error.json") is not None


def test_include_permanent_recognizes_a_permanent_verdict_again(env: Env, capsys: Capture) -> None:
    images = permits(env, "x", 1, start=80)
    (k, d), = images.items()
    plant_records(env, images, capsys, final=True)
    assert env.cli("replay", "--prefix", f"{env.prefix}x/", "--include-permanent") == 0
    env.idle()
    assert env.doc(k + ".json")["data"]["data"]["permitNumber"] == truth(80)["permitNumber"]  # type: ignore[index]
    assert not env.path(k + ".error.json").exists()
    assert env.ocr.billed_by_image()[sha_of(d)] == 1


# --- 3. listing survives OSS errors; credentials are checked before the first batch --------------------------


def test_listing_rides_out_transient_head_errors(env: Env, capsys: Capture) -> None:
    images = permits(env, "h", 12)
    env.plan.only = lambda service, request: service != "oss" or request.method == "HEAD"
    env.plan.set("oss", server_error=0.4)
    code = env.cli("backfill", "--prefix", f"{env.prefix}h/", "--batch", "4", "--no-progress")
    env.plan.set("oss")
    env.idle()
    assert code == 0, capsys.readouterr().err
    assert summary_of(capsys.readouterr().out)["counts"]["invoked_records"] == len(images)


def test_a_persistent_head_failure_stops_with_one_line_and_the_rerun_resumes(
        env: Env, tmp_path: Path, capsys: Capture) -> None:
    images = permits(env, "h", 6)
    cp = str(tmp_path / "bf.json")
    env.plan.only = lambda service, request: service == "oss" and request.method == "HEAD"
    env.plan.set("oss", server_error=1.0)
    assert env.cli("backfill", "--prefix", f"{env.prefix}h/", "--checkpoint", cp) == 1
    line = only_line(capsys.readouterr().err)
    assert "HEAD" in line and "rerun the same command" in line
    assert env.fc.state.stats["async"] == 0
    env.plan.set("oss")
    assert env.cli("backfill", "--prefix", f"{env.prefix}h/", "--checkpoint", cp) == 0
    env.idle()
    assert all(env.doc(k + ".json") is not None for k in images)


@pytest.mark.parametrize("command", ["backfill", "replay"])
def test_a_bad_secret_is_one_line_and_exit_2_before_anything_is_sent(
        env: Env, capsys: Capture, monkeypatch: pytest.MonkeyPatch, command: str) -> None:
    transient_records(env, "s", 2, capsys)
    sent = env.fc.state.stats["async"]
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "not-the-secret")
    assert env.cli(command) == 2
    assert "SignatureDoesNotMatch" in only_line(capsys.readouterr().err)
    assert env.fc.state.stats["async"] == sent


def test_an_unknown_function_is_one_line_and_exit_2(env: Env, capsys: Capture) -> None:
    permits(env, "s", 1)
    assert env.cli("backfill", "--function", "no-such-function") == 2
    assert "FunctionNotFound" in only_line(capsys.readouterr().err)


# --- 4. options --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("option", [("--max-batches", "0"), ("--max-batches", "-3"), ("--rate", "nan"),
                                    ("--rate", "1e-300"), ("--rate", "inf"), ("--batch", "0"),
                                    ("--fc-timeout", "nan"), ("--suffix", ".txt"), ("--endpoint", "ftp://x")])
def test_invalid_options_send_nothing_and_say_why_in_one_line(
        env: Env, capsys: Capture, option: tuple[str, str]) -> None:
    permits(env, "o", 2)
    assert env.cli("backfill", *option) == 2
    assert option[0] in only_line(capsys.readouterr().err)
    assert env.fc.state.stats["async"] == 0


def test_max_batches_is_per_run_so_a_canary_can_be_resumed_by_canaries(
        env: Env, tmp_path: Path, capsys: Capture) -> None:
    permits(env, "c", 9)
    cp = str(tmp_path / "bf.json")
    args = ("--prefix", f"{env.prefix}c/", "--batch", "2", "--checkpoint", cp, "--max-batches", "2")
    assert env.cli("backfill", *args) == 3
    assert env.cli("backfill", *args) == 3
    assert summary_of(capsys.readouterr().out)["batches"] == 4 and env.fc.state.stats["async"] == 4
    assert env.cli("backfill", *args[:-2]) == 0
    assert env.fc.state.stats["async"] == 5


# --- 5. a checkpoint belongs to its whole job --------------------------------------------------------------


def test_a_checkpoint_of_another_filter_is_refused(env: Env, tmp_path: Path, capsys: Capture) -> None:
    permits(env, "f", 4)
    cp = str(tmp_path / "bf.json")
    assert env.cli("backfill", "--suffix", ".png", "--checkpoint", cp, "--batch", "1", "--max-batches", "1") == 3
    capsys.readouterr()
    sent = env.fc.state.stats["async"]
    assert env.cli("backfill", "--suffix", ".jpg", "--checkpoint", cp) == 2
    line = only_line(capsys.readouterr().err)
    assert "another job" in line and "suffixes" in line
    assert env.fc.state.stats["async"] == sent


@pytest.mark.parametrize("content", ["[]", "{}", "dir", "counts"])
def test_a_malformed_checkpoint_is_exit_2_in_one_line(
        env: Env, tmp_path: Path, capsys: Capture, content: str) -> None:
    permits(env, "f", 2)
    cp = tmp_path / "bf.json"
    if content == "dir":
        cp.mkdir()
    elif content == "counts":
        assert env.cli("backfill", "--checkpoint", str(cp), "--batch", "1", "--max-batches", "1") == 3
        cp.write_text(json.dumps(json.loads(cp.read_text()) | {"counts": [1]}))
    else:
        cp.write_text(content)
    capsys.readouterr()
    sent = env.fc.state.stats["async"]
    assert env.cli("backfill", "--checkpoint", str(cp)) == 2
    only_line(capsys.readouterr().err)
    assert env.fc.state.stats["async"] == sent


# --- 6. request ids: the FC stand-in and the tools -----------------------------------------------------------


def test_every_batch_prints_the_request_id_the_function_ran_under(env: Env, tmp_path: Path, capsys: Capture) -> None:
    images = permits(env, "r", 3)
    report = tmp_path / "report.jsonl"
    assert env.cli("backfill", "--batch", "2", "--report", str(report)) == 0
    env.idle()
    out = capsys.readouterr().out
    printed = [line.split("x-fc-request-id ")[1].split(",")[0] for line in out.splitlines()
               if line.startswith("batch ")]
    lines = [json.loads(x) for x in report.read_text().splitlines()]
    assert [x["requestId"] for x in lines if "requestId" in x] == printed and len(printed) == 2
    assert lines[-1]["summary"]["batches"] == 2
    for k in images:  # the function logged and stored the id the API answered with
        rid = env.doc(k + ".json")["functionRequestId"]  # type: ignore[index]
        assert rid in printed and any(k in x["keys"] for x in lines if x.get("requestId") == rid)


def test_on_failure_payload_counts_every_invocation_and_names_the_accepted_request_id(
        env: Env, capsys: Capture) -> None:
    permits(env, "z", 1)
    env.plan.set("ocr", server_error=1.0)
    assert env.cli("backfill", "--prefix", f"{env.prefix}z/") == 0
    env.idle()
    env.plan.set("ocr")
    rid = next(line.split("x-fc-request-id ")[1].split(",")[0] for line in capsys.readouterr().out.splitlines()
               if line.startswith("batch "))
    log = env.root / ".mns" / f"{FAILURE_TOPIC}.jsonl"
    payloads = [json.loads(json.loads(line)["body"]) for line in log.read_text().splitlines()]
    mine = [p for p in payloads if p["requestContext"]["requestId"] == rid]
    assert len(mine) == 1
    assert mine[0]["requestContext"]["approximateInvokeCount"] == 1 + env.fn.deployment.max_async_retries
    assert FAST["OCR_MAX_ATTEMPTS"] == "1"  # each invocation one OCR try: the count is FC's, not the SDK's
