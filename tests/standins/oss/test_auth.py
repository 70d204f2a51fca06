"""Pure tests of the OSS signature verifier: the captured vectors of oss.md §3, and SDK-signed URLs (signing
needs no network) checked at chosen instants."""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import timedelta
from urllib.parse import urlsplit

import alibabacloud_oss_v2 as oss
import oss2
import pytest

from permit_ocr_local.standins.http import Request
from permit_ocr_local.standins.keyring import Keyring
from permit_ocr_local.standins.oss import auth
from permit_ocr_local.standins.oss.errors import (
    AccessDenied,
    InvalidAccessKeyId,
    InvalidArgument,
    InvalidSecurityToken,
    OssError,
    SecurityTokenExpired,
    SignatureDoesNotMatch,
)

KEY = "uploads/2024/照片 1+x.jpg"
TOKEN = "CAIS+token/with=special&chars=="
AK, SK = "LTAI5tTESTKEY", "test-secret"
STS_AK, STS_SK = "STS.NTestTempKey", "sts-secret"
REGION = "cn-hangzhou"
ENDPOINT = "http://127.0.0.1:9"  # never contacted: only used to build URLs


def keyring(sts_expires_at: float | None = None) -> Keyring:
    ring = Keyring()
    ring.add(AK, SK)
    ring.add(STS_AK, STS_SK, security_token=TOKEN, expires_at=sts_expires_at)
    return ring


def url_request(url: str, method: str = "GET", headers: tuple[tuple[str, str], ...] = ()) -> Request:
    parts = urlsplit(url)
    return Request(method, parts.path, parts.query, headers, b"")


def check(req: Request, ring: Keyring | None = None, now: float | None = None) -> auth.Principal:
    bucket, _, key = req.path.lstrip("/").partition("/")
    return auth.verify(req, bucket, key, ring or keyring(), REGION, time.time() if now is None else now)


def oss2_url(auth_obj: oss2.Auth | oss2.StsAuth | oss2.AuthV4, expires: int = 600, **kw: bool) -> str:
    bucket = oss2.Bucket(auth_obj, ENDPOINT, "mybucket", region=REGION)
    return str(bucket.sign_url("GET", KEY, expires, **kw))


def v2_url(ak: str = AK, sk: str = SK, token: str | None = None, minutes: int = 10) -> str:
    cfg = oss.config.load_default()
    cfg.credentials_provider = oss.credentials.StaticCredentialsProvider(ak, sk, token)
    cfg.region, cfg.endpoint = REGION, ENDPOINT
    client = oss.Client(cfg)
    return str(client.presign(oss.GetObjectRequest(bucket="mybucket", key=KEY), expires=timedelta(minutes=minutes)).url)


def replace_param(url: str, name: str, value: str) -> str:
    base, _, query = url.partition("?")
    parts = [p if p.split("=")[0] != name else f"{name}={value}" for p in query.split("&")]
    return base + "?" + "&".join(parts)


def drop_param(url: str, name: str) -> str:
    base, _, query = url.partition("?")
    return base + "?" + "&".join(p for p in query.split("&") if p.split("=")[0] != name)


# -- captured vectors (oss.md §3.2, §3.3) ---------------------------------------------------------------------
DATE = "Wed, 25 Nov 2026 05:48:27 GMT"
PUT_HEADERS = {"content-md5": ["0iqj/9s90yI6oRnlf8P/dw=="], "content-type": ["application/json"],
               "x-oss-forbid-overwrite": ["true"], "x-oss-meta-source": ["ocr-fc"],
               "x-oss-security-token": [TOKEN], "x-oss-server-side-encryption": ["AES256"],
               "x-oss-tagging": ["k1=v1&k2=v2"]}


@pytest.mark.parametrize(("method", "headers", "date", "key", "query", "expected"), [
    ("GET", {}, "1795589300", KEY, [], f"GET\n\n\n1795589300\n/mybucket/{KEY}"),
    ("GET", {}, "1795589300", KEY, [("security-token", TOKEN)],
     f"GET\n\n\n1795589300\n/mybucket/{KEY}?security-token={TOKEN}"),
    ("GET", {}, DATE, KEY, [], f"GET\n\n\n{DATE}\n/mybucket/{KEY}"),
    ("HEAD", {}, DATE, KEY, [], f"HEAD\n\n\n{DATE}\n/mybucket/{KEY}"),
    ("GET", {"x-oss-security-token": [TOKEN]}, DATE, KEY, [],
     f"GET\n\n\n{DATE}\nx-oss-security-token:{TOKEN}\n/mybucket/{KEY}"),
    ("PUT", PUT_HEADERS, "Wed, 25 Nov 2026 05:48:20 GMT", "uploads/img.ocr.json", [],
     "PUT\n0iqj/9s90yI6oRnlf8P/dw==\napplication/json\nWed, 25 Nov 2026 05:48:20 GMT\nx-oss-forbid-overwrite:true\n"
     f"x-oss-meta-source:ocr-fc\nx-oss-security-token:{TOKEN}\nx-oss-server-side-encryption:AES256\n"
     "x-oss-tagging:k1=v1&k2=v2\n/mybucket/uploads/img.ocr.json"),
])
def test_v1_string_to_sign_matches_captured_vectors(method: str, headers: dict[str, list[str]], date: str,
                                                    key: str, query: auth.Query, expected: str) -> None:
    resource = auth.v1_canonical_resource("mybucket", key, query)
    assert auth.v1_string_to_sign(method, headers, date, resource) == expected


