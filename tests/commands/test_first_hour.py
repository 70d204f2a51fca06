"""The first hour of a new user, following the READMEs literally: each mistake ends in one line with a
documented exit code (no traceback), the sample event yields its result after the documented copy, a second
detached stack on one root reuses the first, and `--stop` says what it stopped."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from commands.test_cli_stack_invoke import CLI, detached_stack
from permit_ocr_local.commands.invoke import EXIT_NO_OBJECT, EXIT_NO_STACK, EXIT_USAGE
from support import SAMPLE_TRUTH, permit_image

REPO = Path(__file__).resolve().parents[2]


def cli(*args: str, env: dict[str, str] | None = None, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=90, cwd=cwd)


def one_line(ran: subprocess.CompletedProcess[str]) -> str:
    """The whole stderr of a mistake: exactly one line, starting with permit-ocr:, no traceback."""
    lines = ran.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("permit-ocr: "), ran.stderr
    assert "Traceback" not in ran.stderr
    return lines[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def copy_image(root: Path, name: str) -> Path:
    """The documented `cp` of an image into the local bucket's uploads/ folder (a dropped file is an object)."""
    target = root / "permit-ocr-demo" / "uploads" / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(permit_image(fmt="JPEG"))
    return target


def no_stack_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OSS_", "ALIBABA_CLOUD_", "SOURCE_BUCKETS"))}
    return env


# --- finding 11: simple mistakes ------------------------------------------------------------------------------

def test_invoke_object_without_any_stack_exports_says_how_to_start_one() -> None:
    ran = cli("invoke", "--object", "permit-ocr-demo/uploads/x.jpg", env=no_stack_env())
    assert ran.returncode == EXIT_USAGE
    assert "permit-ocr stack --root" in one_line(ran)


def test_invoke_with_the_stack_down_says_no_oss_and_how_to_start_it() -> None:
    env = {**no_stack_env(), "OSS_ENDPOINT": f"http://127.0.0.1:{free_port()}", "SOURCE_BUCKETS": "permit-ocr-demo"}
    for args in (["--object", "permit-ocr-demo/uploads/x.jpg"], [str(REPO / "events" / "put-object.json")]):
        ran = cli("invoke", *args, env=env)
        assert ran.returncode == EXIT_NO_STACK
        line = one_line(ran)
        assert "no OSS at OSS_ENDPOINT" in line and 'eval "$(permit-ocr stack' in line
        assert "retry" not in line  # nothing retries locally


def test_invoke_with_a_missing_event_file_names_it() -> None:
    ran = cli("invoke", "events/no-such-event.json", env=no_stack_env())
    assert ran.returncode == EXIT_USAGE
    assert "no event file events/no-such-event.json" in one_line(ran)


def test_invoke_object_with_a_wrong_bucket_or_a_missing_key_says_which(tmp_path: Path) -> None:
    with detached_stack(tmp_path / "root") as env:
        ran = cli("invoke", "--object", "no-such-bucket/uploads/x.jpg", env=env)
        assert ran.returncode == EXIT_NO_OBJECT
        assert "no bucket 'no-such-bucket'" in one_line(ran)
        ran = cli("invoke", "--object", "permit-ocr-demo/uploads/missing.jpg", env=env)
        assert ran.returncode == EXIT_NO_OBJECT
        assert "no object permit-ocr-demo/uploads/missing.jpg" in one_line(ran)


# --- finding 10: the sample event, as events/README.md says ----------------------------------------------------

def test_the_sample_event_yields_its_result_after_the_documented_copy(tmp_path: Path) -> None:
    root = tmp_path / "root"
    sample = str(REPO / "events" / "put-object.json")
    with detached_stack(root) as env:
        before = cli("invoke", sample, env=env)  # invoked before copying: skipped, no record, and why
        assert before.returncode == 0
        assert json.loads(before.stdout)["outcomes"][0]["code"] == "NoSuchKey"
        assert "copy an image there first" in before.stderr
        assert not list(root.rglob("*.error.json"))  # a missing object is not a verdict that blocks the key
        target = copy_image(root, "hk-permit.jpg")
        plain = cli("invoke", sample, env=env)  # the sample's made-up eTag is not the copy's: skipped, and why
        assert json.loads(plain.stdout)["outcomes"][0]["code"] == "Superseded"
        assert "--use-stored" in plain.stderr
        ran = cli("invoke", "--use-stored", sample, env=env)
        assert ran.returncode == 0, ran.stderr
        assert json.loads(ran.stdout)["counts"] == {"result": 1}
        assert json.loads((target.parent / "hk-permit.jpg.json").read_text())["data"]["data"] == SAMPLE_TRUTH
        again = cli("invoke", "--use-stored", sample, env=env)  # a duplicate says why, never silently
        assert json.loads(again.stdout)["outcomes"][0]["status"] == "duplicate"
        assert "already stored" in again.stderr


