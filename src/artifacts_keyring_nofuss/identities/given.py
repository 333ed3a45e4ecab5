"""Credentials somebody already minted and handed us: our own variables and Docker build
secrets, the official provider's pipeline variables, Azure Pipelines' `System.AccessToken`, the
az devops extension's PAT.

They are used as they are, whatever their kind (Entra token, PAT, pipeline token): a PAT is
never sent to the exchange as a bearer, and a token somebody chose on purpose is not swapped for
another one. None of these needs discovery or the network, so they are asked first and cost
nothing when unset.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import unquote, urlsplit

from artifacts_keyring_nofuss import devops
from artifacts_keyring_nofuss import log as _log
from artifacts_keyring_nofuss.errors import FinalSourceError, SourceError
from artifacts_keyring_nofuss.feeds import Feed, match_host, prefix_match, same_feed
from artifacts_keyring_nofuss.identities import Prepared, TokenRequest, Unavailable
from artifacts_keyring_nofuss.tokens import Token, describe_time

TOKEN_VAR = "ARTIFACTS_KEYRING_NOFUSS_TOKEN"  # noqa: S105 - a name
TOKEN_FILE_VAR = "ARTIFACTS_KEYRING_NOFUSS_TOKEN_FILE"  # noqa: S105 - a name
# `docker build --secret id=artifacts_keyring_nofuss_token,...` mounts the secret here for a
# `RUN --mount=type=secret,id=...` step.
SECRETS_DIR = Path("/run/secrets")
SECRET_IDS = ("artifacts_keyring_nofuss_token", "ARTIFACTS_KEYRING_NOFUSS_TOKEN")

EXTERNAL_ENDPOINTS_VARS = (
    "ARTIFACTS_CREDENTIALPROVIDER_EXTERNAL_FEED_ENDPOINTS",
    "VSS_NUGET_EXTERNAL_FEED_ENDPOINTS",
)
ACCESS_TOKEN_VARS = ("ARTIFACTS_CREDENTIALPROVIDER_ACCESSTOKEN", "VSS_NUGET_ACCESSTOKEN")
URI_PREFIXES_VARS = ("ARTIFACTS_CREDENTIALPROVIDER_URI_PREFIXES", "VSS_NUGET_URI_PREFIXES")
PIPELINE_TOKEN_VAR = "SYSTEM_ACCESSTOKEN"  # noqa: S105 - a name
COLLECTION_URI_VAR = "SYSTEM_TEAMFOUNDATIONCOLLECTIONURI"
DEVOPS_PAT_VAR = "AZURE_DEVOPS_EXT_PAT"

MAX_TOKEN_LENGTH = 16 * 1024
MAX_ENDPOINTS_LENGTH = 1024 * 1024


class GivenTokenExpired(FinalSourceError):
    """A token the user handed us has expired: reported, never replaced by another identity."""


def checked(secret: str, where: str) -> str:
    """The token as it will be sent, or SourceError saying what is wrong with `where`."""
    secret = secret.strip()
    if not secret:
        raise SourceError(f"{where} is empty", "put the token there, or unset it")
    if len(secret) > MAX_TOKEN_LENGTH:
        raise SourceError(f"{where} is too long to be a token", "put the token there, or unset it")
    if any(ch.isspace() or not ch.isprintable() for ch in secret) or not secret.isascii():
        raise SourceError(
            f"{where} does not look like a token (spaces or control characters)",
            "put the token alone there, or unset it",
        )
    return secret


def as_is(secret: str, source: str, where: str) -> Token:
    """A Token that is handed out unchanged; an expired JWT is an error with its expiry."""
    token = Token.from_secret(checked(secret, where), source)
    if token.expired():
        raise GivenTokenExpired(
            f"the token in {where} expired at {describe_time(token.expires_on)}",
            "put a fresh one there or unset it",
        )
    who = token.who if token.who != "an opaque token" else f"the token in {where}"
    return Token(
        secret=token.secret,
        expires_on=token.expires_on,
        user=token.user,
        identity=token.identity,
        who=who,
        source=source,
        kind=devops.GIVEN,
    )


def read_token_file(path: Path, where: str) -> str | None:
    """A small regular file's text; None when it does not exist. Never blocks on a FIFO."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SourceError(f"cannot read {where}: {exc.strerror}", "check the file") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise SourceError(f"{where} is not a regular file", "write the token to a file")
        data = os.read(fd, MAX_TOKEN_LENGTH + 1)
    except OSError as exc:
        raise SourceError(f"cannot read {where}: {exc.strerror}", "check the file") from None
    finally:
        os.close(fd)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise SourceError(f"{where} is not text", "write the token to it as text") from None


