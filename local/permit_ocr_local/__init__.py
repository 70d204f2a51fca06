"""Local tooling for permit-ocr (not deployed): stand-ins for OSS, the OCR API, MNS and the FC invoke API,
the embedded recognizer, the synthetic permit generator, and the ``permit-ocr`` command line."""
