"""uv installing and syncing from the simulated feed through `keyring` on PATH."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from .helpers import run
from .scenarios import azure_requests, bin_path, importable, one_line_message, signed_in, with_user
from .sim import world
from .sim.server import Simulator


def uv_pip_install(target: Path, *args: str) -> list[str]:
    return [
        bin_path("uv"),
        "pip",
        "install",
        "--no-cache",
        "--target",
        str(target),
        "--keyring-provider",
        "subprocess",
        *args,
    ]


@pytest.mark.parametrize("user", ["__token__", "VssSessionToken"])
def test_uv_pip_install_with_a_username_in_the_url(
    sim: Simulator, client_env: dict[str, str], tmp_path: Path, user: str
) -> None:
    env = signed_in(client_env)
    target = tmp_path / "target"
    done = run(
        uv_pip_install(target, "--index-url", with_user(world.SHARED_INDEX, user), "tinyapp"), env
    )
    assert done.returncode == 0, done.stderr
    assert importable(target, env, "tinyapp") == "2.0.0"
    assert sim.count("exchange") == 1
    assert all(r.credential_kind == "session" for r in sim.requests(kind="download"))


def test_uv_named_index_username_from_the_environment(
    sim: Simulator, client_env: dict[str, str], tmp_path: Path
) -> None:
    env = signed_in(client_env)
    env["UV_INDEX_AZURE_USERNAME"] = "VssSessionToken"
    target = tmp_path / "target"
    done = run(
        uv_pip_install(
            target,
            "--index",
            f"azure={world.SHARED_INDEX}",
            "--default-index",
            world.PLAIN_INDEX,
            "--index-strategy",
            "first-index",
            "tinyfeedpkg",
        ),
        env,
    )
    assert done.returncode == 0, done.stderr
    assert importable(target, env, "tinyfeedpkg") == "1.1.0"
    assert sim.count("exchange") == 1


def write_project(root: Path, index: str, extra: str = "") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text(
        f"""[project]
name = "consumer"
version = "0.1.0"
requires-python = ">=3.10"
dependencies = ["tinyapp"]

[tool.uv]
package = false
keyring-provider = "subprocess"

