"""deploy/sls-index.json indexes every field the functions (the main one and the engine function) put in their JSON
log lines, so the saved query in deploy/README.md (failures by code) and searches by status, request id or shadow
mode's agreement work on what is really logged."""

from __future__ import annotations

import ast
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ENVELOPE = {"time", "level", "requestId", "msg", "exception"}  # log._JsonFormatter's own keys
NESTED = {"counts", "versions", "replaced"}  # objects and lists: searchable through index_all, not typed


def logged_fields() -> set[str]:
    """Keyword names of every log.info/warning/error/event(...) call in the deployed code."""
    fields: set[str] = set()
    for path in [*(REPO / "function").rglob("*.py"), *(REPO / "engine-function").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "log"
                    and node.func.attr in ("info", "warning", "error", "event")):
                fields |= {k.arg for k in node.keywords if k.arg}
    return fields


def test_every_logged_field_is_indexed() -> None:
    index = json.loads((REPO / "deploy" / "sls-index.json").read_text(encoding="utf-8"))
    message = index["keys"]["message"]
    assert message["type"] == "json" and message["index_all"] is True
    indexed = set(message["json_keys"])
    fields = logged_fields()
    assert {"code", "status", "keyRef"} <= fields  # the scan finds the calls at all
    assert (fields | ENVELOPE) - NESTED <= indexed, sorted((fields | ENVELOPE) - NESTED - indexed)


def test_the_saved_query_groups_failures_by_an_indexed_code() -> None:
    readme = (REPO / "deploy" / "README.md").read_text(encoding="utf-8")
    assert 'SELECT "message.code" AS code, count(*)' in readme
    assert "code" in json.loads((REPO / "deploy" / "sls-index.json").read_text())["keys"]["message"]["json_keys"]
