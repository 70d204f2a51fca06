"""The engine's one exception type; codes match the cloud API's error codes."""

from __future__ import annotations


class EngineError(Exception):
    """``code`` is ``unsupportedImageFormat`` or ``unmatchedImageType``, like the API's Code field."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
