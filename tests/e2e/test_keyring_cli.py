"""The `keyring` command as pip, uv and a person run it, through the installed entry point."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .helpers import run
from .scenarios import (
    assert_no_leak,
    azure_requests,
    feed_accepts,
    keyring,
    one_line_message,
    signed_in,
    spoken,
)
from .sim import world
from .sim.server import Simulator


def test_get_prints_a_read_session_token_from_the_exchange(
    sim: Simulator, client_env: dict[str, str]
) -> None:
    env = signed_in(client_env)
    done = keyring(env, "get", world.SHARED_INDEX, "VssSessionToken")

    assert done.returncode == 0, done.stderr
    assert spoken(done.stderr) == []
    token = done.stdout.strip()
    assert token and "\n" not in token
    assert sim.count("discovery") == 1
    (exchange,) = sim.requests(kind="exchange")
    assert exchange.host == "vssps.dev.azure.com"
    assert exchange.path.lower() == "/contoso/_apis/token/sessiontokens"
    assert exchange.scope == "vso.packaging"
    assert exchange.credential_kind == "entra-user"
    # What it printed is that session token, and the feed takes it.
    assert sim.fingerprint(token) != exchange.credential_fingerprint
    assert feed_accepts(sim, world.SHARED_INDEX, token) == 200


def test_get_with_token_username_answers_too(sim: Simulator, client_env: dict[str, str]) -> None:
    env = signed_in(client_env)
    done = keyring(env, "get", world.SHARED_INDEX, "__token__")
    assert done.returncode == 0, done.stderr
    assert feed_accepts(sim, world.SHARED_INDEX, done.stdout.strip()) == 200


def test_creds_mode_on_an_upload_url_asks_for_the_write_scope(
    sim: Simulator, client_env: dict[str, str]
) -> None:
    env = signed_in(client_env)
    done = keyring(env, "--mode", "creds", "get", world.SHARED_UPLOAD)

    assert done.returncode == 0, done.stderr
    username, password = done.stdout.splitlines()
    assert username == "VssSessionToken"
    assert password
    (exchange,) = sim.requests(kind="exchange")
    assert exchange.scope == "vso.packaging_write"


def test_creds_mode_json_as_pip_asks(sim: Simulator, client_env: dict[str, str]) -> None:
    env = signed_in(client_env)
    done = keyring(env, "--mode=creds", "--output=json", "get", world.SHARED_INDEX)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["username"] == "VssSessionToken"
    assert feed_accepts(sim, world.SHARED_INDEX, answer["password"]) == 200


def test_a_foreign_url_gets_nothing_and_no_request(
    sim: Simulator, client_env: dict[str, str]
) -> None:
    env = signed_in(client_env)
    sim.reset()
    for service in ("https://pypi.org/simple/", "pkgs.dev.azure.com", "python-poetry-check"):
        done = keyring(env, "get", service, "someone")
        assert done.returncode == 1
        assert done.stdout == ""
        assert spoken(done.stderr) == []
    assert sim.requests() == []


def test_debug_shows_every_step_and_no_token(sim: Simulator, client_env: dict[str, str]) -> None:
    env = signed_in(client_env)
    env["ARTIFACTS_KEYRING_NOFUSS_DEBUG"] = "1"
    done = keyring(env, "get", world.SHARED_INDEX, "VssSessionToken")

    assert done.returncode == 0
    for step in ("organisation contoso", "discovery for contoso", "azure_cli", "exchange"):
        assert step in done.stderr
    assert world.T_CONTOSO in done.stderr
    assert_no_leak(sim, [done.stderr])


def test_one_process_asking_twice_costs_one_of_everything(
    sim: Simulator, client_env: dict[str, str]
) -> None:
    env = signed_in(client_env)
    calls = f"{env['HOME']}/az-calls"
    env["FAKE_AZ_CALLS"] = calls
    # twine asks get_credential then get_password; poetry asks the URL, then the netloc.
    script = (
        "import keyring\n"
        f"c = keyring.get_credential({world.SHARED_UPLOAD!r}, None)\n"
        f"p = keyring.get_password({world.SHARED_UPLOAD!r}, c.username)\n"
        "assert c.password == p\n"
        "assert keyring.get_password('pkgs.dev.azure.com', c.username) is None\n"
    )
    done = run([sys.executable, "-c", script], env)
    assert done.returncode == 0, done.stderr
    assert sim.count("discovery") == 1
    assert sim.count("exchange") == 1
    assert len(Path(calls).read_text().splitlines()) == 1


def test_logged_out_fails_with_one_line_and_no_traceback(
    sim: Simulator, client_env: dict[str, str]
) -> None:
    done = keyring(client_env, "get", world.SHARED_INDEX, "VssSessionToken")

    assert done.returncode == 1
    assert done.stdout == ""
    line = one_line_message(done.stderr)
    assert "no credential for contoso/shared" in line
    assert "az login" in line
    assert sim.count("exchange") == 0
    assert azure_requests(sim)  # discovery happened; nothing else could