def test_v1_resource_keeps_only_whitelisted_subresources_sorted_and_decoded() -> None:
    query = auth.parse_query("prefix=a&uploadId=x%2By&acl&list-type=2")
    assert auth.v1_canonical_resource("b", "k", query) == "/b/k?acl&uploadId=x+y"


def test_v4_canonical_request_matches_captured_sts_presign_vector() -> None:
    query = auth.parse_query(
        "x-oss-security-token=CAIS%2Btoken%2Fwith%3Dspecial%26chars%3D%3D&x-oss-date=20261125T054820Z"
        "&x-oss-expires=600&x-oss-signature-version=OSS4-HMAC-SHA256"
        "&x-oss-credential=STS.NTestTempKey%2F20261125%2Fcn-hangzhou%2Foss%2Faliyun_v4_request&x-oss-signature=9ce8")
    assert auth.v4_canonical_request("GET", "mybucket", KEY, query, {}, [], "UNSIGNED-PAYLOAD") == (
        "GET\n/mybucket/uploads/2024/%E7%85%A7%E7%89%87%201%2Bx.jpg\n"
        "x-oss-credential=STS.NTestTempKey%2F20261125%2Fcn-hangzhou%2Foss%2Faliyun_v4_request"
        "&x-oss-date=20261125T054820Z&x-oss-expires=600"
        "&x-oss-security-token=CAIS%2Btoken%2Fwith%3Dspecial%26chars%3D%3D&x-oss-signature-version=OSS4-HMAC-SHA256"
        "\n\n\nUNSIGNED-PAYLOAD")


def test_v4_string_to_sign_matches_captured_presign_vector() -> None:
    query = auth.parse_query(
        "x-oss-date=20261125T054827Z&x-oss-expires=3600&x-oss-signature-version=OSS4-HMAC-SHA256"
        "&x-oss-credential=LTAI5tTESTKEY%2F20261125%2Fcn-hangzhou%2Foss%2Faliyun_v4_request")
    canonical = auth.v4_canonical_request("GET", "mybucket", KEY, query, {}, [], "UNSIGNED-PAYLOAD")
    assert auth.v4_string_to_sign("20261125T054827Z", "20261125/cn-hangzhou/oss/aliyun_v4_request", canonical) == (
        "OSS4-HMAC-SHA256\n20261125T054827Z\n20261125/cn-hangzhou/oss/aliyun_v4_request\n"
        "91bfe71681044704276beb2fb2ca96dec484950113ed0247b1ee39234857d0e0")


def test_v4_header_mode_canonical_request_matches_captured_put_vector() -> None:
    headers = {k: v for k, v in PUT_HEADERS.items() if k != "x-oss-security-token"}
    headers |= {"x-oss-content-sha256": ["UNSIGNED-PAYLOAD"], "x-oss-date": ["20261125T054827Z"],
                "authorization": ["OSS4-HMAC-SHA256 ..."], "user-agent": ["x"]}
    assert auth.v4_canonical_request("PUT", "mybucket", "uploads/img.ocr.json", [], headers, [],
                                     "UNSIGNED-PAYLOAD") == (
        "PUT\n/mybucket/uploads/img.ocr.json\n\ncontent-md5:0iqj/9s90yI6oRnlf8P/dw==\ncontent-type:application/json\n"
        "x-oss-content-sha256:UNSIGNED-PAYLOAD\nx-oss-date:20261125T054827Z\nx-oss-forbid-overwrite:true\n"
        "x-oss-meta-source:ocr-fc\nx-oss-server-side-encryption:AES256\nx-oss-tagging:k1=v1&k2=v2\n\n\n"
        "UNSIGNED-PAYLOAD")


def test_v4_signing_key_chain_is_hmac_sha256_over_date_region_oss_request() -> None:
    sig = auth.v4_signature("sk", "20261125", "cn-hangzhou", "sts")
    k = b"aliyun_v4sk"
    for part in (b"20261125", b"cn-hangzhou", b"oss", b"aliyun_v4_request"):
        k = hmac.new(k, part, hashlib.sha256).digest()
    assert sig == hmac.new(k, b"sts", hashlib.sha256).hexdigest()


# -- SDK-signed URLs through verify() -------------------------------------------------------------------------
@pytest.mark.parametrize("slash_safe", [False, True])
def test_oss2_v1_signed_url_is_accepted_with_either_slash_encoding(slash_safe: bool) -> None:
    principal = check(url_request(oss2_url(oss2.Auth(AK, SK), slash_safe=slash_safe)))
    assert principal == auth.Principal(AK, "v1", presigned=True)


