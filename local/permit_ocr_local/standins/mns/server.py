"""The MNS stand-in's HTTP protocol: route, verify (``auth``), parse the PublishMessage XML, record (``state``),
answer as MNS does (mns.md §1, §7). Only the data-plane call the function makes is served: PublishMessage."""

from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from ..faults import FaultPlan, Target
from ..http import Request, Response, StandinServer
from ..keyring import Keyring
from . import auth
from .errors import XMLNS, MnsError, error_response, new_request_id, reply_headers, service_error
from .model import PublishedMessage
from .state import MnsState

MAX_BODY_BYTES = 65536
MAX_TAG_CHARS = 16
_ROUTE = re.compile(r"^/topics/([A-Za-z0-9-]+)/messages$")


@dataclass(frozen=True)
class ParsedMessage:
    body: str
    tag: str
    attributes: dict[str, str]


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def parse_message(data: bytes) -> ParsedMessage:
    """The <Message> document; XML unescaping happens here, so ``body`` is exactly what was published.
    ``attributes`` holds MessageAttributes children (DirectMail, DirectSMS, ...) and UserProperties by Name."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise MnsError(400, "MalformedXML", f"The XML you provided was not well-formed: {exc}.") from None
    if _local(root.tag) != "Message":
        raise MnsError(400, "MalformedXML", "The root element must be <Message>.")
    parts = {_local(child.tag): child for child in root}
    body_el, tag_el = parts.get("MessageBody"), parts.get("MessageTag")
    attrs = {_local(a.tag): a.text or "" for a in parts.get("MessageAttributes", ())}
    for prop in parts.get("UserProperties", ()):
        kv = {_local(c.tag): c.text or "" for c in prop}
        attrs[kv.get("Name", "")] = kv.get("Value", "")
    if body_el is None or not body_el.text:
        raise MnsError(400, "InvalidArgument", "MessageBody is required and must not be empty.")
    tag = (tag_el.text or "") if tag_el is not None else ""
    return ParsedMessage(body_el.text, tag, attrs)


def fault_target(request: Request) -> Target:
    """What a request is, for fault rules: PublishMessage to a topic (the only route served)."""
    route = _ROUTE.match(request.path)
    if request.method != "POST" or route is None:
        return Target("")
    return Target("PublishMessage", route.group(1))


def check_limits(msg: ParsedMessage) -> None:
    size = len(msg.body.encode())
    if size > MAX_BODY_BYTES:
        # code unverified (mns.md §1.3); real MNS documents only that the message is discarded
        raise MnsError(400, "MessageTooLarge", f"The message body is {size} bytes; the limit is {MAX_BODY_BYTES}.")
    if len(msg.tag) > MAX_TAG_CHARS:
        raise MnsError(400, "InvalidArgument", f"MessageTag must be at most {MAX_TAG_CHARS} characters.")


def created_response(msg: PublishedMessage) -> Response:
    body = (f'<?xml version="1.0" encoding="utf-8"?>\n<Message xmlns="{XMLNS}">'
            f"<MessageId>{escape(msg.message_id)}</MessageId>"
            f"<MessageBodyMD5>{msg.body_md5}</MessageBodyMD5></Message>")
    return Response(201, reply_headers(new_request_id()), body.encode())


class MnsService:
    name = "mns"

    def __init__(self, keyring: Keyring, root: Path | None = None, clock: Callable[[], float] = time.time,
                 *, topics: Iterable[str] = ()) -> None:
        self.keyring = keyring
        self.clock = clock
        self.state = MnsState(root, clock)
        for t in topics:
            self.state.create_topic(t)

    def handle(self, request: Request) -> Response:
        try:
            return self._publish(request)
        except MnsError as exc:
            return error_response(exc, request)

    def _publish(self, request: Request) -> Response:
        auth.verify(request, self.keyring, self.clock())
        route = _ROUTE.match(request.path)
        if request.method != "POST" or route is None:
            raise MnsError(400, "InvalidArgument",
                           f"The stand-in serves PublishMessage only, not {request.method} {request.path}.")
        topic = route.group(1)
        msg = parse_message(request.body)
        check_limits(msg)
        return created_response(self.state.publish(topic, msg.body, msg.tag, msg.attributes))


class MnsServer(StandinServer):
    """A StandinServer that exposes its service (for topics, subscriptions and the published messages)."""

    def __init__(self, service: MnsService, *, port: int = 0, faults: FaultPlan | None = None) -> None:
        super().__init__(service, port=port, faults=faults, service_error=service_error, describe=fault_target)
        self.service = service
        self._started = False

    def start(self) -> MnsServer:
        # idempotent, so the already-started server from start_mns also works as a context manager
        if not self._started:
            self._started = True
            super().start()
        return self

    def __enter__(self) -> MnsServer:
        return self.start()

    @property
    def state(self) -> MnsState:
        return self.service.state

    def stop(self) -> None:
        super().stop()
        self.service.state.close()


def start_mns(keyring: Keyring, root: Path | None = None, port: int = 0, faults: FaultPlan | None = None,
              *, topics: Iterable[str] = (), clock: Callable[[], float] = time.time) -> MnsServer:
    """Serve MNS on 127.0.0.1 (already started); ``stop()`` or use it as a context manager."""
    server = MnsServer(MnsService(keyring, root, clock, topics=topics), port=port, faults=faults)
    server.start()
    return server
