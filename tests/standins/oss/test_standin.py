"""The OSS stand-in driven by the real SDKs (alibabacloud-oss-v2, oss2) over HTTP on 127.0.0.1."""

from __future__ import annotations

import base64
import hashlib
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import alibabacloud_oss_v2 as oss
import oss2
import pytest
import requests
from alibabacloud_oss_v2.crc import Crc64

from permit_ocr_local.standins.faults import FaultPlan
from permit_ocr_local.standins.keyring import Keyring
from permit_ocr_local.standins.oss import OssStandin, start_oss
from permit_ocr_local.standins.oss.errors import InvalidObjectName

AK, SK = "LTAI5tTESTKEY", "test-secret"
STS_AK, STS_SK, TOKEN = "STS.NTestTempKey", "sts-secret", "CAIS+token/with=special&chars=="
REGION, BUCKET = "cn-hangzhou", "mybucket"
AWKWARD_KEYS = ["a b.jpg", "1+1.png", "100%.jpg", "照片 1+x.jpg", "uploads/2024/11/deep/scan.jpg"]
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # oss2 calls datetime.utcnow()


class Clock:
    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def server(tmp_path: Path, clock: Clock) -> Iterator[OssStandin]:
    ring = Keyring()
    ring.add(AK, SK)
    ring.add(STS_AK, STS_SK, security_token=TOKEN)
    with start_oss(tmp_path / "oss", ring, REGION, buckets=(BUCKET,), clock=clock) as srv:
        yield srv


def v2_client(srv: OssStandin, ak: str = AK, sk: str = SK, token: str | None = None) -> oss.Client:
    cfg = oss.config.load_default()
    cfg.credentials_provider = oss.credentials.StaticCredentialsProvider(ak, sk, token)
    cfg.region, cfg.endpoint, cfg.retry_max_attempts = REGION, srv.url, 1
    return oss.Client(cfg)


@pytest.fixture
def client(server: OssStandin) -> oss.Client:
    return v2_client(server)


def v2_error(call: Callable[[], Any]) -> Any:
    with pytest.raises(oss.exceptions.OperationError) as exc:
        call()
    return exc.value.unwrap()


def put(client: oss.Client, key: str, body: bytes = b"data", **kw: Any) -> Any:
    return client.put_object(oss.PutObjectRequest(bucket=BUCKET, key=key, body=body, **kw))


def get_body(client: oss.Client, key: str, **kw: Any) -> bytes:
    return bytes(client.get_object(oss.GetObjectRequest(bucket=BUCKET, key=key, **kw)).body.content)


def error_code(body: bytes) -> str:
    m = re.search(rb"<Code>(.*?)</Code>", body)
    return m.group(1).decode() if m else ""


def root_of(srv: OssStandin) -> Path:
    return srv.service.state.root


# -- objects --------------------------------------------------------------------------------------------------
def test_put_get_head_delete_round_trip(client: oss.Client) -> None:
    put(client, "k.jpg", b"hello")
    assert get_body(client, "k.jpg") == b"hello"
    head = client.head_object(oss.HeadObjectRequest(bucket=BUCKET, key="k.jpg"))
    assert head.content_length == 5 and head.content_type == "image/jpeg" and head.object_type == "Normal"
    client.delete_object(oss.DeleteObjectRequest(bucket=BUCKET, key="k.jpg"))
    assert not client.is_object_exist(BUCKET, "k.jpg")


def test_put_replies_quoted_upper_md5_etag_and_true_crc64(client: oss.Client) -> None:
    body = bytes(range(256)) * 40
    result = put(client, "crc.bin", body)  # oss-v2 compares the CRC itself, so a wrong one would raise here
    crc = Crc64(0)
    crc.update(body)
    assert result.etag == f'"{hashlib.md5(body).hexdigest().upper()}"'
    assert result.hash_crc64 == str(crc.sum64())
    assert get_body(client, "crc.bin") == body  # download CRC check passes too


