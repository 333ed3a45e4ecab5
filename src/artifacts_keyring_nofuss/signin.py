"""Signing in without az: msal's device code (or the browser, from `ak-nofuss login`), msal's own
persistent token cache, and a small record of who signed in, so that later lookups are silent.

The token cache is msal's: encrypted where the OS offers it (DPAPI, the macOS keychain,
libsecret), otherwise a 0600 file, as az keeps its own. The record holds no secret: the account
id, the user name and the tenant. msal is imported only when a sign-in is really needed.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, TextIO

from . import local
from . import log as _log
from .devops import DEFAULT_SCOPE, RESOURCE
from .errors import NofussError, SourceError
from .settings import DEVICE_FLOW_TIMEOUT_VAR, Settings
from .tokens import Token

# The Azure Artifacts credential provider's public client: what the official package signs in
# as, pre-authorised for Azure DevOps.
CLIENT_ID = "d5a56ea4-7369-46b8-a538-c370805301bf"
RECORD_FILE = "account.json"
CACHE_FILE = "msal_token_cache.bin"
PLAIN_CACHE_FILE = "msal_token_cache.json"
LOGIN_HOST = "login.microsoftonline.com"
LOCK_SUFFIX = ".lockfile"  # msal-extensions' lock beside its cache file
# Every name in the directory that we or msal-extensions open: none may be a planted link or
# somebody else's file when msal is handed the path.
PRIVATE_FILES = (
    RECORD_FILE,
    CACHE_FILE,
    CACHE_FILE + LOCK_SUFFIX,
    PLAIN_CACHE_FILE,
    PLAIN_CACHE_FILE + LOCK_SUFFIX,
)


def data_dir() -> Path | None:
    """Where the sign-in lives: the user's data directory (not the cache, which gets wiped)."""
    return local.data_dir()


# The organisation's own public client (ARTIFACTS_KEYRING_NOFUSS_CLIENT_ID) may be granted the
# delegated Azure DevOps permissions for packages alone: tokens that can read (and publish)
# packages and nothing else. The first-party client above cannot ask for them (AADSTS65002).
READ_SCOPE = f"{RESOURCE}/vso.packaging"
WRITE_SCOPE = f"{RESOURCE}/vso.packaging_write"


def client_for(settings: Settings) -> str:
    return settings.client_id or CLIENT_ID


def scopes_for(settings: Settings, write: bool) -> list[str]:
    """What a sign-in asks Entra for: the narrow packaging scope (read, or write for an upload
    URL) with the organisation's own client, never `.default`; `.default` (user_impersonation)
    with the first-party client, which can ask for nothing narrower."""
    if settings.client_id is None:
        return [DEFAULT_SCOPE]
    return [WRITE_SCOPE if write else READ_SCOPE]


@dataclass(frozen=True)
class Record:
    home_account_id: str  # "{object id}.{home tenant}": msal's account key
    username: str
    tenant: str  # the tenant signed in to
    authority: str
    client_id: str = CLIENT_ID  # the public client signed in with
    scopes: str = ""  # what the sign-in was granted (space-separated), for `status`

    @property
    def identity(self) -> str:
        if self.client_id == CLIENT_ID:
            return f"interactive:{self.home_account_id}"
        return f"interactive:{self.client_id}:{self.home_account_id}"


def load_record() -> Record | None:
    directory = data_dir()
    if directory is None:
        return None
    problem = local.private_dir_problem(directory, tighten=False)
    if not problem and local.exposed_ancestor(directory) is not None:
        problem = "anyone can replace it"
    if problem:
        if problem != local.MISSING:
            _log.debug("sign-in: ignoring %s: %s", directory, problem)
        return None
    try:
        raw = local.read_private(directory / RECORD_FILE, 64 * 1024)
    except local.Unsafe as exc:
        _log.debug("sign-in: ignoring %s: %s", directory / RECORD_FILE, exc)
        return None
    if raw is None:
        return None
    try:
        data = json.loads(raw.decode("utf-8"))
        required = ("home_account_id", "username", "tenant", "authority")
        record = Record(
            **{k: data[k] for k in required},
            # Written by a version that signed in with the first-party client only.
            client_id=data.get("client_id", CLIENT_ID),
            scopes=data.get("scopes", DEFAULT_SCOPE),
        )
    except (ValueError, TypeError, KeyError, UnicodeDecodeError, RecursionError):
        _log.debug("sign-in: ignoring an unreadable %s", RECORD_FILE)
        return None
    values = asdict(record)
    if not all(isinstance(v, str) for v in values.values()):
        return None
    if not all(values[k] for k in ("home_account_id", "username", "tenant", "authority")):
        return None
    return record


