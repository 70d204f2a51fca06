"""``permit-ocr recognize`` prints the Data JSON and draws annotations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from permit_ocr_local import engine as engine_pkg
from permit_ocr_local.cli import main
from permit_ocr_local.engine import Engine

from .conftest import SAMPLES

TOP_KEYS = {"data", "prism_keyValueInfo", "sliceRect", "ftype", "width", "height", "orgWidth", "orgHeight"}


@pytest.fixture(autouse=True)
def shared_engine(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine_pkg, "Engine", lambda: engine)  # reuse the loaded models


def test_prints_data_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["recognize", str(SAMPLES / "hk-clean.jpg"), str(SAMPLES / "taiwan-clean.jpg")]) == 0
    docs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(docs) == 2
    for doc in docs:
        assert set(doc) == TOP_KEYS
        assert set(doc["sliceRect"]) == {f"{a}{i}" for i in range(4) for a in "xy"}
        assert len(doc["prism_keyValueInfo"]) == 10
    assert docs[1]["data"]["permitType"] == "台湾居民来往大陆通行证"


def test_figure_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["recognize", "--figure", str(SAMPLES / "macao-clean.jpg")]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["figure"][0]["type"] == "face"


def test_annotate_writes_png(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ann.png"
    assert main(["recognize", str(SAMPLES / "hk-rot90.jpg"), "--annotate", str(out)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert "figure" not in doc  # drawn, but only printed with --figure
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    many = tmp_path / "many.png"
    assert main(["recognize", str(SAMPLES / "hk-clean.jpg"), str(SAMPLES / "taiwan-clean.jpg"),
                 "--annotate", str(many)]) == 0
    assert (tmp_path / "many-1.png").is_file() and (tmp_path / "many-2.png").is_file()


def test_bad_file_exit_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"nope")
    assert main(["recognize", str(junk)]) == 1
    err = json.loads(capsys.readouterr().err)
    assert err["Code"] == "unsupportedImageFormat"
