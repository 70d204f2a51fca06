"""``permit-ocr replay --bucket B``: invoke the function again for images that ended with an error record
(``<key>.error.json``), optionally only for some error codes (--code, read from the record's error.code), or for
the events of a failure log (--failure-log: JSON lines of FC onFailure payloads, or of the MNS messages that
carry them; locally ROOT/.mns/permit-ocr-failures.jsonl).

An image is replayed only while it still exists with the ETag the record names (a newer upload has its own
event), and not when a result for that ETag exists. Its error record is removed just before its batch is sent:
the function treats a permanent error record for the same ETag as final, so leaving it would make the replay a
no-op. Batching, --rate, --checkpoint and exit statuses are those of ``permit-ocr backfill``."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from permit_ocr_local.backfill import Checkpoint, Item

from .backfill import UsageError, add_common, execute, function_config, storage_for


def register(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser("replay", help="re-invoke images that ended with an error record", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common(p)
    p.add_argument("--code", action="append", default=[], help="only records with this error.code (repeatable)")
    p.add_argument("--failure-log", type=Path, metavar="FILE",
                   help="replay the events of this JSON-lines log of onFailure payloads instead of listing records")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from permit_ocr_local.backfill import Lister, Replayer, oss_client

    env = dict(os.environ)
    try:
        cfg = function_config(env, args.bucket)
        storage = storage_for(cfg, env)
        replayer = Replayer(cfg, storage.head, lambda b, k: bytes(storage.read_all(b, k).data),
                            frozenset(args.code))
        log = args.failure_log
        if log is not None and not log.is_file():
            raise UsageError(f"no failure log at {log}")
        lister = Lister(oss_client(env, cfg))

        def items(cp: Checkpoint) -> Iterable[Item]:
            if log is not None:
                return replayer.from_failure_log(_lines(log), args.bucket, args.prefix, cp.cursor)
            out_bucket = cfg.output_bucket_for(args.bucket)
            records = lister.objects(out_bucket, cfg.output_prefix + args.prefix, cp.cursor)
            return replayer.from_records(records, args.bucket)

        fresh = Checkpoint("replay", args.bucket, args.prefix, source=str(log.resolve()) if log else "")
        return execute(args, fresh, items, env=env, clear=storage.delete)
    except UsageError as exc:
        print(f"permit-ocr replay: {exc}", file=sys.stderr)
        return 2


def _lines(path: Path) -> Iterable[str]:
    with path.open(encoding="utf-8") as f:
        yield from f
