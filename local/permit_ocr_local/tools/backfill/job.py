"""One backfill or replay job as the command line states it: the shared options, the function's configuration,
the checkpoint, the OSS and FC preflight, the run with its progress bar, the report and the exit status. The
``backfill`` and ``replay`` commands are thin on top of it."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TextIO

from permit_ocr_local.tools import backfill as bf

from .checkpoint import Checkpoint
from .rules import Item
from .run import RunResult, SentBatch

DEFAULT_FUNCTION = "permit-ocr"
# FC 3.0 naming rules: function names 1..128 of [A-Za-z0-9_-] not starting with a digit or '-'; a qualifier
# is LATEST, a version number or an alias name
_FUNCTION_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,127}$")
_QUALIFIER = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
EXIT = {"": 0, "error": 1, "max-batches": 3, "interrupted": 3}
EXIT_NOTHING_SENT = 4  # the run ended normally without sending one event: it changed nothing, and says why
SKIP_WORDS = {"skipped_output": "are the function's outputs", "skipped_not_image": "are not images",
              "skipped_old": "are older than --since", "skipped_done": "already have a result for their version",
              "skipped_error": "have a permanent error record (permit-ocr replay decides on those)",
              "skipped_permanent": "keep their permanent verdict (--include-permanent recognizes them again)",
              "skipped_gone": "are deleted", "skipped_replaced": "were replaced by the function meanwhile",
              "skipped_superseded": "have a newer upload (with an event of its own)",
              "skipped_code": "have another error code than --code", "skipped_duplicate": "were named twice",
              "skipped_held": "are held by an attempt of the function (run again later)",
              "skipped_malformed": "are unreadable", "skipped_other": "are in another bucket or prefix"}


def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bucket", required=True, help="source bucket (must be in SOURCE_BUCKETS)")
    p.add_argument("--prefix", default="", help="only keys under this prefix (default: the whole bucket)")
    p.add_argument("--rate", type=float, default=5.0,
                   help=f"events per second sent to FC, {bf.RATE_MIN:g}..{bf.RATE_MAX:g} (default 5)")
    p.add_argument("--batch", type=int, default=10, help=f"records per event, 1..{bf.MAX_BATCH} (default 10)")
    p.add_argument("--checkpoint", type=Path, help="resume file (JSON), written atomically after each batch")
    p.add_argument("--report", type=Path, metavar="FILE",
                   help="append one JSON line per accepted batch (request id, keys) and the summary to FILE")
    p.add_argument("--dry-run", action="store_true", help="list and decide, send nothing, write no checkpoint")
    p.add_argument("--function", default=os.environ.get("FC_FUNCTION_NAME", DEFAULT_FUNCTION),
                   help=f"function name (default $FC_FUNCTION_NAME or {DEFAULT_FUNCTION})")
    p.add_argument("--qualifier", help="version or alias (default LATEST)")
    p.add_argument("--endpoint", default=os.environ.get("FC_ENDPOINT", ""),
                   help="FC API endpoint: <uid>.<region>.fc.aliyuncs.com, or http://127.0.0.1:PORT locally "
                        "(default $FC_ENDPOINT)")
    p.add_argument("--protocol", choices=("https", "http"), help="when --endpoint has no scheme")
    p.add_argument("--fc-timeout", type=float, default=30.0, metavar="S",
                   help="seconds to wait for FC's answer to one request before retrying it (default 30)")
    p.add_argument("--fc-attempts", type=int, default=5, metavar="N",
                   help="tries per FC request on throttling, 5xx, refused or timed-out connections (default 5)")
    p.add_argument("--max-batches", type=int, help="stop after this many batches in this run (a canary); resumable")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


class UsageError(Exception):
    """Exit 2: the command, its configuration or its checkpoint is wrong; nothing was sent."""


class Unavailable(Exception):
    """Exit 1: FC or OSS did not answer before the first batch; rerunning later may succeed."""


def function_config(env: Mapping[str, str], bucket: str) -> Any:
    """The function's Config from the same variables it reads in FC; SOURCE_BUCKETS defaults to --bucket."""
    from permit_ocr.config import ConfigError, load_config

    missing = [n for n in ("ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET") if not env.get(n)]
    if missing:
        raise UsageError(f"no credentials: set {' and '.join(missing)}")
    try:
        cfg = load_config({**env, "SOURCE_BUCKETS": env.get("SOURCE_BUCKETS") or bucket})
    except ConfigError as exc:
        raise UsageError(bf.one_line(str(exc))) from None
    if bucket not in cfg.source_buckets:
        raise UsageError(f"bucket {bucket!r} is not in SOURCE_BUCKETS; the function would reject its events")
    return cfg