def test_a_sample_event_whose_etag_is_not_the_stored_objects_is_skipped_and_says_why(tmp_path: Path) -> None:
    root = tmp_path / "root"
    with detached_stack(root) as env:
        copy_image(root, "hk-permit.jpg")
        ran = cli("invoke", str(REPO / "events" / "put-object.json"), env=env)
        assert json.loads(ran.stdout)["outcomes"][0]["status"] == "skipped"
        assert "skipped (Superseded)" in ran.stderr and "--use-stored" in ran.stderr


def test_the_eventbridge_sample_yields_its_result_too(tmp_path: Path) -> None:
    root = tmp_path / "root"
    with detached_stack(root) as env:
        target = copy_image(root, "Photo.JPG")
        ran = cli("invoke", "--use-stored", str(REPO / "events" / "eventbridge-put-object.json"), env=env)
        assert ran.returncode == 0, ran.stderr
        assert json.loads(ran.stdout)["counts"] == {"result": 1}
        assert (target.parent / "Photo.JPG.json").is_file()


# --- finding 9: a second detached stack on one root ------------------------------------------------------------

def test_a_second_detach_reuses_the_stack_and_stop_says_what_it_stopped(tmp_path: Path) -> None:
    root = tmp_path / "root"
    first = cli("stack", "--root", str(root), "--detach")
    assert first.returncode == 0, first.stderr
    try:
        second = cli("stack", "--root", str(root), "--detach")  # a new shell that lost the exports
        assert second.returncode == 0
        assert second.stdout == first.stdout  # the same stack's exports, not a second stack
        assert "reusing the stack" in one_line(second)
        foreground = cli("stack", "--root", str(root))
        assert foreground.returncode == 1 and "already serves" in one_line(foreground)
    finally:
        stopped = cli("stack", "--root", str(root), "--stop")
    assert stopped.returncode == 0
    assert "stopped the stack (pid " in stopped.stdout and "OSS http://127.0.0.1:" in stopped.stdout
    again = cli("stack", "--root", str(root), "--stop")
    assert again.returncode == 1 and "no stack is serving" in one_line(again)


# --- finding 6 and 14: what `stack --help` and `--help` say ------------------------------------------------------

def test_stack_help_names_its_defaults_and_the_fc_api() -> None:
    out = cli("stack", "--help").stdout
    assert "default" in out and "engine" in out and "FC API" in out and "--stop" in out
    top = cli("--help").stdout
    assert "thin dispatcher" not in top and "permit-ocr run" in top


# --- finding 12: run --watch says what happened to each dropped file --------------------------------------------

