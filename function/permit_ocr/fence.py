"""The one guard for every outcome write, and what is stored beside an image version.

Every write of an outcome — the first result or error record, the write that settles a published document
(pending flag cleared, or the receipt), re-publishing after FC's retry, the delete of the key's earlier record,
and the review page's save — goes through ``Fence.put`` / ``Fence.delete``, which check right before writing:

1. the writer's claim on the version still has time left (no request: a claim is ours until it expires, and
   nobody takes it over before that);
2. the version is still the image's current object (one ListObjectsV2 on the image key when the outputs sit
   beside the image: it shows the image's ETag and both outputs; else a listing of the image's key plus one of
   the output prefix: listings need no read permission on the image);
3. the slot holds what the writer last saw: a settle write expects its own pending document, the review's save
   the result version it showed, a delete the record the listing showed.

OSS has no conditional PUT, so one window stays: between that listing and the write landing. The write goes to a
URL signed to expire seconds later, so OSS refuses it if it arrives late: the window is one PUT's round trip, and
never more than the URL's few seconds.
A write that would land on a newer version's outputs, on a reviewer's save or after the claim ran out does not
happen. Transient OSS failures are retried (check and write again) until the claim runs low: a paid answer
survives an OSS brownout as long as the invocation does.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol, TypeVar

from .errors import SinkError, StorageError
from .layout import KIND_ERROR_RETRYING, KIND_RESULT, META_ETAG, META_KIND, META_PENDING, META_REQUEST, Outputs
from .storage import ObjectHead, Storage

T = TypeVar("T")
WRITE_MIN_S = 2.0  # claim time a write needs: a PUT landing after the claim expired could race a taker-over
BACKOFF_S, MAX_BACKOFF_S = 0.2, 3.2
MAX_WRITE_TRIES = 12  # about 25 s of backoff: an OSS brownout of seconds, within the claim's store budget
ANY = "*"  # expect no particular ETag in the slot (only that the version is current)


class Claimant(Protocol):
    """What the fence needs of a claim: whose version it is and how long it still holds."""

    etag: str

    def time_left(self) -> float: ...


@dataclass(frozen=True)
class StoredOutcome:
    """An output found for one image version."""

    key: str
    kind: str  # result | receipt | error | error-retrying
    pending: bool  # the MNS message is still owed
    request_id: str = ""  # the FC request that wrote it
    sibling: str | None = None  # the key's other output exists too (left by a holder that died mid-write)

    @property
    def final(self) -> bool:
        return self.kind != KIND_ERROR_RETRYING


def existing_outcome(head: ObjectHead | None, etag: str | None) -> str | None:
    """``done`` / ``pending`` when ``head`` is our output for this very image version, else None."""
    if head is None or not etag or head.metadata.get(META_ETAG, "").upper() != etag.upper():
        return None
    return "pending" if head.metadata.get(META_PENDING) else "done"


def stored_outcome(storage: Storage, outputs: Outputs, etag: str) -> StoredOutcome | None:
    """The outcome stored for this version, if any: the result first (a result beats an error record).
    StorageError propagates: "cannot tell" is not "absent"."""
    heads = {key: storage.head(outputs.bucket, key) for key in (outputs.result_key, outputs.error_key)}
    for key, head in heads.items():
        state = existing_outcome(head, etag)
        if head is not None and state is not None:
            other = next(k for k in heads if k != key)
            return StoredOutcome(key, head.metadata.get(META_KIND) or KIND_RESULT, state == "pending",
                                 head.metadata.get(META_REQUEST, ""), other if heads[other] is not None else None)
    return None


def content_etag(body: bytes) -> str:
    """The ETag OSS gives a PutObject: the body's MD5 (known before the answer, so a lost answer loses nothing)."""
    return hashlib.md5(body).hexdigest().upper()


