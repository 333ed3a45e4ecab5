"""The cache facade: what a lookup may reuse, under which key, and what reaches the disk."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from artifacts_keyring_nofuss import cache as cache_module
from artifacts_keyring_nofuss import devops
from artifacts_keyring_nofuss.cache import Cache, Memory
from artifacts_keyring_nofuss.deadline import Deadline
from artifacts_keyring_nofuss.discovery import Discovery
from artifacts_keyring_nofuss.keys import Key
from artifacts_keyring_nofuss.store import Entry, Store
from artifacts_keyring_nofuss.tokens import REFRESH_MARGIN, UNKNOWN_EXPIRY_TTL, Token

from .helpers import TENANT, feed

FOUND = Discovery(
    tenant=TENANT,
    authority=f"https://login.microsoftonline.com/{TENANT}",
    authorization_endpoint="https://vssps.dev.azure.com/contoso/",
)
OTHER_ORG = Discovery(
    tenant=TENANT,
    authority=f"https://login.microsoftonline.com/{TENANT}",
    authorization_endpoint="https://vssps.dev.azure.com/fabrikam/",
)
FEED = feed("https://pkgs.dev.azure.com/contoso/_packaging/shared/pypi/simple/")
ALICE = "azure_cli:alice@contoso.com"


def _token(
    secret: str,
    expires_in: float | None = 3600,
    kind: str = devops.SESSION,
    identity: str = ALICE,
    age: float = 0,
    scope: str | None = "vso.packaging",
) -> Token:
    now = time.time()
    return Token(
        secret=secret,
        expires_on=None if expires_in is None else now + expires_in,
        user=kind in (devops.SESSION, devops.USER),
        identity=identity,
        who=identity.split(":", 1)[-1],
        source=identity.split(":", 1)[0],
        kind=kind,
        obtained=now - age,
        scope=scope if kind == devops.SESSION else None,
    )


@pytest.fixture
def disk(tmp_path: Path) -> Store:
    return Store(tmp_path / "cache", Deadline(30))


@pytest.fixture
def cache(disk: Store) -> Cache:
    return Cache(Memory(), disk)


def _on_disk(disk: Store) -> str:
    return disk.path.read_text(encoding="utf-8") if disk.path.exists() else ""


def test_a_kept_session_comes_back_under_the_key_a_lookup_expects(cache: Cache) -> None:
    token = _token("s1")
    key = cache.keep(token, FOUND, FEED)
    assert key == Key.expect(FOUND, devops.SESSION, "vso.packaging", ALICE)
    found = cache.token(key)
    assert found is not None and found.token is token and not found.from_disk


def test_a_session_outlives_the_process_and_says_so(cache: Cache, disk: Store) -> None:
    key = cache.keep(_token("s1"), FOUND, FEED)
    assert key is not None
    again = Cache(Memory(), disk).token(key)  # a new process: a new memory, the same file
    assert again is not None
    assert again.from_disk and again.token.secret == "s1"
    assert again.token.kind == devops.SESSION and again.token.identity == ALICE


@pytest.mark.parametrize("kind", [devops.USER, devops.APPLICATION])
def test_entra_and_application_tokens_never_reach_the_disk(
    cache: Cache, disk: Store, kind: str
) -> None:
    key = cache.keep(_token("bearer-secret-1234", kind=kind), FOUND, FEED)
    assert key is not None and key.kind == kind
    assert cache.token(key) is not None  # this process may reuse it
    assert "bearer-secret-1234" not in _on_disk(disk)
    assert Cache(Memory(), disk).token(key) is None  # another process may not


def test_a_handed_over_token_is_never_kept(cache: Cache, disk: Store) -> None:
    assert cache.keep(_token("pat-value-123", kind=devops.GIVEN), FOUND, FEED) is None
    assert cache.memory.tokens == {}
    assert "pat-value-123" not in _on_disk(disk)


def test_the_store_refuses_anything_but_a_session(disk: Store) -> None:
    key = Key.expect(FOUND, devops.USER, devops.DEFAULT_SCOPE, ALICE)
    with pytest.raises(ValueError, match="refusing"):
        disk.put_session(key, Entry("t", time.time() + 60, "o", "s", ALICE, "a"))


@pytest.mark.parametrize(
    ("found", "scope", "identity", "kind"),
    [
        (OTHER_ORG, "vso.packaging", ALICE, devops.SESSION),
        (FOUND, "vso.packaging_write", ALICE, devops.SESSION),
        (FOUND, "vso.packaging", "azure_cli:bob@contoso.com", devops.SESSION),
        (FOUND, "vso.packaging", "interactive:alice", devops.SESSION),
        (FOUND, devops.DEFAULT_SCOPE, ALICE, devops.USER),
        (FOUND, devops.DEFAULT_SCOPE, ALICE, devops.APPLICATION),
    ],
)
def test_another_organisation_scope_identity_or_kind_finds_nothing(
    cache: Cache, found: Discovery, scope: str, identity: str, kind: str
) -> None:
    cache.keep(_token("alice-read"), FOUND, FEED)
    assert cache.token(Key.expect(found, kind, scope, identity)) is None


def test_an_entry_under_the_right_digest_but_for_someone_else_is_refused(
    cache: Cache, disk: Store
) -> None:
    """A file edited (or written by a bug) so that bob's digest holds alice's entry."""
    bob = Key.expect(FOUND, devops.SESSION, "vso.packaging", "azure_cli:bob@contoso.com")
    cache.keep(_token("alice-token"), FOUND, FEED)
    data = json.loads(_on_disk(disk))
    (alice_entry,) = data["sessions"].values()
    data["sessions"] = {bob.digest(): alice_entry}
    disk.path.write_text(json.dumps(data), encoding="utf-8")
    assert Cache(Memory(), disk).token(bob) is None


@pytest.mark.parametrize(
    ("expires_in", "age"),
    [
        (-10, 0),  # expired
        (REFRESH_MARGIN - 1, 0),  # inside the refresh margin
        (0, 0),
        (None, UNKNOWN_EXPIRY_TTL + 1),  # unknown expiry, kept too long already
    ],
)
def test_stale_tokens_are_dropped(expires_in: float | None, age: float) -> None:
    cache = Cache(Memory(), None)
    token = _token("old", expires_in, kind=devops.USER, age=age)
    key = cache.keep(token, FOUND, FEED)
    assert key is not None
    assert cache.token(key) is None
    assert key not in cache.memory.tokens


def test_drop_forgets_memory_and_disk(cache: Cache, disk: Store) -> None:
    key = cache.keep(_token("s1"), FOUND, FEED)
    assert key is not None
    cache.drop(key)
    assert cache.token(key) is None
    assert Cache(Memory(), disk).token(key) is None


def test_remember_keeps_a_checked_disk_token_for_this_process_only(
    cache: Cache, disk: Store
) -> None:
    key = cache.keep(_token("s1"), FOUND, FEED)
    assert key is not None
    fresh = Cache(Memory(), disk)
    found = fresh.token(key)
    assert found is not None
    fresh.remember(key, found.token)
    again = fresh.token(key)
    assert again is not None and not again.from_disk
    # A token is never remembered under a key it was not minted for.
    bob = Key.expect(FOUND, devops.SESSION, "vso.packaging", "azure_cli:bob@contoso.com")
    fresh.remember(bob, found.token)
    assert bob not in fresh.memory.tokens


def test_discovery_round_trip_and_a_tampered_one_is_ignored(cache: Cache, disk: Store) -> None:
    cache.keep_discovery(FEED, FOUND)
    assert Cache(Memory(), disk).discovery(FEED) == FOUND
    data = json.loads(_on_disk(disk))
    for entry in data["discovery"].values():
        entry["token_service"] = "https://evil.example.com/"
    disk.path.write_text(json.dumps(data), encoding="utf-8")
    assert Cache(Memory(), disk).discovery(FEED) is None
    cache.drop_discovery(FEED)
    assert Cache(Memory(), disk).discovery(FEED) is None


def test_without_a_disk_only_memory_is_used() -> None:
    cache = Cache(Memory(), None)
    key = cache.keep(_token("s1"), FOUND, FEED)
    assert key is not None
    assert cache.token(key) is not None
    with cache.locked(key, 1.0) as held:
        assert held is False


def test_failures_are_remembered_per_feed_and_scope() -> None:
    memory = Memory()
    memory.remember_failure(FEED, "no credential for contoso/shared: ...")
    assert memory.recent_failure(FEED) == "no credential for contoso/shared: ..."
    upload = feed("https://pkgs.dev.azure.com/contoso/_packaging/shared/pypi/upload/")
    assert memory.recent_failure(upload) is None
    other = feed("https://pkgs.dev.azure.com/fabrikam/_packaging/shared/pypi/simple/")
    assert memory.recent_failure(other) is None


def test_failures_are_forgotten_after_their_ttl(monkeypatch: pytest.MonkeyPatch) -> None:
    memory = Memory()
    memory.remember_failure(FEED, "x")
    later = time.monotonic() + cache_module.NEGATIVE_TTL + 1
    monkeypatch.setattr(time, "monotonic", lambda: later)
    assert memory.recent_failure(FEED) is None
    assert memory.failures == {}


def test_two_memories_share_nothing() -> None:
    one, two = Cache(Memory(), None), Cache(Memory(), None)
    key = one.keep(_token("s1"), FOUND, FEED)
    assert key is not None
    assert two.token(key) is None
    one.memory.clear()
    assert one.token(key) is None
