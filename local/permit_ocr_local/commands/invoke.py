"""``permit-ocr invoke EVENT_FILE``: run the real handler once, in this process, with an FC-like context and
the configuration from the environment (e.g. the exports of ``permit-ocr stack``); print its summary."""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("invoke", help=__doc__)
    p.add_argument("event_file", type=Path, help="an OSS trigger event (see events/)")
    p.add_argument("--request-id", default=None, help="FC request id to log (default: a new UUID)")
    p.add_argument("--timeout", type=int, default=120, help="the function timeout to emulate, seconds")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from permit_ocr import log
    from permit_ocr.config import ConfigError
    from permit_ocr.handler import RetryLater, handler, initialize
    from permit_ocr_local.fcemu import FcContext, FunctionMeta

    log.use_stream(sys.stderr)  # stdout carries the summary
    context = FcContext(request_id=args.request_id or str(uuid.uuid4()), function=FunctionMeta(timeout=args.timeout))
    try:
        initialize(context)
        summary = handler(args.event_file.read_bytes(), context)
    except ConfigError as exc:
        print(f"permit-ocr: {exc}", file=sys.stderr)
        return 2
    except RetryLater as exc:
        print(json.dumps(exc.summary, ensure_ascii=False, indent=2))
        print(f"permit-ocr: {exc}", file=sys.stderr)
        return 3
    print(json.dumps(summary, ensure_ascii=False, indent=2))
    return 0
