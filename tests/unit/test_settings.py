from __future__ import annotations

import os
from pathlib import Path

import pytest
from keyring.util import platform_

from artifacts_keyring_nofuss import settings as settings_module
from artifacts_keyring_nofuss.errors import ConfigError
from artifacts_keyring_nofuss.settings import Settings


class config:
    """The settings a lookup would read now, one field at a time."""

    PROVIDER_VAR = settings_module.PROVIDER_VAR
    AZ_TIMEOUT_VAR = settings_module.AZ_TIMEOUT_VAR
    keyringrc_path = staticmethod(settings_module.keyringrc_path)

    @staticmethod
    def provider_setting() -> tuple[str | None, str]:
        loaded = Settings.load()
        return loaded.provider, loaded.provider_where

    @staticmethod
    def session_minutes() -> float:
        return Settings.load().session_minutes

    @staticmethod
    def az_timeout() -> float:
        return Settings.load().az_timeout

    @staticmethod
    def device_flow_timeout() -> float:
        return Settings.load().device_flow_timeout

    @staticmethod
    def login_hint() -> str | None:
        return Settings.load().login_hint

    @staticmethod
    def msal_authority() -> str | None:
        return Settings.load().msal_authority

    @staticmethod
    def noninteractive() -> bool:
        return Settings.load().noninteractive


def _write_keyringrc(text: str) -> Path:
    path = Path(platform_.config_root()) / "keyringrc.cfg"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_keyringrc_lives_where_keyring_keeps_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert config.keyringrc_path() == Path(platform_.config_root()) / "keyringrc.cfg"
    if os.name != "nt":
        assert config.keyringrc_path() == tmp_path / "python_keyring" / "keyringrc.cfg"


def test_no_setting_anywhere() -> None:
    assert config.provider_setting() == (None, "")


@pytest.mark.parametrize(
    ("raw", "expected"), [("azure_cli", "azure_cli"), ("  azure_identity \n", "azure_identity")]
)
def test_provider_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, raw: str, expected: str
) -> None:
    monkeypatch.setenv(config.PROVIDER_VAR, raw)
    assert config.provider_setting() == (expected, "ARTIFACTS_KEYRING_NOFUSS_PROVIDER")


def test_provider_from_keyringrc() -> None:
    path = _write_keyringrc(
        "[backend]\ndefault-keyring=x\n\n[artifacts_keyring_nofuss]\nprovider = azure_identity\n"
    )
    value, where = config.provider_setting()
    assert value == "azure_identity"
    assert str(path) in where
    assert "provider" in where


def test_environment_wins_over_keyringrc(monkeypatch: pytest.MonkeyPatch) -> None:
    _write_keyringrc("[artifacts_keyring_nofuss]\nprovider = azure_identity\n")
    monkeypatch.setenv(config.PROVIDER_VAR, "azure_cli")
    assert config.provider_setting() == ("azure_cli", config.PROVIDER_VAR)


@pytest.mark.parametrize("blank", ["", "   "])
def test_a_blank_environment_variable_falls_through_to_keyringrc(
    monkeypatch: pytest.MonkeyPatch, blank: str
) -> None:
    _write_keyringrc("[artifacts_keyring_nofuss]\nprovider = azure_identity\n")
    monkeypatch.setenv(config.PROVIDER_VAR, blank)
    assert config.provider_setting()[0] == "azure_identity"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "[backend]\ndefault-keyring=keyring.backends.fail.Keyring\n",
        "[artifacts_keyring_nofuss]\n",
        "[artifacts_keyring_nofuss]\nprovider =\n",
        "[artifacts_keyring_nofuss]\nprovider =    \n",
        "[artifacts_keyring_nofuss]\nsomething_else = azure_cli\n",
        "[ARTIFACTS_KEYRING_NOFUSS]\nprovider = azure_cli\n",
    ],
)
def test_keyringrc_without_a_provider(text: str) -> None:
    _write_keyringrc(text)
    assert config.provider_setting() == (None, "")


def test_percent_signs_are_not_interpolated() -> None:
    _write_keyringrc("[artifacts_keyring_nofuss]\nprovider = %(x)s\n")
    assert config.provider_setting()[0] == "%(x)s"


