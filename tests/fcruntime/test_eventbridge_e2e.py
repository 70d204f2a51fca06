"""s.eventbridge.yaml on the local stack: the stand-in's EventBridge rule delivers CloudEvents envelopes, and an
upload named Photo.JPG (which no native trigger of s.yaml fires for) ends with its result."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from permit_ocr_local.fcruntime.function import LocalFunction
from support import SAMPLE_TRUTH, Bucket, permit_image

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _restore_environ() -> Iterator[None]:
    """LocalFunction configures the function through os.environ (as FC does); s.eventbridge.yaml's OUTPUT_PREFIX
    must not outlive these tests in the worker process."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def test_eventbridge_event_of_an_upper_case_photo_jpg_upload_produces_its_result(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    delivered: list[bytes] = []
    with LocalFunction(REPO / "s.eventbridge.yaml", tmp_path / "root", ocr_backend="truth") as fn:
        assert fn.invoker is not None
        submit = fn.invoker.submit

        def spy(event: bytes, request_id: str | None = None) -> str:  # what the trigger hands the function
            delivered.append(event)
            return submit(event, request_id)

        monkeypatch.setattr(fn.invoker, "submit", spy)
        bucket = Bucket(fn.stack, fn.deployment.bucket)
        bucket.put("uploads/Photo.JPG", permit_image(fmt="JPEG"))
        bucket.put("uploads/notes.txt", b"not an image")  # fires too (no suffix filter), skipped by the function
        assert fn.wait_idle(60)
        assert fn.invoker.stats["events"] == 2  # the result under results/ is outside the rule: no re-trigger
        doc = json.loads(bucket.get("results/uploads/Photo.JPG.json"))
        assert doc["data"]["data"] == SAMPLE_TRUTH
        assert doc["source"]["key"] == "uploads/Photo.JPG"
        assert not bucket.exists("results/uploads/notes.txt.json")
        assert not bucket.exists("results/uploads/notes.txt.error.json")
    envelopes = [json.loads(e) for e in delivered]
    assert {e["specversion"] for e in envelopes} == {"1.0"} and {e["source"] for e in envelopes} == {"acs.oss"}
    assert sorted(e["subject"].rsplit("/", 1)[-1] for e in envelopes) == ["Photo.JPG", "notes.txt"]
    assert all("events" not in e for e in envelopes)  # the envelope shape, not the native notification


def test_run_with_the_eventbridge_deployment_reads_upper_case_suffixes_and_finds_results_under_results(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from permit_ocr_local.cli import main

    samples = tmp_path / "samples"
    samples.mkdir()
    (samples / "HK.PNG").write_bytes(permit_image(size=(928, 626)))
    code = main(["run", "--root", str(tmp_path / "root"), "--samples", str(samples), "--s-yaml",
                 str(REPO / "s.eventbridge.yaml"), "--ocr-backend", "truth", "--timeout", "60"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "HK.PNG" in out and "H10387877 01" in out and " ok " in out
    assert (tmp_path / "root" / "permit-ocr-demo" / "results" / "uploads" / "HK.PNG.json").is_file()