def test_metadata_round_trips(client: oss.Client) -> None:
    put(client, "r.json", b"{}", content_type="application/json", metadata={"source": "ocr-fc"},
        server_side_encryption="AES256", tagging="k1=v1&k2=v2")
    head = client.head_object(oss.HeadObjectRequest(bucket=BUCKET, key="r.json"))
    assert head.metadata == {"source": "ocr-fc"}
    assert head.content_type == "application/json"
    assert head.server_side_encryption == "AES256"
    assert head.tagging_count == 2
    assert head.last_modified is not None


def test_forbid_overwrite_on_existing_key_is_409_file_already_exists(server: OssStandin,
                                                                    client: oss.Client) -> None:
    put(client, "once.json", b"1", forbid_overwrite=True)
    err = v2_error(lambda: put(client, "once.json", b"2", forbid_overwrite=True))
    assert (err.status_code, err.code, err.ec) == (409, "FileAlreadyExists", "0016-00000708")
    bucket = oss2.Bucket(oss2.Auth(AK, SK), server.url, BUCKET)
    with pytest.raises(oss2.exceptions.ServerError) as exc:
        bucket.put_object("once.json", b"3", headers={"x-oss-forbid-overwrite": "true"})
    assert (exc.value.status, exc.value.code) == (409, "FileAlreadyExists")
    assert get_body(client, "once.json") == b"1"


def test_head_on_missing_key_surfaces_no_such_key_via_x_oss_err(server: OssStandin, client: oss.Client) -> None:
    err = v2_error(lambda: client.head_object(oss.HeadObjectRequest(bucket=BUCKET, key="missing.jpg")))
    assert (err.status_code, err.code, err.ec) == (404, "NoSuchKey", "0026-00000001")
    assert err.error_fileds["Key"] == "missing.jpg"
    assert not client.is_object_exist(BUCKET, "missing.jpg")
    with pytest.raises(oss2.exceptions.NoSuchKey):
        oss2.Bucket(oss2.Auth(AK, SK), server.url, BUCKET).head_object("missing.jpg")


def test_get_on_missing_key_or_bucket_is_404_with_error_xml(client: oss.Client) -> None:
    err = v2_error(lambda: get_body(client, "missing.jpg"))
    assert (err.status_code, err.code) == (404, "NoSuchKey") and len(err.request_id) == 24
    err = v2_error(lambda: client.get_object(oss.GetObjectRequest(bucket="nobucket", key="k")))
    assert (err.status_code, err.code) == (404, "NoSuchBucket")


@pytest.mark.parametrize("key", AWKWARD_KEYS)
def test_awkward_keys_land_as_plain_files_from_both_sdks(server: OssStandin, client: oss.Client, key: str) -> None:
    put(client, key, b"v2")
    assert (root_of(server) / BUCKET / key).read_bytes() == b"v2"
    bucket = oss2.Bucket(oss2.Auth(AK, SK), server.url, BUCKET)  # oss2 sends '/' as %2F
    bucket.put_object(key, b"oss2")
    assert (root_of(server) / BUCKET / key).read_bytes() == b"oss2"
    assert bucket.get_object(key).read() == b"oss2"


def test_bucket_folder_holds_only_objects_metadata_lives_in_a_sidecar(server: OssStandin,
                                                                      client: oss.Client) -> None:
    put(client, "in/img.jpg", b"x", metadata={"a": "b"})
    files = sorted(p.relative_to(root_of(server) / BUCKET).as_posix()
                   for p in (root_of(server) / BUCKET).rglob("*") if p.is_file())
    assert files == ["in/img.jpg"]
    assert list((root_of(server) / ".oss-meta" / BUCKET).glob("*.json"))