def test_oss2_v1_sts_signed_url_is_accepted_and_needs_its_token() -> None:
    url = oss2_url(oss2.StsAuth(STS_AK, STS_SK, TOKEN))
    assert check(url_request(url)).access_key_id == STS_AK
    with pytest.raises(InvalidSecurityToken):
        check(url_request(drop_param(url, "security-token")))


def test_v1_url_is_refused_after_its_expires_epoch() -> None:
    url = oss2_url(oss2.Auth(AK, SK), expires=60)
    with pytest.raises(AccessDenied, match="expired"):
        check(url_request(url), now=time.time() + 61)


@pytest.mark.parametrize("auth_obj", [oss2.Auth(AK, "wrong-secret"), oss2.AuthV4(AK, "wrong-secret")])
def test_url_signed_with_a_wrong_secret_is_refused(auth_obj: oss2.Auth) -> None:
    with pytest.raises(SignatureDoesNotMatch):
        check(url_request(oss2_url(auth_obj)))


def test_tampered_signature_is_refused_in_both_versions() -> None:
    with pytest.raises(SignatureDoesNotMatch):
        check(url_request(replace_param(oss2_url(oss2.Auth(AK, SK)), "Signature", "AAAA")))
    v4 = v2_url()
    with pytest.raises(SignatureDoesNotMatch):
        check(url_request(replace_param(v4, "x-oss-signature", "0" * 64)))


def test_oss2_v4_and_oss_v2_presigned_urls_are_accepted() -> None:
    assert check(url_request(oss2_url(oss2.AuthV4(AK, SK)))) == auth.Principal(AK, "v4", presigned=True)
    assert check(url_request(v2_url())).access_key_id == AK


def test_v4_sts_url_needs_the_right_token_and_an_unexpired_one() -> None:
    url = v2_url(STS_AK, STS_SK, TOKEN)
    assert check(url_request(url)).access_key_id == STS_AK
    with pytest.raises(InvalidSecurityToken):
        check(url_request(drop_param(url, "x-oss-security-token")))
    with pytest.raises(InvalidSecurityToken):
        check(url_request(replace_param(url, "x-oss-security-token", "forged")))
    with pytest.raises(SecurityTokenExpired):  # the STS expiry wins over the URL's own
        check(url_request(url), ring=keyring(sts_expires_at=time.time() - 1))


def test_v4_url_is_refused_once_date_plus_expires_has_passed() -> None:
    with pytest.raises(AccessDenied, match="expired"):
        check(url_request(v2_url(minutes=1)), now=time.time() + 120)


def test_v4_expires_beyond_seven_days_is_invalid_argument() -> None:
    url = oss2_url(oss2.AuthV4(AK, SK), expires=8 * 24 * 3600)  # oss2 does not guard the limit
    with pytest.raises(InvalidArgument) as exc:
        check(url_request(url))
    assert exc.value.ec == "0002-00000232"


def test_v4_credential_date_must_equal_x_oss_date_date() -> None:
    url = v2_url()
    date = (auth.query_value(auth.parse_query(urlsplit(url).query), "x-oss-date") or "")[:8]
    forged = replace_param(url, "x-oss-credential", f"{AK}%2F20200101%2F{REGION}%2Foss%2Faliyun_v4_request")
    assert date != "20200101"
    with pytest.raises(InvalidArgument, match="date"):
        check(url_request(forged))


def test_v4_credential_for_another_region_is_refused() -> None:
    bucket = oss2.Bucket(oss2.AuthV4(AK, SK), ENDPOINT, "mybucket", region="cn-shanghai")
    with pytest.raises(InvalidArgument, match="region"):
        check(url_request(bucket.sign_url("GET", KEY, 60)))


def test_unknown_access_key_is_invalid_access_key_id() -> None:
    with pytest.raises(InvalidAccessKeyId):
        check(url_request(oss2_url(oss2.Auth("LTAInobody", SK))))


def test_unsigned_request_is_access_denied() -> None:
    with pytest.raises(AccessDenied):
        check(Request("GET", "/mybucket/k", "", (), b""))


def test_v1_header_mode_refuses_a_date_more_than_15_minutes_off() -> None:
    date = "Wed, 25 Nov 2026 05:48:27 GMT"
    resource = auth.v1_canonical_resource("mybucket", "k", [])
    sig = auth.v1_signature(SK, auth.v1_string_to_sign("GET", {}, date, resource))
    req = Request("GET", "/mybucket/k", "", (("Date", date), ("Authorization", f"OSS {AK}:{sig}")), b"")
    now = 1795585707.0  # 2026-11-25T05:48:27Z
    assert check(req, now=now + 60).access_key_id == AK
    with pytest.raises(OssError) as exc:
        check(req, now=now + 16 * 60)
    assert exc.value.code == "RequestTimeTooSkewed"
