"""The session-token cache across processes, as a user of `keyring` sees it and as the server
counts it: warm lookups run nothing and exchange nothing, identities never share a token, a
refused token heals itself, parallel cold lookups mint one token."""

from __future__ import annotations

import json
import stat
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from .helpers import run
from .scenarios import feed_accepts, keyring, one_line_message, signed_in, spoken
from .sim import world
from .sim.azcli import az, az_login
from .sim.server import Simulator

OTHER_FEED_SAME_ORG = world.TEAM_INDEX


def cache_file(env: dict[str, str]) -> Path:
    return Path(env["XDG_CACHE_HOME"]) / "artifacts-keyring-nofuss" / "sessions.json"


def az_calls(env: dict[str, str]) -> int:
    path = Path(env["FAKE_AZ_CALLS"])
    return len(path.read_text().splitlines()) if path.exists() else 0


@pytest.fixture
def alice(client_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    env = signed_in(client_env)
    env["FAKE_AZ_CALLS"] = str(tmp_path / "az-calls")
    return env


def get(env: dict[str, str], url: str = world.SHARED_INDEX) -> str:
    done = keyring(env, "get", url, "VssSessionToken")
    assert done.returncode == 0, done.stderr
    assert spoken(done.stderr) == []
    return done.stdout.strip()


def test_warm_lookup_runs_no_az_and_no_exchange(sim: Simulator, alice: dict[str, str]) -> None:
    first = get(alice)
    assert (sim.count("discovery"), sim.count("exchange"), az_calls(alice)) == (1, 1, 1)

    second = get(alice)

    assert second == first
    assert (sim.count("discovery"), sim.count("exchange"), az_calls(alice)) == (1, 1, 1)
    # The one request of the warm path: the feed confirms the token before it is handed out.
    probes = [r for r in sim.requests() if r.method == "HEAD"]
    assert [(p.path, p.status, p.credential_kind) for p in probes] == [
        ("/contoso/_packaging/shared/pypi/simple/", 200, "session")
    ]


def test_a_second_feed_of_the_same_organisation_reuses_everything(
    sim: Simulator, alice: dict[str, str]
) -> None:
    get(alice)
    token = get(alice, OTHER_FEED_SAME_ORG)
    assert (sim.count("discovery"), sim.count("exchange"), az_calls(alice)) == (1, 1, 1)
    assert feed_accepts(sim, OTHER_FEED_SAME_ORG, token) == 200


def test_scopes_and_organisations_never_share_a_token(
    sim: Simulator, alice: dict[str, str]
) -> None:
    sim.add_guest(world.ALICE, world.T_FABRIKAM)
    read = get(alice)
    write = get(alice, world.SHARED_UPLOAD)
    other_org = get(alice, world.RELEASES_INDEX)
    assert len({read, write, other_org}) == 3
    assert [r.scope for r in sim.requests(kind="exchange")] == [
        "vso.packaging",
        "vso.packaging_write",
        "vso.packaging",
    ]


def test_another_az_account_never_gets_the_first_ones_token(
    sim: Simulator, alice: dict[str, str]
) -> None:
    alices = get(alice)
    az_login(alice, world.BOB)
    bobs = get(alice)
    assert bobs != alices
    exchanges = sim.requests(kind="exchange")
    assert [r.principal for r in exchanges] == [world.ALICE, world.BOB]


def test_after_az_logout_the_cached_token_is_not_handed_out(
    sim: Simulator, alice: dict[str, str]
) -> None:
    get(alice)
    assert az(alice, "logout").returncode == 0
    done = keyring(alice, "get", world.SHARED_INDEX, "VssSessionToken")
    assert done.returncode == 1
    assert done.stdout == ""
    assert "az login" in one_line_message(done.stderr)


def test_a_token_the_feed_refuses_is_replaced_without_the_user_doing_anything(
    sim: Simulator, alice: dict[str, str]
) -> None:
    revoked = get(alice)
    assert sim.revoke_sessions(world.ALICE) == 1
    assert feed_accepts(sim, world.SHARED_INDEX, revoked) == 401

    fresh = get(alice)

    assert fresh != revoked
    assert feed_accepts(sim, world.SHARED_INDEX, fresh) == 200
    assert sim.count("exchange") == 2
    assert [r.status for r in sim.requests() if r.method == "HEAD"] == [401]


def test_expiry_comes_from_valid_to_and_is_refreshed_ahead_of_it(
    sim: Simulator, alice: dict[str, str]
) -> None:
    # The service shortens tokens to 4 minutes: inside the refresh margin, never reused.
    sim.set_policy("contoso", session_cap_seconds=240)
    get(alice)
    get(alice)
    assert sim.count("exchange") == 2
    stored = json.loads(cache_file(alice).read_text())["sessions"]
    (entry,) = stored.values()
    exchange = sim.requests(kind="exchange")[-1]
    assert exchange.valid_to is not None
    assert entry["expires_on"] - cache_file(alice).stat().st_mtime <= 241


def test_a_policy_that_refuses_the_lifetime_falls_back_to_the_service_default(
    sim: Simulator, alice: dict[str, str]
) -> None:
    sim.set_policy("contoso", max_session_hours=2, refuse_validto=True)
    get(alice)
    first, retry = sim.requests(kind="exchange")
    assert (first.status, first.valid_to is not None) == (400, True)
    assert (retry.status, retry.valid_to) == (200, None)
    get(alice)
    assert sim.count("exchange") == 2  # the fallback token was cached like any other


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("ARTIFACTS_KEYRING_NOFUSS_CACHE", "0"),
        ("ARTIFACTS_CREDENTIALPROVIDER_SESSIONTOKENCACHE_ENABLED", "false"),
    ],
)
def test_the_cache_can_be_switched_off(
    sim: Simulator, alice: dict[str, str], variable: str, value: str
) -> None:
    alice[variable] = value
    get(alice)
    get(alice)
    assert sim.count("exchange") == 2
    assert not cache_file(alice).exists()


def test_the_cache_file_is_private(sim: Simulator, alice: dict[str, str]) -> None:
    token = get(alice)
    path = cache_file(alice)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    content = path.read_text()
    assert token in content
    # Only the session token: no Entra token from az is ever written.
    for secret in sim.issued_secrets():
        if secret != token and len(secret) > 20:
            assert secret not in content


@pytest.mark.parametrize("damage", ["garbage", "truncated", "world-readable", "symlink"])
def test_a_damaged_or_unsafe_cache_file_is_ignored_and_replaced(
    sim: Simulator, alice: dict[str, str], damage: str
) -> None:
    get(alice)
    path = cache_file(alice)
    if damage == "garbage":
        path.write_bytes(b"\x00\xffnot json")
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:40])
    elif damage == "world-readable":
        path.chmod(0o644)
    else:
        elsewhere = path.with_name("planted.json")
        path.replace(elsewhere)
        path.symlink_to(elsewhere)
    token = get(alice)
    assert sim.count("exchange") == 2
    assert feed_accepts(sim, world.SHARED_INDEX, token) == 200
    assert not path.is_symlink()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text())["version"] == 2


def test_parallel_cold_lookups_mint_one_token(sim: Simulator, alice: dict[str, str]) -> None:
    alice["FAKE_AZ_DELAY"] = "0.5"

    def lookup(_: int) -> subprocess.CompletedProcess[str]:
        return run(["keyring", "get", world.SHARED_INDEX, "VssSessionToken"], alice)

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(lookup, range(16)))

    assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
    assert len({r.stdout for r in results}) == 1
    assert sim.count("exchange") == 1
    assert sim.count("discovery") == 1
    assert az_calls(alice) == 1
