"""ACS3-HMAC-SHA256 verification against the captured SDK requests (ocr-api.md §6) and hand-signed ones."""

from __future__ import annotations

import calendar
import hashlib
import hmac
import time
from urllib.parse import quote, urlencode

import pytest

from permit_ocr_local.standins import acs3
from permit_ocr_local.standins.acs3 import GatewayError
from permit_ocr_local.standins.keyring import Keyring
from permit_ocr_local.standins.ocr.errors import OcrError

EMPTY_SHA = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
BODY_SHA = "e9d1c68b1eb607c7077f0e016eb15efbb5c94bb33bf3ef12700cc2438846277d"  # captures #2-#4 (8004 bytes)
NOW = float(calendar.timegm(time.strptime("2026-11-25T05:48:28Z", "%Y-%m-%dT%H:%M:%SZ")))
AGENT = "AlibabaCloud (Linux; x86_64) Python/3.11.7 Core/0.4.3 TeaDSL/2"
CAPTURE1_QUERY = "OutputFigure=True&Url=https%3A%2F%2Fexample.com%2Fa+b%2F%E8%AF%81%E4%BB%B6.jpg%3Fx%3D1%26y%3D2"
CAPTURE1_SIGNED = ("accept;host;user-agent;x-acs-action;x-acs-content-sha256;x-acs-credentials-provider;"
                   "x-acs-date;x-acs-signature-nonce;x-acs-version")
CAPTURE1_HEADERS = [
    ("Accept-Encoding", "identity"),
    ("host", "127.0.0.1:34311"),
    ("x-acs-version", "2021-07-07"),
    ("x-acs-action", "RecognizeExitEntryPermitToMainland"),
    ("user-agent", AGENT),
    ("x-acs-date", "2026-11-25T05:48:28Z"),
    ("x-acs-signature-nonce", "8c6d76ee972cdfdd87970a5dc7b984e6"),
    ("accept", "application/json"),
    ("x-acs-content-sha256", EMPTY_SHA),
    ("x-acs-credentials-provider", "static_ak"),
    ("Authorization", f"ACS3-HMAC-SHA256 Credential=LTAI_TEST_AK,SignedHeaders={CAPTURE1_SIGNED},"
                      "Signature=95c5d4a0c5db757c1a8d6081e494392d861186ed3733d3770d3620fd5e6fc30c"),
    ("Content-Length", "0"),
]
CAPTURE1_CANONICAL = """POST
/
OutputFigure=True&Url=https%3A%2F%2Fexample.com%2Fa%20b%2F%E8%AF%81%E4%BB%B6.jpg%3Fx%3D1%26y%3D2
accept:application/json
host:127.0.0.1:34311
user-agent:AlibabaCloud (Linux; x86_64) Python/3.11.7 Core/0.4.3 TeaDSL/2
x-acs-action:RecognizeExitEntryPermitToMainland
x-acs-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
x-acs-credentials-provider:static_ak
x-acs-date:2026-11-25T05:48:28Z
x-acs-signature-nonce:8c6d76ee972cdfdd87970a5dc7b984e6
x-acs-version:2021-07-07

accept;host;user-agent;x-acs-action;x-acs-content-sha256;x-acs-credentials-provider;x-acs-date;x-acs-signature-nonce;x-acs-version
e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"""


