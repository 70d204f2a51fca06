"""Ctrl-C in a local command that runs the function in its own process (``permit-ocr run``, ``invoke``).

An FC instance that dies keeps its claims until they expire (the function timeout), and the next delivery of
those versions is deferred (``ClaimHeld``) until then. A local process that is interrupted can do better: it
releases the claims its attempts hold, says so in one line and ends at once, so the next run starts over.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any, NoReturn

EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for a command stopped by Ctrl-C
PRESSED = threading.Event()  # Ctrl-C was pressed in this process (set before KeyboardInterrupt is raised)


def watch_ctrl_c() -> None:
    """Remember Ctrl-C before raising KeyboardInterrupt as Python does: a library may turn the interrupt into an
    error of its own (omegaconf, loading the engine's model routes, raises ConfigKeyError), and the command must
    still end as interrupted, in one line, releasing what it holds."""

    def pressed(signum: int, frame: Any) -> None:
        PRESSED.set()
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, pressed)


def release_claims() -> int:
    """Release the claims held by this process's attempts; how many (0 when it never ran the function)."""
    from permit_ocr import handler

    app = getattr(handler, "_app", None)  # the instance state, built by the first invocation of this process
    if app is None:
        return 0
    try:
        return int(app.release_held())
    except Exception:  # best effort: an unreleased claim still expires at the function timeout
        return 0


def released_words(count: int, next_run: str = "the next run") -> str:
    if not count:
        return "no image was being recognized"
    return (f"released the claim on {count} image version(s) being recognized, so {next_run} recognizes "
            f"{'it' if count == 1 else 'them'} at once")


def interrupted(command: str, *, before: Callable[[], None] | None = None, done: str = "",
                next_run: str = "the next run", code: int = EXIT_INTERRUPTED, what: str = "interrupted") -> NoReturn:
    """Release what this process holds, print one line on stderr and exit 130 without the interpreter's
    shutdown: worker threads may be inside the OCR engine's native code, whose teardown at exit aborts the
    process ('terminate called without an active exception')."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C while releasing must not print a traceback
    if before is not None:
        with contextlib.suppress(Exception):
            before()
    words = [what, done, released_words(release_claims(), next_run)]
    line = f"permit-ocr {command}: " + "; ".join(w for w in words if w)
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    print(line, file=sys.stderr, flush=True)
    os._exit(code)
