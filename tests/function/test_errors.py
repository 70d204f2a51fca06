"""errors: the StepError family the handler's one failure path reads: which step, whether another try may
succeed, the version a failure is about, and OSS's "not found" / "already exists" verdicts."""

from __future__ import annotations

import pytest

from permit_ocr import document
from permit_ocr.errors import (
    STAGES,
    OcrFailure,
    PrecheckError,
    SinkError,
    SourceError,
    StepError,
    StorageError,
)


def test_about_binds_the_failure_to_the_version_found_and_returns_the_same_error() -> None:
    err = SourceError("InternalError", "boom", True)
    assert err.found is None
    bound = err.about("uploads/a b.png", "ETAG1")
    assert bound is err
    assert err.found == ("uploads/a b.png", "ETAG1")
    assert err.about("uploads/a b.png", "ETAG2").found == ("uploads/a b.png", "ETAG2")  # the last read wins


def test_every_step_error_names_its_stage() -> None:
    assert PrecheckError("illegalImageSize", "too small").stage == "precheck"
    assert SourceError("NoSuchKey", "gone", False).stage == "source"
    assert StorageError("NoSuchKey", "gone", 404, None).stage == "source"
    assert SinkError("mns", "TopicNotExist", "no topic", False).stage == "sink"
    assert OcrFailure("Throttling.User", "slow down", transient=True).stage == "ocr"
    assert StepError("Bug", "unexpected", transient=True).stage == "fc"
    assert StepError("OutputKeyTooLong", "long", transient=False, stage="guard").stage == "guard"


def test_a_stage_outside_the_error_records_vocabulary_is_refused() -> None:
    with pytest.raises(AssertionError):
        StepError("X", "y", transient=False, stage="upload")


def test_the_error_record_accepts_exactly_the_stages_errors_can_name() -> None:
    assert tuple(document.STAGES) == STAGES


def test_a_precheck_failure_is_never_worth_another_try() -> None:
    assert PrecheckError("illegalImageSize", "too big").transient is False


def test_the_message_carries_the_code_and_a_sink_error_names_its_sink() -> None:
    assert str(SourceError("AccessDenied", "no read", False)) == "AccessDenied: no read"
    assert str(SinkError("oss", "AccessDenied", "no write", False)) == "oss sink: AccessDenied: no write"


@pytest.mark.parametrize(("code", "status", "transient"), [
    ("RequestError", None, True),  # no answer at all (connection refused, timeout)
    ("InternalError", 500, True),
    ("ServiceUnavailable", 503, True),
    ("TooManyRequests", 429, True),
    ("RequestTimeout", 400, True),  # OSS's 400 for a body that came too slowly
    ("Throttling", 403, True),
    ("AccessDenied", 403, False),
    ("NoSuchKey", 404, False),
    ("NoSuchBucket", 404, False),
    ("FileAlreadyExists", 409, False),
    ("InvalidRange", 416, False),
    ("InvalidArgument", 400, False),
])
def test_an_oss_failure_is_transient_unless_oss_gave_a_4xx_verdict(code: str, status: int | None,
                                                                     transient: bool) -> None:
    assert StorageError(code, "m", status, "RID").transient is transient


@pytest.mark.parametrize(("code", "status", "not_found"), [
    ("NoSuchKey", 404, True),
    ("NotFound", None, True),
    ("", 404, True),  # a HEAD's 404 has no body, so no code
    ("NoSuchBucket", 404, False),  # a missing bucket is a configuration fault, not a deleted image
    ("AccessDenied", 403, False),
])
def test_not_found_means_the_object_is_missing_never_the_bucket(code: str, status: int | None,
                                                                 not_found: bool) -> None:
    assert StorageError(code, "m", status, None).not_found is not_found


@pytest.mark.parametrize(("code", "status", "exists"), [
    ("FileAlreadyExists", 409, True),
    ("", 409, True),
    ("ServiceError", 409, True),
    ("BucketNotEmpty", 409, False),  # another 409 with its own code is another verdict
    ("FileAlreadyExists", None, True),
    ("NoSuchKey", 404, False),
])
def test_already_exists_recognises_a_refused_create_only_put(code: str, status: int | None, exists: bool) -> None:
    assert StorageError(code, "m", status, None).already_exists is exists


def test_an_ocr_failure_keeps_the_services_request_id_status_attempts_and_retry_hint() -> None:
    err = OcrFailure("Throttling.User", "slow down", transient=True, status=429, request_id="RID-9", attempts=3,
                     retry_after_s=1.5)
    assert (err.status, err.request_id, err.attempts, err.retry_after_s) == (429, "RID-9", 3, 1.5)
