"""Driving the fake Azure CLI (sim/bin/az) from tests."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path

from . import world

AZ_BIN_DIR = Path(__file__).resolve().parent / "bin"
AZ = AZ_BIN_DIR / "az"


def az(env: Mapping[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the fake az with `env` (which must trust the simulator's CA via SSL_CERT_FILE)."""
    return subprocess.run(
        [str(AZ), *args],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def az_login(
    env: Mapping[str, str],
    user: str,
    *,
    tenant: str | None = None,
    password: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """`az login` as one of the simulated users; raises if it fails."""
    secret = password if password is not None else world.USERS[user.lower()].password
    args = ["login", "--username", user, "--password", secret, "--allow-no-subscriptions"]
    if tenant is not None:
        args += ["--tenant", tenant]
    result = az(env, *args)
    if result.returncode != 0:
        raise RuntimeError(f"az login as {user} failed: {result.stderr.strip()}")
    return result
