# ruff: noqa: F811  (the fixtures imported from test_oss_standin are parameters by name)
"""The OSS stand-in behaves like OSS where the function's correctness depends on it (issue 11), driven by the
real SDKs (alibabacloud-oss-v2, oss2) and plain HTTP over 127.0.0.1. Each behaviour cites the OSS page it follows
in permit_ocr_local/standins/oss/rules.py."""

from __future__ import annotations

import threading
from email.utils import formatdate
from typing import Any

import alibabacloud_oss_v2 as oss
import oss2
import pytest
import requests

from permit_ocr_local.standins.oss import OssStandin, rules
from permit_ocr_local.standins.oss.auth import V1_SUBRESOURCES
from standins.oss.test_standin import (  # noqa: F401  (fixtures are found by name)
    AK,
    BUCKET,
    REGION,
    SK,
    Clock,
    client,
    clock,
    error_code,
    get_body,
    put,
    root_of,
    server,
    v2_client,
    v2_error,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # oss2 calls datetime.utcnow()
BODY = b"0123456789"


def ranged(client: oss.Client, key: str, spec: str, standard: bool = False) -> Any:
    return client.get_object(oss.GetObjectRequest(bucket=BUCKET, key=key, range_header=spec,
                                                  range_behavior="standard" if standard else None))


def oss2_bucket(srv: OssStandin) -> oss2.Bucket:
    return oss2.Bucket(oss2.Auth(AK, SK), srv.url, BUCKET)


# -- 1. Range ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("spec", "body", "content_range"), [
    ("bytes=2-5", b"2345", "bytes 2-5/10"),
    ("bytes=0-", BODY, "bytes 0-9/10"),
    ("bytes=7-", b"789", "bytes 7-9/10"),
    ("bytes=-3", b"789", "bytes 7-9/10"),
    ("bytes=9-9", b"9", "bytes 9-9/10"),
    ("bytes=0-1,4-5", b"01", "bytes 0-1/10"),  # of several ranges OSS serves the first
])
def test_satisfiable_range_is_206_with_content_range_and_length(client: oss.Client, spec: str, body: bytes,
                                                                content_range: str) -> None:
    put(client, "r.bin", BODY)
    result = ranged(client, "r.bin", spec)
    assert (result.status_code, result.content_range) == (206, content_range)
    assert result.content_length == len(body) and bytes(result.body.content) == body


@pytest.mark.parametrize("spec", ["bytes=8-100", "bytes=10-20", "bytes=10-", "bytes=-11", "bytes=-0",
                                  "bytes=5-2", "byte=0-4", "bytes=a-b", "bytes=", "0-4", "bytes=1-2-3"])
def test_range_oss_cannot_serve_exactly_returns_the_whole_object_with_200(client: oss.Client,
                                                                           spec: str) -> None:
    put(client, "r.bin", BODY)
    result = ranged(client, "r.bin", spec)
    assert (result.status_code, result.content_range, result.content_length) == (200, None, 10)
    assert bytes(result.body.content) == BODY


def test_range_on_an_empty_object_is_200_empty(client: oss.Client) -> None:
    put(client, "empty.bin", b"")
    for spec in ("bytes=0-", "bytes=0-65535", "bytes=-1"):
        result = ranged(client, "empty.bin", spec)
        assert (result.status_code, result.content_length, bytes(result.body.content)) == (200, 0, b"")


def test_standard_range_behavior_clips_the_end_and_refuses_a_start_past_the_end(client: oss.Client) -> None:
    put(client, "r.bin", BODY)
    clipped = ranged(client, "r.bin", "bytes=8-100", standard=True)
    assert (clipped.status_code, clipped.content_range, bytes(clipped.body.content)) == (206, "bytes 8-9/10", b"89")
    whole = ranged(client, "r.bin", "bytes=-50", standard=True)
    assert (whole.status_code, whole.content_range) == (206, "bytes 0-9/10")
    for spec in ("bytes=10-20", "bytes=10-", "bytes=0-1,4-5"):
        err = v2_error(lambda: ranged(client, "r.bin", spec, standard=True))  # noqa: B023  (called at once)
        assert (err.status_code, err.code, err.ec) == (416, "InvalidRange", "0014-00000001")
        assert err.message == "The requested range cannot be satisfied."
    put(client, "empty.bin", b"")
    err = v2_error(lambda: ranged(client, "empty.bin", "bytes=0-", standard=True))
    assert (err.status_code, err.code) == (416, "InvalidRange")


