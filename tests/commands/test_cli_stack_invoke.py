"""The documented local workflow, as a user runs it: ``eval "$(permit-ocr stack --root DIR --detach)"``, copy an
image into the bucket folder, ``permit-ocr invoke EVENT_FILE``, read the result beside the image."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from permit_ocr.config import SPEC
from permit_ocr_local.fcruntime.context import Upload, oss_event
from support import SAMPLE_TRUTH, permit_image

CLI = [sys.executable, "-m", "permit_ocr_local.cli"]


@contextlib.contextmanager
def detached_stack(root: Path) -> Iterator[dict[str, str]]:
    """``eval "$(permit-ocr stack --root ROOT --detach)"``: the environment it exports; stopped afterwards."""
    started = subprocess.run([*CLI, "stack", "--root", str(root), "--detach", "--ocr-backend", "truth"],
                             capture_output=True, text=True, timeout=60, check=True)
    try:
        exports = dict(line.removeprefix("export ").split("=", 1) for line in started.stdout.splitlines())
        # a new shell: none of the function's variables but the exports (in-process tests may have set some)
        shell = {k: v for k, v in os.environ.items() if k not in SPEC}
        yield {**shell, **{k: v.strip("'") for k, v in exports.items()}}
    finally:
        subprocess.run([*CLI, "stack", "--root", str(root), "--stop"], timeout=30, check=False)


def test_detached_stack_exports_drive_invoke_and_the_result_lands_beside_the_image(tmp_path: Path) -> None:
    root = tmp_path / "root"
    with detached_stack(root) as env:
        image = permit_image()
        target = root / "permit-ocr-demo" / "uploads" / "dropped.png"
        target.parent.mkdir(parents=True)
        target.write_bytes(image)  # a file dropped into the bucket folder is an object
        event = tmp_path / "event.json"
        up = Upload("permit-ocr-demo", "uploads/dropped.png", hashlib.md5(image).hexdigest().upper(), len(image))
        event.write_text(json.dumps(oss_event([up])))
        ran = subprocess.run([*CLI, "invoke", str(event)], env=env, capture_output=True, text=True, timeout=60)
        assert ran.returncode == 0, ran.stderr
        assert json.loads(ran.stdout)["counts"] == {"result": 1}
        doc = json.loads((target.parent / "dropped.png.json").read_text())
        assert doc["data"]["data"] == SAMPLE_TRUTH
        for line in ran.stderr.splitlines():  # logs: JSON lines, no personal data, no secrets
            if line.startswith("{"):
                assert "H10387877" not in line and "HE,CHENG" not in line
                assert env["ALIBABA_CLOUD_ACCESS_KEY_SECRET"] not in line


def test_invoke_names_the_bad_variable_when_config_is_invalid(tmp_path: Path) -> None:
    event = tmp_path / "e.json"
    event.write_text(json.dumps({"events": []}))
    env = {**os.environ, "SOURCE_BUCKETS": "demo-bucket", "IMAGE_SOURCE": "ftp"}
    ran = subprocess.run([*CLI, "invoke", str(event)], env=env, capture_output=True, text=True, timeout=60)
    assert ran.returncode == 2
    assert "IMAGE_SOURCE" in ran.stderr and "url, body" in ran.stderr


def test_invoke_object_builds_the_upload_event_from_the_stored_object(tmp_path: Path) -> None:
    root = tmp_path / "root"
    with detached_stack(root) as env:
        target = root / "permit-ocr-demo" / "uploads" / "张 三.png"
        target.parent.mkdir(parents=True)
        target.write_bytes(permit_image())
        ran = subprocess.run([*CLI, "invoke", "--object", "permit-ocr-demo/uploads/张 三.png"], env=env,
                             capture_output=True, text=True, timeout=60)
        assert ran.returncode == 0, ran.stderr
        assert json.loads(ran.stdout)["counts"] == {"result": 1}
        assert (target.parent / "张 三.png.json").is_file()
