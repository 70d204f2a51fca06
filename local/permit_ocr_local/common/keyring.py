"""The credentials a stand-in accepts: long-term AccessKeys and STS triples with an expiry.

Shared by every stand-in so one ``permit-ocr stack`` hands the function one set of credentials, as RAM does.
"""

from __future__ import annotations

import hmac
import threading
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class KeyEntry:
    access_key_id: str
    secret: str
    security_token: str | None = None  # set for STS keys: requests must carry exactly this token
    expires_at: float | None = None  # epoch seconds; None = never


class CredentialError(Exception):
    """Why a key or token was refused; ``code`` is the generic reason, each service maps it to its own."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code  # "InvalidAccessKeyId" | "InvalidSecurityToken" | "SecurityTokenExpired"
        self.message = message


class Keyring:
    def __init__(self) -> None:
        self._keys: dict[str, KeyEntry] = {}
        self._lock = threading.Lock()

    def add(self, access_key_id: str, secret: str, security_token: str | None = None,
            expires_at: float | None = None) -> KeyEntry:
        entry = KeyEntry(access_key_id, secret, security_token, expires_at)
        with self._lock:
            self._keys[access_key_id] = entry
        return entry

    def secret_for(self, access_key_id: str) -> str:
        with self._lock:
            entry = self._keys.get(access_key_id)
        if entry is None:
            raise CredentialError("InvalidAccessKeyId", "The AccessKeyId you provided does not exist.")
        return entry.secret

    def check_token(self, access_key_id: str, token: str | None, now: float | None = None) -> None:
        """Raise unless ``token`` is what this key needs (STS keys need theirs, unexpired)."""
        with self._lock:
            entry = self._keys.get(access_key_id)
        if entry is None:
            raise CredentialError("InvalidAccessKeyId", "The AccessKeyId you provided does not exist.")
        if entry.security_token is None:
            return
        if not token or not hmac.compare_digest(token.encode(), entry.security_token.encode()):
            raise CredentialError("InvalidSecurityToken", "The security token you provided is invalid.")
        if entry.expires_at is not None and (now if now is not None else time.time()) > entry.expires_at:
            raise CredentialError("SecurityTokenExpired", "The security token you provided has expired.")
