"""Buckets and objects as plain files: ROOT/<bucket>/<key> holds the bytes, ROOT/.oss-meta/ the metadata.

A person browsing ROOT/<bucket>/ sees only images and results, and files dropped there by hand are objects too
(their ETag and CRC are computed on first use). Sidecars are named by a hash of the key, so any two keys that can
coexist as files ('a' and 'a.json/b') also have distinct sidecars.

Bucket versioning is kept as far as the function's claims depend on it: the status (never set, Enabled,
Suspended; in ROOT/.oss-meta/<bucket>/bucket.json), a new version id on each PUT while Enabled, and
``x-oss-forbid-overwrite`` ignored while Enabled or Suspended, as OSS documents. Only the current version of a
key is kept: older versions and delete markers are not (reads by versionId and ListObjectVersions are refused).

Storage classes are recorded per object; an Archive, Cold Archive or Deep Cold Archive object reads only after
``restore()``. SSE-KMS objects record their key; ``set_kms_key()`` disables a key, or forbids it to the
requester, as the world can (the KMS key states are kept in memory, per process).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import mimetypes
import os
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import BinaryIO, Final, Literal

from crcmod.crcmod import mkCrcFun  # crcmod-plus, an alibabacloud-oss-v2 dependency (oss2's crcmod 1.7 too)

from .errors import (
    FileAlreadyExists,
    InvalidBucketName,
    InvalidObjectName,
    KmsForbidden,
    KmsKeyDisabled,
    NoSuchBucket,
    NoSuchKey,
    OssError,
)
from .rules import FROZEN_CLASSES, exclusive_put

META_DIR = ".oss-meta"
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
# CRC-64/ECMA-182 as OSS reports it (x-oss-hash-crc64ecma, decimal): the parameters of alibabacloud_oss_v2.crc
crc64ecma: Callable[[bytes], int] = mkCrcFun(0x142F0E1EBA9EA3693, initCrc=0, rev=True,
                                            xorOut=0xFFFFFFFFFFFFFFFF)
Subscriber = Callable[[str, str, str, int, str, str], None]  # bucket, key, etag, size, event_name, request_id
log = logging.getLogger(__name__)
Versioning = Literal["", "Enabled", "Suspended"]  # "": never configured
KmsKeyState = Literal["Enabled", "Disabled", "Forbidden"]  # Forbidden: the requester may not use the key
DEFAULT_KMS_KEY_ID: Final = "local-default-cmk"  # the key of SSE-KMS objects written without a key id
RESTORED_S: Final = 24 * 3600  # a restored Archive object reads for a day, OSS's default


def new_version_id() -> str:
    """Opaque, URL-safe and unique, in the spirit of OSS's (e.g. CAEQNhiBgM0BYiIDc4MGZjZGI2OTBjOTRmNTE5...)."""
    return "CAEQ" + uuid.uuid4().hex + uuid.uuid4().hex[:8]


def etag_of(data: bytes) -> str:
    """OSS's ETag of an object written in one request: the upper-hex MD5 of its bytes, unquoted."""
    return hashlib.md5(data).hexdigest().upper()


@dataclass(frozen=True)
class ObjectMeta:
    key: str
    size: int
    etag: str  # upper-hex MD5, unquoted
    crc64: int
    content_type: str
    mtime_ns: int  # of the data file; a mismatch means the file was replaced by hand
    user_meta: dict[str, str] = field(default_factory=dict)  # x-oss-meta-* without the prefix
    sse: str | None = None
    tagging: str | None = None
    storage_class: str = "Standard"
    sse_key_id: str | None = None  # the KMS key of an SSE-KMS object
    version_id: str | None = None  # set while the bucket's versioning is Enabled
    restored_until: float | None = None  # epoch seconds: a frozen object reads until then

    @property
    def last_modified(self) -> float:
        return self.mtime_ns / 1e9

    def frozen(self, now: float) -> bool:
        """True when a read must be refused until the object is restored (Archive and colder classes)."""
        return self.storage_class in FROZEN_CLASSES and (self.restored_until is None or now >= self.restored_until)


