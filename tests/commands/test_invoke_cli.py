"""permit-ocr invoke's pure parts: the why-line of every non-result outcome, and the fast check for a stack."""

from __future__ import annotations

import socket

import pytest

from permit_ocr_local.commands import invoke


@pytest.mark.parametrize(("status", "code", "says"), [
    ("skipped", "Superseded", "--use-stored"),
    ("duplicate", None, "already stored"),
    ("skipped", "NoSuchKey", "copy an image there first"),
    ("duplicate", "SameEvent", "twice"),
    ("retrying", "ClaimHeld", "claim"),
    ("error", "unmatchedImageType", "error record"),  # any other error code: where the reason is written
    ("retrying", "Throttling.User", "run the same command again"),
    ("rejected", "BucketNotAllowed", "SOURCE_BUCKETS"),
    ("something-new", None, "README"),  # never silent, even for a status this table does not know
])
def test_every_non_result_outcome_gets_a_line_saying_why(status: str, code: str | None, says: str) -> None:
    line = invoke.hint({"bucket": "b", "key": "uploads/a.jpg", "status": status, "code": code})
    assert line is not None and line.startswith("b/uploads/a.jpg: ") and says in line


def test_a_result_needs_no_explanation() -> None:
    assert invoke.hint({"bucket": "b", "key": "k", "status": "result", "code": "needsReview"}) is None


def test_require_oss_fails_fast_on_a_closed_local_port(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("OSS_ENDPOINT", f"http://127.0.0.1:{port}")
    with pytest.raises(invoke.CliError) as err:
        invoke.require_oss()
    assert err.value.code == invoke.EXIT_NO_STACK and "permit-ocr stack" in str(err.value)


def test_require_oss_accepts_a_listening_port_and_leaves_real_endpoints_to_the_sdk(
        monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        monkeypatch.setenv("OSS_ENDPOINT", f"http://127.0.0.1:{s.getsockname()[1]}")
        invoke.require_oss()
    monkeypatch.setenv("OSS_ENDPOINT", "https://oss-cn-hangzhou-internal.aliyuncs.com")
    invoke.require_oss()  # not probed: no network use here
