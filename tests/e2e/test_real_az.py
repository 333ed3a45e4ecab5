"""The backend with the real Azure CLI (azure-cli from PyPI, .e2e/azure-cli) first on PATH:
`az login` as a service principal and as users, against the simulated Entra ID and Resource
Manager, then the real `keyring` command and twine, as a developer runs them."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from artifacts_keyring_nofuss.azversion import az_version, known_problem

from . import realaz
from .scenarios import feed_accepts, keyring, one_line_message, spoken, twine_upload
from .sim import world
from .sim.jwts import unverified
from .sim.server import Simulator
from .sim.wheels import build_wheel

TOKEN_GRANTS = ("password", "refresh_token", "client_credentials")


def entra_token_requests(sim: Simulator, since: int) -> list[str]:
    """The grants Entra's token endpoint answered after the `since`-th logged request."""
    return [
        r.grant_type or "?"
        for r in sim.requests()[since:]
        if r.kind == "token" and r.host in world.LOGIN_HOSTS
    ]


def lookup(env: dict[str, str], url: str = world.SHARED_INDEX) -> str:
    done = keyring(env, "get", url, "VssSessionToken")
    assert done.returncode == 0, done.stderr
    assert spoken(done.stderr) == []
    return done.stdout.strip()


def cache_file(env: dict[str, str]) -> Path:
    return Path(env["XDG_CACHE_HOME"]) / "artifacts-keyring-nofuss" / "sessions.json"


