"""storage: the OSS adapter (the real alibabacloud-oss-v2 SDK against the OSS stand-in) and its retry helper:
what each call answers, how OSS failures become StorageErrors, and which of them are worth another try."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable

import pytest

from permit_ocr.config import Config, load_config
from permit_ocr.credentials import Credentials, resolve
from permit_ocr.errors import StorageError
from permit_ocr.storage import Listing, Storage, retrying
from permit_ocr_local.fcruntime.stack import LocalStack
from permit_ocr_local.standins.faults import FaultPlan
from support import Bucket

# -- retrying: pure, driven with plain callables ---------------------------------------------------------------


class Script:
    """A call that raises the given errors in turn, then answers "ok"."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


@pytest.fixture
def pauses(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr("permit_ocr.storage.time.sleep", slept.append)
    return slept


def transient() -> StorageError:
    return StorageError("ServiceUnavailable", "busy", 503, "RID")


def test_retrying_tries_again_after_transient_errors_with_a_growing_pause(pauses: list[float]) -> None:
    call = Script(transient(), StorageError("RequestError", "reset", None, None))
    assert retrying(call) == "ok"
    assert call.calls == 3
    assert pauses == [0.2, 0.4]


def test_retrying_gives_up_at_once_on_a_permanent_error(pauses: list[float]) -> None:
    call = Script(StorageError("AccessDenied", "no", 403, "RID"))
    with pytest.raises(StorageError) as info:
        retrying(call)
    assert (info.value.code, call.calls, pauses) == ("AccessDenied", 1, [])


@pytest.mark.parametrize("attempts", [1, 2, 4])
def test_retrying_makes_exactly_its_attempts_and_the_last_error_propagates(pauses: list[float],
                                                                          attempts: int) -> None:
    errors = [StorageError("InternalError", f"try {i}", 500, None) for i in range(attempts)]
    call = Script(*errors)
    with pytest.raises(StorageError) as info:
        retrying(call, attempts)
    assert call.calls == attempts
    assert info.value.message == f"try {attempts - 1}"
    assert len(pauses) == attempts - 1


def test_retrying_lets_anything_but_a_storage_error_through_untouched(pauses: list[float]) -> None:
    call = Script(KeyError("bug"))
    with pytest.raises(KeyError):
        retrying(call)
    assert call.calls == 1


# -- Listing.knows: pure --------------------------------------------------------------------------------------


def test_a_complete_listing_knows_every_key() -> None:
    listing = Listing({"a.png": "E"}, truncated=False, last_key="a.png")
    assert listing.knows("a.png") and listing.knows("z.png")


def test_a_truncated_listing_knows_only_keys_up_to_where_it_stopped() -> None:
    listing = Listing({"a.png": "E", "b.png": "F"}, truncated=True, last_key="b.png")
    assert listing.knows("a.png") and listing.knows("a.png.json")  # listed, or sorted before the stop
    assert not listing.knows("c.png") and not listing.knows("b.png.json")


# -- Storage against the OSS stand-in -------------------------------------------------------------------------


def test_put_then_head_and_read_give_the_bytes_the_etag_form_and_the_metadata(storage: Storage,
                                                                               bucket: Bucket) -> None:
    etag = storage.put(bucket.name, "k/a.json", b'{"a":1}', "application/json", {"source-etag": "E1"})
    assert etag is not None and etag == etag.upper() and '"' not in etag
    head = storage.head(bucket.name, "k/a.json")
    assert head is not None
    assert (head.etag, head.size, head.metadata["source-etag"]) == (etag, 7, "E1")
    chunk = storage.read_all(bucket.name, "k/a.json")
    assert (chunk.data, chunk.total_size, chunk.etag) == (b'{"a":1}', 7, etag)


def test_a_create_only_put_over_an_existing_object_is_refused_as_already_exists(storage: Storage,
                                                                                bucket: Bucket) -> None:
    storage.put(bucket.name, "m/x.0", b"first", "text/plain", {}, forbid_overwrite=True)
    with pytest.raises(StorageError) as info:
        storage.put(bucket.name, "m/x.0", b"second", "text/plain", {}, forbid_overwrite=True)
    assert info.value.already_exists and not info.value.transient
    assert bucket.get("m/x.0") == b"first"
    storage.put(bucket.name, "m/x.0", b"third", "text/plain", {})  # a plain put overwrites
    assert bucket.get("m/x.0") == b"third"


def test_a_range_read_returns_the_head_and_the_whole_size(storage: Storage, bucket: Bucket) -> None:
    up = bucket.put("big.bin", bytes(range(256)) * 40)
    chunk = storage.read_range(bucket.name, "big.bin", 100)
    assert chunk.data == (bytes(range(256)) * 40)[:100]
    assert (chunk.total_size, chunk.etag) == (10240, up.etag.upper())


def test_a_range_longer_than_the_object_returns_it_whole(storage: Storage, bucket: Bucket) -> None:
    bucket.put("small.bin", b"12345")
    chunk = storage.read_range(bucket.name, "small.bin", 65536)
    assert (chunk.data, chunk.total_size) == (b"12345", 5)


def test_a_range_read_of_an_empty_object_says_it_is_empty(storage: Storage, bucket: Bucket) -> None:
    bucket.put("empty.png", b"")
    chunk = storage.read_range(bucket.name, "empty.png", 65536)
    assert (chunk.data, chunk.total_size) == (b"", 0)


def test_a_missing_object_is_none_on_head_a_no_op_on_delete_and_not_found_on_read(storage: Storage,
                                                                                   bucket: Bucket) -> None:
    assert storage.head(bucket.name, "nope.png") is None
    storage.delete(bucket.name, "nope.png")
    with pytest.raises(StorageError) as info:
        storage.read_all(bucket.name, "nope.png")
    err = info.value
    assert (err.code, err.status, err.not_found, err.transient) == ("NoSuchKey", 404, True, False)
    assert err.request_id  # OSS's request id, for a support ticket


def test_a_missing_bucket_is_not_a_missing_object(storage: Storage) -> None:
    with pytest.raises(StorageError) as info:
        storage.head("no-such-bucket-here", "a.png")
    assert info.value.status == 404 and not info.value.not_found


def test_delete_removes_the_object(storage: Storage, bucket: Bucket) -> None:
    bucket.put("d.png", b"x")
    storage.delete(bucket.name, "d.png")
    assert not bucket.exists("d.png")


def test_a_listing_gives_each_key_with_its_etag_and_any_key_round_trips(storage: Storage, bucket: Bucket) -> None:
    keys = ["p/a b+c%20d.png", "p/证件 1.png", "p/a b+c%20d.png.json"]
    etags = {k: bucket.put(k, k.encode()).etag.upper() for k in keys}
    bucket.put("q/other.png", b"x")
    listing = storage.list_prefix(bucket.name, "p/")
    assert dict(listing.etags) == etags
    assert not listing.truncated


def test_a_listing_cut_short_says_where_it_stopped(storage: Storage, bucket: Bucket) -> None:
    for name in ("a", "b", "c"):
        bucket.put(f"t/{name}.png", b"x")
    listing = storage.list_prefix(bucket.name, "t/", max_keys=2)
    assert listing.truncated and listing.last_key == "t/b.png"
    assert listing.knows("t/a.png.json") and not listing.knows("t/c.png")


def test_a_presigned_url_on_the_public_endpoint_reads_the_object_without_credentials(
        storage: Storage, bucket: Bucket) -> None:
    bucket.put("u/ä b.png", b"image bytes")
    url = storage.presign_get(bucket.name, "u/ä b.png", 300)
    assert "x-oss-signature" in url.lower() or "signature" in url.lower()
    with urllib.request.urlopen(url, timeout=10) as r:  # the OCR service's plain GET
        assert r.read() == b"image bytes"


def test_an_oss_outage_is_a_transient_storage_error_with_its_status(storage: Storage, bucket: Bucket,
                                                                    oss_faults: FaultPlan) -> None:
    bucket.put("o.png", b"x")
    oss_faults.set("oss", server_error=1.0)
    with pytest.raises(StorageError) as info:
        storage.read_all(bucket.name, "o.png")
    assert (info.value.status, info.value.transient) == (503, True)
    assert oss_faults.injected["oss:server_error"] == 3  # the SDK's own 3 tries, then ours to decide


def test_no_answer_at_all_is_transient_and_has_no_status(env: dict[str, str], stack: LocalStack) -> None:
    closed = load_config({**env, "OSS_ENDPOINT": "http://127.0.0.1:9"})  # the discard port: nothing listens
    with pytest.raises(StorageError) as info:
        Storage(closed, lambda: resolve(env)).head(stack.options.buckets[0], "a.png")
    assert (info.value.status, info.value.transient) == (None, True)


def test_a_bad_signature_is_a_permanent_error(cfg: Config, env: dict[str, str], bucket: Bucket) -> None:
    wrong = Credentials(env["ALIBABA_CLOUD_ACCESS_KEY_ID"], "not-the-secret", env["ALIBABA_CLOUD_SECURITY_TOKEN"])
    with pytest.raises(StorageError) as info:
        Storage(cfg, lambda: wrong).read_all(bucket.name, "a.png")
    assert (info.value.status, info.value.transient) == (403, False)


def test_rotated_credentials_are_used_from_the_next_request_on(cfg: Config, env: dict[str, str],
                                                               stack: LocalStack, bucket: Bucket) -> None:
    current = [resolve(env)]
    source: Callable[[], Credentials] = lambda: current[0]  # noqa: E731
    storage = Storage(cfg, source)
    bucket.put("r.png", b"x")
    assert storage.head(bucket.name, "r.png") is not None
    stack.keyring.add("STS.rotated", "rotated-secret", "CAIS-rotated")
    current[0] = Credentials("STS.rotated", "rotated-secret", "CAIS-rotated")
    assert storage.head(bucket.name, "r.png") is not None
    current[0] = Credentials("STS.rotated", "stale-secret", "CAIS-rotated")  # proves the triple is read anew
    with pytest.raises(StorageError):
        storage.head(bucket.name, "r.png")
