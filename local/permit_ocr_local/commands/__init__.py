"""One module per ``permit-ocr`` sub-command; each exposes ``register(subparsers)``."""
