"""``permit-ocr stack --trigger s.yaml`` also serves the FC API, so backfill works against the local stack
exactly as against the cloud: objects already in the bucket are recognized through InvokeFunction."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from permit_ocr_local.cli import main
from permit_ocr_local.fcruntime.function import LocalFunction
from support import permit_image

REPO = Path(__file__).resolve().parents[3]


def test_backfill_recognizes_objects_that_were_there_before_the_trigger(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with LocalFunction(REPO / "s.yaml", tmp_path / "root") as fn:
        folder = tmp_path / "root" / fn.deployment.bucket / "old"
        folder.mkdir(parents=True)
        for i in range(3):  # dropped as files: already in the bucket, no trigger fired
            (folder / f"{i}.png").write_bytes(permit_image(size=(60, 40)))
        for k, v in fn.env().items():
            monkeypatch.setenv(k, v)
        code = main(["backfill", "--bucket", fn.deployment.bucket, "--prefix", "old/", "--no-progress"])
        assert code == 0
        assert fn.wait_idle(30)
        for i in range(3):
            doc = json.loads((folder / f"{i}.png.json").read_text())
            assert doc["type"] == "result"
