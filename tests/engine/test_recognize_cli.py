"""``permit-ocr recognize`` prints the Data JSON and draws annotations."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

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
    assert "figure" not in doc
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    many = tmp_path / "many.png"
    assert main(["recognize", str(SAMPLES / "hk-clean.jpg"), str(SAMPLES / "taiwan-clean.jpg"),
                 "--annotate", str(many)]) == 0
    assert (tmp_path / "many-1.png").is_file() and (tmp_path / "many-2.png").is_file()


def test_annotate_writes_the_format_its_suffix_names(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ann.jpg"
    assert main(["recognize", str(SAMPLES / "hk-clean.jpg"), "--annotate", str(out)]) == 0
    assert out.read_bytes()[:2] == b"\xff\xd8"


def test_annotate_refuses_a_suffix_it_cannot_write_in_one_line(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["recognize", str(SAMPLES / "hk-clean.jpg"), "--annotate", str(tmp_path / "ann.xyz")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and ".xyz" in err and not (tmp_path / "ann.xyz").exists()


def test_annotation_draws_a_face_box_only_with_figure_and_lists_each_cue(engine: Engine) -> None:
    from permit_ocr_local.engine.annotate import FACE, render

    image = (SAMPLES / "hk-clean.jpg").read_bytes()
    without = engine.recognize(image)
    cues = dict(engine.cues)
    with_fig = engine.recognize(image, output_figure=True)
    assert with_fig["figure"]

    def face_pixels(data: dict[str, object]) -> int:
        arr = np.asarray(render(image, data, cues))
        return int(np.all(arr == FACE, axis=-1).sum())

    assert face_pixels(without) == 0 < face_pixels(with_fig)
    assert set(cues) >= {"nameCn", "permitNumber"} and all(
        c in ("label+pattern", "pattern", "position") for c in cues.values())


def test_annotation_tags_stay_inside_a_turned_card(engine: Engine) -> None:
    """On a card photographed at 90 degrees every field tag is drawn inside the image, none cut off."""
    from permit_ocr_local.engine.annotate import render

    image = (SAMPLES / "hk-rot90.jpg").read_bytes()
    data = engine.recognize(image)
    picture = render(image, data, engine.cues)
    w, _ = Image.open(io.BytesIO(image)).size
    assert picture.width > w  # the panel with the values sits beside the image, not over it


def test_oversized_image_is_illegal_image_size(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    big = tmp_path / "big.png"
    Image.new("RGB", (8200, 20)).save(big)
    assert main(["recognize", str(big)]) == 1
    assert json.loads(capsys.readouterr().err)["Code"] == "illegalImageSize"


def test_bad_file_exit_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"nope")
    assert main(["recognize", str(junk)]) == 1
    err = json.loads(capsys.readouterr().err)
    assert err["Code"] == "unsupportedImageFormat"


def test_a_heic_photo_and_each_page_of_a_pdf_scan_are_read_as_the_function_sends_them(
        capsys: pytest.CaptureFixture[str]) -> None:
    """The engine reads neither HEIC nor PDF: the command converts them with the function's own code first."""
    assert main(["recognize", str(SAMPLES / "macao-phone.heic"), str(SAMPLES / "two-permits-scan.pdf")]) == 0
    read = [json.loads(line)["data"]["permitNumber"] for line in capsys.readouterr().out.splitlines()]
    heic = json.loads((SAMPLES / "macao-phone.heic.truth.json").read_text("utf-8"))["data"]["permitNumber"]
    pages = json.loads((SAMPLES / "two-permits-scan.pdf.truth.json").read_text("utf-8"))["pages"]
    assert read == [heic, *(p["data"]["permitNumber"] for p in pages)]


def test_a_sideways_photo_is_stood_up_by_its_exif_orientation_first(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from permit_ocr_local.synth import formats

    image, truth = (SAMPLES / "hk-clean.jpg").read_bytes(), json.loads(
        (SAMPLES / "hk-clean.truth.json").read_text("utf-8"))
    turned = tmp_path / "turned.jpg"
    turned.write_bytes(formats.sideways_jpeg(image, 8))
    assert main(["recognize", str(turned)]) == 0
    assert json.loads(capsys.readouterr().out)["data"]["permitNumber"] == truth["data"]["permitNumber"]


def test_a_locked_pdf_prints_one_error_line_and_the_other_files_still_run(tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    from permit_ocr_local.synth import formats

    locked = tmp_path / "locked.pdf"
    locked.write_bytes(formats.encrypted_pdf((SAMPLES / "two-permits-scan.pdf").read_bytes()))
    assert main(["recognize", str(locked), str(SAMPLES / "hk-clean.jpg")]) == 1
    out = capsys.readouterr()
    assert json.loads(out.err) == {"image": str(locked), "Code": "passwordProtectedPDF",
                                   "Message": "the PDF needs a password to open; upload it without one"}
    assert len(out.out.splitlines()) == 1
