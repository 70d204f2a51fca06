"""What the deployment needs of the cloud, checked once per instance before the first upload: the buckets that
hold claims (the output buckets) must not have versioning. OSS documents that ``x-oss-forbid-overwrite`` "设置无效"
(is ignored) on a bucket whose versioning is Enabled or Suspended (PutObject API reference), and every claim in the
ledger is a create-only PUT: on such a bucket two deliveries would both get the claim and both pay.
"""

from __future__ import annotations

import functools

from . import log
from .config import Config, ConfigError
from .errors import StorageError
from .storage import Storage, retrying


def claim_buckets(cfg: Config) -> list[str]:
    """The buckets whose ``.permit-ocr/`` holds the claims: OUTPUT_BUCKET, else each source bucket."""
    return [cfg.output_bucket] if cfg.output_bucket else list(cfg.source_buckets)


def versioning_problem(bucket: str, state: str | None, *, own_setting: str) -> str | None:
    """Why ``bucket`` cannot hold claims, or None."""
    if state not in ("Enabled", "Suspended"):
        return None
    fix = ("set OUTPUT_BUCKET to a bucket that never had versioning" if own_setting == "SOURCE_BUCKETS"
           else "choose an OUTPUT_BUCKET that never had versioning")
    return (f"bucket {bucket} has versioning {state}: OSS ignores x-oss-forbid-overwrite there, so the claims "
            f"that keep each upload to one paid call would exclude nobody; {fix}")


def refuse_what_cannot_hold(cfg: Config, storage: Storage) -> None:
    setting = "OUTPUT_BUCKET" if cfg.output_bucket else "SOURCE_BUCKETS"
    for bucket in claim_buckets(cfg):
        try:
            state = retrying(functools.partial(storage.bucket_versioning, bucket))
        except StorageError as err:  # no grant to ask, or OSS down: the first writes will tell; say so once
            log.warning("bucket versioning not checked", code=err.code, bucket=bucket)
            continue
        problem = versioning_problem(bucket, state, own_setting=setting)
        if problem:
            raise ConfigError({setting: problem})
