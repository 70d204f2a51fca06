# ruff: noqa: F811  (the fixtures imported from test_standin are parameters by name)
"""The world refusing reads that are not about the image, as OSS answers them, through alibabacloud-oss-v2:
an Archive-class object not restored (403 InvalidObjectState), an SSE-KMS object whose key is disabled (409,
EC 0005-00000214) or may not be used by the requester (403 AccessDenied "This request is forbidden by kms"),
and a RAM policy changed while a client keeps its connection open (effective on the very next request)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import alibabacloud_oss_v2 as oss
import pytest
import requests

from permit_ocr_local.standins.oss import OssStandin
from permit_ocr_local.standins.oss.state import DEFAULT_KMS_KEY_ID
from standins.oss.test_standin import AK, BUCKET, client, clock, server  # noqa: F401  (fixtures are found by name)

KEY_ID = "9468da86-3509-4f8d-a61e-6eab1eac****"




def put(client: oss.Client, key: str, **kw: Any) -> Any:
    return client.put_object(oss.PutObjectRequest(bucket=BUCKET, key=key, body=b"image bytes", **kw))


def get(client: oss.Client, key: str) -> bytes:
    return bytes(client.get_object(oss.GetObjectRequest(bucket=BUCKET, key=key)).body.content)


def head(client: oss.Client, key: str) -> Any:
    return client.head_object(oss.HeadObjectRequest(bucket=BUCKET, key=key))


def refused(call: Callable[[], object]) -> Any:
    with pytest.raises(oss.exceptions.OperationError) as exc:
        call()
    return exc.value.unwrap()


# -- storage classes --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("storage_class", ["Standard", "IA"])
def test_standard_and_ia_objects_read_at_once_and_show_their_class(client: oss.Client, storage_class: str) -> None:
    put(client, "a.jpg", storage_class=storage_class)
    assert head(client, "a.jpg").storage_class == storage_class
    assert get(client, "a.jpg") == b"image bytes"


@pytest.mark.parametrize("storage_class", ["Archive", "ColdArchive", "DeepColdArchive"])
def test_a_frozen_object_is_refused_403_invalid_object_state_until_restored(client: oss.Client, server: OssStandin,
                                                                           storage_class: str) -> None:
    put(client, "a.jpg", storage_class=storage_class)
    assert head(client, "a.jpg").storage_class == storage_class  # its metadata reads
    err = refused(lambda: get(client, "a.jpg"))
    assert (err.status_code, err.code, err.ec) == (403, "InvalidObjectState", "0016-00000404")
    assert err.message == "The operation is not valid for the object's state"
    presigned = client.presign(oss.GetObjectRequest(bucket=BUCKET, key="a.jpg")).url
    assert requests.get(presigned, timeout=5).status_code == 403  # what OCR's fetch of a signed URL meets
    server.service.state.restore(BUCKET, "a.jpg", time.time())
    assert get(client, "a.jpg") == b"image bytes"
    assert 'ongoing-request="false"' in (head(client, "a.jpg").restore or "")


def test_a_restore_lasts_its_days_and_an_overwrite_is_frozen_again(client: oss.Client, server: OssStandin) -> None:
    put(client, "a.jpg", storage_class="Archive")
    server.service.state.restore(BUCKET, "a.jpg", time.time() - 2 * 24 * 3600, days=2)  # restored 2 days ago
    assert refused(lambda: get(client, "a.jpg")).code == "InvalidObjectState"
    server.service.state.restore(BUCKET, "a.jpg", time.time(), days=1)
    assert get(client, "a.jpg")
    put(client, "a.jpg", storage_class="Archive")  # a new object: not restored
    assert refused(lambda: get(client, "a.jpg")).code == "InvalidObjectState"


def test_listings_show_each_objects_storage_class(client: oss.Client) -> None:
    put(client, "l/a.jpg", storage_class="ColdArchive")
    put(client, "l/b.jpg")
    listing = client.list_objects_v2(oss.ListObjectsV2Request(bucket=BUCKET, prefix="l/"))
    assert [(o.key, o.storage_class) for o in listing.contents] == [("l/a.jpg", "ColdArchive"),
                                                                     ("l/b.jpg", "Standard")]


def test_an_unknown_storage_class_is_refused_and_writes_nothing(client: oss.Client) -> None:
    err = refused(lambda: put(client, "a.jpg", storage_class="Glacier"))
    assert (err.status_code, err.code) == (400, "InvalidArgument")
    assert refused(lambda: head(client, "a.jpg")).status_code == 404


# -- SSE-KMS ----------------------------------------------------------------------------------------------------
def test_a_kms_object_records_its_key_and_reads_while_the_key_is_usable(client: oss.Client) -> None:
    put(client, "k.jpg", server_side_encryption="KMS", server_side_encryption_key_id=KEY_ID)
    put(client, "d.jpg", server_side_encryption="KMS")
    assert (head(client, "k.jpg").server_side_encryption, head(client, "k.jpg").server_side_encryption_key_id) == \
        ("KMS", KEY_ID)
    assert head(client, "d.jpg").server_side_encryption_key_id == DEFAULT_KMS_KEY_ID
    assert get(client, "k.jpg") == get(client, "d.jpg") == b"image bytes"


def test_a_disabled_kms_key_refuses_reads_409_and_enabling_it_again_reads(client: oss.Client,
                                                                          server: OssStandin) -> None:
    put(client, "k.jpg", server_side_encryption="KMS", server_side_encryption_key_id=KEY_ID)
    put(client, "plain.jpg", server_side_encryption="AES256")
    server.service.state.set_kms_key(KEY_ID, "Disabled")
    err = refused(lambda: get(client, "k.jpg"))
    assert (err.status_code, err.ec) == (409, "0005-00000214")
    assert head(client, "k.jpg").server_side_encryption == "KMS"  # metadata still reads
    assert get(client, "plain.jpg") == b"image bytes"  # other objects are not about that key
    write = refused(lambda: put(client, "k2.jpg", server_side_encryption="KMS", server_side_encryption_key_id=KEY_ID))
    assert write.status_code == 409
    server.service.state.set_kms_key(KEY_ID, "Enabled")
    assert get(client, "k.jpg") == b"image bytes"


def test_a_kms_key_the_requester_may_not_use_is_403_forbidden_by_kms(client: oss.Client, server: OssStandin) -> None:
    put(client, "d.jpg", server_side_encryption="KMS")
    server.service.state.set_kms_key(DEFAULT_KMS_KEY_ID, "Forbidden")
    err = refused(lambda: get(client, "d.jpg"))
    assert (err.status_code, err.code, err.message) == (403, "AccessDenied", "This request is forbidden by kms.")


# -- permissions ------------------------------------------------------------------------------------------------
def test_a_policy_changed_at_run_time_takes_effect_on_the_next_request_of_an_open_connection(
        client: oss.Client, server: OssStandin) -> None:
    put(client, "uploads/a.jpg")
    ring = server.service.keyring
    assert get(client, "uploads/a.jpg")  # the client now holds a keep-alive connection
    ring.set_policy(AK, {"Statement": [{"Effect": "Allow", "Action": "oss:*", "Resource": "*"},
                                       {"Effect": "Deny", "Action": "oss:GetObject",
                                        "Resource": f"acs:oss:*:*:{BUCKET}/uploads/*"}]})
    err = refused(lambda: get(client, "uploads/a.jpg"))
    assert (err.status_code, err.code) == (403, "AccessDenied")
    assert refused(lambda: head(client, "uploads/a.jpg")).status_code == 403
    put(client, "uploads/b.jpg")  # only the read was taken away
    ring.set_policy(AK, None)
    assert get(client, "uploads/a.jpg") == b"image bytes"
