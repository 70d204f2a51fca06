"""Fixtures the end-to-end modules share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from permit_ocr_local.fcruntime.stack import LocalStack, StackOptions


@pytest.fixture(scope="module")
def engine_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The stand-ins with the embedded engine as the OCR API (it reads what the function converts), one per
    module."""
    with LocalStack(StackOptions(root=tmp_path_factory.mktemp("root"), ocr_backend="engine")) as s:
        yield s