def test_dropped_files_are_listed_and_readable(server: OssStandin, client: oss.Client) -> None:
    (root_of(server) / BUCKET / "dropped" / "sub").mkdir(parents=True)
    (root_of(server) / BUCKET / "dropped" / "sub" / "scan 1.png").write_bytes(b"png-bytes")
    listed = client.list_objects_v2(oss.ListObjectsV2Request(bucket=BUCKET, prefix="dropped/"))
    assert [(o.key, o.size, o.etag) for o in listed.contents] == [
        ("dropped/sub/scan 1.png", 9, f'"{hashlib.md5(b"png-bytes").hexdigest().upper()}"')]
    assert get_body(client, "dropped/sub/scan 1.png") == b"png-bytes"
    head = client.head_object(oss.HeadObjectRequest(bucket=BUCKET, key="dropped/sub/scan 1.png"))
    assert head.content_type == "image/png"


def test_file_replaced_by_hand_gets_a_fresh_etag(server: OssStandin, client: oss.Client) -> None:
    put(client, "p.jpg", b"old", metadata={"keep": "me"})
    path = root_of(server) / BUCKET / "p.jpg"
    path.write_bytes(b"new!")
    head = client.head_object(oss.HeadObjectRequest(bucket=BUCKET, key="p.jpg"))
    assert head.etag == f'"{hashlib.md5(b"new!").hexdigest().upper()}"' and head.metadata == {"keep": "me"}


def test_delete_removes_emptied_folders(server: OssStandin, client: oss.Client) -> None:
    put(client, "a/b/c.jpg")
    client.delete_object(oss.DeleteObjectRequest(bucket=BUCKET, key="a/b/c.jpg"))
    assert not (root_of(server) / BUCKET / "a").exists()


def test_keys_escaping_the_root_are_refused(server: OssStandin) -> None:
    bucket = oss2.Bucket(oss2.Auth(AK, SK), server.url, BUCKET)  # encodes '/', so '..' reaches the server
    with pytest.raises(oss2.exceptions.ServerError) as exc:
        bucket.put_object("../escape.txt", b"x")
    assert (exc.value.status, exc.value.code) == (400, "InvalidObjectName")
    for key in ("/abs", "a/../../b", "a//b", "dir/", "a/" + "x" * 256, "é" * 128):
        with pytest.raises(InvalidObjectName):
            server.service.state.put(BUCKET, key, b"x")
    assert not (root_of(server) / "escape.txt").exists()
    server.service.state.put(BUCKET, "a/" + "x" * 255, b"x")  # the longest segment a file name can hold


def test_a_segment_too_long_for_a_file_name_is_a_clear_400_never_a_500(client: oss.Client) -> None:
    with pytest.raises(oss.exceptions.OperationError) as exc:
        put(client, "uploads/" + "长" * 90 + ".jpg")  # 274 bytes in one segment: fine for OSS, not for a file
    assert "InvalidObjectName" in str(exc.value)


# -- listing --------------------------------------------------------------------------------------------------
def test_list_v2_paginates_in_key_order_with_continuation_tokens(client: oss.Client) -> None:
    keys = sorted(["b.jpg", "a.jpg", "c/1.jpg", "c/2.jpg", "照片.jpg", "d e+f.jpg", "%.jpg"])
    for key in keys:
        put(client, key)
    pages = list(client.list_objects_v2_paginator().iter_page(
        oss.ListObjectsV2Request(bucket=BUCKET, max_keys=2)))
    assert [len(p.contents) for p in pages] == [2, 2, 2, 1]
    assert [o.key for p in pages for o in p.contents] == keys  # encoding-type=url round-trips awkward keys


def test_list_v2_groups_common_prefixes_with_delimiter(client: oss.Client) -> None:
    for key in ["top.jpg", "in/1.jpg", "in/2.jpg", "out/1.json", "out/deep/2.json"]:
        put(client, key)
    pages = list(client.list_objects_v2_paginator().iter_page(
        oss.ListObjectsV2Request(bucket=BUCKET, delimiter="/", max_keys=1)))
    prefixes = [c.prefix for p in pages for c in p.common_prefixes or []]
    assert prefixes == ["in/", "out/"]
    assert [o.key for p in pages for o in p.contents or []] == ["top.jpg"]
    nested = client.list_objects_v2(oss.ListObjectsV2Request(bucket=BUCKET, prefix="out/", delimiter="/"))
    assert [o.key for o in nested.contents] == ["out/1.json"]
    assert [c.prefix for c in nested.common_prefixes] == ["out/deep/"]


