"""The Azure CLI: `az account get-access-token`, for whoever ran `az login` on this machine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from artifacts_keyring_nofuss import claims as _claims
from artifacts_keyring_nofuss import endpoints, local
from artifacts_keyring_nofuss import log as _log
from artifacts_keyring_nofuss.devops import RESOURCE
from artifacts_keyring_nofuss.errors import SourceError
from artifacts_keyring_nofuss.identities import Prepared, TokenRequest, Unavailable
from artifacts_keyring_nofuss.settings import AZ_TIMEOUT_VAR
from artifacts_keyring_nofuss.tokens import Token

_NAMES = ("az.cmd", "az.exe", "az.bat") if sys.platform == "win32" else ("az",)
# The Azure CLI's public client, under which its MSAL token cache files the tokens it got.
AZ_CLIENT_ID = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"
# Plaintext where az does not encrypt it (Linux, macOS); a name, not a secret.
TOKEN_CACHE = "msal_token_cache.json"  # noqa: S105
_MAX_TOKEN_CACHE = 16 * 1024 * 1024
# A token from az's cache must outlive the install it is for, as one from az would.
_CACHE_MARGIN = 5 * 60
_MAX_PROFILE = 4 * 1024 * 1024
_MAX_EPOCH = 4_102_444_800  # 2100-01-01
SIGN_IN = "install the Azure CLI and run `az login`"


def find_az(path: str | None = None) -> str | None:
    """`az` on PATH, skipping empty, relative and current-directory entries."""
    return local.find_on_path(_NAMES, path)


def config_dir(environ: Mapping[str, str] | None = None) -> Path | None:
    env = os.environ if environ is None else environ
    configured = env.get("AZURE_CONFIG_DIR", "")
    if configured:
        return Path(configured)
    home = local.home(env)
    return home / ".azure" if home is not None else None


def signed_in(environ: Mapping[str, str] | None = None) -> tuple[str, str] | None:
    """(kind, name) of who `az` would answer as, read from its own profile without running it
    (0.3-2 s): ("user", "alice@contoso.com") or ("servicePrincipal", client id).

    `az login` as someone else or `az logout` rewrites azureProfile.json, so a cached token
    keyed by this name is never handed to the wrong person.
    """
    directory = config_dir(environ)
    if directory is None:
        return None
    raw = local.read_regular(directory / "azureProfile.json", _MAX_PROFILE)
    if raw is None:
        return None
    try:
        profile = json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    subscriptions = profile.get("subscriptions") if isinstance(profile, dict) else None
    if not isinstance(subscriptions, list):
        return None
    default = next(
        (s for s in subscriptions if isinstance(s, dict) and s.get("isDefault") is True), None
    )
    user = default.get("user") if default else None
    if not isinstance(user, dict) or user.get("type") not in ("user", "servicePrincipal"):
        return None
    name = user.get("name")
    if not isinstance(name, str) or not name or len(name) > 256 or not name.isprintable():
        return None
    return str(user["type"]), name.lower()


def cached_access_token(
    environ: Mapping[str, str], account: str, tenant: str, now: float | None = None
) -> tuple[str, float] | None:
    """An unexpired Azure DevOps access token that az itself would hand out for `account` in
    `tenant`, read from az's own MSAL token cache without running az (0.3-2 s) and without
    writing anything; None whenever anything is unclear (then az runs, as always).

    Only what az got for itself: its public client, the signed-in account (by user name), the
    tenant asked for (a GUID), the Azure DevOps resource, and at least five minutes to live.
    """
    directory = config_dir(environ)
    if directory is None or not endpoints.is_guid(tenant.lower()):
        return None
    raw = local.read_regular(directory / TOKEN_CACHE, _MAX_TOKEN_CACHE, own=True)
    if raw is None:
        return None
    try:
        cache = json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(cache, dict):
        return None
    accounts, tokens = cache.get("Account"), cache.get("AccessToken")
    if not isinstance(accounts, dict) or not isinstance(tokens, dict):
        return None
    homes = {
        _text(entry, "home_account_id")
        for entry in accounts.values()
        if isinstance(entry, dict)
        and (_text(entry, "username") or "").lower() == account
        and _text(entry, "environment") in endpoints.LOGIN_HOSTS
    }
    homes.discard(None)
    if len(homes) != 1:
        return None  # nobody, or the same name twice: ask az
    moment = time.time() if now is None else now
    best: tuple[float, str] | None = None
    for entry in tokens.values():
        if not isinstance(entry, dict) or _text(entry, "home_account_id") not in homes:
            continue
        if entry.get("client_id") != AZ_CLIENT_ID or _text(entry, "environment") not in (
            endpoints.LOGIN_HOSTS
        ):
            continue
        if str(entry.get("realm", "")).lower() != tenant.lower():
            continue
        target = entry.get("target")
        if not isinstance(target, str) or not any(
            scope.lower().startswith(RESOURCE + "/") for scope in target.split()
        ):
            continue
        secret, expires = entry.get("secret"), entry.get("expires_on")
        try:
            stated = float(expires) if isinstance(expires, (str, int)) else None
        except (ValueError, OverflowError):
            stated = None
        if stated is None or not moment + _CACHE_MARGIN < stated < _MAX_EPOCH:
            continue
        if not isinstance(secret, str) or not secret.isascii() or not secret.isprintable():
            continue
        if best is None or stated > best[0]:
            best = (stated, secret)
    if best is None:
        return None
    stamp, secret = best
    claims = _claims.read_claims(secret)
    if _claims.tenant(claims) != tenant.lower() and _claims.tenant(claims) != tenant:
        return None
    return secret, stamp


def _text(entry: dict[str, Any], name: str) -> str | None:
    """A field msal writes as text, or None: a list or an object there cannot even be looked up
    in a set (TypeError), and the lookup must run az instead, never stop."""
    value = entry.get(name)
    return value if isinstance(value, str) else None


def signed_in_account(environ: Mapping[str, str] | None = None) -> str | None:
    """The signed-in user's name (None for a service principal, or nobody)."""
    found = signed_in(environ)
    return found[1] if found is not None and found[0] == "user" else None


