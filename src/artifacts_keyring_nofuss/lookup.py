"""The one chain: a feed -> discovery -> identity sources, in order -> exchange -> cache, and the
trace of every step. The backend, `ak-nofuss token` and `ak-nofuss doctor` all run it; doctor
renders the trace instead of repeating the logic.

Imported only once a service string is known to be an Azure Artifacts URL.

Warm path: the organisation's discovery and a session token for the identity the first
applicable source would answer as are on disk, and the feed still accepts the token: no
subprocess, no exchange, one HEAD request. Cold path: under a per-key lock across processes
(parallel lookups mint one token), discover, ask the source, exchange a user token, keep the
session token.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, NamedTuple

from . import claims, devops, discovery, identities
from . import log as _log
from . import trace as _trace
from .cache import Cache, Memory
from .deadline import Deadline
from .errors import AlreadySaid, BearerRefused, FinalSourceError, NofussError, SourceError
from .feeds import Feed
from .keys import Key
from .settings import AUTO, ENTRA, SESSION, USER_TOKEN_VAR, Settings
from .tokens import Token, describe_time
from .trace import Trace

if TYPE_CHECKING:
    from .http import Network

EXTRA_HOSTS_SETTING = "ARTIFACTS_CREDENTIALPROVIDER_VSTS_HOSTS"
# What to do about a broad Entra token handed out where session tokens are refused.
LEAST_PRIVILEGE = (
    "it can do all the user may do in Azure DevOps: for tokens that can only read packages, "
    "ask an administrator for a packaging-only client (ARTIFACTS_KEYRING_NOFUSS_CLIENT_ID, see "
    "the README's User tokens)"
)
_KIND_NAMES = {
    devops.GIVEN: "a handed-over token",
    devops.USER: "a user token",
    devops.APPLICATION: "an application token",
    devops.SESSION: "a session token",
}


NetworkFactory = Callable[[Deadline, Mapping[str, str]], "Network"]
# (feed, token, environment, deadline) -> True accepted, False refused, None could not tell
Probe = Callable[[Feed, str, Mapping[str, str], Deadline], "bool | None"]
CacheFactory = Callable[[Memory, Settings, Deadline], Cache]


def _http(deadline: Deadline, env: Mapping[str, str]) -> Network:
    from .http import Http

    return Http(deadline, env)


def _probe(feed: Feed, token: str, env: Mapping[str, str], deadline: Deadline) -> bool | None:
    from .probe import still_accepted

    return still_accepted(feed, token, env, deadline)


def _cache(memory: Memory, settings: Settings, deadline: Deadline) -> Cache:
    return Cache.open(memory, settings.cache, deadline)


class Result(NamedTuple):
    token: Token | None
    trace: Trace
    failure: str | None  # the one line, when there is no token


class Engine:
    """A process's lookups: the state they share (what it has learnt, failures already said),
    and the parts a test may replace. A backend instance owns one."""

    def __init__(
        self,
        load: Callable[[str], identities.Source] = identities.load,
        network: NetworkFactory = _http,
        probe: Probe = _probe,
        cache: CacheFactory = _cache,
    ) -> None:
        self.memory = Memory()
        self.load = load
        self.network = network
        self.probe = probe
        self.open_cache = cache
        self._lock = threading.Lock()

    def credential(self, feed: Feed, settings: Settings | None = None) -> Token:
        """The token to present for `feed`; NofussError with the one line otherwise."""
        with self._lock:
            earlier = self.memory.recent_failure(feed)
            if earlier is not None:
                raise AlreadySaid(earlier)
            result = self._run(feed, settings)
            if result.token is not None:
                return result.token
            message = result.failure or f"no credential for {feed.label}"
            self.memory.remember_failure(feed, message)
            raise NofussError(message)

    def run(self, feed: Feed, settings: Settings | None = None) -> Result:
        """The token (or the failure line) and the trace of how: what doctor shows."""
        with self._lock:
            return self._run(feed, settings)

    def _run(self, feed: Feed, settings: Settings | None) -> Result:
        trace = Trace()
        try:
            chosen = Settings.load() if settings is None else settings
        except NofussError as exc:
            trace.add(_trace.SETTINGS, _trace.SETTINGS, _trace.STOPPED, exc.what, exc.fix)
            return Result(None, trace, _trace.failure_line(trace, feed.label, feed.index_url))
        lookup = _Lookup(self, feed, chosen, trace)
        try:
            token = lookup.run()
        except NofussError as exc:
            trace.add(lookup.stage, lookup.current, _trace.STOPPED, exc.what, exc.fix)
            token = None
        finally:
            lookup.close()
        if token is not None:
            return Result(token, trace, None)
        return Result(None, trace, _trace.failure_line(trace, feed.label, feed.index_url))


class _Lookup:
    def __init__(self, engine: Engine, feed: Feed, settings: Settings, trace: Trace) -> None:
        self.engine = engine
        self.feed = feed
        self.settings = settings
        self.trace = trace
        self.deadline = Deadline(settings.deadline)
        self.cache = engine.open_cache(engine.memory, settings, self.deadline)
        self.found: discovery.Discovery | None = None
        self.fresh_discovery = False
        self.discovery_failed = False
        self._network: Network | None = None
        self.names: tuple[str, ...] = ()
        # Where the lookup is, for a failure that stops it.
        self.stage = _trace.SETTINGS
        self.current = _trace.SETTINGS

    def close(self) -> None:
        if self._network is not None:
            self._network.close()

    @property
    def network(self) -> Network:
        if self._network is None:
            self._network = self.engine.network(self.deadline, self.settings.env)
        return self._network

    def run(self) -> Token | None:
        feed = self.feed
        _log.debug(
            "%s is Azure Artifacts: organisation %s, project %s, feed %s%s, scope %s%s",
            feed.url,
            feed.org,
            feed.project or "(none)",
            feed.feed,
            f", view {feed.view}" if feed.view else "",
            feed.scope,
            f" (a host declared in {EXTRA_HOSTS_SETTING})" if feed.extra else "",
        )
        self.names = identities.chain(self.settings.provider, self.settings.provider_where)
        _log.debug("sources, in order: %s", ", ".join(self.names))
        for name in self.names:
            self.stage, self.current = _trace.SOURCE, name
            token = self._from(identities.SPECS[name])
            if token is not None:
                return token
        if self.found is not None and not self.fresh_discovery:
            # A stale discovery (an organisation that moved tenant) must not keep failing.
            self.cache.drop_discovery(feed)
        return None

    # --- one source ---------------------------------------------------------------------------

    def _request(self) -> identities.TokenRequest:
        tenant = self.found.tenant if self.found is not None else None
        return identities.TokenRequest(self.feed, tenant, self.deadline, self.settings)

    def _from(self, spec: identities.Spec) -> Token | None:
        add = self.trace.add
        if not spec.needs_discovery:
            return self._ask(spec, self.engine.load(spec.name))
        if self.feed.extra:
            add(
                _trace.SOURCE,
                spec.name,
                _trace.SKIPPED,
                f"{self.feed.host} is a host declared in {EXTRA_HOSTS_SETTING}: it is given "
                "only tokens handed over, never one minted from this machine's sign-in",
                "hand over a PAT for it (ARTIFACTS_CREDENTIALPROVIDER_EXTERNAL_FEED_ENDPOINTS "
                "or ARTIFACTS_KEYRING_NOFUSS_TOKEN)",
            )
            return None
        if self.discovery_failed:
            add(_trace.SOURCE, spec.name, _trace.SKIPPED, "needs the discovery that failed")
            return None
        source = self.engine.load(spec.name)
        try:
            prepared = source.prepare(self._request())
        except SourceError as exc:
            add(_trace.SOURCE, spec.name, _trace.FAILED, exc.what, exc.fix)
            return None
        if isinstance(prepared, identities.Unavailable):
            self._unavailable(spec.name, prepared)
            return None
        identity = prepared.identity if spec.knows_identity else None
        if identity is None:
            found = self._discovery()
            if found is None:
                add(_trace.SOURCE, spec.name, _trace.SKIPPED, "needs the discovery that failed")
                return None
            return self._obtain(spec, source, found)
        known = self._discovery(network=False)
        if known is not None:
            waiting = self._reuse(spec.name, identity, prepared.scope, known, probe=True)
            if waiting is not None:
                return waiting
            if not self._will_mint(known, identity):
                return self._obtain(spec, source, known)
        # Parallel cold lookups (uv asks for many files at once) wait here while one of them
        # discovers and mints; half of what is left, for a stuck lock costs time, never the
        # install.
        with self.cache.locked(
            Key.minting(self.feed, identity), self.deadline.remaining() / 2
        ) as held:
            found = self._discovery()
            if found is None:
                add(_trace.SOURCE, spec.name, _trace.SKIPPED, "needs the discovery that failed")
                return None
            if held:
                # Another process may have minted it while this one waited for the lock.
                waiting = self._reuse(spec.name, identity, prepared.scope, found, probe=False)
                if waiting is not None:
                    return waiting
            return self._obtain(spec, source, found)

    def _unavailable(self, name: str, got: identities.Unavailable) -> None:
        outcome = _trace.UNAVAILABLE if got.present else _trace.NOT_HERE
        if not got.present and self.names == (name,):
            outcome = _trace.UNAVAILABLE  # the one source somebody forced: always say why
        self.trace.add(_trace.SOURCE, name, outcome, got.reason, got.fix)

    def _reuse(
        self, name: str, identity: str, scope: str, found: discovery.Discovery, probe: bool
    ) -> Token | None:
        """A credential this identity already has: a session token (this process's, or one on
        disk that the feed still takes), an application token, or a user token to exchange."""
        session_key = Key.expect(found, devops.SESSION, self.feed.scope, identity)
        held = self.cache.token(session_key)
        if held is not None:
            token = held.token
            where = "on disk" if held.from_disk else "in this process"
            if held.from_disk and probe and not self._still_accepted(session_key, token):
                return None
            if held.from_disk:
                self.cache.remember(session_key, token)
            self.trace.add(
                _trace.CACHE,
                name,
                _trace.APPLIED,
                f"{self.feed.scope} session token for {token.who} from the cache ({where}), "
                f"valid until {describe_time(token.expires_on)}",
                kind=devops.SESSION,
                who=token.who,
            )
            return token
        for kind in (devops.APPLICATION, devops.USER):
            held = self.cache.token(Key.expect(found, kind, scope, identity))
            if held is None:
                continue
            token = held.token
            self.trace.add(
                _trace.CACHE,
                name,
                _trace.APPLIED,
                f"{_KIND_NAMES[kind]} for {token.who} from this process, expires "
                f"{describe_time(token.expires_on)}",
                kind=kind,
                who=token.who,
            )
            if kind == devops.APPLICATION:
                return token
            return self._user_token(name, token, found)
        return None

    def _still_accepted(self, key: Key, token: Token) -> bool:
        self.stage, stage_name = _trace.PROBE, self.current
        verdict = self.engine.probe(self.feed, token.secret, self.settings.env, self.deadline)
        self.stage = _trace.SOURCE
        if verdict is False:
            self.trace.add(
                _trace.PROBE,
                stage_name,
                _trace.REFUSED,
                f"the feed refused the cached session token of {token.who}; getting a fresh one",
            )
            self.cache.drop(key)
            return False
        self.trace.add(
            _trace.PROBE,
            stage_name,
            _trace.APPLIED if verdict else _trace.INFO,
            "the feed accepted the cached session token"
            if verdict
            else "the feed could not be asked; handing the cached session token out as it is",
        )
        return True

    def _obtain(
        self, spec: identities.Spec, source: identities.Source, found: discovery.Discovery
    ) -> Token | None:
        token = self._ask(spec, source)
        if token is None:
            return None
        if token.kind == devops.USER:
            self.cache.keep(token, found, self.feed)  # this process only: never on disk
            return self._user_token(spec.name, token, found)
        self.cache.keep(token, found, self.feed)
        return token

    def _will_mint(self, found: discovery.Discovery, identity: str) -> bool:
        """Would a user token of this identity be exchanged for a session token? Not when the
        settings say Entra tokens, nor when the organisation refused before (then there is no
        session token to wait for, and no lock to take)."""
        mode = self.settings.user_token
        if mode == ENTRA:
            return False
        return mode == SESSION or self.cache.refusal(found, identity) is None

    def _user_token(self, name: str, bearer: Token, found: discovery.Discovery) -> Token | None:
        """What a user's Entra token becomes: a session token, or the token itself (asked for
        with a narrow scope already; the settings say so; the organisation refuses session
        tokens)."""
        if bearer.scope not in (None, devops.DEFAULT_SCOPE):
            self.trace.add(
                _trace.EXCHANGE,
                name,
                _trace.INFO,
                f"not needed: the token is scoped to {bearer.scope} already; handed out as it is",
            )
            return bearer
        mode = self.settings.user_token
        if mode == ENTRA:
            self.trace.add(
                _trace.EXCHANGE,
                name,
                _trace.INFO,
                f"not asked: {self.settings.user_token_where or USER_TOKEN_VAR} says Entra "
                "tokens; the user's Entra token is handed out as it is",
            )
            return bearer
        if mode == AUTO:
            policy = self.cache.refusal(found, bearer.identity)
            if policy is not None:
                self.trace.add(
                    _trace.EXCHANGE,
                    name,
                    _trace.FELL_BACK,
                    f"not asked: organisation {self.feed.org!r} refused session tokens for "
                    f"{bearer.who} (policy {policy!r}, remembered); the user's Entra token is "
                    "handed out as it is",
                    LEAST_PRIVILEGE,
                )
                return bearer
        return self._exchange(name, bearer, found)

    def _ask(self, spec: identities.Spec, source: identities.Source) -> Token | None:
        """One source's answer: a token, or None (its reason in the trace)."""
        name = spec.name
        request = self._request()
        # A source that puts a prompt in front of a person extends the deadline itself, and
        # only then: a silent sign-in that hangs is a hung network like any other.
        try:
            if spec.needs_discovery:
                got = self.deadline.run(name, lambda: source.get_token(request))
            else:  # reads the environment and a file at most: no thread needed
                got = source.get_token(request)
        except FinalSourceError:
            raise  # somebody chose this token on purpose: say so, never quietly use another
        except SourceError as exc:
            self.trace.add(_trace.SOURCE, name, _trace.FAILED, exc.what, exc.fix)
            return None
        if isinstance(got, identities.Unavailable):
            self._unavailable(name, got)
            return None
        if got.expired():
            self.trace.add(
                _trace.SOURCE,
                name,
                _trace.EXPIRED,
                f"its token expired at {describe_time(got.expires_on)}",
            )
            return None
        self.trace.add(
            _trace.SOURCE,
            name,
            _trace.APPLIED,
            f"token for {got.who} ({_KIND_NAMES[got.kind]}, expires "
            f"{describe_time(got.expires_on)})",
            kind=got.kind,
            who=got.who,
        )
        return got

    # --- discovery and exchange ---------------------------------------------------------------

    def _discovery(self, network: bool = True) -> discovery.Discovery | None:
        """The organisation's discovery: known, from the cache, or (unless `network` is False)
        from the feed's anonymous answer."""
        if self.found is not None or self.discovery_failed:
            return self.found
        stage, name = self.stage, self.current
        self.stage = self.current = _trace.DISCOVERY
        found = self.cache.discovery(self.feed)
        if found is not None:
            self.found = found
            self._say_discovery(found, "from the cache")
        elif not network:
            found = None
        else:
            try:
                found = discovery.discover(self.feed, self.network)
            except NofussError as exc:
                self.discovery_failed = True
                self.trace.add(_trace.DISCOVERY, _trace.DISCOVERY, _trace.FAILED, exc.what, exc.fix)
                self.stage, self.current = stage, name
                return None
            self.found, self.fresh_discovery = found, True
            self.cache.keep_discovery(self.feed, found)
            self._say_discovery(found, "asked the feed")
        self.stage, self.current = stage, name
        return found

    def _say_discovery(self, found: discovery.Discovery, how: str) -> None:
        self.trace.add(
            _trace.DISCOVERY,
            _trace.DISCOVERY,
            _trace.APPLIED,
            f"{how}: tenant {found.tenant or '(not named: personal accounts)'}, sign-in at "
            f"{found.authority}, token service {found.authorization_endpoint}",
        )

    def _exchange(self, name: str, bearer: Token, found: discovery.Discovery) -> Token | None:
        # The identity the token vouched for may already have a session waiting (a source
        # that could not name its identity up front).
        key = Key.expect(found, devops.SESSION, self.feed.scope, bearer.identity)
        held = self.cache.token(key)
        if held is not None and (not held.from_disk or self._still_accepted(key, held.token)):
            self.trace.add(
                _trace.CACHE,
                name,
                _trace.APPLIED,
                f"{self.feed.scope} session token for {held.token.who} from the cache",
                kind=devops.SESSION,
                who=held.token.who,
            )
            if held.from_disk:
                self.cache.remember(key, held.token)
            return held.token
        from . import exchange  # the cold path only: a warm lookup never mints

        self.stage = _trace.EXCHANGE
        try:
            session = exchange.session_token(
                self.network, self.feed, found, bearer, self.settings.session_minutes
            )
        except exchange.PolicyRefused as exc:
            if self.settings.user_token != AUTO:
                raise NofussError(
                    exc.what,
                    f"set {USER_TOKEN_VAR}=auto (or entra) to hand out the user's Entra token "
                    "where session tokens are refused",
                ) from None
            self.cache.remember_refusal(found, bearer.identity, exc.policy, self.feed)
            self.trace.add(
                _trace.EXCHANGE,
                name,
                _trace.FELL_BACK,
                f"{exc.what}: the user's Entra token is handed out as it is (Azure Artifacts "
                "takes it); remembered, so later lookups do not ask",
                LEAST_PRIVILEGE,
            )
            self.stage = _trace.SOURCE
            return bearer
        except BearerRefused as exc:
            self.trace.add(
                _trace.EXCHANGE,
                name,
                _trace.REFUSED,
                exc.what,
                _tenant_fix(bearer, found) or exc.fix,
            )
            self.cache.drop(Key.of(bearer, found))
            self.stage = _trace.SOURCE
            return None
        self.stage = _trace.SOURCE
        self.cache.keep(session, found, self.feed)
        self.trace.add(
            _trace.EXCHANGE,
            name,
            _trace.APPLIED,
            f"{self.feed.scope} session token for {session.who}, valid until "
            f"{describe_time(session.expires_on)}",
            kind=devops.SESSION,
            who=session.who,
        )
        return session


def _tenant_fix(bearer: Token, found: discovery.Discovery) -> str | None:
    """When a refused user token is of another tenant than the organisation's, the fix is to
    sign in to that tenant (the usual cause: az signed in to the home tenant)."""
    tid = claims.tenant(claims.read_claims(bearer.secret))
    if tid is None or found.tenant is None or tid.lower() == found.tenant.lower():
        return None
    return (
        f"the organisation is in tenant {found.tenant}, the token of tenant {tid}: sign in to "
        f"that tenant (`az login --tenant {found.tenant}`, or `ak-nofuss login URL`)"
    )
