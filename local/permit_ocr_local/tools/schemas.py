"""Load the JSON Schemas in ``schema/`` and validate result/error documents against them.

Used by the tests and ``permit-ocr validate``. Error messages are built from the schema side (path, rule) and
never quote the offending value, so they are safe to print for documents holding personal data; pass
``show_values=True`` for jsonschema's own messages.
"""

from __future__ import annotations

import copy
import datetime
import functools
import json
from pathlib import Path
from typing import Any, Final

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError

SCHEMA_DIR: Final = Path(__file__).resolve().parents[3] / "schema"
SCHEMA_VERSION: Final = 1
KINDS: Final = ("result", "error", "receipt", "pages")


def schema_path(kind: str, version: int = SCHEMA_VERSION) -> Path:
    return SCHEMA_DIR / f"{kind}-v{version}.schema.json"


@functools.cache
def _load(kind: str) -> dict[str, Any]:
    if kind not in KINDS:
        raise ValueError(f"unknown document type {kind!r}; expected one of {', '.join(KINDS)}")
    with schema_path(kind).open(encoding="utf-8") as f:
        schema: dict[str, Any] = json.load(f)
    return schema


def load_schema(kind: str) -> dict[str, Any]:
    """The schema for ``kind`` ("result" or "error"), as a fresh dict the caller may modify."""
    return copy.deepcopy(_load(kind))


def _is_rfc3339(value: object) -> bool:
    # jsonschema only checks "date-time" with the optional rfc3339-validator; the stdlib does it well enough
    # for RFC 3339 once the pattern in the schema has pinned the shape (T separator, offset present).
    if not isinstance(value, str):
        return True
    try:
        datetime.datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return False
    return True


def _format_checker() -> FormatChecker:
    checker = copy.deepcopy(Draft202012Validator.FORMAT_CHECKER)
    checker.checks("date-time")(_is_rfc3339)
    return checker


@functools.cache
def validator(kind: str) -> Draft202012Validator:
    return Draft202012Validator(_load(kind), format_checker=_format_checker())


def _where(error: ValidationError) -> str:
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    return f"${path}"


def _redacted(error: ValidationError) -> str:
    """What rule failed, in words taken from the schema only (no instance values)."""
    rule, expected = error.validator, error.validator_value
    if rule in ("required", "additionalProperties", "dependentRequired"):
        what = error.message  # these name keys, not values
    elif rule == "type":
        what = f"expected type {expected}"
    elif rule == "const":
        what = f"expected {json.dumps(expected)}"
    elif rule == "enum":
        what = f"expected one of {json.dumps(expected, ensure_ascii=False)}"
    elif rule == "pattern":
        what = f"does not match {expected}"
    elif rule == "format":
        what = f"is not a valid {expected}"
    elif rule in ("oneOf", "anyOf") and error.context:
        # the deepest sub-error names what is wrong inside the branch that was meant (not "expected null")
        closest = max(error.context, key=lambda e: (len(e.absolute_path), e.validator != "type"))
        what = f"does not satisfy {rule}; closest: {_redacted(closest)}"
    elif rule in ("oneOf", "anyOf", "allOf", "if", "then", "else", "not"):
        what = f"does not satisfy {rule}"
    else:
        what = f"violates {rule}: {json.dumps(expected)}"
    return f"{_where(error)}: {what}"


def validate_document(doc: Any, *, show_values: bool = False) -> list[str]:
    """Schema errors of a result or error document (empty when valid); the schema is picked by doc["type"]."""
    if not isinstance(doc, dict):
        return ["$: document is not a JSON object"]
    kind = doc.get("type")
    if kind not in KINDS:
        return [f"$.type: expected one of {json.dumps(list(KINDS))}"]
    version = doc.get("schemaVersion")
    if version != SCHEMA_VERSION or isinstance(version, bool):
        return [f"$.schemaVersion: this tool knows version {SCHEMA_VERSION} only"]
    errors = sorted(validator(kind).iter_errors(doc), key=lambda e: (list(map(str, e.absolute_path)), e.message))
    return [f"{_where(e)}: {e.message}" if show_values else _redacted(e) for e in errors]
