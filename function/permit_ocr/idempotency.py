"""Exactly one paid OCR call per image version (bucket + key + ETag), whatever FC delivers.

Two layers, in this order. ``Claim``: before anything else an invocation creates the version's claim object
(``<key>.claim.<etag12><RESULT_SUFFIX>``) with x-oss-forbid-overwrite, so of deliveries arriving together
exactly one goes on; the others stop, since the winner will write the outcome. ``finished``: then a stored
result, or a permanent error record, for this ETag ends the work (a document whose MNS message is still owed
is re-published, not re-recognized). Claiming first means a delivery that wins the claim after another
released it always sees that one's outcome. A claim names its FC request id (async retries keep it, so a
retried invocation resumes its own claim) and expires with the function timeout, so a crashed invocation
cannot block the image forever; claims are per version, so an older version's delivery never releases a
newer one's claim.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

import orjson

from .config import Config
from .sinks import ERROR_FINAL, JSON_TYPE, META_ETAG, META_KIND, Sinks, existing_outcome
from .storage import Storage, StorageError


@dataclass(frozen=True)
class Finished:
    status: str  # duplicate | redelivered


@dataclass
class Seen:
    """What the check learned on the way, so later steps skip requests: False = known absent, None = unknown."""

    error_record: bool | None = None


def finished(cfg: Config, storage: Storage, sinks: Sinks, bucket: str, key: str, etag: str,
             seen: Seen | None = None) -> Finished | None:
    out_bucket = cfg.output_bucket_for(bucket)
    for out_key, is_error in ((cfg.result_key(key), False), (cfg.error_key(key), True)):
        head = storage.head(out_bucket, out_key)  # StorageError propagates: "cannot tell" is not "not done"
        if is_error and seen is not None:
            seen.error_record = head is not None
        state = existing_outcome(head, etag)
        if state is None or head is None:
            continue
        if is_error and head.metadata.get(META_KIND) != ERROR_FINAL:
            continue  # a transient error record: this delivery is the retry it asked for
        if not is_error:  # a result wins: drop a transient error record a failed delivery left beside it
            with contextlib.suppress(StorageError):
                storage.delete(out_bucket, cfg.error_key(key))
        if state == "pending":
            sinks.redeliver(out_bucket, out_key, etag)
            return Finished("redelivered")
        return Finished("duplicate")
    return None


def claim_body(etag: str, request_id: str, now: float, ttl_s: float) -> bytes:
    return orjson.dumps({"etag": etag, "requestId": request_id, "claimedAt": now, "expiresAt": now + ttl_s})


def claim_is_live(raw: bytes, etag: str, request_id: str, now: float) -> bool:
    """True when someone else holds an unexpired claim on this very image version."""
    try:
        doc = orjson.loads(raw)
        return (doc.get("etag") == etag and doc.get("requestId") != request_id
                and float(doc.get("expiresAt", 0)) > now)
    except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
        return False  # an unreadable claim protects nothing


class Claim:
    def __init__(self, cfg: Config, storage: Storage, bucket: str, key: str, etag: str) -> None:
        self._storage = storage
        self._bucket = cfg.output_bucket_for(bucket)
        self._key = cfg.claim_key(key, etag)

    def acquire(self, etag: str, request_id: str, ttl_s: float) -> bool:
        """Create the claim; False when another live invocation holds it. Storage errors propagate."""
        now = time.time()
        body = claim_body(etag, request_id, now, ttl_s)
        meta = {META_ETAG: etag, META_KIND: "claim"}
        for _ in range(2):
            try:
                self._storage.put(self._bucket, self._key, body, JSON_TYPE, meta, forbid_overwrite=True)
                return True
            except StorageError as err:
                if err.code != "FileAlreadyExists":
                    raise
            try:
                held = self._storage.read_all(self._bucket, self._key).data
            except StorageError as err:
                if err.not_found:
                    continue  # released meanwhile: try again
                raise
            if claim_is_live(held, etag, request_id, now):
                return False
            self._storage.delete(self._bucket, self._key)  # ours (a retry), stale, or for an older version
        return False

    def release(self) -> None:
        with contextlib.suppress(StorageError):  # a claim left behind expires on its own
            self._storage.delete(self._bucket, self._key)
