"""Where this function writes, and the vocabulary of what it writes: output keys, bookkeeping keys,
``x-oss-meta-*`` names and record kinds. Every other module (and the local tools) takes them from here.

Outputs sit beside the image by default: ``<OUTPUT_PREFIX><key><RESULT_SUFFIX>`` (the result, or with
SINKS=mns alone a receipt) and ``<OUTPUT_PREFIX><key><ERROR_SUFFIX>`` (the error record). Bookkeeping lives
apart, under ``.permit-ocr/`` at the root of the output bucket, in digest-named objects whose keys have a fixed
length whatever the image key is:

- ``.permit-ocr/markers/<digest>/<ETAG>.<generation>``: the per-version claim marker. Created with
  forbid-overwrite, it proves that nobody processed this version before; it stays as the "done" record and is
  expired by the OSS lifecycle rule that ``permit-ocr check-config --print-lifecycle`` renders.
- ``.permit-ocr/overlong/<digest><ERROR_SUFFIX>``: the error record of an image whose own output keys would
  pass OSS's 1023-byte limit (kept: not under the lifecycle rule).
- ``.permit-ocr/reviews/<digest>/<RESULT ETAG>.<generation>``: a reviewer's claim on one version of a result document
  (``permit-ocr review``), created with forbid-overwrite so exactly one save of that version wins.
- ``.permit-ocr/shadow/<YYYY-MM-DD>/<digest>.<ETAG>.json``: shadow mode's comparison of the API's and the
  engine's answers for one version, field by field, without a value (``shadow.py``; kept, about 2 KB each).
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from typing import Final

from .config import Config

JSON_TYPE: Final = "application/json; charset=utf-8"
MAX_KEY_BYTES: Final = 1023  # OSS object keys are at most 1023 bytes of UTF-8

# x-oss-meta-* names on every object this function writes
META_ETAG: Final = "source-etag"  # the ETag of the image version the object describes
META_KIND: Final = "permit-ocr"  # one of the kinds below
META_PENDING: Final = "pending"  # "mns" while the topic has not accepted the message yet
META_REQUEST: Final = "request-id"  # the FC request that wrote the object

KIND_RESULT: Final = "result"
KIND_RECEIPT: Final = "receipt"  # SINKS=mns alone: proof of delivery at the result key, no personal data
KIND_ERROR: Final = "error"  # a final verdict on the version
KIND_ERROR_RETRYING: Final = "error-retrying"  # transient: the next delivery tries again
KIND_MARKER: Final = "marker"
KIND_PAGES: Final = "pages"  # a PDF's index of its pages' outcomes (pages.py): final, no personal data

BOOKKEEPING_PREFIX: Final = ".permit-ocr/"
MARKERS_PREFIX: Final = BOOKKEEPING_PREFIX + "markers/"
OVERLONG_PREFIX: Final = BOOKKEEPING_PREFIX + "overlong/"
REVIEWS_PREFIX: Final = BOOKKEEPING_PREFIX + "reviews/"  # permit-ocr review: one claim per reviewed document
# shadow mode's comparison records, one per compared version, by the day they were made (no personal data)
SHADOW_PREFIX: Final = BOOKKEEPING_PREFIX + "shadow/"
MARKER_RETENTION_DAYS: Final = 30  # lifecycle expiry of markers; far above FC's longest event age (7 days)


def etag_form(raw: str | None) -> str | None:
    """One spelling for ETags everywhere: no quotes, upper case; None when absent or empty."""
    if not raw:
        return None
    return raw.strip().strip('"').upper() or None


def key_digest(bucket: str, key: str) -> str:
    """A fixed-length name for an image: bookkeeping keys never depend on the image key's length or bytes."""
    return hashlib.sha256(f"{bucket}/{key}".encode()).hexdigest()[:40]


def marker_key(bucket: str, key: str, etag: str, generation: int) -> str:
    return f"{MARKERS_PREFIX}{key_digest(bucket, key)}/{etag}.{generation}"


def review_claim_key(bucket: str, result_key: str, result_etag: str, generation: int = 0) -> str:
    """The claim a reviewer creates (forbid-overwrite) before saving the result version it was shown; the next
    generation replaces a claim whose holder died before writing (one contender wins each generation)."""
    return f"{REVIEWS_PREFIX}{key_digest(bucket, result_key)}/{result_etag}.{generation}"


def shadow_key(bucket: str, key: str, etag: str, day: str) -> str:
    """``day`` is YYYY-MM-DD (UTC): `permit-ocr shadow-report --since` lists from a day on, without a scan."""
    return f"{SHADOW_PREFIX}{day}/{key_digest(bucket, key)}.{etag}.json"


@dataclass(frozen=True)
class Outputs:
    """Where the outcome of one image goes."""

    bucket: str
    result_key: str
    error_key: str
    overlong: bool  # the image key is too long for outputs beside it: only a digest-named error record
    listing_prefix: str  # one ListObjectsV2 on this prefix (in ``bucket``) shows both outputs ...
    lists_image: bool  # ... and, when True, the image itself (outputs beside it, in its own bucket)


def outputs_for(cfg: Config, bucket: str, key: str) -> Outputs:
    out_bucket = cfg.output_bucket_for(bucket)
    folder = cfg.output_prefix_for(bucket)
    result_key = f"{folder}{key}{cfg.result_suffix}"
    error_key = f"{folder}{key}{cfg.error_suffix}"
    if max(len(result_key.encode()), len(error_key.encode())) > MAX_KEY_BYTES:
        digest = key_digest(bucket, key)
        return Outputs(out_bucket, f"{OVERLONG_PREFIX}{digest}{cfg.result_suffix}",
                       f"{OVERLONG_PREFIX}{digest}{cfg.error_suffix}", True, f"{OVERLONG_PREFIX}{digest}", False)
    prefix = f"{folder}{key}"
    return Outputs(out_bucket, result_key, error_key, False, prefix, out_bucket == bucket and not folder)


PAGE_TAG: Final = ".page-"  # a PDF page's outputs and claims: <key>.page-<n> + the suffixes


def page_stem(key: str, page: int) -> str:
    """What page ``page`` (1-based) of the PDF at ``key`` is named by: its outputs (``<key>.page-<n>.json``,
    ``.error.json``) and its claim markers. No upload is read under this name (it ends in no image suffix;
    config refuses one that would), so a page's outputs never meet another image's."""
    return f"{key}{PAGE_TAG}{page}"


def page_outputs(cfg: Config, bucket: str, key: str, page: int) -> Outputs:
    """A PDF page's outputs beside the PDF. The PDF itself is not under the page's listing prefix, so the fence
    HEADs it (lists_image False)."""
    return dataclasses.replace(outputs_for(cfg, bucket, page_stem(key, page)), lists_image=False)


def is_own_output(key: str, cfg: Config) -> bool:
    """True for keys this function writes, so a result never triggers another recognition (no loop)."""
    if key.startswith(BOOKKEEPING_PREFIX) or key.endswith((cfg.result_suffix, cfg.error_suffix)):
        return True
    return bool(cfg.own_prefix) and key.startswith(cfg.own_prefix)
