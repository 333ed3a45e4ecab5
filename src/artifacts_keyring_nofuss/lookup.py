"""The flow for one feed: discovery -> identity sources -> exchange -> cache -> credential.

Imported only once a service string is known to be an Azure Artifacts URL.

Warm path: the organisation's discovery and a session token for the signed-in identity are on
disk, and the feed still accepts the token: no subprocess, no exchange, one HEAD request.
Cold path: under a per-key lock across processes (parallel lookups mint one token), discover,
ask the identity sources in order, exchange a user token, and keep the session token.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from . import config, discovery, endpoints, exchange, identities, store
from . import log as _log
from .cache import MemoryCache
from .deadline import Deadline
from .errors import AlreadySaid, BearerRefused, FinalSourceError, NofussError, SourceError
from .feeds import Feed
from .tokens import REFRESH_MARGIN, Token, describe_time

if TYPE_CHECKING:
    from .http import Http

_cache = MemoryCache()
_lock = threading.Lock()


def credential(feed: Feed) -> Token:
    """The token to present for `feed`, or NofussError with a message that says what to do."""
    with _lock:
        failure_key = (feed.host, feed.org, feed.scope)
        earlier = _cache.recent_failure(failure_key)
        if earlier is not None:
            raise AlreadySaid(earlier)
        try:
            return _Lookup(feed).run()
        except NofussError as exc:
            message = f"no credential for {feed.label}: {exc}"
            _cache.remember_failure(failure_key, message)
            raise NofussError(message) from None


class _Lookup:
    def __init__(self, feed: Feed) -> None:
        self.feed = feed
        forced, where = config.provider_setting()
        self.names = identities.chain(forced, where)
        self.disk = store.open_store()
        # Sources load on first use: a warm lookup imports only the ones it asks.
        self._loaded: dict[str, identities.Source] = {}
        # Tokens handed over, up to the first source that needs discovery, are asked before
        # it (and before the cache); after that the chain goes in its order, a forced one too.
        lead = next((i for i, n in enumerate(self.names) if n not in identities.GIVEN), None)
        self.given = list(self.names if lead is None else self.names[:lead])
        self.signed_in = [] if lead is None else list(self.names[lead:])
        # Who the first source that knows it would answer as, without asking it for a token:
        # the key under which a session token may already be waiting. (The other sources never
        # know it up front: application tokens are not cached, and the rest are keyed by the
        # token they return.)
        self.identity: str | None = None
        self.identity_source = ""
        for name in self.signed_in:
            if name in identities.KNOWS_IDENTITY:
                self.identity = self.source(name).cache_identity()
                if self.identity is not None:
                    self.identity_source = name
                    break
        self.deadline = Deadline(config.deadline_seconds())
        # What each source said: the ones that applied (or are set up here) go into the one
        # line a user sees; the others are counted, and listed in debug output.
        self.attempts: list[str] = []
        self.not_here: list[str] = []

    def source(self, name: str) -> identities.Source:
        if name not in self._loaded:
            self._loaded[name] = identities.load(name)
        return self._loaded[name]

    def run(self) -> Token:
        feed = self.feed
        _log.debug(
            "%s is Azure Artifacts: organisation %s, project %s, feed %s%s, scope %s",
            feed.url,
            feed.org,
            feed.project or "(none)",
            feed.feed,
            f", view {feed.view}" if feed.view else "",
            feed.scope,
        )
        _log.debug("sources, in order: %s", ", ".join(self.names))
        request = identities.TokenRequest(feed=feed, tenant=None, deadline=self.deadline)
        for name in self.given:
            token = self._ask(name, self.source(name), request)
            if token is not None:
                return token
        if not self.signed_in:
            raise self._nothing_worked()
        warm = self._warm()
        if warm is not None:
            return warm
        if self.disk is None or self.identity is None:
            return self._cold()
        lock_name = f"{feed.host}/{feed.org}\n{feed.scope}\n{self.identity}"
        with self.disk.locked(lock_name, timeout=self.deadline.remaining()):
            # Another process may have minted it while this one waited for the lock.
            found = self._known_discovery()
            if found is not None:
                waiting = self._from_disk(found, self.identity, self.identity_source, probe=False)
                if waiting is not None:
                    return waiting
            return self._cold()

    def _nothing_worked(self) -> NofussError:
        if self.attempts:
            said = "; ".join(self.attempts)
            if self.not_here:
                others = len(self.not_here)
                said += (
                    f" ({others} other source{'s do' if others != 1 else ' does'} not apply here)"
                )
        else:
            said = (
                f"nothing on this machine can sign in (none of the {len(self.not_here)} "
                f"identity sources applies): run `az login`, or `ak-nofuss login "
                f"{self.feed.index_url}` without az; in CI, map SYSTEM_ACCESSTOKEN or use a "
                "workload identity"
            )
        return NofussError(f"{said}. {_log.DEBUG_VAR}=1 shows each step")

    # --- warm -------------------------------------------------------------------------------

    def _warm(self) -> Token | None:
        found = self._known_discovery()
        if found is None or self.identity is None:
            return None
        key = (found.authorization_endpoint, self.feed.scope, self.identity)
        cached = _cache.fresh_session(key)
        if cached is not None:
            _log.debug("cache: session token for %s from this process", cached.who)
            return cached
        return self._from_disk(found, self.identity, self.identity_source, probe=True)

    def _from_disk(
        self, found: discovery.Discovery, identity: str, source: str, probe: bool
    ) -> Token | None:
        if self.disk is None:
            return None
        key = store.session_key(found.authorization_endpoint, self.feed.scope, identity)
        entry = self.disk.session(key, margin=REFRESH_MARGIN)
        if entry is None:
            _log.debug("cache: no usable %s session token on disk", self.feed.scope)
            return None
        if probe:
            from .probe import still_accepted

            if still_accepted(self.feed, entry.token) is False:
                _log.debug("cache: the feed refused the cached token; getting a fresh one")
                self.disk.drop_session(key)
                return None
        token = Token(
            secret=entry.token,
            expires_on=entry.expires_on,
            user=True,
            identity=identity,
            who=entry.who,
            source=source,
        )
        _cache.sessions[(found.authorization_endpoint, self.feed.scope, identity)] = token
        _log.debug(
            "cache: session token for %s, valid until %s",
            entry.who,
            describe_time(entry.expires_on),
        )
        return token

    def _known_discovery(self) -> discovery.Discovery | None:
        key = (self.feed.host, self.feed.org)
        found = _cache.discoveries.get(key)
        if found is not None or self.disk is None:
            return found
        values = self.disk.discovery(*key)
        if values is None:
            return None
        try:
            # Validated when it was stored; validated again, since it comes from a file.
            token_service = endpoints.authorization_endpoint(values["token_service"], self.feed.org)
            authority, tenant = endpoints.login_authority(values["authority"])
        except endpoints.UntrustedEndpoint as exc:
            _log.debug("cache: ignoring the stored discovery for %s: %s", self.feed.org, exc)
            return None
        found = discovery.Discovery(
            tenant=values["tenant"] if tenant is None else tenant,
            authority=authority,
            authorization_endpoint=token_service,
        )
        if found.tenant is not None and not endpoints.valid_tenant(found.tenant):
            return None
        _cache.discoveries[key] = found
        _log.debug("discovery for %s: from the cache", self.feed.org)
        return found

    # --- cold -------------------------------------------------------------------------------

    def _cold(self) -> Token:
        from .http import Http

        http = Http(self.deadline)
        try:
            found = self._known_discovery()
            fresh_discovery = found is None
            if found is None:
                found = discovery.discover(self.feed, http)
                _cache.discoveries[(self.feed.host, self.feed.org)] = found
                if self.disk is not None:
                    keep_discovery(self.disk, self.feed, found)
            request = identities.TokenRequest(
                feed=self.feed, tenant=found.tenant, deadline=self.deadline
            )
            for name in self.signed_in:
                token = self._ask(name, self.source(name), request, found, http)
                if token is not None:
                    return token
        finally:
            http.close()
        if not fresh_discovery and self.disk is not None:
            # A stale discovery (an organisation that moved tenant) must not keep failing.
            self.disk.drop_discovery(self.feed.host, self.feed.org)
            _cache.discoveries.pop((self.feed.host, self.feed.org), None)
        raise self._nothing_worked()

    def _ask(
        self,
        name: str,
        source: identities.Source,
        request: identities.TokenRequest,
        found: discovery.Discovery | None = None,
        http: Http | None = None,
    ) -> Token | None:
        """One source's answer: a token to hand out, or None (its reason kept in attempts)."""
        bearer_key = (name, request.tenant)
        bearer = _cache.fresh_bearer(bearer_key)
        if bearer is None:
            prompts = bool(getattr(source, "prompts", False))
            if prompts:
                # A person at a sign-in prompt is not a hung network.
                self.deadline.extend(config.device_flow_timeout() + self.deadline.seconds)
            try:
                if source.needs_discovery:
                    got = self.deadline.run(name, lambda: source.get_token(request))
                else:  # reads the environment and a file at most: no thread needed
                    got = source.get_token(request)
            except FinalSourceError as exc:
                # Somebody chose this token on purpose: say so, never quietly use another.
                raise NofussError(f"{name}: {exc}") from None
            except SourceError as exc:
                _log.debug("%s: failed: %s", name, exc)
                self.attempts.append(f"{name}: {exc}")
                return None
            if prompts:
                self.deadline.extend(self.deadline.seconds)
            if isinstance(got, identities.Unavailable):
                _log.debug("%s: does not apply: %s", name, got.reason)
                if got.present or len(self.names) == 1:
                    self.attempts.append(f"{name}: {got.reason}")
                else:
                    self.not_here.append(name)
                return None
            bearer = got
            if bearer.expired():
                self.attempts.append(
                    f"{name}: its token expired at {describe_time(bearer.expires_on)}"
                )
                return None
            if not bearer.as_is:
                _cache.bearers[bearer_key] = bearer
        _log.debug(
            "%s: applies: token for %s (%s token, expires %s)",
            name,
            bearer.who,
            "a handed-over" if bearer.as_is else "user" if bearer.user else "application",
            describe_time(bearer.expires_on),
        )
        if bearer.as_is or not bearer.user:
            # Tokens handed to us, and application tokens (no user to narrow down), are what
            # Azure DevOps takes as they are. They are not kept on disk.
            return bearer
        if found is None or http is None:
            raise NofussError(f"{name}: a user token needs the feed's discovery")  # never: given
        return self._exchange(name, source, bearer, bearer_key, found, http)

    def _exchange(
        self,
        name: str,
        source: identities.Source,
        bearer: Token,
        bearer_key: tuple[str, str | None],
        found: discovery.Discovery,
        http: Http,
    ) -> Token | None:
        # The identity read when the lookup began; read no file twice. A source that cannot
        # say who it is before it answers is keyed by the token's own claims.
        if name == self.identity_source and self.identity is not None:
            identity = self.identity
        else:
            identity = session_identity(name, source, bearer)
        session_key = (found.authorization_endpoint, self.feed.scope, identity)
        session = _cache.fresh_session(session_key)
        if session is not None:
            _log.debug("exchange: cached %s session token for %s", self.feed.scope, bearer.who)
            return session
        if name != self.identity_source:
            waiting = self._from_disk(found, identity, name, probe=True)
            if waiting is not None:
                return waiting
        try:
            session = exchange.session_token(
                http, self.feed, found, bearer, config.session_minutes()
            )
        except BearerRefused as exc:
            _log.debug("%s: %s", name, exc)
            self.attempts.append(f"{name}: {exc}")
            _cache.bearers.pop(bearer_key, None)
            return None
        _cache.sessions[session_key] = session
        if self.disk is not None:
            keep(self.disk, found, self.feed, identity, session)
        return session


def keep_discovery(disk: store.Store, feed: Feed, found: discovery.Discovery) -> None:
    disk.put_discovery(
        feed.host,
        feed.org,
        {
            "tenant": found.tenant,
            "authority": found.authority,
            "token_service": found.authorization_endpoint,
        },
    )


def session_identity(name: str, source: identities.Source, bearer: Token) -> str:
    """The cache key's identity: what the source says up front, else the token's own claims."""
    return source.cache_identity() or f"{name}:{bearer.identity}"


def keep(
    disk: store.Store, found: discovery.Discovery, feed: Feed, identity: str, session: Token
) -> None:
    """Put a session token on disk, under the key the warm path looks for."""
    if session.expires_on is None:
        return
    disk.put_session(
        store.session_key(found.authorization_endpoint, feed.scope, identity),
        store.Entry(
            token=session.secret,
            expires_on=session.expires_on,
            org=feed.org,
            scope=feed.scope,
            identity=identity,
            who=session.who,
        ),
    )
