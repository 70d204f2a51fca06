# ruff: noqa: F811  (the fixtures imported from test_standin are parameters by name)
"""Bucket versioning in the OSS stand-in, as far as the function's claims depend on it, driven through
alibabacloud-oss-v2 (get_bucket_versioning / put_bucket_versioning, put_object's forbid_overwrite and
version_id). The fact pinned down: OSS PutObject reference, x-oss-forbid-overwrite — on a bucket whose
versioning is Enabled or Suspended the header has no effect and the PUT overwrites."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import alibabacloud_oss_v2 as oss
import oss2
import pytest
import requests

from permit_ocr_local.fcruntime.stack import LocalStack, StackOptions
from permit_ocr_local.standins.oss import OssStandin
from standins.oss.test_standin import AK, BUCKET, SK, client, clock, server  # noqa: F401  (fixtures)

PLAIN, VERSIONED = "plain-bucket", BUCKET
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # oss2 calls datetime.utcnow()


@pytest.fixture(autouse=True)
def plain_bucket(server: OssStandin) -> None:
    server.service.state.create_bucket(PLAIN)


def set_versioning(client: oss.Client, bucket: str, status: str) -> None:
    client.put_bucket_versioning(oss.PutBucketVersioningRequest(
        bucket=bucket, versioning_configuration=oss.VersioningConfiguration(status=status)))


def versioning(client: oss.Client, bucket: str) -> str | None:
    status: str | None = client.get_bucket_versioning(oss.GetBucketVersioningRequest(bucket=bucket)).version_status
    return status


def put(client: oss.Client, bucket: str, key: str, body: bytes, **kw: Any) -> Any:
    return client.put_object(oss.PutObjectRequest(bucket=bucket, key=key, body=body, **kw))


def body_of(client: oss.Client, bucket: str, key: str) -> bytes:
    return bytes(client.get_object(oss.GetObjectRequest(bucket=bucket, key=key)).body.content)


def test_a_bucket_never_versioned_answers_a_configuration_without_status(client: oss.Client,
                                                                          server: OssStandin) -> None:
    assert versioning(client, PLAIN) is None
    raw = oss2.Bucket(oss2.Auth(AK, SK), server.url, PLAIN)
    assert raw.get_bucket_versioning().status is None  # oss2 reads the same document


@pytest.mark.parametrize("status", ["Enabled", "Suspended"])
def test_put_bucket_versioning_sets_what_get_bucket_versioning_reads(client: oss.Client, status: str) -> None:
    set_versioning(client, VERSIONED, status)
    assert versioning(client, VERSIONED) == status
    assert versioning(client, PLAIN) is None  # per bucket


def test_versioning_can_be_suspended_and_enabled_again_but_never_unset(client: oss.Client,
                                                                       server: OssStandin) -> None:
    set_versioning(client, VERSIONED, "Enabled")
    set_versioning(client, VERSIONED, "Suspended")
    assert versioning(client, VERSIONED) == "Suspended"
    set_versioning(client, VERSIONED, "Enabled")
    assert versioning(client, VERSIONED) == "Enabled"
    for body in (b"<VersioningConfiguration><Status>Off</Status></VersioningConfiguration>",
                 b"<VersioningConfiguration/>", b"<Versioning><Status>Enabled</Status></Versioning>", b"<not xml"):
        op = oss.OperationInput("PutBucketVersioning", "PUT", bucket=VERSIONED, parameters={"versioning": ""},
                                headers={"Content-Type": "application/xml"}, body=body)
        with pytest.raises(oss.exceptions.OperationError) as exc:
            client.invoke_operation(op)
        assert (exc.value.unwrap().status_code, exc.value.unwrap().code) == (400, "MalformedXML"), body
    assert versioning(client, VERSIONED) == "Enabled"


def test_forbid_overwrite_refuses_a_second_put_on_an_unversioned_bucket(client: oss.Client) -> None:
    put(client, PLAIN, "claim.json", b"first", forbid_overwrite=True)
    with pytest.raises(oss.exceptions.OperationError) as exc:
        put(client, PLAIN, "claim.json", b"second", forbid_overwrite=True)
    assert (exc.value.unwrap().status_code, exc.value.unwrap().code) == (409, "FileAlreadyExists")
    assert body_of(client, PLAIN, "claim.json") == b"first"


@pytest.mark.parametrize("status", ["Enabled", "Suspended"])
def test_forbid_overwrite_is_ignored_on_a_versioned_or_suspended_bucket_and_the_put_overwrites(
        client: oss.Client, status: str) -> None:
    set_versioning(client, VERSIONED, status)
    put(client, VERSIONED, "claim.json", b"first", forbid_overwrite=True)
    put(client, VERSIONED, "claim.json", b"second", forbid_overwrite=True)  # no 409: the claim excludes nobody
    assert body_of(client, VERSIONED, "claim.json") == b"second"


def test_a_put_on_an_enabled_bucket_answers_a_new_version_id_and_reads_show_it(client: oss.Client) -> None:
    set_versioning(client, VERSIONED, "Enabled")
    first = put(client, VERSIONED, "a.jpg", b"1").version_id
    second = put(client, VERSIONED, "a.jpg", b"2").version_id
    assert first and second and first != second
    head = client.head_object(oss.HeadObjectRequest(bucket=VERSIONED, key="a.jpg"))
    got = client.get_object(oss.GetObjectRequest(bucket=VERSIONED, key="a.jpg"))
    assert head.version_id == got.version_id == second
    deleted = client.delete_object(oss.DeleteObjectRequest(bucket=VERSIONED, key="a.jpg"))
    assert deleted.delete_marker is True and deleted.version_id


@pytest.mark.parametrize("status", [None, "Suspended"])
def test_no_version_id_is_answered_unless_versioning_is_enabled(client: oss.Client, status: str | None) -> None:
    if status:
        set_versioning(client, VERSIONED, status)
    assert put(client, VERSIONED, "a.jpg", b"1").version_id is None
    assert client.head_object(oss.HeadObjectRequest(bucket=VERSIONED, key="a.jpg")).version_id is None


def test_older_versions_are_not_kept_so_reads_by_version_id_are_refused_not_misanswered(
        client: oss.Client, server: OssStandin) -> None:
    set_versioning(client, VERSIONED, "Enabled")
    first = put(client, VERSIONED, "a.jpg", b"1").version_id
    put(client, VERSIONED, "a.jpg", b"2")
    url = oss2.Bucket(oss2.Auth(AK, SK), server.url, VERSIONED).sign_url("GET", "a.jpg", 60,
                                                                         params={"versionId": first})
    resp = requests.get(url, timeout=5)
    assert resp.status_code == 501 and b"NotImplemented" in resp.content


def test_versioning_persists_for_another_state_on_the_same_root(client: oss.Client, server: OssStandin) -> None:
    from permit_ocr_local.standins.oss import OssState

    set_versioning(client, VERSIONED, "Enabled")
    assert OssState(server.service.state.root).versioning(VERSIONED) == "Enabled"


def test_a_ram_policy_governs_bucket_versioning_like_any_action(client: oss.Client, server: OssStandin) -> None:
    server.service.keyring.set_policy(AK, {"Statement": [
        {"Effect": "Allow", "Action": "oss:GetBucketVersioning", "Resource": "acs:oss:*:*:*"}]})
    assert versioning(client, VERSIONED) is None
    with pytest.raises(oss.exceptions.OperationError) as exc:
        set_versioning(client, VERSIONED, "Enabled")
    assert (exc.value.unwrap().status_code, exc.value.unwrap().code) == (403, "AccessDenied")


def test_the_stack_creates_versioned_buckets_when_asked(tmp_path: Path) -> None:
    opts = StackOptions(root=tmp_path, versioned_buckets={"permit-ocr-out": "Enabled", "permit-ocr-demo": "Suspended"})
    with LocalStack(opts) as stack:
        assert stack.oss is not None
        state = stack.oss.service.state
        assert (state.versioning("permit-ocr-out"), state.versioning("permit-ocr-demo")) == ("Enabled", "Suspended")
