"""The flow for one feed: discovery -> identity sources -> exchange -> credential.

Imported only once a service string is known to be an Azure Artifacts URL.
"""

from __future__ import annotations

import threading
from datetime import datetime, timezone

from . import config, discovery, exchange, identities
from . import log as _log
from .cache import MemoryCache
from .errors import BearerRefused, NofussError, SourceError
from .feeds import Feed
from .http import Http
from .tokens import Token

_cache = MemoryCache()
_lock = threading.Lock()


def credential(feed: Feed) -> Token:
    """The token to present for `feed`, or NofussError with a message that says what to do."""
    with _lock:
        failure_key = (feed.host, feed.org, feed.scope)
        earlier = _cache.recent_failure(failure_key)
        if earlier is not None:
            raise NofussError(earlier)
        try:
            return _credential(feed)
        except NofussError as exc:
            message = f"no credential for {feed.label}: {exc}"
            _cache.remember_failure(failure_key, message)
            raise NofussError(message) from None


def _credential(feed: Feed) -> Token:
    _log.debug(
        "%s is Azure Artifacts: organisation %s, project %s, feed %s%s, scope %s",
        feed.url,
        feed.org,
        feed.project or "(none)",
        feed.feed,
        f", view {feed.view}" if feed.view else "",
        feed.scope,
    )
    forced, where = config.provider_setting()
    names = identities.chain(forced, where)
    http = Http()
    try:
        found = _discovery(feed, http)
        request = identities.TokenRequest(feed=feed, tenant=found.tenant)
        attempts: list[str] = []
        for name in names:
            token = _from_source(name, request, feed, found, http, attempts)
            if token is not None:
                return token
    finally:
        http.close()
    hint = "sign in with `az login`" if "azure_cli" in names else "check the identity settings"
    raise NofussError(f"{'; '.join(attempts)}. Then {hint}; {_log.DEBUG_VAR}=1 shows each step")


def _discovery(feed: Feed, http: Http) -> discovery.Discovery:
    key = (feed.host, feed.org)
    found = _cache.discoveries.get(key)
    if found is not None:
        _log.debug("discovery for %s: cached in this process", feed.org)
        return found
    found = discovery.discover(feed, http)
    _cache.discoveries[key] = found
    return found


def _from_source(
    name: str,
    request: identities.TokenRequest,
    feed: Feed,
    found: discovery.Discovery,
    http: Http,
    attempts: list[str],
) -> Token | None:
    bearer_key = (name, request.tenant)
    bearer = _cache.fresh_bearer(bearer_key)
    if bearer is None:
        try:
            got = identities.load(name).get_token(request)
        except SourceError as exc:
            _log.debug("%s: failed: %s", name, exc)
            attempts.append(f"{name}: {exc}")
            return None
        if isinstance(got, identities.Unavailable):
            _log.debug("%s: does not apply: %s", name, got.reason)
            attempts.append(f"{name}: {got.reason}")
            return None
        bearer = got
        if bearer.expired():
            attempts.append(f"{name}: its token expired at {_when(bearer.expires_on)}")
            return None
        _cache.bearers[bearer_key] = bearer
    _log.debug(
        "%s: token for %s (%s token, expires %s)",
        name,
        bearer.who,
        "user" if bearer.user else "application",
        _when(bearer.expires_on),
    )
    if not bearer.user:
        # Application tokens carry no user to narrow down; Azure DevOps takes them as they are.
        return bearer
    session_key = (found.authorization_endpoint, feed.scope, bearer.identity)
    session = _cache.fresh_session(session_key)
    if session is not None:
        _log.debug("exchange: cached %s session token for %s", feed.scope, bearer.who)
        return session
    try:
        session = exchange.session_token(http, feed, found, bearer, config.session_minutes())
    except BearerRefused as exc:
        _log.debug("%s: %s", name, exc)
        attempts.append(f"{name}: {exc}")
        _cache.bearers.pop(bearer_key, None)
        return None
    _cache.sessions[session_key] = session
    return session


def _when(stamp: float | None) -> str:
    if stamp is None:
        return "(not stated)"
    return datetime.fromtimestamp(stamp, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
