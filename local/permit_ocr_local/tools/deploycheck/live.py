"""The one check that needs the cloud (``check-config --live``): the buckets that hold the claims must not have
versioning, because OSS ignores ``x-oss-forbid-overwrite`` there. The function itself refuses to start on such a
bucket (``permit_ocr.preflight``); this says so before a deploy. The rule is the function's; only the asking is
here."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from permit_ocr.config import Config, load_config
from permit_ocr.errors import StepError
from permit_ocr.preflight import claim_buckets, versioning_problem
from permit_ocr_local.fcruntime.deployment import Finding, ok

# what the machine running check-config says about where OSS is (the stack's exports, or a real region's)
WHERE: tuple[str, ...] = ("OSS_ENDPOINT", "OSS_PUBLIC_ENDPOINT", "OSS_REGION")


def live_config(function_env: Mapping[str, str], here: Mapping[str, str]) -> Config:
    """The function's configuration from s.yaml, asked at the OSS endpoint this machine reaches."""
    return load_config({**function_env, **{k: here[k] for k in WHERE if here.get(k)}})


def check_claim_buckets(cfg: Config, versioning: Callable[[str], str | None]) -> list[Finding]:
    setting = "OUTPUT_BUCKET" if cfg.output_bucket else "SOURCE_BUCKETS"
    findings: list[Finding] = []
    for bucket in claim_buckets(cfg):
        try:
            state = versioning(bucket)
        except StepError as err:
            findings.append(Finding("error", "versioning", f"cannot read the versioning of bucket {bucket}: "
                                    f"{err.code}", "check the credentials and that the bucket exists"))
            continue
        problem = versioning_problem(bucket, state, own_setting=setting)
        findings.append(Finding("error", "versioning", problem, f"fix {setting}") if problem else
                        ok("versioning", f"bucket {bucket} has no versioning: its claims exclude each other"))
    return findings
