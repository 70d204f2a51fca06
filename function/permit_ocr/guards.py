"""Step 2: rules decided from the event alone, before any request is made (pure functions).

A guard either lets a record through, skips it (not ours to process: our own output, not an image), rejects it
(another bucket: we may not touch it) or fails it (an image we cannot send to OCR: an error record is due).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from .config import CLAIM_TAG_CHARS, Config
from .events import ObjectRef

MAX_KEY_BYTES = 1023  # OSS object keys are at most 1023 bytes of UTF-8


class Action(Enum):
    SKIP = "skip"
    REJECT = "reject"
    FAIL = "fail"


@dataclass(frozen=True)
class Verdict:
    action: Action
    code: str
    message: str


def is_own_output(key: str, cfg: Config) -> bool:
    """True for keys this function writes, so a result never triggers another recognition (no loop)."""
    if key.endswith((cfg.result_suffix, cfg.error_suffix)):
        return True
    return bool(cfg.output_prefix) and key.startswith(cfg.output_prefix)


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
    longest = max(len(k.encode()) for k in (cfg.error_key(ref.key), cfg.claim_key(ref.key, "0" * CLAIM_TAG_CHARS)))
    if longest > MAX_KEY_BYTES:  # compared in bytes: the longer key in characters may be the shorter in bytes
        return Verdict(Action.REJECT, "OutputKeyTooLong",
                       f"no output key fits OSS's {MAX_KEY_BYTES}-byte limit; shorten the key or OUTPUT_PREFIX")
    if ref.size is not None and ref.size > cfg.max_image_bytes:
        return Verdict(Action.FAIL, "exceededImageContent",
                       f"image is {ref.size} bytes; the OCR API accepts at most {cfg.max_image_bytes}")
    if ref.size == 0:
        return Verdict(Action.FAIL, "illegalImageContent", "object is empty")
    return None