def client_sign(query: dict[str, str], body: bytes, ak: str, secret: str, *, date: str = "2026-11-25T05:48:28Z",
                nonce: str = "n-1", token: str | None = None) -> tuple[str, list[tuple[str, str]]]:
    """The client side of §5.1, written independently: returns (wire query, headers)."""
    h = {"host": "127.0.0.1:34311", "x-acs-version": "2021-07-07",
         "x-acs-action": "RecognizeExitEntryPermitToMainland", "x-acs-date": date,
         "x-acs-signature-nonce": nonce, "accept": "application/json",
         "x-acs-content-sha256": hashlib.sha256(body).hexdigest(),
         "x-acs-credentials-provider": "static_sts" if token else "static_ak"}
    if token:
        h.update({"x-acs-accesskey-id": ak, "x-acs-security-token": token})
    names = sorted(h)
    cq = "&".join(f"{k}={quote(query[k], safe='~')}" for k in sorted(query))
    creq = "\n".join(["POST", "/", cq, "".join(f"{n}:{h[n].strip()}\n" for n in names), ";".join(names),
                      h["x-acs-content-sha256"]])
    sts = "ACS3-HMAC-SHA256\n" + hashlib.sha256(creq.encode()).hexdigest()
    sig = hmac.new(secret.encode(), sts.encode(), hashlib.sha256).hexdigest()
    auth = f"ACS3-HMAC-SHA256 Credential={ak},SignedHeaders={';'.join(names)},Signature={sig}"
    return urlencode(query), [*h.items(), ("Authorization", auth)]


@pytest.fixture
def keyring() -> Keyring:
    kr = Keyring()
    kr.add("LTAI_TEST_AK", "TEST_SECRET_123")
    kr.add("STS.AKID", "STS_SECRET", "SECTOKEN==abc/+", expires_at=NOW + 3600)
    return kr


def verify(query: str, headers: list[tuple[str, str]], body: bytes, keyring: Keyring, now: float = NOW,
           nonces: acs3.NonceCache | None = None) -> acs3.Verified:
    return acs3.verify("POST", "/", query, headers, body, keyring, now=now, nonces=nonces)


def code_of(query: str, headers: list[tuple[str, str]], body: bytes, keyring: Keyring, **kw: float) -> str:
    with pytest.raises(GatewayError) as info:
        verify(query, headers, body, keyring, **kw)  # type: ignore[arg-type]
    return info.value.code


def test_capture1_canonical_request_is_reproduced() -> None:
    h = acs3.header_lists(CAPTURE1_HEADERS)
    assert acs3.canonical_request("POST", "/", CAPTURE1_QUERY, h, CAPTURE1_SIGNED, EMPTY_SHA) == CAPTURE1_CANONICAL
    assert acs3.signature("TEST_SECRET_123", CAPTURE1_CANONICAL) == (
        "95c5d4a0c5db757c1a8d6081e494392d861186ed3733d3770d3620fd5e6fc30c")


def test_capture1_verifies(keyring: Keyring) -> None:
    assert verify(CAPTURE1_QUERY, CAPTURE1_HEADERS, b"", keyring) == acs3.Verified(
        "LTAI_TEST_AK", "8c6d76ee972cdfdd87970a5dc7b984e6")


@pytest.mark.parametrize(("nonce", "extra", "secret", "expected"), [
    ("afad4556292dfc4e6ef44b30bcf3df94", {}, "TEST_SECRET_123",
     "e7e150b5ab409ca488f26872a51bff64b7e3076e0c95e2f2ed2c576a8902939a"),
    ("9c5461b0cc6d0edebb802e9c9d46af31", {"x-acs-accesskey-id": "STS.AKID", "x-acs-security-token": "SECTOKEN==abc/+"},
     "STS_SECRET", "20863246a050973ef46da937ba78f2a900246d4e11d603734782c1c572a54f9e"),
])
def test_captures_2_and_4_signatures(nonce: str, extra: dict[str, str], secret: str, expected: str) -> None:
    """The bodies were not kept, but the canonical request only needs their hash."""
    h = {"host": "127.0.0.1:34311", "x-acs-version": "2021-07-07",
         "x-acs-action": "RecognizeExitEntryPermitToMainland", "user-agent": AGENT,
         "x-acs-date": "2026-11-25T05:48:28Z", "x-acs-signature-nonce": nonce, "accept": "application/json",
         "content-type": "application/octet-stream", "x-acs-content-sha256": BODY_SHA,
         "x-acs-credentials-provider": "static_sts" if extra else "static_ak", **extra}
    signed = ";".join(sorted(h))
    creq = acs3.canonical_request("POST", "/", "", acs3.header_lists(h.items()), signed, BODY_SHA)
    assert acs3.signature(secret, creq) == expected


