"""Server-side OSS signature checks, V1 (HMAC-SHA1) and V4 (OSS4-HMAC-SHA256), header and query mode.

Written from the algorithm in oss.md §3, not from an SDK signer, so a signer bug cannot hide behind itself.
Pure functions over a Request, a Keyring and ``now``: they return who signed, or raise an errors.OssError.
"""

from __future__ import annotations

import base64
import calendar
import hashlib
import hmac
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from urllib.parse import quote, unquote

from ..http import Request
from ..keyring import CredentialError, Keyring
from .errors import (
    AccessDenied,
    InvalidAccessKeyId,
    InvalidArgument,
    InvalidSecurityToken,
    OssError,
    RequestTimeTooSkewed,
    SecurityTokenExpired,
    SignatureDoesNotMatch,
)

Query = list[tuple[str, str | None]]  # decoded (name, value); None when the parameter had no '='
MAX_SKEW_S = 15 * 60
MAX_V4_EXPIRES_S = 7 * 24 * 3600
V4_ALGORITHM = "OSS4-HMAC-SHA256"
_V1_SUBRESOURCE_NAMES = """
acl uploads location cors logging website referer lifecycle delete append tagging objectMeta uploadId partNumber
security-token position img style styleName replication replicationProgress replicationLocation cname bucketInfo
comp qos live status vod startTime endTime symlink x-oss-process response-content-type x-oss-traffic-limit
response-content-language response-expires response-cache-control response-content-disposition
response-content-encoding udf udfName udfImage udfId udfImageDesc udfApplication udfApplicationLog restore callback
callback-var qosInfo policy stat encryption versions versioning versionId requestPayment x-oss-request-payer
sequential inventory inventoryId continuation-token asyncFetch worm wormId wormExtend withHashContext
x-oss-enable-md5 x-oss-enable-sha1 x-oss-enable-sha256 x-oss-hash-ctx x-oss-md5-ctx transferAcceleration regionList
cloudboxes x-oss-ac-source-ip x-oss-ac-subnet-mask x-oss-ac-vpc-id x-oss-ac-forward-allow metaQuery resourceGroup
rtc accessPoint accessPointPolicy"""
V1_SUBRESOURCES = frozenset(_V1_SUBRESOURCE_NAMES.split())
_CREDENTIAL_ERRORS: dict[str, type[OssError]] = {
    "InvalidAccessKeyId": InvalidAccessKeyId,
    "InvalidSecurityToken": InvalidSecurityToken,
    "SecurityTokenExpired": SecurityTokenExpired,
}


@dataclass(frozen=True)
class Principal:
    access_key_id: str
    version: str  # "v1" | "v4"
    presigned: bool  # query-mode signature, i.e. a signed URL


def parse_query(raw_query: str) -> Query:
    out: Query = []
    for part in raw_query.split("&") if raw_query else []:
        name, eq, value = part.partition("=")
        out.append((unquote(name), unquote(value) if eq else None))
    return out


def query_value(query: Query, name: str) -> str | None:
    return next((v or "" for k, v in query if k == name), None)


def verify(request: Request, bucket: str, key: str, keyring: Keyring, region: str, now: float) -> Principal:
    """Authenticate ``request`` (bucket and key already percent-decoded) or raise."""
    query = parse_query(request.raw_query)
    names = {k for k, _ in query}
    authorization = request.header("Authorization")
    if authorization.startswith(V4_ALGORITHM + " "):
        return _v4_header(request, bucket, key, query, keyring, region, now)
    if authorization.startswith("OSS "):
        return _v1_header(request, bucket, key, query, keyring, now)
    if "x-oss-signature" in names:
        return _v4_query(request, bucket, key, query, keyring, region, now)
    if "Signature" in names:
        return _v1_query(request, bucket, key, query, keyring, now)
    if authorization:
        raise InvalidArgument("Authorization header is invalid (the stand-in speaks V1 and V4 only).")
    raise AccessDenied("You have no right to access this object because of bucket acl.")


def _secret(keyring: Keyring, access_key_id: str, token: str | None, now: float) -> str:
    try:
        keyring.check_token(access_key_id, token, now)
        return keyring.secret_for(access_key_id)
    except CredentialError as exc:
        raise _CREDENTIAL_ERRORS.get(exc.code, InvalidAccessKeyId)(exc.message) from None