def _private_dir() -> Path:
    """The sign-in's directory, created 0700, checked as the session cache's is before anything
    (msal above all) is handed a path in it; SourceError with the one line otherwise."""
    directory = data_dir()
    if directory is None:
        raise NofussError("no home directory to keep the sign-in in; set HOME")
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
        with suppress(FileExistsError):
            directory.mkdir(mode=0o700)
    except OSError as exc:  # a file where a directory should be, no permission: say what to do
        raise SourceError(
            f"cannot keep the sign-in in {directory} ({exc.strerror or type(exc).__name__})",
            "set XDG_DATA_HOME to a directory of yours and sign in again",
        ) from None
    exposed = local.exposed_ancestor(directory)
    if exposed is not None:
        raise SourceError(
            f"not keeping the sign-in in {directory}: {exposed} and put their own directory "
            "there; set XDG_DATA_HOME to a directory of yours and sign in again"
        )
    problem = local.private_dir_problem(directory, tighten=True)
    where = directory
    if not problem:
        for name in PRIVATE_FILES:
            problem = local.private_file_problem(directory / name)
            if problem:
                where = directory / name
                break
    if problem:
        elsewhere = " (or set XDG_DATA_HOME to a directory of yours)" if where == directory else ""
        raise SourceError(
            f"not keeping the sign-in in {where}: {problem}; remove it{elsewhere} and sign in again"
        )
    return directory