def _first_set(env: Mapping[str, str], names: tuple[str, ...]) -> tuple[str, str] | None:
    for name in names:
        value = env.get(name)
        if value is not None and value.strip():
            return name, value
    return None


class _Given:
    def prepare(self, request: TokenRequest) -> Prepared:
        return Prepared()  # nothing to look up first: the token is already here


class GivenTokenSource(_Given):
    """ARTIFACTS_KEYRING_NOFUSS_TOKEN, ..._TOKEN_FILE, or a Docker build secret."""

    name = "token"

    def get_token(self, request: TokenRequest) -> Token | Unavailable:
        env = request.settings.env
        value = env.get(TOKEN_VAR)
        if value is not None and value.strip():
            return as_is(value, self.name, TOKEN_VAR)
        path = env.get(TOKEN_FILE_VAR, "").strip()
        if path:
            where = f"{TOKEN_FILE_VAR} ({path})"
            if not Path(path).is_absolute():
                raise SourceError(f"{where} must be an absolute path", "give the file's full path")
            text = read_token_file(Path(path), where)
            if text is None:
                raise SourceError(f"{where} does not exist", "write the token there, or unset it")
            return as_is(text, self.name, where)
        for secret_id in SECRET_IDS:
            candidate = SECRETS_DIR / secret_id
            text = read_token_file(candidate, str(candidate))
            if text is not None:
                return as_is(text, self.name, str(candidate))
        return Unavailable(
            f"neither {TOKEN_VAR}, {TOKEN_FILE_VAR} nor {SECRETS_DIR / SECRET_IDS[0]} is set"
        )


_warned: set[str] = set()


def _warn_once(message: str, *args: object) -> None:
    key = message % args
    if key not in _warned:
        _warned.add(key)
        _log.warn("%s", key)


def endpoint_credentials(text: str, where: str) -> list[dict[str, object]]:
    """The usable entries of an `{"endpointCredentials": [...]}` document; each malformed entry
    (or a malformed document) is skipped with one warning, never failing the others."""
    if len(text) > MAX_ENDPOINTS_LENGTH:
        _warn_once("%s is too large; ignoring it", where)
        return []
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):
        _warn_once('%s is not valid JSON; expected {"endpointCredentials": [...]}', where)
        return []
    entries = document.get("endpointCredentials") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        _warn_once('%s has no "endpointCredentials" list; ignoring it', where)
        return []
    usable: list[dict[str, object]] = []
    for number, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict):
            _warn_once("%s entry %d is not an object; skipping it", where, number)
            continue
        endpoint = entry.get("endpoint")
        if not isinstance(endpoint, str) or not endpoint.strip():
            _warn_once('%s entry %d has no "endpoint" URL; skipping it', where, number)
            continue
        usable.append({"number": number, **entry})
    return usable


