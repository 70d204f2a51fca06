"""The review page's I/O: the queue from a listing of result documents, one result with its image's state,
and the save (claim, write in place, publish) through the same OSS and MNS adapters the function uses.

Exactly one save per shown version: before writing, the saver creates ``layout.review_claim_key(...)`` for
the result ETag the page showed, with ``x-oss-forbid-overwrite`` (OSS documents no If-Match on PutObject);
the second reviewer of the same version gets ``FileAlreadyExists`` and a refusal.

A save is a second writer of the function's outcome, so it writes as the function does: it holds the image
version's claim in the function's ledger (a delivery of the function that is still publishing this result makes
the save wait: "busy"), and every write goes through the function's fence, which checks right before it that
the image is still the version the result describes and the result is still the one the reviewer was shown.

Nothing here logs a field value, a name or an object key.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from permit_ocr.config import Config
from permit_ocr.credentials import Credentials
from permit_ocr.document import encode
from permit_ocr.errors import SinkError, StorageError
from permit_ocr.fence import Fence, Fenced
from permit_ocr.layout import (
    BOOKKEEPING_PREFIX,
    JSON_TYPE,
    KIND_RESULT,
    META_ETAG,
    META_KIND,
    META_PENDING,
    META_REQUEST,
    etag_form,
    outputs_for,
    review_claim_key,
)
from permit_ocr.ledger import Ledger, Ticket
from permit_ocr.publish import MnsPublisher, PublishError, message_body
from permit_ocr.storage import Storage, retrying

from . import rules

TAG_REVIEWED: Final = "result-reviewed"  # MNS tags are at most 16 characters
KIND_REVIEW_CLAIM: Final = "review-claim"
CLAIM_ABANDONED_S: Final = 600  # a save writes within seconds of its claim; a claim this old lost its process
VERSION_CLAIM_S: Final = 60.0  # the image version's claim in the function's ledger, for the time a save takes
MAX_CLAIM_GENERATIONS: Final = 8
IMAGE_URL_SECONDS: Final = 120  # the page shows the image at once; a reload signs a new URL
LIST_PAGE: Final = 1000  # ListObjectsV2 maximum
READERS: Final = 8  # documents fetched at once when the queue is (re)built


class Refused(Exception):
    """A save that must not happen; ``reason`` is ``taken`` (another save won), ``changed`` (the result
    is not the one shown), ``stale`` (the image has a newer version), ``gone`` or ``busy`` (the function is
    delivering this result right now)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Item:
    """One result as the page shows it."""

    result_key: str
    result_etag: str
    doc: dict[str, Any]
    image_bucket: str
    image_key: str
    source_etag: str  # the image version the result was made from (x-oss-meta-source-etag)
    image_state: str  # current | stale (a newer version exists) | gone
    image_url: str | None  # short-lived signed URL, only for a current image


@dataclass(frozen=True)
class Saved:
    result_key: str
    result_etag: str | None
    changes: list[dict[str, str]]
    accepted: list[str]
    message_id: str | None = None
    publish_error: str | None = None  # the result is stored; its message is still owed


@dataclass
class _Cache:
    """Parsed queue entries by (key, ETag): a refresh reads only documents that changed since."""

    entries: dict[tuple[str, str], rules.QueueEntry | None] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


