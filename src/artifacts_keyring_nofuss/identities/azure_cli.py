"""The Azure CLI: `az account get-access-token`, for whoever ran `az login` on this machine."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

from artifacts_keyring_nofuss import config
from artifacts_keyring_nofuss import log as _log
from artifacts_keyring_nofuss.errors import SourceError
from artifacts_keyring_nofuss.identities import DEVOPS_RESOURCE, TokenRequest, Unavailable
from artifacts_keyring_nofuss.tokens import Token

_NAMES = ("az.cmd", "az.exe", "az.bat") if sys.platform == "win32" else ("az",)


def find_az(path: str | None = None) -> str | None:
    """`az` on PATH, skipping empty, relative and current-directory entries.

    Windows looks in the current directory first by default; a checked-out repository must not
    be able to plant an `az.cmd` there.
    """
    return find_on_path(_NAMES, path)


def find_on_path(names: tuple[str, ...], path: str | None = None) -> str | None:
    """The first of `names` on PATH, never from the current directory or a relative entry."""
    search = os.environ.get("PATH", "") if path is None else path
    try:
        cwd = Path.cwd().resolve()
    except OSError:
        cwd = None
    for entry in search.split(os.pathsep):
        if not entry or not Path(entry).is_absolute():
            continue
        directory = Path(entry)
        try:
            if cwd is not None and directory.resolve() == cwd:
                continue
        except OSError:
            continue
        for name in names:
            candidate = directory / name
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
    return None


_MAX_PROFILE = 4 * 1024 * 1024
_MAX_EPOCH = 4_102_444_800  # 2100-01-01


def _read_bounded(path: Path, limit: int) -> bytes | None:
    """A regular file's first `limit` bytes; None for anything else (a FIFO must not hang us,
    /dev/zero must not fill memory), or when it is larger than that."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        with os.fdopen(os.dup(fd), "rb") as handle:
            data = handle.read(limit + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    return data if len(data) <= limit else None


def config_dir() -> Path:
    configured = os.environ.get("AZURE_CONFIG_DIR", "")
    return Path(configured) if configured else Path.home() / ".azure"


def signed_in_account() -> str | None:
    """Who `az` would answer as, read from its own profile without running it (0.3-2 s).

    `az login` as someone else or `az logout` rewrites azureProfile.json, so a cached session
    token keyed by this name is never handed to the wrong person. Service principals are not
    named here: their tokens are never cached on disk.
    """
    raw = _read_bounded(config_dir() / "azureProfile.json", _MAX_PROFILE)
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
    if not isinstance(user, dict) or user.get("type") != "user":
        return None
    name = user.get("name")
    if not isinstance(name, str) or not name or len(name) > 256 or not name.isprintable():
        return None
    return name.lower()


class AzureCliSource:
    name = "azure_cli"
    needs_discovery = True

    def cache_identity(self) -> str | None:
        account = signed_in_account()
        return f"azure_cli:{account}" if account else None

    def get_token(self, request: TokenRequest) -> Token | Unavailable:
        az = find_az()
        if az is None:
            return Unavailable("`az` is not on PATH (install the Azure CLI and run `az login`)")
        command = [az, "account", "get-access-token", "--resource", DEVOPS_RESOURCE]
        if request.tenant:
            command += ["--tenant", request.tenant]
        command += ["--output", "json"]
        timeout = min(config.az_timeout(), max(0.5, request.deadline.remaining()))
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
                f"`az account get-access-token` did not finish in {timeout:g} s "
                f"(raise {config.AZ_TIMEOUT_VAR} if az is just slow here)"
            ) from None
        except OSError as exc:
            raise SourceError(f"cannot run {az}: {exc.strerror or exc}") from None
        if done.returncode != 0:
            reason = _explain_failure(done.stderr, request.tenant)
            if reason.startswith("not signed in"):
                return Unavailable(reason, present=True)
            raise SourceError(reason)
        return _parse_output(done.stdout)


def _parse_output(stdout: bytes) -> Token:
    try:
        data = json.loads(stdout.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise SourceError(
            "`az account get-access-token` printed something that is not JSON"
        ) from None
    secret = data.get("accessToken") if isinstance(data, dict) else None
    if (
        not isinstance(secret, str)
        or not secret
        or not secret.isascii()
        or not secret.isprintable()
        or " " in secret
    ):
        raise SourceError("`az account get-access-token` printed no usable accessToken")
    expires_on = data.get("expires_on")
    stated: float | None = None
    if isinstance(expires_on, (int, str)) and not isinstance(expires_on, bool):
        try:
            stated = float(expires_on)
        except (ValueError, OverflowError):
            stated = None
    if stated is not None and not 0 < stated < _MAX_EPOCH:
        stated = None  # not a time; the token's own `exp` decides
    return Token.from_secret(secret, "azure_cli", expires_on=stated)


def _explain_failure(stderr: bytes, tenant: str | None) -> str:
    text = stderr.decode("utf-8", errors="replace")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    lowered = text.lower()
    login = f"`az login --tenant {tenant}`" if tenant else "`az login`"
    # Real AADSTS errors end with "Please run: az login ...": check for them first.
    if "aadsts" in lowered:
        first = next((ln for ln in lines if "AADSTS" in ln), "")
        return (
            f"az could not get a token for tenant {tenant or '(default)'}: "
            f"{_shortened(first.removeprefix('ERROR: '))}; run {login}"
        )
    if "az login" in lowered and ("please run" in lowered or "not logged in" in lowered):
        return f"not signed in: run {login}"
    if any(ln.startswith("Traceback") for ln in lines):
        return "az crashed; run `az account get-access-token` yourself to see why"
    first = lines[-1] if lines else "no message"
    return f"az failed: {first[:200]}"


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
