"""What one record ended as: the handler's summary line and the pages of a PDF (pages.py) speak it alike."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Outcome:
    bucket: str
    key: str
    status: str  # result | error | retrying | duplicate | redelivered | skipped | rejected
    code: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"bucket": self.bucket, "key": self.key, "status": self.status, "code": self.code}
