"""The MNS stand-in's records: a published message, an HTTP subscription and the outcome of one push."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class PublishedMessage:
    topic: str
    message_id: str
    body: str
    tag: str
    attributes: dict[str, str]
    published_at: float  # epoch seconds
    body_md5: str  # upper-case hex MD5 of the body, as MNS reports it


@dataclass(frozen=True)
class Subscription:
    topic: str
    name: str
    url: str
    filter_tag: str | None = None  # MNS subscriptions filter by tag only
    content_format: str = "SIMPLIFIED"  # or "XML"

    def wants(self, message: PublishedMessage) -> bool:
        return self.filter_tag is None or self.filter_tag == message.tag


@dataclass(frozen=True)
class Delivery:
    subscription: str
    message_id: str
    status: int | None  # last HTTP status, None when the endpoint could not be reached
    attempts: int


def body_md5(body: str) -> str:
    return hashlib.md5(body.encode()).hexdigest().upper()
