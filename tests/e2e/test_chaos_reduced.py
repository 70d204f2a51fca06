"""The chaos run, reduced: 1,000 uploads of every awkward kind through s.yaml's trigger and FC's async retry
policy, with 20 % transient faults on OCR, OSS and MNS; every invariant of docs/chaos.md must hold."""

from __future__ import annotations

import time

import pytest

from permit_ocr_local.chaos import Options as ChaosOptions
from permit_ocr_local.chaos import render, run

UPLOADS = 1_000
BUDGET_S = 90.0  # on 2 cores, next to the rest of the suite

@pytest.mark.slow
def test_chaos_reduced_run_keeps_every_invariant() -> None:
    started = time.monotonic()
    report = run(ChaosOptions(uploads=UPLOADS, seed=7, fault_rate=0.2, instances=16, sinks="oss,mns"))
    elapsed = time.monotonic() - started
    table = render(report)
    print(table)  # shown with -s, or on failure
    assert elapsed < BUDGET_S, f"reduced chaos run took {elapsed:.0f} s (budget {BUDGET_S:.0f} s)\n{table}"
    assert sum(report.outcomes.values()) > 0.9 * UPLOADS * 0.9  # nearly every key was checked
    assert not report.violations, table
