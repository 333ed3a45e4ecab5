"""The real Azure CLI (azure-cli from PyPI), as scripts/bootstrap installs it in .e2e/azure-cli.

The scenarios of test_real_az.py and the fake-versus-real checks of test_az_fidelity.py run it
against the simulated Entra ID and Resource Manager. Its version is chosen in one place,
tests/e2e/azure-cli.txt.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

from .helpers import OUTPUTS, run
from .sim import world
from .sim.azcli import AZ_BIN_DIR

REPO = Path(__file__).resolve().parents[2]
SPEC_FILE = Path(__file__).resolve().parent / "azure-cli.txt"
ENV_DIR = REPO / ".e2e" / "azure-cli"
REAL_AZ = ENV_DIR / "bin" / "az"
CALLS_VAR = "REAL_AZ_CALLS"
# az reads AZURE_<SECTION>_<OPTION> as its configuration.
QUIET = {"AZURE_CORE_COLLECT_TELEMETRY": "no", "AZURE_CORE_SURVEY_MESSAGE": "no"}


def spec() -> str:
    """The requirement bootstrap installs, e.g. `azure-cli>=2.91.0,<2.92`."""
    lines = SPEC_FILE.read_text(encoding="utf-8").splitlines()
    return next(ln.strip() for ln in lines if ln.strip() and not ln.startswith("#"))


def installed_version() -> str | None:
    """azure-cli's version in .e2e/azure-cli, from its metadata (no az run needed)."""
    for found in sorted(ENV_DIR.glob("lib/python3*/site-packages/azure_cli-*.dist-info")):
        return found.name.removeprefix("azure_cli-").removesuffix(".dist-info")
    return None


def missing() -> str | None:
    """Why the real az cannot run here, or None."""
    if not os.access(REAL_AZ, os.X_OK):
        return f"the real Azure CLI is not installed ({REAL_AZ}): run scripts/bootstrap"
    return None


def environment(client_env: Mapping[str, str], bin_dir: Path) -> dict[str, str]:
    """`client_env` with the real az first on PATH and the fake one (sim/bin) gone.

    `az` on that PATH is a wrapper in `bin_dir` that counts its runs in $REAL_AZ_CALLS (one
    line each: the command's first two words, never its arguments, for `az login` carries a
    password), so that a test can prove that a lookup ran no az at all. Everything else of the
    real az is as a user has it: ~/.azure, REQUESTS_CA_BUNDLE pointing at the simulator's CA;
    only its telemetry (a detached upload process after every command) and its survey prompt
    are off, as `az config set core.collect_telemetry=no` would do: nothing may wait on the
    closed network. (Update checks run only on `az --version`, `az upgrade` and help pages, and
    auto-upgrade is off by default.)
    """
    bin_dir.mkdir(parents=True, exist_ok=True)
    wrapper = bin_dir / "az"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'if [ -n "${CALLS_VAR}" ]; then echo "$1 $2" >> "${CALLS_VAR}"; fi\n'
        f'exec "{REAL_AZ}" "$@"\n',
        encoding="utf-8",
    )
    wrapper.chmod(0o755)
    rest = [p for p in client_env["PATH"].split(os.pathsep) if p != str(AZ_BIN_DIR)]
    env = dict(client_env)
    env["PATH"] = os.pathsep.join([str(bin_dir), *rest])
    env[CALLS_VAR] = str(bin_dir / "calls")
    env.update(QUIET)
    return env


def runs(env: Mapping[str, str]) -> list[str]:
    """The az commands run so far with `env` (by the test or by the backend)."""
    path = Path(env[CALLS_VAR])
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def az(
    env: Mapping[str, str], *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """The real az through the counting wrapper; both outputs go to the secrets scan."""
    return run([str(Path(env[CALLS_VAR]).parent / "az"), *args], env, timeout=timeout)


def az_quiet(
    env: Mapping[str, str], *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """For commands whose stdout is a token (`az account get-access-token`): only stderr goes
    to the secrets scan, as for `keyring get`."""
    done = subprocess.run(
        [str(Path(env[CALLS_VAR]).parent / "az"), *args],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    OUTPUTS.append(done.stderr)
    return done


def login_user(
    env: Mapping[str, str], upn: str, *, tenant: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`az login -u UPN -p PASSWORD` (resource-owner password flow); raises if it fails."""
    args = [
        "login",
        "-u",
        upn,
        "-p",
        world.USERS[upn.lower()].password,
        "--allow-no-subscriptions",
        "--output",
        "none",
    ]
    if tenant is not None:
        args += ["--tenant", tenant]
    done = az(env, *args)
    if done.returncode != 0:
        raise RuntimeError(f"az login as {upn} failed: {done.stderr.strip()}")
    return done


def login_service_principal(
    env: Mapping[str, str], client_id: str, secret: str, tenant: str
) -> subprocess.CompletedProcess[str]:
    """`az login --service-principal`; raises if it fails."""
    done = az(
        env,
        "login",
        "--service-principal",
        "-u",
        client_id,
        "-p",
        secret,
        "--tenant",
        tenant,
        "--allow-no-subscriptions",
        "--output",
        "none",
    )
    if done.returncode != 0:
        raise RuntimeError(f"az login as {client_id} failed: {done.stderr.strip()}")
    return done
