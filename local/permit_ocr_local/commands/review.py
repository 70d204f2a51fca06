"""``permit-ocr review --bucket B [--prefix P]``: serve the review page for results that need a person, on
127.0.0.1 only. Configuration and credentials come from the environment, as for the function and the other
commands (against the local stack: ``eval "$(permit-ocr stack --root var/run --detach)"`` first).

Exit codes: 0 stopped with Ctrl-C; 2 bad configuration or options, or the port is taken."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("review", help="the review page for flagged results, on 127.0.0.1",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bucket", required=True, help="the source bucket whose results to review")
    p.add_argument("--prefix", default="", help="only images under this key prefix (default: all)")
    p.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (default 8765; 0 = any free port)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from permit_ocr.config import ConfigError, load_config
    from permit_ocr.credentials import MissingCredentials, resolve
    from permit_ocr_local.tools.review.server import serve

    env = dict(os.environ)
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
    return serve(cfg, lambda: creds, args.bucket, args.prefix, args.port)
