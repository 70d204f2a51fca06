"""One Engine per test session (per xdist worker): loading the ONNX models takes about a second."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from permit_ocr_local.engine import Engine

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def sample(name: str) -> tuple[bytes, dict[str, Any]]:
    truth = json.loads((SAMPLES / f"{name}.truth.json").read_text("utf-8"))
    return (SAMPLES / f"{name}.jpg").read_bytes(), truth


@pytest.fixture(scope="session")
def engine() -> Engine:
    return Engine()
