"""When it cannot work: the client fails in bounded time, with our one line and no traceback,
and no token goes anywhere it must not."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from .helpers import run
from .scenarios import bin_path, feed_accepts, keyring, one_line_message, signed_in, spoken
from .sim import world
from .sim.azcli import AZ
from .sim.server import Simulator


def test_wrong_tenant_names_the_tenant_and_the_fix(
    sim: Simulator, client_env: dict[str, str]
) -> None:
    env = signed_in(client_env, world.CAROL)  # fabrikam's user asks for contoso's feed
    done = keyring(env, "get", world.SHARED_INDEX, "VssSessionToken")
    assert done.returncode == 1
    line = one_line_message(done.stderr)
    assert world.T_CONTOSO in line
    assert f"az login --tenant {world.T_CONTOSO}" in line
    assert sim.count("exchange") == 0


def test_never_signed_in_to_the_organisation_gets_tf401444_advice(
    sim: Simulator, client_env: dict[str, str]
) -> None:
    sim.set_never_signed_in(world.ALICE, "contoso")
    env = signed_in(client_env)
    done = keyring(env, "get", world.SHARED_INDEX, "VssSessionToken")
    assert done.returncode == 1
    line = one_line_message(done.stderr)
    assert "https://dev.azure.com/contoso" in line


def test_exchange_down_fails_fast_through_pip_import_mode(
    sim: Simulator, client_env: dict[str, str], tmp_path: object
) -> None:
    sim.fail("vssps.dev.azure.com", "SessionTokens", [503] * 10)
    env = signed_in(client_env)
    started = time.monotonic()
    done = run(
        [
            bin_path("pip"),
            "install",
            "--no-cache-dir",
            "--target",
            f"{tmp_path}/t",
            "--keyring-provider",
            "import",
            "--index-url",
            world.SHARED_INDEX,
            "tinyapp",
        ],
        env,
    )
    assert done.returncode != 0
    assert time.monotonic() - started < 60
    line = one_line_message(done.stderr)
    assert "503" in line


def test_discovery_pointing_elsewhere_sends_no_token(
    sim: Simulator, client_env: dict[str, str]
) -> None:
    sim.override_discovery(
        "contoso", {"X-VSS-AuthorizationEndpoint": "https://vssps.dev.azure.com.evil.example/"}
    )
    env = signed_in(client_env)
    done = keyring(env, "get", world.SHARED_INDEX, "VssSessionToken")
    assert done.returncode == 1
    line = one_line_message(done.stderr)
    assert "not sending any token" in line
    assert not [r for r in sim.requests() if "evil" in r.host]
    assert sim.count("exchange") == 0


def test_hostile_login_uri_stops_before_az_runs(
    sim: Simulator, client_env: dict[str, str], tmp_path: object
) -> None:
    env = signed_in(client_env)
    evil = "https://login.microsoftonline.com.evil.example/x"
    sim.override_discovery("contoso", {"WWW-Authenticate": f"Bearer authorization_uri={evil}"})
    env["FAKE_AZ_CALLS"] = f"{tmp_path}/az-calls"
    tokens_before = sim.count("token")
    done = keyring(env, "get", world.SHARED_INDEX, "VssSessionToken")
    assert done.returncode == 1
    assert "not sending any token" in one_line_message(done.stderr)
    assert sim.count("token") == tokens_before
    assert not [r for r in sim.requests() if "evil" in r.host]


def test_a_slow_az_still_answers(sim: Simulator, client_env: dict[str, str]) -> None:
    env = signed_in(client_env)
    env["FAKE_AZ_DELAY"] = "1.5"
    done = keyring(env, "get", world.SHARED_INDEX, "VssSessionToken")
    assert done.returncode == 0, done.stderr
    assert sim.count("exchange") == 1


def test_a_broken_az_is_one_line_not_its_traceback(
    sim: Simulator, client_env: dict[str, str]
) -> None:
    env = signed_in(client_env)
    env["FAKE_AZ_BROKEN"] = "1"
    done = keyring(env, "get", world.SHARED_INDEX, "VssSessionToken")
    assert done.returncode == 1
    assert "az crashed" in one_line_message(done.stderr)


def test_a_hanging_az_is_cut_off_by_its_timeout(sim: Simulator, client_env: dict[str, str]) -> None:
    env = signed_in(client_env)
    env.update(FAKE_AZ_HANG="1", ARTIFACTS_KEYRING_NOFUSS_AZ_TIMEOUT="2")
    started = time.monotonic()
    done = keyring(env, "get", world.SHARED_INDEX, "VssSessionToken")
    assert done.returncode == 1
    assert time.monotonic() - started < 30
    line = one_line_message(done.stderr)
    assert "did not finish in 2 s" in line
    assert "ARTIFACTS_KEYRING_NOFUSS_AZ_TIMEOUT" in line


def _az_first(env: dict[str, str], bin_dir: Path, script: str) -> dict[str, str]:
    """An `az` first on PATH that runs `script` (bash), with the fake az as $REAL_AZ."""
    bin_dir.mkdir()
    wrapper = bin_dir / "az"
    wrapper.write_text(f"#!/bin/bash\n{script}\n", encoding="utf-8")
    wrapper.chmod(0o755)
    return dict(env, PATH=f"{bin_dir}{os.pathsep}{env['PATH']}", REAL_AZ=str(AZ))


def test_an_az_that_leaves_a_child_holding_its_output_still_answers(
    sim: Simulator, client_env: dict[str, str], tmp_path: Path
) -> None:
    # az answers and exits, but a child it started (telemetry, a daemon) inherited its stdout
    # and stderr: the answer is complete, only the end of file never comes.
    env = _az_first(
        signed_in(client_env),
        tmp_path / "bin",
        'out=$("$REAL_AZ" "$@"); rc=$?; printf "%s\\n" "$out"; (sleep 60) & exit $rc',
    )
    started = time.monotonic()
    done = keyring(env, "get", world.SHARED_INDEX, "VssSessionToken")
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 10
    assert feed_accepts(sim, world.SHARED_INDEX, done.stdout.strip()) == 200


@pytest.mark.parametrize(
    "command",
    [
        ["keyring", "get", world.SHARED_INDEX, "VssSessionToken"],
        ["ak-nofuss", "token", world.SHARED_INDEX],
    ],
    ids=["keyring-get", "ak-nofuss-token"],
)
def test_an_az_that_prints_without_end_is_one_line_at_once(
    sim: Simulator, client_env: dict[str, str], tmp_path: Path, command: list[str]
) -> None:
    # Kept whole, `yes` fills gigabytes of memory within the lookup's deadline.
    env = _az_first(client_env, tmp_path / "bin", "exec yes 0123456789abcdef")
    env["ARTIFACTS_KEYRING_NOFUSS_TIMEOUT"] = "8"
    started = time.monotonic()
    done = run(command, env)
    assert time.monotonic() - started < 5
    assert done.returncode == 1
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    (line,) = spoken(done.stderr)
    assert "`az account get-access-token` printed more than 1024 KiB" in line
    assert sim.count("exchange") == 0
