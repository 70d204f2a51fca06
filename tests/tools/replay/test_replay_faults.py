"""Fault injection for replay (issue 12): a 200-image replay while the FC endpoint fails the first try of
every batch (503, a dropped connection, a timeout after which FC still accepts the event), runs against a
dead endpoint (connection refused), and Ctrl-C at random moments. Rerun until it completes; then every image
has exactly one current outcome and the OCR ledger shows no permanent verdict paid again and no permit paid
twice."""

from __future__ import annotations

import _thread
import contextlib
import hashlib
import random
import threading
import time
from collections.abc import Iterator
from itertools import count
from pathlib import Path
from typing import Any

import pytest

from permit_ocr_local.standins.faults import Fault, Target
from tools.backfill.backfill_env import Env, md5, world
from tools.backfill.test_backfill_issue12 import permanent_records, permits, plant_records

Capture = pytest.CaptureFixture[str]


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    yield from world(tmp_path)


def first_try_of_every_batch_fails(env: Env) -> None:
    """Replace the fault draw for the FC API: InvokeFunction requests alternate fail / pass, the failures
    cycling 503, dropped connection, and a 1.5 s delay (the client gives up after 0.5 s; FC then accepts the
    event anyway, so the retry sends it a second time). Only GetFunction and other services pass untouched."""
    n = count()
    kinds = (Fault(status=503), Fault(drop=True), Fault(delay_s=1.5))
    original = env.plan.draw

    def draw(service: str, request: Any, target: Target | None = None) -> Fault | None:
        if service != "fc" or not request.raw_path.endswith("/invocations"):
            return original(service, request, target)
        i = next(n)
        return kinds[(i // 2) % len(kinds)] if i % 2 == 0 else None

    env.plan.draw = draw  # type: ignore[method-assign]


def run_interrupted(env: Env, args: list[str], after_s: float | None) -> int:
    """One run of the command; with ``after_s``, Ctrl-C (SIGINT's KeyboardInterrupt) lands after that long."""
    timer = threading.Timer(after_s, _thread.interrupt_main) if after_s is not None else None
    try:
        if timer is not None:
            timer.start()
        try:
            return env.cli("replay", *args)
        except KeyboardInterrupt:  # landed outside the command's own handling (argument parsing, imports)
            return 130
    finally:
        if timer is not None:
            timer.cancel()
            with contextlib.suppress(KeyboardInterrupt):  # one that fired as the command returned lands here
                time.sleep(0.05)


def test_a_200_image_replay_under_fc_faults_and_interruptions_ends_with_one_outcome_each(
        env: Env, tmp_path: Path, capsys: Capture) -> None:
    refused = permanent_records(env, "p", 40, capsys)
    retry = permits(env, "t", 160)  # an OCR outage left a transient record for each (one made by the function)
    plant_records(env, retry, capsys, final=False)
    verdicts = {k: env.doc(k + ".error.json") for k in refused}
    asked = {k: sum(1 for c in env.ocr.calls if c.sha256 == sha(d)) for k, d in refused.items()}
    assert env.ocr.stats["billed"] == 0
    first_try_of_every_batch_fails(env)

    cp = str(tmp_path / "rp.json")
    args = ["--batch", "8", "--checkpoint", cp, "--fc-timeout", "0.5", "--fc-attempts", "3"]
    rng = random.Random(20261201)
    codes: list[int] = []
    stopped_mid_run: list[int] = []  # runs that ended by a failure or Ctrl-C after FC had accepted batches
    for _ in range(40):
        mode = rng.choice(("dead", "interrupt", "interrupt", "plain"))
        if mode == "dead":
            code = run_interrupted(env, [*args, "--endpoint", "http://127.0.0.1:9", "--fc-attempts", "1"], None)
        else:
            code = run_interrupted(env, args, rng.uniform(0.5, 12.0) if mode == "interrupt" else None)
        codes.append(code)
        if code in (1, 3) and " accepted: " in capsys.readouterr().out:
            stopped_mid_run.append(code)
        if code == 0:
            break
    assert codes[-1] == 0, codes
    assert 1 in codes and 3 in stopped_mid_run, (codes, stopped_mid_run)  # failures and Ctrl-C mid-run
    time.sleep(1.6)  # a delayed request FC accepts after the client gave up is not queued yet
    env.idle()

    for k, d in retry.items():  # exactly one current outcome: the result of this very version
        doc = env.doc(k + ".json")
        assert doc is not None and doc["source"]["etag"] == md5(d), k
        assert not env.path(k + ".error.json").exists(), k
    for k, d in refused.items():  # the verdict stands, untouched, and OCR was never asked again
        assert env.doc(k + ".error.json") == verdicts[k] and not env.path(k + ".json").exists(), k
        assert sum(1 for c in env.ocr.calls if c.sha256 == sha(d)) == asked[k], k
    billed = env.ocr.billed_by_image()
    assert all(billed[sha(d)] == 1 for d in retry.values()) and max(billed.values()) == 1
    assert env.fc.state.stats["async"] >= 160 // 8  # some batches were accepted twice: the function paid once


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
