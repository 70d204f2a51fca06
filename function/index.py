"""FC entry points (s.yaml: handler index.handler, initializer index.initialize)."""

from permit_ocr.handler import handler, initialize

__all__ = ["handler", "initialize"]