class ExternalEndpointsSource(_Given):
    """The official provider's per-feed PATs, matched by feed so that uv's URLs match too."""

    name = "external_endpoints"

    def get_token(self, request: TokenRequest) -> Token | Unavailable:
        found = _first_set(request.settings.env, EXTERNAL_ENDPOINTS_VARS)
        if found is None:
            return Unavailable(f"{EXTERNAL_ENDPOINTS_VARS[0]} is not set")
        var, text = found
        for entry in endpoint_credentials(text, var):
            endpoint = str(entry["endpoint"])
            if not same_feed(endpoint, request.feed):
                continue
            password = entry.get("password")
            username = entry.get("username")
            if not isinstance(password, str) or not password.strip():
                _warn_once('%s entry %d has no "password"; skipping it', var, entry["number"])
                continue
            if username is not None and not isinstance(username, str):
                _warn_once(
                    '%s entry %d has a "username" that is not text; skipping it',
                    var,
                    entry["number"],
                )
                continue
            return as_is(password, self.name, f"{var} entry {entry['number']} ({endpoint})")
        return Unavailable(f"{var} has no entry for {request.feed.label}", present=True)


class AccessTokenSource(_Given):
    """The official provider's pipeline token for URLs under the given prefixes."""

    name = "access_token"

    def get_token(self, request: TokenRequest) -> Token | Unavailable:
        found = _first_set(request.settings.env, ACCESS_TOKEN_VARS)
        if found is None:
            return Unavailable(f"{ACCESS_TOKEN_VARS[0]} is not set")
        var, secret = found
        prefixes = _first_set(request.settings.env, URI_PREFIXES_VARS)
        if prefixes is None:
            return Unavailable(f"{var} is set but {URI_PREFIXES_VARS[0]} is not", present=True)
        prefix_var, text = prefixes
        for prefix in (p.strip() for p in text.split(";")):
            if prefix and (prefix_match(prefix, request.feed) or same_feed(prefix, request.feed)):
                return as_is(secret, self.name, var)
        return Unavailable(f"no prefix in {prefix_var} matches {request.feed.url}", present=True)


def collection_org(uri: str, feed: Feed) -> bool:
    """Is `feed` in the organisation (or on-premises collection) of this collection URI?"""
    try:
        parts = urlsplit(uri.strip())
        host = (parts.hostname or "").lower()
    except ValueError:
        return False
    if parts.scheme.lower() != "https" or not host:
        return False
    segments = [unquote(s).lower() for s in parts.path.split("/") if s]
    if match_host(feed.host.split(":")[0]) is not None:
        if host == "dev.azure.com" and segments:
            return segments[0] == feed.org
        if host.endswith(".visualstudio.com") and host.count(".") == 2:
            return host.split(".")[0] == feed.org
        return False
    # Azure DevOps Server: the feed's host, and the collection path standing for the org.
    return host == feed.host.split(":")[0] and "/".join(segments) == feed.org


class PipelineSource(_Given):
    """Azure Pipelines' `$(System.AccessToken)`, when a job maps it, for its own organisation."""

    name = "pipeline"

    def get_token(self, request: TokenRequest) -> Token | Unavailable:
        env = request.settings.env
        secret = env.get(PIPELINE_TOKEN_VAR, "")
        if not secret.strip():
            return Unavailable(f"{PIPELINE_TOKEN_VAR} is not set (not a pipeline job mapping it)")
        collection = env.get(COLLECTION_URI_VAR, "").strip()
        if not collection:
            return Unavailable(
                f"{PIPELINE_TOKEN_VAR} is set but {COLLECTION_URI_VAR} is not", present=True
            )
        if not collection_org(collection, request.feed):
            return Unavailable(
                f"the pipeline's token is for {collection}, not organisation {request.feed.org}",
                present=True,
            )
        return as_is(secret, self.name, PIPELINE_TOKEN_VAR)


class DevopsPatSource(_Given):
    """The PAT the az devops extension (and keyrings.artifacts) read."""

    name = "devops_pat"

    def get_token(self, request: TokenRequest) -> Token | Unavailable:
        secret = request.settings.env.get(DEVOPS_PAT_VAR, "")
        if not secret.strip():
            return Unavailable(f"{DEVOPS_PAT_VAR} is not set")
        return as_is(secret, self.name, DEVOPS_PAT_VAR)