class ReviewStore:
    def __init__(self, cfg: Config, credentials: Callable[[], Credentials], bucket: str, prefix: str = "",
                 *, now: Callable[[], datetime.datetime] | None = None) -> None:
        self.cfg = cfg
        self.bucket = bucket  # the source bucket the results describe
        self.prefix = prefix
        self.out_bucket = cfg.output_bucket_for(bucket)
        self._credentials = credentials
        self._storage = Storage(cfg, credentials)
        self._fence = Fence(self._storage)
        self._now = now or (lambda: datetime.datetime.now(datetime.UTC))
        self._cache = _Cache()

    @property
    def publishes(self) -> bool:
        return "mns" in self.cfg.sinks

    # -- the queue ---------------------------------------------------------------------------------------

    def queue(self) -> list[rules.QueueEntry]:
        """Every result under the prefix that needs review, oldest first."""
        listed = dict(self._result_keys())
        with self._cache.lock:
            todo = [(k, e) for k, e in listed.items() if (k, e) not in self._cache.entries]
        with ThreadPoolExecutor(READERS) as pool:
            parsed = list(pool.map(lambda ke: (ke, self._entry(*ke)), todo))
        with self._cache.lock:
            self._cache.entries.update(parsed)
            self._cache.entries = {ke: v for ke, v in self._cache.entries.items() if listed.get(ke[0]) == ke[1]}
            found = [v for v in self._cache.entries.values() if v is not None]
        return rules.ordered(found)

    def _result_keys(self) -> Iterator[tuple[str, str]]:
        suffix, error_suffix = self.cfg.result_suffix, self.cfg.error_suffix
        after: str | None = None
        while True:  # the function's own listing, page by page (URL-encoded keys, its error mapping)
            page = retrying(functools.partial(self._storage.list_prefix, self.out_bucket,
                                              self.cfg.output_prefix_for(self.bucket) + self.prefix, LIST_PAGE,
                                              after))
            for key, etag in sorted(page.etags.items()):
                if key.endswith(suffix) and not key.endswith(error_suffix) and not key.startswith(BOOKKEEPING_PREFIX):
                    yield key, etag
            if not page.truncated or page.last_key is None:
                return
            after = page.last_key

    def _entry(self, key: str, etag: str) -> rules.QueueEntry | None:
        try:
            chunk = retrying(lambda: self._storage.read_all(self.out_bucket, key))
            doc = orjson.loads(chunk.data)
        except StorageError as err:
            if err.not_found:  # deleted since the listing
                return None
            raise
        except orjson.JSONDecodeError:
            return None  # not one of ours (a receipt is JSON too, but never needs review)
        return rules.queue_entry(key, chunk.etag or etag, doc) if isinstance(doc, dict) else None

    # -- one result --------------------------------------------------------------------------------------

    def load(self, result_key: str) -> Item | None:
        """The stored result and its image's state; None when the key holds no result document."""
        try:
            chunk = retrying(lambda: self._storage.read_all(self.out_bucket, result_key))
            head = retrying(lambda: self._storage.head(self.out_bucket, result_key))
        except StorageError as err:
            if err.not_found:
                return None
            raise
        try:
            doc = orjson.loads(chunk.data)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(doc, dict) or doc.get("type") != "result" or head is None:
            return None
        src: dict[str, Any] = doc["source"] if isinstance(doc.get("source"), dict) else {}
        image_bucket, image_key = str(src.get("bucket") or self.bucket), str(src.get("key") or "")
        source_etag = etag_form(head.metadata.get(META_ETAG)) or etag_form(src.get("etag")) or ""
        state = self._image_state(image_bucket, image_key, source_etag)
        url = (self._storage.presign_get(image_bucket, image_key, IMAGE_URL_SECONDS) if state == "current"
               else None)
        return Item(result_key, chunk.etag or "", doc, image_bucket, image_key, source_etag, state, url)

    def _image_state(self, bucket: str, key: str, source_etag: str) -> str:
        if not key:
            return "gone"
        head = retrying(lambda: self._storage.head(bucket, key))
        if head is None:
            return "gone"
        return "current" if head.etag == source_etag else "stale"

    # -- the save ----------------------------------------------------------------------------------------

    def save(self, result_key: str, shown_etag: str, reviewer: str, submitted: Mapping[str, str]) -> Saved:
        """Write the reviewed result in place, if it is still the version the reviewer was shown and its
        image has not changed; publish ``result-reviewed`` when the mns sink is on. Raises Refused or
        rules.BadInput; StorageError when OSS fails (nothing was changed then)."""
        corrected = rules.clean_fields(submitted)
        reviewer = rules.clean_reviewer(reviewer)
        item = self.load(result_key)
        if item is None:
            raise Refused("gone", "this result no longer exists")
        if item.result_etag != shown_etag or not rules.needs_review(item.doc):
            taken = rules.reviewed_by(item.doc)
            raise Refused("taken", taken) if taken else Refused("changed", _CHANGED)
        if item.image_state != "current":
            raise Refused("stale", _STALE)
        now = self._now()
        doc = rules.reviewed_document(item.doc, corrected, reviewer=reviewer, now=now,
                                      min_prob=self.cfg.review_min_prob)
        claim = self._claim(result_key, shown_etag, reviewer, now)
        try:
            ticket = self._version_claim(item)
        except (Refused, StorageError):
            self._release(claim)  # nothing was written: this reviewer (or another) may try again
            raise
        try:
            return self._write(item, doc, ticket, shown_etag, claim)
        finally:
            ticket.release()

    def _write(self, item: Item, doc: dict[str, Any], ticket: Ticket, shown_etag: str, claim: str) -> Saved:
        """Write the reviewed result in place (fenced: still the shown result of the current image), publish,
        settle (fenced again: a slow publish never lets this save overwrite a newer version's result)."""
        out = outputs_for(self.cfg, item.image_bucket, item.image_key)
        key, body = item.result_key, encode(doc)
        try:
            etag, _ = self._fence.put(ticket, item.image_bucket, item.image_key, out, key, body, JSON_TYPE,
                                      _meta(item.source_etag, pending=self.publishes), {key: shown_etag})
        except Fenced as refused:
            self._release(claim)
            raise _REFUSALS[refused.reason]() from None
        except SinkError as err:
            self._release(claim)
            raise StorageError(err.code, err.message, None if err.transient else 400, None) from None
        saved = Saved(key, etag, doc["review"]["changes"], doc["review"]["acceptedChecks"])
        if not self.publishes:
            return saved
        try:
            message_id = self._publish(doc, key)
        except PublishError as err:  # stored with x-oss-meta-pending: mns; the function's redelivery owes it
            return Saved(**{**saved.__dict__, "publish_error": str(err.code or "PublishFailed")})
        try:
            etag, _ = self._fence.put(ticket, item.image_bucket, item.image_key, out, key, body, JSON_TYPE,
                                      _meta(item.source_etag, pending=False), {key: etag})
        except (Fenced, SinkError):  # published; the stored result is somebody else's now, or left pending
            return Saved(**{**saved.__dict__, "message_id": message_id})
        return Saved(**{**saved.__dict__, "result_etag": etag, "message_id": message_id})

    def _version_claim(self, item: Item) -> Ticket:
        """The image version's claim in the function's ledger, for the time a save takes."""
        out = outputs_for(self.cfg, item.image_bucket, item.image_key)
        clock = lambda: self._now().timestamp()  # noqa: E731 - the page's clock, as its own claims use
        claim = Ledger(self._storage, clock).begin(
            out, item.image_bucket, item.image_key, item.source_etag, f"review-{uuid.uuid4().hex}",
            expires_at=clock() + VERSION_CLAIM_S, fresh=False, rewrite=True)
        if not isinstance(claim, Ticket):  # held: the function is delivering this result, or the image moved on
            if self._image_state(item.image_bucket, item.image_key, item.source_etag) != "current":
                raise Refused("stale", _STALE)
            raise Refused("busy", _BUSY)
        return claim

    def _claim(self, result_key: str, shown_etag: str, reviewer: str, now: datetime.datetime) -> str:
        """Create the claim on the shown version; a claim older than CLAIM_ABANDONED_S whose holder never wrote
        (the result is still the shown version, checked by the caller) died with its process: the next
        generation takes over, created the same way, so one contender wins it."""
        body = orjson.dumps({"reviewer": reviewer, "claimedAt": now.isoformat()})
        for generation in range(MAX_CLAIM_GENERATIONS):
            claim = review_claim_key(self.bucket, result_key, shown_etag, generation)
            try:
                retrying(functools.partial(self._storage.put, self.out_bucket, claim, body, JSON_TYPE,
                                           {META_KIND: KIND_REVIEW_CLAIM}, forbid_overwrite=True))
                return claim
            except StorageError as err:
                if not err.already_exists:
                    raise
            if not self._abandoned(claim, now):
                break
        raise Refused("taken", _TAKEN)

    def _abandoned(self, claim: str, now: datetime.datetime) -> bool:
        try:
            held = orjson.loads(retrying(lambda: self._storage.read_all(self.out_bucket, claim)).data)
            since = datetime.datetime.fromisoformat(held["claimedAt"])
        except StorageError as err:
            return err.not_found  # expired or released since: the next generation is free
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return True  # not a claim this tool wrote
        return (now - since).total_seconds() > CLAIM_ABANDONED_S

    def _release(self, claim: str) -> None:
        with contextlib.suppress(StorageError):  # a claim left behind only blocks a save that never happened
            self._storage.delete(self.out_bucket, claim)

    def _publish(self, doc: dict[str, Any], key: str) -> str:
        c = self._credentials()
        publisher = MnsPublisher(self.cfg.mns_endpoint, self.cfg.mns_topic, c.access_key_id, c.access_key_secret,
                                 c.security_token)
        text = message_body(doc, {"bucket": self.out_bucket, "key": key})
        return publisher.publish(text, TAG_REVIEWED).message_id


def _meta(source_etag: str, *, pending: bool) -> dict[str, str]:
    return {META_ETAG: source_etag, META_KIND: KIND_RESULT, META_PENDING: "mns" if pending else "", META_REQUEST: ""}


_TAKEN = "another reviewer saved this result first: your changes were not saved; the queue has moved on"
_CHANGED = "this result changed since you opened it (saved by someone else, or rewritten): nothing was saved"
_STALE = ("the image was replaced by a newer version after this result was made: the function will produce a "
          "new result for it, so this one cannot be reviewed")
_BUSY = ("the function is delivering this result right now (its message is being published): nothing was saved; "
         "save again in a minute")
_REFUSALS: Final = {
    "superseded": lambda: Refused("stale", _STALE),
    "gone": lambda: Refused("stale", _STALE),
    "changed": lambda: Refused("changed", _CHANGED),
    "expired": lambda: Refused("busy", _BUSY),
}
