"""Step 2: rules decided from the event alone, before any request is made (pure functions).

A guard either lets a record through, skips it (not ours to process: our own output, not an image) or rejects
it (another bucket: we may not touch it). Nothing here is a verdict on an image version: what the event says
about the object (its size, its eTag) is only a hint, checked against the object itself by ``source``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from .config import Config
from .events import ObjectRef
from .layout import MAX_KEY_BYTES, is_own_output

__all__ = ["MAX_KEY_BYTES", "Action", "Verdict", "check", "has_image_suffix", "is_own_output"]


class Action(Enum):
    SKIP = "skip"
    REJECT = "reject"


@dataclass(frozen=True)
class Verdict:
    action: Action
    code: str
    message: str


def has_image_suffix(key: str, cfg: Config) -> bool:
    return key.lower().endswith(cfg.image_suffixes)


def check(ref: ObjectRef, cfg: Config) -> Verdict | None:
    if ref.bucket not in cfg.source_buckets:
        return Verdict(Action.REJECT, "BucketNotAllowed",
                       "event for a bucket outside SOURCE_BUCKETS; nothing read or written")
    if is_own_output(ref.key, cfg):
        return Verdict(Action.SKIP, "OwnOutput", "object is a result or error record written by this function")
    if not has_image_suffix(ref.key, cfg):
        return Verdict(Action.SKIP, "NotAnImage", "key does not end in one of IMAGE_SUFFIXES")
    if len(ref.key.encode()) > MAX_KEY_BYTES:
        return Verdict(Action.REJECT, "InvalidObjectName", f"OSS keys are at most {MAX_KEY_BYTES} bytes")
    return None