def save_record(record: Record) -> None:
    """Written to a new 0600 file, then moved into place: an older file's looser mode (a
    restored backup) must not survive, or load_record would ignore the record from then on."""
    path = _private_dir() / RECORD_FILE
    fd, staged = tempfile.mkstemp(dir=path.parent, prefix=".account-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(asdict(record), handle)
        Path(staged).replace(path)
    except BaseException:
        with suppress(OSError):
            Path(staged).unlink()
        raise


def forget() -> list[Path]:
    """Remove the record and msal's cache (both kinds); the files that were there.
    SourceError, touching nothing, when the directory is not ours: a link planted in its place
    (in a shared XDG_DATA_HOME) would have us delete whatever sign-in it leads to."""
    directory = data_dir()
    removed: list[Path] = []
    if directory is None:
        return removed
    problem = local.private_dir_problem(directory, tighten=True)
    if problem == local.MISSING:
        return removed
    if problem:
        raise SourceError(
            f"not removing the sign-in in {directory}: {problem}", "remove it yourself"
        )
    # The keychain entry's signal file is touched, following links: only a file of ours.
    if (
        (directory / CACHE_FILE).exists()
        and (sys.platform == "darwin" or sys.platform.startswith("linux"))
        and not local.private_file_problem(directory / CACHE_FILE)
    ):
        with suppress(Exception):  # empty the keychain / libsecret entry behind the file
            _encrypted(directory / CACHE_FILE).save("{}")
    for name in (RECORD_FILE, CACHE_FILE, PLAIN_CACHE_FILE):
        path = directory / name
        for candidate in (path, path.with_name(path.name + LOCK_SUFFIX)):
            with suppress(FileNotFoundError):
                candidate.unlink()
                if candidate == path:
                    removed.append(path)
    return removed


def authority_for(tenant: str | None, settings: Settings) -> str:
    if settings.msal_authority is not None:
        return settings.msal_authority
    return f"https://{LOGIN_HOST}/{tenant or 'organizations'}"


def _encrypted(path: Path) -> Any:
    from msal_extensions import build_encrypted_persistence

    return build_encrypted_persistence(str(path))


def persistence(directory: Path) -> tuple[Any, bool]:
    """msal-extensions persistence: (persistence, encrypted)."""
    from msal_extensions import FilePersistence
    from msal_extensions.persistence import PersistenceNotFound

    try:
        encrypted = _encrypted(directory / CACHE_FILE)
        with suppress(PersistenceNotFound):
            encrypted.load()
        return encrypted, True
    except Exception as exc:  # noqa: BLE001 - no OS keyring here: say so, use a private file
        _log.debug("sign-in: no encrypted storage (%s); using a 0600 file", type(exc).__name__)
        return FilePersistence(str(directory / PLAIN_CACHE_FILE)), False


class SignIn:
    """An msal public client on a persistent cache, for one authority."""

    def __init__(self, authority: str, settings: Settings, client_id: str | None = None) -> None:
        import msal
        from msal_extensions import PersistedTokenCache

        from .http import requests_session

        self.directory = _private_dir()
        self.persistence, self.encrypted = persistence(self.directory)
        self.client_id = client_id or client_for(settings)
        self.app = msal.PublicClientApplication(
            self.client_id,
            authority=authority,
            token_cache=PersistedTokenCache(self.persistence),
            http_client=requests_session(settings.env),
        )

    @property
    def cache_location(self) -> str:
        return str(self.persistence.get_location())

    def silent(self, record: Record, scopes: list[str]) -> dict[str, Any] | None:
        accounts = [
            a for a in self.app.get_accounts() if a.get("home_account_id") == record.home_account_id
        ]
        if not accounts:
            return None
        result = self.app.acquire_token_silent(scopes, account=accounts[0])
        if isinstance(result, dict) and result.get("access_token"):
            return result
        return None

    def device_code(
        self, say: Callable[[str], None], timeout: float, scopes: list[str]
    ) -> dict[str, Any]:
        flow = self.app.initiate_device_flow(scopes=scopes)
        if "user_code" not in flow:
            raise SourceError(f"Entra did not start a device-code sign-in: {_error(flow)}")
        say(_log.printable(str(flow.get("message") or "")))
        end = time.monotonic() + timeout
        result = self.app.acquire_token_by_device_flow(
            flow, exit_condition=lambda _flow: time.monotonic() > end
        )
        return self._checked(result, timeout)

    def browser(self, timeout: float, login_hint: str | None, scopes: list[str]) -> dict[str, Any]:
        import msal

        # A RuntimeError subclass; older msal versions raise a plain RuntimeError.
        timed_out = getattr(msal, "BrowserInteractionTimeoutError", RuntimeError)
        try:
            result = self.app.acquire_token_interactive(
                scopes,
                prompt="select_account",
                login_hint=login_hint,
                timeout=max(1, int(timeout)),
            )
        except timed_out:
            result = {"error": "authorization_pending"}  # the same answer as a device code's
        return self._checked(result, timeout)

    def _checked(self, result: Any, timeout: float) -> dict[str, Any]:
        if isinstance(result, dict) and result.get("access_token"):
            return result
        error = result.get("error") if isinstance(result, dict) else None
        if error in ("authorization_pending", "slow_down", "expired_token", None):
            raise SourceError(
                f"the sign-in was not completed within {timeout:g} s "
                f"(raise {DEVICE_FLOW_TIMEOUT_VAR} for more time)"
            )
        if error in ("authorization_declined", "access_denied"):
            raise SourceError("the sign-in was declined")
        raise SourceError(f"the sign-in failed: {_error(result)}")

    def record(self, result: dict[str, Any], authority: str) -> Record:
        claims = result.get("id_token_claims") or {}
        oid, tid = claims.get("oid"), claims.get("tid")
        accounts = self.app.get_accounts()
        for account in accounts:
            home = str(account.get("home_account_id") or "")
            if (oid and home.startswith(f"{oid}.")) or len(accounts) == 1:
                return Record(
                    home_account_id=home,
                    username=str(account.get("username") or claims.get("preferred_username")),
                    tenant=str(tid or authority.rsplit("/", 1)[-1]),
                    authority=authority,
                    client_id=self.client_id,
                    scopes=_granted(result),
                )
        raise SourceError("the sign-in gave no account to remember")

    def scopes_held(self, record: Record) -> list[str]:
        """The Azure DevOps scopes msal holds tokens of for this sign-in (what it was granted,
        the write scope included once a publish asked for it)."""
        import msal

        found: set[str] = set()
        entries = self.app.token_cache.find(
            msal.TokenCache.CredentialType.ACCESS_TOKEN,
            query={"home_account_id": record.home_account_id, "client_id": self.client_id},
        )
        for entry in entries:
            target = entry.get("target")
            if isinstance(target, str):
                found.update(s for s in target.split() if s.lower().startswith(RESOURCE + "/"))
        return sorted(found) or record.scopes.split()


def _granted(result: dict[str, Any]) -> str:
    scope = result.get("scope")
    if isinstance(scope, list):
        scope = " ".join(str(s) for s in scope)
    if not isinstance(scope, str):
        return ""
    return " ".join(s for s in scope.split() if s.lower().startswith(RESOURCE + "/"))[:500]


def token_from(result: dict[str, Any], source: str, identity: str, scopes: list[str]) -> Token:
    """The token msal gave for the account `identity` names (msal matched it by account), for
    the scopes asked (what it is kept under)."""
    expires_in = result.get("expires_in")
    stated = time.time() + expires_in if isinstance(expires_in, int | float) else None
    token = Token.from_secret(
        str(result["access_token"]), source, expires_on=stated, identity=identity
    )
    return replace(token, scope=" ".join(scopes))


def _error(result: Any) -> str:
    if not isinstance(result, dict):
        return "no answer"
    text = str(result.get("error_description") or result.get("error") or "no answer")
    return _log.printable(text.splitlines()[0][:300]) if text else "no answer"


def open_terminal() -> TextIO | None:
    """The controlling terminal, for a prompt that pip and uv would otherwise hide or hold back
    with stderr; None when there is none (CI, a service, `setsid`)."""
    name = "CONOUT$" if sys.platform == "win32" else "/dev/tty"
    try:
        flags = os.O_WRONLY | getattr(os, "O_NOCTTY", 0)
        fd = os.open(name, flags)
    except OSError:
        return None
    try:
        if sys.platform != "win32" and not os.isatty(fd):
            os.close(fd)
            return None
        return os.fdopen(fd, "w", encoding="utf-8", errors="replace")
    except OSError:
        with suppress(OSError):
            os.close(fd)
        return None
