"""Step 7: deliver a document to the configured sinks: ``oss`` (beside the image) and/or ``mns`` (a topic).

Every write is bound to the image version it describes. Before an outcome is stored, one request checks that
the version is still the current object and sees which outputs exist beside it: a ListObjectsV2 on the image
key when the outputs sit beside the image (the default; the listing shows the image's ETag and both outputs),
else a HEAD of the image plus a listing of the output prefix. A version that was overwritten or deleted gets
no outcome (its successor's event, or nothing, is due); an outcome replaces the other kind of outcome the key
had, so each key ends with exactly one.

The stored object is the durable record: it is written before any message, with ``x-oss-meta-pending: mns``
while the topic has not accepted it, so a retried event only re-publishes (a flaky MNS never costs a second
OCR call). With SINKS=mns alone the document waits at the result key in the same way; once the topic took it,
a receipt without personal data replaces it, unless the message was a pointer to it (documents over 64 KB),
in which case the document stays where the pointer says.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson

from . import log
from .config import Config
from .credentials import Credentials
from .document import encode
from .errors import SinkError, StorageError
from .layout import (
    JSON_TYPE,
    KIND_ERROR,
    KIND_ERROR_RETRYING,
    KIND_RECEIPT,
    KIND_RESULT,
    META_ETAG,
    META_KIND,
    META_PENDING,
    META_REQUEST,
    Outputs,
    outputs_for,
)
from .storage import ObjectHead, Storage, retrying

__all__ = ["META_ETAG", "META_KIND", "Delivered", "SinkError", "Sinks", "StoredOutcome", "existing_outcome",
           "stored_outcome"]

T = TypeVar("T")
PUBLISH_ATTEMPTS = 3
PUT_ATTEMPTS = 4  # OSS attempts per request on top of the SDK's own 3: after the paid call, a request that
# gives up loses the document, and the retry pays again


@dataclass(frozen=True)
class Delivered:
    status: str  # written | superseded | gone | exists | pending (stored, its message still owed)
    object_key: str | None = None
    message_id: str | None = None


@dataclass(frozen=True)
class StoredOutcome:
    """An output found for one image version."""

    key: str
    kind: str  # result | receipt | error | error-retrying
    pending: bool  # the MNS message is still owed
    request_id: str = ""  # the FC request that wrote it

    @property
    def final(self) -> bool:
        return self.kind != KIND_ERROR_RETRYING


def existing_outcome(head: ObjectHead | None, etag: str | None) -> str | None:
    """``done`` / ``pending`` when ``head`` is our output for this very image version, else None."""
    if head is None or not etag or head.metadata.get(META_ETAG, "").upper() != etag.upper():
        return None
    return "pending" if head.metadata.get(META_PENDING) else "done"


def stored_outcome(storage: Storage, outputs: Outputs, etag: str) -> StoredOutcome | None:
    """The outcome stored for this version, if any: the result first (a result beats an error record)."""
    for key in (outputs.result_key, outputs.error_key):
        head = storage.head(outputs.bucket, key)  # StorageError propagates: "cannot tell" is not "absent"
        state = existing_outcome(head, etag)
        if head is not None and state is not None:
            return StoredOutcome(key, head.metadata.get(META_KIND) or KIND_RESULT, state == "pending",
                                 head.metadata.get(META_REQUEST, ""))
    return None


@dataclass(frozen=True)
class _Beside:
    current: str  # current | superseded | gone
    result: bool | None  # the result key exists (None: unknown)
    error: bool | None


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

    def outputs(self, bucket: str, image_key: str) -> Outputs:
        return outputs_for(self._cfg, bucket, image_key)

    # -- final outcomes: a result, or an error record that ends the work for the version ------------------

    def deliver_result(self, doc: dict[str, Any], bucket: str, image_key: str, etag: str) -> Delivered:
        return self._deliver(doc, bucket, image_key, etag, result=True)

    def deliver_error(self, doc: dict[str, Any], bucket: str, image_key: str, etag: str | None) -> Delivered:
        """Store a final error record and publish a failure message. ``etag`` None: the image cannot be read,
        so the record is written without the version check (it describes the event, not a version)."""
        if doc["error"]["transient"]:
            return self.record_retrying(doc, bucket, image_key, etag)
        return self._deliver(doc, bucket, image_key, etag, result=False)

    def _deliver(self, doc: dict[str, Any], bucket: str, image_key: str, etag: str | None, *,
                 result: bool) -> Delivered:
        out = self.outputs(bucket, image_key)
        beside = self._beside(bucket, image_key, etag, out) if etag else _Beside("current", None, None)
        if beside.current != "current":
            return Delivered(beside.current)
        body = encode(doc)
        key, other, other_exists = ((out.result_key, out.error_key, beside.error) if result
                                    else (out.error_key, out.result_key, beside.result))
        kind = KIND_RESULT if result else KIND_ERROR
        self._put(out.bucket, key, body, kind, etag, pending=self.mns)
        if other_exists is not False:  # one outcome per key: drop the older one (or a transient record)
            self._delete(out.bucket, other)
        if not self.mns:
            return Delivered("written", key)
        return self._publish_stored(doc, body, out, key, kind, etag)

    # -- transient failures: a record that says "retrying", never a verdict ---------------------------------

    def record_retrying(self, doc: dict[str, Any], bucket: str, image_key: str, etag: str | None) -> Delivered:
        """Leave a trace of a transient failure, so an outcome exists even if FC gives up. Never over a newer
        version's outputs and never beside this version's own result; it replaces nothing but an older
        transient record, and the next outcome of the version replaces it."""
        out = self.outputs(bucket, image_key)
        if etag:
            beside = self._beside(bucket, image_key, etag, out)
            if beside.current != "current":
                return Delivered(beside.current)
            if beside.result is not False:
                found = self._oss(lambda: stored_outcome(self._storage, out, etag))
                if found is not None and found.final:  # stored already: FC's retry must only (re)publish
                    return Delivered("pending" if found.pending else "exists", found.key)
        self._put(out.bucket, out.error_key, encode(doc), KIND_ERROR_RETRYING, etag, pending=False)
        return Delivered("written", out.error_key)

    # -- redelivery of a stored document whose message is still owed ------------------------------------

    def redeliver(self, bucket: str, image_key: str, etag: str, found: StoredOutcome) -> Delivered:
        out = self.outputs(bucket, image_key)
        body = self._oss(lambda: self._storage.read_all(out.bucket, found.key).data)
        doc = orjson.loads(body)
        return self._publish_stored(doc, body, out, found.key, found.kind, etag)

    # -- plumbing -----------------------------------------------------------------------------------------

    def _beside(self, bucket: str, image_key: str, etag: str | None, out: Outputs) -> _Beside:
        """Is ``etag`` still the image's current version, and which outputs exist beside it (one request when
        the outputs sit beside the image, two otherwise)."""
        listing = self._oss(lambda: self._storage.list_prefix(out.bucket, out.listing_prefix))
        if out.lists_image:
            current = listing.etags.get(image_key)
        else:
            head = self._oss(lambda: self._storage.head(bucket, image_key))
            current = head.etag if head else None
        if current is None:
            return _Beside("gone", None, None)
        if etag and current != etag:
            return _Beside("superseded", None, None)

        def exists(key: str) -> bool | None:
            return (key in listing.etags) if listing.knows(key) else None

        return _Beside("current", exists(out.result_key), exists(out.error_key))

    def _publish_stored(self, doc: dict[str, Any], body: bytes, out: Outputs, key: str, kind: str,
                        etag: str | None) -> Delivered:
        """Publish a document that is already stored (pending) at ``key``, then settle the stored object."""
        from .publish import message_body

        text = message_body(doc, {"bucket": out.bucket, "key": key})
        message_id = self._publish(text, doc)
        if kind in (KIND_RESULT, KIND_RECEIPT) and not self.oss and orjson.loads(text).get("type") != "pointer":
            receipt = {k: doc[k] for k in ("schemaVersion", "source", "needsReview")} | {
                "type": "receipt", "ocrRequestId": doc["ocr"]["requestId"], "messageId": message_id}
            self._put(out.bucket, key, orjson.dumps(receipt), KIND_RECEIPT, etag, pending=False)
        else:  # the stored document stays (the oss sink's result, or the target of a pointer message)
            self._put(out.bucket, key, body, kind, etag, pending=False)
        return Delivered("written", key, message_id)

    def _put(self, bucket: str, key: str, body: bytes, kind: str, etag: str | None, *, pending: bool) -> None:
        meta: Mapping[str, str] = {META_ETAG: etag or "", META_KIND: kind, META_PENDING: "mns" if pending else "",
                                   META_REQUEST: log.current_request_id() or ""}
        self._oss(lambda: self._storage.put(bucket, key, body, JSON_TYPE, meta))

    def _delete(self, bucket: str, key: str) -> None:
        self._oss(lambda: self._storage.delete(bucket, key))

    @staticmethod
    def _oss(call: Callable[[], T]) -> T:
        """One OSS request, retried on transient errors; a SinkError when it still fails."""
        try:
            return retrying(call, PUT_ATTEMPTS)
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

    def _publish(self, text: str, doc: dict[str, Any]) -> str:
        from .publish import PublishError, tag_for

        last: PublishError | None = None
        for attempt in range(PUBLISH_ATTEMPTS):
            try:
                return str(self._get_publisher().publish(text, tag_for(doc)).message_id)
            except PublishError as err:
                last = err
                if not err.transient:
                    break
                time.sleep(0.2 * 2**attempt)
        assert last is not None
        raise SinkError("mns", str(last.code or "PublishFailed"), str(last.message), bool(last.transient))
