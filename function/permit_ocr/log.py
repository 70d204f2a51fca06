"""JSON logs, one object per line, always with the FC request id.

Personal data never reaches a log line: callers pass only codes, counts and timings, object keys are replaced
by a short digest unless LOG_OBJECT_KEYS is on (keys often carry the holder's name), and ``scrub`` removes
anything that looks like a signed URL, a credential, a permit number or a date before a message is written.
"""

from __future__ import annotations

import hashlib
import logging
import re
import sys
import threading
import time
from typing import Any

import orjson

_state = threading.local()
_log_keys = False
_stream: Any = None  # None: stdout, which FC ships to the function's log store

# signed-URL query strings, credentials and permit-shaped tokens; applied to free-text messages
# signed-URL query strings, credentials and permit-shaped tokens. Lookarounds rather than \b, because \b does
# not separate CJK characters or '_' from digits ("号码H10387877", "scan_H10387877.jpg").
_SCRUB = [
    (re.compile(r"(?i)(https?://\S+?)\?\S*"), r"\1?<redacted>"),
    (re.compile(r"(?i)(signature|security-token|x-oss-[a-z-]+|accesskey[a-z]*|secret)=([^&\s]+)"),
     r"\1=<redacted>"),
    (re.compile(r"(?<![A-Za-z0-9])[HMhm]\d{8}(\d{2})?(?!\d)"), "<permit-no>"),
    (re.compile(r"(?<!\d)\d{8,}(?!\d)"), "<number>"),
    (re.compile(r"(?<!\d)\d{4}[.\-/年]\d{1,2}[.\-/月]\d{1,2}(?!\d)"), "<date>"),
]


_KEY_REF = re.compile(r"k:[0-9a-f]{16}(?![0-9a-f])")


def scrub(text: str) -> str:
    """Redact personal data and secrets; key digests (``k:`` + 16 hex) pass intact, wherever they stand,
    so every line stays matchable to its key."""
    refs = _KEY_REF.findall(text)
    if refs:
        text = _KEY_REF.sub("\ue000", text)
    for pattern, repl in _SCRUB:
        text = pattern.sub(repl, text)
    for ref in refs:
        text = text.replace("\ue000", ref, 1)
    return text


def key_ref(bucket: str, key: str) -> str:
    """What logs show for an object: the key itself only when allowed, else a stable digest."""
    if _log_keys:
        return f"{bucket}/{key}"
    return "k:" + hashlib.sha256(f"{bucket}/{key}".encode()).hexdigest()[:16]


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "requestId": getattr(_state, "request_id", None),
            "msg": scrub(record.getMessage()),
        }
        fields = getattr(record, "fields", None)
        if fields:  # structured values are scrubbed too, and never replace the envelope's own keys
            for k, v in fields.items():
                if k not in doc:
                    doc[k] = scrub(v) if isinstance(v, str) else v
        if record.exc_info and record.exc_info[0] is not None:
            doc["exception"] = record.exc_info[0].__name__
        return orjson.dumps(doc, default=str).decode()


class _Handler(logging.StreamHandler):
    """Writes to the current stdout (or the chosen stream) at each record: sys.stdout may be replaced later."""

    _permit_ocr = True

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = _stream or sys.stdout
        super().emit(record)


_logger = logging.getLogger("permit_ocr")


def configure(level: str, log_object_keys: bool) -> None:
    global _log_keys
    _log_keys = log_object_keys
    if not any(getattr(h, "_permit_ocr", False) for h in _logger.handlers):
        handler = _Handler()
        handler.setFormatter(_JsonFormatter())
        _logger.addHandler(handler)
        _logger.propagate = False  # FC's root handler would print every line twice
    _logger.setLevel(level)


def use_stream(stream: Any) -> None:
    """Send log lines to ``stream`` instead of stdout (the CLI keeps stdout for its own output)."""
    global _stream
    _stream = stream


def bind_request(request_id: str | None) -> None:
    _state.request_id = request_id


def current_request_id() -> str | None:
    return getattr(_state, "request_id", None)


def event(level: int, msg: str, **fields: Any) -> None:
    """Log ``msg`` with structured ``fields`` (codes, counts, key refs; never values read from a permit)."""
    _logger.log(level, msg, extra={"fields": fields})


def info(msg: str, **fields: Any) -> None:
    event(logging.INFO, msg, **fields)


def warning(msg: str, **fields: Any) -> None:
    event(logging.WARNING, msg, **fields)


def error(msg: str, **fields: Any) -> None:
    event(logging.ERROR, msg, **fields)
