"""``permit-ocr backfill --bucket B``: invoke the deployed function for objects already in a bucket (uploaded
before the trigger existed, or while it was disabled). Lists with ListObjectsV2, skips outputs, non-images and
images whose result is up to date (``<key>.json`` with ``x-oss-meta-source-etag`` = the image ETag), and sends
the rest as OSS-shaped events of up to --batch records through FC InvokeFunction (Async), at most --rate events
per second. --checkpoint FILE makes the run resumable: rerun the same command to continue after the last
batch FC accepted. Configuration: FC_ENDPOINT (or --endpoint), ALIBABA_CLOUD_* credentials, and the function's
own variables (OSS_ENDPOINT, OSS_REGION, RESULT_SUFFIX, ...). See docs/backfill.md.

Exit status: 0 complete, 1 a batch could not be sent (rerun to resume), 2 usage or configuration error,
3 stopped early (--max-batches or Ctrl-C; rerun to resume)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from permit_ocr_local import backfill as bf
from permit_ocr_local.backfill import Checkpoint, Item, RunResult

DEFAULT_FUNCTION = "permit-ocr"


def register(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser("backfill", help="invoke the function for objects already in a bucket", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common(p)
    p.add_argument("--since", metavar="ISO8601", help="only objects modified at or after this time (UTC if naive)")
    p.add_argument("--suffix", action="append", default=[], metavar=".jpg",
                   help="only keys ending so (repeatable; default: the function's IMAGE_SUFFIXES)")
    p.add_argument("--count", action="store_true", help="list once first, so the progress bar shows a total/ETA")
    p.set_defaults(func=run)
    return p


def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bucket", required=True, help="source bucket (must be in SOURCE_BUCKETS)")
    p.add_argument("--prefix", default="", help="only keys under this prefix")
    p.add_argument("--rate", type=float, default=5.0, help="events per second sent to FC (default 5)")
    p.add_argument("--batch", type=int, default=10, help="records per event, 1..100 (default 10)")
    p.add_argument("--checkpoint", type=Path, help="resume file (JSON), written atomically after each batch")
    p.add_argument("--dry-run", action="store_true", help="list and decide, send nothing, write no checkpoint")
    p.add_argument("--function", default=os.environ.get("FC_FUNCTION_NAME", DEFAULT_FUNCTION),
                   help=f"function name (default $FC_FUNCTION_NAME or {DEFAULT_FUNCTION})")
    p.add_argument("--qualifier", help="version or alias (default LATEST)")
    p.add_argument("--endpoint", default=os.environ.get("FC_ENDPOINT", ""),
                   help="FC API endpoint: <uid>.<region>.fc.aliyuncs.com, or http://127.0.0.1:PORT locally "
                        "(default $FC_ENDPOINT)")
    p.add_argument("--protocol", choices=("https", "http"), help="when --endpoint has no scheme")
    p.add_argument("--max-batches", type=int, help="stop after this many batches (a canary); resumable")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


class UsageError(Exception):
    pass


def function_config(env: Mapping[str, str], bucket: str) -> Any:
    """The function's Config from the same variables it reads in FC; SOURCE_BUCKETS defaults to --bucket."""
    from permit_ocr.config import ConfigError, load_config

    missing = [n for n in ("ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET") if not env.get(n)]
    if missing:
        raise UsageError(f"no credentials: set {' and '.join(missing)}")
    try:
        cfg = load_config({**env, "SOURCE_BUCKETS": env.get("SOURCE_BUCKETS") or bucket})
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    if bucket not in cfg.source_buckets:
        raise UsageError(f"bucket {bucket!r} is not in SOURCE_BUCKETS; the function would reject its events")
    return cfg


def storage_for(cfg: Any, env: Mapping[str, str]) -> Any:
    from permit_ocr.credentials import resolve
    from permit_ocr.storage import Storage

    return Storage(cfg, lambda: resolve(env))


def execute(args: argparse.Namespace, fresh: Checkpoint, items: Callable[[Checkpoint], Iterable[Item]], *,
            env: Mapping[str, str], total: Callable[[Checkpoint], int | None] | None = None,
            clear: Callable[[str, str], None] | None = None) -> int:
    """Shared by backfill and replay: checkpoint, sender, progress bar, run, summary."""
    if not 1 <= args.batch <= 100 or args.rate <= 0:
        raise UsageError("--batch must be 1..100 and --rate > 0")
    try:
        cp = bf.load_checkpoint(args.checkpoint, fresh)
    except (bf.CheckpointMismatch, ValueError) as exc:
        raise UsageError(str(exc)) from None
    if cp.complete:
        print(f"permit-ocr: {args.checkpoint} records a finished run; delete it to start over", file=sys.stderr)
        return _report(RunResult(cp), dry_run=args.dry_run)
    sender = None
    if not args.dry_run:
        if not args.endpoint:
            raise UsageError("no FC endpoint: pass --endpoint or set FC_ENDPOINT")
        host, protocol = bf.fc_endpoint(args.endpoint, args.protocol)
        sender = bf.FcInvoker(host, protocol, args.function, env, qualifier=args.qualifier)
    opts = bf.RunOptions(batch=args.batch, rate=args.rate, dry_run=args.dry_run, max_batches=args.max_batches,
                      checkpoint_path=args.checkpoint)
    known = total(cp) if total is not None else None
    from tqdm import tqdm

    with tqdm(total=known, initial=cp.counts.get("listed", 0) if known is not None else 0, unit="obj",
              desc=fresh.command, disable=args.no_progress, file=sys.stderr, dynamic_ncols=True) as bar:
        result = bf.run_items(items(cp), cp, sender, opts, clear=clear, progress=bar)
    return _report(result, dry_run=args.dry_run)


def _report(result: RunResult, *, dry_run: bool) -> int:
    s = bf.summary(result, dry_run=dry_run)
    print(json.dumps(s, ensure_ascii=False))
    print(bf.summary_table(s))
    if result.error:
        print(f"permit-ocr: {result.error}; rerun the same command to resume", file=sys.stderr)
    return {"": 0, "error": 1, "max-batches": 3, "interrupted": 3}.get(result.stopped, 1)


def run(args: argparse.Namespace) -> int:
    env = dict(os.environ)
    try:
        since = bf.parse_since(args.since) if args.since else None
    except ValueError:
        print(f"permit-ocr backfill: --since {args.since!r} is not ISO 8601", file=sys.stderr)
        return 2
    try:
        cfg = function_config(env, args.bucket)
        storage = storage_for(cfg, env)
        lister = bf.Lister(bf.oss_client(env, cfg))
        suffixes = bf.normalize_suffixes(args.suffix)

        def items(cp: Checkpoint) -> Iterable[Item]:
            return bf.backfill_items(lister.objects(args.bucket, args.prefix, cp.cursor), cfg, args.bucket,
                                  storage.head, since=since, suffixes=suffixes)

        def total(cp: Checkpoint) -> int | None:
            return cp.counts.get("listed", 0) + lister.count(args.bucket, args.prefix, cp.cursor) if args.count \
                else None

        return execute(args, Checkpoint("backfill", args.bucket, args.prefix), items, env=env, total=total)
    except UsageError as exc:
        print(f"permit-ocr backfill: {exc}", file=sys.stderr)
        return 2