def test_the_installed_az_is_the_pinned_one(
    real_az_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    version = realaz.installed_version()
    done = realaz.az(real_az_env, "version", "--output", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["azure-cli"] == version
    # The pin (tests/e2e/azure-cli.txt) is the 2.91 series: the README names it.
    assert realaz.spec() == "azure-cli>=2.91.0,<2.92"
    assert version is not None
    assert version.startswith("2.91.")
    # What doctor will read (azversion): the same version, from the metadata beside az.
    assert az_version(str(realaz.REAL_AZ), timeout=10) == version
    # Through the test's PATH wrapper, which names no Python: az itself is asked (with this
    # process's environment: its ~/.azure must be the test's, not the home of whoever runs it).
    monkeypatch.setenv("AZURE_CONFIG_DIR", str(Path(real_az_env["HOME"]) / ".azure"))
    wrapper = Path(real_az_env[realaz.CALLS_VAR]).parent / "az"
    assert az_version(str(wrapper), timeout=10) == version
    assert known_problem(version) is None


def test_a_service_principal_token_is_handed_out_as_it_is(
    sim: Simulator, real_az_env: dict[str, str]
) -> None:
    env = real_az_env
    realaz.login_service_principal(
        env, world.SP_CONTOSO_SECRET, world.SP_CONTOSO_SECRET_VALUE, world.T_CONTOSO
    )
    token = lookup(env)

    assert sim.count("exchange") == 0
    shaped = unverified(token)
    assert shaped is not None
    claims = shaped[1]
    assert (claims["idtyp"], claims["appid"], claims["aud"]) == (
        "app",
        world.SP_CONTOSO_SECRET,
        world.DEVOPS_RESOURCE,
    )
    # The very token az hands out for Azure DevOps (from its own cache now), unchanged.
    again = realaz.az_quiet(
        env,
        "account",
        "get-access-token",
        "--resource",
        world.DEVOPS_RESOURCE,
        "--tenant",
        world.T_CONTOSO,
        "--query",
        "accessToken",
        "--output",
        "tsv",
    )
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == token
    assert feed_accepts(sim, world.SHARED_INDEX, token) == 200
    # Application tokens never reach the backend's disk cache.
    if cache_file(env).exists():
        stored = json.loads(cache_file(env).read_text())
        assert stored["sessions"] == {}
        assert token not in cache_file(env).read_text()


def test_a_user_cold_then_warm_in_a_new_process(
    sim: Simulator, real_az_env: dict[str, str]
) -> None:
    env = real_az_env
    realaz.login_user(env, world.ALICE)
    mark, runs_before = len(sim.requests()), len(realaz.runs(env))

    started = time.monotonic()
    cold = lookup(env)
    cold_seconds = time.monotonic() - started

    assert (sim.count("discovery"), sim.count("exchange")) == (1, 1)
    assert entra_token_requests(sim, mark) == ["refresh_token"]  # az, for Azure DevOps
    assert realaz.runs(env)[runs_before:] == ["account get-access-token"]
    (exchange,) = sim.requests(kind="exchange")
    assert (exchange.principal, exchange.scope) == (world.ALICE, "vso.packaging")
    assert cold_seconds < 20, f"a cold lookup with the real az took {cold_seconds:.1f} s"

    mark = len(sim.requests())
    warm = lookup(env)

    assert warm == cold
    assert realaz.runs(env)[runs_before:] == ["account get-access-token"]  # no new az run
    assert entra_token_requests(sim, mark) == []
    assert (sim.count("discovery"), sim.count("exchange")) == (1, 1)
    assert feed_accepts(sim, world.SHARED_INDEX, warm) == 200


def test_twine_upload_as_a_user_gets_a_write_token(
    sim: Simulator, real_az_env: dict[str, str], tmp_path: Path
) -> None:
    env = real_az_env
    realaz.login_user(env, world.ALICE)
    wheel = build_wheel(tmp_path / "dist", "realazpkg", "1.0.0")
    done = twine_upload(env, wheel)

    assert done.returncode == 0, done.stdout + done.stderr
    assert wheel.name in sim.uploaded("shared")
    (upload,) = sim.requests(kind="upload")
    assert (upload.credential_kind, upload.principal) == ("session", world.ALICE)
    assert [(r.principal, r.scope) for r in sim.requests(kind="exchange")] == [
        (world.ALICE, "vso.packaging_write")
    ]


def test_a_second_az_login_gets_the_second_users_token(
    sim: Simulator, real_az_env: dict[str, str]
) -> None:
    env = real_az_env
    realaz.login_user(env, world.ALICE)
    alices = lookup(env)
    realaz.login_user(env, world.BOB)

    bobs = lookup(env)

    assert bobs != alices
    assert [r.principal for r in sim.requests(kind="exchange")] == [world.ALICE, world.BOB]
    # The feed sees Bob (a reader) in the token handed out: his, never Alice's.
    assert feed_accepts(sim, world.SHARED_INDEX, bobs) == 200
    (seen,) = sim.requests(kind="index")[-1:]
    assert (seen.credential_kind, seen.principal) == ("session", world.BOB)


def test_after_az_logout_the_lookup_fails_with_one_line(
    sim: Simulator, real_az_env: dict[str, str]
) -> None:
    env = real_az_env
    realaz.login_user(env, world.ALICE)
    lookup(env)
    logout = realaz.az(env, "logout")
    assert logout.returncode == 0, logout.stderr

    done = keyring(env, "get", world.SHARED_INDEX, "VssSessionToken")

    assert done.returncode == 1
    assert done.stdout == ""
    line = one_line_message(done.stderr)
    assert f"az login --tenant {world.T_CONTOSO}" in line
    assert sim.count("exchange") == 1


def test_an_organisation_in_another_tenant_names_az_login_with_its_tenant(
    sim: Simulator, real_az_env: dict[str, str]
) -> None:
    env = real_az_env
    realaz.login_user(env, world.ALICE)  # of contoso; the releases feed is fabrikam's

    done = keyring(env, "get", world.RELEASES_INDEX, "VssSessionToken")

    assert done.returncode == 1
    assert done.stdout == ""
    line = one_line_message(done.stderr)
    assert "AADSTS50020" in line  # the real az's words, from Entra
    assert f"az login --tenant {world.T_FABRIKAM}" in line
    assert sim.count("exchange") == 0


def test_logged_out_from_the_start_is_one_line_within_seconds(
    sim: Simulator, real_az_env: dict[str, str]
) -> None:
    env = real_az_env
    started = time.monotonic()
    done = keyring(env, "get", world.SHARED_INDEX, "VssSessionToken")
    seconds = time.monotonic() - started

    assert done.returncode == 1
    assert done.stdout == ""
    line = one_line_message(done.stderr)
    assert "az login" in line
    assert realaz.runs(env) == ["account get-access-token"]
    assert seconds < 8, f"took {seconds:.1f} s"
    assert entra_token_requests(sim, 0) == []


def test_where_session_tokens_are_refused_a_warm_lookup_reads_azs_own_cache(
    sim: Simulator, real_az_env: dict[str, str]
) -> None:
    """The organisation refuses session tokens: the user's Entra token is handed out, and a new
    process finds it in the real az's own MSAL token cache instead of running az."""
    env = real_az_env
    sim.restrict_pat_creation("contoso")
    realaz.login_user(env, world.ALICE)
    runs_before = len(realaz.runs(env))
    cold = lookup(env)
    assert realaz.runs(env)[runs_before:] == ["account get-access-token"]
    shaped = unverified(cold)
    assert shaped is not None and shaped[1]["upn"] == world.ALICE
    assert [r.status for r in sim.requests(kind="exchange")] == [403]

    mark = len(sim.requests())
    warm = lookup(env)
    assert warm == cold  # what az would have printed
    assert realaz.runs(env)[runs_before:] == ["account get-access-token"]  # az did not run
    assert entra_token_requests(sim, mark) == []
    assert sim.count("exchange") == 1  # the refusal is remembered
    assert feed_accepts(sim, world.SHARED_INDEX, warm) == 200
    assert cold not in cache_file(env).read_text(encoding="utf-8")
