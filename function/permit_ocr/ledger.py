"""Who may write the outcome of one image version (bucket + key actually found + ETag), and whether it has one.

**The stored outcome is the done record**: a result, receipt or final error record beside the image whose
``x-oss-meta-source-etag`` is the version's ETag. **Markers are only locks**: each version has a chain of them,
``.permit-ocr/markers/<digest>/<ETAG>.<n>`` (see layout), created with ``x-oss-forbid-overwrite`` so that of any
number of contenders exactly one holds generation ``n``. Losing a marker (the lifecycle rule, a hand delete)
never makes a version look new: see ``begin``.

A claim names its holder (a token drawn per attempt, never the request id) and its expiry, the holder's FC
deadline. The holder writes outcomes only while its claim has time left (``fence`` checks it before every
write); it must not start a paid call that could outlive the claim (``recognize`` checks it). A contender:
- finds the version's final outcome stored -> ``Done`` (nothing to pay, nothing to write);
- finds a live holder -> ``Defer``: paying now could pay twice, and answering "done" could lose the upload,
  because the holder may still end without an outcome (it finds the object deleted just before this same-bytes
  upload, say); the invocation raises and FC's retry comes back;
- finds the holder released (it failed, or saw the version superseded) or expired (it died) -> takes over by
  creating generation ``n + 1`` the same way. A taker-over must look at the image again before it pays
  (``Ticket.takeover``): the holder may have let go because the version was superseded, and a delivery that read
  the object before that overwrite must not pay for it.
A stored outcome whose MNS message is still owed (``pending``) is re-published only by a claim holder, so two
redeliveries never publish twice and a reviewer's save is never overwritten by a re-publish.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson

from .errors import StorageError
from .layout import JSON_TYPE, KIND_ERROR, KIND_MARKER, META_ETAG, META_KIND, Outputs, marker_key
from .sinks import StoredOutcome, stored_outcome
from .storage import Storage, retrying

MAX_GENERATIONS = 64  # takeovers of one version; each needs a dead or failed holder, so this is never reached
RUNNING, RELEASED, SUPERSEDED = "running", "released", "superseded"
CLOCK_SKEW_S = 2.0  # a holder on another instance may read its clock this much later than ours (NTP-synced)
EXTEND_MIN_S = 3.0  # a claim is extended only while this much of it is left (a PUT's time, with room to spare)
# A first delivery comes seconds after its upload. A version older than this may have had its marker expired by
# the lifecycle rule or deleted by hand, so gen 0 is created only after a look for a stored outcome (one HEAD or
# two, off the happy path). The residual window is a hand delete of a marker within this long of its upload.
FRESH_VERSION_S = 600.0


@dataclass(frozen=True)
class Holder:
    token: str
    request_id: str
    expires_at: float  # wall clock (epoch seconds)
    state: str

    def live(self, now: float) -> bool:
        return self.state == RUNNING and self.expires_at + CLOCK_SKEW_S > now


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
    """A live attempt holds the version and no final outcome is stored: come back later (FC's retry)."""

    holder: Holder | None = None


@dataclass(frozen=True)
class Done:
    outcome: StoredOutcome  # final and delivered: nothing to pay, nothing to write


@dataclass
class Ticket:
    """The right to write this version's outcome (and to pay for it when none is stored), until ``expires_at``.
    ``release`` when the attempt ends without a final outcome, so the next delivery may take over at once."""

    storage: Storage
    bucket: str  # where the marker lives
    key: str  # the marker
    etag: str
    holder: Holder
    claimed_at: float
    clock: Callable[[], float]
    takeover: bool = False  # an earlier holder let go or died: look at the image again before paying
    owed: StoredOutcome | None = None  # stored, its MNS message still owed: re-publish it, do not pay
    released: bool = field(default=False)

    def time_left(self) -> float:
        """Seconds this claim still holds, by our own clock (contenders allow CLOCK_SKEW_S more)."""
        return 0.0 if self.released else self.holder.expires_at - self.clock()

    def extend(self, expires_at: float) -> bool:
        """Hold the claim until ``expires_at`` (a retry needs longer than the claim was taken for). Only while it
        is still ours by a margin: nobody may have taken it over. False when it could not be extended."""
        if self.released or self.time_left() < EXTEND_MIN_S or expires_at <= self.holder.expires_at:
            return not self.released and expires_at <= self.holder.expires_at
        longer = Holder(self.holder.token, self.holder.request_id, expires_at, RUNNING)
        try:
            write_marker(self.storage, self.bucket, self.key, self.etag, longer, self.claimed_at, overwrite=True)
        except StorageError:
            return False
        self.holder = longer
        return True

    def release(self, state: str = RELEASED) -> None:
        if self.released:
            return
        self.released = True
        gone = Holder(self.holder.token, self.holder.request_id, self.holder.expires_at, state)
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
    """Whether a stored outcome ends the work for a delivery: final and delivered. A transient record never
    does, nor one whose message is owed; a final error record does unless an operator's replay asks again (a
    replay settles only what its own request wrote, so FC retrying the replay event never pays twice)."""
    if found is None or not found.final or found.pending:
        return False
    return not (replay and found.kind == KIND_ERROR and found.request_id != request_id)


def _finished(holder: Holder, found: StoredOutcome | None) -> bool:
    """The holder's request stored the final outcome and settled it: that attempt has no write left to make."""
    return found is not None and found.final and not found.pending and found.request_id == holder.request_id


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

    @property
    def clock(self) -> Callable[[], float]:
        return self._clock

    def begin(self, outputs: Outputs, bucket: str, key: str, etag: str, request_id: str, *, expires_at: float,
              fresh: bool, replay: bool = False, rewrite: bool = False) -> Claim:
        """Claim the version for this attempt until ``expires_at`` (wall clock), or say why not. ``fresh``: the
        version was uploaded within FRESH_VERSION_S, so a missing gen 0 proves it was never taken. ``rewrite``: a
        second writer (the review page's save, a tidy-up beside the outcome) claims a version whose outcome is
        stored. A live holder whose own request stored the final outcome, settled, writes nothing more, so neither
        a second writer nor an operator's replay waits for its claim to run out.
        StorageError propagates ("cannot tell" is not "absent")."""
        now = self._clock()
        mine = Holder(secrets.token_hex(8), request_id, expires_at, RUNNING)
        store = outputs.bucket
        found: StoredOutcome | None = None
        looked = False
        if not fresh:  # the marker may be gone while the outcome stays: the outcome is the done record
            found, looked = self._stored(outputs, etag), True
            if settles(found, request_id, replay) and not rewrite:
                assert found is not None
                return Done(found)
        for generation in range(MAX_GENERATIONS):
            mkey = marker_key(bucket, key, etag, generation)
            if write_marker(self._storage, store, mkey, etag, mine, now, overwrite=False):
                return self._ticket(store, mkey, etag, mine, now, generation > 0 or looked, found)
            held = self._read_holder(store, mkey)
            if held is not None and held.token == mine.token:  # ours: the PUT landed, its answer was lost
                return self._ticket(store, mkey, etag, mine, now, generation > 0 or looked, found)
            if not looked:
                found, looked = self._stored(outputs, etag), True
            if settles(found, request_id, replay) and not rewrite:
                assert found is not None
                return Done(found)
            if held is not None and held.live(now) and not ((rewrite or replay) and _finished(held, found)):
                return Defer(held)
        raise StorageError("TooManyGenerations", "the version's marker chain is exhausted", 409, None)

    def _ticket(self, store: str, mkey: str, etag: str, mine: Holder, now: float, takeover: bool,
                found: StoredOutcome | None) -> Ticket:
        owed = found if found is not None and found.final and found.pending else None
        return self._hold(Ticket(self._storage, store, mkey, etag, mine, now, self._clock, takeover=takeover,
                                 owed=owed))

    def _stored(self, outputs: Outputs, etag: str) -> StoredOutcome | None:
        return retrying(lambda: stored_outcome(self._storage, outputs, etag))

    def _read_holder(self, bucket: str, mkey: str) -> Holder | None:
        try:
            return parse_holder(retrying(lambda: self._storage.read_all(bucket, mkey)).data)
        except StorageError as err:
            if err.not_found:  # expired by the lifecycle rule meanwhile: nothing protects the version
                return None
            raise
