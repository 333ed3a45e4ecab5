from __future__ import annotations

import os
from pathlib import Path

import pytest

from .properties import LONG_RUN_MINIMUM, PROFILE, STATS

# Variables that would let the developer's or CI's own setup leak into a unit test.
_PREFIXES = ("ARTIFACTS_", "AZURE_", "VSS_", "NUGET_", "IDENTITY_", "MSI_", "IMDS_")
# What Azure Pipelines and GitHub Actions set for a job, which identity sources read.
_NAMES = (
    "SYSTEM_ACCESSTOKEN",
    "SYSTEM_TEAMFOUNDATIONCOLLECTIONURI",
    "ACTIONS_ID_TOKEN_REQUEST_URL",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
)


@pytest.fixture(autouse=True)
def _isolated_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    for name in list(os.environ):
        if name.startswith(_PREFIXES) or name in _NAMES:
            monkeypatch.delenv(name, raising=False)
    for name in (
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
    ):
        monkeypatch.delenv(name, raising=False)
    # keyring's config_root() honours XDG_CONFIG_HOME on Linux: never read the real one.
    config_home: Path = tmp_path_factory.mktemp("xdg-config")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config_home))
    # Nor the real session-token cache, nor the real Azure CLI profile.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))
    monkeypatch.setenv("AZURE_CONFIG_DIR", str(tmp_path_factory.mktemp("azure-config")))
    # Nor the real `ak-nofuss login` record.
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("xdg-data")))
    # Nor anything in the real home: a Codespace's ~/ado-auth-helper, ~/.pypirc, ~/.azure.
    monkeypatch.setenv("HOME", str(tmp_path_factory.mktemp("home")))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """How many property cases ran (the long run must show it reached its 100,000)."""
    if not STATS.cases:
        return
    terminalreporter.write_sep("-", "property-based tests")
    if PROFILE != "ci" or terminalreporter.config.option.verbose > 0:
        for name, count in sorted(STATS.cases.items()):
            escaped = STATS.escapes[name]
            terminalreporter.write_line(
                f"  {name}: {count}" + (f" ({escaped} escaped)" if escaped else "")
            )
    terminalreporter.write_line(STATS.summary())
    if PROFILE == "long" and STATS.total < LONG_RUN_MINIMUM:
        terminalreporter.write_line(
            f"property tests: the long profile tried fewer than {LONG_RUN_MINIMUM} cases "
            "(a failing property stops at its first counterexample; or -k chose a subset)"
        )
