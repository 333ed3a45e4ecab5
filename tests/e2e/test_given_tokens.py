"""Tokens somebody already minted: our variables and Docker build secrets, the official
provider's pipeline variables, Azure Pipelines' System.AccessToken, AZURE_DEVOPS_EXT_PAT.

Each is used as it is: no discovery, no exchange, no az, and the feed accepts what keyring
printed. No az login in any of these tests, unless a test says so.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .scenarios import feed_accepts, keyring, one_line_message, signed_in
from .sim import world
from .sim.server import Simulator


def _used_as_is(sim: Simulator, done_stdout: str, expected: str, tokens_before: int = 0) -> None:
    assert done_stdout.strip() == expected
    assert sim.count("discovery") == 0
    assert sim.count("exchange") == 0
    assert sim.count("token") == tokens_before  # az signing in is the only token asked for


def test_a_token_in_the_nofuss_variable(sim: Simulator, client_env: dict[str, str]) -> None:
    token = sim.add_pat("contoso")
    env = dict(client_env, ARTIFACTS_KEYRING_NOFUSS_TOKEN=token)
    done = keyring(env, "get", world.SHARED_INDEX, "VssSessionToken")
    assert done.returncode == 0, done.stderr
    _used_as_is(sim, done.stdout, token)
    assert feed_accepts(sim, world.SHARED_INDEX, token) == 200


def test_a_token_file(sim: Simulator, client_env: dict[str, str], tmp_path: Path) -> None:
    token = sim.add_pat("contoso")
    path = tmp_path / "token.txt"
    path.write_text(token + "\n")
    env = dict(client_env, ARTIFACTS_KEYRING_NOFUSS_TOKEN_FILE=str(path))
    done = keyring(env, "get", world.SHARED_INDEX, "VssSessionToken")
    assert done.returncode == 0, done.stderr
    _used_as_is(sim, done.stdout, token)


def test_a_missing_token_file_says_so(
    sim: Simulator, client_env: dict[str, str], tmp_path: Path
) -> None:
    missing = tmp_path / "nope.txt"
    env = dict(client_env, ARTIFACTS_KEYRING_NOFUSS_TOKEN_FILE=str(missing))
    done = keyring(env, "get", world.SHARED_INDEX, "VssSessionToken")
    assert done.returncode == 1
    assert done.stdout == ""
    line = one_line_message(done.stderr)
    assert "ARTIFACTS_KEYRING_NOFUSS_TOKEN_FILE" in line and "does not exist" in line


def test_a_docker_build_secret(
    sim: Simulator, client_env: dict[str, str], build_secrets: Path
) -> None:
    token = sim.add_pat("contoso")
    (build_secrets / "artifacts_keyring_nofuss_token").write_text(token)
    done = keyring(client_env, "get", world.SHARED_INDEX, "VssSessionToken")
    assert done.returncode == 0, done.stderr
    _used_as_is(sim, done.stdout, token)


def test_an_entra_user_token_is_used_as_it_is(sim: Simulator, client_env: dict[str, str]) -> None:
    token = sim.mint_user_token(world.ALICE)
    env = dict(client_env, ARTIFACTS_KEYRING_NOFUSS_TOKEN=token)
    done = keyring(env, "get", world.SHARED_INDEX, "VssSessionToken")
    assert done.returncode == 0, done.stderr
    _used_as_is(sim, done.stdout, token)


def test_an_expired_token_is_reported_with_its_expiry(
    sim: Simulator, client_env: dict[str, str]
) -> None:
    token = sim.mint_user_token(world.ALICE, lifetime=600, issued_at=1_700_000_000)
    # Even with az signed in, a token somebody chose on purpose is not quietly replaced.
    env = signed_in(dict(client_env, ARTIFACTS_KEYRING_NOFUSS_TOKEN=token))
    done = keyring(env, "get", world.SHARED_INDEX, "VssSessionToken")
    assert done.returncode == 1
    assert done.stdout == ""
    line = one_line_message(done.stderr)
    assert "ARTIFACTS_KEYRING_NOFUSS_TOKEN" in line
    assert "expired at 2023-11-14 22:23:20Z" in line
    assert sim.count("index") == 0


def test_a_pat_is_never_sent_to_the_exchange(sim: Simulator, client_env: dict[str, str]) -> None:
    pat = sim.add_pat("contoso", "vso.packaging_write")
    env = signed_in(dict(client_env, AZURE_DEVOPS_EXT_PAT=pat))
    tokens_before = sim.count("token")
    done = keyring(env, "get", world.SHARED_UPLOAD, "VssSessionToken")
    assert done.returncode == 0, done.stderr
    _used_as_is(sim, done.stdout, pat, tokens_before)


def test_the_pipeline_token_for_its_own_organisation(
    sim: Simulator, client_env: dict[str, str]
) -> None:
    token = sim.add_pat("contoso", "vso.packaging_write", label="pipeline")
    env = dict(
        client_env,
        SYSTEM_ACCESSTOKEN=token,
        SYSTEM_TEAMFOUNDATIONCOLLECTIONURI="https://dev.azure.com/contoso/",
    )
    done = keyring(env, "get", world.TEAM_INDEX, "VssSessionToken")
    assert done.returncode == 0, done.stderr
    _used_as_is(sim, done.stdout, token)
    legacy = keyring(env, "get", world.LEGACY_SHARED_INDEX, "VssSessionToken")
    assert legacy.stdout.strip() == token


def test_the_pipeline_token_is_not_sent_to_another_organisation(
    sim: Simulator, client_env: dict[str, str]
) -> None:
    token = sim.add_pat("contoso", label="pipeline")
    env = dict(
        client_env,
        SYSTEM_ACCESSTOKEN=token,
        SYSTEM_TEAMFOUNDATIONCOLLECTIONURI="https://dev.azure.com/contoso/",
        ARTIFACTS_KEYRING_NONINTERACTIVE_MODE="true",
    )
    done = keyring(env, "get", world.RELEASES_INDEX, "VssSessionToken")
    assert done.returncode == 1
    assert token not in done.stdout + done.stderr
    assert "pipeline: the pipeline's token is for https://dev.azure.com/contoso/" in done.stderr


@pytest.mark.parametrize(
    ("token_var", "prefix_var"),
    [
        ("ARTIFACTS_CREDENTIALPROVIDER_ACCESSTOKEN", "ARTIFACTS_CREDENTIALPROVIDER_URI_PREFIXES"),
        ("VSS_NUGET_ACCESSTOKEN", "VSS_NUGET_URI_PREFIXES"),
    ],
)
def test_the_official_access_token_with_uri_prefixes(
    sim: Simulator, client_env: dict[str, str], token_var: str, prefix_var: str
) -> None:
    token = sim.add_pat("contoso")
    env = dict(
        client_env,
        **{
            token_var: token,
            prefix_var: "https://example.com/;HTTPS://PKGS.DEV.AZURE.COM/CONTOSO/",
        },
    )
    done = keyring(env, "get", world.SHARED_INDEX, "VssSessionToken")
    assert done.returncode == 0, done.stderr
    _used_as_is(sim, done.stdout, token)
    # A feed under no prefix: not this token.
    other = keyring(
        dict(env, ARTIFACTS_KEYRING_NONINTERACTIVE_MODE="true"),
        "get",
        world.RELEASES_INDEX,
        "VssSessionToken",
    )
    assert other.returncode == 1
    assert token not in other.stdout


def test_a_uri_prefix_ends_on_a_path_segment(sim: Simulator, client_env: dict[str, str]) -> None:
    """`.../contoso` is organisation contoso, not every organisation whose name starts with it
    (anyone can create `contosoevil` and point a build at its feed)."""
    token = sim.add_pat("contoso")
    env = dict(
        client_env,
        ARTIFACTS_CREDENTIALPROVIDER_ACCESSTOKEN=token,
        ARTIFACTS_CREDENTIALPROVIDER_URI_PREFIXES="https://pkgs.dev.azure.com/contoso",
        ARTIFACTS_KEYRING_NONINTERACTIVE_MODE="true",
    )
    evil = "https://pkgs.dev.azure.com/contosoevil/_packaging/shared/pypi/simple/"
    done = keyring(env, "get", evil, "VssSessionToken")
    handed = token in done.stdout + done.stderr  # (never shown by a failing assertion)
    assert not handed, "contoso's token was handed to contosoevil"
    assert done.stdout == ""
    assert done.returncode == 1
    assert "no credential for contosoevil/shared" in one_line_message(done.stderr)
    own = keyring(env, "get", world.SHARED_INDEX, "VssSessionToken")
    assert own.returncode == 0, own.stderr
    assert own.stdout.strip() == token


@pytest.mark.parametrize(
    "variable",
    ["ARTIFACTS_CREDENTIALPROVIDER_EXTERNAL_FEED_ENDPOINTS", "VSS_NUGET_EXTERNAL_FEED_ENDPOINTS"],
)
def test_external_feed_endpoints_match_by_feed_so_uv_urls_match(
    sim: Simulator, client_env: dict[str, str], variable: str
) -> None:
    shared = sim.add_pat("contoso")
    releases = sim.add_pat("fabrikam")
    document = {
        "endpointCredentials": [
            "not an object",
            {"endpoint": world.RELEASES_INDEX, "username": "ci", "password": releases},
            {
                "endpoint": "https://pkgs.dev.azure.com/contoso/_packaging/shared/nuget/v3/index.json",
                "password": shared,
            },
        ]
    }
    env = dict(client_env, **{variable: json.dumps(document)})
    # uv's spelling: no trailing slash, a username in the URL.
    url = world.SHARED_INDEX.rstrip("/").replace("https://", "https://__token__@")
    done = keyring(env, "get", url, "__token__")
    assert done.returncode == 0, done.stderr
    _used_as_is(sim, done.stdout, shared)
    # The malformed entry skipped only itself, with one warning.
    assert f"{variable} entry 1 is not an object; skipping it" in done.stderr
    other = keyring(env, "get", world.RELEASES_INDEX, "VssSessionToken")
    assert other.stdout.strip() == releases


def test_extra_hosts_reach_azure_devops_server_with_a_pat(
    sim: Simulator, client_env: dict[str, str]
) -> None:
    pat = sim.add_pat("DefaultCollection")
    document = {"endpointCredentials": [{"endpoint": world.ONPREM_INDEX, "password": pat}]}
    env = dict(
        client_env, ARTIFACTS_CREDENTIALPROVIDER_EXTERNAL_FEED_ENDPOINTS=json.dumps(document)
    )
    # Without the host declared, an on-premises server is not ours: nothing is answered.
    before = keyring(env, "get", world.ONPREM_INDEX, "VssSessionToken")
    assert before.returncode == 1 and before.stdout == "" and before.stderr == ""
    env["ARTIFACTS_CREDENTIALPROVIDER_VSTS_HOSTS"] = "example.org;.example.com"
    done = keyring(env, "get", world.ONPREM_INDEX, "VssSessionToken")
    assert done.returncode == 0, done.stderr
    _used_as_is(sim, done.stdout, pat)
    assert feed_accepts(sim, world.ONPREM_INDEX, pat) == 200


def test_the_log_path_gets_every_step_and_no_secret(
    sim: Simulator, client_env: dict[str, str], tmp_path: Path
) -> None:
    log = tmp_path / "credprovider.log"
    env = signed_in(dict(client_env, ARTIFACTS_CREDENTIALPROVIDER_LOG_PATH=str(log)))
    env.pop("ARTIFACTS_KEYRING_NOFUSS_DEBUG", None)  # the debug pass: this test is about the file
    done = keyring(env, "get", world.SHARED_INDEX, "VssSessionToken")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # the log goes to the file, not to the terminal
    text = log.read_text()
    assert "azure_cli: applies" in text
    assert "exchange" in text
    assert done.stdout.strip() not in text
    assert log.stat().st_mode & 0o077 == 0
