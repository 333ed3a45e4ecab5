"""What the scenario tests share: signing in, running a client, reading what the server saw."""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import termios
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import requests

from .helpers import OUTPUTS, _credential_channel, run
from .sim import world
from .sim.azcli import AZ_BIN_DIR, az_login
from .sim.server import Simulator

REPO = Path(__file__).resolve().parents[2]
POETRY = REPO / ".e2e" / "poetry" / "bin" / "poetry"
PDM = REPO / ".e2e" / "pdm" / "bin" / "pdm"
# The fake of the ado-codespaces-auth extension's helper (see its docstring).
ADO_AUTH_HELPER = AZ_BIN_DIR / "ado-auth-helper"
AZURE_HOSTS = frozenset(
    {
        "pkgs.dev.azure.com",
        "vssps.dev.azure.com",
        "login.microsoftonline.com",
        "contoso.pkgs.visualstudio.com",
        "contoso.vssps.visualstudio.com",
        "app.vssps.visualstudio.com",
    }
)
PREFIX = "artifacts-keyring-nofuss: "
DEBUG_PREFIX = "artifacts-keyring-nofuss [debug]: "


def signed_in(env: Mapping[str, str], user: str = world.ALICE) -> dict[str, str]:
    az_login(env, user)
    return dict(env)


def codespaces(home: Path, upn: str, password: str) -> Path:
    """A GitHub Codespace whose VS Code window is signed in as `upn`: ~/ado-auth-helper (the
    fake, mode 0755) and the account it signs in with (~/.ado-auth-helper.json). Returns the
    helper's path."""
    home.mkdir(parents=True, exist_ok=True)
    helper = home / "ado-auth-helper"
    shutil.copyfile(ADO_AUTH_HELPER, helper)
    helper.chmod(0o755)
    account = home / ".ado-auth-helper.json"
    account.write_text(json.dumps({"upn": upn, "password": password}), encoding="utf-8")
    account.chmod(0o600)
    return helper


def as_service_principal(env: Mapping[str, str]) -> dict[str, str]:
    """The environment a CI job with contoso's secret-based service principal has."""
    return dict(
        env,
        AZURE_CLIENT_ID=world.SP_CONTOSO_SECRET,
        AZURE_TENANT_ID=world.T_CONTOSO,
        AZURE_CLIENT_SECRET=world.SP_CONTOSO_SECRET_VALUE,
    )


