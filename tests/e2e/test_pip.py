"""pip installing from the simulated feed, in each of the ways pip talks to keyring."""

from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import run
from .scenarios import azure_requests, importable, pip_install, signed_in, with_user
from .sim import world
from .sim.server import Simulator


@pytest.mark.parametrize(
    ("provider", "index"),
    [
        ("subprocess", with_user(world.SHARED_INDEX, "VssSessionToken")),
        # pip >= 26.2 asks `keyring --mode=creds` without a username.
        ("subprocess", world.SHARED_INDEX),
        ("import", world.SHARED_INDEX),
    ],
    ids=["subprocess-username-in-url", "subprocess-no-username", "import"],
)
def test_pip_installs_with_the_backend(
    sim: Simulator, client_env: dict[str, str], tmp_path: Path, provider: str, index: str
) -> None:
    env = signed_in(client_env)
    target = tmp_path / "target"
    done = run(pip_install(env, target, index, "--keyring-provider", provider, "tinyapp"), env)

    assert done.returncode == 0, done.stdout + done.stderr
    assert importable(target, env, "tinyapp") == "2.0.0"
    assert importable(target, env, "tinydep") == "0.3.0"
    downloads = sim.requests(kind="download")
    assert downloads
    assert all(r.status == 200 and r.credential_kind == "session" for r in downloads)
    assert {r.scope for r in sim.requests(kind="exchange")} == {"vso.packaging"}


@pytest.mark.parametrize(
    "index",
    [world.LEGACY_SHARED_INDEX, world.TEAM_INDEX, world.SHARED_RELEASE_INDEX],
    ids=["legacy-host", "project-feed", "feed-view"],
)
def test_pip_installs_from_every_feed_form(
    sim: Simulator, client_env: dict[str, str], tmp_path: Path, index: str
) -> None:
    env = signed_in(client_env)
    target = tmp_path / "target"
    done = run(
        pip_install(env, target, index, "--keyring-provider", "subprocess", "tinyfeedpkg"), env
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert importable(target, env, "tinyfeedpkg") == "1.1.0"
    assert sim.count("exchange") == 1


def test_a_plain_index_never_triggers_a_lookup(
    sim: Simulator, client_env: dict[str, str], tmp_path: Path
) -> None:
    env = signed_in(client_env)
    sim.reset()
    target = tmp_path / "target"
    done = run(
        pip_install(
            env,
            target,
            with_user(world.PLAIN_INDEX, "someone"),
            "--keyring-provider",
            "subprocess",
            "tinydep",
        ),
        env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert importable(target, env, "tinydep") == "0.3.0"
    assert azure_requests(sim) == []


def test_a_plain_index_beside_the_feed_gets_no_credential(
    sim: Simulator, client_env: dict[str, str], tmp_path: Path
) -> None:
    env = signed_in(client_env)
    target = tmp_path / "target"
    done = run(
        pip_install(
            env,
            target,
            world.SHARED_INDEX,
            "--extra-index-url",
            world.PLAIN_INDEX,
            "--keyring-provider",
            "subprocess",
            "tinyapp",
        ),
        env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    plain = sim.requests(host="plain-index.example")
    assert plain
    assert {r.auth_scheme for r in plain} == {"none"}
    assert sim.count("exchange") == 1
    assert sim.count("discovery") >= 1
