from __future__ import annotations

from pathlib import Path

import pytest
from keyring.util import platform_

from artifacts_keyring_nofuss import identities
from artifacts_keyring_nofuss.devops import DEFAULT_SCOPE, RESOURCE
from artifacts_keyring_nofuss.errors import ConfigError
from artifacts_keyring_nofuss.identities import DEFAULT_ORDER, SPECS, Prepared, chain, load
from artifacts_keyring_nofuss.settings import Settings

from .helpers import token_request

REGISTRY = SPECS


class config:
    @staticmethod
    def provider_setting() -> tuple[str | None, str]:
        loaded = Settings.load()
        return loaded.provider, loaded.provider_where


def test_the_azure_devops_resource() -> None:
    assert RESOURCE == "499b84ac-1321-427f-aa17-267ca6975798"
    assert DEFAULT_SCOPE == "499b84ac-1321-427f-aa17-267ca6975798/.default"


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


def test_each_source_is_declared_once_with_what_the_chain_needs_to_know() -> None:
    # The lookup plans from the declarations, without importing the sources.
    handed_over = {name for name, spec in SPECS.items() if not spec.needs_discovery}
    assert handed_over == {"token", "external_endpoints", "access_token", "pipeline", "devops_pat"}
    assert {name for name, spec in SPECS.items() if spec.prompts} == {"interactive"}
    assert {name for name, spec in SPECS.items() if not spec.knows_identity} == {
        *handed_over,
        "codespaces",
    }
    for name, spec in SPECS.items():
        assert spec.name == name
        source = load(name)
        prepared = source.prepare(token_request())
        if not spec.needs_discovery:
            assert prepared == Prepared()  # a token handed over: nothing to look up first


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
def test_every_registered_source_loads(name: str) -> None:
    source = load(name)
    assert callable(source.get_token)
    assert callable(source.prepare)


def test_unavailable_carries_a_reason() -> None:
    assert identities.Unavailable("why").reason == "why"
