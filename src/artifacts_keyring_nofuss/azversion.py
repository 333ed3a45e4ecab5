"""Which Azure CLI release an `az` is, and whether that release is known to break us.

For `ak-nofuss doctor`. Reading the version costs a few file reads: every way az is installed
runs a Python whose site-packages holds azure-cli's metadata (`azure_cli-X.Y.Z.dist-info`)
next to it, and the launcher names that Python (a pip or pipx venv's shebang, the
`/opt/az/bin/python3` of the Linux packages, Homebrew's `libexec/bin/python`, the Windows
installer's `%~dp0..\\python.exe`). Only when that finds nothing is az itself run
(`az version --output json`, 0.7 to 1.3 s), within a timeout.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
from pathlib import Path

from . import local

# azure-cli releases known to break Azure DevOps tokens, and why. 2.83.0 stopped finding tokens
# for resources other than ARM (Azure DevOps among them) in its MSAL cache: `az account
# get-access-token --resource 499b84ac-...` fails with "Can't find token from MSAL cache"
# (Azure/azure-cli#32853, reported on 2.83.0, 2.82.0 unaffected; no fixed release was named
# there when this was written).
KNOWN_PROBLEMS: dict[tuple[int, int, int], str] = {
    (2, 83, 0): (
        "azure-cli 2.83.0 cannot return Azure DevOps tokens from its token cache "
        "(Azure/azure-cli#32853): upgrade the Azure CLI (`az upgrade`) or go back to 2.82.0"
    ),
}

_VERSION = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")
_EXACT_VERSION = re.compile(r"\d+\.\d+(?:\.\d+){0,2}(?:[a-z]+\d*)?(?:\.post\d+)?")
_LAUNCHER_LIMIT = 16 * 1024
_METADATA_LIMIT = 64 * 1024
# An interpreter a launcher names: an absolute path, or one relative to the launcher
# (Windows' "%~dp0..\python.exe").
_INTERPRETER = re.compile(
    r"""(?P<path>(?:/|[A-Za-z]:\\|%~dp0)[^\s"'*?<>|]*?(?:python(?:3(?:\.\d+)?)?(?:\.exe)?))"""
    r"""(?=["'\s]|$)""",
    re.IGNORECASE,
)
_SITE_PACKAGES = ("lib/python3*/site-packages", "lib/python3*/dist-packages", "Lib/site-packages")


def known_problem(version: str) -> str | None:
    """What is known to break Azure DevOps tokens in this azure-cli release, or None.

    `version` as az reports it ("2.83.0"; "2.83" means 2.83.0); anything that is not a
    version is None."""
    match = _VERSION.fullmatch(version.strip())
    if match is None:
        return None
    release = (int(match[1]), int(match[2]), int(match[3] or 0))
    return KNOWN_PROBLEMS.get(release)


def az_version(az: str, timeout: float = 5.0) -> str | None:
    """The azure-cli version of the `az` at this path, or None when it cannot be told within
    `timeout` seconds: from the package metadata beside the Python it runs, else from
    `az version --output json`."""
    found = _version_from_metadata(Path(az))
    if found is not None:
        return found
    return _version_from_running(az, timeout)


def _version_from_metadata(az: Path) -> str | None:
    try:
        launcher = az.resolve()
    except (OSError, RuntimeError):
        return None
    prefixes = [launcher.parent.parent]  # <prefix>/bin/az, <prefix>/wbin/az.cmd
    text = _read_bounded(launcher, _LAUNCHER_LIMIT)
    if text is not None:
        for match in _INTERPRETER.finditer(text.decode("utf-8", "replace")):
            path = match["path"]
            if path.lower().startswith("%~dp0"):
                interpreter = launcher.parent / path[5:].lstrip("\\/").replace("\\", "/")
            else:
                interpreter = Path(path)
            # <prefix>/bin/python3 (venvs, /opt/az, Homebrew) or <prefix>/python.exe.
            parent = interpreter.parent
            prefixes.append(parent.parent if parent.name.lower() in ("bin", "scripts") else parent)
    versions: set[str] = set()
    for prefix in dict.fromkeys(prefixes):
        for pattern in _SITE_PACKAGES:
            for info in _glob(prefix, f"{pattern}/azure_cli-*.dist-info"):
                version = _dist_info_version(info)
                if version is not None:
                    versions.add(version)
        if versions:
            break
    # Two installations side by side under one prefix: only az itself can tell which it runs.
    return versions.pop() if len(versions) == 1 else None


def _glob(prefix: Path, pattern: str) -> list[Path]:
    try:
        return sorted(prefix.glob(pattern))
    except (OSError, ValueError):
        return []


def _dist_info_version(info: Path) -> str | None:
    raw = _read_bounded(info / "METADATA", _METADATA_LIMIT)
    if raw is not None:
        for line in raw.decode("utf-8", "replace").splitlines():
            if not line.strip():
                break  # the headers end at the first empty line
            name, _, value = line.partition(":")
            if name.strip().lower() == "version":
                value = value.strip()
                return value if _EXACT_VERSION.fullmatch(value) else None
    value = info.name.removeprefix("azure_cli-").removesuffix(".dist-info")
    return value if _EXACT_VERSION.fullmatch(value) else None


def _version_from_running(az: str, timeout: float) -> str | None:
    try:
        done = local.run_program([az, "version", "--output", "json"], timeout)
    except (OSError, subprocess.SubprocessError, local.TooMuchOutput):
        return None
    if done.returncode != 0:
        return None
    try:
        data = json.loads(done.stdout.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    value = data.get("azure-cli") if isinstance(data, dict) else None
    if isinstance(value, str) and _EXACT_VERSION.fullmatch(value):
        return value
    return None


def _read_bounded(path: Path, limit: int) -> bytes | None:
    """A regular file's first `limit` bytes, or None (never blocks on a FIFO)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return os.read(fd, limit)
    except OSError:
        return None
    finally:
        os.close(fd)