[[tool.uv.index]]
name = "azure-devops"
url = "{index}"
default = true
{extra}
"""
    )
    return root


@pytest.mark.parametrize(
    ("index", "extra"),
    [
        (with_user(world.SHARED_INDEX, "VssSessionToken"), ""),
        (world.SHARED_INDEX, 'authenticate = "always"'),
    ],
    ids=["username-in-url", "authenticate-always"],
)
def test_uv_sync_with_a_project_index(
    sim: Simulator, client_env: dict[str, str], tmp_path: Path, index: str, extra: str
) -> None:
    env = signed_in(client_env)
    env.pop("UV_NO_CONFIG")  # the project's own pyproject.toml is the point here
    project = write_project(tmp_path / "project", index, extra)
    done = run(
        [bin_path("uv"), "sync", "--no-cache", "--python", bin_path("python")], env, cwd=project
    )
    assert done.returncode == 0, done.stderr
    venv_python = project / ".venv" / "bin" / "python"
    check = run([str(venv_python), "-c", "import tinyapp, tinydep"], env)
    assert check.returncode == 0, check.stderr
    assert sim.count("exchange") == 1


def pyproject_lines_from_setup(env: dict[str, str]) -> str:
    """The pyproject.toml lines `ak-nofuss setup uv` prints (as comments), uncommented."""
    done = run([bin_path("ak-nofuss"), "setup", "uv", world.SHARED_INDEX], env)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    block = []
    for line in lines[lines.index("# or, in a project's pyproject.toml:") + 1 :]:
        toml = line.removeprefix("# ")
        if not (toml.startswith("[") or " = " in toml):
            break  # the prose after the snippet
        block.append(toml)
    return "\n".join(block) + "\n"


def sync_from_the_lock(
    project: Path, env: dict[str, str], cache: Path
) -> subprocess.CompletedProcess[str]:
    """`uv sync --frozen` into a new environment with an empty uv cache: a new clone, a CI job.
    Nothing but the lock says where the files are, and they are not under the index URL."""
    shutil.rmtree(project / ".venv", ignore_errors=True)
    return run([bin_path("uv"), "sync", "--frozen", "--python", bin_path("python")],
               dict(env, UV_CACHE_DIR=str(cache)), cwd=project)


def test_uv_sync_from_a_lock_with_what_setup_prints_and_not_without_the_username(
    sim: Simulator, client_env: dict[str, str], tmp_path: Path
) -> None:
    env = signed_in(client_env)
    env.pop("UV_NO_CONFIG")
    project = tmp_path / "printed"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        '[project]\nname = "consumer"\nversion = "0.1.0"\nrequires-python = ">=3.10"\n'
        'dependencies = ["tinyapp"]\n\n' + pyproject_lines_from_setup(env)
    )
    locked = run([bin_path("uv"), "lock", "--python", bin_path("python")], env, cwd=project)
    assert locked.returncode == 0, locked.stderr
    assert "/pypi/download/tinyapp/" in (project / "uv.lock").read_text()

    mark = len(sim.requests())
    done = sync_from_the_lock(project, env, tmp_path / "cache-printed")
    assert done.returncode == 0, done.stderr
    check = run([str(project / ".venv" / "bin" / "python"), "-c", "import tinyapp, tinydep"], env)
    assert check.returncode == 0, check.stderr
    files = [r for r in sim.requests()[mark:] if r.kind == "download" and r.status == 200]
    assert {r.credential_kind for r in files} == {"session"} and len(files) == 2

    # The same index with no username and `authenticate = "always"`: uv installs from it
    # (the index pages are under its URL), yet never asks keyring for the lock's files.
    always = tmp_path / "always"
    always.mkdir()
    pyproject = (project / "pyproject.toml").read_text()
    (always / "pyproject.toml").write_text(
        pyproject.replace(with_user(world.SHARED_INDEX, "VssSessionToken"), world.SHARED_INDEX)
        .replace('"contoso-shared"\n', '"contoso-shared"\nauthenticate = "always"\n')
    )
    assert 'authenticate = "always"' in (always / "pyproject.toml").read_text()
    assert "VssSessionToken" not in (always / "pyproject.toml").read_text()
    shutil.copy(project / "uv.lock", always / "uv.lock")
    mark = len(sim.requests())
    failed = sync_from_the_lock(always, env, tmp_path / "cache-always")
    assert failed.returncode != 0
    assert "401 Unauthorized" in failed.stderr and "/pypi/download/" in failed.stderr
    assert {r.status for r in sim.requests()[mark:]} == {401}


def test_pipeline_recipe_with_keyring_disabled_still_works(
    sim: Simulator, client_env: dict[str, str], tmp_path: Path
) -> None:
    """Seed 004: a pipeline token in UV_INDEX_<NAME>_PASSWORD and keyring disabled, with the
    backend installed: uv must not call it, and the token goes through as it is."""
    env = dict(client_env)
    env.pop("UV_NO_CONFIG")
    pipeline_token = sim.add_pat("contoso", label="System.AccessToken")
    env.update(
        {
            "UV_INDEX_AZURE_DEVOPS_USERNAME": "VssSessionToken",
            "UV_INDEX_AZURE_DEVOPS_PASSWORD": pipeline_token,
            "UV_KEYRING_PROVIDER": "disabled",
            "FAKE_AZ_CALLS": str(tmp_path / "az-calls"),
            "ARTIFACTS_KEYRING_NOFUSS_DEBUG": "1",
        }
    )
    project = write_project(tmp_path / "project", world.SHARED_INDEX)
    done = run(
        [bin_path("uv"), "sync", "--no-cache", "--python", bin_path("python")], env, cwd=project
    )
    assert done.returncode == 0, done.stderr
    assert sim.count("exchange") == 0
    assert "artifacts-keyring-nofuss" not in done.stderr  # the backend was never asked
    assert not (tmp_path / "az-calls").exists()
    assert {r.credential_kind for r in sim.requests(kind="download")} == {"pat"}


def test_uv_shows_our_line_when_nobody_is_signed_in(
    sim: Simulator, client_env: dict[str, str], tmp_path: Path
) -> None:
    started = time.monotonic()
    done = run(
        uv_pip_install(
            tmp_path / "t", "--index-url", with_user(world.SHARED_INDEX, "__token__"), "tinyapp"
        ),
        client_env,
    )
    assert done.returncode != 0
    assert time.monotonic() - started < 60
    line = one_line_message(done.stderr)
    assert "az login" in line
    assert "exchange" not in {r.kind for r in sim.requests()}
    assert azure_requests(sim)
