"""``permit-ocr review --bucket B [--prefix P]``: serve the review page for results that need a person, on
127.0.0.1 only. Configuration and credentials come from the environment, as for the function and the other
commands (against the local stack: ``eval "$(permit-ocr stack --root var/run --detach)"`` first).

Before serving it checks, in one line each, what would make the page useless: no configuration in this shell,
the stack stopped, a bucket that does not exist, credentials OSS refuses.

Exit codes: 0 stopped with Ctrl-C · 2 bad configuration or options, nothing to reach (the stack stopped, no such
bucket, credentials refused), or the port is taken."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("review", help="the review page for flagged results, on 127.0.0.1",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bucket", required=True, help="the source bucket whose results to review")
    p.add_argument("--prefix", default="", help="only images under this key prefix (default: all)")
    p.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (default 8765; 0 = any free port)")
    p.set_defaults(func=run)


START_STACK = 'eval "$(permit-ocr stack --root {root} --detach)"'
# OSS codes that mean the key, secret or token is wrong, not that the service is away
REFUSED = frozenset({"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "SecurityTokenExpired",
                     "InvalidSecurityToken"})


def start_stack_line(env: dict[str, str]) -> str:
    """The line that serves the stack again (make run's results when no stack was served in this shell)."""
    root = Path(env.get("PERMIT_OCR_STACK_ROOT") or "var/run")
    with contextlib.suppress(ValueError):  # as typed from here when under the working directory
        root = root.resolve().relative_to(Path.cwd().resolve())
    return START_STACK.format(root=root)


def unreachable(cfg: Any, creds: Any, bucket: str, prefix: str, env: dict[str, str]) -> str | None:
    """Why the page could not show anything, in one line, or None: checked before serving, so the page never
    answers "NoSuchBucket ... try again in a moment" for a typo or a stopped stack."""
    from permit_ocr.errors import StorageError
    from permit_ocr.storage import Storage
    from permit_ocr_local.fcruntime.stack import local_endpoint_down

    if local_endpoint_down(cfg.oss_endpoint):
        return (f"nothing answers at OSS_ENDPOINT ({cfg.oss_endpoint}): the stack is stopped; serve it again with "
                f"`{start_stack_line(env)}`")
    try:
        Storage(cfg, lambda: creds).list_prefix(bucket, prefix, max_keys=1)
    except StorageError as err:
        if err.code == "NoSuchBucket":
            served = ", ".join(sorted(set(cfg.source_buckets) - {bucket})) or "other buckets"
            return f"no bucket {bucket!r} at {cfg.oss_endpoint} (SOURCE_BUCKETS names {served})"
        if err.code in REFUSED:
            return (f"OSS at {cfg.oss_endpoint} refused the credentials ({err.code}): check ALIBABA_CLOUD_* in "
                    "this shell")
        return f"OSS at {cfg.oss_endpoint} did not answer as expected ({err.code} {err.status or ''})".rstrip() + \
            "; try again, or check OSS_ENDPOINT"
    return None


def run(args: argparse.Namespace) -> int:
    from permit_ocr.config import ConfigError, load_config
    from permit_ocr.credentials import MissingCredentials, resolve
    from permit_ocr_local.tools.review.server import serve

    env = dict(os.environ)
    if not env.get("OSS_ENDPOINT") and not env.get("ALIBABA_CLOUD_ACCESS_KEY_ID"):  # a shell without the exports
        print(f"permit-ocr review: no OSS configuration in this shell: serve the stack with "
              f"`{start_stack_line(env)}` first (against real OSS: set OSS_ENDPOINT, OSS_REGION and "
              "ALIBABA_CLOUD_ACCESS_KEY_ID/_SECRET)", file=sys.stderr)
        return 2
    try:
        creds = resolve(env)
        cfg = load_config({**env, "SOURCE_BUCKETS": env.get("SOURCE_BUCKETS") or args.bucket})
    except (ConfigError, MissingCredentials) as exc:
        print(f"permit-ocr review: {exc}", file=sys.stderr)
        return 2
    if "oss" not in cfg.sinks:  # mns alone leaves only a receipt in OSS: no fields to show or correct
        print("permit-ocr review: SINKS=mns stores no result documents in OSS (a receipt per image), so there is "
              "nothing to review; review needs SINKS=oss or oss,mns", file=sys.stderr)
        return 2
    if "mns" in cfg.sinks and not (cfg.mns_endpoint and cfg.mns_topic):
        print("permit-ocr review: SINKS has mns but MNS_ENDPOINT or MNS_TOPIC is empty", file=sys.stderr)
        return 2
    if "-internal." in cfg.oss_endpoint:  # the function's default, reachable only inside Alibaba Cloud
        print(f"permit-ocr review: OSS_ENDPOINT is {cfg.oss_endpoint}; from a workstation set it (and "
              "OSS_PUBLIC_ENDPOINT) to the public endpoint", file=sys.stderr)
    problem = unreachable(cfg, creds, args.bucket, args.prefix, env)
    if problem:
        print(f"permit-ocr review: {problem}", file=sys.stderr)
        return 2
    return serve(cfg, lambda: creds, args.bucket, args.prefix, args.port)
