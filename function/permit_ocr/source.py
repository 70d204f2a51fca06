"""Steps 3-4: find the object, precheck its header, and hand OCR either a signed URL or the bytes.

The event key is tried as sent; only when OSS answers NoSuchKey and the key holds '%' or '+' are the decoded
forms tried (OSS trigger keys are raw as far as anyone has seen, but a decoded key costs one extra GET,
while guessing wrong loses the upload). What the event says (eTag, size, even the key's form) is a hint: this
read tells which object and version exist, and every later step uses what it found. A missing object is a
fact about the world, not a verdict on a version: ``NoSuchKey`` here becomes a skip, never a record.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import unquote, unquote_plus

from .config import Config
from .errors import PrecheckError, SourceError, StepError
from .events import ObjectRef
from .precheck import HEAD_BYTES, ImageInfo, NeedMoreBytes, check_limits, inspect
from .storage import Chunk, Storage, StorageError, retrying

__all__ = ["GONE", "SUPERSEDED", "Prepared", "SourceError", "key_candidates", "prepare", "read_pinned"]

MAX_URL_CHARS = 2048  # the OCR API's limit on the Url parameter
GONE, SUPERSEDED = "NoSuchKey", "Superseded"  # codes of a skip: no outcome is due for this event


@dataclass(frozen=True)
class Prepared:
    key: str  # the key that exists (the event's, or a decoded form of it)
    info: ImageInfo | None  # None when ``verdict`` is set
    size: int | None
    etag: str  # what OSS holds now: the version every later step is bound to
    url: str | None = None  # url mode
    body: bytes | None = None  # body mode
    uploaded_at: float | None = None  # the version's Last-Modified (epoch seconds)
    # the precheck's verdict on these bytes: recorded by the claim holder like any outcome, never paid for
    verdict: StepError | None = None
    # what convert.py did to the upload before OCR (the documents' ``input`` block); None: sent as stored
    input: dict[str, Any] | None = None


def key_candidates(key: str) -> list[str]:
    forms = [key]
    if "%" in key:
        forms.append(unquote(key))
    if "%" in key or "+" in key:
        forms.append(unquote_plus(key))
    return list(dict.fromkeys(forms))


def _read(storage: Storage, bucket: str, key: str, whole: bool) -> Chunk:
    if whole:
        return storage.read_all(bucket, key)
    try:
        return storage.read_range(bucket, key, HEAD_BYTES)
    except StorageError as err:
        if err.code != "InvalidRange":  # OSS answers 200 for a range on an empty object; a 416 means the same
            raise
        return storage.read_all(bucket, key)


def _first_read(storage: Storage, bucket: str, key: str, whole: bool) -> tuple[str, Chunk]:
    last: StorageError | None = None
    for candidate in key_candidates(key):
        try:
            return candidate, retrying(partial(_read, storage, bucket, candidate, whole))
        except StorageError as err:
            if not err.not_found:  # this form of the key exists and cannot be read: its record goes beside it
                refused = unreadable(err)
                refused.found = (candidate, "")
                raise refused from None
            last = err
    raise SourceError(GONE, "the object no longer exists (deleted after upload?)", False,
                      last.request_id if last else None)


def unreadable(err: StorageError) -> SourceError:
    """A read refused for a reason that is not the image's: a 403 (a policy, a KMS key, an Archive object), a
    missing bucket, a 5xx. Never a verdict on the version: transient ones are retried, the rest wait for the world
    to change (FC's retry, replay, backfill)."""
    return SourceError(err.code, f"reading the image failed: {err.message}", err.transient, err.request_id,
                       world=not err.transient, status=err.status)


def prepare(ref: ObjectRef, cfg: Config, storage: Storage) -> Prepared:
    whole = cfg.image_source == "body"
    key, chunk = _first_read(storage, ref.bucket, ref.key, whole)
    if ref.etag and chunk.etag and chunk.etag != ref.etag:
        raise SourceError(SUPERSEDED, "the object was overwritten after this event; its own event follows",
                          False)
    etag = chunk.etag or ref.etag
    if not etag:
        raise SourceError("NoETag", "OSS answered without an ETag; the version cannot be pinned", True)
    try:
        prepared = _check_and_hand_over(ref, cfg, storage, key, etag, chunk, whole)
    except StepError as err:
        if not err.final or err.code in (GONE, SUPERSEDED):  # not a verdict on these bytes
            raise err.about(key, etag) from None
        return Prepared(key, None, chunk.total_size, etag, uploaded_at=chunk.last_modified,
                        verdict=err.about(key, etag))
    return dataclasses.replace(prepared, uploaded_at=chunk.last_modified)


def _check_and_hand_over(ref: ObjectRef, cfg: Config, storage: Storage, key: str, etag: str, chunk: Chunk,
                         whole: bool) -> Prepared:
    if chunk.total_size == 0:
        raise PrecheckError("illegalImageContent", "object is empty")
    head = chunk.data
    while True:
        try:
            info = inspect(head, chunk.total_size)
            break
        except NeedMoreBytes as more:
            if whole or len(head) >= more.total:
                raise SourceError("unsupportedImageFormat", "image header is corrupt or too long", False) from None
            try:
                again = storage.read_range(ref.bucket, key, more.total)
            except StorageError as err:
                raise unreadable(err) from None
            if again.etag != chunk.etag:
                raise SourceError(SUPERSEDED, "the object was overwritten while it was read; its own event follows",
                                  False) from None
            if len(again.data) <= len(head):  # no progress: the header cannot be completed
                raise SourceError("unsupportedImageFormat", "image header is truncated or corrupt", False) from None
            head = again.data
    info = check_limits(info, chunk.total_size, cfg.max_image_bytes, cfg.convert_max_bytes)
    if info.convert:  # converted after the claim (convert.py), from the bytes of this version: no URL
        return Prepared(key, info, chunk.total_size, etag, body=chunk.data if whole else None)
    if whole:
        return Prepared(key, info, chunk.total_size, etag, body=chunk.data)
    url = storage.presign_get(ref.bucket, key, cfg.signed_url_expires)
    if len(url) > MAX_URL_CHARS:  # OCR refuses a longer Url (exceededImageUrlLength): send the bytes instead
        try:
            whole_chunk = storage.read_all(ref.bucket, key)
        except StorageError as err:
            raise unreadable(err) from None
        if whole_chunk.etag != etag:
            raise SourceError(SUPERSEDED, "the object was overwritten while it was read; its own event follows",
                              False)
        return Prepared(key, info, whole_chunk.total_size, etag, body=whole_chunk.data)
    return Prepared(key, info, chunk.total_size, etag, url=url)


def read_pinned(storage: Storage, bucket: str, prepared: Prepared) -> bytes:
    """The bytes of exactly the version ``prepared`` found (OCR could not fetch the signed URL)."""
    try:
        chunk = storage.read_all(bucket, prepared.key)
    except StorageError as err:
        if err.not_found:
            raise SourceError(GONE, "the object no longer exists", False, err.request_id) from None
        raise unreadable(err) from None
    if chunk.etag != prepared.etag:
        raise SourceError(SUPERSEDED, "the object was overwritten while OCR ran; its own event follows", False)
    return chunk.data
