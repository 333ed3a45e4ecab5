"""azversion: the azure-cli release behind an `az`, and the releases known to break us."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from artifacts_keyring_nofuss.azversion import az_version, known_problem

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX launchers")


# --- known_problem -----------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["2.83.0", "2.83", " 2.83.0\n"])
def test_2_83_0_is_known_to_break_devops_tokens(version: str) -> None:
    problem = known_problem(version)
    assert problem is not None
    assert "2.83.0" in problem
    assert "Azure/azure-cli#32853" in problem
    assert "az upgrade" in problem


@pytest.mark.parametrize(
    "version", ["2.82.0", "2.83.1", "2.84.0", "2.91.0", "2.9.0", "2.830.0", "3.83.0", "2.67.0"]
)
def test_other_releases_are_not(version: str) -> None:
    assert known_problem(version) is None


@pytest.mark.parametrize("version", ["", "abc", "2", "2.83.0.1", "v2.83.0", "2.83.0b1", "2.83.x"])
def test_what_is_not_a_version_is_no_problem(version: str) -> None:
    assert known_problem(version) is None


# --- az_version: from the metadata beside the launcher's Python ----------------------------


def dist_info(site_packages: Path, version: str, metadata: str | None = None) -> Path:
    info = site_packages / f"azure_cli-{version}.dist-info"
    info.mkdir(parents=True)
    text = (
        metadata
        if metadata is not None
        else (f"Metadata-Version: 2.4\nName: azure-cli\nVersion: {version}\n\nlong description\n")
    )
    (info / "METADATA").write_text(text, encoding="utf-8")
    return info


def launcher(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    path.chmod(0o755)
    return path


@posix_only
def test_a_pip_venv(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    dist_info(venv / "lib/python3.12/site-packages", "2.91.0")
    az = launcher(venv / "bin/az", f"#!{venv}/bin/python\nimport os\nos.execl(...)\n")
    assert az_version(str(az)) == "2.91.0"


@posix_only
def test_the_linux_packages_launcher(tmp_path: Path) -> None:
    opt = tmp_path / "opt/az"
    dist_info(opt / "lib/python3.12/site-packages", "2.83.0")
    az = launcher(
        tmp_path / "usr/bin/az",
        f'#!/usr/bin/env bash\nbin_dir=`cd "$(dirname "$BASH_SOURCE[0]")"; pwd`\n'
        f'AZ_INSTALLER=DEB "{opt}/bin/python3" -Im azure.cli "$@"\n',
    )
    assert az_version(str(az)) == "2.83.0"


@posix_only
def test_homebrew_through_a_symlink(tmp_path: Path) -> None:
    cellar = tmp_path / "Cellar/azure-cli/2.90.0"
    dist_info(cellar / "libexec/lib/python3.13/site-packages", "2.90.0")
    real = launcher(
        cellar / "bin/az",
        f'#!/bin/bash\n"{cellar}/libexec/bin/python" -Im azure.cli "$@"\n',
    )
    link = tmp_path / "bin/az"
    link.parent.mkdir()
    link.symlink_to(real)
    assert az_version(str(link)) == "2.90.0"


def test_the_windows_installer_layout(tmp_path: Path) -> None:
    root = tmp_path / "CLI2"
    dist_info(root / "Lib/site-packages", "2.91.0")
    az = launcher(
        root / "wbin/az.cmd",
        '@IF EXIST "%~dp0\\..\\python.exe" (\n  SET AZ_INSTALLER=MSI\n'
        '  "%~dp0\\..\\python.exe" -IBm azure.cli %*\n) ELSE (\n  echo Failed\n)\n',
    )
    assert az_version(str(az)) == "2.91.0"


@posix_only
def test_the_version_comes_from_metadata_not_the_folder_name(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    dist_info(
        venv / "lib/python3.11/site-packages",
        "2.84.0",
        "Name: azure-cli\nVersion: 2.84.1\n\nVersion: 9.9.9\n",
    )
    az = launcher(venv / "bin/az", f"#!{venv}/bin/python3.11\n")
    assert az_version(str(az)) == "2.84.1"


@posix_only
def test_two_installations_under_one_prefix_ask_az_itself(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    dist_info(venv / "lib/python3.11/site-packages", "2.84.0")
    dist_info(venv / "lib/python3.12/site-packages", "2.91.0")
    az = launcher(venv / "bin/az", '#!/bin/sh\necho \'{"azure-cli": "2.91.0"}\'\n')
    assert az_version(str(az)) == "2.91.0"


# --- az_version: running `az version` ----------------------------------------------------------


@posix_only
@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ('{"azure-cli": "2.91.0", "azure-cli-core": "2.91.0", "extensions": {}}', "2.91.0"),
        ('{"azure-cli": "2.91.0; rm -rf /"}', None),
        ('{"azure-cli": 2.91}', None),
        ("[1, 2]", None),
        ("not json", None),
        ("", None),
    ],
)
def test_asking_az(tmp_path: Path, output: str, expected: str | None) -> None:
    script = tmp_path / "az"
    (tmp_path / "out.json").write_text(output, encoding="utf-8")
    launcher(
        script,
        f'#!/bin/sh\n[ "$*" = "version --output json" ] || exit 2\ncat "{tmp_path}/out.json"\n',
    )
    assert az_version(str(script)) == expected


@posix_only
def test_a_failing_az_tells_nothing(tmp_path: Path) -> None:
    script = launcher(tmp_path / "az", '#!/bin/sh\necho \'{"azure-cli": "2.91.0"}\'\nexit 1\n')
    assert az_version(str(script)) is None


@posix_only
def test_a_hanging_az_is_given_up_within_the_timeout(tmp_path: Path) -> None:
    script = launcher(tmp_path / "az", "#!/bin/sh\nexec sleep 30\n")
    started = time.monotonic()
    assert az_version(str(script), timeout=0.5) is None
    assert time.monotonic() - started < 5


def test_a_missing_az_tells_nothing(tmp_path: Path) -> None:
    assert az_version(str(tmp_path / "nowhere" / "az"), timeout=1) is None


@posix_only
def test_a_fifo_launcher_does_not_block(tmp_path: Path) -> None:
    import os

    fifo = tmp_path / "bin" / "az"
    fifo.parent.mkdir()
    os.mkfifo(fifo)
    started = time.monotonic()
    assert az_version(str(fifo), timeout=0.5) is None
    assert time.monotonic() - started < 5
