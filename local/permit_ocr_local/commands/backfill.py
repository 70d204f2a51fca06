"""``permit-ocr backfill --bucket B``: invoke the deployed function for objects already in a bucket (uploaded
before the trigger existed, or while it was disabled). Lists with ListObjectsV2, skips outputs, non-images and
images whose result is up to date (``<key>.json`` with ``x-oss-meta-source-etag`` = the image ETag), and sends
the rest as OSS-shaped events of up to --batch records through FC InvokeFunction (Async), at most --rate events
per second. --checkpoint FILE makes the run resumable: rerun the same command to continue after the last
batch FC accepted. Every accepted batch is printed with its x-fc-request-id (the key to the function's logs).
Configuration: FC_ENDPOINT (or --endpoint), ALIBABA_CLOUD_* credentials, and the function's own variables
(OSS_ENDPOINT, OSS_REGION, RESULT_SUFFIX, ...). See docs/backfill.md.

Exit codes: 0 complete · 1 FC or OSS failed after retries (rerun the same command to resume) · 2 usage,
configuration, credential or checkpoint error (nothing was sent) · 3 stopped early (--max-batches or Ctrl-C;
rerun to resume) · 4 nothing was sent (one line says why, e.g. every image already has its outcome)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable
from typing import Any

from permit_ocr_local.tools import backfill as bf
from permit_ocr_local.tools.backfill import Checkpoint, Item, job


def register(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser("backfill", help="invoke the function for objects already in a bucket", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    job.add_common(p)
    p.add_argument("--since", metavar="ISO8601", help="only objects modified at or after this time (UTC if naive)")
    p.add_argument("--suffix", action="append", default=[], metavar=".jpg",
                   help="only keys ending so (repeatable; default: the function's IMAGE_SUFFIXES)")
    p.add_argument("--count", action="store_true", help="list once first, so the progress bar shows a total/ETA")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    env = dict(os.environ)
    try:
        since = bf.parse_since(args.since) if args.since else None
    except ValueError:
        print(f"permit-ocr backfill: --since {args.since!r} is not ISO 8601", file=sys.stderr)
        return 2
    try:
        job.check_options(args)
        cfg = job.function_config(env, args.bucket)
        suffixes = bf.normalize_suffixes(args.suffix)
        foreign = [s for s in suffixes if not s.endswith(cfg.image_suffixes)]
        if foreign or any(not s.strip(".") for s in args.suffix):
            raise job.UsageError(f"--suffix {', '.join(foreign) or repr('')}: not among the function's IMAGE_SUFFIXES "
                             f"({', '.join(cfg.image_suffixes)}); nothing would be sent")
        storage = bf.OssReader(job.storage_for(cfg, env))
        lister = bf.Lister(bf.oss_client(env, cfg))

        def items(cp: Checkpoint) -> Iterable[Item]:
            return bf.backfill_items(lister.objects(args.bucket, args.prefix, cp.cursor), cfg, args.bucket,
                                     storage.head, since=since, suffixes=suffixes)

        def total(cp: Checkpoint) -> int | None:
            return cp.counts.get("listed", 0) + lister.count(args.bucket, args.prefix, cp.cursor) if args.count \
                else None

        identity = job.job_of(args, since=since.isoformat() if since else "", suffixes=sorted(set(suffixes)))
        preflight = job.oss_preflight(lister, (args.bucket, cfg.output_bucket_for(args.bucket)), args.prefix)
        return job.execute(args, Checkpoint("backfill", args.bucket, args.prefix, job=identity), items, env=env,
                       preflight=preflight, total=total)
    except (job.UsageError, job.Unavailable) as exc:
        return job.fail("backfill", exc)
