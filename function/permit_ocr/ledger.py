"""Exactly one paid OCR call per image version (bucket + key actually found + ETag), whatever FC delivers.

Each version has a chain of marker objects, ``.permit-ocr/markers/<digest>/<ETAG>.<n>`` (see layout). The
happy path is one request: creating generation 0 with ``x-oss-forbid-overwrite`` succeeds only if nobody ever
touched this version, so the caller may pay. The marker then stays as the record that the version was taken
(the OSS lifecycle rule expires it after MARKER_RETENTION_DAYS); it is never deleted by the function.

When generation ``n`` already exists, its body says who holds it and until when (the holder's FC deadline):
- an outcome is stored for the version: -> Done (re-publish only, when its MNS message is still owed);
- held by a live attempt (of any request: a duplicate delivery, an FC retry while the first attempt may still
  run, the same bytes uploaded again): paying now could pay twice, and answering "done" could lose the upload,
  because the holder may still end without an outcome (it finds the object deleted just before this same-bytes
  upload, say) -> Defer: this delivery fails, and FC's retry finds either the holder's outcome or a released
  or expired holder to take over from;
- released (the holder failed transiently) or expired (the holder died): take over by creating generation
  ``n + 1``, again with forbid-overwrite, so of several contenders exactly one wins.
A holder identifies itself by a token drawn per attempt, never by the request id.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass

import orjson

from .errors import StorageError
from .layout import JSON_TYPE, KIND_ERROR, KIND_MARKER, META_ETAG, META_KIND, Outputs, marker_key
from .sinks import StoredOutcome, stored_outcome
from .storage import Storage, retrying

MAX_GENERATIONS = 64  # takeovers of one version; each needs a dead or failed holder, so this is never reached
RUNNING, RELEASED = "running", "released"


@dataclass(frozen=True)
class Holder:
    token: str
    request_id: str
    expires_at: float
    state: str

    def live(self, now: float) -> bool:
        return self.state == RUNNING and self.expires_at > now


def marker_body(etag: str, holder: Holder, claimed_at: float) -> bytes:
    return orjson.dumps({"v": 1, "etag": etag, "token": holder.token, "requestId": holder.request_id,
                         "claimedAt": claimed_at, "expiresAt": holder.expires_at, "state": holder.state})


def parse_holder(raw: bytes) -> Holder | None:
    """The holder a marker names; None for an unreadable marker (it protects nothing)."""
    try:
        doc = orjson.loads(raw)
        return Holder(str(doc["token"]), str(doc["requestId"]), float(doc["expiresAt"]), str(doc["state"]))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


# -- what ``begin`` answers ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Defer:
    """A live attempt holds the version and no outcome is stored yet: come back later (raise for FC's retry)."""


@dataclass(frozen=True)
class Done:
    outcome: StoredOutcome  # pending -> re-publish only


@dataclass
class Ticket:
    """The right to pay for this version. ``release`` when the attempt ends without a final outcome, so the
    next delivery may take over at once instead of waiting for the expiry."""

    storage: Storage
    bucket: str
    key: str
    etag: str
    holder: Holder
    claimed_at: float
    released: bool = False

    def release(self) -> None:
        if self.released:
            return
        self.released = True
        gone = Holder(self.holder.token, self.holder.request_id, self.holder.expires_at, RELEASED)
        with contextlib.suppress(StorageError):  # best effort: a running marker still expires at the deadline
            write_marker(self.storage, self.bucket, self.key, self.etag, gone, self.claimed_at, overwrite=True)


Claim = Ticket | Defer | Done


def write_marker(storage: Storage, bucket: str, mkey: str, etag: str, holder: Holder, claimed_at: float, *,
                 overwrite: bool) -> bool:
    """Create (or, for its holder, rewrite) a marker; False when it already exists."""
    try:
        retrying(lambda: storage.put(bucket, mkey, marker_body(etag, holder, claimed_at), JSON_TYPE,
                                     {META_ETAG: etag, META_KIND: KIND_MARKER}, forbid_overwrite=not overwrite))
        return True
    except StorageError as err:
        if err.already_exists:
            return False
        raise


def settles(found: StoredOutcome | None, request_id: str, replay: bool) -> bool:
    """Whether a stored outcome ends the work for a delivery. A transient record never does; a final error
    record does unless an operator's replay asks again (a replay settles only what its own request wrote, so
    FC retrying the replay event never pays twice)."""
    if found is None or not found.final:
        return False
    return not (replay and found.kind == KIND_ERROR and found.request_id != request_id)


class Ledger:
    def __init__(self, storage: Storage, clock: Callable[[], float]) -> None:
        self._storage = storage
        self._clock = clock
        # the tickets attempts of this process still hold: an attempt's frames keep its ticket alive, so an
        # entry goes when the attempt ends. FC instances never need it; a local process that is interrupted
        # releases them (release_held), so the next run takes over at once instead of waiting for the expiry.
        self._held: weakref.WeakValueDictionary[int, Ticket] = weakref.WeakValueDictionary()
        self._held_lock = threading.Lock()

    def _hold(self, ticket: Ticket) -> Ticket:
        with self._held_lock:
            self._held[id(ticket)] = ticket
        return ticket

    def release_held(self) -> int:
        """Release every claim an attempt of this process still holds (best effort); how many were released.
        A ticket whose outcome is stored may be among them: released, it still reads as done."""
        with self._held_lock:
            tickets = [t for t in self._held.values() if not t.released]
        for t in tickets:
            t.release()
        return len(tickets)

    def begin(self, outputs: Outputs, bucket: str, key: str, etag: str, request_id: str, ttl_s: float, *,
              replay: bool = False) -> Claim:
        """Claim the version for this attempt, or say why not. StorageError propagates ("cannot tell")."""
        now = self._clock()
        mine = Holder(secrets.token_hex(8), request_id, now + ttl_s, RUNNING)
        store = outputs.bucket
        found: StoredOutcome | None = None
        looked = False
        for generation in range(MAX_GENERATIONS):
            mkey = marker_key(bucket, key, etag, generation)
            if write_marker(self._storage, store, mkey, etag, mine, now, overwrite=False):
                return self._hold(Ticket(self._storage, store, mkey, etag, mine, now))
            held = self._read_holder(store, mkey)
            if held is not None and held.token == mine.token:  # ours: the PUT landed, its answer was lost
                return self._hold(Ticket(self._storage, store, mkey, etag, mine, now))
            if not looked:
                found, looked = retrying(lambda: stored_outcome(self._storage, outputs, etag)), True
            if found is not None and (found.pending or settles(found, request_id, replay)):
                return Done(found)
            if held is not None and held.live(now):
                return Defer()
        raise StorageError("TooManyGenerations", "the version's marker chain is exhausted", 409, None)

    def _read_holder(self, bucket: str, mkey: str) -> Holder | None:
        try:
            return parse_holder(retrying(lambda: self._storage.read_all(bucket, mkey)).data)
        except StorageError as err:
            if err.not_found:  # expired by the lifecycle rule meanwhile: nothing protects the version
                return None
            raise
