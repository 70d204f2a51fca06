"""FC entry points (s.yaml: handler index.handler, initializer index.initialize)."""

import gc

# Imports allocate many long-lived objects; collecting them mid-import only costs cold-start time (about 20 ms
# here, measured with bench/run.py). Freezing them afterwards keeps later collections from re-scanning them.
gc.disable()
try:
    from permit_ocr.handler import handler, initialize
finally:
    gc.freeze()
    gc.enable()

__all__ = ["handler", "initialize"]
