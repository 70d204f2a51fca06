"""The chaos run, reduced: 1,000 uploads of every awkward kind through s.yaml's trigger and FC's async retry
policy, with 20 % transient faults on OCR, OSS and MNS, an MNS outage, overwrites during a slow OCR call,
delete-and-re-upload, and instances that die mid-invocation; every invariant of docs/chaos.md must hold.
How long it takes is measured by ``make chaos`` (bench), not asserted here."""

from __future__ import annotations

import pytest

from permit_ocr_local.tools.chaos import Options as ChaosOptions
from permit_ocr_local.tools.chaos import render, run

UPLOADS = 1_000

@pytest.mark.slow
def test_chaos_reduced_run_keeps_every_invariant() -> None:
    report = run(ChaosOptions(uploads=UPLOADS, seed=7, fault_rate=0.2, instances=16, sinks="oss,mns"))
    table = render(report)
    print(table)  # shown with -s, or on failure
    assert sum(report.outcomes.values()) > 0.9 * UPLOADS * 0.9  # nearly every key was checked
    assert not report.violations, table
