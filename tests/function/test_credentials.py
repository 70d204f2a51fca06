"""The function role's STS credentials: environment first, then context.credentials (python3.10)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from permit_ocr.credentials import Credentials, MissingCredentials, resolve

ENV = {"ALIBABA_CLOUD_ACCESS_KEY_ID": "STS.ENVKEY", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "env-secret-value",
       "ALIBABA_CLOUD_SECURITY_TOKEN": "env-token-value"}


def py310_context(ak: str = "STS.CTXKEY", sk: str = "ctx-secret-value", token: str | None = "ctx-token") -> object:
    return SimpleNamespace(request_id="r1", credentials=SimpleNamespace(access_key_id=ak, access_key_secret=sk,
                                                                        security_token=token))


def test_environment_credentials_are_used_with_their_token() -> None:
    assert resolve(ENV) == Credentials("STS.ENVKEY", "env-secret-value", "env-token-value")


def test_environment_wins_over_context_credentials() -> None:
    assert resolve(ENV, py310_context()).access_key_id == "STS.ENVKEY"


def test_a_missing_or_empty_token_means_plain_access_keys() -> None:
    env = {k: v for k, v in ENV.items() if k != "ALIBABA_CLOUD_SECURITY_TOKEN"}
    assert resolve(env).security_token is None
    assert resolve({**env, "ALIBABA_CLOUD_SECURITY_TOKEN": ""}).security_token is None


def test_context_credentials_are_the_fallback_on_python310() -> None:
    assert resolve({}, py310_context()) == Credentials("STS.CTXKEY", "ctx-secret-value", "ctx-token")


def test_context_credentials_are_used_when_the_environment_is_incomplete() -> None:
    env = {"ALIBABA_CLOUD_ACCESS_KEY_ID": "STS.ENVKEY"}  # no secret
    assert resolve(env, py310_context()).access_key_id == "STS.CTXKEY"


def test_context_credentials_without_a_token_attribute_give_none() -> None:
    ctx = SimpleNamespace(credentials=SimpleNamespace(access_key_id="AK", access_key_secret="SK"))
    assert resolve({}, ctx) == Credentials("AK", "SK", None)


@pytest.mark.parametrize("context", [
    None,
    SimpleNamespace(request_id="r1"),  # python3.12: no credentials attribute at all
    SimpleNamespace(credentials=None),
    SimpleNamespace(credentials=SimpleNamespace(access_key_id="", access_key_secret="x", security_token=None)),
])
def test_no_credentials_anywhere_raises_missing_credentials(context: object) -> None:
    with pytest.raises(MissingCredentials, match="ALIBABA_CLOUD_ACCESS_KEY_ID"):
        resolve({}, context)


def test_partial_environment_without_context_raises_missing_credentials() -> None:
    with pytest.raises(MissingCredentials):
        resolve({"ALIBABA_CLOUD_ACCESS_KEY_SECRET": "only-secret"})


def test_repr_and_str_hide_the_secret_and_the_token() -> None:
    creds = Credentials("STS.ABCDEFGH", "the-secret-value", "the-token-value")
    for text in (repr(creds), str(creds), f"{creds}", repr([creds])):
        assert "the-secret-value" not in text
        assert "the-token-value" not in text
        assert "ABCDEFGH" not in text
        assert "STS." in text and "sts=True" in text


def test_repr_says_when_there_is_no_token() -> None:
    assert "sts=False" in repr(Credentials("LTAIxxxx", "s", None))


def test_credentials_compare_by_value_so_rotation_is_noticed() -> None:
    assert Credentials("a", "b", "c") == Credentials("a", "b", "c")
    assert Credentials("a", "b", "c") != Credentials("a", "b", "d")
