"""Server-side ACS3-HMAC-SHA256 verification (ocr-api.md §5.2), written from the algorithm, not the SDK.

Shared by the stand-ins whose APIs sign so (OCR, FC): it raises GatewayError with the POP gateway's code, and
each service turns that into its own error shape. Pure apart from the nonce cache: callers pass the clock, the
keyring and the request parts.
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import parse_qsl, quote

from .keyring import CredentialError, Keyring

ALGORITHM = "ACS3-HMAC-SHA256"
MAX_SKEW_S = 15 * 60
_AUTH_RE = re.compile(rf"^{ALGORITHM} Credential=([^,]+),SignedHeaders=([^,]+),Signature=([0-9a-f]{{64}})$")
# Keyring reasons -> gateway codes
_CREDENTIAL_CODES = {
    "InvalidAccessKeyId": "InvalidAccessKeyId.NotFound",
    "InvalidSecurityToken": "invalidStsToken",
    "SecurityTokenExpired": "InvalidSecurityToken.Expired",
}
T = TypeVar("T")


class GatewayError(Exception):
    """A request the gateway refuses before the service sees it; ``code`` is the POP gateway's code."""

    def __init__(self, code: str, message: str | None = None) -> None:
        self.code = code
        self.message = message
        super().__init__(f"{code}: {message}" if message else code)


@dataclass(frozen=True)
class Authorization:
    access_key_id: str
    signed_headers: str
    signature: str


@dataclass(frozen=True)
class Verified:
    access_key_id: str
    nonce: str


def rfc3986(value: str) -> str:
    """Percent-encode UTF-8 leaving only A-Z a-z 0-9 - _ . ~ (space -> %20, '/' -> %2F)."""
    return quote(value, safe="~")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def header_lists(headers: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in headers:
        out.setdefault(name.lower(), []).append(value.strip())
    return out


def parse_authorization(value: str) -> Authorization:
    m = _AUTH_RE.match(value.strip())
    if m is None:
        raise GatewayError("IncompleteSignature")
    return Authorization(*m.groups())


def canonical_query(raw_query: str) -> str:
    """Form-decode the wire query ('+' is a space there) and re-encode it the way the signer did."""
    pairs = sorted(parse_qsl(raw_query, keep_blank_values=True))
    return "&".join(f"{rfc3986(k)}={rfc3986(v)}" for k, v in pairs)


def canonical_headers(h: dict[str, list[str]], names: list[str]) -> str:
    return "".join(f"{n}:{','.join(sorted(h.get(n) or ['']))}\n" for n in names)


def canonical_request(method: str, path: str, raw_query: str, h: dict[str, list[str]], signed_headers: str,
                      payload_hash: str) -> str:
    names = signed_headers.split(";")
    return "\n".join([method.upper(), path or "/", canonical_query(raw_query), canonical_headers(h, names),
                      signed_headers, payload_hash])


def signature(secret: str, creq: str) -> str:
    string_to_sign = f"{ALGORITHM}\n{sha256_hex(creq.encode())}"
    return hmac.new(secret.encode(), string_to_sign.encode(), hashlib.sha256).hexdigest()


def check_signed_headers(h: dict[str, list[str]], signed_headers: str) -> None:
    """SignedHeaders must be sorted and cover host, x-acs-date and every x-acs-* header sent."""
    names = signed_headers.split(";")
    required = {"host", "x-acs-date"} | {n for n in h if n.startswith("x-acs-")}
    if names != sorted(names) or not required <= set(names):
        raise GatewayError("IncompleteSignature", "SignedHeaders must be sorted and include host, x-acs-date and "
                                              "every x-acs-* header.")


def parse_acs_date(value: str) -> float:
    try:
        return float(calendar.timegm(time.strptime(value, "%Y-%m-%dT%H:%M:%SZ")))
    except ValueError:
        raise GatewayError("InvalidTimeStamp.Format") from None


def check_date(value: str, now: float) -> None:
    if abs(parse_acs_date(value) - now) > MAX_SKEW_S:
        raise GatewayError("InvalidTimeStamp.Expired")


def first(h: dict[str, list[str]], name: str) -> str:
    return (h.get(name) or [""])[0]


class NonceCache:
    """Nonces seen in the last 15 min, per AccessKey; bounded so a flood cannot grow memory without limit."""

    def __init__(self, ttl_s: float = MAX_SKEW_S, max_entries: int = 100_000) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._seen: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._lock = threading.Lock()

    def use(self, access_key_id: str, nonce: str, now: float) -> bool:
        """Record the nonce; False when it was already used within the TTL."""
        key = (access_key_id, nonce)
        with self._lock:
            while self._seen and next(iter(self._seen.values())) <= now:  # insertion order ~ expiry order
                self._seen.popitem(last=False)
            if key in self._seen and self._seen[key] > now:
                return False
            self._seen[key] = now + self.ttl_s
            self._seen.move_to_end(key)
            while len(self._seen) > self.max_entries:  # past the bound the oldest nonces are forgotten
                self._seen.popitem(last=False)
            return True


def verify(method: str, path: str, raw_query: str, headers: Iterable[tuple[str, str]], body: bytes,
           keyring: Keyring, *, now: float, nonces: NonceCache | None = None) -> Verified:
    """Raise GatewayError unless the request is signed by a known key; return who signed it."""
    h = header_lists(headers)
    auth = parse_authorization(first(h, "authorization"))
    secret = _credential(lambda: keyring.secret_for(auth.access_key_id))
    payload_hash = sha256_hex(body)
    sent_hash = first(h, "x-acs-content-sha256")
    if not sent_hash:
        raise GatewayError("IncompleteSignature", "The x-acs-content-sha256 header is required.")
    if not hmac.compare_digest(sent_hash, payload_hash):
        raise GatewayError("SignatureDoesNotMatch", "The x-acs-content-sha256 header does not match the body.")
    check_signed_headers(h, auth.signed_headers)
    creq = canonical_request(method, path, raw_query, h, auth.signed_headers, payload_hash)
    if not hmac.compare_digest(signature(secret, creq), auth.signature):
        raise GatewayError("SignatureDoesNotMatch")
    # headers below are signed, so they can be trusted from here on
    check_date(first(h, "x-acs-date"), now)
    header_ak = first(h, "x-acs-accesskey-id")
    if header_ak and header_ak != auth.access_key_id:
        raise GatewayError("SignatureDoesNotMatch", "x-acs-accesskey-id does not match the Credential.")
    _credential(lambda: keyring.check_token(auth.access_key_id, first(h, "x-acs-security-token") or None, now))
    nonce = first(h, "x-acs-signature-nonce")
    if not nonce:
        raise GatewayError("MissingSignatureNonce")
    if nonces is not None and not nonces.use(auth.access_key_id, nonce, now):
        raise GatewayError("SignatureNonceUsed")
    return Verified(auth.access_key_id, nonce)


def _credential(call: Callable[[], T]) -> T:
    try:
        return call()
    except CredentialError as exc:
        raise GatewayError(_CREDENTIAL_CODES.get(exc.code, "InvalidAccessKeyId.NotFound")) from None