def _identity(found: tuple[str, str]) -> str:
    kind, name = found
    return f"azure_cli:{name}" if kind == "user" else f"azure_cli:app:{name}"


def vouched_identity(
    before: tuple[str, str] | None, after: tuple[str, str] | None, secret: str
) -> str | None:
    """The profile's identity, when az's token is surely that account's: the profile did not
    change while az ran, and the token's own claims, when they name anyone, name that account.
    Otherwise None, and the token is keyed by its claims alone (safe, but not found again by a
    new process before it asks az)."""
    if before is None or before != after:
        return None
    claims = _claims.read_claims(secret)
    if claims is None:
        return None
    kind, name = before
    if kind == "user":
        named = {
            value.lower().rsplit("#", 1)[-1]
            for field in ("upn", "unique_name", "preferred_username", "email")
            if isinstance(value := claims.get(field), str)
        }
    else:
        named = {
            value.lower()
            for field in ("appid", "azp")
            if isinstance(value := claims.get(field), str)
        }
    return _identity(before) if not named or name in named else None


class AzureCliSource:
    def prepare(self, request: TokenRequest) -> Prepared | Unavailable:
        if find_az() is None:
            return Unavailable("`az` is not on PATH", fix=SIGN_IN)
        found = signed_in(request.settings.env)
        return Prepared(_identity(found) if found is not None else None)

    def get_token(self, request: TokenRequest) -> Token | Unavailable:
        az = find_az()
        if az is None:
            return Unavailable("`az` is not on PATH", fix=SIGN_IN)
        command = [az, "account", "get-access-token", "--resource", RESOURCE]
        if request.tenant:
            command += ["--tenant", request.tenant]
        command += ["--output", "json"]
        before = signed_in(request.settings.env)
        cached = _from_az_cache(request, before)
        if cached is not None:
            return cached
        timeout = min(request.settings.az_timeout, max(0.5, request.deadline.remaining()))
        _log.debug("azure_cli: running %s", " ".join(command[1:]))
        try:
            done = local.run_program(command, timeout)
        except subprocess.TimeoutExpired:
            raise SourceError(
                f"`az account get-access-token` did not finish in {timeout:g} s",
                f"raise {AZ_TIMEOUT_VAR} if az is just slow here",
            ) from None
        except local.TooMuchOutput as exc:
            raise SourceError(
                f"`az account get-access-token` printed {exc}, not a token",
                "run it yourself to see why; reinstall the Azure CLI if it stays so",
            ) from None
        except OSError as exc:
            raise SourceError(
                f"cannot run {az}: {exc.strerror or exc}", "reinstall the Azure CLI"
            ) from None
        if done.returncode != 0:
            what, fix, signed_out = _explain_failure(done.stderr, request.tenant)
            if signed_out:
                return Unavailable(what, present=True, fix=fix)
            raise SourceError(what, fix)
        secret, stated = _parse_output(done.stdout)
        vouched = vouched_identity(before, signed_in(request.settings.env), secret)
        return Token.from_secret(secret, "azure_cli", expires_on=stated, identity=vouched)