def _require_match(expected: str, given: str, string_to_sign: str) -> None:
    if not hmac.compare_digest(expected.encode(), given.encode()):
        raise SignatureDoesNotMatch(StringToSign=string_to_sign)


def _check_skew(request_time: float, now: float) -> None:
    if abs(request_time - now) > MAX_SKEW_S:
        raise RequestTimeTooSkewed()


# -- V1 -------------------------------------------------------------------------------------------------------
def v1_canonical_resource(bucket: str, key: str, query: Query) -> str:
    resource = f"/{bucket}/{key}" if bucket else "/"
    subs = sorted((k, v or "") for k, v in query if k in V1_SUBRESOURCES)
    if subs:
        resource += "?" + "&".join(f"{k}={v}" if v else k for k, v in subs)
    return resource


def canonical_oss_headers(headers: dict[str, list[str]]) -> str:
    return "".join(f"{name}:{','.join(v.strip() for v in values)}\n"
                   for name, values in sorted(headers.items()) if name.startswith("x-oss-"))


def v1_string_to_sign(method: str, headers: dict[str, list[str]], date: str, resource: str) -> str:
    def first(name: str) -> str:
        return headers.get(name, [""])[0]
    return (f"{method}\n{first('content-md5')}\n{first('content-type')}\n{date}\n"
            + canonical_oss_headers(headers) + resource)


def v1_signature(secret: str, string_to_sign: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), string_to_sign.encode(), hashlib.sha1).digest()).decode()


def _v1_header(request: Request, bucket: str, key: str, query: Query, keyring: Keyring, now: float) -> Principal:
    access_key_id, _, signature = request.header("Authorization")[4:].strip().partition(":")
    headers = request.header_map()
    date = request.header("x-oss-date") or request.header("Date")
    try:
        _check_skew(parsedate_to_datetime(date).timestamp(), now)
    except (TypeError, ValueError):
        raise AccessDenied("The Date header is missing or malformed.") from None
    # oss2 sends the STS token as x-oss-security-token; oss-v2's V1 signer sends an unsigned 'security-token'
    token = request.header("x-oss-security-token") or request.header("security-token") or None
    secret = _secret(keyring, access_key_id, token, now)
    sts = v1_string_to_sign(request.method, headers, date, v1_canonical_resource(bucket, key, query))
    _require_match(v1_signature(secret, sts), signature, sts)
    return Principal(access_key_id, "v1", presigned=False)


def _v1_query(request: Request, bucket: str, key: str, query: Query, keyring: Keyring, now: float) -> Principal:
    access_key_id = query_value(query, "OSSAccessKeyId") or ""
    expires = query_value(query, "Expires") or ""
    if not expires.isdigit():
        raise AccessDenied("Expires is missing or is not an epoch time.")
    if now > int(expires):
        raise AccessDenied("Request has expired.", Expires=expires)
    secret = _secret(keyring, access_key_id, query_value(query, "security-token"), now)
    rest = [(k, v) for k, v in query if k not in ("OSSAccessKeyId", "Expires", "Signature")]
    resource = v1_canonical_resource(bucket, key, rest)
    sts = v1_string_to_sign(request.method, request.header_map(), expires, resource)
    _require_match(v1_signature(secret, sts), query_value(query, "Signature") or "", sts)
    return Principal(access_key_id, "v1", presigned=True)


# -- V4 -------------------------------------------------------------------------------------------------------
def uri_encode(value: str, keep_slash: bool) -> str:
    return quote(value, safe="/" if keep_slash else "")  # quote keeps A-Z a-z 0-9 - _ . ~ unencoded


def v4_canonical_request(method: str, bucket: str, key: str, query: Query, headers: dict[str, list[str]],
                         additional: list[str], payload_hash: str) -> str:
    uri = uri_encode(f"/{bucket}/{key}" if bucket else "/", keep_slash=True)
    pairs = sorted((uri_encode(k, False), uri_encode(v or "", False)) for k, v in query if k != "x-oss-signature")
    canonical_query = "&".join(f"{k}={v}" if v else k for k, v in pairs)
    signed = sorted(name for name in headers
                    if name.startswith("x-oss-") or name in ("content-type", "content-md5") or name in additional)
    canonical_headers = "".join(f"{name}:{','.join(v.strip() for v in headers[name])}\n" for name in signed)
    return f"{method}\n{uri}\n{canonical_query}\n{canonical_headers}\n{';'.join(additional)}\n{payload_hash}"


