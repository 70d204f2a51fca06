"""FC entry points (s.yaml: handler index.handler, initializer index.initialize)."""

import gc
from typing import Any

# Before any SDK import: the package's pinned SDKs must win over the copies FC's runtime ships (vendored.py).
from permit_ocr import vendored

_FORGOTTEN = vendored.prefer()

# Imports allocate many long-lived objects; collecting them mid-import only costs cold-start time (about 20 ms
# here, measured with bench/run.py). Freezing them afterwards keeps later collections from re-scanning them.
gc.disable()
try:
    from permit_ocr import log
    from permit_ocr.handler import handler
    from permit_ocr.handler import initialize as _initialize
finally:
    gc.freeze()
    gc.enable()


def initialize(context: Any) -> None:
    """The handler's initializer, then proof (once per instance, in the log) of which SDK versions run."""
    _initialize(context)
    try:
        report = vendored.verify()
    except vendored.ForeignSdk as exc:
        log.error("vendored SDKs overridden", reason=str(exc))
        raise
    if report.packaged:
        log.info("vendored SDKs", versions=report.versions, replaced=_FORGOTTEN)


__all__ = ["handler", "initialize"]