def test_range_416_carries_oss_error_xml(server: OssStandin) -> None:
    oss2_bucket(server).put_object("r.bin", BODY)
    with pytest.raises(oss2.exceptions.ServerError) as exc:
        oss2_bucket(server).get_object("r.bin", byte_range=(10, 20), headers={"x-oss-range-behavior": "standard"})
    assert (exc.value.status, exc.value.code) == (416, "InvalidRange") and exc.value.request_id


# -- 2. operations the stand-in does not implement are refused ---------------------------------------------------
def test_put_object_acl_is_refused_and_leaves_the_object_intact(server: OssStandin, client: oss.Client) -> None:
    put(client, "keep.jpg", b"image")
    with pytest.raises(oss2.exceptions.ServerError) as exc:
        oss2_bucket(server).put_object_acl("keep.jpg", oss2.OBJECT_ACL_PUBLIC_READ)
    assert (exc.value.status, exc.value.code) == (501, "NotImplemented")
    err = v2_error(lambda: client.put_object_acl(oss.PutObjectAclRequest(bucket=BUCKET, key="keep.jpg",
                                                                         acl="public-read")))
    assert (err.status_code, err.code) == (501, "NotImplemented") and "?acl" in err.message
    assert get_body(client, "keep.jpg") == b"image"


def test_get_object_acl_is_refused_not_served_as_the_object(server: OssStandin, client: oss.Client) -> None:
    put(client, "keep.jpg", b"image")
    err = v2_error(lambda: client.get_object_acl(oss.GetObjectAclRequest(bucket=BUCKET, key="keep.jpg")))
    assert (err.status_code, err.code) == (501, "NotImplemented")


def test_copy_object_is_refused_and_writes_no_destination(server: OssStandin, client: oss.Client) -> None:
    put(client, "src.jpg", b"image")
    err = v2_error(lambda: client.copy_object(oss.CopyObjectRequest(bucket=BUCKET, key="dst.jpg",
                                                                    source_key="src.jpg")))
    assert (err.status_code, err.code) == (501, "NotImplemented") and "x-oss-copy-source" in err.message
    assert not (root_of(server) / BUCKET / "dst.jpg").exists()
    with pytest.raises(oss2.exceptions.ServerError) as exc:
        oss2_bucket(server).copy_object(BUCKET, "src.jpg", "dst.jpg")
    assert exc.value.status == 501 and not client.is_object_exist(BUCKET, "dst.jpg")


def test_sdk_operations_on_unmodelled_sub_resources_are_refused(server: OssStandin, client: oss.Client) -> None:
    put(client, "k.jpg", b"image")
    calls = {
        "PutObjectTagging": lambda: client.put_object_tagging(oss.PutObjectTaggingRequest(
            bucket=BUCKET, key="k.jpg", tagging=oss.Tagging(tag_set=oss.TagSet(tags=[oss.Tag(key="a", value="b")])))),
        "GetObjectTagging": lambda: client.get_object_tagging(oss.GetObjectTaggingRequest(bucket=BUCKET, key="k.jpg")),
        "AppendObject": lambda: client.append_object(oss.AppendObjectRequest(bucket=BUCKET, key="k.jpg", position=5,
                                                                             body=b"more")),
        "PutSymlink": lambda: client.put_symlink(oss.PutSymlinkRequest(bucket=BUCKET, key="link.jpg",
                                                                       target="k.jpg")),
        "GetSymlink": lambda: client.get_symlink(oss.GetSymlinkRequest(bucket=BUCKET, key="k.jpg")),
        "InitiateMultipartUpload": lambda: client.initiate_multipart_upload(oss.InitiateMultipartUploadRequest(
            bucket=BUCKET, key="k.jpg")),
        "UploadPart": lambda: client.upload_part(oss.UploadPartRequest(bucket=BUCKET, key="k.jpg", part_number=1,
                                                                       upload_id="u1", body=b"part")),
        "RestoreObject": lambda: client.restore_object(oss.RestoreObjectRequest(bucket=BUCKET, key="k.jpg")),
        "DeleteMultipleObjects": lambda: client.delete_multiple_objects(oss.DeleteMultipleObjectsRequest(
            bucket=BUCKET, objects=[oss.DeleteObject(key="k.jpg")])),
        "GetBucketAcl": lambda: client.get_bucket_acl(oss.GetBucketAclRequest(bucket=BUCKET)),
        "ListObjects(V1)": lambda: client.list_objects(oss.ListObjectsRequest(bucket=BUCKET)),
    }
    for name, call in calls.items():
        err = v2_error(call)
        assert (name, err.status_code, err.code) == (name, 501, "NotImplemented")
    assert get_body(client, "k.jpg") == b"image"
    assert sorted(p.name for p in (root_of(server) / BUCKET).iterdir()) == ["k.jpg"]


