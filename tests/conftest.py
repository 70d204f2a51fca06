"""Shared fixtures: a running local stack (real HTTP stand-ins), the function's environment pointing at it,
and an App built from that environment. Helpers live in support.py."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from permit_ocr.config import load_config
from permit_ocr.handler import App
from permit_ocr_local.fcruntime.stack import LocalStack, StackOptions
from permit_ocr_local.tools.schemas import validate_document
from support import Bucket


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[LocalStack]:
    with LocalStack(StackOptions(root=tmp_path / "root")) as s:
        yield s
    assert_written_documents_are_valid(tmp_path / "root")


def assert_written_documents_are_valid(root: Path) -> None:
    """Every result and error record a test made the pipeline write must match the published JSON Schema."""
    for path in root.glob("*/**/*.json"):
        if path.name.endswith(".claim.json") or ".oss-meta" in path.parts or ".mns" in path.parts:
            continue
        try:
            doc = json.loads(path.read_bytes())
        except ValueError:
            continue  # a test's own non-JSON object that happens to end in .json
        if isinstance(doc, dict) and doc.get("type") in ("result", "error", "receipt", "pages"):
            problems = validate_document(doc)
            assert not problems, f"{path.relative_to(root)}: {problems}"


@pytest.fixture
def env(stack: LocalStack) -> dict[str, str]:
    return dict(stack.env())


@pytest.fixture
def make_app(env: dict[str, str]) -> Callable[..., App]:
    def build(**overrides: str) -> App:
        e = {**env, **overrides}
        return App(load_config(e), environ=e)

    return build


@pytest.fixture
def bucket(stack: LocalStack) -> Bucket:
    return Bucket(stack)
