"""Settings, read once per lookup from the environment and keyring's own keyringrc.cfg (never
the current directory) into a frozen object that is passed down. Nothing in the package reads
a setting anywhere else, and no command changes the environment for the rest of its process:
a variation (doctor never prompts) is a copy of the settings, not a global.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import NamedTuple

from . import feeds
from .errors import ConfigError

PROVIDER_VAR = "ARTIFACTS_KEYRING_NOFUSS_PROVIDER"
SECTION = "artifacts_keyring_nofuss"
SESSION_MINUTES_VARS = (
    "ARTIFACTS_KEYRING_NOFUSS_SESSION_MINUTES",
    "ARTIFACTS_CREDENTIALPROVIDER_VSTS_SESSIONTIMEMINUTES",
)
AZ_TIMEOUT_VAR = "ARTIFACTS_KEYRING_NOFUSS_AZ_TIMEOUT"
DEADLINE_VAR = "ARTIFACTS_KEYRING_NOFUSS_TIMEOUT"
CACHE_VARS = (
    "ARTIFACTS_KEYRING_NOFUSS_CACHE",
    "ARTIFACTS_CREDENTIALPROVIDER_SESSIONTOKENCACHE_ENABLED",
)
NONINTERACTIVE_VAR = "ARTIFACTS_KEYRING_NONINTERACTIVE_MODE"
DEVICE_FLOW_TIMEOUT_VAR = "ARTIFACTS_CREDENTIALPROVIDER_DEVICEFLOWTIMEOUTSECONDS"
LOGIN_HINT_VAR = "ARTIFACTS_CREDENTIALPROVIDER_MSAL_LOGIN_HINT"
MSAL_AUTHORITY_VAR = "ARTIFACTS_CREDENTIALPROVIDER_MSAL_AUTHORITY"
USER_TOKEN_VAR = "ARTIFACTS_KEYRING_NOFUSS_USER_TOKEN"  # noqa: S105 - a name
RETURN_ENTRA_VAR = "ARTIFACTS_CREDENTIALPROVIDER_RETURN_ENTRA_TOKENS"
CLIENT_ID_VAR = "ARTIFACTS_KEYRING_NOFUSS_CLIENT_ID"
# What a user's Entra token becomes: a session token (scoped to the URL), the Entra token
# itself, or a session token unless the organisation's policy refuses to mint one.
SESSION, ENTRA, AUTO = "session", "entra", "auto"
USER_TOKEN_MODES = (SESSION, ENTRA, AUTO)

# A working day: one `az` call a day on a developer's machine. An organisation whose policy
# caps lifetimes lower answers 400, and the exchange then takes the service's default.
DEFAULT_SESSION_MINUTES = 480.0
MAX_SESSION_MINUTES = 7 * 24 * 60
DEFAULT_AZ_TIMEOUT = 30.0
# Everything one lookup does (discovery, az, exchange, retries) fits in this: well under the
# minute after which a build looks hung.
DEFAULT_DEADLINE = 30.0
DEFAULT_DEVICE_FLOW_TIMEOUT = 90.0
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


class Settings(NamedTuple):
    env: Mapping[str, str]  # the environment as it was when the lookup began (read-only)
    provider: str | None  # the forced source name(s), comma-separated, or None
    provider_where: str  # where that was set, for messages
    session_minutes: float
    az_timeout: float
    deadline: float
    cache: bool  # keep session tokens and discovery on disk
    noninteractive: bool  # never prompt
    device_flow_timeout: float
    login_hint: str | None
    msal_authority: str | None  # validated like a discovered authority
    extra_hosts: tuple[str, ...]  # hosts declared as Azure DevOps (Server): handed-over only
    user_token: str = AUTO  # SESSION, ENTRA or AUTO
    user_token_where: str = ""  # where that was set, for messages
    client_id: str | None = None  # the organisation's own public client, for narrow scopes

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings now; ConfigError (what is wrong, and how to fix it) for a bad value."""
        env: Mapping[str, str] = MappingProxyType(dict(os.environ if environ is None else environ))
        provider, where = _provider(env)
        user_token, user_token_where = _user_token(env)
        return cls(
            env=env,
            provider=provider,
            provider_where=where,
            session_minutes=_number(
                env, SESSION_MINUTES_VARS, DEFAULT_SESSION_MINUTES, 5, MAX_SESSION_MINUTES
            ),
            az_timeout=_number(env, (AZ_TIMEOUT_VAR,), DEFAULT_AZ_TIMEOUT, 1, 600),
            deadline=_number(env, (DEADLINE_VAR,), DEFAULT_DEADLINE, 1, 600),
            cache=all(env.get(name, "").strip().lower() not in _FALSE for name in CACHE_VARS),
            noninteractive=env.get(NONINTERACTIVE_VAR, "").strip().lower() in _TRUE,
            device_flow_timeout=_number(
                env, (DEVICE_FLOW_TIMEOUT_VAR,), DEFAULT_DEVICE_FLOW_TIMEOUT, 5, 3600
            ),
            login_hint=env.get(LOGIN_HINT_VAR, "").strip() or None,
            msal_authority=_msal_authority(env),
            extra_hosts=feeds.extra_hosts(env),
            user_token=user_token,
            user_token_where=user_token_where,
            client_id=_client_id(env),
        )

    def never_prompting(self) -> Settings:
        """The same settings for a caller that must not start a sign-in (doctor)."""
        return self._replace(noninteractive=True)

    def get(self, name: str) -> str:
        """An environment variable as the lookup saw it, stripped ("" when unset)."""
        return self.env.get(name, "").strip()