@pytest.mark.parametrize("query", ["acl", "tagging", "append&position=0", "symlink", "uploads", "uploadId=u1",
                                   "partNumber=1&uploadId=u1", "restore", "objectMeta", "x-oss-process=image/resize",
                                   "versionId=v1", "cache-buster=1"])
def test_every_unmodelled_query_on_a_read_is_refused_never_served_as_the_object(server: OssStandin,
                                                                                 client: oss.Client,
                                                                                 query: str) -> None:
    put(client, "k.jpg", b"image")
    url = oss2_bucket(server).sign_url("GET", "k.jpg", 60, params=dict(
        (p.partition("=")[0], p.partition("=")[2] or None) for p in query.split("&")))
    resp = requests.get(url, timeout=5)
    assert resp.status_code == 501 and error_code(resp.content) == "NotImplemented", resp.content


def test_every_signed_sub_resource_of_oss_md_is_refused_on_object_reads_writes_and_the_bucket(
        server: OssStandin, client: oss.Client) -> None:
    put(client, "k.jpg", b"image")
    bucket = oss2.Bucket(oss2.AuthV4(AK, SK), server.url, BUCKET, region=REGION)  # V4 signs every parameter
    served = {"security-token"} | set(rules.RESPONSE_OVERRIDES)  # a signature part; GetObject's overrides
    for name in sorted(V1_SUBRESOURCES - served):
        for method, key in (("GET", "k.jpg"), ("PUT", "k.jpg"), ("DELETE", "k.jpg")):
            resp = requests.request(method, bucket.sign_url(method, key, 60, params={name: "1"}), data=b"",
                                    timeout=5)
            assert (name, method, resp.status_code, error_code(resp.content)) == (name, method, 501,
                                                                                  "NotImplemented")
        if name not in rules.LIST_V2_PARAMS and name != "versioning":  # PutBucketVersioning is served
            bucket_op = oss.OperationInput("PutBucketSubresource", "PUT", bucket=BUCKET, parameters={name: "1"})
            out = v2_error(lambda: client.invoke_operation(bucket_op))  # noqa: B023  (called at once)
            assert (name, out.status_code, out.code) == (name, 501, "NotImplemented")
    assert get_body(client, "k.jpg") == b"image"
    assert sorted(p.name for p in (root_of(server) / BUCKET).iterdir()) == ["k.jpg"]


def test_put_with_unmodelled_state_headers_is_refused_and_writes_nothing(server: OssStandin,
                                                                        client: oss.Client) -> None:
    for headers in ({"x-oss-object-acl": "public-read"}, {"x-oss-symlink-target": "k.jpg"},
                    {"x-oss-callback": "e30="}):
        with pytest.raises(oss2.exceptions.ServerError) as exc:
            oss2_bucket(server).put_object("w.jpg", b"x", headers=headers)
        assert (exc.value.status, exc.value.code) == (501, "NotImplemented")
    assert not client.is_object_exist(BUCKET, "w.jpg")
    put(client, "w.jpg", b"x", acl="private", storage_class="Standard")  # what the function sends is modelled
    assert get_body(client, "w.jpg") == b"x"


def test_conditional_write_or_delete_is_refused_not_silently_unconditional(server: OssStandin,
                                                                          client: oss.Client) -> None:
    etag = put(client, "c.json", b"v1").etag
    bucket = oss2_bucket(server)
    for headers in ({"If-Match": etag}, {"If-None-Match": "*"}):
        with pytest.raises(oss2.exceptions.ServerError) as exc:
            bucket.put_object("c.json", b"v2", headers=headers)
        assert (exc.value.status, exc.value.code) == (501, "NotImplemented")
        with pytest.raises(oss2.exceptions.ServerError) as exc:
            bucket.delete_object("c.json", headers=headers)
        assert exc.value.status == 501
    assert get_body(client, "c.json") == b"v1"


