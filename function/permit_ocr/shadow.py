"""Shadow mode (SHADOW_RATE, with OCR_BACKEND=api): for that share of uploads the engine function reads the image
too, after the API's result is stored, and a comparison record says field by field whether the two agreed and
how sure each was, without a value. ``permit-ocr shadow-report`` sums the records up: the engine measured on the
user's own uploads before anyone trusts it with them.

A shadow never touches the real result: it starts only once every record of the invocation is settled (so a
slow engine never pushes a many-record event's later records past FC's deadline), only when the invocation still
has time for the engine's worst case, and whatever it meets (the engine down, a refusal, OSS refusing the record)
ends as one log line. Which uploads are compared is decided by the version (a hash of
bucket, key and ETag), so a redelivery decides the same way and a sample is reproducible.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import threading
import time
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from . import log
from .config import Config
from .document import review_data
from .engineclient import EngineClient
from .errors import OcrFailure, StepError
from .layout import JSON_TYPE, META_KIND, page_stem, shadow_key
from .normalize import FIELDS
from .recognize import Deadline, OcrResult
from .source import Prepared, read_pinned
from .storage import Storage, retrying

RECORD_VERSION = 1
KIND_SHADOW = "shadow"
# bytes of the images an invocation keeps for its shadows; past it a shadow reads its version again, or is
# skipped for a converted upload (its stored bytes are not what was read): a 128 MB main function must not hold
# a backfill event's or a long PDF's every image
KEEP_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class Pending:
    """A comparison waiting for the invocation's records to be settled."""

    bucket: str
    prepared: Prepared
    api: OcrResult
    doc: Mapping[str, Any]


