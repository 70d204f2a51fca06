"""check-config beyond one record: a many-record event (backfill sends up to 100) against FC's timeout and retries,
and ``--live``: the output bucket's versioning asked of OSS (the local stack here), which the function refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from permit_ocr.config import load_config
from permit_ocr_local.cli import main
from permit_ocr_local.fcruntime.stack import LocalStack
from permit_ocr_local.tools.deploycheck.budget import calls_per_invocation, check_batch, invocations_for

REPO = Path(__file__).resolve().parents[3]


def cfg(**env: str) -> object:
    return load_config({"SOURCE_BUCKETS": "photos", **env})


def test_a_call_starts_only_while_its_worst_case_and_the_store_margin_fit_the_timeout() -> None:
    c = cfg(OCR_QPS="2", OCR_CONNECT_TIMEOUT_MS="5000", OCR_READ_TIMEOUT_MS="10000")
    assert calls_per_invocation(c, 120) == 201  # (120 - 5 - 15) s x 2/s, and the first at once
    assert calls_per_invocation(c, 19) == 0 and invocations_for(10, c, 19) is None
    assert invocations_for(100, cfg(OCR_QPS="0.5"), 120) == 2


@pytest.mark.parametrize(("qps", "timeout", "retries", "level"), [
    ("2", 120, 2, "ok"),  # 201 calls per invocation: a batch of 100 fits one
    ("0.5", 120, 2, "ok"),  # 51 per invocation: two invocations, FC tries three times
    ("0.1", 120, 2, "error"),  # 11 per invocation: ten needed
    ("10", 19, 2, "error"),  # no call can ever start
])
def test_the_batch_check_weighs_a_full_backfill_event_against_fcs_tries(qps: str, timeout: int, retries: int,
                                                                       level: str) -> None:
    props = {"timeout": timeout, "asyncInvokeConfig": {"maxAsyncRetryAttempts": retries}}
    [finding] = check_batch(props, cfg(OCR_QPS=qps))  # type: ignore[arg-type]
    assert finding.level == level, finding


def test_check_config_live_refuses_a_versioned_output_bucket(stack: LocalStack, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    for name, value in stack.env().items():
        monkeypatch.setenv(name, value)
    assert main(["check-config", str(REPO / "s.yaml"), "--live"]) == 0
    assert "has no versioning" in capsys.readouterr().out
    assert stack.oss is not None
    stack.oss.service.state.set_versioning("permit-ocr-demo", "Suspended")
    assert main(["check-config", str(REPO / "s.yaml"), "--live"]) == 1
    out = capsys.readouterr().out
    assert "versioning Suspended" in out and "x-oss-forbid-overwrite" in out


def test_check_config_live_without_credentials_says_what_to_export(monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET", "ALIBABA_CLOUD_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    assert main(["check-config", str(REPO / "s.yaml"), "--live"]) == 1
    assert "export ALIBABA_CLOUD_*" in capsys.readouterr().out
