"""Failure logs: JSON lines of FC onFailure payloads (or MNS messages carrying one), and error records."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator


def error_code(raw: bytes) -> str | None:
    try:
        return str(json.loads(raw)["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return None


def log_cursor(line: int, record: int) -> str:
    """Sortable position of one record in the failure log (line, index in its event)."""
    return f"{line:09d}:{record:04d}"


def failure_log_events(lines: Iterable[str]) -> Iterator[tuple[int, bytes | None]]:
    """(line number, original event) per line. A line is an onFailure payload (``requestPayload`` holds the
    event) or a published MNS message whose ``body`` is one; anything else yields None."""
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
            payload = doc if "requestPayload" in doc else json.loads(doc["body"])
            event = payload["requestPayload"]
        except (ValueError, KeyError, TypeError):
            yield n, None
            continue
        yield n, (event if isinstance(event, str) else json.dumps(event)).encode()


