"""Subscription push over HTTP, the way MNS does it (HttpEndpoint, SIMPLIFIED or XML format): best effort, a
few tries. Unlike MNS the push carries no RSA signature."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable
from xml.sax.saxutils import escape

from .errors import VERSION, XMLNS, new_request_id
from .model import Delivery, PublishedMessage, Subscription

PUSH_TIMEOUT_S = 5.0  # MNS treats a push not answered within 5 s as failed
PUSH_ATTEMPTS = 3


def notification_xml(sub: Subscription, msg: PublishedMessage) -> str:
    """The XML-format push body (HttpEndpoint doc); SIMPLIFIED pushes the raw body instead."""
    fields = {
        "TopicOwner": "local", "TopicName": msg.topic, "Subscriber": "local", "SubscriptionName": sub.name,
        "MessageId": msg.message_id, "Message": msg.body, "MessageMD5": msg.body_md5, "MessageTag": msg.tag,
        "PublishTime": str(int(msg.published_at * 1000)),
    }
    inner = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in fields.items())
    return f'<?xml version="1.0" encoding="utf-8"?><Notification xmlns="{XMLNS}">{inner}</Notification>'


def push_request(sub: Subscription, msg: PublishedMessage) -> urllib.request.Request:
    headers = {"x-mns-request-id": new_request_id(), "x-mns-version": VERSION,
               "Date": time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime())}
    if sub.content_format == "XML":
        data, headers["Content-Type"] = notification_xml(sub, msg), "text/xml;charset=utf-8"
    else:
        data, headers["Content-Type"] = msg.body, "text/plain;charset=utf-8"
        headers["x-mns-message-id"] = msg.message_id
        if msg.tag:
            headers["x-mns-message-tag"] = msg.tag
    return urllib.request.Request(sub.url, data=data.encode(), headers=headers, method="POST")


def deliver(sub: Subscription, msg: PublishedMessage, sleep: Callable[[float], object] = time.sleep) -> Delivery:
    """Best effort: a few tries with a short backoff; any 2xx counts (MNS expects 204)."""
    status: int | None = None
    for attempt in range(1, PUSH_ATTEMPTS + 1):
        try:
            with urllib.request.urlopen(push_request(sub, msg), timeout=PUSH_TIMEOUT_S) as resp:
                status = resp.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except OSError:
            status = None
        if status is not None and 200 <= status < 300:
            return Delivery(sub.name, msg.message_id, status, attempt)
        if attempt < PUSH_ATTEMPTS:
            sleep(0.2 * attempt)
    return Delivery(sub.name, msg.message_id, status, PUSH_ATTEMPTS)
