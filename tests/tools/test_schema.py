"""schema/*.schema.json and permit_ocr_local.tools.schemas: realistic documents pass, malformed ones are named."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from permit_ocr_local.tools.schemas import SCHEMA_DIR, load_schema, validate_document

ROOT = Path(__file__).resolve().parents[2]
DOCS = (ROOT / "docs" / "result-document.md", ROOT / "docs" / "result-document.zh-CN.md")


def doc_examples(path: Path) -> dict[str, dict[str, Any]]:
    """The complete example documents (```json blocks with a "type") of one docs page, by type."""
    blocks = re.findall(r"```json\n(.*?)```", path.read_text(encoding="utf-8"), re.S)
    docs = [json.loads(b) for b in blocks]
    return {d["type"]: d for d in docs if isinstance(d, dict) and "type" in d}


EXAMPLES = doc_examples(DOCS[0])


@pytest.fixture
def result() -> dict[str, Any]:
    return copy.deepcopy(EXAMPLES["result"])


@pytest.fixture
def error() -> dict[str, Any]:
    return copy.deepcopy(EXAMPLES["error"])


# --- the schema files themselves ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["result", "error", "pages"])
def test_schemas_are_valid_draft_2020_12_with_versioned_id(kind: str) -> None:
    schema = load_schema(kind)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == f"urn:permit-ocr:schema:{kind}-v1"
    assert schema["properties"]["schemaVersion"] == {"const": 1}
    assert schema["additionalProperties"] is False
    assert (SCHEMA_DIR / f"{kind}-v1.schema.json").is_file()


def test_source_definition_is_identical_in_both_files() -> None:
    assert load_schema("result")["$defs"]["source"] == load_schema("error")["$defs"]["source"]


def test_load_schema_returns_a_copy_and_rejects_unknown_kinds() -> None:
    load_schema("result")["properties"].clear()
    assert load_schema("result")["properties"]
    with pytest.raises(ValueError):
        load_schema("pointer")


def test_envelope_matches_the_documented_keys() -> None:
    assert load_schema("result")["required"] == [
        "schemaVersion", "type", "source", "image", "ocr", "processedAt", "functionRequestId",
        "data", "normalized", "checks", "needsReview", "reviewReasons",
    ]  # fmt: skip
    assert load_schema("error")["required"] == [
        "schemaVersion", "type", "source", "error", "attempts", "failedAt", "functionRequestId",
    ]  # fmt: skip


# --- realistic documents --------------------------------------------------------------------------------


@pytest.mark.parametrize("path", DOCS, ids=["en", "zh-CN"])
def test_doc_examples_are_valid(path: Path) -> None:
    examples = doc_examples(path)
    assert set(examples) == {"result", "error", "pages"}
    for doc in examples.values():
        assert validate_document(doc) == []


def test_both_languages_show_the_same_examples() -> None:
    assert doc_examples(DOCS[1]) == EXAMPLES


def test_variants_that_stay_valid(result: dict[str, Any], error: dict[str, Any]) -> None:
    result["image"] = None
    result["source"].update(etag=None, size=None, region=None, eventName=None, eventTime=None, ossRequestId=None)
    result["processedAt"] = "2018-01-01T02:03:04+00:00"
    result["data"]["extra"] = {"anything": [1, 2]}  # the API's object is open
    result["normalized"]["futureKey"] = "ok"  # additive changes stay version 1
    result["checks"][0]["futureKey"] = 1
    result["needsReview"], result["reviewReasons"] = True, ["confidence", "unparsed:sex"]
    assert validate_document(result) == []
    error["error"].update(httpStatus=None, ocrRequestId=None, stage="precheck", transient=True)
    error["attempts"] = 0
    error["failedAt"] = "2018-01-01T10:05:11+08:00"
    assert validate_document(error) == []


# --- malformed documents --------------------------------------------------------------------------------


def _set(doc: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for p in parents:
        doc = doc[p]
    if value is DELETE:
        del doc[last]
    else:
        doc[last] = value


DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("source.key", DELETE, "$.source: 'key' is a required property"),
        ("source.key", "", "$.source.key:"),
        ("source.size", -1, "$.source.size:"),
        ("source.extra", 1, "$.source: Additional properties"),
        ("extra", 1, "$: Additional properties are not allowed ('extra' was unexpected)"),
        ("image.format", "pdf", "$.image: does not satisfy oneOf"),
        ("ocr.attempts", 0, "$.ocr.attempts: violates minimum"),
        ("ocr.latencyMs", 1.5, "$.ocr.latencyMs: expected type integer"),
        ("ocr.imageSource", "base64", "$.ocr.imageSource: expected one of"),
        ("ocr.action", "RecognizeIdcard", "$.ocr.action: expected"),
        ("processedAt", "2018-01-01 02:03:04", "$.processedAt: does not match"),
        ("processedAt", "2018-01-01T02:03:04+08:00", "$.processedAt: does not match"),  # must be UTC
        ("processedAt", "2018-13-01T02:03:04Z", "$.processedAt: is not a valid date-time"),
        ("data", {"figure": []}, "$.data: 'data' is a required property"),
        ("data", "{}", "$.data: expected type object"),
        ("normalized.kind", "hongkong", "$.normalized.kind: expected one of"),
        ("normalized.birthDate", "2000.01.01", "$.normalized.birthDate: does not match"),
        ("normalized.validTo", "2019-02-30", "$.normalized.validTo: is not a valid date"),
        ("normalized.unparsed", DELETE, "$.normalized: 'unparsed' is a required property"),
        ("checks", [{"code": "x", "passed": "yes", "message": ""}], "$.checks[0].passed: expected type"),
        ("needsReview", True, "$.reviewReasons: violates minItems"),
        ("reviewReasons", ["confidence"], "$.reviewReasons: violates maxItems"),
    ],
)
def test_malformed_results_are_rejected(result: dict[str, Any], path: str, value: Any, expected: str) -> None:
    _set(result, path, value)
    errors = validate_document(result)
    assert any(e.startswith(expected) for e in errors), errors


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("source.key", DELETE, "$.source: 'key' is a required property"),
        ("error.stage", "recognize", "$.error.stage: expected one of"),
        ("error.transient", "no", "$.error.transient: expected type boolean"),
        ("error.httpStatus", "400", "$.error.httpStatus: expected type"),
        ("error.ocrRequestId", DELETE, "$.error: 'ocrRequestId' is a required property"),
        ("attempts", -1, "$.attempts: violates minimum"),
        ("failedAt", "yesterday", "$.failedAt: does not match"),
        ("normalized", {}, "$: Additional properties"),
    ],
)
def test_malformed_errors_are_rejected(error: dict[str, Any], path: str, value: Any, expected: str) -> None:
    _set(error, path, value)
    errors = validate_document(error)
    assert any(e.startswith(expected) for e in errors), errors


def test_wrong_type_and_version(result: dict[str, Any]) -> None:
    assert validate_document([]) == ["$: document is not a JSON object"]
    assert validate_document({**result, "type": "pointer"})[0].startswith("$.type:")
    assert validate_document({**result, "schemaVersion": 2})[0].startswith("$.schemaVersion:")
    assert validate_document({**result, "schemaVersion": True})[0].startswith("$.schemaVersion:")
    # a result validated as an error document fails on the result-only keys
    assert validate_document({**result, "type": "error"})


def test_errors_do_not_quote_values_unless_asked(result: dict[str, Any]) -> None:
    result["normalized"]["surname"] = 12345678
    result["normalized"]["birthDate"] = "1999/12/31"
    result["image"] = {"format": "H10387877"}
    redacted = validate_document(result)
    assert len(redacted) == 4  # surname type, birthDate pattern and format, image (closest: format enum)
    assert not [e for e in redacted if "12345678" in e or "1999/12/31" in e or "H10387877" in e]
    verbose = validate_document(result, show_values=True)
    assert any("12345678" in e for e in verbose)
