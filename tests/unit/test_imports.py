"""What every `keyring` start pays for this plugin, checked in fresh processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("requests", "azure", "azure.identity", "msal", "urllib3")


def _run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ARTIFACTS_", "AZURE_", "PYTHON_KEYRING", "KEYRING_"))
    }
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    env["XDG_DATA_HOME"] = str(tmp_path / "data")
    return subprocess.run(
        args,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
    )


def test_a_foreign_lookup_imports_nothing_heavy(tmp_path: Path) -> None:
    code = (
        "import json, sys, keyring\n"
        "keyring.get_keyring()\n"
        "answer = keyring.get_password('https://pypi.org/simple/', 'u')\n"
        "credential = keyring.get_credential('poetry-repository-x', None)\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "mine = 'artifacts_keyring_nofuss.backend' in sys.modules\n"
        "print(json.dumps({'answer': answer, 'credential': credential is None,"
        " 'heavy': heavy, 'mine': mine}))\n"
    )
    done = _run([sys.executable, "-c", code], tmp_path)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result == {"answer": None, "credential": True, "heavy": [], "mine": True}


def test_importing_the_backend_imports_nothing_heavy(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "import artifacts_keyring_nofuss.backend\n"
        "import artifacts_keyring_nofuss.feeds\n"
        f"print([m for m in {HEAVY!r} if m in sys.modules])\n"
    )
    done = _run([sys.executable, "-c", code], tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "[]\n"


def test_the_entry_point_is_registered(tmp_path: Path) -> None:
    code = (
        "from importlib.metadata import entry_points\n"
        "for ep in entry_points(group='keyring.backends'):\n"
        "    print(ep.name, ep.value)\n"
    )
    done = _run([sys.executable, "-c", code], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "artifacts_keyring_nofuss artifacts_keyring_nofuss.backend" in done.stdout.splitlines()


def _keyring_command() -> list[str]:
    script = Path(sys.executable).with_name("keyring")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "keyring"]


def test_keyring_lists_the_backend(tmp_path: Path) -> None:
    done = _run([*_keyring_command(), "--list-backends"], tmp_path)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if "AzureArtifactsBackend" in line]
    assert lines == ["artifacts_keyring_nofuss.backend.AzureArtifactsBackend (priority: 9.9)"]


@pytest.mark.parametrize(
    "args",
    [
        ["get", "https://pypi.org/simple/", "u"],
        ["get", "python-poetry-check", "u"],
        ["--mode", "creds", "--output", "json", "get", "pkgs.dev.azure.com"],
    ],
)
def test_keyring_get_for_a_foreign_service_prints_nothing(tmp_path: Path, args: list[str]) -> None:
    done = _run([*_keyring_command(), *args], tmp_path)
    assert done.returncode == 1  # keyring's "not found"
    assert done.stdout == ""
    assert "artifacts-keyring-nofuss" not in done.stderr
    assert "Traceback" not in done.stderr