def test_canonical_query_decodes_plus_and_reencodes_rfc3986() -> None:
    assert acs3.canonical_query("b=a+b%2Bc&a=%7E%2F&c=") == "a=~%2F&b=a%20b%2Bc&c="


def test_wrong_secret_and_injected_query_are_rejected(keyring: Keyring) -> None:
    query, headers = client_sign({"OutputFigure": "True"}, b"img", "LTAI_TEST_AK", "WRONG")
    assert code_of(query, headers, b"img", keyring) == "SignatureDoesNotMatch"
    query, headers = client_sign({"OutputFigure": "True"}, b"img", "LTAI_TEST_AK", "TEST_SECRET_123")
    assert verify(query, headers, b"img", keyring).access_key_id == "LTAI_TEST_AK"
    assert code_of(query + "&Url=http%3A%2F%2Fevil", headers, b"img", keyring) == "SignatureDoesNotMatch"


def test_tampered_body_fails_the_content_hash(keyring: Keyring) -> None:
    query, headers = client_sign({}, b"image-bytes", "LTAI_TEST_AK", "TEST_SECRET_123")
    with pytest.raises(GatewayError) as info:
        verify(query, headers, b"image-bytez", keyring)
    assert (info.value.code, OcrError(info.value.code).status) == ("SignatureDoesNotMatch", 400)
    assert "x-acs-content-sha256" in str(info.value.message)


def test_malformed_authorization_and_signed_headers(keyring: Keyring) -> None:
    query, headers = client_sign({}, b"", "LTAI_TEST_AK", "TEST_SECRET_123")
    auth = dict(headers)["Authorization"]
    no_auth = [(k, v) for k, v in headers if k != "Authorization"]
    assert code_of(query, no_auth, b"", keyring) == "IncompleteSignature"
    assert code_of(query, [*no_auth, ("Authorization", auth.replace("HMAC", "HMAX"))], b"",
                   keyring) == "IncompleteSignature"
    unsorted = auth.replace("accept;host", "host;accept")
    assert code_of(query, [*no_auth, ("Authorization", unsorted)], b"", keyring) == "IncompleteSignature"
    # an x-acs-* header sent but not signed
    assert code_of(query, [*headers, ("x-acs-retry-attempts", "1")], b"", keyring) == "IncompleteSignature"
    no_sha = [(k, v) for k, v in headers if k != "x-acs-content-sha256"]
    assert code_of(query, no_sha, b"", keyring) == "IncompleteSignature"


def test_unknown_access_key_is_404(keyring: Keyring) -> None:
    query, headers = client_sign({}, b"", "NOPE", "x")
    with pytest.raises(GatewayError) as info:
        verify(query, headers, b"", keyring)
    assert (info.value.code, OcrError(info.value.code).status) == ("InvalidAccessKeyId.NotFound", 404)


@pytest.mark.parametrize(("skew", "ok"), [(-14 * 60, True), (14 * 60, True), (16 * 60, False), (-16 * 60, False)])
def test_date_must_be_within_15_minutes(keyring: Keyring, skew: int, ok: bool) -> None:
    query, headers = client_sign({}, b"", "LTAI_TEST_AK", "TEST_SECRET_123")
    if ok:
        verify(query, headers, b"", keyring, now=NOW + skew)
    else:
        assert code_of(query, headers, b"", keyring, now=NOW + skew) == "InvalidTimeStamp.Expired"


def test_unparsable_date(keyring: Keyring) -> None:
    query, headers = client_sign({}, b"", "LTAI_TEST_AK", "TEST_SECRET_123", date="Wed, 25 Nov 2026")
    assert code_of(query, headers, b"", keyring) == "InvalidTimeStamp.Format"


