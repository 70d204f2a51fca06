"""Offline checks of ``s.yaml`` (Serverless Devs, component fc3) against the function's own configuration.

The ``s`` CLI needs the network to validate anything, so this tool re-derives what matters from the file, read
through the runtime's deployment model (``permit_ocr_local.fcruntime.deployment``): trigger loops (``loops``),
wildcard or per-part trigger events (``events``), buckets the function would refuse, timeouts too short for
the OCR retry budget (``budget``), and every environment value run through ``permit_ocr.config.load_config``
(``checks``). Each check is a pure function returning ``Finding`` objects; the ``check-config`` command prints
them. ``policy`` derives the function role's RAM policy and the bucket lifecycle rule from the same resolved
file, so the policy and the deployment cannot drift apart.
"""

from .budget import OSS_IO_BUDGET_S, backoff_budget_s, record_budget_s
from .checks import (
    MAX_TRIGGERS_PER_BUCKET,
    Finding,
    check_build,
    check_deployment,
    check_ocr_quota,
    failed,
    format_findings,
)
from .events import RECOMMENDED_EVENTS
from .loops import check_output_loops, loop_example
from .policy import POLICY_ACCOUNT_ID, policy_json, render_lifecycle, render_policy

__all__ = [
    "MAX_TRIGGERS_PER_BUCKET",
    "OSS_IO_BUDGET_S",
    "POLICY_ACCOUNT_ID",
    "RECOMMENDED_EVENTS",
    "Finding",
    "backoff_budget_s",
    "check_build",
    "check_deployment",
    "check_ocr_quota",
    "check_output_loops",
    "failed",
    "format_findings",
    "loop_example",
    "policy_json",
    "record_budget_s",
    "render_lifecycle",
    "render_policy",
]