@pytest.mark.parametrize(
    "content",
    [
        b"provider = azure_cli\n",  # no section header
        b"[artifacts_keyring_nofuss\nprovider = azure_cli\n",
        b"[artifacts_keyring_nofuss]\nprovider = azure_cli\nprovider = azure_identity\n",
        b"[artifacts_keyring_nofuss]\nprovider = \xff\xfe\n",
    ],
)
def test_a_broken_keyringrc_is_a_config_error_naming_the_file(content: bytes) -> None:
    path = Path(platform_.config_root()) / "keyringrc.cfg"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    with pytest.raises(ConfigError) as caught:
        config.provider_setting()
    assert str(path) in str(caught.value)


def test_a_keyringrc_in_the_current_directory_is_never_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    planted = "[artifacts_keyring_nofuss]\nprovider = planted_by_a_repository\n"
    (checkout / "keyringrc.cfg").write_text(planted, encoding="utf-8")
    (checkout / "python_keyring").mkdir()
    (checkout / "python_keyring" / "keyringrc.cfg").write_text(planted, encoding="utf-8")
    monkeypatch.chdir(checkout)
    assert config.provider_setting() == (None, "")


# ---------------------------------------------------------------- numbers


def test_defaults() -> None:
    assert config.session_minutes() == 480
    assert config.az_timeout() == 30


@pytest.mark.parametrize(
    ("raw", "expected"), [("5", 5), ("60", 60), (" 90 ", 90), ("1.5e2", 150), ("10080", 10080)]
)
def test_session_minutes(monkeypatch: pytest.MonkeyPatch, raw: str, expected: float) -> None:
    monkeypatch.setenv("ARTIFACTS_KEYRING_NOFUSS_SESSION_MINUTES", raw)
    assert config.session_minutes() == expected


def test_session_minutes_from_the_official_providers_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ARTIFACTS_CREDENTIALPROVIDER_VSTS_SESSIONTIMEMINUTES", "120")
    assert config.session_minutes() == 120


def test_our_variable_wins_over_the_official_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARTIFACTS_CREDENTIALPROVIDER_VSTS_SESSIONTIMEMINUTES", "120")
    monkeypatch.setenv("ARTIFACTS_KEYRING_NOFUSS_SESSION_MINUTES", "60")
    assert config.session_minutes() == 60


def test_a_blank_variable_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARTIFACTS_KEYRING_NOFUSS_SESSION_MINUTES", "  ")
    monkeypatch.setenv("ARTIFACTS_CREDENTIALPROVIDER_VSTS_SESSIONTIMEMINUTES", "120")
    assert config.session_minutes() == 120


