"""docs/backfill.md's recovery commands, run as written: each ``sh`` block of its Recovery section names a
situation in its first comment; this test creates that situation against the local stack, runs the block's
commands in order (``$BUCKET`` and ``$FAILURE_LOG`` set, the working directory a fresh folder) and checks the
exit status each line states, then that the situation was really recovered from."""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from permit_ocr_local.cli import main
from permit_ocr_local.fcruntime.context import Upload
from permit_ocr_local.fcruntime.invoker import failure_payload
from permit_ocr_local.tools.backfill import encode_event
from support import permit_image
from tools.backfill.backfill_env import Env, md5, world
from tools.backfill.test_backfill_issue12 import permanent_records, permits, transient_records

DOC = Path(__file__).resolve().parents[3] / "docs" / "backfill.md"
Capture = pytest.CaptureFixture[str]


def recovery_blocks() -> dict[str, list[tuple[list[str], int]]]:
    """situation -> [(argv, expected exit status)] from the Recovery section."""
    text = DOC.read_text()
    section = text[text.index("\n## Recovery"):]
    section = section[:section.index("\n## ", 1)]
    blocks: dict[str, list[tuple[list[str], int]]] = {}
    for body in re.findall(r"```sh\n(.*?)```", section, flags=re.S):
        lines = body.strip().splitlines()
        m = re.match(r"# situation: (\S+)$", lines[0])
        assert m, f"a Recovery block must start with '# situation: NAME': {lines[0]!r}"
        steps = []
        for line in lines[1:]:
            command, _, status = line.partition("# exit ")
            assert status.strip().isdigit(), f"every command states its exit status: {line!r}"
            steps.append((shlex.split(command), int(status)))
        blocks[m.group(1)] = steps
    return blocks


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    yield from world(tmp_path)


def invocations_only(service: str, request: object) -> bool:
    return getattr(request, "raw_path", "").endswith("/invocations")


def heads_only(service: str, request: object) -> bool:
    return service == "oss" and getattr(request, "method", "") == "HEAD"


Situation = Callable[[Env, Capture], Callable[[int], None]]


def down_then_back(service: str, only: Callable[[str, object], bool],
                   images: Callable[[Env, Capture], dict[str, bytes]]) -> Situation:
    """``service`` fails every matching request during the first command and is back for the second."""

    def situation(env: Env, capsys: Capture) -> Callable[[int], None]:
        made = images(env, capsys)

        def step(i: int) -> None:
            env.plan.only = only
            env.plan.set(service, server_error=1.0 if i == 0 else 0.0)
            if i == 2:
                assert all(env.doc(k + ".json") is not None for k in made)
        return step
    return situation


fc_down = down_then_back("fc", invocations_only, lambda env, capsys: transient_records(env, "a", 2, capsys))
oss_down = down_then_back("oss", heads_only, lambda env, capsys: permits(env, "o", 2))


def canary(env: Env, capsys: Capture) -> Callable[[int], None]:
    images = permits(env, "c", 3)

    def step(i: int) -> None:
        if i == 2:
            assert all(env.doc(k + ".json") is not None for k in images)
    return step


def other_job(env: Env, capsys: Capture) -> Callable[[int], None]:
    pngs = permits(env, "j", 2)
    jpg = f"{env.prefix}j/photo.jpg"
    env.drop(jpg, permit_image(size=(40, 40), fmt="JPEG"))

    def step(i: int) -> None:
        if i == 3:
            assert env.doc(jpg + ".json") is not None  # the .jpg job ran in full
            assert sum(env.doc(k + ".json") is not None for k in pngs) == 1  # the .png canary's one batch
    return step


def failure_log(env: Env, capsys: Capture) -> Callable[[int], None]:
    images = transient_records(env, "f", 2, capsys)
    mns = env.fn.stack.mns
    assert mns is not None
    mns.state.create_topic("doc-failures")
    event = encode_event([Upload(env.bucket, k, md5(d), len(d)) for k, d in images.items()])
    mns.state.publish("doc-failures", json.dumps(failure_payload(event, "1-0-0", "RetryLater", "arn")), "fc")

    def step(i: int) -> None:
        if i == 1:
            assert all(env.doc(k + ".json") is not None for k in images)
            assert len((Path.cwd() / "fl.jsonl").read_text().splitlines()) == 2  # the batch and the summary
    return step


def permanent(env: Env, capsys: Capture) -> Callable[[int], None]:
    refused = permanent_records(env, "p", 1, capsys)
    asked = len(env.ocr.calls)

    def step(i: int) -> None:
        if i == 1:  # the first replay kept the verdict and asked OCR nothing
            assert len(env.ocr.calls) == asked and all(env.doc(k + ".error.json") for k in refused)
    return step


SITUATIONS: dict[str, Situation] = {
    "fc-down": fc_down, "oss-down": oss_down, "canary": canary, "other-job": other_job,
    "failure-log": failure_log, "permanent": permanent}


def test_every_recovery_block_names_a_situation_this_test_creates() -> None:
    assert set(recovery_blocks()) == set(SITUATIONS)


@pytest.mark.parametrize("situation", sorted(SITUATIONS))
def test_recovery_commands_of_the_docs_work_as_written(
        env: Env, situation: str, tmp_path: Path, capsys: Capture, monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in env.fn.env().items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("FC_ENDPOINT", env.fc.url)
    monkeypatch.setenv("BUCKET", env.bucket)
    monkeypatch.setenv("FAILURE_LOG", str(env.root / ".mns" / "doc-failures.jsonl"))  # failure-log's topic
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    step = SITUATIONS[situation](env, capsys)
    steps = recovery_blocks()[situation]
    for i, (argv, status) in enumerate(steps):
        step(i)
        args = [os.path.expandvars(a) for a in argv]
        assert args[0] == "permit-ocr"
        code = main(args[1:])
        out = capsys.readouterr()
        assert code == status, f"{' '.join(argv)}: exit {code}, the doc says {status}\n{out.err[-800:]}"
        env.fc.wait_idle(60)
    step(len(steps))
