"""permit-ocr: OSS upload -> RecognizeExitEntryPermitToMainland -> result document (OSS and/or MNS).

The deployed path reads top to bottom, one module per step:
events -> guards -> precheck -> source -> recognize -> document -> sinks, driven by ``handler``.
"""

SCHEMA_VERSION = 1
OCR_ACTION = "RecognizeExitEntryPermitToMainland"
OCR_API_VERSION = "2021-07-07"