def storage_for(cfg: Any, env: Mapping[str, str]) -> Any:
    from permit_ocr.credentials import resolve
    from permit_ocr.storage import Storage

    return Storage(cfg, lambda: resolve(env))


def check_options(args: argparse.Namespace) -> None:
    """UsageError for the first invalid option, before any configuration or network is looked at."""
    problem = option_problems(args)
    if problem:
        raise UsageError(problem)


def option_problems(args: argparse.Namespace) -> str | None:
    """The first invalid option, in one line (pure: no file or network access beyond stat)."""
    problem = bf.option_problem(batch=args.batch, rate=args.rate, max_batches=args.max_batches)
    if problem:
        return problem
    if not _FUNCTION_NAME.match(args.function or ""):
        return f"--function {args.function!r} is not a function name"
    if args.qualifier is not None and not _QUALIFIER.match(args.qualifier):
        return f"--qualifier {args.qualifier!r} is not a version or alias name"
    if not (0.1 <= args.fc_timeout <= 600):  # also false for nan
        return f"--fc-timeout must be 0.1..600 seconds (got {args.fc_timeout})"
    if not 1 <= args.fc_attempts <= 10:
        return f"--fc-attempts must be 1..10 (got {args.fc_attempts})"
    for name in ("checkpoint", "report"):
        path: Path | None = getattr(args, name)
        if path is not None and (path.is_dir() or not path.parent.is_dir()):
            what = "is a directory" if path.is_dir() else "is in a folder that does not exist"
            return f"--{name} {path} {what}"
    if not args.dry_run:
        if not args.endpoint:
            return "no FC endpoint: pass --endpoint or set FC_ENDPOINT"
        try:
            bf.fc_endpoint(args.endpoint, args.protocol)
        except ValueError as exc:
            return f"--endpoint: {exc}"
    return None


def job_of(args: argparse.Namespace, **filters: Any) -> dict[str, Any]:
    """What a checkpoint must match to be resumed: the command's filters and its target. Not --batch, --rate or
    --endpoint: they change how a job is sent, not what it is (public and internal endpoints reach the same
    function)."""
    return {"function": args.function, "qualifier": args.qualifier or "LATEST", **filters}


def execute(args: argparse.Namespace, fresh: Checkpoint, items: Callable[[Checkpoint], Iterable[Item]], *,
            env: Mapping[str, str], preflight: Callable[[], None],
            total: Callable[[Checkpoint], int | None] | None = None) -> int:
    """Shared by backfill and replay: checkpoint, preflight, sender, progress bar, run, summary."""
    try:
        cp = bf.load_checkpoint(args.checkpoint, fresh)
    except bf.CheckpointError as exc:
        raise UsageError(str(exc)) from None
    if cp.complete:
        print(f"permit-ocr: {args.checkpoint} records a finished run; delete it to start over", file=sys.stderr)
        return _report(RunResult(cp), dry_run=args.dry_run, report=None)
    try:
        sender = None
        preflight()  # OSS: endpoint, credentials, list grant
        if not args.dry_run:
            host, protocol = bf.fc_endpoint(args.endpoint, args.protocol)
            sender = bf.FcInvoker(host, protocol, args.function, env, qualifier=args.qualifier,
                                  timeout_s=args.fc_timeout, attempts=args.fc_attempts)
            sender.check()
        known = total(cp) if total is not None else None
    except bf.InvokeError as exc:
        raise (UsageError if exc.final else Unavailable)(str(exc)) from None
    except bf.ListingError as exc:
        raise Unavailable(str(exc)) from None
    except KeyboardInterrupt:
        raise Unavailable("interrupted before the first batch; nothing was sent") from None
    opts = bf.RunOptions(batch=args.batch, rate=args.rate, dry_run=args.dry_run, max_batches=args.max_batches,
                         checkpoint_path=args.checkpoint)
    from tqdm import tqdm

    with _opened(args.report) as report, tqdm(
            total=known, initial=cp.counts.get("listed", 0) if known is not None else 0, unit="obj",
            desc=fresh.command, disable=args.no_progress, file=sys.stderr, dynamic_ncols=True) as bar:

        def accepted(batch: SentBatch) -> None:
            bar.write(batch.line(), file=sys.stdout)  # between progress bar refreshes
            if report is not None and batch.request_id:  # a dry run's plan is no accepted batch
                report.write(json.dumps(batch.as_dict(), ensure_ascii=False) + "\n")
                report.flush()

        result = bf.run_items(items(cp), cp, sender, opts, progress=bar, on_batch=accepted)
        return _report(result, dry_run=args.dry_run, report=report)


