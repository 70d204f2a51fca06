"""The chaos run, reduced: 600 uploads of every awkward and every scripted kind through s.yaml's trigger and FC's
async retry policy (outputs beside the images, as s.yaml deploys it; `make chaos` runs the shared layout), with
20 % transient faults on OCR, OSS and MNS, outages of seconds, an MNS outage, a world that changes around the
function, then faults off, replay and backfill; every invariant of docs/chaos.md must hold. Each scripted kind
plays at least once or twice whatever the size. How long it takes is measured by ``make chaos`` (bench), not
asserted here."""

from __future__ import annotations

import pytest

from permit_ocr_local.tools.chaos import Options as ChaosOptions
from permit_ocr_local.tools.chaos import render, run

UPLOADS = 600


@pytest.mark.slow
def test_chaos_reduced_run_keeps_every_invariant() -> None:
    report = run(ChaosOptions(uploads=UPLOADS, seed=7, fault_rate=0.2, instances=16, sinks="oss,mns",
                              layout="beside"))
    table = render(report)
    print(table)  # shown with -s, or on failure
    assert sum(report.outcomes.values()) > 0.9 * UPLOADS * 0.9  # nearly every key was checked
    assert not report.violations, table
    # the scripted windows happened, and were counted: an answer lost to the read timeout (c), a user's delete
    # (d), markers deleted by hand (e)
    assert all(report.windows[w][0] > 0 for w in "cde"), table


CASCADE_UPLOADS = 200


@pytest.mark.slow
def test_chaos_with_a_cascade_pays_only_for_the_engines_doubts_and_keeps_every_invariant() -> None:
    """OCR_BACKEND=cascade: the engine function (its truth recognizer, doubting 30 % of the plain permits and
    every scripted one) first, with faults on its InvokeFunction too; no permit the engine was sure of is paid
    for, each result says the recognizer the cascade should have picked, and every other invariant holds."""
    report = run(ChaosOptions(uploads=CASCADE_UPLOADS, seed=11, fault_rate=0.2, instances=8, sinks="oss,mns",
                              backend="cascade"))
    table = render(report)
    print(table)
    labels = {row.label.strip(): row for row in report.rows}
    assert labels["paid calls for permits the engine was sure of"].ok
    assert labels["results answered by the wrong recognizer"].ok
    answered_by = labels["results answered by"].value
    assert "api" in answered_by and "engine" in answered_by
    assert not report.violations, table
