"""Waits a person would otherwise sit through in silence: the embedded engine's models (about 5 s) load with a
line saying so, where a person looks (a terminal's stderr, the stack's start), never in what scripts read."""

from __future__ import annotations

import json
import os
import pty
import subprocess
from pathlib import Path

from commands.test_cli_stack_invoke import CLI


def test_a_person_at_a_terminal_is_told_the_models_are_loading_and_a_script_is_not(tmp_path: Path) -> None:
    """recognize on a terminal (a pseudo-terminal here) says so on stderr; piped, stderr keeps only the JSON
    error lines scripts read."""
    cmd = [*CLI, "recognize", str(tmp_path / "missing.jpg")]
    leader, follower = pty.openpty()
    said = b""
    try:
        ran = subprocess.run(cmd, stderr=follower, stdout=subprocess.PIPE, timeout=120)
        os.close(follower)
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the terminal closed
                break
            if not chunk:
                break
            said += chunk
    finally:
        os.close(leader)
    assert ran.returncode == 1
    assert b"permit-ocr recognize: loading the models" in said
    piped = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert json.loads(piped.stderr)["Code"] == "fileNotReadable"


def test_a_stack_with_the_engine_says_it_loads_the_models_and_exports_once_they_are_loaded(tmp_path: Path) -> None:
    root = tmp_path / "root"
    started = subprocess.run([*CLI, "stack", "--root", str(root), "--detach"], capture_output=True, text=True,
                             timeout=180)
    try:
        assert started.returncode == 0, started.stderr
        assert started.stderr.startswith("permit-ocr: starting the stack; loading the OCR engine's models")
        assert "export OSS_ENDPOINT=" in started.stdout
        log = (root / ".stack" / "stack.log").read_text()
        assert "Traceback" not in log
    finally:
        subprocess.run([*CLI, "stack", "--root", str(root), "--stop"], capture_output=True, timeout=60)