def test_run_watch_prints_one_line_per_dropped_file_and_why_nothing_fires_for_a_non_image(tmp_path: Path) -> None:
    samples = tmp_path / "samples"
    samples.mkdir()
    (samples / "a.png").write_bytes(permit_image(size=(928, 626)))
    root = tmp_path / "root"
    proc = subprocess.Popen([*CLI, "run", "--root", str(root), "--samples", str(samples), "--ocr-backend",
                             "truth", "--watch"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None
        lines: list[str] = []

        def read_until(start: str) -> None:
            deadline = time.monotonic() + 120
            while not any(line.startswith(start) for line in lines) and time.monotonic() < deadline:
                lines.append(proc.stdout.readline() if proc.stdout else "")

        read_until("watching")
        uploads = root / "permit-ocr-demo" / "uploads"
        shutil.copyfile(samples / "a.png", uploads / "dropped.png")
        read_until("uploads/dropped.png: ok")
        (uploads / "notes.txt").write_text("not an image")
        shutil.copyfile(samples / "a.png", root / "permit-ocr-demo" / "elsewhere.png")
        read_until("uploads/notes.txt: ")
        read_until("elsewhere.png: ")
        time.sleep(2.5)  # two more rounds of the watcher: the result written beside dropped.png, nothing again
        shutil.copyfile(samples / "a.png", uploads / "last.png")
        read_until("uploads/last.png: ok")
        about = [line.strip() for line in lines if "dropped.png" in line]
        assert about == ["uploads/dropped.png: uploaded; recognizing ...",
                         "uploads/dropped.png: ok (hk 何郑 HE,CHENG H10387877 01)"], lines
        assert any(line.startswith("uploads/notes.txt: no trigger fires for it (its name does not end in")
                   for line in lines), lines
        assert any(line.startswith("elsewhere.png: no trigger fires for it (it is outside the trigger prefix "
                                   "uploads/)") for line in lines), lines
        assert not any(".json" in line for line in lines)  # the function's own outputs are not "dropped"
    finally:
        proc.terminate()
        proc.wait(30)


def test_invoke_help_documents_every_exit_code() -> None:
    out = " ".join(cli("invoke", "--help").stdout.split())
    assert "Exit codes: 0 the function ran" in out
    assert all(f"· {c} " in out for c in (EXIT_USAGE, 3, EXIT_NO_STACK, EXIT_NO_OBJECT))


# --- issue 24: invoke says only what helps, stack never reuses a stack that lacks what was asked ------------------

def test_invoke_keeps_the_functions_log_lines_out_of_stderr_unless_asked(tmp_path: Path) -> None:
    root = tmp_path / "root"
    with detached_stack(root) as env:
        copy_image(root, "a.jpg")
        quiet = cli("invoke", "--object", "permit-ocr-demo/uploads/a.jpg", env=env)
        assert quiet.returncode == 0 and quiet.stderr == ""  # a result: nothing to explain
        copy_image(root, "b.jpg")
        loud = cli("invoke", "--logs", "--object", "permit-ocr-demo/uploads/b.jpg", env=env)
        logged = [json.loads(line) for line in loud.stderr.splitlines()]
        assert {"instance initialized", "record done", "invocation done"} <= {d["msg"] for d in logged}


def test_invoking_a_stored_object_again_says_a_new_version_is_needed_not_to_use_object(tmp_path: Path) -> None:
    root = tmp_path / "root"
    with detached_stack(root) as env:
        copy_image(root, "a.jpg")
        assert cli("invoke", "--object", "permit-ocr-demo/uploads/a.jpg", env=env).returncode == 0
        again = cli("invoke", "--object", "permit-ocr-demo/uploads/a.jpg", env=env)
        line = one_line(again)
        assert "duplicate" in line and "copy another image over it" in line
        assert "--object" not in line and "--use-stored" not in line


def test_invoke_object_given_a_file_path_says_which_bucket_key_it_is(tmp_path: Path) -> None:
    root = tmp_path / "root"
    with detached_stack(root) as env:
        target = copy_image(root, "a.jpg")
        ran = cli("invoke", "--object", str(target), env=env)
        assert ran.returncode == EXIT_USAGE
        assert one_line(ran).endswith("not a file path: use --object permit-ocr-demo/uploads/a.jpg")
        relative = cli("invoke", "--object", "root/permit-ocr-demo/uploads/a.jpg", env=env, cwd=tmp_path)
        assert "use --object permit-ocr-demo/uploads/a.jpg" in one_line(relative)  # not "no bucket 'root'"


def test_invoke_object_missing_names_the_served_folder_and_a_copy_in_the_wrong_one(tmp_path: Path) -> None:
    root = tmp_path / "root"
    with detached_stack(root) as env:
        stray = root / "uploads" / "a.jpg"  # the bucket's folder forgotten
        stray.parent.mkdir(parents=True)
        stray.write_bytes(permit_image())
        ran = cli("invoke", "--object", "permit-ocr-demo/uploads/a.jpg", env=env)
        assert ran.returncode == EXIT_NO_OBJECT
        line = one_line(ran)
        assert f"the file belongs at {root / 'permit-ocr-demo' / 'uploads' / 'a.jpg'}" in line
        assert f"{stray} is in another folder" in line


def test_stack_with_a_trigger_never_reuses_a_stack_without_one(tmp_path: Path) -> None:
    root = tmp_path / "root"
    first = cli("stack", "--root", str(root), "--detach", "--ocr-backend", "truth")
    assert first.returncode == 0, first.stderr
    try:
        ran = cli("stack", "--root", str(root), "--trigger", "s.yaml", "--detach", "--ocr-backend", "truth")
        assert ran.returncode == 1 and ran.stdout == ""  # no exports without FC_ENDPOINT to eval
        line = one_line(ran)
        assert "runs without --trigger (no function, no FC_ENDPOINT)" in line and "--stop" in line
        other = cli("stack", "--root", str(root), "--detach")  # the engine asked, the truth backend serving
        assert other.returncode == 1 and "--ocr-backend truth, not engine" in one_line(other)
        same = cli("stack", "--root", str(root), "--detach", "--ocr-backend", "truth")
        assert same.returncode == 0 and same.stdout == first.stdout
    finally:
        cli("stack", "--root", str(root), "--stop")
