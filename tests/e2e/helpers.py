"""Plain helpers for the end-to-end scenarios, the demo and the benchmark (no pytest needed)."""

from __future__ import annotations

import os
import subprocess
import sysconfig
from collections.abc import Mapping, Sequence
from pathlib import Path

from .sim.azcli import AZ_BIN_DIR
from .sim.netns import ENV_MARKER
from .sim.wheels import WHEELHOUSE_SPEC, Wheelhouse, build_wheelhouse

__all__ = [
    "WHEELHOUSE_SPEC",
    "Wheelhouse",
    "build_wheelhouse",
    "client_env_for",
    "run",
]

SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"
DEBUG_PASS_VAR = "AKN_E2E_DEBUG"
# `keyring` as users install it for uv and pip's subprocess mode: a uv tool with the backend,
# outside pip's own environment (pip's subprocess mode skips a keyring that lives there).
TOOLS_BIN = Path(__file__).resolve().parents[2] / ".e2e" / "tools" / "bin"
# Kept from the caller's environment: harmless, and some tools want to know who they are.
PASSED_THROUGH = ("USER", "LOGNAME", ENV_MARKER)


# Every output a client printed in this session, for the end-of-session secrets scan; the
# stdout of `keyring get` is left out, for printing the credential is what it is for.
OUTPUTS: list[str] = []


def _credential_channel(cmd: Sequence[str | os.PathLike[str]]) -> bool:
    """`keyring get` and `ak-nofuss token` print the credential on stdout: that is their job."""
    words = [os.fspath(c) for c in cmd]
    if not words:
        return False
    program = Path(words[0]).name
    return (program == "keyring" and "get" in words[1:]) or (
        program == "ak-nofuss" and words[1:2] == ["token"]
    )


def run(
    cmd: Sequence[str | os.PathLike[str]],
    env: Mapping[str, str],
    timeout: float = 120,
    *,
    cwd: str | os.PathLike[str] | None = None,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a client: argument list (never a shell), text mode, output captured, no check."""
    done = subprocess.run(
        [os.fspath(c) for c in cmd],
        env=dict(env),
        cwd=cwd,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=None if input is not None else subprocess.DEVNULL,
        # No controlling terminal, as in CI: a sign-in prompt must never wait on the terminal
        # of whoever runs the suite.
        start_new_session=True,
    )
    OUTPUTS.append(done.stderr)
    if not _credential_channel(cmd):
        OUTPUTS.append(done.stdout)
    return done


def client_env_for(base: Path, ca_pem: Path) -> dict[str, str]:
    """An environment that isolates a client run: its own HOME and caches, the simulator's CA,
    the fake az first on PATH, and nothing inherited that could change the outcome (no
    proxies, no AZURE_* / ARTIFACTS_* variables, no user pip or uv configuration)."""
    home = base / "home"
    for sub in (".config", ".cache", ".local/share"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    (base / "cache" / "uv").mkdir(parents=True, exist_ok=True)
    (base / "cache" / "pip").mkdir(parents=True, exist_ok=True)
    env = {k: os.environ[k] for k in PASSED_THROUGH if k in os.environ}
    env.update(
        {
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "XDG_DATA_HOME": str(home / ".local/share"),
            "PATH": os.pathsep.join(
                [str(AZ_BIN_DIR), str(TOOLS_BIN), sysconfig.get_path("scripts"), SYSTEM_PATH]
            ),
            "SSL_CERT_FILE": str(ca_pem),
            "REQUESTS_CA_BUNDLE": str(ca_pem),
            "PIP_CERT": str(ca_pem),
            "PIP_CONFIG_FILE": os.devnull,
            "PIP_NO_INPUT": "1",
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "PIP_CACHE_DIR": str(base / "cache" / "pip"),
            # Inside the namespace we are root; pip's warning about it is noise in stderr.
            "PIP_ROOT_USER_ACTION": "ignore",
            "UV_NO_CONFIG": "1",
            "UV_CACHE_DIR": str(base / "cache" / "uv"),
            "UV_PYTHON_DOWNLOADS": "never",
            "PYTHONDONTWRITEBYTECODE": "1",
            "LANG": "C.UTF-8",
        }
    )
    if os.environ.get(DEBUG_PASS_VAR) == "1":
        # The debug pass: every client runs with the backend's debug output on, and the
        # secrets scan reads all of it.
        env["ARTIFACTS_KEYRING_NOFUSS_DEBUG"] = "1"
    return env
