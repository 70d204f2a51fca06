"""The function role's STS credentials: from the ALIBABA_CLOUD_* variables FC sets on every runtime, falling
back to ``context.credentials`` (python3.10 and older; python3.12 has no such attribute)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class MissingCredentials(RuntimeError):
    pass


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    access_key_secret: str
    security_token: str | None

    def __repr__(self) -> str:  # never print a secret, even by accident
        return f"Credentials(access_key_id={self.access_key_id[:4]}…, sts={self.security_token is not None})"


def resolve(environ: Mapping[str, str], context: Any = None) -> Credentials:
    """Read them per invocation: STS credentials rotate while an instance lives."""
    ak = environ.get("ALIBABA_CLOUD_ACCESS_KEY_ID", "")
    sk = environ.get("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "")
    token = environ.get("ALIBABA_CLOUD_SECURITY_TOKEN") or None
    if ak and sk:
        return Credentials(ak, sk, token)
    creds = getattr(context, "credentials", None)
    if creds is not None and getattr(creds, "access_key_id", None):
        return Credentials(creds.access_key_id, creds.access_key_secret, getattr(creds, "security_token", None))
    raise MissingCredentials(
        "no credentials: set ALIBABA_CLOUD_ACCESS_KEY_ID/SECRET (FC sets them when the function has a role)"
    )


class PerCredentials(Generic[T]):
    """An SDK client for the credentials of now, rebuilt when FC's STS credentials rotate (about 50 µs), shared by
    an instance's threads."""

    def __init__(self, credentials: Callable[[], Credentials], build: Callable[[Credentials], T]) -> None:
        self._credentials = credentials
        self._build = build
        self._lock = threading.Lock()
        self._client: T | None = None
        self._for: Credentials | None = None

    def get(self) -> T:
        creds = self._credentials()
        with self._lock:
            if self._client is None or creds != self._for:
                self._client, self._for = self._build(creds), creds
            return self._client