@pytest.mark.parametrize(
    "raw", ["0", "4", "4.99", "-60", "10081", "1e9", "inf", "-inf", "nan", "NaN"]
)
def test_session_minutes_out_of_range(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("ARTIFACTS_KEYRING_NOFUSS_SESSION_MINUTES", raw)
    with pytest.raises(ConfigError) as caught:
        config.session_minutes()
    assert "ARTIFACTS_KEYRING_NOFUSS_SESSION_MINUTES" in str(caught.value)


@pytest.mark.parametrize("raw", ["four hours", "4h", "0x10", "1,5", "--"])
def test_session_minutes_not_a_number(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("ARTIFACTS_KEYRING_NOFUSS_SESSION_MINUTES", raw)
    with pytest.raises(ConfigError, match="not a number"):
        config.session_minutes()


@pytest.mark.parametrize(("raw", "expected"), [("1", 1), ("2.5", 2.5), ("600", 600)])
def test_az_timeout(monkeypatch: pytest.MonkeyPatch, raw: str, expected: float) -> None:
    monkeypatch.setenv(config.AZ_TIMEOUT_VAR, raw)
    assert config.az_timeout() == expected


@pytest.mark.parametrize("raw", ["0", "0.5", "-1", "601", "inf", "nan", "soon"])
def test_az_timeout_refused(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv(config.AZ_TIMEOUT_VAR, raw)
    with pytest.raises(ConfigError, match=config.AZ_TIMEOUT_VAR):
        config.az_timeout()


# ---------------------------------------------------------------- the interactive sign-in


@pytest.mark.parametrize("value", ["true", "True", " TRUE ", "1", "yes", "on"])
def test_noninteractive(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("ARTIFACTS_KEYRING_NONINTERACTIVE_MODE", value)
    assert config.noninteractive() is True


@pytest.mark.parametrize("value", [None, "", "false", "0", "no", "off", "2", "truthy"])
def test_interactive_unless_switched_off(
    monkeypatch: pytest.MonkeyPatch, value: str | None
) -> None:
    if value is not None:
        monkeypatch.setenv("ARTIFACTS_KEYRING_NONINTERACTIVE_MODE", value)
    assert config.noninteractive() is False


DEVICE_FLOW_VAR = "ARTIFACTS_CREDENTIALPROVIDER_DEVICEFLOWTIMEOUTSECONDS"


def test_device_flow_timeout_default() -> None:
    assert config.device_flow_timeout() == 90


@pytest.mark.parametrize(
    ("raw", "expected"), [("5", 5), ("120", 120), (" 300 ", 300), ("3600", 3600), ("", 90)]
)
def test_device_flow_timeout(monkeypatch: pytest.MonkeyPatch, raw: str, expected: float) -> None:
    monkeypatch.setenv(DEVICE_FLOW_VAR, raw)
    assert config.device_flow_timeout() == expected


@pytest.mark.parametrize("raw", ["0", "4", "-90", "3601", "inf", "nan", "90s", "ninety"])
def test_device_flow_timeout_refused(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv(DEVICE_FLOW_VAR, raw)
    with pytest.raises(ConfigError) as caught:
        config.device_flow_timeout()
    assert str(caught.value).startswith(f"{DEVICE_FLOW_VAR}=")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, None),
        ("", None),
        ("   ", None),
        ("alice@contoso.com", "alice@contoso.com"),
        ("  alice@contoso.com\n", "alice@contoso.com"),
    ],
)
def test_login_hint(monkeypatch: pytest.MonkeyPatch, raw: str | None, expected: str | None) -> None:
    if raw is not None:
        monkeypatch.setenv("ARTIFACTS_CREDENTIALPROVIDER_MSAL_LOGIN_HINT", raw)
    assert config.login_hint() == expected


AUTHORITY_VAR = "ARTIFACTS_CREDENTIALPROVIDER_MSAL_AUTHORITY"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, None),
        ("", None),
        ("  ", None),
        (
            f"https://login.microsoftonline.com/{TENANT}",
            f"https://login.microsoftonline.com/{TENANT}",
        ),
        (
            f" https://login.microsoftonline.com/{TENANT}/ ",
            f"https://login.microsoftonline.com/{TENANT}",
        ),
        (
            "https://login.microsoftonline.com/Contoso.onmicrosoft.com",
            "https://login.microsoftonline.com/contoso.onmicrosoft.com",
        ),
        ("https://login.microsoftonline.com", "https://login.microsoftonline.com/organizations"),
        ("https://login.microsoftonline.com/common", "https://login.microsoftonline.com/common"),
    ],
)
def test_msal_authority(
    monkeypatch: pytest.MonkeyPatch, raw: str | None, expected: str | None
) -> None:
    if raw is not None:
        monkeypatch.setenv(AUTHORITY_VAR, raw)
    assert config.msal_authority() == expected