def test_list_v2_start_after_skips_earlier_keys(client: oss.Client) -> None:
    for key in ["a", "b", "c"]:
        put(client, key)
    result = client.list_objects_v2(oss.ListObjectsV2Request(bucket=BUCKET, start_after="a"))
    assert [o.key for o in result.contents] == ["b", "c"] and result.key_count == 2


# -- signed URLs and credentials ------------------------------------------------------------------------------
def test_presigned_get_fetched_by_urllib_is_served_and_counted_once(server: OssStandin,
                                                                    client: oss.Client) -> None:
    put(client, "照片 1+x.jpg", b"jpeg")
    url = client.presign(oss.GetObjectRequest(bucket=BUCKET, key="照片 1+x.jpg"), expires=timedelta(minutes=5)).url
    with urllib.request.urlopen(url) as resp:
        assert resp.read() == b"jpeg" and resp.headers["Content-Type"] == "image/jpeg"
    assert server.service.stats["GetObject:presigned"] == 1


def test_presigned_url_with_tampered_signature_is_403_signature_does_not_match(client: oss.Client) -> None:
    put(client, "k.jpg")
    url = client.presign(oss.GetObjectRequest(bucket=BUCKET, key="k.jpg")).url
    tampered = re.sub(r"x-oss-signature=[0-9a-f]{4}", "x-oss-signature=0000", url)
    resp = requests.get(tampered, timeout=5)
    assert resp.status_code == 403 and error_code(resp.content) == "SignatureDoesNotMatch"
    assert resp.headers["Content-Type"] == "application/xml" and resp.headers["x-oss-ec"]


def test_expired_presigned_url_is_403_access_denied(client: oss.Client, clock: Clock) -> None:
    put(client, "k.jpg")
    url = client.presign(oss.GetObjectRequest(bucket=BUCKET, key="k.jpg"), expires=timedelta(minutes=1)).url
    clock.offset = 120
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(url)
    body = exc.value.read()
    assert exc.value.code == 403 and error_code(body) == "AccessDenied" and b"Request has expired." in body


def test_sts_requests_need_their_token(server: OssStandin) -> None:
    put(v2_client(server, STS_AK, STS_SK, TOKEN), "sts.jpg", b"ok")
    for token in (None, "wrong-token"):
        sts_client = v2_client(server, STS_AK, STS_SK, token)
        err = v2_error(lambda: get_body(sts_client, "sts.jpg"))  # noqa: B023  (called at once)
        assert (err.status_code, err.code) == (403, "InvalidSecurityToken")


def test_oss2_v1_header_mode_and_signed_urls_are_verified(server: OssStandin) -> None:
    plain = oss2.Bucket(oss2.Auth(AK, SK), server.url, BUCKET)
    plain.put_object("v1/doc.json", b"{}", headers={"Content-Type": "application/json",
                                                     "Content-MD5": oss2.utils.content_md5(b"{}")})
    sts = oss2.Bucket(oss2.StsAuth(STS_AK, STS_SK, TOKEN), server.url, BUCKET)
    assert sts.get_object("v1/doc.json").read() == b"{}"
    assert sts.head_object("v1/doc.json").content_length == 2
    for bucket in (plain, sts):
        resp = requests.get(bucket.sign_url("GET", "v1/doc.json", 60), timeout=5)
        assert resp.status_code == 200 and resp.content == b"{}"
    assert server.service.stats["GetObject:presigned"] == 2


