"""The MNS sink: publish a result or error document to a topic with aliyun-mns-sdk (module ``mns``).

Message format (docs/mns-messages.md):
- Raw JSON body (``TopicMessage``, not ``Base64TopicMessage``): HTTP-endpoint subscribers and raw consumers get
  the JSON as-is. A queue subscribed to the topic and read with the SDK's ``Queue`` must call
  ``queue.set_encoding(False)``, because that class base64-decodes bodies by default.
- The body is the document serialized with orjson. MNS drops messages over 64 KB and the SDK does not check, so
  when the body would exceed 65536 bytes after XML escaping, a *pointer* message naming the stored document's
  OSS location is published instead.
- The tag (<= 16 chars; the only thing MNS subscriptions can filter on) is ``result``, ``result-review``,
  ``error`` or (a PDF's index of its pages) ``pages``.

``mns`` is imported in ``MnsPublisher.__init__``, so a cold start with the MNS sink off never pays for it.
Bodies hold personal data: nothing here logs them, and ``PublishError`` never carries them.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Final

import orjson

MAX_MESSAGE_BYTES: Final = 65536
TAG_RESULT: Final = "result"
TAG_REVIEW: Final = "result-review"
TAG_ERROR: Final = "error"
TAG_PAGES: Final = "pages"  # a PDF's index of its pages (each page's own document comes with its own tag)
# server codes worth a retry; MNSServerException carries no HTTP status, so 5xx is known by its code only
TRANSIENT_CODES: Final = frozenset({"Throttling", "InternalError", "ServiceUnavailable"})


@dataclass(frozen=True)
class PublishReceipt:
    message_id: str
    body_md5: str  # as reported by MNS: upper-case hex MD5 of the body


class PublishError(Exception):
    def __init__(self, code: str | None, message: str, request_id: str | None = None,
                 transient: bool = False) -> None:
        super().__init__(f"{code}: {message}" + (f" (request {request_id})" if request_id else ""))
        self.code = code
        self.message = message
        self.request_id = request_id
        self.transient = transient


def escaped_size(text: str) -> int:
    """UTF-8 bytes of ``text`` once XML-escaped: & < > " ' grow to &amp; &lt; &gt; &quot; &apos;
    (the SDK leaves ' alone; counting it anyway keeps the check safe for any encoder)."""
    grow = 4 * text.count("&") + 3 * (text.count("<") + text.count(">")) + 5 * (text.count('"') + text.count("'"))
    return len(text.encode()) + grow


def tag_for(document: dict[str, Any]) -> str:
    if document.get("type") == "error":
        return TAG_ERROR
    if document.get("type") == "pages":
        return TAG_PAGES
    return TAG_REVIEW if document.get("needsReview") else TAG_RESULT


def pointer_message(document: dict[str, Any], location: dict[str, Any], size: int) -> dict[str, Any]:
    return {
        "schemaVersion": document.get("schemaVersion"),
        "type": "pointer",
        "source": document.get("source"),
        "documentType": document.get("type"),
        "location": {"bucket": location["bucket"], "key": location["key"]},
        "needsReview": document.get("needsReview"),
        "reason": f"document of {size} bytes exceeds the MNS 64 KB message limit",
    }


def message_body(document: dict[str, Any], pointer: dict[str, Any] | None) -> str:
    """The document as JSON if it fits in one message, else a pointer message to ``pointer``
    (``{"bucket": ..., "key": ...}``: where the caller stored the document)."""
    body = orjson.dumps(document).decode()
    size = escaped_size(body)
    if size <= MAX_MESSAGE_BYTES:
        return body
    if pointer is None:
        raise PublishError("MessageTooLarge", f"document of {size} bytes exceeds the MNS 64 KB message limit "
                           "and no stored copy to point to was given")
    small = orjson.dumps(pointer_message(document, pointer, size)).decode()
    if escaped_size(small) > MAX_MESSAGE_BYTES:
        raise PublishError("MessageTooLarge", "even the pointer message exceeds the MNS 64 KB message limit")
    return small


def to_publish_error(exc: Exception) -> PublishError:
    from mns.mns_exception import MNSClientNetworkException, MNSExceptionBase, MNSServerException

    if isinstance(exc, MNSServerException):
        return PublishError(exc.type, exc.message, exc.req_id, exc.type in TRANSIENT_CODES)
    if isinstance(exc, MNSClientNetworkException):  # also a reply the SDK could not parse (e.g. a 502 page)
        return PublishError(exc.type, exc.message, exc.req_id, transient=True)
    if isinstance(exc, MNSExceptionBase):  # parameter errors, raised before anything is sent
        return PublishError(exc.type, exc.message, exc.req_id, transient=False)
    return PublishError(type(exc).__name__, str(exc), transient=False)


class MnsPublisher:
    """Thread-safe: the SDK keeps one keep-alive connection per client, so each thread gets its own."""

    def __init__(self, endpoint: str, topic: str, access_key_id: str, access_key_secret: str,
                 security_token: str | None, *, timeout_s: float = 10.0) -> None:
        from mns.account import Account
        from mns.mns_exception import MNSExceptionBase
        from mns.topic import TopicMessage

        self._account_cls = Account
        self._message_cls = TopicMessage
        self._sdk_error = MNSExceptionBase
        self._args = (endpoint, access_key_id, access_key_secret, security_token or "")
        self._topic_name = topic
        self._timeout_s = timeout_s
        self._local = threading.local()

    def _topic(self) -> Any:
        topic = getattr(self._local, "topic", None)
        if topic is None:
            account = self._account_cls(*self._args)
            client = account.mns_client
            client.set_connection_timeout(self._timeout_s)  # plain HTTP only (default 60 s)...
            client.http.conn.timeout = self._timeout_s  # ...the SDK's HTTPS connection ignores it otherwise
            topic = self._local.topic = account.get_topic(self._topic_name)
        return topic

    def publish(self, body: str, tag: str) -> PublishReceipt:
        size = escaped_size(body)
        if size > MAX_MESSAGE_BYTES:  # MNS would silently discard it (mns.md §2)
            raise PublishError("MessageTooLarge", f"message of {size} bytes exceeds the MNS 64 KB limit")
        try:
            sent = self._topic().publish_message(self._message_cls(body, tag))
        except self._sdk_error as exc:  # anything else is a bug here, not an MNS failure
            raise to_publish_error(exc) from exc
        return PublishReceipt(sent.message_id, sent.message_body_md5)
