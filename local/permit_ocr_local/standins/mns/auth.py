"""Request verification for the MNS stand-in, written from the algorithm in mns.md §4 and §7 (never from the
SDK's signer, so a bug shared by both cannot hide). Pure: headers, body and a clock in, an ``MnsError`` out."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from email.utils import parsedate_to_datetime

from ..http import Request
from ..keyring import CredentialError, Keyring
from .errors import MnsError

MAX_SKEW_S = 15 * 60
# the Python SDK sends `security-token`; the other spelling is accepted too (mns.md §4.1)
TOKEN_HEADERS = ("security-token", "x-mns-security-token")


def lower_headers(request: Request) -> dict[str, str]:
    return {k.lower(): v for k, v in request.headers}


def canonical_resource(request: Request) -> str:
    """The path and query exactly as sent (not percent-decoded)."""
    return request.raw_path + (f"?{request.raw_query}" if request.raw_query else "")


def string_to_sign(method: str, headers: Mapping[str, str], resource: str) -> str:
    """``headers`` has lower-cased names. Only ``x-mns-*`` headers are canonicalized, so the STS token
    (``security-token``) is not signed."""
    mns = "".join(f"{k}:{headers[k]}\n" for k in sorted(headers) if k.startswith("x-mns-"))
    fixed = (headers.get("content-md5", ""), headers.get("content-type", ""), headers.get("date", ""))
    return f"{method}\n" + "\n".join(fixed) + "\n" + mns + resource


def signature(secret: str, to_sign: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), to_sign.encode(), hashlib.sha1).digest()).decode()


def sdk_content_md5(body: bytes) -> str:
    """The SDK's Content-MD5: base64 of the *hex* digest, not of the raw one as RFC 1864 says (mns.md §4.2)."""
    return base64.b64encode(hashlib.md5(body).hexdigest().encode()).decode()


def parse_authorization(value: str) -> tuple[str, str]:
    scheme, _, rest = value.partition(" ")
    ak, sep, sig = rest.partition(":")
    if scheme != "MNS" or not sep or not ak or not sig:
        raise MnsError(403, "AccessDenied", "Authorization must be 'MNS <AccessKeyId>:<Signature>'.")
    return ak, sig


def check_date(headers: Mapping[str, str], now: float) -> None:
    raw = headers.get("x-mns-date") or headers.get("date", "")
    try:
        when = parsedate_to_datetime(raw).timestamp()
    except (TypeError, ValueError):
        raise MnsError(400, "InvalidArgument", "The Date header is missing or malformed.") from None
    if abs(when - now) > MAX_SKEW_S:
        raise MnsError(400, "RequestTimeTooSkewed", "The difference between the request time and the server's "
                       "time is too large.")


def _credential_error(exc: CredentialError) -> MnsError:
    code = "InvalidAccessKeyId" if exc.code == "InvalidAccessKeyId" else "AccessDenied"
    return MnsError(403, code, exc.message)


def verify(request: Request, keyring: Keyring, now: float) -> str:
    """Raise ``MnsError`` unless the request is signed, fresh and carries a valid token; return the key id."""
    h = lower_headers(request)
    ak, sig = parse_authorization(h.get("authorization", ""))
    try:
        secret = keyring.secret_for(ak)
    except CredentialError as exc:
        raise _credential_error(exc) from None
    expected = signature(secret, string_to_sign(request.method, h, canonical_resource(request)))
    if not hmac.compare_digest(expected.encode(), sig.encode()):
        raise MnsError(403, "SignatureDoesNotMatch", "The request signature we calculated does not match the "
                       "signature you provided.")
    check_date(h, now)
    token = next((h[n] for n in TOKEN_HEADERS if h.get(n)), None)
    try:
        keyring.check_token(ak, token, now)
    except CredentialError as exc:
        raise _credential_error(exc) from None
    if "content-md5" in h and h["content-md5"] != sdk_content_md5(request.body):
        # code inferred (OSS/S3 use InvalidDigest); only a tampered or truncated body gets here
        raise MnsError(400, "InvalidDigest", "The Content-MD5 you specified is not valid.")
    return ak