def test_wrong_secret_is_refused_in_header_mode(server: OssStandin) -> None:
    with pytest.raises(oss2.exceptions.ServerError) as exc:
        oss2.Bucket(oss2.Auth(AK, "wrong"), server.url, BUCKET).get_object("k")
    assert (exc.value.status, exc.value.code) == (403, "SignatureDoesNotMatch")
    err = v2_error(lambda: get_body(v2_client(server, AK, "wrong"), "k"))
    assert (err.status_code, err.code) == (403, "SignatureDoesNotMatch")


def test_header_mode_clock_skew_over_15_minutes_is_refused(client: oss.Client, clock: Clock) -> None:
    clock.offset = 16 * 60
    err = v2_error(lambda: put(client, "late.jpg"))
    assert (err.status_code, err.code) == (403, "RequestTimeTooSkewed")


def test_wrong_content_md5_is_refused(server: OssStandin) -> None:
    bucket = oss2.Bucket(oss2.Auth(AK, SK), server.url, BUCKET)
    with pytest.raises(oss2.exceptions.ServerError) as exc:
        bucket.put_object("m.txt", b"abc", headers={"Content-MD5": base64.b64encode(b"0" * 16).decode()})
    assert exc.value.code == "InvalidDigest"


# -- protocol details, events, faults -------------------------------------------------------------------------
def test_every_response_carries_a_unique_24_hex_request_id_and_date(server: OssStandin) -> None:
    ids = set()
    for _ in range(5):
        resp = requests.get(f"{server.url}/{BUCKET}/missing", timeout=5)
        assert re.fullmatch(r"[0-9A-F]{24}", resp.headers["x-oss-request-id"]) and resp.headers["Date"]
        ids.add(resp.headers["x-oss-request-id"])
    assert len(ids) == 5


def test_put_notifies_subscribers_with_the_request_id(server: OssStandin, client: oss.Client) -> None:
    events: list[tuple[str, str, str, int, str, str]] = []
    server.service.state.subscribe(lambda *event: events.append(event))
    result = put(client, "in/new.jpg", b"12345")
    assert events == [(BUCKET, "in/new.jpg", result.etag.strip('"'), 5, "ObjectCreated:PutObject",
                       result.request_id)]


def test_create_bucket_over_http_makes_a_folder(server: OssStandin, client: oss.Client) -> None:
    client.put_bucket(oss.PutBucketRequest(bucket="results"))
    assert (root_of(server) / "results").is_dir()
    client.put_object(oss.PutObjectRequest(bucket="results", key="x", body=b""))
    assert (root_of(server) / "results" / "x").read_bytes() == b""


def test_injected_faults_use_the_oss_error_shape_also_on_head(tmp_path: Path) -> None:
    plan = FaultPlan(seed=1)
    plan.set("oss", server_error=1.0)
    ring = Keyring()
    ring.add(AK, SK)
    with start_oss(tmp_path, ring, REGION, faults=plan, buckets=(BUCKET,)) as srv:
        c = v2_client(srv)
        err = v2_error(lambda: get_body(c, "k"))
        assert (err.status_code, err.code) == (503, "ServiceUnavailable")
        err = v2_error(lambda: c.head_object(oss.HeadObjectRequest(bucket=BUCKET, key="k")))
        assert (err.status_code, err.code) == (503, "ServiceUnavailable")
        assert srv.service.stats["injected:503"] == 2


@pytest.mark.parametrize("token", [None, TOKEN])
def test_oss_v2_v1_signer_is_verified_in_header_and_query_mode(server: OssStandin, token: str | None) -> None:
    ak, sk = (STS_AK, STS_SK) if token else (AK, SK)
    cfg = oss.config.load_default()
    cfg.credentials_provider = oss.credentials.StaticCredentialsProvider(ak, sk, token)
    cfg.region, cfg.endpoint, cfg.retry_max_attempts, cfg.signature_version = REGION, server.url, 1, "v1"
    c = oss.Client(cfg)
    put(c, "v1/x.txt", b"v1")
    assert get_body(c, "v1/x.txt") == b"v1"
    assert requests.get(c.presign(oss.GetObjectRequest(bucket=BUCKET, key="v1/x.txt")).url, timeout=5).content == b"v1"
