"""The trigger of s.yaml, emulated: uploads invoke the real handler asynchronously, outputs never re-trigger,
and ``permit-ocr run`` prints the table with every outcome."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from permit_ocr_local.cli import main
from permit_ocr_local.fcruntime.function import LocalFunction
from support import SAMPLE_TRUTH, Bucket, permit_image

REPO = Path(__file__).resolve().parents[2]


def test_upload_matching_the_trigger_is_recognized_and_its_output_does_not_retrigger(tmp_path: Path) -> None:
    with LocalFunction(REPO / "s.yaml", tmp_path / "root") as fn:
        bucket = Bucket(fn.stack, fn.deployment.bucket)
        bucket.put(f"{fn.deployment.prefix}a.png", permit_image())
        bucket.put("elsewhere/b.png", permit_image())  # outside the trigger prefix: no event
        assert fn.wait_idle(30)
        assert fn.invoker is not None
        assert fn.invoker.stats["events"] == 1  # the .json written beside a.png fired nothing
        doc = json.loads(bucket.get(f"{fn.deployment.prefix}a.png.json"))
        assert doc["data"]["data"] == SAMPLE_TRUTH
        assert not bucket.exists("elsewhere/b.png.json")


def test_run_command_uploads_samples_and_prints_a_row_per_image_and_per_page_of_a_pdf(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    samples = tmp_path / "samples"
    samples.mkdir()
    (samples / "hk.png").write_bytes(permit_image(size=(928, 626)))
    (samples / "not-a-permit.png").write_bytes(permit_image({}))
    # the truth OCR finds no truth in a converted page (the conversion drops what the truth backend reads)
    (samples / "scan.pdf").write_bytes((REPO / "samples" / "two-permits-scan.pdf").read_bytes())
    code = main(["run", "--root", str(tmp_path / "root"), "--samples", str(samples), "--s-yaml",
                 str(REPO / "s.yaml"), "--ocr-backend", "truth", "--timeout", "60"])
    out = capsys.readouterr().out
    assert code == 1  # one image is not a permit: reported, not hidden
    assert "hk.png" in out and "H10387877 01" in out and " ok " in out
    assert "error: unmatchedImageType" in out
    pages = [line.split() for line in out.splitlines() if line.startswith("scan.pdf")]
    assert pages == [["scan.pdf", "p1", "error:", "unmatchedImageType"],
                     ["scan.pdf", "p2", "error:", "unmatchedImageType"]]  # the PDF's outcome is an index of pages
    uploads = tmp_path / "root" / "permit-ocr-demo" / "uploads"
    for stored in (uploads / "hk.png.json", uploads / "not-a-permit.png.error.json"):  # `cat` ends its line
        assert stored.read_bytes().endswith(b"}\n"), stored.name


def test_run_shows_signs_of_life_while_the_function_works(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    samples = tmp_path / "samples"
    samples.mkdir()
    (samples / "slow.png").write_bytes(permit_image({**SAMPLE_TRUTH, "delay": 4}))
    code = main(["run", "--root", str(tmp_path / "root"), "--samples", str(samples), "--ocr-backend", "truth"])
    out = capsys.readouterr().out
    assert code == 0
    waiting = out.index("waiting for the function")
    assert "  0/1 done" in out[waiting:out.index("file ")]  # a line every few seconds while nothing lands


def test_an_image_without_an_outcome_says_whose_claim_holds_it_and_until_when(tmp_path: Path) -> None:
    from permit_ocr.layout import marker_key
    from permit_ocr.ledger import RUNNING, Holder, marker_body
    from permit_ocr_local.commands.run import missing_reason

    env = {"SOURCE_BUCKETS": "permit-ocr-demo"}
    etag = "0123456789ABCDEF0123456789ABCDEF"
    marker = tmp_path / "permit-ocr-demo" / marker_key("permit-ocr-demo", "uploads/a.jpg", etag, 0)
    marker.parent.mkdir(parents=True)
    marker.write_bytes(marker_body(etag, Holder("t", "r", 1_000_120.0, RUNNING), 1_000_000.0))
    held = missing_reason(tmp_path, env, "permit-ocr-demo", "uploads/a.jpg", etag, now=1_000_060.0)
    assert "another attempt holds its claim until" in held and "run again" in held
    # past the expiry and the clock skew the function allows
    expired = missing_reason(tmp_path, env, "permit-ocr-demo", "uploads/a.jpg", etag, now=1_000_123.0)
    assert "gave up" in expired and "function.log" in expired
