from __future__ import annotations

import time

import pytest

from artifacts_keyring_nofuss import cache as cache_module
from artifacts_keyring_nofuss.cache import MemoryCache
from artifacts_keyring_nofuss.discovery import Discovery
from artifacts_keyring_nofuss.tokens import REFRESH_MARGIN, UNKNOWN_EXPIRY_TTL, Token

ENDPOINT = "https://vssps.dev.azure.com/contoso/"


def _token(
    secret: str, expires_in: float | None, identity: str = "t/alice", age: float = 0
) -> Token:
    now = time.time()
    return Token(
        secret=secret,
        expires_on=None if expires_in is None else now + expires_in,
        user=True,
        identity=identity,
        who=identity,
        source="test",
        obtained=now - age,
    )


def test_a_fresh_session_is_returned() -> None:
    cache = MemoryCache()
    key = (ENDPOINT, "vso.packaging", "t/alice")
    token = _token("s1", expires_in=3600)
    cache.sessions[key] = token
    assert cache.fresh_session(key) is token
    assert cache.fresh_session(key) is token  # not consumed by reading


@pytest.mark.parametrize(
    ("expires_in", "age"),
    [
        (-10, 0),  # expired
        (REFRESH_MARGIN - 1, 0),  # inside the refresh margin
        (0, 0),
        (None, UNKNOWN_EXPIRY_TTL + 1),  # unknown expiry, kept too long already
    ],
)
def test_stale_entries_are_dropped(expires_in: float | None, age: float) -> None:
    cache = MemoryCache()
    key = (ENDPOINT, "vso.packaging", "t/alice")
    cache.sessions[key] = _token("old", expires_in, age=age)
    assert cache.fresh_session(key) is None
    assert key not in cache.sessions


def test_stale_bearers_are_dropped_fresh_ones_kept() -> None:
    cache = MemoryCache()
    cache.bearers[("azure_cli", "t1")] = _token("old", -1)
    cache.bearers[("azure_cli", "t2")] = _token("new", 3600)
    assert cache.fresh_bearer(("azure_cli", "t1")) is None
    fresh = cache.fresh_bearer(("azure_cli", "t2"))
    assert fresh is not None
    assert fresh.secret == "new"
    assert ("azure_cli", "t1") not in cache.bearers


def test_missing_keys() -> None:
    cache = MemoryCache()
    assert cache.fresh_bearer(("azure_cli", None)) is None
    assert cache.fresh_session((ENDPOINT, "vso.packaging", "x")) is None
    assert cache.recent_failure(("h", "o", "s")) is None


def test_sessions_are_kept_apart_by_org_scope_and_identity() -> None:
    cache = MemoryCache()
    alice_read = (ENDPOINT, "vso.packaging", "t/alice")
    cache.sessions[alice_read] = _token("alice-read", 3600)
    for other in [
        ("https://vssps.dev.azure.com/fabrikam/", "vso.packaging", "t/alice"),
        (ENDPOINT, "vso.packaging_write", "t/alice"),
        (ENDPOINT, "vso.packaging", "t/bob"),
        (ENDPOINT, "vso.packaging", "other-tenant/alice"),
    ]:
        assert cache.fresh_session(other) is None
    found = cache.fresh_session(alice_read)
    assert found is not None
    assert found.secret == "alice-read"


def test_bearers_are_kept_apart_by_source_and_tenant() -> None:
    cache = MemoryCache()
    cache.bearers[("azure_cli", "t1")] = _token("cli-t1", 3600)
    assert cache.fresh_bearer(("azure_cli", "t2")) is None
    assert cache.fresh_bearer(("azure_cli", None)) is None
    assert cache.fresh_bearer(("azure_identity", "t1")) is None


def test_failures_are_remembered_per_key() -> None:
    cache = MemoryCache()
    cache.remember_failure(("pkgs.dev.azure.com", "contoso", "vso.packaging"), "sign in first")
    assert (
        cache.recent_failure(("pkgs.dev.azure.com", "contoso", "vso.packaging")) == "sign in first"
    )
    assert cache.recent_failure(("pkgs.dev.azure.com", "fabrikam", "vso.packaging")) is None
    assert cache.recent_failure(("pkgs.dev.azure.com", "contoso", "vso.packaging_write")) is None


def test_a_later_failure_replaces_the_message() -> None:
    cache = MemoryCache()
    key = ("pkgs.dev.azure.com", "contoso", "vso.packaging")
    cache.remember_failure(key, "first")
    cache.remember_failure(key, "second")
    assert cache.recent_failure(key) == "second"


def test_failure_memory_lasts_a_minute() -> None:
    assert cache_module.NEGATIVE_TTL == 60.0


def test_failures_are_forgotten_after_their_ttl(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache_module, "NEGATIVE_TTL", -1.0)
    cache = MemoryCache()
    key = ("pkgs.dev.azure.com", "contoso", "vso.packaging")
    cache.remember_failure(key, "old news")
    assert cache.recent_failure(key) is None
    assert key not in cache.failures


def test_clear_forgets_everything() -> None:
    cache = MemoryCache()
    cache.discoveries[("pkgs.dev.azure.com", "contoso")] = Discovery(
        tenant=None,
        authority="https://login.microsoftonline.com/organizations",
        authorization_endpoint=ENDPOINT,
    )
    cache.bearers[("azure_cli", None)] = _token("b", 3600)
    cache.sessions[(ENDPOINT, "vso.packaging", "t/alice")] = _token("s", 3600)
    cache.remember_failure(("h", "o", "s"), "m")
    cache.clear()
    assert not cache.discoveries
    assert cache.fresh_bearer(("azure_cli", None)) is None
    assert cache.fresh_session((ENDPOINT, "vso.packaging", "t/alice")) is None
    assert cache.recent_failure(("h", "o", "s")) is None


def test_two_caches_share_nothing() -> None:
    first, second = MemoryCache(), MemoryCache()
    first.sessions[(ENDPOINT, "vso.packaging", "t/alice")] = _token("s", 3600)
    first.remember_failure(("h", "o", "s"), "m")
    assert second.fresh_session((ENDPOINT, "vso.packaging", "t/alice")) is None
    assert second.recent_failure(("h", "o", "s")) is None
