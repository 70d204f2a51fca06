"""Step 6: the versioned documents this function writes: the result (the decoded ``Data`` untouched, plus
what we add beside it) and the error record. Their JSON Schemas are in schema/ at the repository root.
"""

from __future__ import annotations

import datetime
from typing import Any

import orjson

from . import OCR_ACTION, OCR_API_VERSION, SCHEMA_VERSION
from .config import Config
from .events import ObjectRef
from .normalize import review
from .recognize import OcrResult
from .source import Prepared

STAGES = ("event", "guard", "precheck", "source", "convert", "ocr", "sink", "fc")
CHINA_TZ = datetime.timezone(datetime.timedelta(hours=8))  # permits are dated in China time


def rfc3339(ts: datetime.datetime) -> str:
    return ts.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def source_block(ref: ObjectRef, prepared: Prepared | None = None) -> dict[str, Any]:
    src = ref.as_source()
    if prepared is not None:  # describe the object that was actually read
        src.update(key=prepared.key, etag=prepared.etag or ref.etag, size=prepared.size or ref.size)
    return src


def review_data(data: dict[str, Any], min_prob: int, now: datetime.datetime) -> dict[str, Any]:
    """normalize.review of a ``Data`` object: its normalized fields, checks and whether a person must look."""
    fields = data.get("data")
    prism = data.get("prism_keyValueInfo")
    return review(fields if isinstance(fields, dict) else {}, prism if isinstance(prism, list) else None,
                  today=now.astimezone(CHINA_TZ).date(), min_prob=min_prob)


def input_block(prepared: Prepared | None) -> dict[str, Any]:
    """``input``: what was uploaded and what convert.py did to it; only for converted uploads (the documents of
    images sent as stored are unchanged)."""
    return {"input": prepared.input} if prepared is not None and prepared.input is not None else {}


def pages_document(ref: ObjectRef, prepared: Prepared, pages: list[dict[str, Any]], *, function_request_id: str,
                   now: datetime.datetime) -> dict[str, Any]:
    """A PDF's own outcome: each page's outcome and where it is stored (pages.py); no field read from a card."""
    reviewed = [p["needsReview"] for p in pages if p["outcome"] == "result"]
    return {
        "schemaVersion": SCHEMA_VERSION,
        "type": "pages",
        "source": source_block(ref, prepared),
        "input": {"format": "pdf", "pages": len(pages)},
        "pages": pages,
        "results": len(reviewed),
        "needsReview": any(reviewed) or len(reviewed) < len(pages),
        "processedAt": rfc3339(now),
        "functionRequestId": function_request_id,
    }


def result_document(ref: ObjectRef, prepared: Prepared, ocr: OcrResult, cfg: Config, *,
                    function_request_id: str, now: datetime.datetime) -> dict[str, Any]:
    assert prepared.info is not None, "a result is made only for bytes the precheck passed"
    data = ocr.data
    checked = review_data(data, cfg.review_min_prob, now)
    return {
        "schemaVersion": SCHEMA_VERSION,
        "type": "result",
        "source": source_block(ref, prepared),
        **input_block(prepared),
        "image": {"format": prepared.info.format, "width": prepared.info.width, "height": prepared.info.height},
        "ocr": {"action": OCR_ACTION, "apiVersion": OCR_API_VERSION, "requestId": ocr.request_id,
                "imageSource": "url" if prepared.url else "body", "outputFigure": cfg.ocr_output_figure,
                "attempts": ocr.attempts, "latencyMs": ocr.latency_ms, "backend": ocr.backend,
                **({"cascade": ocr.cascade} if ocr.cascade is not None else {})},
        "processedAt": rfc3339(now),
        "functionRequestId": function_request_id,
        "data": data,
        **checked,
    }


def error_document(ref: ObjectRef, *, code: str, message: str, stage: str, transient: bool,
                   function_request_id: str, now: datetime.datetime, attempts: int = 0,
                   http_status: int | None = None, ocr_request_id: str | None = None,
                   prepared: Prepared | None = None) -> dict[str, Any]:
    assert stage in STAGES, stage
    return {
        "schemaVersion": SCHEMA_VERSION,
        "type": "error",
        "source": source_block(ref, prepared),
        **input_block(prepared),
        "error": {"code": code, "message": message, "stage": stage, "transient": transient,
                  "httpStatus": http_status, "ocrRequestId": ocr_request_id},
        "attempts": attempts,
        "failedAt": rfc3339(now),
        "functionRequestId": function_request_id,
    }


def encode(doc: dict[str, Any]) -> bytes:
    return orjson.dumps(doc, option=orjson.OPT_APPEND_NEWLINE)  # a text file: `cat` leaves the prompt on its line
