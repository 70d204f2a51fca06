"""``permit-ocr replay --bucket B``: invoke the function again for images that ended with an error record
(``<key>.error.json``), optionally only for some error codes (--code, read from the record's error.code), or for
the events of a failure log (--failure-log: JSON lines of FC onFailure payloads, or of the MNS messages that
carry them; locally ROOT/.mns/permit-ocr-failures.jsonl).

An image is replayed only while it still exists with the ETag the record names (a newer upload has its own
event), and not when a result for that ETag exists. Replay never deletes or changes a record: a transient
record does not stop the function, which replaces it with the new result or record, so an interrupted or
failed replay leaves every image with the outcome it had. A permanent verdict (unmatchedImageType, ...) is
kept: replaying it would pay for the same answer. --include-permanent insists (the events then carry the
replay mark the function honours, one image per event) and pays again for each. An image whose version is
still claimed (a verdict written less than the function timeout ago) is sent once the claim expires, saying
so: sent earlier, the function would answer ClaimHeld and replace nothing. Batching, --rate, --checkpoint and
--report are those of ``permit-ocr backfill``.

Exit codes: 0 complete · 1 FC or OSS failed after retries (rerun the same command to resume) · 2 usage,
configuration, credential or checkpoint error (nothing was sent) · 3 stopped early (--max-batches or Ctrl-C;
rerun to resume) · 4 nothing was sent (one line says why: no record matched, every image keeps its verdict, ...)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from permit_ocr_local.tools.backfill import Checkpoint, Item, job


def register(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser("replay", help="re-invoke images that ended with an error record", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    job.add_common(p)
    p.add_argument("--code", action="append", default=[], help="only records with this error.code (repeatable)")
    p.add_argument("--failure-log", type=Path, metavar="FILE",
                   help="replay the events of this JSON-lines log of onFailure payloads instead of listing records")
    p.add_argument("--include-permanent", action="store_true",
                   help="also replay permanent verdicts of the same image version (each pays OCR again)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from permit_ocr_local.tools.backfill import Lister, OssReader, oss_client
    from permit_ocr_local.tools.replay import Replayer

    env = dict(os.environ)
    try:
        job.check_options(args)
        if any(not c.strip() for c in args.code):
            raise job.UsageError("--code needs an error code, e.g. --code Throttling.User")
        cfg = job.function_config(env, args.bucket)
        storage = OssReader(job.storage_for(cfg, env))
        replayer = Replayer(cfg, storage.head, storage.read, frozenset(args.code), args.include_permanent)
        log = args.failure_log
        if log is not None and not log.is_file():
            raise job.UsageError(f"no failure log at {log}")
        lister = Lister(oss_client(env, cfg))
        out_bucket = cfg.output_bucket_for(args.bucket)

        def items(cp: Checkpoint) -> Iterable[Item]:
            if log is not None:
                return replayer.from_failure_log(_lines(log), args.bucket, args.prefix, cp.cursor)
            records = lister.objects(out_bucket, cfg.output_prefix_for(args.bucket) + args.prefix, cp.cursor)
            return replayer.from_records(records, args.bucket)

        if args.include_permanent:
            print("permit-ocr replay: warning: --include-permanent recognizes permanent verdicts again; each one "
                  "is a paid OCR call that will most likely give the same answer", file=sys.stderr)
        identity = job.job_of(args, codes=sorted(set(args.code)), includePermanent=args.include_permanent)
        fresh = Checkpoint("replay", args.bucket, args.prefix, source=str(log.resolve()) if log else "", job=identity)
        preflight = job.oss_preflight(lister, (args.bucket, out_bucket), "" if log else args.prefix)
        return job.execute(args, fresh, items, env=env, preflight=preflight)
    except (job.UsageError, job.Unavailable) as exc:
        return job.fail("replay", exc)


def _lines(path: Path) -> Iterable[str]:
    with path.open(encoding="utf-8", errors="replace") as f:
        yield from f
