"""EventBridge-based OSS triggers (s.eventbridge.yaml) deliver CloudEvents envelopes, not OSS's own shape.

One OSS event on the EventBridge default bus looks like (Alibaba Cloud docs; README "EventBridge trigger"):

    {"specversion": "1.0", "id": "...", "source": "acs.oss", "type": "oss:ObjectCreated:PutObject",
     "subject": "acs:oss:<region>:<uid>:<bucket>/<key>", "time": "...", "aliyunregionid": "<region>",
     "aliyuneventbusname": "default", "datacontenttype": "application/json;charset=utf-8",
     "data": {"eventName": "ObjectCreated:PutObject", "region": "...", "eventTime": "...",
              "oss": {"bucket": {"name": ...}, "object": {"key": ..., "eTag": ..., "size": ...}},
              "responseElements": {"requestId": ...}, ...}}

``data`` is one record of the native notification, so the envelope(s) are reshaped into ``{"events": [...]}``
and read by the same ``events.parse_record``: one parser for both triggers. A batch (a JSON list of envelopes,
as EventBridge sends when batching is on) becomes one record per envelope.
"""

from __future__ import annotations

from typing import Any

import orjson


def is_envelope(doc: Any) -> bool:
    return isinstance(doc, dict) and "specversion" in doc and "data" in doc


def record_of(envelope: dict[str, Any]) -> Any:
    """The OSS notification record inside one envelope; the envelope's ``type`` names the event if data omits it."""
    data = envelope.get("data")
    if isinstance(data, str | bytes):  # some senders put the JSON in a string
        try:
            data = orjson.loads(data)
        except orjson.JSONDecodeError:
            return data  # parse_record reports it as a malformed record
    if not isinstance(data, dict):
        return data
    kind = envelope.get("type")
    if "eventName" not in data and isinstance(kind, str):
        data = {**data, "eventName": kind.removeprefix("oss:")}
    return data


def as_oss_event(raw: bytes | bytearray | str | dict[str, Any] | list[Any]) -> dict[str, Any] | None:
    """``{"events": [record, ...]}`` for an EventBridge delivery (one envelope or a list); None for anything else
    (the native OSS shape, or input that the native parser will reject with its own message)."""
    doc: Any = raw
    if isinstance(raw, bytes | bytearray | str):
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None
    if is_envelope(doc):
        return {"events": [record_of(doc)]}
    if isinstance(doc, list) and doc and all(is_envelope(d) for d in doc):
        return {"events": [record_of(d) for d in doc]}
    return None