def sampled(rate: float, bucket: str, key: str, etag: str) -> bool:
    """Whether this version is compared: the same answer for every delivery of it."""
    if rate <= 0:
        return False
    digest = hashlib.sha256(f"{bucket}/{key}/{etag}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate


def _same(a: str, b: str) -> bool:
    """Equal as printed: after Unicode NFKC (full-width digits, compatibility forms) and without white space."""
    def norm(s: str) -> str:
        return "".join(unicodedata.normalize("NFKC", s).split())

    return norm(a) == norm(b)


def _values(data: Mapping[str, Any]) -> dict[str, str]:
    fields = data.get("data")
    fields = fields if isinstance(fields, Mapping) else {}
    return {f: v if isinstance(v := fields.get(f), str) else "" for f in FIELDS}


def _probs(data: Mapping[str, Any]) -> dict[str, int | None]:
    probs: dict[str, int | None] = dict.fromkeys(FIELDS)
    for entry in data.get("prism_keyValueInfo") or ():
        if isinstance(entry, Mapping) and entry.get("key") in probs:
            p = entry.get("valueProb")
            probs[str(entry["key"])] = int(p) if isinstance(p, int | float) and not isinstance(p, bool) else None
    return probs


def compare(api: Mapping[str, Any], engine: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Per field: agreement and both valueProbs, and whether either side left it empty. No value."""
    av, ev, ap, ep = _values(api), _values(engine), _probs(api), _probs(engine)
    return {f: {"agree": _same(av[f], ev[f]), "apiProb": ap[f], "engineProb": ep[f],
                "apiEmpty": not av[f].strip(), "engineEmpty": not ev[f].strip()} for f in FIELDS}


def record(api: OcrResult, api_review: Mapping[str, Any], engine: OcrResult | None, failure: OcrFailure | None,
           cfg: Config, image: Mapping[str, Any], now: datetime.datetime) -> dict[str, Any]:
    """The comparison record of one version (its object name says which; nothing here does)."""
    doc: dict[str, Any] = {
        "v": RECORD_VERSION,
        "madeAt": now.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "reviewMinProb": cfg.review_min_prob,
        "image": dict(image),
        "kind": (api_review.get("normalized") or {}).get("kind"),
        "api": {"needsReview": bool(api_review.get("needsReview")),
                "reasons": list(api_review.get("reviewReasons") or []), "latencyMs": api.latency_ms},
    }
    if engine is None:
        assert failure is not None
        # the engine refused or failed on these bytes: a cascade would have asked the API; an engine that could
        # not answer (down, throttled, misdeployed) would have made the cascade retry: no escalation to tell
        doc["engine"] = {"code": failure.code, "needsReview": None, "reasons": [], "latencyMs": None}
        doc["wouldEscalate"] = True if getattr(failure, "about_image", False) else None
        return doc
    mine = review_data(engine.data, cfg.review_min_prob, now)
    fields = compare(api.data, engine.data)
    doc["engine"] = {"code": None, "needsReview": bool(mine["needsReview"]), "reasons": list(mine["reviewReasons"]),
                     "latencyMs": engine.latency_ms, "kind": (mine.get("normalized") or {}).get("kind")}
    doc["wouldEscalate"] = bool(mine["needsReview"])
    doc["fields"] = fields
    doc["agreed"] = sum(1 for f in fields.values() if f["agree"])
    doc["compared"] = len(fields)
    return doc


def subject(prepared: Prepared) -> str:
    """What a comparison is of: the upload, or one page of a PDF (each page its own record)."""
    page = (prepared.input or {}).get("page")
    return page_stem(prepared.key, page) if isinstance(page, int) else prepared.key


class Shadow:
    def __init__(self, cfg: Config, engine: EngineClient | None, storage: Storage) -> None:
        self._cfg = cfg
        self._engine = engine
        self._storage = storage

    def wanted(self, bucket: str, key: str, etag: str) -> bool:
        return self._engine is not None and self._cfg.ocr_backend == "api" and sampled(
            self._cfg.shadow_rate, bucket, key, etag)

    def queue(self, pending: list[Pending], lock: threading.Lock, bucket: str, prepared: Prepared, api: OcrResult,
              doc: Mapping[str, Any]) -> None:
        """Keep a sampled version's comparison for ``run_pending``, with its bytes while they fit KEEP_BYTES."""
        if not self.wanted(bucket, prepared.key, prepared.etag):
            return
        with lock:
            kept = sum(len(p.prepared.body or b"") for p in pending)
            if prepared.body is not None and kept + len(prepared.body) > KEEP_BYTES:
                if prepared.input is not None:  # converted (a HEIC, a PDF page): no stored bytes to read again
                    log.info("shadow skipped", keyRef=log.key_ref(bucket, subject(prepared)), code="ShadowNoRoom")
                    return
                prepared = dataclasses.replace(prepared, body=None)
            pending.append(Pending(bucket, prepared, api, doc))

    def run_pending(self, pending: list[Pending], deadline: float) -> None:
        """The queued comparisons, one after another, each only if the invocation still has time for it."""
        while pending:
            p = pending.pop(0)
            self.after(p.bucket, p.prepared, p.api, p.doc, deadline)

    def after(self, bucket: str, prepared: Prepared, api: OcrResult, doc: Mapping[str, Any], deadline: float) -> None:
        """For a sampled version whose API result ``doc`` is stored: ask the engine, write the comparison record,
        log one line. Never raises. ``deadline``: time.monotonic() by which the invocation must be done."""
        if not self.wanted(bucket, prepared.key, prepared.etag):
            return
        assert self._engine is not None
        ref = log.key_ref(bucket, subject(prepared))
        if deadline - time.monotonic() < self._engine.worst_call_s():
            log.info("shadow skipped", keyRef=ref, code="ShadowNoTime")
            return
        try:
            body = prepared.body if prepared.body is not None else read_pinned(self._storage, bucket, prepared)
            try:
                engine, failure = self._engine.recognize(body, Deadline(deadline)), None
            except OcrFailure as err:
                engine, failure = None, err
            now = datetime.datetime.now(datetime.UTC)
            rec = record(api, doc, engine, failure, self._cfg, doc.get("image") or {}, now)
            out = shadow_key(bucket, subject(prepared), prepared.etag, now.strftime("%Y-%m-%d"))
            retrying(lambda: self._storage.put(self._cfg.output_bucket_for(bucket), out, orjson.dumps(rec),
                                               JSON_TYPE, {META_KIND: KIND_SHADOW}))
        except StepError as err:  # reading the image or storing the record: the result stands as it is
            log.warning("shadow failed", keyRef=ref, code=err.code, stage=err.stage)
            return
        except Exception as exc:  # a bug here must not reach the handler: the result is already stored
            log.error("shadow failed", keyRef=ref, code=type(exc).__name__)
            return
        fields = rec.get("fields") or {}
        log.info("shadow compared", keyRef=ref, kind=rec["kind"], compared=rec.get("compared", 0),
                 agreed=rec.get("agreed", 0), disagreed=",".join(f for f, v in fields.items() if not v["agree"]),
                 engineReview=rec["engine"]["needsReview"], wouldEscalate=rec["wouldEscalate"],
                 engineMs=rec["engine"]["latencyMs"], code=rec["engine"]["code"])
