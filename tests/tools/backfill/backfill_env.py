"""The backfill/replay test world, shared by the e2e tests of issue 12 and before: the OSS, OCR and MNS
stand-ins, the FC API stand-in running the real handler behind the real alibabacloud-fc20230330 SDK (with a
fault plan of its own), and ``permit-ocr backfill|replay`` run in-process as a user runs them."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from permit_ocr.handler import handler
from permit_ocr_local.cli import main
from permit_ocr_local.fcruntime.fcapi import start_fc
from permit_ocr_local.fcruntime.function import FAILURE_TOPIC, LocalFunction
from permit_ocr_local.fcruntime.invoker import failure_payload
from permit_ocr_local.standins.faults import FaultPlan
from permit_ocr_local.standins.fc import FcServer
from support import SAMPLE_TRUTH

REPO = Path(__file__).resolve().parents[3]
# not under test here, and slow on 2 cores: per-instance OCR pacing, in-function OCR retries, and the OCR
# stand-in fetching a presigned URL (a new TLS context per fetch) instead of reading the bytes sent
FAST = {"OCR_QPS": "1000", "OCR_MAX_ATTEMPTS": "1", "WORKERS": "8", "IMAGE_SOURCE": "body", "LOG_LEVEL": "warning"}


class Env:
    def __init__(self, fn: LocalFunction, fc: FcServer, plan: FaultPlan) -> None:
        self.fn, self.fc, self.plan = fn, fc, plan
        self.bucket = fn.deployment.bucket
        self.prefix = fn.deployment.prefix
        self.root = fn.stack.options.root
        assert fn.stack.ocr is not None
        self.ocr = fn.stack.ocr.service

    def path(self, key: str) -> Path:
        return self.root / self.bucket / key

    def drop(self, key: str, data: bytes) -> str:
        """Write the object as a plain file (no upload event); return its ETag (the stand-in's upper MD5)."""
        p = self.path(key)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        return md5(data)

    def doc(self, key: str) -> dict[str, Any] | None:
        p = self.path(key)
        return json.loads(p.read_text()) if p.exists() else None

    def cli(self, command: str, *argv: str) -> int:
        """``permit-ocr COMMAND`` against this world; options in ``argv`` override the defaults (last wins)."""
        return main([command, "--bucket", self.bucket, "--prefix", self.prefix, "--endpoint", self.fc.url,
                     "--rate", "500", "--no-progress", *argv])

    def ocr_calls(self) -> Counter[str]:
        """sha256 -> OCR requests that carried the image, refusals included (the ledger of what was asked)."""
        return Counter(c.sha256 for c in self.ocr.calls)

    def idle(self) -> None:
        assert self.fc.wait_idle(60)


def world(tmp_path: Path) -> Iterator[Env]:
    """The body of each test module's ``env`` fixture (a fixture imported from a module is one ruff flags)."""
    plan = FaultPlan(seed=7)
    with LocalFunction(REPO / "s.yaml", tmp_path / "root", env_overrides=FAST,
                       stack_options={"faults": plan}) as fn:
        mns = fn.stack.mns
        assert mns is not None

        def on_failure(name: str, event: bytes, request_id: str, reason: str, count: int = 1) -> None:
            body = failure_payload(event, request_id, reason, f"acs:fc:cn-hangzhou:local:functions/{name}", count)
            mns.state.publish(FAILURE_TOPIC, json.dumps(body, ensure_ascii=False), "fc-failure")

        fc = start_fc(fn.stack.keyring, {"permit-ocr": (handler, fn.deployment)}, instances=4,
                      on_failure=on_failure, backoff_s=0.02, faults=plan)
        try:
            yield Env(fn, fc, plan)
        finally:
            fc.stop()


def truth(i: int) -> dict[str, str]:
    return dict(SAMPLE_TRUTH, permitNumber=f"H{10_000_000 + i}")


def summary_of(out: str) -> dict[str, Any]:
    """The command's JSON summary line (the handler's own log lines share stdout in-process)."""
    for line in reversed(out.splitlines()):
        if line.startswith('{"command"'):
            doc: dict[str, Any] = json.loads(line)
            return doc
    raise AssertionError(f"no summary in {out[-500:]!r}")


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest().upper()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
