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
    p.add_argument("event_file", type=Path, nargs="?", help="an OSS trigger event (see events/)")
    p.add_argument("--object", metavar="BUCKET/KEY",
                   help="instead of an event file: build the upload event of this object (its current ETag "
                        "and size, read with the OSS SDK and the environment's endpoint and credentials)")
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
    if (args.event_file is None) == (args.object is None):
        print("permit-ocr: give an EVENT_FILE or --object BUCKET/KEY", file=sys.stderr)
        return 2
    try:
        initialize(context)
        event = args.event_file.read_bytes() if args.event_file else _object_event(args.object)
        summary = handler(event, context)
    except ConfigError as exc:
        print(f"permit-ocr: {exc}", file=sys.stderr)
        return 2
    except RetryLater as exc:
        print(json.dumps(exc.summary, ensure_ascii=False, indent=2))
        print(f"permit-ocr: {exc}", file=sys.stderr)
        return 3
    print(json.dumps(summary, ensure_ascii=False, indent=2))
    return 0


def _object_event(ref: str) -> bytes:
    """The OSS trigger event FC would send for the object as it is now."""
    import os

    import alibabacloud_oss_v2 as oss

    from permit_ocr_local.fcemu import Upload, oss_event

    bucket, _, key = ref.partition("/")
    cfg = oss.config.load_default()
    cfg.credentials_provider = oss.credentials.StaticCredentialsProvider(
        os.environ["ALIBABA_CLOUD_ACCESS_KEY_ID"], os.environ["ALIBABA_CLOUD_ACCESS_KEY_SECRET"],
        os.environ.get("ALIBABA_CLOUD_SECURITY_TOKEN") or None)
    cfg.region = os.environ.get("OSS_REGION") or "cn-hangzhou"
    cfg.endpoint = os.environ.get("OSS_PUBLIC_ENDPOINT") or os.environ.get("OSS_ENDPOINT")
    head = oss.Client(cfg).head_object(oss.HeadObjectRequest(bucket=bucket, key=key))
    up = Upload(bucket, key, str(head.etag).strip('"'), head.content_length, region=cfg.region)
    return json.dumps(oss_event([up]), ensure_ascii=False).encode()