def test_post_on_an_object_is_refused(server: OssStandin) -> None:
    url = oss2_bucket(server).sign_url("POST", "k.jpg", 60, params={"append": None, "position": "0"})
    resp = requests.post(url, data=b"x", timeout=5)
    assert resp.status_code == 501 and error_code(resp.content) == "NotImplemented"


def test_get_object_response_overrides_set_the_response_headers(client: oss.Client) -> None:
    put(client, "k.jpg", b"image")
    result = client.get_object(oss.GetObjectRequest(bucket=BUCKET, key="k.jpg",
                                                     response_content_type="application/x-test",
                                                     response_content_disposition="attachment"))
    assert (result.content_type, result.content_disposition) == ("application/x-test", "attachment")


# -- 3. NoSuchBucket before signature errors -------------------------------------------------------------------
def test_missing_bucket_with_a_bad_signature_is_404_no_such_bucket(server: OssStandin) -> None:
    bad = v2_client(server, AK, "wrong-secret")
    err = v2_error(lambda: bad.get_object(oss.GetObjectRequest(bucket="nobucket", key="k")))
    assert (err.status_code, err.code, err.error_fileds.get("BucketName")) == (404, "NoSuchBucket", "nobucket")
    resp = requests.put(f"{server.url}/nobucket/k?acl", headers={"Authorization": "OSS x:y"}, timeout=5)
    assert resp.status_code == 404 and error_code(resp.content) == "NoSuchBucket"
    err = v2_error(lambda: bad.get_object(oss.GetObjectRequest(bucket=BUCKET, key="k")))
    assert (err.status_code, err.code) == (403, "SignatureDoesNotMatch")  # an existing bucket checks the signature


def test_unsigned_put_bucket_is_still_refused_by_auth(server: OssStandin) -> None:
    resp = requests.put(f"{server.url}/newbucket", timeout=5)
    assert resp.status_code == 403 and not (root_of(server) / "newbucket").exists()


# -- 4. conditional reads --------------------------------------------------------------------------------------
def test_if_match_with_the_quoted_etag_serves_and_a_stale_one_is_412(server: OssStandin,
                                                                    client: oss.Client) -> None:
    etag = put(client, "v.jpg", b"v1").etag  # quoted, as OSS returns it
    assert get_body(client, "v.jpg", if_match=etag) == b"v1"
    assert get_body(client, "v.jpg", if_match=etag.strip('"')) == b"v1"  # oss2 hands out the bare ETag
    put(client, "v.jpg", b"v2")
    err = v2_error(lambda: get_body(client, "v.jpg", if_match=etag))
    assert (err.status_code, err.code, err.ec) == (412, "PreconditionFailed", "0017-00001001")
    err = v2_error(lambda: client.head_object(oss.HeadObjectRequest(bucket=BUCKET, key="v.jpg", if_match=etag)))
    assert (err.status_code, err.code) == (412, "PreconditionFailed")  # from x-oss-err on HEAD
    with pytest.raises(oss2.exceptions.PreconditionFailed):
        oss2_bucket(server).get_object("v.jpg", headers={"If-Match": etag})


def test_if_none_match_current_etag_is_304_with_the_quoted_etag(server: OssStandin, client: oss.Client) -> None:
    etag = put(client, "v.jpg", b"v1").etag
    resp = requests.get(oss2_bucket(server).sign_url("GET", "v.jpg", 60), headers={"If-None-Match": etag},
                        timeout=5)
    assert (resp.status_code, resp.headers["ETag"], resp.content) == (304, etag, b"")
    with pytest.raises(oss2.exceptions.NotModified):
        oss2_bucket(server).get_object("v.jpg", headers={"If-None-Match": etag})
    assert get_body(client, "v.jpg", if_none_match='"OTHER"') == b"v1"
    err = v2_error(lambda: get_body(client, "v.jpg", if_none_match=etag))  # oss-v2: a bodiless 304 is an error
    assert err.status_code == 304


