"""What travels between the main function and the engine function (docs/selfhosted.md), one spelling for both
sides: the main function's engine client encodes requests and decodes answers, the engine function's handler
the other way round.

The request is the image's bytes themselves behind one line of JSON options: no base64 (a 10 MB image stays
10 MB, well under FC's 32 MB synchronous payload) and no object key, URL or credential (the engine function reads
nothing and needs no role). The answer is JSON: the API's ``Data`` object, or an error in the API's codes.
Standard library only: the engine function ships no SDK.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

MAGIC: Final = b"permit-ocr-engine/1\n"  # the version of this format: an engine that does not know it says so
MAX_OPTIONS_BYTES: Final = 1024
PROTOCOL_ERROR: Final = "EngineProtocol"  # a request or answer this side cannot read: the two packages differ


class WireError(ValueError):
    """A request or answer that is not in this format (message: what is wrong, never the bytes)."""


@dataclass(frozen=True)
class Request:
    image: bytes
    output_figure: bool = False


@dataclass(frozen=True)
class Answer:
    """The engine's ``Data`` (the API's shape), or the code and message of its refusal; ``ms``: its own time."""

    data: dict[str, Any] | None
    code: str | None = None
    message: str = ""
    ms: int = 0


def encode_request(image: bytes, *, output_figure: bool = False) -> bytes:
    options = json.dumps({"outputFigure": output_figure}, separators=(",", ":")).encode()
    return MAGIC + options + b"\n" + image


def decode_request(event: bytes) -> Request:
    if not event.startswith(MAGIC):
        raise WireError("not a permit-ocr engine request (or another version of it)")
    end = event.find(b"\n", len(MAGIC), len(MAGIC) + MAX_OPTIONS_BYTES)
    if end < 0:
        raise WireError("the request's options line is missing or too long")
    try:
        options = json.loads(event[len(MAGIC):end])
    except ValueError:
        raise WireError("the request's options are not JSON") from None
    if not isinstance(options, dict) or not isinstance(options.get("outputFigure", False), bool):
        raise WireError("the request's options must be an object with a boolean outputFigure")
    return Request(event[end + 1:], bool(options.get("outputFigure", False)))


def encode_answer(data: dict[str, Any] | None = None, *, code: str | None = None, message: str = "",
                  ms: int = 0) -> bytes:
    doc: dict[str, Any] = {"v": 1, "ms": ms}
    doc.update({"error": {"code": code, "message": message}} if code else {"data": data})
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()


def decode_answer(raw: bytes) -> Answer:
    try:
        doc = json.loads(raw)
    except ValueError:
        raise WireError("the engine's answer is not JSON") from None
    if not isinstance(doc, dict) or doc.get("v") != 1:
        raise WireError("the engine's answer is not version 1 of this format")
    ms = doc["ms"] if isinstance(doc.get("ms"), int) else 0
    error = doc.get("error")
    if isinstance(error, dict) and isinstance(error.get("code"), str) and error["code"]:
        return Answer(None, error["code"], str(error.get("message") or "")[:300], ms)
    data = doc.get("data")
    if not isinstance(data, dict):
        raise WireError("the engine's answer holds neither data nor an error")
    return Answer(data, ms=ms)
