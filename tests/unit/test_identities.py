from __future__ import annotations

from pathlib import Path

import pytest
from keyring.util import platform_

from artifacts_keyring_nofuss import config, identities
from artifacts_keyring_nofuss.errors import ConfigError
from artifacts_keyring_nofuss.identities import (
    DEFAULT_ORDER,
    DEVOPS_RESOURCE,
    DEVOPS_SCOPE,
    REGISTRY,
    chain,
    load,
)


def test_the_azure_devops_resource() -> None:
    assert DEVOPS_RESOURCE == "499b84ac-1321-427f-aa17-267ca6975798"
    assert DEVOPS_SCOPE == "499b84ac-1321-427f-aa17-267ca6975798/.default"


def test_default_order() -> None:
    # What somebody handed us first, then this machine's sign-ins, the prompt last.
    assert chain(None, "") == (
        "token",
        "external_endpoints",
        "access_token",
        "pipeline",
        "devops_pat",
        "feed_endpoints",
        "azure_cli",
        "github_actions",
        "azure_identity",
        "codespaces",
        "interactive",
    )
    assert chain(None, "") == DEFAULT_ORDER


def test_several_forced_names_keep_their_order() -> None:
    assert chain("interactive, azure_cli,interactive", "x") == ("interactive", "azure_cli")


def test_each_source_loads_and_agrees_with_what_the_registry_says_of_it() -> None:
    # The lookup plans from identities.GIVEN and KNOWS_IDENTITY without importing the sources.
    assert {
        "token",
        "external_endpoints",
        "access_token",
        "pipeline",
        "devops_pat",
    } == identities.GIVEN
    for name in REGISTRY:
        source = load(name)
        assert source.name == name
        assert source.needs_discovery is (name not in identities.GIVEN)
        if name not in identities.KNOWS_IDENTITY:
            assert source.cache_identity() is None


def test_every_default_source_is_registered() -> None:
    assert set(DEFAULT_ORDER) <= set(REGISTRY)


@pytest.mark.parametrize(
    ("forced", "expected"),
    [
        ("azure_cli", ("azure_cli",)),
        ("azure-cli", ("azure_cli",)),
        ("Azure_CLI", ("azure_cli",)),
        ("  azure_cli\t", ("azure_cli",)),
        ("azure_identity", ("azure_identity",)),
        ("AZURE-IDENTITY", ("azure_identity",)),
    ],
)
def test_forced_names(forced: str, expected: tuple[str, ...]) -> None:
    assert chain(forced, "somewhere") == expected


@pytest.mark.parametrize(
    "forced",
    ["", "az", "azurecli", "nope", "../azure_cli", "__init__", "load"],
)
def test_unknown_names_are_a_clear_config_error(forced: str) -> None:
    with pytest.raises(ConfigError) as caught:
        chain(forced, "ARTIFACTS_KEYRING_NOFUSS_PROVIDER")
    message = str(caught.value)
    assert repr(forced) in message
    assert "ARTIFACTS_KEYRING_NOFUSS_PROVIDER" in message
    for name in REGISTRY:
        assert name in message


def test_forced_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARTIFACTS_KEYRING_NOFUSS_PROVIDER", "azure-identity")
    assert chain(*config.provider_setting()) == ("azure_identity",)


def test_unknown_name_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARTIFACTS_KEYRING_NOFUSS_PROVIDER", "devicecode")
    with pytest.raises(ConfigError, match="ARTIFACTS_KEYRING_NOFUSS_PROVIDER"):
        chain(*config.provider_setting())


def test_unknown_name_from_keyringrc_names_the_file() -> None:
    path = Path(platform_.config_root()) / "keyringrc.cfg"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("[artifacts_keyring_nofuss]\nprovider = devicecode\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        chain(*config.provider_setting())
    assert str(path) in str(caught.value)
    assert "'devicecode'" in str(caught.value)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_registered_source_loads_and_is_named_as_registered(name: str) -> None:
    source = load(name)
    assert source.name == name
    assert callable(source.get_token)


def test_unavailable_carries_a_reason() -> None:
    assert identities.Unavailable("why").reason == "why"
