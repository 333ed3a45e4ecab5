"""twine and uv publish to the upload URL: write scope for users, app tokens as they are, and a
read token that cannot publish."""

from __future__ import annotations

from pathlib import Path
from subprocess import CompletedProcess

import pytest

from .helpers import run
from .scenarios import (
    as_service_principal,
    bin_path,
    importable,
    keyring,
    signed_in,
    twine_upload,
    with_user,
)
from .sim import world
from .sim.server import Simulator
from .sim.wheels import build_wheel


@pytest.fixture
def fresh_wheel(tmp_path: Path) -> Path:
    return build_wheel(tmp_path / "dist", "freshpkg", "0.4.2")


def uv_publish(env: dict[str, str], wheel: Path, *args: str) -> CompletedProcess[str]:
    return run(
        [bin_path("uv"), "publish", "--keyring-provider", "subprocess", *args, str(wheel)], env
    )


def installs_after_upload(env: dict[str, str], tmp_path: Path) -> None:
    target = tmp_path / "installed"
    done = run(
        [
            bin_path("pip"),
            "install",
            "--no-cache-dir",
            "--target",
            str(target),
            "--keyring-provider",
            "subprocess",
            "--index-url",
            world.SHARED_INDEX,
            "freshpkg",
        ],
        env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert importable(target, env, "freshpkg") == "0.4.2"


def test_twine_upload_as_an_az_user_gets_the_write_scope(
    sim: Simulator, client_env: dict[str, str], tmp_path: Path, fresh_wheel: Path
) -> None:
    env = signed_in(client_env)
    done = twine_upload(env, fresh_wheel)
    assert done.returncode == 0, done.stdout + done.stderr
    assert fresh_wheel.name in sim.uploaded("shared")
    (upload,) = sim.requests(kind="upload")
    assert upload.credential_kind == "session"
    assert [r.scope for r in sim.requests(kind="exchange")] == ["vso.packaging_write"]
    installs_after_upload(env, tmp_path)


def test_twine_upload_as_a_service_principal_sends_the_app_token(
    sim: Simulator, client_env: dict[str, str], tmp_path: Path, fresh_wheel: Path
) -> None:
    env = as_service_principal(client_env)
    done = twine_upload(env, fresh_wheel)
    assert done.returncode == 0, done.stdout + done.stderr
    (upload,) = sim.requests(kind="upload")
    assert upload.credential_kind == "entra-app"
    assert sim.count("exchange") == 0


def test_uv_publish_as_an_az_user(
    sim: Simulator, client_env: dict[str, str], fresh_wheel: Path
) -> None:
    env = signed_in(client_env)
    done = uv_publish(
        env, fresh_wheel, "--username", "VssSessionToken", "--publish-url", world.SHARED_UPLOAD
    )
    assert done.returncode == 0, done.stderr
    assert fresh_wheel.name in sim.uploaded("shared")
    assert [r.scope for r in sim.requests(kind="exchange")] == ["vso.packaging_write"]


def test_the_install_token_cannot_publish(
    sim: Simulator, client_env: dict[str, str], fresh_wheel: Path
) -> None:
    env = signed_in(client_env)
    read = keyring(env, "get", world.SHARED_INDEX, "VssSessionToken")
    assert read.returncode == 0, read.stderr
    done = twine_upload(env, fresh_wheel, "-u", "VssSessionToken", "-p", read.stdout.strip())
    assert done.returncode != 0
    assert fresh_wheel.name not in sim.uploaded("shared")
    (upload,) = sim.requests(kind="upload")
    assert upload.status == 403


def test_uv_publish_url_with_username_in_it(
    sim: Simulator, client_env: dict[str, str], fresh_wheel: Path
) -> None:
    env = signed_in(client_env)
    done = uv_publish(
        env, fresh_wheel, "--publish-url", with_user(world.TEAM_UPLOAD, "VssSessionToken")
    )
    assert done.returncode == 0, done.stderr
    assert fresh_wheel.name in sim.uploaded("team")


def test_uv_publish_as_a_service_principal(
    sim: Simulator, client_env: dict[str, str], fresh_wheel: Path
) -> None:
    env = as_service_principal(client_env)
    done = uv_publish(
        env, fresh_wheel, "--username", "VssSessionToken", "--publish-url", world.SHARED_UPLOAD
    )
    assert done.returncode == 0, done.stderr
    (upload,) = sim.requests(kind="upload")
    assert upload.credential_kind == "entra-app"
    assert sim.count("exchange") == 0