def test_nonce_reuse_is_refused_for_15_minutes(keyring: Keyring) -> None:
    nonces = acs3.NonceCache()
    query, headers = client_sign({}, b"", "LTAI_TEST_AK", "TEST_SECRET_123", nonce="once")
    verify(query, headers, b"", keyring, nonces=nonces)
    with pytest.raises(GatewayError, match="SignatureNonceUsed"):
        verify(query, headers, b"", keyring, now=NOW + 60, nonces=nonces)
    # a reuse after 15 min already fails the date check; the cache may forget it then
    assert nonces.use("LTAI_TEST_AK", "once", NOW + 15 * 60 + 1)


def test_nonce_cache_is_bounded() -> None:
    cache = acs3.NonceCache(max_entries=3)
    assert all(cache.use("ak", f"n{i}", NOW) for i in range(5))
    assert cache.use("ak", "n0", NOW)  # evicted: the bound wins over replay protection
    assert not cache.use("ak", "n4", NOW)
    assert cache.use("other-ak", "n4", NOW)


def test_failed_signature_does_not_burn_the_nonce(keyring: Keyring) -> None:
    nonces = acs3.NonceCache()
    query, bad = client_sign({}, b"", "LTAI_TEST_AK", "WRONG", nonce="n")
    with pytest.raises(GatewayError):
        verify(query, bad, b"", keyring, nonces=nonces)
    query, good = client_sign({}, b"", "LTAI_TEST_AK", "TEST_SECRET_123", nonce="n")
    verify(query, good, b"", keyring, nonces=nonces)


def test_sts_token_rules(keyring: Keyring) -> None:
    query, headers = client_sign({}, b"x", "STS.AKID", "STS_SECRET", token="SECTOKEN==abc/+")
    assert verify(query, headers, b"x", keyring).access_key_id == "STS.AKID"
    query, headers = client_sign({}, b"x", "STS.AKID", "STS_SECRET", token="OTHER")
    assert code_of(query, headers, b"x", keyring) == "invalidStsToken"
    query, headers = client_sign({}, b"x", "STS.AKID", "STS_SECRET")  # STS key without its token
    assert code_of(query, headers, b"x", keyring) == "invalidStsToken"
    query, headers = client_sign({}, b"x", "STS.AKID", "STS_SECRET", token="SECTOKEN==abc/+",
                                 date="2026-11-25T06:48:29Z")
    assert code_of(query, headers, b"x", keyring, now=NOW + 3601) == "InvalidSecurityToken.Expired"


def test_sts_accesskey_header_must_name_the_signer(keyring: Keyring) -> None:
    _, headers = client_sign({}, b"x", "STS.AKID", "STS_SECRET", token="SECTOKEN==abc/+")
    headers = [(k, "LTAI_TEST_AK" if k == "x-acs-accesskey-id" else v) for k, v in headers]
    # re-signed with the lying header, so only the mismatch is at fault
    query, headers = _resign(headers, "STS.AKID", "STS_SECRET")
    assert code_of(query, headers, b"x", keyring) == "SignatureDoesNotMatch"


def _resign(headers: list[tuple[str, str]], ak: str, secret: str) -> tuple[str, list[tuple[str, str]]]:
    h = {k: v for k, v in headers if k != "Authorization"}
    names = sorted(h)
    creq = "\n".join(["POST", "/", "", "".join(f"{n}:{h[n]}\n" for n in names), ";".join(names),
                      h["x-acs-content-sha256"]])
    sig = acs3.signature(secret, creq)
    return "", [*h.items(), ("Authorization", f"ACS3-HMAC-SHA256 Credential={ak},SignedHeaders={';'.join(names)},"
                                              f"Signature={sig}")]


def test_duplicate_header_values_are_sorted_and_joined() -> None:
    h = acs3.header_lists([("X-Acs-Foo", " b "), ("x-acs-foo", "a")])
    assert acs3.canonical_headers(h, ["x-acs-foo", "x-absent"]) == "x-acs-foo:a,b\nx-absent:\n"