@pytest.mark.parametrize(
    "raw",
    [
        "https://evil.com/organizations",
        f"https://login.microsoftonline.com.evil.com/{TENANT}",
        f"http://login.microsoftonline.com/{TENANT}",
        f"https://login.microsoftonline.com/{TENANT}?x=1",
        f"https://login.microsoftonline.com/{TENANT}/oauth2",
        "https://login.microsoftonline.com/consumers",
        "https://login.microsoftonline.com/00000000-0000-0000-0000-000000000000",
        f"login.microsoftonline.com/{TENANT}",
        "organizations",
    ],
)
def test_msal_authority_refused(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv(AUTHORITY_VAR, raw)
    with pytest.raises(ConfigError) as caught:
        config.msal_authority()
    assert str(caught.value).startswith(f"{AUTHORITY_VAR}: ")


def test_settings_are_a_snapshot_of_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(settings_module.PROVIDER_VAR, "azure_cli")
    monkeypatch.setenv(settings_module.DEADLINE_VAR, "7")
    loaded = Settings.load()
    monkeypatch.setenv(settings_module.PROVIDER_VAR, "pipeline")
    monkeypatch.setenv(settings_module.DEADLINE_VAR, "9")
    assert (loaded.provider, loaded.deadline) == ("azure_cli", 7.0)
    assert loaded.env[settings_module.PROVIDER_VAR] == "azure_cli"
    with pytest.raises(TypeError):
        loaded.env["X"] = "y"  # type: ignore[index]


def test_never_prompting_is_a_copy_and_leaves_the_environment_alone() -> None:
    loaded = Settings.load()
    quiet = loaded.never_prompting()
    assert quiet.noninteractive is True
    assert loaded.noninteractive is False
    assert settings_module.NONINTERACTIVE_VAR not in os.environ


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ARTIFACTS_KEYRING_NOFUSS_CACHE", "0"),
        ("ARTIFACTS_KEYRING_NOFUSS_CACHE", "off"),
        ("ARTIFACTS_CREDENTIALPROVIDER_SESSIONTOKENCACHE_ENABLED", "false"),
    ],
)
def test_the_cache_switches(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    assert Settings.load().cache is True
    monkeypatch.setenv(name, value)
    assert Settings.load().cache is False


# --- what a user's Entra token becomes, and the organisation's own client -------------------------


@pytest.mark.parametrize(
    ("env", "mode"),
    [
        ({}, "auto"),
        ({"ARTIFACTS_KEYRING_NOFUSS_USER_TOKEN": "session"}, "session"),
        ({"ARTIFACTS_KEYRING_NOFUSS_USER_TOKEN": " Entra "}, "entra"),
        ({"ARTIFACTS_CREDENTIALPROVIDER_RETURN_ENTRA_TOKENS": "true"}, "entra"),
        ({"ARTIFACTS_CREDENTIALPROVIDER_RETURN_ENTRA_TOKENS": "false"}, "auto"),
        (
            {
                "ARTIFACTS_KEYRING_NOFUSS_USER_TOKEN": "session",
                "ARTIFACTS_CREDENTIALPROVIDER_RETURN_ENTRA_TOKENS": "true",
            },
            "session",  # ours wins
        ),
    ],
)
def test_the_user_token_mode(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], mode: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert Settings.load().user_token == mode


def test_the_user_token_mode_from_keyringrc() -> None:
    path = settings_module.keyringrc_path()
    assert path is not None
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("[artifacts_keyring_nofuss]\nuser_token = session\n", encoding="utf-8")
    loaded = Settings.load()
    assert loaded.user_token == "session"
    assert str(path) in loaded.user_token_where


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ARTIFACTS_KEYRING_NOFUSS_USER_TOKEN", "pat"),
        ("ARTIFACTS_KEYRING_NOFUSS_USER_TOKEN", "entra-ish"),
        ("ARTIFACTS_CREDENTIALPROVIDER_RETURN_ENTRA_TOKENS", "maybe"),
    ],
)
def test_a_bad_mode_names_the_choices(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        Settings.load()
    assert name in caught.value.what
    assert caught.value.fix is not None


def test_the_client_id_is_a_guid(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings.load().client_id is None
    monkeypatch.setenv(
        "ARTIFACTS_KEYRING_NOFUSS_CLIENT_ID", " 11111111-2222-3333-4444-55555555AAAA "
    )
    assert Settings.load().client_id == "11111111-2222-3333-4444-55555555aaaa"


@pytest.mark.parametrize("value", ["my-app", "--client=x", "11111111-2222-3333-4444", "a" * 36])
def test_a_client_id_that_is_not_a_guid_is_refused(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("ARTIFACTS_KEYRING_NOFUSS_CLIENT_ID", value)
    with pytest.raises(ConfigError, match="ARTIFACTS_KEYRING_NOFUSS_CLIENT_ID"):
        Settings.load()