def test_modified_since_conditions_follow_last_modified(server: OssStandin, client: oss.Client,
                                                       clock: Clock) -> None:
    put(client, "t.jpg", b"v1")
    last = client.head_object(oss.HeadObjectRequest(bucket=BUCKET, key="t.jpg")).last_modified
    stamp = last.timestamp()
    at, before = formatdate(stamp, usegmt=True), formatdate(stamp - 60, usegmt=True)
    bucket = oss2_bucket(server)
    with pytest.raises(oss2.exceptions.NotModified):
        bucket.get_object("t.jpg", headers={"If-Modified-Since": at})
    assert bucket.get_object("t.jpg", headers={"If-Modified-Since": before}).read() == b"v1"
    assert bucket.get_object("t.jpg", headers={"If-Unmodified-Since": at}).read() == b"v1"
    with pytest.raises(oss2.exceptions.PreconditionFailed):
        bucket.get_object("t.jpg", headers={"If-Unmodified-Since": before})
    assert bucket.get_object("t.jpg", headers={"If-Modified-Since": "not a date"}).read() == b"v1"


def test_if_match_takes_precedence_over_if_unmodified_since(server: OssStandin, client: oss.Client) -> None:
    etag = put(client, "t.jpg", b"v1").etag
    old = formatdate(0, usegmt=True)
    assert oss2_bucket(server).get_object("t.jpg", headers={"If-Match": etag, "If-Unmodified-Since": old}).read() \
        == b"v1"


def test_precondition_is_checked_before_the_range(client: oss.Client) -> None:
    put(client, "r.bin", BODY)
    err = v2_error(lambda: client.get_object(oss.GetObjectRequest(bucket=BUCKET, key="r.bin", if_match='"X"',
                                                                  range_header="bytes=0-1")))
    assert err.status_code == 412


# -- 5. ListObjectsV2 ------------------------------------------------------------------------------------------
def test_list_with_prefix_of_an_image_shows_its_etag_and_outputs_in_one_request(server: OssStandin,
                                                                                 client: oss.Client) -> None:
    image = put(client, "in/a b.jpg", b"jpeg")
    put(client, "in/a b.jpg.json", b"{}")
    put(client, "in/a b.jpg.error.json", b"{}")
    put(client, "in/a b.jpg2/other.jpg", b"x")
    put(client, "in/a c.jpg", b"x")
    before = server.service.stats["ListObjectsV2"]
    page = client.list_objects_v2(oss.ListObjectsV2Request(bucket=BUCKET, prefix="in/a b.jpg", max_keys=3))
    assert server.service.stats["ListObjectsV2"] == before + 1
    assert [(o.key, o.size) for o in page.contents] == [
        ("in/a b.jpg", 4), ("in/a b.jpg.error.json", 2), ("in/a b.jpg.json", 2)]
    assert page.contents[0].etag == image.etag and page.is_truncated
    assert page.prefix == "in/a b.jpg" and page.max_keys == 3 and page.key_count == 3


XML_HOSTILE_KEYS = ["ctl\x01\x02.jpg", "cr\rlf\n.jpg", "tab\t.jpg", "amp&<lt>.jpg", "pct%2F.jpg", "plus+ .jpg",
                    "照片.jpg", "emoji😀.jpg", "del\x7f.jpg", "quote\"'.jpg"]


def test_list_url_encoding_round_trips_keys_xml_cannot_carry(client: oss.Client) -> None:
    for key in XML_HOSTILE_KEYS:
        put(client, "h/" + key)
    pages = list(client.list_objects_v2_paginator().iter_page(oss.ListObjectsV2Request(
        bucket=BUCKET, prefix="h/", max_keys=3, encoding_type="url")))
    assert [o.key for p in pages for o in p.contents] == sorted("h/" + k for k in XML_HOSTILE_KEYS)
    grouped = client.list_objects_v2(oss.ListObjectsV2Request(bucket=BUCKET, prefix="h/ctl\x01",
                                                              delimiter="\x02", encoding_type="url"))
    assert [c.prefix for c in grouped.common_prefixes] == ["h/ctl\x01\x02"]
    assert (grouped.prefix, grouped.delimiter) == ("h/ctl\x01", "\x02")


def test_list_url_encoding_is_visible_in_the_xml(server: OssStandin, client: oss.Client) -> None:
    put(client, "e/a b+c.jpg")
    out = client.invoke_operation(oss.OperationInput(
        "ListObjectsV2", "GET", bucket=BUCKET,
        parameters={"list-type": "2", "prefix": "e/a b", "start-after": "e/a", "encoding-type": "url"}))
    xml = out.http_response.content.decode()
    assert "<Key>e/a%20b%2Bc.jpg</Key>" in xml and "<Prefix>e/a%20b</Prefix>" in xml
    assert "<StartAfter>e/a</StartAfter>" in xml and "<EncodingType>url</EncodingType>" in xml


