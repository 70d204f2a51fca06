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


CASCADE_UPLOADS = 200


@pytest.mark.slow
def test_chaos_with_a_cascade_pays_only_for_the_engines_doubts_and_keeps_every_invariant() -> None:
    """OCR_BACKEND=cascade: the engine function (its truth recognizer, doubting 30 % of the permits) first, with
    faults on its InvokeFunction too; no permit the engine was sure of is paid for, no permit twice."""
    report = run(ChaosOptions(uploads=CASCADE_UPLOADS, seed=11, fault_rate=0.2, instances=8, sinks="oss,mns",
                              backend="cascade"))
    table = render(report)
    print(table)
    labels = {row.label.strip(): row for row in report.rows}
    assert labels["paid calls for permits the engine was sure of"].ok
    assert labels["results answered by the wrong recognizer"].ok
    answered_by = labels["permit results answered by"].value
    assert "api" in answered_by and "engine" in answered_by
    assert not report.violations, table
