"""What Function Compute gives a Python 3.12 handler, rebuilt for local runs: the context object and the OSS
trigger event, in the shapes of function-compute.md §1-§2 (no ``context.credentials`` on python3.12)."""

from __future__ import annotations

import datetime
import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class FunctionMeta:
    name: str = "permit-ocr"
    handler: str = "index.handler"
    memory: int = 128
    timeout: int = 120


@dataclass(frozen=True)
class FcContext:
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function: FunctionMeta = field(default_factory=FunctionMeta)
    region: str = "cn-hangzhou"
    account_id: str = "1234567890123456"


@dataclass(frozen=True)
class Upload:
    bucket: str
    key: str
    etag: str | None
    size: int | None
    event_name: str = "ObjectCreated:PutObject"
    region: str = "cn-hangzhou"


def oss_record(u: Upload, account_id: str = "1234567890123456") -> dict[str, Any]:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return {
        "eventName": u.event_name,
        "eventSource": "acs:oss",
        "eventTime": now,
        "eventVersion": "1.0",
        "oss": {
            "bucket": {"arn": f"acs:oss:{u.region}:{account_id}:{u.bucket}", "name": u.bucket,
                       "ownerIdentity": account_id, "virtualBucket": ""},
            "object": {"deltaSize": u.size, "eTag": u.etag, "key": u.key, "size": u.size},
            "ossSchemaVersion": "1.0",
            "ruleId": secrets.token_hex(20),
        },
        "region": u.region,
        "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {"requestId": secrets.token_hex(12).upper()},
        "userIdentity": {"principalId": account_id},
    }


def oss_event(uploads: Iterable[Upload]) -> dict[str, Any]:
    return {"events": [oss_record(u) for u in uploads]}