def keyringrc_path() -> Path | None:
    """keyring's own config file; None when keyring cannot say where it is (no home)."""
    from keyring.util import platform_

    try:
        root = Path(platform_.config_root())
    except (RuntimeError, KeyError, OSError):
        return None
    return root / "keyringrc.cfg" if root.is_absolute() else None


def _from_keyringrc(key: str) -> tuple[str | None, str]:
    path = keyringrc_path()
    if path is None or not os.path.lexists(path):
        return None, ""  # most machines have none: no configparser to import for them
    import configparser

    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}", "fix or remove that file") from None
    try:
        value = parser.get(SECTION, key, fallback=None)
    except configparser.Error:
        value = None
    return value, f"{path} [{SECTION}] {key}"


def _provider(env: Mapping[str, str]) -> tuple[str | None, str]:
    value = env.get(PROVIDER_VAR)
    if value is not None and value.strip():
        return value.strip(), PROVIDER_VAR
    value, where = _from_keyringrc("provider")
    if value is not None and value.strip():
        return value.strip(), where
    return None, ""


def _user_token(env: Mapping[str, str]) -> tuple[str, str]:
    """(mode, where it was set): ours, else the official provider's switch, else keyringrc."""
    value = env.get(USER_TOKEN_VAR, "").strip().lower()
    where = USER_TOKEN_VAR
    if not value:
        official = env.get(RETURN_ENTRA_VAR, "").strip().lower()
        if official in _TRUE:
            return ENTRA, RETURN_ENTRA_VAR
        if official and official not in _FALSE:
            raise ConfigError(
                f"{RETURN_ENTRA_VAR}={official!r} is neither true nor false", "set true or false"
            )
        found, where = _from_keyringrc("user_token")
        value = (found or "").strip().lower()
    if not value:
        return AUTO, ""
    if value not in USER_TOKEN_MODES:
        raise ConfigError(
            f"{where}={value!r} is not a mode", f"use one of: {', '.join(USER_TOKEN_MODES)}"
        )
    return value, where


def _client_id(env: Mapping[str, str]) -> str | None:
    value = env.get(CLIENT_ID_VAR, "").strip().lower()
    if not value:
        found, _ = _from_keyringrc("client_id")
        value = (found or "").strip().lower()
    if not value:
        return None
    from .endpoints import is_guid

    if not is_guid(value):
        raise ConfigError(
            f"{CLIENT_ID_VAR}={value!r} is not an application (client) id",
            "give the GUID of your organisation's app registration, or unset it",
        )
    return value


def _number(
    env: Mapping[str, str], names: tuple[str, ...], default: float, low: float, high: float
) -> float:
    for name in names:
        raw = env.get(name, "").strip()
        if not raw:
            continue
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{name}={raw!r} is not a number", "unset it or give one") from None
        if not low <= value <= high:
            raise ConfigError(
                f"{name}={raw} is out of range", f"give a number from {low:g} to {high:g}"
            )
        return value
    return default


def _msal_authority(env: Mapping[str, str]) -> str | None:
    value = env.get(MSAL_AUTHORITY_VAR, "").strip()
    if not value:
        return None
    from .endpoints import UntrustedEndpoint, login_authority

    try:
        authority, _ = login_authority(value.rstrip("/"))
    except UntrustedEndpoint as exc:
        raise ConfigError(
            f"{MSAL_AUTHORITY_VAR}: {exc}",
            "give https://login.microsoftonline.com/TENANT or unset it",
        ) from None
    return authority