def _from_az_cache(request: TokenRequest, before: tuple[str, str] | None) -> Token | None:
    """The token az would print, from its own cache, when the signed-in user has one there."""
    if before is None or before[0] != "user" or not request.tenant:
        return None
    cached = cached_access_token(request.settings.env, before[1], request.tenant)
    if cached is None:
        return None
    secret, stated = cached
    vouched = vouched_identity(before, signed_in(request.settings.env), secret)
    if vouched is None:
        return None
    _log.debug("azure_cli: az's own token cache holds a token for %s: az need not run", before[1])
    return Token.from_secret(secret, "azure_cli", expires_on=stated, identity=vouched)


def _parse_output(stdout: bytes) -> tuple[str, float | None]:
    try:
        data = json.loads(stdout.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise SourceError(
            "`az account get-access-token` printed something that is not JSON",
            "run it yourself to see why; reinstall the Azure CLI if it stays so",
        ) from None
    secret = data.get("accessToken") if isinstance(data, dict) else None
    if (
        not isinstance(secret, str)
        or not secret
        or not secret.isascii()
        or not secret.isprintable()
        or " " in secret
    ):
        raise SourceError(
            "`az account get-access-token` printed no usable accessToken",
            "run it yourself to see why; reinstall the Azure CLI if it stays so",
        )
    expires_on = data.get("expires_on")
    stated: float | None = None
    if isinstance(expires_on, (int, str)) and not isinstance(expires_on, bool):
        try:
            stated = float(expires_on)
        except (ValueError, OverflowError):
            stated = None
    if stated is not None and not 0 < stated < _MAX_EPOCH:
        stated = None  # not a time; the token's own `exp` decides
    return secret, stated


def _explain_failure(stderr: bytes, tenant: str | None) -> tuple[str, str, bool]:
    """(what, fix, signed out) from az's stderr."""
    text = stderr.decode("utf-8", errors="replace")
    lines = [_log.printable(ln.strip()) for ln in text.splitlines() if ln.strip()]
    lowered = text.lower()
    login = f"run `az login --tenant {tenant}`" if tenant else "run `az login`"
    # Real AADSTS errors end with "Please run: az login ...": check for them first.
    if "aadsts" in lowered:
        first = next((ln for ln in lines if "AADSTS" in ln), "")
        return (
            f"az could not get a token for tenant {tenant or '(default)'}: "
            f"{_shortened(first.removeprefix('ERROR: '))}",
            login,
            False,
        )
    if "az login" in lowered and ("please run" in lowered or "not logged in" in lowered):
        return "not signed in", login, True
    see = "run `az account get-access-token` yourself to see why"
    if any(ln.startswith("Traceback") for ln in lines):
        return "az crashed", see, False
    last = lines[-1] if lines else "no message"
    return f"az failed: {last[:200]}", see, False


def _shortened(text: str, limit: int = 200) -> str:
    """Entra's description cut at a sentence or a word within `limit` characters: the real az
    prints it whole on one line (AADSTS50020 runs to 400 characters, trace ids included)."""
    if len(text) <= limit:
        return text
    sentence = text.rfind(". ", 0, limit)
    if sentence >= limit // 2:
        return text[: sentence + 1]
    word = text.rfind(" ", 0, limit)
    return text[: word if word > 0 else limit] + "..."
