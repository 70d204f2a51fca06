"""FC's side of an OSS trigger, emulated: the trigger filters of s.yaml. Uploads to the OSS stand-in that match
a trigger become OSS events (native triggers) or CloudEvents envelopes (EventBridge-based triggers, matched by
their rule's pattern), queued on the function's ``AsyncInvoker``."""

from __future__ import annotations

import json
from typing import Any

from .context import Upload, oss_event, oss_record
from .deployment import Trigger
from .invoker import AsyncInvoker


def eventbridge_envelope(u: Upload, account_id: str = "1234567890123456", bus: str = "default") -> dict[str, Any]:
    """One OSS event as an EventBridge-based OSS trigger delivers it: a CloudEvents 1.0 envelope whose ``data``
    is the native notification record (the shape in function/permit_ocr/eventbridge.py and docs/deploy.md)."""
    record = oss_record(u, account_id)
    request_id = record["responseElements"]["requestId"]
    return {
        "specversion": "1.0",
        "id": request_id,
        "source": "acs.oss",
        "type": f"oss:{u.event_name}",
        "subject": f"acs:oss:{u.region}:{account_id}:{u.bucket}/{u.key}",
        "time": record["eventTime"].replace(".000Z", "Z"),
        "datacontenttype": "application/json;charset=utf-8",
        "aliyunaccountid": account_id,
        "aliyunoriginalaccountid": account_id,
        "aliyuneventbusname": bus,
        "aliyunregionid": u.region,
        "aliyunpublishtime": record["eventTime"],
        "aliyunpublishaddr": "127.0.0.1",
        "data": record,
    }


def pattern_matches(pattern: Any, event: Any) -> bool:
    """EventBridge's event pattern, the parts s.eventbridge.yaml uses: every key of the pattern must match; a list
    matches when any entry does (a literal, or {"prefix": p} / {"suffix": s}); a mapping matches recursively.
    Matching is exact and case-sensitive, as EventBridge documents."""
    if isinstance(pattern, dict):
        return isinstance(event, dict) and all(k in event and pattern_matches(v, event[k]) for k, v in pattern.items())
    if isinstance(pattern, list):
        return any(_entry_matches(p, event) for p in pattern)
    return bool(pattern == event)


def _entry_matches(entry: Any, value: Any) -> bool:
    if isinstance(entry, dict):
        if "prefix" in entry:
            return isinstance(value, str) and value.startswith(entry["prefix"])
        if "suffix" in entry:
            return isinstance(value, str) and value.endswith(entry["suffix"])
        return False  # operators the stand-in does not know never match: a test shows it, not a silent pass
    return bool(entry == value)


def fires(trigger: Trigger, bucket: str, key: str, event_name: str) -> bool:
    """A native OSS trigger: one bucket, one prefix, one suffix, listed event names (with the oss: prefix)."""
    if trigger.kind == "eventbridge":
        envelope = eventbridge_envelope(Upload(bucket, key, None, None, event_name, trigger.region))
        return pattern_matches(json.loads(trigger.pattern), envelope)
    events = set(trigger.events)
    return (bucket == trigger.bucket and key.startswith(trigger.prefix) and key.endswith(trigger.suffix)
            and (f"oss:{event_name}" in events or "oss:ObjectCreated:*" in events))


class OssTrigger:
    """Turns puts into OSS events for every trigger that fires, as FC's native OSS triggers do."""

    def __init__(self, triggers: tuple[Trigger, ...], invoker: AsyncInvoker, region: str = "cn-hangzhou") -> None:
        self._triggers = triggers
        self._invoker = invoker
        self._region = region

    def on_put(self, bucket: str, key: str, etag: str, size: int, event_name: str, request_id: str) -> None:
        for t in self._triggers:
            if fires(t, bucket, key, event_name):
                up = Upload(bucket, key, etag, size, event_name, self._region)
                event = eventbridge_envelope(up) if t.kind == "eventbridge" else oss_event([up])
                self._invoker.submit(json.dumps(event, ensure_ascii=False).encode())
