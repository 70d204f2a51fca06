"""The function role's STS credentials: from the ALIBABA_CLOUD_* variables FC sets on every runtime, falling
back to ``context.credentials`` (python3.10 and older; python3.12 has no such attribute)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


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
