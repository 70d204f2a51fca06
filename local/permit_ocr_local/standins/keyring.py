"""The credentials a stand-in accepts: long-term AccessKeys and STS triples with an expiry.

Shared by every stand-in so one ``permit-ocr stack`` hands the function one set of credentials, as RAM does.
"""

from __future__ import annotations

import dataclasses
import hmac
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class KeyEntry:
    access_key_id: str
    secret: str
    security_token: str | None = None  # set for STS keys: requests must carry exactly this token
    expires_at: float | None = None  # epoch seconds; None = never
    policy: Mapping[str, Any] | None = None  # a RAM policy document; None = the key may do anything


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

    def set_policy(self, access_key_id: str, policy: Mapping[str, Any] | None) -> None:
        """Restrict a key to a RAM policy (as the function role is), so a missing grant fails in tests too."""
        with self._lock:
            self._keys[access_key_id] = dataclasses.replace(self._keys[access_key_id], policy=policy)

    def policy_for(self, access_key_id: str) -> Mapping[str, Any] | None:
        with self._lock:
            entry = self._keys.get(access_key_id)
        return entry.policy if entry else None

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
