"""Step 1: the OSS trigger event (bytes) -> one ObjectRef per record.

Every record is read, not only the first. Keys are used raw, as OSS sends them; the NoSuchKey fallback to
decoded forms lives in ``source`` because only a request to OSS can tell which form is real. A record that
cannot be understood becomes a RecordProblem with a reason; nothing is dropped silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from . import eventbridge

CREATE_EVENTS = ("ObjectCreated:PutObject", "ObjectCreated:PostObject", "ObjectCreated:CompleteMultipartUpload",
                 "ObjectCreated:CopyObject", "ObjectCreated:AppendObject", "ObjectCreated:PutSymlink")


@dataclass(frozen=True)
class ObjectRef:
    bucket: str
    key: str
    etag: str | None = None
    size: int | None = None
    region: str | None = None
    event_name: str | None = None
    event_time: str | None = None
    oss_request_id: str | None = None
    replay: bool = False  # an operator's replay: a final error record of this version does not end the work

    def as_source(self) -> dict[str, Any]:
        """The ``source`` block of result documents and error records."""
        return {
            "bucket": self.bucket, "key": self.key, "etag": self.etag, "size": self.size, "region": self.region,
            "eventName": self.event_name, "eventTime": self.event_time, "ossRequestId": self.oss_request_id,
        }


@dataclass(frozen=True)
class RecordProblem:
    index: int
    code: str
    message: str
    bucket: str | None = None
    key: str | None = None


@dataclass
class ParsedEvent:
    refs: list[ObjectRef] = field(default_factory=list)
    problems: list[RecordProblem] = field(default_factory=list)
    duplicates: int = 0


class MalformedEvent(ValueError):
    """The event as a whole is not an OSS trigger event (no ``events`` list)."""


def parse_event(raw: bytes | bytearray | str | dict[str, Any]) -> ParsedEvent:
    doc = eventbridge.as_oss_event(raw) or _load(raw)  # an EventBridge trigger's CloudEvents, reshaped
    records = doc.get("events")
    if not isinstance(records, list):
        raise MalformedEvent("event has no 'events' list: not an OSS trigger event")
    out = ParsedEvent()
    seen: set[tuple[str, str, str | None]] = set()
    for i, rec in enumerate(records):
        item = parse_record(i, rec)
        if isinstance(item, RecordProblem):
            out.problems.append(item)
            continue
        ident = (item.bucket, item.key, item.etag)
        if ident in seen:  # the same upload twice in one event: one outcome is enough
            out.duplicates += 1
            continue
        seen.add(ident)
        out.refs.append(item)
    return out


def _load(raw: bytes | bytearray | str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedEvent(f"event is not valid JSON ({exc.msg} at {exc.pos})") from None
    if not isinstance(doc, dict):
        raise MalformedEvent(f"event is a JSON {type(doc).__name__}, expected an object")
    return doc


def parse_record(index: int, rec: Any) -> ObjectRef | RecordProblem:
    if not isinstance(rec, dict):
        return RecordProblem(index, "MalformedRecord", "record is not an object")
    oss = rec.get("oss")
    bucket = _dig(oss, "bucket", "name")
    key = _dig(oss, "object", "key")
    if not isinstance(bucket, str) or not bucket:
        return RecordProblem(index, "MalformedRecord", "record has no oss.bucket.name")
    if not isinstance(key, str) or not key:
        return RecordProblem(index, "MalformedRecord", "record has no oss.object.key", bucket=bucket)
    name = rec.get("eventName")
    name = name.removeprefix("oss:") if isinstance(name, str) else None  # tolerate the config spelling
    if name is not None and not name.startswith("ObjectCreated:"):
        return RecordProblem(index, "NotACreateEvent", f"event {name} does not create an object", bucket, key)
    etag = _dig(oss, "object", "eTag")
    return ObjectRef(
        bucket=bucket,
        key=key,
        etag=(etag.strip('"').upper() or None) if isinstance(etag, str) else None,  # '""' is no eTag either
        size=_int_or_none(_dig(oss, "object", "size")),
        region=_str_or_none(rec.get("region")),
        event_name=name,
        event_time=_str_or_none(rec.get("eventTime")),
        oss_request_id=_str_or_none(_dig(rec, "responseElements", "requestId")),
        replay=_dig(rec, "permitOcr", "replay") is True,
    )


def _dig(obj: Any, *path: str) -> Any:
    for part in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def _int_or_none(v: Any) -> int | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int) and v >= 0:
        return v
    if isinstance(v, str) and v.isascii() and v.isdigit():  # str.isdigit alone accepts '²', which int() refuses
        return int(v)
    return None


def _str_or_none(v: Any) -> str | None:
    return v if isinstance(v, str) and v else None
