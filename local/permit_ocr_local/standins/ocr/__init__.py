"""Local stand-in for the OCR API (ocr-api 2021-07-07, RecognizeExitEntryPermitToMainland).

``start_ocr`` serves it; ``acs3`` verifies signatures, ``errors`` shapes error bodies, ``backends`` recognizes.
"""
