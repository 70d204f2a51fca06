"""Backfill and replay end to end, offline: the OSS, OCR and MNS stand-ins, the FC API stand-in running the real
handler behind the real alibabacloud-fc20230330 SDK, and ``permit-ocr backfill|replay`` as a user runs them."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from permit_ocr.handler import handler
from permit_ocr_local.cli import main
from permit_ocr_local.fcruntime.context import FcContext, Upload, oss_event
from permit_ocr_local.fcruntime.invoker import failure_payload
from permit_ocr_local.tools.backfill import FcInvoker, encode_event
from permit_ocr_local.tools.backfill.job import EXIT_NOTHING_SENT
from support import permit_image
from tools.backfill.backfill_env import Env, md5, sha, summary_of, truth, world


def test_backfill_recognizes_exactly_the_missing_images_and_a_resumed_run_bills_nothing_twice(
        env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    images: dict[str, bytes] = {}
    for i in range(1000):
        data = permit_image(truth(i), size=(40, 40))
        images[f"{env.prefix}batch/{i:04d}.png"] = data
        env.drop(f"{env.prefix}batch/{i:04d}.png", data)
    not_permits = {f"{env.prefix}odd/{i}.png": permit_image({}, size=(40 + i, 40)) for i in range(5)}
    for k, d in not_permits.items():
        env.drop(k, d)
    env.drop(f"{env.prefix}notes.txt", b"not an image")
    env.drop("elsewhere/0.png", permit_image(truth(5000), size=(40, 40)))  # outside --prefix
    # 100 already done by the trigger: results carry the image ETag in x-oss-meta-source-etag
    done = sorted(images)[:100]
    for i in range(0, 100, 20):
        ups = [Upload(env.bucket, k, md5(images[k]), len(images[k]))
               for k in done[i:i + 20]]
        summary = handler(json.dumps(oss_event(ups)).encode(), FcContext())
        assert summary["counts"] == {"result": 20}
    # one of them re-uploaded since (by hand: no event): its result is stale and must be redone
    stale = done[0]
    images[stale] = permit_image(truth(9999), size=(40, 40))
    env.drop(stale, images[stale])
    assert env.ocr.stats["billed"] == 100
    missing = 1000 - 100 + 1  # + the stale one
    outputs = 100

    cp = tmp_path / "backfill.ckpt.json"
    # interrupted after 30 batches of 10, then resumed: each missing image is recognized exactly once
    assert env.cli("backfill", "--batch", "10", "--checkpoint", str(cp), "--max-batches", "30") == 3
    first = summary_of(capsys.readouterr().out)
    assert first["stopped"] == "max-batches" and first["counts"]["invoked_records"] == 300
    saved = json.loads(cp.read_text())
    assert saved["batches"] == 30 and not saved["complete"] and saved["cursor"] == first["cursor"]
    env.idle()
    assert env.cli("backfill", "--batch", "10", "--checkpoint", str(cp), "--count") == 0
    final = summary_of(capsys.readouterr().out)
    env.idle()

    counts = final["counts"]
    assert final["complete"] and json.loads(cp.read_text())["complete"]
    assert counts["invoked_records"] == missing + len(not_permits)
    assert counts["skipped_done"] == 99 and counts["skipped_not_image"] == 1
    # outputs written by the first run's last batch sort after its cursor, so the resumed run lists them too
    assert counts["skipped_output"] >= outputs
    assert counts["listed"] == 1000 + len(not_permits) + 1 + counts["skipped_output"]
    assert env.fc.state.stats["async"] == final["batches"] == -(-(missing + len(not_permits)) // 10)
    billed = env.ocr.billed_by_image()
    assert {sha(d) for d in images.values()} <= set(billed)  # every permit recognized ...
    assert max(billed.values()) == 1  # ... and none twice
    assert env.ocr.stats["billed"] == 100 + missing
    for key, data in images.items():
        doc = env.doc(key + ".json")
        expected = truth(9999 if key == stale else int(key[-8:-4]))["permitNumber"]
        assert doc is not None and doc["data"]["data"]["permitNumber"] == expected
        assert doc["source"]["etag"] == md5(data)
    for key in not_permits:
        err = env.doc(key + ".error.json")
        assert err is not None and err["error"]["code"] == "unmatchedImageType"
    assert not env.path("elsewhere/0.png.json").exists()

    # a rerun finds nothing left to do (the non-permits' error records are replay's business), and says so
    assert env.cli("backfill", "--checkpoint", str(tmp_path / "again.json")) == EXIT_NOTHING_SENT
    out = capsys.readouterr()
    assert "nothing sent" in out.out and "permit-ocr backfill: nothing was sent: of " in out.err
    again = summary_of(out.out)
    assert again["counts"]["invoked_records"] == 0 and again["counts"]["skipped_error"] == len(not_permits)
    # a crash after FC accepted a batch but before the checkpoint was saved re-sends that batch: no OCR cost
    batch = [Upload(env.bucket, k, md5(images[k]), len(images[k]))
             for k in sorted(images)[500:510]]
    FcInvoker(env.fc.host, "http", "permit-ocr", dict(os.environ)).send(encode_event(batch))
    env.idle()
    assert env.ocr.stats["billed"] == 100 + missing and max(env.ocr.billed_by_image().values()) == 1


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    yield from world(tmp_path)


def test_checkpoint_of_another_job_is_refused(env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cp = tmp_path / "c.json"
    assert main(["backfill", "--bucket", env.bucket, "--prefix", "other/", "--endpoint", env.fc.url, "--no-progress",
                 "--checkpoint", str(cp)]) == EXIT_NOTHING_SENT  # nothing under other/: a finished checkpoint
    assert env.cli("backfill", "--checkpoint", str(cp)) == 2
    assert "another job" in capsys.readouterr().err


def test_replay_fixes_injected_ocr_outages_from_error_records_and_from_the_failure_log(
        env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    not_permit = f"{env.prefix}x/not-a-permit.png"
    env.drop(not_permit, permit_image({}, size=(41, 40)))
    assert env.cli("backfill", "--dry-run", "--checkpoint", str(tmp_path / "dry.json")) == 0
    planned = capsys.readouterr().out
    assert f"batch 1 (dry run, not sent): 1 record(s): {not_permit}\n" in planned  # what, not only how many
    dry = summary_of(planned)
    assert dry["dryRun"] and dry["counts"]["invoked_records"] == 1 and dry["batches"] == 1
    assert not (tmp_path / "dry.json").exists() and env.fc.state.stats["async"] == 0
    assert env.cli("backfill") == 0
    env.idle()
    assert env.doc(not_permit + ".error.json")["error"]["code"] == "unmatchedImageType"  # type: ignore[index]

    def outage(keys: list[str]) -> dict[str, bytes]:
        data = {k: permit_image(truth(i + 100 * len(keys)), size=(40, 40)) for i, k in enumerate(keys)}
        for k, d in data.items():
            env.drop(k, d)
        env.plan.set("ocr", server_error=1.0)  # OCR answers 503 throughout: beyond every retry budget
        assert env.cli("backfill", "--batch", "2") == 0
        env.idle()
        env.plan.set("ocr")
        for k in keys:
            err = env.doc(k + ".error.json")
            assert err is not None and err["error"]["code"] == "ServiceUnavailable" and err["error"]["transient"]
        return data

    first = outage([f"{env.prefix}a/{i}.png" for i in range(6)])
    capsys.readouterr()
    assert env.cli("replay", "--code", "ServiceUnavailable", "--batch", "4") == 0
    s = summary_of(capsys.readouterr().out)
    env.idle()
    assert s["counts"]["invoked_records"] == 6 and s["counts"]["skipped_code"] == 1
    for k, d in first.items():
        assert not env.path(k + ".error.json").exists()
        assert env.doc(k + ".json")["source"]["etag"] == md5(d)  # type: ignore[index]
    assert env.doc(not_permit + ".error.json") is not None  # filtered out by --code

    # a newer upload of the non-permit (by hand, no event): its old error record is not replayed
    env.drop(not_permit, permit_image(truth(77), size=(40, 40)))
    assert env.cli("replay") == EXIT_NOTHING_SENT
    s = summary_of(capsys.readouterr().out)
    assert s["counts"]["skipped_superseded"] == 1 and s["counts"]["invoked_records"] == 0

    # the second outage's events as FC's onFailure destination delivers them: MNS messages whose body is the
    # FC failure payload. Published to a topic of their own so the test does not depend on how many events
    # the function's retries let through to the real failure topic.
    second = outage([f"{env.prefix}b/{i}.png" for i in range(4)])
    mns = env.fn.stack.mns
    assert mns is not None
    mns.state.create_topic("test-failures")
    events = [[Upload(env.bucket, k, md5(d), len(d)) for k, d in list(second.items())[i:i + 2]] for i in (0, 2)]
    events.append([Upload(env.bucket, k, md5(d), len(d)) for k, d in first.items()])  # fixed above already
    for ev in events:
        payload = failure_payload(encode_event(ev), "1-0-0", "RetryLater: OCR down", "acs:fc:::functions/permit-ocr")
        mns.state.publish("test-failures", json.dumps(payload), "fc-failure")
    log = env.root / ".mns" / "test-failures.jsonl"
    capsys.readouterr()
    billed = env.ocr.stats["billed"]
    assert env.cli("replay", "--failure-log", str(log)) == 0
    s = summary_of(capsys.readouterr().out)
    env.idle()
    assert s["counts"]["invoked_records"] == 4
    assert s["counts"]["skipped_done"] == len(first)
    for k in second:
        assert env.doc(k + ".json") is not None and not env.path(k + ".error.json").exists()
    assert env.ocr.stats["billed"] == billed + 4 and max(env.ocr.billed_by_image().values()) == 1
