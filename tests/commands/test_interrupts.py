"""Ctrl-C, as a terminal delivers it (SIGINT to the whole process group), in the commands that run the function
in their own process: each ends in one line, exit 130, no traceback, and gives back the claims it held, so the
next run recognizes the interrupted images at once instead of answering ClaimHeld until they expire."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from commands.test_cli_stack_invoke import CLI, detached_stack
from support import SAMPLE_TRUTH, permit_image

REPO = Path(__file__).resolve().parents[2]
SLOW = {**SAMPLE_TRUTH, "delay": 4}  # the truth backend answers after 4 s: Ctrl-C lands during the OCR call


def ctrl_c(cmd: list[str], *, after: str | None = None, ready: Callable[[], bool] | None = None, delay: float = 1.0,
           env: dict[str, str] | None = None, cwd: Path = REPO) -> tuple[int, str, str]:
    """Run ``cmd`` in its own process group, press Ctrl-C ``delay`` s after a stdout line containing ``after``
    or once ``ready()`` holds, and return (exit status, stdout, stderr)."""
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    assert proc.stdout is not None and proc.stderr is not None
    out: list[str] = []
    seen = threading.Event()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            out.append(line)
            if after is not None and after in line:
                seen.set()

    reader = threading.Thread(target=pump)
    reader.start()
    if after is not None:
        assert seen.wait(120), "".join(out)
    deadline = time.monotonic() + 120
    while ready is not None and not ready() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(delay)
    os.killpg(proc.pid, signal.SIGINT)
    try:
        err = proc.stderr.read()
        proc.wait(30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    reader.join()
    return proc.returncode, "".join(out), err


def assert_one_line(err: str, start: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(start), err
    assert "Traceback" not in err and "terminate called" not in err and "Aborted" not in err
    return lines[0]


def test_ctrl_c_in_run_ends_in_one_line_and_the_next_run_recognizes_the_interrupted_images(tmp_path: Path) -> None:
    samples = tmp_path / "samples"
    samples.mkdir()
    for name in ("a.png", "b.png"):
        (samples / name).write_bytes(permit_image(SLOW))
    args = [*CLI, "run", "--root", str(tmp_path / "root"), "--samples", str(samples), "--ocr-backend", "truth"]
    markers = tmp_path / "root" / "permit-ocr-demo" / ".permit-ocr" / "markers"
    code, _out, err = ctrl_c(args, after="waiting for the function", delay=0.3,
                             ready=lambda: len(list(markers.rglob("*.0"))) == 2)
    assert code == 130
    line = assert_one_line(err, "permit-ocr run: interrupted; 0 of 2 image(s) have their outcome; ")
    assert "released the claim on 2 image version(s)" in line
    again = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr  # not "missing", not ClaimHeld for two minutes
    assert again.stdout.count(" ok ") == 2


def test_make_run_adds_nothing_to_the_commands_own_line_on_ctrl_c(tmp_path: Path) -> None:
    """The Makefile's run recipe: exit 130 (interrupted, already said) ends quietly, anything else is make's."""
    fake = tmp_path / "fake.py"  # stands for the interpreter: `fake.py -m permit_ocr_local.cli run`
    fake.write_text("import signal, sys, time\n"
                    "def stop(*_):\n"
                    "    print('permit-ocr run: interrupted; fake', file=sys.stderr); sys.exit(int(sys.argv[-1]))\n"
                    "signal.signal(signal.SIGINT, stop)\nprint('waiting', flush=True)\ntime.sleep(60)\n")
    for status, expect in ((130, ""), (1, "Error 1")):
        script = tmp_path / f"py{status}"
        script.write_text(f"#!/bin/sh\nexec {sys.executable} {fake} \"$@\" {status}\n")
        script.chmod(0o755)
        # -o: never the install recipe (through the fake interpreter) when the venv's stamp is older than its inputs
        make = ["make", "--no-print-directory", "-o", ".venv/.installed", "run", f"PY={script}"]
        code, _out, err = ctrl_c(make, after="waiting", delay=0.2)
        assert err.startswith("permit-ocr run: interrupted; fake"), err
        if expect:
            assert expect in err
        else:
            assert err.strip() == "permit-ocr run: interrupted; fake" and code == -signal.SIGINT


def test_ctrl_c_in_invoke_releases_the_claim_so_the_next_invoke_recognizes_the_image(tmp_path: Path) -> None:
    root = tmp_path / "root"
    with detached_stack(root) as env:
        target = root / "permit-ocr-demo" / "uploads" / "slow.png"
        target.parent.mkdir(parents=True)
        target.write_bytes(permit_image(SLOW))
        args = [*CLI, "invoke", "--object", "permit-ocr-demo/uploads/slow.png"]
        claimed = lambda: any((root / "permit-ocr-demo" / ".permit-ocr" / "markers").rglob("*.0"))  # noqa: E731
        code, out, err = ctrl_c(args, env=env, ready=claimed, delay=0.5)
        assert code == 130 and out == ""
        line = assert_one_line(err, "permit-ocr invoke: interrupted; ")
        assert "released the claim on 1 image version(s)" in line and "the next invoke" in line
        again = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)
        assert again.returncode == 0, again.stderr  # not exit 3 with ClaimHeld until the claim expires
        assert json.loads(again.stdout)["counts"] == {"result": 1}
        assert again.stderr == ""  # a result: nothing to explain, and the function's log lines stay out of the way


def test_ctrl_c_while_a_detached_stack_loads_its_models_stops_that_stack_in_one_line(tmp_path: Path) -> None:
    root = tmp_path / "root"
    code, out, err = ctrl_c([*CLI, "stack", "--root", str(root), "--detach"], delay=1.0)  # the engine: ~5 s
    assert code == 130 and out == ""  # no exports for an eval to pick up
    lines = err.strip().splitlines()
    assert lines[0].startswith("permit-ocr: starting the stack; loading the OCR engine's models")
    assert lines[1:] == ["permit-ocr stack: interrupted; stopped the stack that was starting"]
    stop = subprocess.run([*CLI, "stack", "--root", str(root), "--stop"], capture_output=True, text=True, timeout=60)
    assert "no stack is serving" in stop.stderr  # nothing left running in the background


def test_ctrl_c_in_recognize_is_one_line_after_whole_lines_only(tmp_path: Path) -> None:
    # 30 images, Ctrl-C once the first is printed: it lands mid-run however fast the machine (a fixed delay
    # let the command finish first on a fast one)
    images = [str(REPO / "samples" / "hk-clean.jpg")] * 30
    code, out, err = ctrl_c([*CLI, "recognize", *images], after='"', delay=0.1)
    assert code == 130
    printed = out.splitlines()
    assert 1 <= len(printed) < 30 and out.endswith("\n")  # whole JSON lines, none cut off
    assert all(json.loads(line)["data"]["permitNumber"] for line in printed)
    assert_one_line(err, "permit-ocr recognize: interrupted")


def test_ctrl_c_that_a_library_turned_into_its_own_error_still_ends_as_an_interrupt() -> None:
    # found on a machine at load 20: Ctrl-C while the engine loaded its model routes came back as omegaconf's
    # ConfigKeyError, a traceback and exit 1; the process remembers Ctrl-C, so the command still ends in one line
    script = ("import sys; from permit_ocr_local import cli; import permit_ocr_local.commands.validate as v\n"
              "from permit_ocr_local.fcruntime import interrupt\n"
              "def swallowed(args):\n"
              "    interrupt.PRESSED.set()\n"
              "    raise ValueError('a library error raised while KeyboardInterrupt was unwinding')\n"
              "v.run = swallowed\n"
              "sys.argv = ['permit-ocr', 'validate', 'x.json']\n"
              "sys.exit(cli.main())\n")
    ran = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert ran.returncode == 130 and ran.stdout == ""
    assert_one_line(ran.stderr, "permit-ocr validate: interrupted")
