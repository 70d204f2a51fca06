"""The chaos run: many uploads of every awkward kind through the function deployed on the local stack (s.yaml's
triggers, FC's async queue and retry policy, the real handler), with transient faults injected into OCR, OSS and
MNS; then the invariants are checked against what the stand-ins hold and the table is drawn.

``workload.build_workload`` makes the uploads (seeded), ``harness.run`` drives them and collects what happened,
``invariants.check`` turns that into rows and violations, ``report.render`` prints them. ``bench/chaos.py`` and
tests/tools/chaos/test_chaos_reduced.py are thin callers; docs/chaos.md explains the table.
"""

from .harness import Options, fault_plan, run
from .invariants import Observed, Report, Row, Violation, check
from .report import render
from .workload import EXPECT, Item, Workload, build_workload, malformed_events

__all__ = ["EXPECT", "Item", "Observed", "Options", "Report", "Row", "Violation", "Workload", "build_workload",
           "check", "fault_plan", "malformed_events", "render", "run"]
