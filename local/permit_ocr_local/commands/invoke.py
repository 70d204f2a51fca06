"""``permit-ocr invoke EVENT_FILE``: run the real handler once, in this process, with an FC-like context and
the configuration from the environment (e.g. the exports of ``permit-ocr stack``); print its summary (stdout)
and, on stderr, one line saying why for every record that did not end with a result.

The function's own JSON log lines are kept out of the way (--logs prints them on stderr too). Ctrl-C releases
the claim of the image being recognized, so the next invoke of it starts at once.

Exit codes: 0 the function ran (see the summary) · 2 usage or configuration (no such event file, not JSON,
a variable missing or invalid) · 3 a record failed transiently (in FC the async retry would run the event
again; locally run it again) · 4 no OSS stand-in answers at OSS_ENDPOINT (start one) · 5 the named bucket or
object does not exist in OSS · 130 interrupted (Ctrl-C). Mistakes print one line, never a traceback.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any

EXIT_USAGE, EXIT_RETRY, EXIT_NO_STACK, EXIT_NO_OBJECT = 2, 3, 4, 5
STACK_ROOT_VAR = "PERMIT_OCR_STACK_ROOT"  # exported by `permit-ocr stack`: the folder it serves
START_STACK = 'eval "$(permit-ocr stack --root var/stack --detach)"'

# why a record ended without a result, and what to do: (status, code) -> hint; (status, None) is the fallback
HINTS: dict[tuple[str, str | None], str] = {
    ("skipped", "Superseded"): "the event's eTag is not the stored object's (the samples in events/ carry made-up "
                               "eTags): add --use-stored, or use --object BUCKET/KEY",
    ("duplicate", None): "an outcome for this eTag is already stored (<key>.json or <key>.error.json), so OCR is "
                         "not paid twice; for the object as stored now use --use-stored or --object BUCKET/KEY",
    # --object / --use-stored already named the object as stored now: only a new version is recognized again
    ("duplicate", "stored"): "an outcome for this version is already stored (<key>.json or <key>.error.json), so "
                             "OCR is not paid twice; copy another image over it (a new version) to recognize again",
    ("duplicate", "SameEvent"): "the event names this image version twice; it was recognized once",
    ("retrying", "ClaimHeld"): "another attempt holds this version's claim and is recognizing it; run the same "
                               "command again once it finished (or its claim expired: the function timeout)",
    ("redelivered", None): "the result was already stored; it was delivered again to the sinks that lacked it",
    ("skipped", "NoSuchKey"): "nothing is stored under this key: copy an image there first (any file under "
                              "ROOT/<bucket>/ is an object), then invoke again with --use-stored",
    ("skipped", "OwnOutput"): "the key is one of the function's own outputs (a result or error record)",
    ("skipped", "NotAnImage"): "the key does not end in one of IMAGE_SUFFIXES",
    ("rejected", "BucketNotAllowed"): "the bucket is not in SOURCE_BUCKETS",
    ("error", None): "an error record (<key>.error.json; under OUTPUT_PREFIX if set) says why",
    ("retrying", None): "a transient failure: FC would retry the event; locally, run the same command again",
}


class CliError(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def register(sub: Any) -> None:
    p = sub.add_parser("invoke", help="run the handler once on an event file, config from the environment",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("event_file", type=Path, nargs="?", help="an OSS trigger event (see events/)")
    p.add_argument("--object", metavar="BUCKET/KEY",
                   help="instead of an event file: build the upload event of this object (its current ETag "
                        "and size, read with the OSS SDK and the environment's endpoint and credentials)")
    p.add_argument("--use-stored", action="store_true",
                   help="give each record of EVENT_FILE the eTag and size of the object stored under its key now "
                        "(the sample events' eTags are made up)")
    p.add_argument("--request-id", default=None, help="FC request id to log (default: a new UUID)")
    p.add_argument("--timeout", type=int, default=120, help="the function timeout to emulate, seconds (default 120)")
    p.add_argument("--logs", action="store_true", help="also print the function's JSON log lines on stderr")
    p.set_defaults(func=run)


def hint(outcome: dict[str, Any], *, stored: bool = False) -> str | None:
    """The line explaining a non-result outcome, or None for a result. ``stored``: the event was built from the
    object as stored now (--object, --use-stored), so "use --use-stored" would be no advice."""
    status, code = str(outcome.get("status")), outcome.get("code")
    if status == "result":
        return None
    why = ((stored and HINTS.get((status, code or "stored"))) or HINTS.get((status, code))
           or HINTS.get((status, None)) or "see README 'What gets written'")
    label = f"{status} ({code})" if code else str(status)
    return f"{outcome.get('bucket')}/{outcome.get('key')}: {label}: {why}"


def run(args: argparse.Namespace) -> int:
    from permit_ocr_local.fcruntime.interrupt import interrupted

    try:
        return _run(args)
    except CliError as exc:
        print(f"permit-ocr: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        interrupted("invoke", next_run="the next invoke")


def _run(args: argparse.Namespace) -> int:
    if (args.event_file is None) == (args.object is None):
        raise CliError("give an EVENT_FILE or --object BUCKET/KEY", EXIT_USAGE)
    event = _read_event(args.event_file) if args.event_file else None
    from permit_ocr import log
    from permit_ocr.config import ConfigError
    from permit_ocr.handler import RetryLater, handler, initialize
    from permit_ocr_local.fcruntime.context import FcContext, FunctionMeta

    held = io.StringIO()  # the function's log lines, shown once the invocation really runs: a mistake is one line
    log.use_stream(held)
    context = FcContext(request_id=args.request_id or str(uuid.uuid4()), function=FunctionMeta(timeout=args.timeout))
    try:
        initialize(context)
    except ConfigError as exc:
        raise CliError(f"{exc} (locally, the exports of `{START_STACK}` set them)", EXIT_USAGE) from None
    require_oss()
    if args.object:
        raw = _object_event(args.object)
    else:
        assert event is not None
        raw = json.dumps(with_stored(event) if args.use_stored else event, ensure_ascii=False).encode()
    if args.logs:
        sys.stderr.write(held.getvalue())
    log.use_stream(sys.stderr if args.logs else io.StringIO())  # stdout carries the summary
    try:
        summary = handler(raw, context)
        code = 0
    except RetryLater as exc:
        summary, code = exc.summary, EXIT_RETRY
    print(json.dumps(summary, ensure_ascii=False, indent=2))
    for outcome in summary.get("outcomes", []):
        if (line := hint(outcome, stored=bool(args.object or args.use_stored))) is not None:
            print(f"permit-ocr: {line}", file=sys.stderr)
    if summary.get("error"):
        print(f"permit-ocr: {summary['error']}", file=sys.stderr)
    return code


def _read_event(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CliError(f"no event file {path} (the samples are in events/)", EXIT_USAGE) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"cannot read {path}: {exc}", EXIT_USAGE) from None
    except json.JSONDecodeError as exc:
        raise CliError(f"{path} is not JSON ({exc.msg}, line {exc.lineno})", EXIT_USAGE) from None


def require_oss() -> None:
    """Fail fast, in one line, when nothing listens at OSS_ENDPOINT (instead of the SDK's retries)."""
    from permit_ocr_local.fcruntime.stack import local_endpoint_down

    endpoint = os.environ.get("OSS_ENDPOINT", "")
    if not endpoint:
        raise CliError(f"OSS_ENDPOINT is not set: start the local stack with `{START_STACK}`", EXIT_USAGE)
    if local_endpoint_down(endpoint):
        raise CliError(f"no OSS at OSS_ENDPOINT ({endpoint}): start one with `{START_STACK}`", EXIT_NO_STACK)


def _oss_client() -> Any:
    import alibabacloud_oss_v2 as oss

    cfg = oss.config.load_default()
    cfg.credentials_provider = oss.credentials.StaticCredentialsProvider(
        os.environ["ALIBABA_CLOUD_ACCESS_KEY_ID"], os.environ["ALIBABA_CLOUD_ACCESS_KEY_SECRET"],
        os.environ.get("ALIBABA_CLOUD_SECURITY_TOKEN") or None)
    cfg.region = os.environ.get("OSS_REGION") or "cn-hangzhou"
    cfg.endpoint = os.environ.get("OSS_PUBLIC_ENDPOINT") or os.environ.get("OSS_ENDPOINT")
    return oss.Client(cfg)


def stored(client: Any, bucket: str, key: str) -> tuple[str, int]:
    """(eTag, size) of the object as stored now; CliError when the bucket or the object does not exist."""
    import alibabacloud_oss_v2 as oss

    from permit_ocr.layout import etag_form

    try:
        head = client.head_object(oss.HeadObjectRequest(bucket=bucket, key=key))
    except oss.exceptions.OperationError as exc:
        inner = exc.unwrap()
        code = getattr(inner, "code", "") or ""
        if code == "NoSuchBucket":
            raise CliError(f"no bucket {bucket!r} in OSS (the stack serves {os.environ.get('SOURCE_BUCKETS')})",
                           EXIT_NO_OBJECT) from None
        if code == "NoSuchKey" or getattr(inner, "status_code", 0) == 404:
            raise CliError(f"no object {bucket}/{key} in OSS: {copy_hint(bucket, key)}", EXIT_NO_OBJECT) from None
        raise CliError(f"HEAD {bucket}/{key} failed: {code or inner}", EXIT_NO_OBJECT) from None
    return etag_form(head.etag) or "", int(head.content_length or 0)


def served_root() -> Path | None:
    """The folder the local stack serves (its exports name it), or None against real OSS."""
    root = os.environ.get(STACK_ROOT_VAR)
    return Path(root) if root else None


def shown(path: Path) -> str:
    """A path as the user would type it: relative to the working directory when under it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def copy_hint(bucket: str, key: str) -> str:
    """Where the object's file belongs on the local stack, and a file of that name elsewhere under its folder
    (copied into the wrong folder, it is another bucket's or another key's object)."""
    root = served_root()
    if root is None:
        return "upload it first"
    target = root / bucket / key
    name = Path(key).name
    elsewhere = sorted(p for p in root.rglob(name) if p.is_file() and p != target
                       and not p.relative_to(root).as_posix().startswith("."))[:1]
    found = f"; {shown(elsewhere[0])} is in another folder" if elsewhere else ""
    return f"the stack serves {shown(root)}, so the file belongs at {shown(target)}{found}"


def object_ref_problem(ref: str) -> str | None:
    """--object wants BUCKET/KEY; a file path (var/stack/permit-ocr-demo/uploads/x.jpg) gets the BUCKET/KEY it
    stands for on the local stack."""
    bucket, _, key = ref.partition("/")
    root = served_root()
    path = Path(ref)
    looks_like_a_path = path.is_absolute() or path.exists() or (bool(bucket) and Path(bucket).is_dir())
    if root is not None and not (bucket and (root / bucket).is_dir()) and looks_like_a_path:
        try:
            inside = path.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            inside = ""
        buckets = [b for b in os.environ.get("SOURCE_BUCKETS", "").split(",") if b]
        if inside.partition("/")[0] in buckets and "/" in inside:
            return f"--object takes BUCKET/KEY, not a file path: use --object {inside}"
        where = f"{shown(root)}/{buckets[0] if buckets else 'BUCKET'}/KEY"
        return f"--object takes BUCKET/KEY, not a file path; the stack serves objects as files at {where}"
    if not bucket or not key:
        return f"--object {ref!r}: give BUCKET/KEY, e.g. permit-ocr-demo/uploads/x.jpg"
    return None


def _records(event: Any) -> list[dict[str, Any]]:
    """The OSS notification records of an event: native ``events`` list, or EventBridge envelope(s)' data."""
    from permit_ocr.eventbridge import is_envelope

    if isinstance(event, dict) and isinstance(event.get("events"), list):
        return [r for r in event["events"] if isinstance(r, dict)]
    envelopes = event if isinstance(event, list) else [event]
    return [e["data"] for e in envelopes if is_envelope(e) and isinstance(e["data"], dict)]


def with_stored(event: Any) -> Any:
    """The event with each record's eTag and size replaced by the stored object's (the event is changed)."""
    client = _oss_client()
    for rec in _records(event):
        oss_part = rec.get("oss") or {}
        obj = oss_part.get("object") or {}
        bucket, key = (oss_part.get("bucket") or {}).get("name"), obj.get("key")
        if isinstance(bucket, str) and isinstance(key, str):
            obj["eTag"], obj["size"] = stored(client, bucket, key)
    return event


def _object_event(ref: str) -> bytes:
    """The OSS trigger event FC would send for the object as it is now."""
    from permit_ocr_local.fcruntime.context import Upload, oss_event

    problem = object_ref_problem(ref)
    if problem:
        raise CliError(problem, EXIT_USAGE)
    bucket, _, key = ref.partition("/")
    etag, size = stored(_oss_client(), bucket, key)
    up = Upload(bucket, key, etag, size, region=os.environ.get("OSS_REGION") or "cn-hangzhou")
    return json.dumps(oss_event([up]), ensure_ascii=False).encode()
