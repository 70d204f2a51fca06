"""The time budget of one record: what s.yaml's timeout must cover."""

from __future__ import annotations

from typing import Final

from permit_ocr.config import Config
from permit_ocr.recognize import BASE_BACKOFF_S, MAX_BACKOFF_S

# Time budget of one record besides OCR: the OSS head/read, result PUT, error-record DELETE and MNS publish.
OSS_IO_BUDGET_S: Final = 10.0



def backoff_budget_s(attempts: int) -> float:
    """Longest total pause of permit_ocr.recognize between attempts (full jitter: at most the cap each time)."""
    return float(sum(min(MAX_BACKOFF_S, BASE_BACKOFF_S * 2**a) for a in range(1, attempts)))


def record_budget_s(cfg: Config) -> float:
    """Worst-case seconds for one record: every OCR attempt hits both timeouts, plus backoff and OSS I/O."""
    per_attempt = (cfg.ocr_connect_timeout_ms + cfg.ocr_read_timeout_ms) / 1000
    return cfg.ocr_max_attempts * per_attempt + backoff_budget_s(cfg.ocr_max_attempts) + OSS_IO_BUDGET_S
