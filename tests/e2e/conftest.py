"""Fixtures for the end-to-end suite: the simulated Azure DevOps and isolated client runs.

Everything here needs the network namespace of tests/e2e/sim/netns.py. Outside it the tests
skip, except under CI (CI=true), where a skip would hide that nothing ran: there they fail.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from . import realaz
from .helpers import DEBUG_PASS_VAR, OUTPUTS, Wheelhouse, build_wheelhouse, client_env_for, run
from .scenarios import HostileTally
from .sim.netns import inside_namespace, namespace_problem
from .sim.server import Simulator
from .sim.world import ATTACKER_HOSTS

E2E_DIR = Path(__file__).resolve().parent
SKIP_REASON = "needs a network namespace: run ./scripts/test"
HOSTILE_TALLY = pytest.StashKey[HostileTally]()


def _on_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def _outside_reason() -> str:
    problem = namespace_problem()
    return problem if problem is not None else "not started through scripts/test"


def _require_namespace() -> None:
    if inside_namespace():
        return
    if _on_ci():
        pytest.fail(f"end-to-end tests did not run: {_outside_reason()}", pytrace=False)
    pytest.skip(SKIP_REASON)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    ours = [item for item in items if E2E_DIR in Path(str(item.path)).resolve().parents]
    if not ours:
        return
    skip = None if inside_namespace() or _on_ci() else pytest.mark.skip(reason=SKIP_REASON)
    for item in ours:
        item.add_marker(pytest.mark.e2e)
        if skip is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def _e2e_namespace_guard() -> None:
    # Session-scoped and autouse so that it runs before any other session fixture (the
    # simulator would otherwise try to bind port 443 on the host).
    _require_namespace()


@pytest.fixture(scope="session")
def simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    _require_namespace()
    sim = Simulator(tmp_path_factory.mktemp("sim"))
    sim.start()
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture(scope="session")
def wheelhouse(simulator: Simulator, tmp_path_factory: pytest.TempPathFactory) -> Wheelhouse:
    house = build_wheelhouse(tmp_path_factory.mktemp("wheelhouse"))
    simulator.seed_packages(house.wheels)
    return house


@pytest.fixture
def sim(simulator: Simulator, wheelhouse: Wheelhouse) -> Simulator:
    simulator.reset()
    return simulator


@pytest.fixture
def client_env(tmp_path: Path, simulator: Simulator) -> dict[str, str]:
    return client_env_for(tmp_path / "client", simulator.ca_pem)


@pytest.fixture
def real_az_env(client_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """client_env with the real Azure CLI (.e2e/azure-cli) on PATH instead of the fake one;
    see realaz.environment. Missing: a skip that says so, and under CI a failure."""
    problem = realaz.missing()
    if problem is not None:
        if _on_ci():
            pytest.fail(problem, pytrace=False)
        pytest.skip(problem)
    return realaz.environment(client_env, tmp_path / "real-az-bin")


@pytest.fixture(scope="session")
def _private_run_dir() -> Path:
    """/run/secrets inside the namespace only: a fresh tmpfs over /run (ours alone, for the
    mount namespace is private), so that nothing is created on the host."""
    secrets_dir = Path("/run/secrets")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", "/run"], check=True)
    secrets_dir.mkdir(mode=0o755)
    return secrets_dir


@pytest.fixture
def build_secrets(_private_run_dir: Path) -> Iterator[Path]:
    """Where Docker BuildKit mounts `--secret id=...` in a RUN step; emptied after the test."""
    yield _private_run_dir
    for entry in _private_run_dir.iterdir():
        entry.unlink()


@pytest.fixture(name="run")
def run_fixture() -> Callable[..., object]:
    return run


@pytest.fixture(scope="session")
def hostile_tally(request: pytest.FixtureRequest) -> HostileTally:
    """Where test_hostile.py records each case; pytest_terminal_summary prints the figures."""
    return request.config.stash.setdefault(HOSTILE_TALLY, HostileTally())


SECRETS_SCAN = pytest.StashKey[str]()


@pytest.fixture(scope="session", autouse=True)
def _secrets_scan(request: pytest.FixtureRequest, simulator: Simulator) -> Iterator[None]:
    """After the whole session: no secret the simulated services ever issued or received
    (tokens, session tokens, PATs, passwords, client secrets, key material) appears in any
    stdout or stderr a client printed. Run with AKN_E2E_DEBUG=1, every lookup is in debug."""
    yield
    secrets = {s for s in simulator.issued_secrets() if len(s) >= 8}
    leaked = sorted({Simulator.fingerprint(s) for s in secrets for o in OUTPUTS if s in o})
    mode = "debug on" if os.environ.get(DEBUG_PASS_VAR) == "1" else "debug off"
    size = sum(len(o) for o in OUTPUTS)
    request.session.config.stash[SECRETS_SCAN] = (
        f"secrets scan ({mode}): {len(OUTPUTS)} outputs ({size} characters) checked for "
        f"{len(secrets)} secrets, leaks found: {len(leaked)}"
    )
    assert not leaked, f"secrets leaked into client output (fingerprints): {leaked}"


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config
) -> None:
    tally = config.stash.get(HOSTILE_TALLY, None)
    if tally is not None and tally.outcomes:
        terminalreporter.write_line(tally.summary())
    scan = config.stash.get(SECRETS_SCAN, None)
    if scan is not None:
        terminalreporter.write_line(scan)


@pytest.fixture(autouse=True)
def _no_credential_where_it_must_not_go(request: pytest.FixtureRequest) -> Iterator[None]:
    """After every scenario: no attacker host saw a credential, no secret rode in a URL."""
    yield
    # The simulator's own tests send credentials to attacker hosts on purpose, to test the log.
    if "simulator" not in request.fixturenames or request.node.path.name == "test_simulator.py":
        return
    simulator: Simulator = request.getfixturevalue("simulator")
    leaks = [
        f"{r.method} {r.host}{r.path} ({r.auth_scheme})"
        for r in simulator.requests()
        if (r.host in ATTACKER_HOSTS and r.auth_scheme != "none") or "secret_in_url" in r.extra
    ]
    assert not leaks, f"a credential went where it must not: {leaks}"
