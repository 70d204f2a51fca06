"""Steps 3-4: find the object, precheck its header, and hand OCR either a signed URL or the bytes.

The event key is tried as sent; only when OSS answers NoSuchKey and the key holds '%' or '+' are the decoded
forms tried (OSS trigger keys are raw as far as anyone has seen, but a decoded key costs one extra GET,
while guessing wrong loses the upload). What the event says (eTag, size, even the key's form) is a hint: this
read tells which object and version exist, and every later step uses what it found. A missing object is a
fact about the world, not a verdict on a version: ``NoSuchKey`` here becomes a skip, never a record.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from urllib.parse import unquote, unquote_plus

from .config import Config
from .errors import PrecheckError, SourceError
from .events import ObjectRef
from .precheck import HEAD_BYTES, ImageInfo, NeedMoreBytes, check_limits, inspect
from .storage import Chunk, Storage, StorageError, retrying

__all__ = ["GONE", "SUPERSEDED", "Prepared", "SourceError", "key_candidates", "prepare", "read_pinned"]

MAX_URL_CHARS = 2048  # the OCR API's limit on the Url parameter
GONE, SUPERSEDED = "NoSuchKey", "Superseded"  # codes of a skip: no outcome is due for this event


@dataclass(frozen=True)
class Prepared:
    key: str  # the key that exists (the event's, or a decoded form of it)
    info: ImageInfo
    size: int | None
    etag: str  # what OSS holds now: the version every later step is bound to
    url: str | None = None  # url mode
    body: bytes | None = None  # body mode


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
            if not err.not_found:
                raise SourceError(err.code, f"reading the image failed: {err.message}", err.transient,
                                  err.request_id) from None
            last = err
    raise SourceError(GONE, "the object no longer exists (deleted after upload?)", False,
                      last.request_id if last else None)


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
        return _check_and_hand_over(ref, cfg, storage, key, etag, chunk, whole)
    except PrecheckError as err:
        raise err.about(key, etag) from None


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
                raise SourceError(err.code, err.message, err.transient, err.request_id) from None
            if again.etag != chunk.etag:
                raise SourceError(SUPERSEDED, "the object was overwritten while it was read; its own event follows",
                                  False) from None
            if len(again.data) <= len(head):  # no progress: the header cannot be completed
                raise SourceError("unsupportedImageFormat", "image header is truncated or corrupt", False) from None
            head = again.data
    check_limits(info, chunk.total_size, cfg.max_image_bytes)
    if whole:
        return Prepared(key, info, chunk.total_size, etag, body=chunk.data)
    url = storage.presign_get(ref.bucket, key, cfg.signed_url_expires)
    if len(url) > MAX_URL_CHARS:  # OCR refuses a longer Url (exceededImageUrlLength): send the bytes instead
        try:
            whole_chunk = storage.read_all(ref.bucket, key)
        except StorageError as err:
            raise SourceError(err.code, err.message, err.transient, err.request_id) from None
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
        code = GONE if err.not_found else err.code
        raise SourceError(code, f"reading the image failed: {err.message}", err.transient, err.request_id) from None
    if chunk.etag != prepared.etag:
        raise SourceError(SUPERSEDED, "the object was overwritten while OCR ran; its own event follows", False)
    return chunk.data
