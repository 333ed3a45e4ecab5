from __future__ import annotations

import time

import pytest

from artifacts_keyring_nofuss.tokens import REFRESH_MARGIN, UNKNOWN_EXPIRY_TTL, Token

from .helpers import APP_ID, TENANT, USER_OID, app_jwt, make_jwt, user_jwt

EXPIRES = 2_000_000_000.0


def _token(expires_on: float | None, obtained: float = 1_000.0) -> Token:
    return Token(
        secret="s3cr3t-value",
        expires_on=expires_on,
        user=True,
        identity="t/u",
        who="alice",
        source="test",
        obtained=obtained,
    )


def test_the_margins_are_what_the_docs_promise() -> None:
    assert REFRESH_MARGIN == 5 * 60
    assert UNKNOWN_EXPIRY_TTL == 50 * 60


@pytest.mark.parametrize(
    ("now", "fresh"),
    [
        (EXPIRES - REFRESH_MARGIN - 3600, True),
        (EXPIRES - REFRESH_MARGIN - 1, True),
        (EXPIRES - REFRESH_MARGIN - 0.001, True),
        (EXPIRES - REFRESH_MARGIN, False),
        (EXPIRES - 1, False),
        (EXPIRES, False),
        (EXPIRES + 3600, False),
    ],
)
def test_fresh_honours_the_refresh_margin(now: float, fresh: bool) -> None:
    assert _token(EXPIRES).fresh(now=now) is fresh


def test_a_stated_expiry_wins_over_the_unknown_expiry_limit() -> None:
    # A token that says it lives 8 hours is kept for (8 h - margin), not 50 minutes.
    token = _token(expires_on=1_000.0 + 8 * 3600, obtained=1_000.0)
    assert token.fresh(now=1_000.0 + 7 * 3600)


def test_a_token_that_expires_within_the_margin_is_never_fresh() -> None:
    token = _token(expires_on=1_000.0 + REFRESH_MARGIN / 2, obtained=1_000.0)
    assert not token.fresh(now=1_000.0)


@pytest.mark.parametrize(
    ("elapsed", "fresh"),
    [
        (0, True),
        (60, True),
        (UNKNOWN_EXPIRY_TTL - 1, True),
        (UNKNOWN_EXPIRY_TTL, False),
        (UNKNOWN_EXPIRY_TTL + 1, False),
        (24 * 3600, False),
    ],
)
def test_unknown_expiry_is_kept_at_most_50_minutes(elapsed: float, fresh: bool) -> None:
    token = _token(expires_on=None, obtained=5_000.0)
    assert token.fresh(now=5_000.0 + elapsed) is fresh


def test_fresh_without_now_uses_the_clock() -> None:
    assert _token(time.time() + 3600, obtained=time.time()).fresh()
    assert not _token(time.time() + 60, obtained=time.time()).fresh()
    assert _token(None, obtained=time.time()).fresh()
    assert not _token(None, obtained=time.time() - UNKNOWN_EXPIRY_TTL - 60).fresh()


def test_expired() -> None:
    assert _token(EXPIRES).expired(now=EXPIRES)
    assert _token(EXPIRES).expired(now=EXPIRES + 1)
    assert not _token(EXPIRES).expired(now=EXPIRES - 1)
    # Unknown expiry: never known to be expired (it is only kept for a while).
    assert not _token(None).expired(now=10**12)


def test_repr_and_str_never_show_the_secret() -> None:
    secret = user_jwt()
    token = Token.from_secret(secret, "azure_cli")
    for text in (repr(token), str(token), f"{token}", f"{token!r}", repr([token])):
        assert secret not in text
        assert secret.split(".")[1] not in text
    assert "alice@contoso.com" in repr(token)


def test_repr_of_an_opaque_token_does_not_show_it() -> None:
    token = Token.from_secret("opaque-secret-52-chars-abcdefghijklmnopqrstuvwxyz0123", "pat")
    assert "opaque-secret" not in repr(token)


def test_from_secret_user_jwt() -> None:
    secret = user_jwt(exp=1_900_000_000)
    token = Token.from_secret(secret, "azure_cli", expires_on=1_800_000_000)
    assert token.secret == secret
    assert token.user is True
    assert token.expires_on == 1_900_000_000  # the token's own exp wins
    assert token.identity == f"azure_cli:{TENANT}/{USER_OID}"  # source and claims
    assert token.who == "alice@contoso.com"
    assert token.source == "azure_cli"


def test_from_secret_app_jwt() -> None:
    secret = app_jwt(exp=1_900_000_000)
    token = Token.from_secret(secret, "azure_identity")
    assert token.user is False
    assert token.expires_on == 1_900_000_000
    assert token.identity == f"azure_identity:{TENANT}/{APP_ID}"
    assert token.who == APP_ID


@pytest.mark.parametrize("stated", [None, 1_850_000_000.0])
def test_from_secret_opaque(stated: float | None) -> None:
    token = Token.from_secret("a-personal-access-token", "env", expires_on=stated)
    assert token.user is False
    assert token.expires_on == stated
    assert token.identity == "env:opaque"
    assert token.who == "an opaque token"


def test_from_secret_jwt_without_exp_uses_the_stated_expiry() -> None:
    secret = make_jwt({"idtyp": "user", "scp": "x", "oid": "o", "tid": TENANT})
    token = Token.from_secret(secret, "azure_cli", expires_on=1_850_000_000)
    assert token.expires_on == 1_850_000_000
    assert token.user is True


def test_from_secret_jwt_with_garbage_exp_uses_the_stated_expiry() -> None:
    secret = make_jwt({"idtyp": "user", "oid": "o", "exp": "soon"})
    token = Token.from_secret(secret, "azure_cli", expires_on=1_850_000_000)
    assert token.expires_on == 1_850_000_000


def test_obtained_defaults_to_now() -> None:
    before = time.time()
    token = Token.from_secret("x", "s")
    assert before <= token.obtained <= time.time()


def test_tokens_are_immutable() -> None:
    token = Token.from_secret("x", "s")
    with pytest.raises(AttributeError):
        token.secret = "y"  # type: ignore[misc]