class _opened:
    """``--report FILE`` opened for appending (a resumed run adds to it), or nothing."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._file: TextIO | None = None

    def __enter__(self) -> TextIO | None:
        if self._path is not None:
            self._file = self._path.open("a", encoding="utf-8")
        return self._file

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.close()


def _report(result: RunResult, *, dry_run: bool, report: TextIO | None) -> int:
    s = bf.summary(result, dry_run=dry_run)
    print(json.dumps(s, ensure_ascii=False))
    print(bf.summary_table(s))
    if report is not None:
        report.write(json.dumps({"summary": s}, ensure_ascii=False) + "\n")
    kept = s["counts"].get("skipped_permanent", 0)
    if kept and not nothing_sent(s):  # else the nothing-sent line says it
        print(f"permit-ocr: {kept} image(s) keep their permanent verdict; --include-permanent recognizes them "
              "again and pays for each", file=sys.stderr)
    if result.error:
        print(f"permit-ocr: {result.error}; rerun the same command to resume", file=sys.stderr)
    elif result.stopped == "interrupted":
        print("permit-ocr: interrupted; rerun the same command to resume", file=sys.stderr)
    elif nothing_sent(s):
        print(f"permit-ocr {s['command']}: {nothing_sent_words(s)}", file=sys.stderr)
        return EXIT_NOTHING_SENT
    return EXIT.get(result.stopped, 1)


def nothing_sent(s: Mapping[str, Any]) -> bool:
    return not s["dryRun"] and s["complete"] and not s["counts"].get("invoked_events")


def nothing_sent_words(s: Mapping[str, Any]) -> str:
    """Why a finished run sent nothing, from its counters: it changed nothing."""
    counts = s["counts"]
    listed = counts.get("listed", 0)
    if not listed:
        return f"nothing was sent: nothing is listed under oss://{s['bucket']}/{s['prefix']}"
    why = [f"{n} {SKIP_WORDS.get(k, k.removeprefix('skipped_').replace('_', ' '))}"
           for k, n in counts.items() if k.startswith("skipped_") and n]
    return f"nothing was sent: of {listed} listed, " + "; ".join(why)


def fail(command: str, exc: Exception) -> int:
    """One line on stderr; 2 for what the operator must fix, 1 for what a rerun may get past."""
    if isinstance(exc, Unavailable):
        print(f"permit-ocr {command}: {exc}; rerun the same command to resume", file=sys.stderr)
        return 1
    print(f"permit-ocr {command}: {exc}", file=sys.stderr)
    return 2


def oss_preflight(lister: bf.Lister, buckets: Iterable[str], prefix: str = "") -> Callable[[], None]:
    """Before the first batch: one ListObjectsV2 per bucket the run reads. A refusal (bad key or secret, no
    grant, no such bucket) is a configuration error, not a reason to resume."""

    def check() -> None:
        for b in dict.fromkeys(buckets):
            try:
                lister.check(b, prefix)
            except bf.ListingError as exc:
                if exc.transient:  # retried already: the service may come back
                    raise
                raise UsageError(f"OSS refused the request, check endpoint and credentials: {exc}") from None

    return check
