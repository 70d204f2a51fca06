"""``permit-ocr shadow-report --bucket B [--since DATE]``: what shadow mode (SHADOW_RATE) measured on your own
uploads: the engine function's agreement with the API per field and per permit kind, the share of uploads a
cascade (OCR_BACKEND=cascade) would have sent to the API, how many it would have kept from the engine with a field
the API read otherwise, and what each would have cost per 1,000 uploads. The records hold no personal data;
they live under .permit-ocr/shadow/ in the output bucket of B (OUTPUT_BUCKET when set). Configuration and
credentials come from the environment, as for `permit-ocr review` (locally: the stack's exports).

What agreement to require before switching: docs/selfhosted.md.

Exit codes: 0 the report was printed (also when there are no records yet) · 2 bad configuration or options, or
OSS cannot be reached or refuses the credentials or the bucket."""

from __future__ import annotations

import argparse
import datetime
import os
import sys
from typing import Any


def _day(text: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, got {text!r}") from None


def register(sub: Any) -> None:
    from permit_ocr_local.tools.shadow import API_PRICE_USD, ENGINE_MEMORY_MB, ENGINE_VCPU

    p = sub.add_parser("shadow-report", help="shadow mode's comparison of the engine with the API, summed up",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bucket", required=True, help="the source bucket whose uploads were compared")
    p.add_argument("--since", type=_day, metavar="DATE", help="records made on this day (UTC) or later (default: all)")
    p.add_argument("--api-price", type=float, default=API_PRICE_USD, metavar="USD",
                   help=f"the API's fee per call, in USD (default {API_PRICE_USD:g}: an assumption, see "
                        "docs/selfhosted.md; use your price list)")
    p.add_argument("--engine-memory", type=int, default=ENGINE_MEMORY_MB, metavar="MB",
                   help=f"the engine function's memorySize (default {ENGINE_MEMORY_MB}, as s.selfhosted.yaml)")
    p.add_argument("--engine-vcpu", type=float, default=ENGINE_VCPU, metavar="N",
                   help=f"the engine function's cpu (default {ENGINE_VCPU:g}, as s.selfhosted.yaml)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from permit_ocr.config import ConfigError, load_config
    from permit_ocr.credentials import MissingCredentials, resolve
    from permit_ocr.errors import StorageError
    from permit_ocr.storage import Storage
    from permit_ocr_local.fcruntime.stack import local_endpoint_down
    from permit_ocr_local.tools.shadow import read_records, render, summarize

    env = dict(os.environ)
    if args.api_price < 0 or args.engine_memory <= 0 or args.engine_vcpu <= 0:
        print("permit-ocr shadow-report: --api-price, --engine-memory and --engine-vcpu must be positive",
              file=sys.stderr)
        return 2
    try:
        creds = resolve(env)
        cfg = load_config({**env, "SOURCE_BUCKETS": env.get("SOURCE_BUCKETS") or args.bucket})
    except (ConfigError, MissingCredentials) as exc:
        print(f"permit-ocr shadow-report: {exc} (locally: eval \"$(permit-ocr stack --root var/run --detach)\" "
              "first)", file=sys.stderr)
        return 2
    if local_endpoint_down(cfg.oss_endpoint):
        print(f"permit-ocr shadow-report: nothing answers at OSS_ENDPOINT ({cfg.oss_endpoint}): start the stack",
              file=sys.stderr)
        return 2
    bucket = cfg.output_bucket_for(args.bucket)
    try:
        records = read_records(Storage(cfg, lambda: creds), bucket, args.since)
    except StorageError as err:
        print(f"permit-ocr shadow-report: reading oss://{bucket}/.permit-ocr/shadow/ failed: {err.code} "
              f"{err.status or ''}".rstrip(), file=sys.stderr)
        return 2
    since = f" since {args.since.isoformat()}" if args.since else ""
    print(f"shadow report: oss://{bucket}/.permit-ocr/shadow/{since}")
    print(render(summarize(records), api_price_usd=args.api_price, memory_mb=args.engine_memory,
                 vcpu=args.engine_vcpu))
    return 0
