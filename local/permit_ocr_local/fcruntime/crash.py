"""A crash between any two requests of an invocation, for the model-based test and the chaos run: the FC
instance dies at that point, so nothing after it runs and nothing is cleaned up (its claim stays behind)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from permit_ocr.handler import App


class Crash(BaseException):
    """The FC instance died at this point: nothing after it runs (BaseException: no handler catches it)."""


class CrashAt:
    """Counts the instance's I/O calls and dies before (or right after) the n-th one."""

    def __init__(self, n: int, after: bool) -> None:
        self.n, self.after, self.count = n, after, 0
        self.completed: list[str] = []  # the calls that returned, in order
        self.crashed = False
        self._lock = threading.Lock()

    @property
    def paid_then_died(self) -> bool:
        """Died after a paid OCR answer and before anything was stored: the one window in which a retry
        must pay again (nothing durable holds the answer yet; see docs/reliability.md "Exactly once")."""
        if not self.crashed or "recognize" not in self.completed:
            return False
        last = len(self.completed) - 1 - self.completed[::-1].index("recognize")
        return not {"put", "put_outcome"} & set(self.completed[last:])

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self.count += 1
                hit = self.count == self.n
            if hit and not self.after:
                self.crashed = True
                raise Crash
            out = fn(*args, **kwargs)
            with self._lock:
                self.completed.append(name)
            if hit and self.after:
                self.crashed = True
                raise Crash
            return out

        return wrapped

    def install(self, app: App) -> None:
        for name in ("read_range", "read_all", "head", "put", "put_outcome", "delete", "list_prefix"):
            setattr(app.storage, name, self.wrap(name, getattr(app.storage, name)))
        app.recognizer.recognize = self.wrap("recognize", app.recognizer.recognize)  # type: ignore[method-assign]
        if app.backend.engine is not None:  # the engine function's call (not paid): a crash may come around it too
            engine = app.backend.engine
            engine.recognize = self.wrap("engine", engine.recognize)  # type: ignore[method-assign]
        app.sinks._publish = self.wrap("publish", app.sinks._publish)  # type: ignore[method-assign]
