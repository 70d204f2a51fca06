"""One family for every step's failure, so the handler has one failure path: a code (the API's vocabulary
where one exists), a message without personal data, whether another try may succeed, and the step it came from.
"""

from __future__ import annotations

from typing import Final

STAGES: Final = ("event", "guard", "precheck", "source", "convert", "ocr", "sink", "fc")


class StepError(Exception):
    stage: str = "fc"

    def __init__(self, code: str, message: str, *, transient: bool, stage: str | None = None,
                 status: int | None = None, request_id: str | None = None, attempts: int = 0,
                 world: bool = False) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.transient = transient
        # a fact about the world (a permission, a key, a storage class, a setting), not a verdict on the image:
        # never final, never replaces a stored outcome, and not worth retrying within this invocation
        self.world = world and not transient
        if stage is not None:
            assert stage in STAGES, stage
            self.stage = stage
        self.status = status  # the service's HTTP status, when one answered
        self.request_id = request_id  # the service's request id, for support tickets
        self.attempts = attempts
        self.found: tuple[str, str] | None = None  # (key, etag) of the object read, once a step found it

    @property
    def final(self) -> bool:
        """A verdict on the image version: its record ends the work for that version."""
        return not (self.transient or self.world)

    def about(self, key: str, etag: str) -> StepError:
        """Bind the failure to the image version it is about, so its record is written for that version."""
        self.found = (key, etag)
        return self


class PrecheckError(StepError):
    """The image breaks one of the API's limits: final, never worth paying for."""

    stage = "precheck"

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message, transient=False)


class SourceError(StepError):
    stage = "source"

    def __init__(self, code: str, message: str, transient: bool, request_id: str | None = None, *,
                 world: bool = False, status: int | None = None) -> None:
        super().__init__(code, message, transient=transient, request_id=request_id, world=world, status=status)


class StorageError(StepError):
    """An OSS request failed. Transient unless OSS gave a 4xx verdict."""

    stage = "source"
    _TRANSIENT_CODES: Final = frozenset({"InternalError", "ServiceUnavailable", "RequestTimeout", "Throttling",
                                         "TooManyRequests"})

    def __init__(self, code: str, message: str, status: int | None, request_id: str | None) -> None:
        transient = status is None or status >= 500 or status == 429 or code in self._TRANSIENT_CODES
        super().__init__(code, message, transient=transient, status=status, request_id=request_id)

    @property
    def not_found(self) -> bool:
        return self.code in ("NoSuchKey", "NotFound") or (self.status == 404 and self.code != "NoSuchBucket")

    @property
    def already_exists(self) -> bool:
        return self.code == "FileAlreadyExists" or (self.status == 409 and self.code in ("", "ServiceError"))


class SinkError(StepError):
    stage = "sink"

    def __init__(self, sink: str, code: str, message: str, transient: bool) -> None:
        super().__init__(code, message, transient=transient)
        self.sink = sink

    def __str__(self) -> str:
        return f"{self.sink} sink: {self.code}: {self.message}"


class OcrFailure(StepError):
    stage = "ocr"

    def __init__(self, code: str, message: str, *, transient: bool, status: int | None = None,
                 request_id: str | None = None, attempts: int = 1, retry_after_s: float | None = None,
                 world: bool = False, paid: bool = True) -> None:
        super().__init__(code, message, transient=transient, status=status, request_id=request_id,
                         attempts=attempts, world=world)
        self.retry_after_s = retry_after_s
        self.paid = paid  # False: no call was made (no time left for one)