def test_list_start_after_and_continuation_token_resume_exactly(client: oss.Client) -> None:
    keys = [f"p/{i:02d}" for i in range(7)]
    for key in keys:
        put(client, key)
    first = client.list_objects_v2(oss.ListObjectsV2Request(bucket=BUCKET, prefix="p/", start_after="p/01",
                                                            max_keys=2))
    assert [o.key for o in first.contents] == ["p/02", "p/03"] and first.next_continuation_token
    rest = client.list_objects_v2(oss.ListObjectsV2Request(bucket=BUCKET, prefix="p/", start_after="p/01",
                                                           continuation_token=first.next_continuation_token))
    assert [o.key for o in rest.contents] == ["p/04", "p/05", "p/06"] and not rest.is_truncated


@pytest.mark.parametrize("params", [{"max-keys": "0"}, {"max-keys": "1001"}, {"max-keys": "x"},
                                    {"encoding-type": "base64"}, {"continuation-token": "%%%"}])
def test_list_refuses_out_of_range_arguments_with_invalid_argument(client: oss.Client,
                                                                   params: dict[str, str]) -> None:
    out = oss.OperationInput("ListObjectsV2", "GET", bucket=BUCKET, parameters={"list-type": "2", **params})
    err = v2_error(lambda: client.invoke_operation(out))
    assert (err.status_code, err.code) == (400, "InvalidArgument")


def test_list_owner_only_when_fetch_owner(client: oss.Client) -> None:
    put(client, "o.jpg")
    assert client.list_objects_v2(oss.ListObjectsV2Request(bucket=BUCKET)).contents[0].owner is None
    owned = client.list_objects_v2(oss.ListObjectsV2Request(bucket=BUCKET, fetch_owner=True)).contents[0]
    assert owned.owner is not None and owned.owner.id


# -- 6. forbid-overwrite ---------------------------------------------------------------------------------------
def test_concurrent_forbid_overwrite_creators_exactly_one_wins(server: OssStandin) -> None:
    contenders = 8
    barrier = threading.Barrier(contenders)
    outcomes: list[tuple[int, bytes]] = []
    lock = threading.Lock()

    def create(n: int) -> None:
        c = v2_client(server)
        body = f"contender-{n}".encode()
        barrier.wait()
        try:
            put(c, "claim.json", body, forbid_overwrite=True)
            status = 200
        except oss.exceptions.OperationError as exc:
            status = exc.unwrap().status_code
        with lock:
            outcomes.append((status, body))

    threads = [threading.Thread(target=create, args=(n,)) for n in range(contenders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    winners = [body for status, body in outcomes if status == 200]
    assert len(outcomes) == contenders and len(winners) == 1
    assert sorted(status for status, _ in outcomes) == [200] + [409] * (contenders - 1)
    assert get_body(v2_client(server), "claim.json") == winners[0]


def test_forbid_overwrite_is_atomic_across_two_state_instances_on_one_root(server: OssStandin) -> None:
    """Two OssState objects over one folder (the server and, say, a CLI tool) share no lock: the file system
    decides, so racing creators of a key never both succeed."""
    from permit_ocr_local.standins.oss import OssState
    from permit_ocr_local.standins.oss.errors import FileAlreadyExists

    states = [server.service.state, OssState(root_of(server))]
    rounds, wins = 150, [0] * 150
    barrier = threading.Barrier(2)

    def race(state: OssState, tag: bytes) -> None:
        for i in range(rounds):
            barrier.wait(timeout=10)
            try:
                state.put(BUCKET, f"race/{i}.json", tag * 1000, forbid_overwrite=True)
                wins[i] += 1
            except FileAlreadyExists:
                pass

    threads = [threading.Thread(target=race, args=(st, tag)) for st, tag in zip(states, (b"a", b"b"), strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert wins == [1] * rounds
    assert all(len(set(p.read_bytes())) == 1 for p in (root_of(server) / BUCKET / "race").iterdir())


def test_forbid_overwrite_false_or_absent_overwrites(client: oss.Client) -> None:
    put(client, "o.json", b"1", forbid_overwrite=True)
    put(client, "o.json", b"2", forbid_overwrite=False)
    assert get_body(client, "o.json") == b"2"
