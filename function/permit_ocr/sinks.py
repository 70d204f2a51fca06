"""Step 7: deliver a document to the configured sinks: ``oss`` (beside the image) and/or ``mns`` (a topic).

With the oss sink, the stored object is the durable record: it is written first, with ``x-oss-meta-pending:
mns`` while a message is still owed, and the flag is cleared once the topic accepted it. A retried event then
finds the object and only re-publishes: a flaky MNS never costs a second OCR call. With mns alone, a small
receipt (no personal data) is stored after publishing, so duplicates are still recognized.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from .config import Config
from .credentials import Credentials
from .document import encode
from .storage import ObjectHead, Storage, StorageError

JSON_TYPE = "application/json; charset=utf-8"
META_ETAG, META_KIND, META_PENDING = "source-etag", "permit-ocr", "pending"
ERROR_FINAL, ERROR_RETRYING = "error", "error-retrying"  # x-oss-meta-permit-ocr of error records
PUBLISH_ATTEMPTS = 3
PUT_ATTEMPTS = 4  # on top of the SDK's own 3 tries


class SinkError(Exception):
    def __init__(self, sink: str, code: str, message: str, transient: bool) -> None:
        super().__init__(f"{sink} sink: {code}: {message}")
        self.sink = sink
        self.code = code
        self.message = message
        self.transient = transient


@dataclass(frozen=True)
class Delivered:
    object_key: str | None = None
    message_id: str | None = None


def existing_outcome(head: ObjectHead | None, etag: str | None) -> str | None:
    """``done`` / ``pending`` when ``head`` is our output for this very image version, else None."""
    if head is None or not etag or head.metadata.get(META_ETAG, "").upper() != etag.upper():
        return None
    return "pending" if head.metadata.get(META_PENDING) else "done"


class Sinks:
    def __init__(self, cfg: Config, storage: Storage, credentials: Callable[[], Credentials]) -> None:
        self._cfg = cfg
        self._storage = storage
        self._credentials = credentials
        self._publisher: Any = None
        self._publisher_creds: Credentials | None = None

    @property
    def mns(self) -> bool:
        return "mns" in self._cfg.sinks

    @property
    def oss(self) -> bool:
        return "oss" in self._cfg.sinks

    # -- results ---------------------------------------------------------------------------------------

    def deliver_result(self, doc: dict[str, Any], bucket: str, image_key: str, etag: str | None, *,
                       error_record_may_exist: bool = True) -> Delivered:
        out_bucket = self._cfg.output_bucket_for(bucket)
        result_key = self._cfg.result_key(image_key)
        body = encode(doc)
        if not self.oss:
            sent = self._publish(doc, body, out_bucket, result_key, etag, "result")
            receipt = {k: doc[k] for k in ("schemaVersion", "source", "needsReview")} | {
                "type": "receipt", "ocrRequestId": doc["ocr"]["requestId"], "messageId": sent}
            self._put(out_bucket, result_key, orjson.dumps(receipt), "receipt", etag, pending=False)
            if error_record_may_exist:
                self._delete(out_bucket, self._cfg.error_key(image_key))
            return Delivered(result_key, sent)
        self._put(out_bucket, result_key, body, "result", etag, pending=self.mns)
        if error_record_may_exist:  # a success replaces a stale error record
            self._delete(out_bucket, self._cfg.error_key(image_key))
        message_id: str | None = None
        if self.mns:
            message_id = self._publish(doc, body, out_bucket, result_key, etag, "result")
            self._put(out_bucket, result_key, body, "result", etag, pending=False)
        return Delivered(result_key, message_id)

    # -- error records ----------------------------------------------------------------------------------

    def deliver_error(self, doc: dict[str, Any], bucket: str, image_key: str, etag: str | None) -> Delivered:
        """Store the error record; publish a failure message unless the error will be retried."""
        out_bucket = self._cfg.output_bucket_for(bucket)
        error_key = self._cfg.error_key(image_key)
        body = encode(doc)
        transient = bool(doc["error"]["transient"])
        kind = ERROR_RETRYING if transient else ERROR_FINAL  # only a final record ends the work for this ETag
        notify = self.mns and not transient
        self._put(out_bucket, error_key, body, kind, etag, pending=notify)
        message_id: str | None = None
        if notify:
            message_id = self._publish(doc, body, out_bucket, error_key, etag, "error")
            self._put(out_bucket, error_key, body, kind, etag, pending=False)
        return Delivered(error_key, message_id)

    # -- redelivery of a stored document whose message is still owed ------------------------------------

    def redeliver(self, bucket: str, key: str, etag: str | None) -> Delivered:
        try:
            body = self._storage.read_all(bucket, key).data
        except StorageError as err:
            raise SinkError("oss", err.code, err.message, err.transient) from None
        doc = orjson.loads(body)
        kind = str(doc.get("type", "result"))
        message_id = self._publish(doc, body, bucket, key, etag, kind)
        self._put(bucket, key, body, kind, etag, pending=False)
        return Delivered(key, message_id)

    # -- plumbing -----------------------------------------------------------------------------------------

    def _put(self, bucket: str, key: str, body: bytes, kind: str, etag: str | None, *, pending: bool) -> None:
        meta: Mapping[str, str] = {META_ETAG: etag or "", META_KIND: kind, META_PENDING: "mns" if pending else ""}
        for attempt in range(PUT_ATTEMPTS):  # a lost result write would cost a second paid OCR call
            try:
                self._storage.put(bucket, key, body, JSON_TYPE, meta)
                return
            except StorageError as err:
                if not err.transient or attempt == PUT_ATTEMPTS - 1:
                    raise SinkError("oss", err.code, err.message, err.transient) from None
            time.sleep(0.2 * 2**attempt)

    def _delete(self, bucket: str, key: str) -> None:
        try:
            self._storage.delete(bucket, key)
        except StorageError as err:
            raise SinkError("oss", err.code, err.message, err.transient) from None

    def _get_publisher(self) -> Any:
        creds = self._credentials()
        if self._publisher is None or creds != self._publisher_creds:
            from .publish import MnsPublisher

            self._publisher = MnsPublisher(self._cfg.mns_endpoint, self._cfg.mns_topic, creds.access_key_id,
                                           creds.access_key_secret, creds.security_token)
            self._publisher_creds = creds
        return self._publisher

    def _publish(self, doc: dict[str, Any], body: bytes, bucket: str, key: str, etag: str | None,
                 kind: str) -> str:
        from .publish import PublishError, message_body, tag_for

        pointer = {"bucket": bucket, "key": key}
        if not self.oss and kind == "result":
            # nothing stored yet: a document too large for a message is stored first, then pointed at
            try:
                text = message_body(doc, None)
            except PublishError:
                self._put(bucket, key, body, kind, etag, pending=True)
                text = message_body(doc, pointer)
        else:
            text = message_body(doc, pointer)
        last: Exception | None = None
        for attempt in range(PUBLISH_ATTEMPTS):
            try:
                return str(self._get_publisher().publish(text, tag_for(doc)).message_id)
            except PublishError as err:
                last = err
                if not err.transient:
                    break
                time.sleep(0.2 * 2**attempt)
        code = getattr(last, "code", None) or "PublishFailed"
        raise SinkError("mns", str(code), str(getattr(last, "message", last)), bool(getattr(last, "transient", True)))
