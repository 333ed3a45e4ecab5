"""The Azure CLI: `az account get-access-token`, for whoever ran `az login` on this machine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from artifacts_keyring_nofuss import claims as _claims
from artifacts_keyring_nofuss import local
from artifacts_keyring_nofuss import log as _log
from artifacts_keyring_nofuss.devops import RESOURCE
from artifacts_keyring_nofuss.errors import SourceError
from artifacts_keyring_nofuss.identities import Prepared, TokenRequest, Unavailable
from artifacts_keyring_nofuss.settings import AZ_TIMEOUT_VAR
from artifacts_keyring_nofuss.tokens import Token

_NAMES = ("az.cmd", "az.exe", "az.bat") if sys.platform == "win32" else ("az",)
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
        timeout = min(request.settings.az_timeout, max(0.5, request.deadline.remaining()))
        before = signed_in(request.settings.env)
        _log.debug("azure_cli: running %s", " ".join(command[1:]))
        try:
            done = subprocess.run(
                command,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise SourceError(
                f"`az account get-access-token` did not finish in {timeout:g} s",
                f"raise {AZ_TIMEOUT_VAR} if az is just slow here",
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