def v4_string_to_sign(timestamp: str, scope: str, canonical_request: str) -> str:
    return f"{V4_ALGORITHM}\n{timestamp}\n{scope}\n{hashlib.sha256(canonical_request.encode()).hexdigest()}"


def v4_signature(secret: str, date: str, region: str, string_to_sign: str) -> str:
    key = ("aliyun_v4" + secret).encode()
    for part in (date, region, "oss", "aliyun_v4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()


def _header_list(value: str) -> list[str]:
    return sorted(h.strip().lower() for h in value.split(";") if h.strip())


def parse_v4_timestamp(value: str) -> float:
    try:
        return float(calendar.timegm(time.strptime(value, "%Y%m%dT%H%M%SZ")))
    except ValueError:
        raise AccessDenied("x-oss-date is missing or malformed.") from None


def _v4_scope(credential: str, timestamp: str, region: str) -> tuple[str, str]:
    """Split 'AK/yyyymmdd/region/oss/aliyun_v4_request' into (access key, scope), checking the scope."""
    parts = credential.split("/")
    if len(parts) != 5 or parts[3] != "oss" or parts[4] != "aliyun_v4_request":
        raise InvalidArgument("Invalid credential scope.", Credential=credential)
    if parts[1] != timestamp[:8]:
        raise InvalidArgument("Invalid signing date in credential.", Credential=credential)
    if parts[2] != region:
        raise InvalidArgument(f"Invalid signing region in credential; expected {region}.", Credential=credential)
    return parts[0], "/".join(parts[1:])


def _v4_header(request: Request, bucket: str, key: str, query: Query, keyring: Keyring, region: str,
               now: float) -> Principal:
    fields = dict(f.strip().partition("=")[::2] for f in
                  request.header("Authorization")[len(V4_ALGORITHM):].split(","))
    timestamp = request.header("x-oss-date")
    _check_skew(parse_v4_timestamp(timestamp), now)
    access_key_id, scope = _v4_scope(fields.get("Credential", ""), timestamp, region)
    secret = _secret(keyring, access_key_id, request.header("x-oss-security-token") or None, now)
    additional = _header_list(fields.get("AdditionalHeaders", ""))
    canonical = v4_canonical_request(request.method, bucket, key, query, request.header_map(), additional,
                                     request.header("x-oss-content-sha256") or "UNSIGNED-PAYLOAD")
    sts = v4_string_to_sign(timestamp, scope, canonical)
    _require_match(v4_signature(secret, timestamp[:8], region, sts), fields.get("Signature", ""), sts)
    return Principal(access_key_id, "v4", presigned=False)


def _v4_query(request: Request, bucket: str, key: str, query: Query, keyring: Keyring, region: str,
              now: float) -> Principal:
    if query_value(query, "x-oss-signature-version") != V4_ALGORITHM:
        raise InvalidArgument("x-oss-signature-version must be OSS4-HMAC-SHA256.")
    timestamp = query_value(query, "x-oss-date") or ""
    expires = query_value(query, "x-oss-expires") or ""
    if not expires.isdigit() or not 1 <= int(expires) <= MAX_V4_EXPIRES_S:
        raise InvalidArgument("x-oss-expires must be between 1 and 604800 seconds.", Expires=expires)
    if now > parse_v4_timestamp(timestamp) + int(expires):
        raise AccessDenied("Request has expired.")
    access_key_id, scope = _v4_scope(query_value(query, "x-oss-credential") or "", timestamp, region)
    secret = _secret(keyring, access_key_id, query_value(query, "x-oss-security-token"), now)
    additional = _header_list(query_value(query, "x-oss-additional-headers") or "")
    canonical = v4_canonical_request(request.method, bucket, key, query, request.header_map(), additional,
                                     request.header("x-oss-content-sha256") or "UNSIGNED-PAYLOAD")
    sts = v4_string_to_sign(timestamp, scope, canonical)
    given = query_value(query, "x-oss-signature") or ""
    _require_match(v4_signature(secret, timestamp[:8], region, sts), given, sts)
    return Principal(access_key_id, "v4", presigned=True)
