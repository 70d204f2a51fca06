"""FC entry points of the engine function (s.selfhosted.yaml: handler index.handler, initializer
index.initialize)."""

from typing import Any

from permit_ocr_engine.handler import handler
from permit_ocr_engine.handler import initialize as _initialize


def initialize(context: Any) -> None:
    """Load the models once per instance (about 5 s), so no invocation waits for them."""
    _initialize(context)


__all__ = ["handler", "initialize"]