@dataclass(frozen=True)
class Listing:
    objects: list[ObjectMeta]
    prefixes: list[str]
    truncated: bool
    last: str  # the last key or common prefix returned: where the next page starts


MAX_SEGMENT_BYTES: Final = 255  # a file name on Linux file systems


def check_bucket_name(bucket: str) -> None:
    if not _BUCKET_RE.match(bucket):
        raise InvalidBucketName(BucketName=bucket)


def check_key(key: str) -> None:
    """Refuse keys a plain file cannot hold, or that would escape the bucket folder. Real OSS takes any key up
    to 1023 bytes; the stand-in keeps one file per key (the local bucket layout users browse), so it refuses
    empty, dot and over-255-byte path segments with a clear 400 instead of failing in the file system."""
    parts = key.split("/")
    if (not key or len(key.encode()) > 1023 or "\0" in key or key.startswith("\\")
            or any(p in ("", ".", "..") or len(p.encode()) > MAX_SEGMENT_BYTES for p in parts)):
        raise InvalidObjectName(Key=key)


class OssState:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._meta_root = self.root / META_DIR
        self._tmp = self._meta_root / ".tmp"  # same filesystem as the data, so os.replace is atomic
        self._tmp.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._subscribers: list[Subscriber] = []
        self._kms: dict[str, KmsKeyState] = {}

    # -- buckets ------------------------------------------------------------------------------------------
    def create_bucket(self, bucket: str) -> None:
        check_bucket_name(bucket)
        (self.root / bucket).mkdir(parents=True, exist_ok=True)

    def bucket_exists(self, bucket: str) -> bool:
        return bool(_BUCKET_RE.match(bucket)) and (self.root / bucket).is_dir()

    def versioning(self, bucket: str) -> Versioning:
        self._bucket_dir(bucket)
        try:
            status = json.loads(self._bucket_meta(bucket).read_text("utf-8")).get("versioning", "")
        except (FileNotFoundError, ValueError):
            return ""
        return "Enabled" if status == "Enabled" else "Suspended" if status == "Suspended" else ""

    def set_versioning(self, bucket: str, status: Literal["Enabled", "Suspended"]) -> None:
        """PutBucketVersioning: once set, a bucket is never unversioned again (only Suspended)."""
        self._bucket_dir(bucket)
        path = self._bucket_meta(bucket)
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            self._atomic_write(path, json.dumps({"versioning": status}).encode())

    def _bucket_meta(self, bucket: str) -> Path:
        return self._meta_root / bucket / "bucket.json"  # sidecars are <sha256>.json: no clash

    # -- the world: KMS keys and restores -----------------------------------------------------------------
    def set_kms_key(self, key_id: str, state: KmsKeyState) -> None:
        """Disable a KMS key (or enable it again), or forbid it to the requester (a role that lost its KMS
        permission): reads and writes of SSE-KMS objects under that key then fail as OSS answers."""
        with self._lock:
            self._kms[key_id] = state

    def kms_refusal(self, key_id: str) -> OssError | None:
        """What OSS answers a read or write that needs this KMS key, or None when the key can be used."""
        state = self._kms.get(key_id, "Enabled")
        return KmsKeyDisabled() if state == "Disabled" else KmsForbidden() if state == "Forbidden" else None

    def restore(self, bucket: str, key: str, now: float, days: float = 1.0) -> ObjectMeta:
        """RestoreObject, done at once: a frozen object reads for ``days`` from ``now``."""
        with self._lock:
            meta = dataclasses.replace(self.head(bucket, key), restored_until=now + days * RESTORED_S)
            self._write_meta(bucket, meta)
            return meta

    def subscribe(self, callback: Subscriber) -> None:
        """``callback(bucket, key, etag, size, "ObjectCreated:PutObject", request_id)`` after each PutObject."""
        self._subscribers.append(callback)

    # -- objects ------------------------------------------------------------------------------------------
    def put(self, bucket: str, key: str, body: bytes, *, content_type: str | None = None,
            user_meta: dict[str, str] | None = None, sse: str | None = None, tagging: str | None = None,
            forbid_overwrite: bool = False, request_id: str = "", storage_class: str = "Standard",
            sse_key_id: str | None = None) -> ObjectMeta:
        path = self._data_path(bucket, key)
        if sse == "KMS":
            sse_key_id = sse_key_id or DEFAULT_KMS_KEY_ID
            refusal = self.kms_refusal(sse_key_id)
            if refusal is not None:
                raise refusal
        with self._lock:
            versioning = self.versioning(bucket)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                if path.is_dir():
                    raise IsADirectoryError(path)
                try:
                    self._atomic_write(path, body, exclusive=exclusive_put(forbid_overwrite, versioning))
                except FileExistsError:
                    raise FileAlreadyExists(Key=key) from None
            except (NotADirectoryError, IsADirectoryError, FileExistsError) as exc:
                raise InvalidObjectName(
                    "The stand-in stores objects as files; this key clashes with a folder or file.", Key=key
                ) from exc
            meta = ObjectMeta(key, len(body), etag_of(body), crc64ecma(body),
                              content_type or _guess_type(key), path.stat().st_mtime_ns, dict(user_meta or {}),
                              sse, tagging, storage_class, sse_key_id if sse == "KMS" else None,
                              new_version_id() if versioning == "Enabled" else None)
            self._write_meta(bucket, meta)
        for callback in list(self._subscribers):
            try:
                callback(bucket, key, meta.etag, meta.size, "ObjectCreated:PutObject", request_id)
            except Exception:  # an observer's bug must not turn a stored object into a failed PUT
                log.exception("OSS subscriber failed for %s/%s", bucket, key)
        return meta

    def head(self, bucket: str, key: str) -> ObjectMeta:
        path = self._data_path(bucket, key)
        with self._lock:
            try:
                st = path.stat()
            except (FileNotFoundError, NotADirectoryError):
                raise NoSuchKey(Key=key) from None
            if not path.is_file():
                raise NoSuchKey(Key=key)
            meta = self._read_meta(bucket, key)
            if meta is None or meta.mtime_ns != st.st_mtime_ns or meta.size != st.st_size:
                meta = self._refresh(bucket, key, path, meta)
            return meta

    def get(self, bucket: str, key: str) -> tuple[ObjectMeta, bytes]:
        """The object's metadata and bytes, of one and the same version."""
        with self.reading(bucket, key) as (meta, f):
            return meta, f.read()

    @contextlib.contextmanager
    def reading(self, bucket: str, key: str) -> Iterator[tuple[ObjectMeta, BinaryIO]]:
        """The object's metadata and its open data file, held still (no PUT or DELETE here) until the block
        ends: a caller can check the ETag, then read just the span it serves, of that same version."""
        with self._lock:
            meta = self.head(bucket, key)
            with self._data_path(bucket, key).open("rb") as f:
                yield meta, f

    def delete(self, bucket: str, key: str) -> None:
        """Idempotent like OSS: deleting a missing key succeeds."""
        path = self._data_path(bucket, key)
        with self._lock:
            with contextlib.suppress(FileNotFoundError, NotADirectoryError, IsADirectoryError):
                path.unlink()
            with contextlib.suppress(FileNotFoundError):
                self._meta_path(bucket, key).unlink()
            self._prune(path.parent, self.root / bucket)

    def list_v2(self, bucket: str, *, prefix: str = "", delimiter: str = "", max_keys: int = 100,
                after: str = "") -> Listing:
        """Keys in code-point order (= UTF-8 byte order, as OSS sorts). A common prefix counts as one entry,
        and a page that ended on one resumes past every key under it."""
        self._bucket_dir(bucket)
        objects: list[ObjectMeta] = []
        prefixes: list[str] = []
        last = ""
        with self._lock:
            for key in sorted(self._walk(bucket, prefix)):
                if not key.startswith(prefix) or key <= after or (after.endswith(delimiter or "\0")
                                                                   and key.startswith(after)):
                    continue
                cut = key.find(delimiter, len(prefix)) if delimiter else -1
                entry = key[: cut + len(delimiter)] if cut >= 0 else key
                if prefixes and entry == prefixes[-1]:
                    continue
                if len(objects) + len(prefixes) >= max_keys:
                    return Listing(objects, prefixes, True, last)
                if cut >= 0:
                    prefixes.append(entry)
                else:
                    try:
                        objects.append(self.head(bucket, key))
                    except NoSuchKey:  # removed by hand since the walk
                        continue
                last = entry
        return Listing(objects, prefixes, False, last)

    # -- files --------------------------------------------------------------------------------------------
    def _bucket_dir(self, bucket: str) -> Path:
        if not self.bucket_exists(bucket):
            raise NoSuchBucket(BucketName=bucket)
        return self.root / bucket

    def _data_path(self, bucket: str, key: str) -> Path:
        check_key(key)
        base = self._bucket_dir(bucket).resolve()
        path = base.joinpath(*key.split("/"))
        if not path.resolve().is_relative_to(base):  # a symlink placed by hand must not lead outside the root
            raise InvalidObjectName(Key=key)
        return path

    def _meta_path(self, bucket: str, key: str) -> Path:
        return self._meta_root / bucket / (hashlib.sha256(key.encode()).hexdigest() + ".json")

    def _walk(self, bucket: str, prefix: str = "") -> Iterator[str]:
        """Every key that can start with ``prefix``: the walk starts at the prefix's folder and enters only the
        subfolders that can hold such keys, so a listing costs what it returns, not the bucket's size."""
        base = self.root / bucket
        folder = prefix.rpartition("/")[0]
        start = base / folder if folder else base
        if not start.is_dir():
            return
        for dirpath, dirs, files in os.walk(start):
            rel = Path(dirpath).relative_to(base).as_posix()
            here = "" if rel == "." else f"{rel}/"
            dirs[:] = [d for d in dirs if f"{here}{d}/".startswith(prefix) or prefix.startswith(f"{here}{d}/")
                       or f"{here}{d}".startswith(prefix)]
            for name in files:
                yield f"{here}{name}"

    def _read_meta(self, bucket: str, key: str) -> ObjectMeta | None:
        try:
            raw = json.loads(self._meta_path(bucket, key).read_text("utf-8"))
            return ObjectMeta(**raw) if raw.get("key") == key else None
        except (FileNotFoundError, ValueError, TypeError):
            return None

    def _write_meta(self, bucket: str, meta: ObjectMeta) -> None:
        path = self._meta_path(bucket, meta.key)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._atomic_write(path, json.dumps(asdict(meta), ensure_ascii=False, indent=1).encode())

    def _refresh(self, bucket: str, key: str, path: Path, old: ObjectMeta | None) -> ObjectMeta:
        """Describe a file dropped or replaced by hand, keeping any metadata set by an earlier PUT."""
        data = path.read_bytes()
        if old is not None:  # a new file under an old PUT's description: its metadata, new bytes
            meta = dataclasses.replace(old, size=len(data), etag=etag_of(data), crc64=crc64ecma(data),
                                       mtime_ns=path.stat().st_mtime_ns, restored_until=None)
        else:
            meta = ObjectMeta(key, len(data), etag_of(data), crc64ecma(data), _guess_type(key),
                              path.stat().st_mtime_ns)
        self._write_meta(bucket, meta)
        return meta

    def _atomic_write(self, path: Path, data: bytes, *, exclusive: bool = False) -> None:
        """Write whole or not at all; ``exclusive`` (forbid-overwrite) links the new file in only where no file
        is, so of concurrent creators (threads, or processes sharing ROOT) exactly one wins."""
        tmp = self._tmp / uuid.uuid4().hex
        try:
            tmp.write_bytes(data)
            if exclusive:
                os.link(tmp, path)  # FileExistsError when the key exists
            else:
                os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    def _prune(self, folder: Path, stop: Path) -> None:
        """Remove folders emptied by a delete: in OSS a 'folder' exists only while keys sit under it."""
        while folder != stop and folder.is_relative_to(stop):
            try:
                folder.rmdir()
            except OSError:
                return
            folder = folder.parent


def _guess_type(key: str) -> str:
    return mimetypes.guess_type(key)[0] or "application/octet-stream"
