"""The self-hosted recognizer from the command line: `permit-ocr run --backend cascade` with the embedded engine
as the engine function (its models load here), and `permit-ocr shadow-report` reading comparison records
through the OSS SDK with the stack's exports."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from permit_ocr.config import load_config
from permit_ocr.handler import App
from permit_ocr_local.cli import main
from permit_ocr_local.fcruntime.enginefn import serve_engine
from permit_ocr_local.fcruntime.stack import LocalStack, StackOptions
from support import SAMPLE_TRUTH, Bucket, invoke, permit_image

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_run_with_a_cascade_pays_only_for_the_sample_the_engine_sends_to_review(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    samples = tmp_path / "samples"
    samples.mkdir()
    for name in ("hk-clean", "hk-review-span"):  # read surely; flagged by its validity span
        for ext in (".jpg", ".truth.json"):
            shutil.copy(REPO / "samples" / f"{name}{ext}", samples)
    code = main(["run", "--root", str(tmp_path / "root"), "--samples", str(samples), "--backend", "cascade",
                 "--timeout", "300"])
    out = capsys.readouterr().out
    assert code == 0, out
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith("hk-")}
    assert rows["hk-clean.jpg"].rstrip().endswith("engine")
    assert rows["hk-review-span.jpg"].rstrip().endswith("api (engine unsure)")
    assert "paid OCR API calls: 1 " in out and "engine function calls: 2 " in out


def test_shadow_report_reads_the_records_of_a_bucket_with_the_stacks_exports(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    with LocalStack(StackOptions(root=tmp_path / "root")) as stack:
        engine = serve_engine(stack.keyring, "truth")
        try:
            env = {**stack.env(), **engine.env(), "SHADOW_RATE": "1", "ENGINE_TIMEOUT_MS": "10000"}
            bucket = Bucket(stack)
            ups = [bucket.put("uploads/a.png", permit_image()),
                   bucket.put("uploads/b.png", permit_image({**SAMPLE_TRUTH, "engine": {"data": {"sex": "女"}}}))]
            invoke(App(load_config(env), environ=env), *ups)
        finally:
            engine.stop()
        for name, value in stack.env().items():
            monkeypatch.setenv(name, value)
        assert main(["shadow-report", "--bucket", "permit-ocr-demo", "--api-price", "0.02"]) == 0
        out = capsys.readouterr().out
        assert "2 comparison record(s): the engine answered 2" in out
        assert "sex" in out and "50.0 %" in out  # one of two disagreed
        assert "1 of them (50.0 %) with a field the API read otherwise" in out
        assert "API alone 20.00 (at 0.02 per call)" in out
        assert main(["shadow-report", "--bucket", "permit-ocr-demo", "--since", "2999-01-01"]) == 0
        assert "no comparison records" in capsys.readouterr().out
    with pytest.raises(SystemExit) as usage:  # one line naming the option, exit 2 (docs: the exit codes)
        main(["shadow-report", "--bucket", "permit-ocr-demo", "--since", "yesterday"])
    assert usage.value.code == 2
