"""pdm, with the backend in pdm's own environment (.e2e/pdm, where pdm imports keyring).

What pdm does (2.29, unearth 0.18): `ak-nofuss setup pdm --write` sets `pypi.url` to the feed,
which replaces PyPI (a `pypi.<name>.url` source would be searched after PyPI's). The first
request to the feed goes without a credential, and after its 401 pdm asks keyring in process,
`get_credential(index URL with one trailing slash, None)` first (then `get_password(...,
"__token__")`, the bare host and `pdm-pypi-<name>` while nothing answers). Only when
`import keyring` fails in pdm's environment does it run the `keyring` command on PATH instead.
`pdm publish` asks before its upload: `pdm-repository-__unknown__`, then the upload URL with the
--username given. Its global configuration is $XDG_CONFIG_HOME/pdm/config.toml (or
PDM_CONFIG_FILE), which client_env isolates.
"""

from __future__ import annotations

import os
from pathlib import Path

from .helpers import run
from .scenarios import PDM, signed_in
from .sim import world
from .sim.server import Simulator
from .sim.wheels import build_wheel

PROJECT = """[project]
name = "consumer"
version = "0.1.0"
requires-python = ">=3.10"
dependencies = []

[tool.pdm]
distribution = false
"""


def pdm_env(client_env: dict[str, str]) -> dict[str, str]:
    """Signed in with az, `pdm` last on PATH (as users have it), no update check, no prompt."""
    assert PDM.exists(), "pdm's environment is missing: run scripts/bootstrap"
    env = signed_in(client_env)
    env.update(
        {
            "PATH": env["PATH"] + os.pathsep + str(PDM.parent),
            "PDM_CHECK_UPDATE": "false",
            "PDM_NON_INTERACTIVE": "1",
        }
    )
    return env


def pdm_config_dir(env: dict[str, str]) -> Path:
    return Path(env["XDG_CONFIG_HOME"]) / "pdm"


def setup_pdm(env: dict[str, str], cwd: Path) -> str:
    cwd.mkdir(parents=True, exist_ok=True)
    setup = run(["ak-nofuss", "setup", "pdm", world.SHARED_INDEX, "--write"], env, cwd=cwd)
    assert setup.returncode == 0, setup.stdout + setup.stderr
    assert "# ran: pdm config " in setup.stdout, setup.stdout
    return setup.stdout


def assert_no_secret_in_files(sim: Simulator, *roots: Path) -> None:
    secrets = [s.encode() for s in sim.issued_secrets() if len(s) >= 8]
    files = [f for root in roots for f in ([root] if root.is_file() else root.rglob("*"))]
    for path in files:
        if path.is_file() and ".venv" not in path.parts:
            data = path.read_bytes()
            assert not any(secret in data for secret in secrets), f"a secret is in {path}"


def test_setup_pdm_write_then_pdm_add_installs_from_the_feed(
    sim: Simulator, client_env: dict[str, str], tmp_path: Path
) -> None:
    env = pdm_env(client_env)
    setup_pdm(env, tmp_path / "elsewhere")
    config = pdm_config_dir(env) / "config.toml"
    assert world.SHARED_INDEX in config.read_text(), config.read_text()

    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text(PROJECT)
    done = run([str(PDM), "add", "tinyapp"], env, cwd=project, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    check = run([str(project / ".venv" / "bin" / "python"), "-c", "import tinyapp, tinydep"], env)
    assert check.returncode == 0, check.stderr

    feed = [r for r in sim.requests() if r.host == world.FEED_HOST and "/simple/" in r.path]
    assert feed[0].credential_kind is None  # pdm asks keyring only after the feed's 401
    downloads = sim.requests(kind="download")
    assert {Path(r.path).name.split("-")[0] for r in downloads} == {"tinyapp", "tinydep"}
    assert all(r.credential_kind == "session" for r in downloads)
    assert sim.count("exchange") == 1
    # Nothing pdm keeps (its configuration, its caches, the project's files) holds a secret.
    assert_no_secret_in_files(
        sim, pdm_config_dir(env), Path(env["XDG_CACHE_HOME"]) / "pdm", project
    )


def test_pdm_publish_as_the_setup_prints_it(
    sim: Simulator, client_env: dict[str, str], tmp_path: Path
) -> None:
    env = pdm_env(client_env)
    printed = setup_pdm(env, tmp_path / "elsewhere")
    command = next(line for line in printed.splitlines() if "pdm publish" in line)
    words = command.split("to publish:", 1)[1].split()
    assert words[:2] == ["pdm", "publish"], command

    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text(PROJECT)
    wheel = build_wheel(project / "dist", "freshpkg", "0.4.2")
    # --no-build: building would fetch the build backend, which the feed does not have.
    done = run([str(PDM), *words[1:], "--no-build"], env, cwd=project, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    assert wheel.name in sim.uploaded("shared")
    (upload,) = sim.requests(kind="upload")
    assert upload.credential_kind == "session"
    assert [r.scope for r in sim.requests(kind="exchange")] == ["vso.packaging_write"]


def test_setup_pdm_write_changes_nothing_but_pdms_config(
    sim: Simulator, client_env: dict[str, str], tmp_path: Path
) -> None:
    env = pdm_env(client_env)
    setup_pdm(env, tmp_path / "elsewhere")
    written = sorted(p.relative_to(pdm_config_dir(env)) for p in pdm_config_dir(env).rglob("*"))
    assert written == [Path("config.toml")]
