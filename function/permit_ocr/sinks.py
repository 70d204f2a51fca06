"""Step 7: deliver a document to the configured sinks: ``oss`` (beside the image) and/or ``mns`` (a topic).

Only a claim holder delivers, and every write goes through the fence (``fence.py``): right before it, the
claim still has time, the version is still the image's current object, and the slot holds what the writer last
saw. A version overwritten or deleted meanwhile gets no outcome (its successor's event, or nothing, is due); an
outcome replaces the other kind of outcome the key had, so each key ends with exactly one.

The stored object is the durable record: it is written before any message, with ``x-oss-meta-pending: mns``
while the topic has not accepted it, so a retried event only re-publishes (a flaky MNS never costs a second
OCR call). With SINKS=mns alone the document waits at the result key in the same way; once the topic took it,
a receipt without personal data replaces it, unless the message was a pointer to it (documents over 64 KB),
in which case the document stays where the pointer says. The write that settles a published document is
fenced like the first: after a slow publish, a newer version's outcome or a reviewer's save is never replaced.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from . import log
from .config import Config
from .credentials import Credentials
from .document import encode
from .errors import SinkError, StorageError
from .fence import (
    ANY,
    Claimant,
    Fence,
    Fenced,
    StoredOutcome,
    existing_outcome,
    pending_meta,
    stored_outcome,
)
from .layout import (
    JSON_TYPE,
    KIND_ERROR,
    KIND_ERROR_RETRYING,
    KIND_PAGES,
    KIND_RECEIPT,
    KIND_RESULT,
    META_ETAG,
    META_KIND,
    Outputs,
    outputs_for,
    page_outputs,
)
from .storage import Storage, retrying

__all__ = ["META_ETAG", "META_KIND", "Delivered", "SinkError", "Sinks", "StoredOutcome", "existing_outcome",
           "stored_outcome"]

PUBLISH_ATTEMPTS = 3


@dataclass(frozen=True)
class Delivered:
    # written | superseded | gone | changed | expired (the fence refused: nothing written) | exists (this
    # version's final outcome is stored already) | pending (stored; its message still owed)
    status: str
    object_key: str | None = None
    message_id: str | None = None


class Sinks:
    def __init__(self, cfg: Config, storage: Storage, credentials: Callable[[], Credentials],
                 fence: Fence | None = None) -> None:
        self._cfg = cfg
        self._storage = storage
        self._credentials = credentials
        self.fence = fence or Fence(storage)
        self._publisher: Any = None
        self._publisher_creds: Credentials | None = None
        self._page: int | None = None

    @property
    def mns(self) -> bool:
        return "mns" in self._cfg.sinks

    @property
    def oss(self) -> bool:
        return "oss" in self._cfg.sinks

    def outputs(self, bucket: str, image_key: str) -> Outputs:
        if self._page is not None:
            return page_outputs(self._cfg, bucket, image_key, self._page)
        return outputs_for(self._cfg, bucket, image_key)

    def for_page(self, page: int) -> Sinks:
        """These sinks writing the outputs of one page of the PDF at ``image_key`` (layout.page_outputs); every
        write is still fenced on the PDF itself."""
        view = copy.copy(self)
        view._page = page
        return view

    # -- final outcomes: a result, or an error record that ends the work for the version ------------------

    def deliver_result(self, doc: dict[str, Any], claim: Claimant, bucket: str, image_key: str) -> Delivered:
        return self._deliver(doc, claim, bucket, image_key, result=True)

    def deliver_error(self, doc: dict[str, Any], claim: Claimant, bucket: str, image_key: str) -> Delivered:
        """Store an error record: a final one (and its failure message) for a verdict on the version; for a
        transient failure or a fact about the world, a non-final record (see ``record_retrying``)."""
        if doc["error"]["transient"]:
            return self.record_retrying(doc, claim, bucket, image_key)
        return self._deliver(doc, claim, bucket, image_key, result=False)

    def deliver_pages(self, doc: dict[str, Any], claim: Claimant, bucket: str, image_key: str) -> Delivered:
        """Store (and publish) a PDF's index of its pages at the result key: the PDF's own outcome."""
        return self._deliver(doc, claim, bucket, image_key, result=True, kind=KIND_PAGES)

    def _deliver(self, doc: dict[str, Any], claim: Claimant, bucket: str, image_key: str, *,
                 result: bool, kind: str | None = None) -> Delivered:
        out = self.outputs(bucket, image_key)
        body = encode(doc)
        key, other = (out.result_key, out.error_key) if result else (out.error_key, out.result_key)
        kind = kind or (KIND_RESULT if result else KIND_ERROR)
        meta = pending_meta(claim.etag, kind, pending=self.mns, request_id=log.current_request_id() or "")
        try:
            written, seen = self.fence.put(claim, bucket, image_key, out, key, body, JSON_TYPE, meta, {})
        except Fenced as refused:
            return Delivered(refused.reason)
        if seen.slots.get(other, ANY) is not None:  # one outcome per key: drop the older one (or a transient one)
            self._drop(claim, bucket, image_key, out, other, seen.slots.get(other, ANY))
        if not self.mns:
            return Delivered("written", key)
        return self._publish_stored(doc, body, claim, bucket, image_key, out, key, kind, written)

    def _drop(self, claim: Claimant, bucket: str, image_key: str, out: Outputs, key: str, seen: str | None) -> None:
        """Delete the key's other record, if it is still the one the listing showed (never a newer one)."""
        try:
            self.fence.delete(claim, bucket, image_key, out, key, {key: seen} if seen != ANY else {})
        except Fenced as refused:
            log.info("earlier record left in place", reason=refused.reason)

    def remove_sibling(self, claim: Claimant, bucket: str, image_key: str, found: StoredOutcome) -> None:
        """The version's outcome is stored and so is the key's other record (its holder died between the two):
        drop the other one, so the key shows one outcome."""
        if found.sibling is None:
            return
        out = self.outputs(bucket, image_key)
        seen = self.fence.look(bucket, image_key, claim.etag, out)
        if seen.current == "current" and found.sibling in seen.slots:
            self._drop(claim, bucket, image_key, out, found.sibling, seen.slots[found.sibling])

    # -- transient failures and facts about the world: a record that says "not yet", never a verdict -------

    def record_retrying(self, doc: dict[str, Any], claim: Claimant, bucket: str, image_key: str) -> Delivered:
        """Leave a trace of a failure that is not a verdict, so an outcome exists even if FC gives up. Never
        over a newer version's outputs and never beside or over this version's own outcome; it replaces nothing
        but an older record, and the next outcome of the version replaces it."""
        out = self.outputs(bucket, image_key)
        try:
            seen = self.fence.check(claim, bucket, image_key, out, {})
        except Fenced as refused:
            return Delivered(refused.reason)
        except StorageError as err:
            raise SinkError("oss", err.code, err.message, err.transient) from None
        if any(seen.slots.get(k, ANY) is not None for k in (out.result_key, out.error_key)):
            found = self._oss(lambda: stored_outcome(self._storage, out, claim.etag))
            if found is not None and found.final:  # stored already: FC's retry must only (re)publish
                return Delivered("pending" if found.pending else "exists", found.key)
        meta = pending_meta(claim.etag, KIND_ERROR_RETRYING, pending=False,
                            request_id=log.current_request_id() or "")
        try:
            self.fence.put(claim, bucket, image_key, out, out.error_key, encode(doc), JSON_TYPE, meta,
                           {out.error_key: seen.slots.get(out.error_key, ANY)})
        except Fenced as refused:
            return Delivered(refused.reason)
        return Delivered("written", out.error_key)

    # -- redelivery of a stored document whose message is still owed ------------------------------------

    def redeliver(self, claim: Claimant, bucket: str, image_key: str, found: StoredOutcome) -> Delivered:
        """Publish a stored document whose message is owed and settle it, as the claim holder. The image may be
        gone by now (the upload happened; its consumer is waiting); a superseded version's message is dropped:
        its successor's outcome is the one consumers must see last."""
        out = self.outputs(bucket, image_key)
        chunk = self._oss(lambda: self._storage.read_all(out.bucket, found.key))
        doc = _document_of(chunk.data, claim.etag)
        if doc is None:  # replaced since it was found: not this version's document any more
            return Delivered("changed")
        try:
            self.fence.check(claim, bucket, image_key, out, {found.key: chunk.etag}, allow_gone=True)
        except Fenced as refused:
            return Delivered(refused.reason)
        except StorageError as err:
            raise SinkError("oss", err.code, err.message, err.transient) from None
        return self._publish_stored(doc, chunk.data, claim, bucket, image_key, out, found.key, found.kind,
                                    chunk.etag or "", allow_gone=True)

    # -- plumbing -----------------------------------------------------------------------------------------

    def _publish_stored(self, doc: dict[str, Any], body: bytes, claim: Claimant, bucket: str, image_key: str,
                        out: Outputs, key: str, kind: str, stored_etag: str, *, allow_gone: bool = False) -> Delivered:
        """Publish a document that is already stored (pending) at ``key``, then settle the stored object, if it is
        still the one we stored and the version is still current."""
        from .publish import message_body

        text = message_body(doc, {"bucket": out.bucket, "key": key})
        message_id = self._publish(text, doc)
        if kind in (KIND_RESULT, KIND_RECEIPT) and not self.oss and orjson.loads(text).get("type") != "pointer":
            receipt = {k: doc[k] for k in ("schemaVersion", "source", "needsReview")} | {
                "type": "receipt", "ocrRequestId": doc["ocr"]["requestId"], "messageId": message_id}
            settled, settled_kind = orjson.dumps(receipt), KIND_RECEIPT
        else:  # the stored document stays (the oss sink's result, or the target of a pointer message)
            settled, settled_kind = body, kind
        meta = pending_meta(claim.etag, settled_kind, pending=False, request_id=log.current_request_id() or "")
        try:
            self.fence.put(claim, bucket, image_key, out, key, settled, JSON_TYPE, meta, {key: stored_etag},
                           allow_gone=allow_gone)
        except Fenced as refused:  # the message went out; the slot is somebody else's now: leave it
            log.warning("published; the stored document was not settled", reason=refused.reason)
        return Delivered("written", key, message_id)

    @staticmethod
    def _oss(call: Callable[[], Any]) -> Any:
        """One OSS read, retried on transient errors; a SinkError when it still fails."""
        try:
            return retrying(call)
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


def _document_of(data: bytes, etag: str) -> dict[str, Any] | None:
    """The stored document, if it describes the version ``etag`` (its ``source.etag``), else None."""
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    source = doc.get("source") if isinstance(doc, dict) else None
    named = str(source.get("etag") or "") if isinstance(source, dict) else ""
    return doc if named.upper() == etag.upper() else None
