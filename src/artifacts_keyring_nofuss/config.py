"""Settings from the environment and keyring's own keyringrc.cfg, never the current directory."""

from __future__ import annotations

import configparser
import os
from pathlib import Path

from .errors import ConfigError

PROVIDER_VAR = "ARTIFACTS_KEYRING_NOFUSS_PROVIDER"
SECTION = "artifacts_keyring_nofuss"
SESSION_MINUTES_VARS = (
    "ARTIFACTS_KEYRING_NOFUSS_SESSION_MINUTES",
    "ARTIFACTS_CREDENTIALPROVIDER_VSTS_SESSIONTIMEMINUTES",
)
AZ_TIMEOUT_VAR = "ARTIFACTS_KEYRING_NOFUSS_AZ_TIMEOUT"
DEADLINE_VAR = "ARTIFACTS_KEYRING_NOFUSS_TIMEOUT"

# A working day: one `az` call a day on a developer's machine. An organisation whose policy
# caps lifetimes lower answers 400, and the exchange then takes the service's default.
DEFAULT_SESSION_MINUTES = 480
MAX_SESSION_MINUTES = 7 * 24 * 60
DEFAULT_AZ_TIMEOUT = 30.0
# Everything one lookup does (discovery, az, exchange, retries) fits in this: well under the
# minute after which a build looks hung.
DEFAULT_DEADLINE = 30.0


def keyringrc_path() -> Path:
    from keyring.util import platform_

    return Path(platform_.config_root()) / "keyringrc.cfg"


def _from_keyringrc(key: str) -> tuple[str | None, str]:
    path = keyringrc_path()
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}; fix or remove that file") from exc
    try:
        value = parser.get(SECTION, key, fallback=None)
    except configparser.Error:
        value = None
    return value, f"{path} [{SECTION}] {key}"


def provider_setting() -> tuple[str | None, str]:
    """The forced provider name (or None) and where it was set, for messages."""
    value = os.environ.get(PROVIDER_VAR)
    if value is not None and value.strip():
        return value.strip(), PROVIDER_VAR
    value, where = _from_keyringrc("provider")
    if value is not None and value.strip():
        return value.strip(), where
    return None, ""


def _number(names: tuple[str, ...], default: float, low: float, high: float) -> float:
    for name in names:
        raw = os.environ.get(name, "").strip()
        if not raw:
            continue
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{name}={raw!r} is not a number; unset it or give one") from None
        if not low <= value <= high:
            raise ConfigError(f"{name}={raw} is out of range ({low:g} to {high:g})")
        return value
    return default


def session_minutes() -> float:
    return _number(SESSION_MINUTES_VARS, DEFAULT_SESSION_MINUTES, 5, MAX_SESSION_MINUTES)


def az_timeout() -> float:
    return _number((AZ_TIMEOUT_VAR,), DEFAULT_AZ_TIMEOUT, 1, 600)


def deadline_seconds() -> float:
    return _number((DEADLINE_VAR,), DEFAULT_DEADLINE, 1, 600)


# --- interactive sign-in: the official provider's settings -----------------------------------

NONINTERACTIVE_VAR = "ARTIFACTS_KEYRING_NONINTERACTIVE_MODE"
DEVICE_FLOW_TIMEOUT_VAR = "ARTIFACTS_CREDENTIALPROVIDER_DEVICEFLOWTIMEOUTSECONDS"
LOGIN_HINT_VAR = "ARTIFACTS_CREDENTIALPROVIDER_MSAL_LOGIN_HINT"
MSAL_AUTHORITY_VAR = "ARTIFACTS_CREDENTIALPROVIDER_MSAL_AUTHORITY"
DEFAULT_DEVICE_FLOW_TIMEOUT = 90.0
_TRUE = ("1", "true", "yes", "on")


def noninteractive() -> bool:
    """Never prompt: the official provider's switch (`true`)."""
    return os.environ.get(NONINTERACTIVE_VAR, "").strip().lower() in _TRUE


def device_flow_timeout() -> float:
    return _number((DEVICE_FLOW_TIMEOUT_VAR,), DEFAULT_DEVICE_FLOW_TIMEOUT, 5, 3600)


def login_hint() -> str | None:
    value = os.environ.get(LOGIN_HINT_VAR, "").strip()
    return value or None


def msal_authority() -> str | None:
    """The authority override, validated like a discovered one (an Entra host, a tenant)."""
    value = os.environ.get(MSAL_AUTHORITY_VAR, "").strip()
    if not value:
        return None
    from .endpoints import UntrustedEndpoint, login_authority

    try:
        authority, _ = login_authority(value.rstrip("/"))
    except UntrustedEndpoint as exc:
        raise ConfigError(f"{MSAL_AUTHORITY_VAR}: {exc}") from None
    return authority
