"""poetry, with the backend added to poetry's own environment (as `poetry self add` does)."""

from __future__ import annotations

import os
from pathlib import Path

from .helpers import run
from .scenarios import POETRY, signed_in
from .sim import world
from .sim.server import Simulator


def poetry_env(client_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """Signed in with az, poetry's caches and config in the test's own directory."""
    env = signed_in(client_env)
    env.update(
        {
            "POETRY_VIRTUALENVS_IN_PROJECT": "true",
            "POETRY_CACHE_DIR": str(tmp_path / "poetry-cache"),
            "POETRY_CONFIG_DIR": str(tmp_path / "poetry-config"),
            "POETRY_NO_INTERACTION": "1",
        }
    )
    return env


def test_poetry_installs_from_an_azure_source(
    sim: Simulator, client_env: dict[str, str], tmp_path: Path
) -> None:
    assert POETRY.exists(), "poetry's environment is missing: run scripts/bootstrap"
    env = poetry_env(client_env, tmp_path)
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        f"""[tool.poetry]
name = "consumer"
version = "0.1.0"
description = ""
authors = []
package-mode = false

[tool.poetry.dependencies]
python = ">=3.10"
tinyapp = "*"

[[tool.poetry.source]]
name = "azure"
url = "{world.SHARED_INDEX.rstrip("/")}"
priority = "primary"
"""
    )
    done = run([str(POETRY), "install", "--no-root"], env, cwd=project, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    check = run([str(project / ".venv" / "bin" / "python"), "-c", "import tinyapp, tinydep"], env)
    assert check.returncode == 0, check.stderr
    assert sim.requests(kind="download")
    assert all(r.credential_kind == "session" for r in sim.requests(kind="download"))
    assert sim.count("exchange") == 1


def test_setup_poetry_write_adds_the_source_and_poetry_installs(
    sim: Simulator, client_env: dict[str, str], tmp_path: Path
) -> None:
    env = poetry_env(client_env, tmp_path)
    # poetry on PATH, as users have it; its environment already has the backend, so
    # `poetry self add` is skipped (no PyPI in the namespace).
    env["PATH"] += os.pathsep + str(POETRY.parent)
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        """[tool.poetry]
name = "consumer"
version = "0.1.0"
description = ""
authors = []
package-mode = false

[tool.poetry.dependencies]
python = ">=3.10"
tinyapp = "*"
"""
    )
    setup = run(
        ["ak-nofuss", "setup", "poetry", world.SHARED_INDEX, "--write"],
        env,
        cwd=project,
        timeout=240,
    )
    assert setup.returncode == 0, setup.stdout + setup.stderr
    assert "# already done: poetry self add artifacts-keyring-nofuss" in setup.stdout
    assert "# ran: poetry source add --priority=primary contoso-shared" in setup.stdout
    written = (project / "pyproject.toml").read_text()
    assert world.SHARED_INDEX.rstrip("/") in written
    assert not any(secret in written for secret in sim.issued_secrets())

    done = run([str(POETRY), "install", "--no-root"], env, cwd=project, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    assert sim.requests(kind="download")
    assert all(r.credential_kind == "session" for r in sim.requests(kind="download"))