@dataclass(frozen=True)
class Look:
    """One look beside the image: is ``etag`` current, and the ETag of each output the listing could tell."""

    current: str  # current | superseded | gone
    slots: Mapping[str, str | None]  # output key -> its ETag, None when absent; keys the listing could not tell
    # are missing

    def holds(self, key: str, expected: str | None) -> bool:
        if expected == ANY:
            return True
        if key not in self.slots:  # the listing stopped before it: cannot tell, so not what we expect
            return False
        return self.slots[key] == expected


class Fenced(Exception):
    """The write must not happen: ``reason`` is superseded | gone | changed | expired."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Fence:
    def __init__(self, storage: Storage, sleep: Callable[[float], None] | None = None) -> None:
        self._storage = storage
        self._sleep = sleep

    def look(self, bucket: str, image_key: str, etag: str, out: Outputs) -> Look:
        """One listing (plus a HEAD of the image when outputs live elsewhere). StorageError propagates."""
        listing = self._storage.list_prefix(out.bucket, out.listing_prefix)
        # outputs apart: a listing of the image's own key (no read permission on the image needed)
        current = (listing.etags.get(image_key) if out.lists_image
                   else self._storage.current_etag(bucket, image_key))
        state = "gone" if current is None else ("current" if current == etag else "superseded")
        slots = {k: listing.etags.get(k) for k in (out.result_key, out.error_key) if listing.knows(k)}
        return Look(state, slots)

    def check(self, claim: Claimant, bucket: str, image_key: str, out: Outputs,
              expect: Mapping[str, str | None], *, allow_gone: bool = False) -> Look:
        """Raise Fenced unless the claim has time left, the version is current (or, with ``allow_gone``, gone
        without a successor) and every slot in ``expect`` holds the expected ETag (None: absent)."""
        if claim.time_left() < WRITE_MIN_S:
            raise Fenced("expired")
        seen = self.look(bucket, image_key, claim.etag, out)
        if seen.current == "superseded" or (seen.current == "gone" and not allow_gone):
            raise Fenced(seen.current)
        if not all(seen.holds(k, v) for k, v in expect.items()):
            raise Fenced("changed")
        return seen

    def put(self, claim: Claimant, bucket: str, image_key: str, out: Outputs, key: str, body: bytes,
            content_type: str, meta: Mapping[str, str], expect: Mapping[str, str | None],
            *, allow_gone: bool = False) -> tuple[str, Look]:
        """Check, then write ``key``; the written ETag and what the check saw. Raises Fenced or SinkError."""

        def once() -> tuple[str, Look]:
            seen = self.check(claim, bucket, image_key, out, expect, allow_gone=allow_gone)
            written = self._storage.put_outcome(out.bucket, key, body, content_type, meta)
            return written or content_etag(body), seen

        return self._until_claim_ends(claim, once)

    def delete(self, claim: Claimant, bucket: str, image_key: str, out: Outputs, key: str,
               expect: Mapping[str, str | None], *, allow_gone: bool = False) -> None:
        def once() -> None:
            self.check(claim, bucket, image_key, out, expect, allow_gone=allow_gone)
            self._storage.delete(out.bucket, key)

        self._until_claim_ends(claim, once)

    def _until_claim_ends(self, claim: Claimant, call: Callable[[], T]) -> T:
        """Check-and-write again on transient OSS errors, while the claim leaves time for one more try: an
        outage of seconds right after the paid call must not lose the answer."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return call()
            except StorageError as err:
                pause = min(MAX_BACKOFF_S, BACKOFF_S * 2 ** (attempt - 1))
                if not err.transient or attempt >= MAX_WRITE_TRIES or claim.time_left() < WRITE_MIN_S + pause:
                    raise SinkError("oss", err.code, err.message, err.transient) from None
            (self._sleep or time.sleep)(pause)


def pending_meta(etag: str, kind: str, *, pending: bool, request_id: str) -> dict[str, str]:
    """The ``x-oss-meta-*`` of an outcome object: the version it describes, its kind, whether a message is owed."""
    return {META_ETAG: etag, META_KIND: kind, META_PENDING: "mns" if pending else "", META_REQUEST: request_id}