def keyring(
    env: Mapping[str, str], *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return run(["keyring", *args], env, timeout=timeout)


def bin_path(name: str) -> str:
    """A client from the environment the tests run in (where scripts/bootstrap put it)."""
    return str(Path(sys.executable).parent / name)


def twine_upload(
    env: Mapping[str, str], wheel: Path, *extra: str, url: str = world.SHARED_UPLOAD
) -> subprocess.CompletedProcess[str]:
    """`twine upload` of one file to the feed, as a release job runs it."""
    return run(
        [
            bin_path("twine"),
            "upload",
            "--non-interactive",
            "--repository-url",
            url,
            *extra,
            str(wheel),
        ],
        env,
    )


def pip_install(env: Mapping[str, str], target: Path, index: str, *args: str) -> list[str]:
    """The `pip install` command line into `target` from `index`, with no cache."""
    return [
        bin_path("pip"),
        "install",
        "--no-cache-dir",
        "--target",
        str(target),
        "--index-url",
        index,
        *args,
    ]


def with_user(url: str, user: str) -> str:
    return url.replace("https://", f"https://{user}@", 1)


def feed_accepts(sim: Simulator, url: str, token: str) -> int:
    """The status a feed answers for `token` as the Basic password, as a client would send it."""
    auth = base64.b64encode(f"VssSessionToken:{token}".encode()).decode()
    response = requests.get(
        url, headers={"Authorization": f"Basic {auth}"}, verify=str(sim.ca_pem), timeout=30
    )
    return response.status_code


def azure_requests(sim: Simulator) -> list[str]:
    return [f"{r.method} {r.host}{r.path}" for r in sim.requests() if r.host in AZURE_HOSTS]


def assert_no_leak(sim: Simulator, outputs: Iterable[str]) -> None:
    """No secret the simulator issued or knows appears in anything a user could see."""
    secrets = [s for s in sim.issued_secrets() if len(s) >= 8]
    for text in outputs:
        for secret in secrets:
            assert secret not in text, "a secret leaked into the output"


def spoken(stderr: str) -> list[str]:
    """What a user reads on stderr, setting aside the debug lines of the debug pass."""
    return [line for line in stderr.splitlines() if not line.startswith(DEBUG_PREFIX)]


def one_line_message(stderr: str) -> str:
    """Our single line on stderr; asserts it is there exactly once and there is no traceback."""
    assert "Traceback" not in stderr, stderr
    ours = [line for line in stderr.splitlines() if PREFIX in line]
    assert len(set(ours)) == 1, stderr
    return ours[0]


@dataclass
class HostileTally:
    """What the hostile-server battery (test_hostile.py) found, for the session's last line."""

    outcomes: dict[str, str] = field(default_factory=dict)  # case -> survived/refused/failed
    leaks: dict[str, list[str]] = field(default_factory=dict)  # case -> what went where

    def begin(self, case: str) -> None:
        self.outcomes[case] = "failed"  # until the case says otherwise

    def leaked(self, case: str, found: Iterable[str]) -> None:
        self.leaks[case] = list(found)

    def ended(self, case: str, survived: bool) -> None:
        self.outcomes[case] = "survived" if survived else "refused"

    def summary(self) -> str:
        counts = Counter(self.outcomes.values())
        line = (
            f"hostile servers: {len(self.outcomes)} cases, {counts['survived']} faults survived, "
            f"{counts['refused']} refused cleanly, "
            f"leaks found: {sum(len(found) for found in self.leaks.values())}"
        )
        return line + (f", {counts['failed']} not as expected" if counts["failed"] else "")

    def __repr__(self) -> str:  # what pytest shows beside a failing case: the figures so far
        return f"HostileTally({self.summary()!r})"


def importable(target: Path, env: Mapping[str, str], module: str) -> str:
    """Import `module` from an install target and return its __version__."""
    child = dict(env, PYTHONPATH=str(target))
    done = run([sys.executable, "-c", f"import {module}; print({module}.__version__)"], child)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@dataclass(frozen=True)
class TerminalRun:
    """A client run with a terminal of its own: what went to stdout, stderr (pipes, as pip and
    uv give a keyring subprocess) and to the controlling terminal, and how long it took."""

    returncode: int
    stdout: str
    stderr: str
    terminal: str  # everything written to the terminal, "\r\n" read as "\n"
    seconds: float


def run_with_terminal(
    cmd: Sequence[str | os.PathLike[str]],
    env: Mapping[str, str],
    timeout: float = 120,
    *,
    cwd: str | os.PathLike[str] | None = None,
) -> TerminalRun:
    """Run a client in a session of its own whose controlling terminal is a fresh pty, with
    stdin from /dev/null and stdout and stderr captured through pipes: a person at a terminal
    running pip or uv, which hide or hold back the keyring's stderr. Nobody types anything.

    The outputs go to helpers.OUTPUTS for the secrets scan (the terminal included), except the
    stdout of `keyring get` and `ak-nofuss token`, which is the credential. On timeout the
    process group is killed and subprocess.TimeoutExpired raised."""
    master, slave = os.openpty()
    slave_name = os.ttyname(slave)

    def take_the_terminal() -> None:  # in the child, after setsid() (start_new_session)
        fd = os.open(slave_name, os.O_RDWR)
        fcntl.ioctl(fd, termios.TIOCSCTTY, 0)
        os.close(fd)

    chunks: list[bytes] = []
    done_reading = threading.Event()

    def read_terminal() -> None:
        # Until the run is over: the pty's slave stays open here, so the child (and whatever
        # it starts) may open /dev/tty at any time without the master seeing EIO.
        while True:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:
                    break
                if not data:
                    break
                chunks.append(data)
            elif done_reading.is_set():
                break

    reader = threading.Thread(target=read_terminal, name="pty-reader", daemon=True)
    reader.start()
    started = time.monotonic()
    out, err = b"", b""
    try:
        process = subprocess.Popen(
            [os.fspath(c) for c in cmd],
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=take_the_terminal,  # noqa: PLW1509 - the point: a controlling terminal
        )
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            out, err = process.communicate()
            raise
        finally:
            seconds = time.monotonic() - started
    finally:
        done_reading.set()
        reader.join(timeout=10)
        os.close(slave)
        os.close(master)
        # Whatever was printed, even by a run that timed out, goes to the secrets scan.
        terminal = b"".join(chunks).decode("utf-8", "replace").replace("\r\n", "\n")
        stdout, stderr = out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
        OUTPUTS.extend((stderr, terminal))
        if not _credential_channel(cmd):
            OUTPUTS.append(stdout)
    return TerminalRun(process.returncode, stdout, stderr, terminal, seconds)
