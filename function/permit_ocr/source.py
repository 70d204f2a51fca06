"""Steps 3-4: find the object, precheck its header, and hand OCR either a signed URL or the bytes.

The event key is tried as sent; only when OSS answers NoSuchKey and the key holds '%' or '+' are the decoded
forms tried (OSS trigger keys are raw as far as anyone has seen, but a decoded key costs one extra GET,
while guessing wrong loses the upload).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, unquote_plus

from .config import Config
from .events import ObjectRef
from .precheck import HEAD_BYTES, ImageInfo, NeedMoreBytes, check_limits, inspect
from .storage import Chunk, Storage, StorageError

MAX_URL_CHARS = 2048  # the OCR API's limit on the Url parameter


class SourceError(Exception):
    def __init__(self, code: str, message: str, transient: bool, request_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.transient = transient
        self.request_id = request_id


@dataclass(frozen=True)
class Prepared:
    key: str  # the key that exists (the event's, or a decoded form of it)
    info: ImageInfo
    size: int | None
    etag: str | None  # what OSS holds now
    url: str | None = None  # url mode
    body: bytes | None = None  # body mode


def key_candidates(key: str) -> list[str]:
    forms = [key]
    if "%" in key:
        forms.append(unquote(key))
    if "%" in key or "+" in key:
        forms.append(unquote_plus(key))
    return list(dict.fromkeys(forms))


def _first_read(storage: Storage, bucket: str, key: str, whole: bool) -> tuple[str, Chunk]:
    last: StorageError | None = None
    for candidate in key_candidates(key):
        try:
            chunk = storage.read_all(bucket, candidate) if whole else storage.read_range(bucket, candidate, HEAD_BYTES)
            return candidate, chunk
        except StorageError as err:
            if not err.not_found:
                raise SourceError(err.code, f"reading the image failed: {err.message}", err.transient,
                                  err.request_id) from None
            last = err
    raise SourceError("NoSuchKey", "the object no longer exists (deleted after upload?)", False,
                      last.request_id if last else None)


def prepare(ref: ObjectRef, cfg: Config, storage: Storage) -> Prepared:
    whole = cfg.image_source == "body"
    key, chunk = _first_read(storage, ref.bucket, ref.key, whole)
    if ref.etag and chunk.etag and chunk.etag != ref.etag:
        raise SourceError("Superseded", "the object was overwritten after this event; its own event follows",
                          False)
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
                raise SourceError("Superseded", "the object was overwritten while it was read; its own event follows",
                                  False) from None
            if len(again.data) <= len(head):  # no progress: the header cannot be completed
                raise SourceError("unsupportedImageFormat", "image header is truncated or corrupt", False) from None
            head = again.data
    check_limits(info, chunk.total_size, cfg.max_image_bytes)
    if whole:
        return Prepared(key, info, chunk.total_size, chunk.etag, body=chunk.data)
    url = storage.presign_get(ref.bucket, key, cfg.signed_url_expires)
    if len(url) > MAX_URL_CHARS:  # OCR refuses a longer Url (exceededImageUrlLength): send the bytes instead
        try:
            whole_chunk = storage.read_all(ref.bucket, key)
        except StorageError as err:
            raise SourceError(err.code, err.message, err.transient, err.request_id) from None
        if ref.etag and whole_chunk.etag and whole_chunk.etag != ref.etag:
            raise SourceError("Superseded", "the object was overwritten after this event; its own event follows",
                              False)
        return Prepared(key, info, whole_chunk.total_size, whole_chunk.etag, body=whole_chunk.data)
    return Prepared(key, info, chunk.total_size, chunk.etag, url=url)
