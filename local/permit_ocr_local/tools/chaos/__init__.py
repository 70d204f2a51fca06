"""The chaos run: many uploads of every awkward kind through the function deployed on the local stack (s.yaml's
triggers, FC's async queue and retry policy, the real handler, one App per FC instance), with transient faults
injected into OCR, OSS and MNS and a world that changes around it (OSS outages of seconds, slow publishes,
claims that run out while their holder runs, permissions, KMS keys and storage classes that change, markers
that expire, users who delete results, a second source bucket, the review page saving while the function
runs, many-record events near their deadline); then faults off, FC's retries, replay and backfill, and the
invariants are checked against what the stand-ins hold.

``workload.build_workload`` makes the uploads (seeded), ``scripts`` says what happens around each scripted kind,
``world`` holds the world's moving parts, ``tap`` sits between FC and the function, ``reviewers`` is the review
page, ``harness.run`` drives it all, ``invariants.check`` turns what was left into rows and violations,
``report.render`` prints them. ``bench/chaos.py`` and tests/tools/chaos/test_chaos_reduced.py are thin callers;
docs/chaos.md explains the table.
"""

from .harness import Options, fault_plan, run
from .invariants import Observed, Report, Row, Violation, check
from .report import render
from .workload import EXPECT, Item, Workload, build_workload, malformed_events

__all__ = ["EXPECT", "Item", "Observed", "Options", "Report", "Row", "Violation", "Workload", "build_workload",
           "check", "fault_plan", "malformed_events", "render", "run"]
