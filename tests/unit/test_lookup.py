"""The chain, through injected fakes: scripted identity sources, a scripted network and feed
check, and the real cache on a private directory. No module global is patched: an Engine is
given its parts, as the backend gives it the real ones.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from artifacts_keyring_nofuss import devops, endpoints, exchange
from artifacts_keyring_nofuss.cache import Cache, Memory
from artifacts_keyring_nofuss.deadline import Deadline
from artifacts_keyring_nofuss.errors import AlreadySaid, NofussError, SourceError
from artifacts_keyring_nofuss.feeds import Feed, parse_feed_url
from artifacts_keyring_nofuss.http import Response
from artifacts_keyring_nofuss.identities import Prepared, Source, TokenRequest, Unavailable
from artifacts_keyring_nofuss.identities.given import GivenTokenSource, as_is
from artifacts_keyring_nofuss.lookup import Engine, Result
from artifacts_keyring_nofuss.settings import Settings
from artifacts_keyring_nofuss.store import REFUSAL_TTL, Store
from artifacts_keyring_nofuss.tokens import Token
from artifacts_keyring_nofuss.trace import APPLIED, NOT_HERE, SKIPPED

from .helpers import OTHER_TENANT, TENANT, USER_OID, app_jwt, feed, response, user_jwt

PAT = "4xqkz7hvb2mny6wpt3rdc5sjl8fgae9u0oi1qwertyuiopasdfgh"
LOGIN = "https://login.microsoftonline.com"
FEED = feed("https://pkgs.dev.azure.com/contoso/_packaging/shared/pypi/simple/")
UPLOAD = feed("https://pkgs.dev.azure.com/contoso/_packaging/shared/pypi/upload/")
TEAM = feed("https://pkgs.dev.azure.com/contoso/Project1/_packaging/team/pypi/simple/")
SERVICE = "https://vssps.dev.azure.com/contoso/"


# --- the fakes ----------------------------------------------------------------------------------


Answer = Token | Unavailable | SourceError


@dataclass
class FakeSource:
    """An identity source that answers from a script and counts how often it was asked.

    `answers` maps a feed's label to what it says for that feed ("*" for any); `identity`
    likewise, or a callable the test changes (az login as somebody else)."""

    answers: dict[str, Answer]
    identity: str | Callable[[], str | None] | None = None
    prepared: Unavailable | None = None
    asked: int = 0
    prepares: int = 0

    def _pick(self, request: TokenRequest) -> Answer:
        return self.answers.get(request.feed.label, self.answers.get("*", Unavailable("none")))

    def prepare(self, request: TokenRequest) -> Prepared | Unavailable:
        self.prepares += 1
        if self.prepared is not None:
            return self.prepared
        answer = self._pick(request)
        if isinstance(answer, Unavailable):
            return answer
        who = self.identity() if callable(self.identity) else self.identity
        return Prepared(who)

    def get_token(self, request: TokenRequest) -> Token | Unavailable:
        self.asked += 1
        answer = self._pick(request)
        if isinstance(answer, SourceError):
            raise answer
        return answer


@dataclass
class FakeNetwork:
    """The feed's 401 and the token service's answers, every request recorded."""

    refuse: set[str] = field(default_factory=set)  # bearers the token service refuses (401)
    discovery_status: int = 401
    built: int = 0
    gets: list[str] = field(default_factory=list)
    exchanges: list[tuple[str, str, str]] = field(default_factory=list)  # (url, scope, bearer)

    def factory(self, deadline: Deadline, env: Mapping[str, str]) -> FakeNetwork:
        self.built += 1
        return self

    def close(self) -> None:
        pass

    def get(self, url: str, bearer: str | None = None) -> Response:
        assert bearer is None
        self.gets.append(url)
        if self.discovery_status != 401:
            return response(self.discovery_status)
        return response(
            401,
            [
                ("WWW-Authenticate", f"Bearer authorization_uri={LOGIN}/{TENANT}"),
                ("X-VSS-ResourceTenant", TENANT),
                ("X-VSS-AuthorizationEndpoint", SERVICE),
            ],
        )

    def post_json(
        self, url: str, body: dict[str, Any], bearer: str, replay_safe: bool = False
    ) -> Response:
        assert endpoints.is_token_url(url)
        if bearer in self.refuse:
            return response(401, [], {"message": "refused"})
        self.exchanges.append((url, str(body["scope"]), bearer))
        return response(
            200,
            [("Content-Type", "application/json")],
            {
                "token": f"session-for-{bearer[-12:]}-{len(self.exchanges)}",
                "validTo": "2099-01-01T00:00:00Z",
            },
        )


@dataclass
class FakeProbe:
    verdict: bool | None = True
    asked: list[str] = field(default_factory=list)

    def __call__(
        self, target: Feed, token: str, env: Mapping[str, str], deadline: Deadline
    ) -> bool | None:
        self.asked.append(token)
        return self.verdict


@dataclass
class World:
    """One machine: a cache directory, a network, a feed check, and sources by name."""

    tmp: Path
    sources: dict[str, Source] = field(default_factory=dict)
    network: FakeNetwork = field(default_factory=FakeNetwork)
    probe: FakeProbe = field(default_factory=FakeProbe)
    env: dict[str, str] = field(default_factory=dict)

    def settings(self, order: str, **env: str) -> Settings:
        return Settings.load(
            {
                "HOME": str(self.tmp / "home"),
                "XDG_CACHE_HOME": str(self.tmp / "cache"),
                "XDG_CONFIG_HOME": str(self.tmp / "config"),
                "ARTIFACTS_KEYRING_NOFUSS_PROVIDER": order,
                **self.env,
                **env,
            }
        )

    def cache(self, memory: Memory, settings: Settings, deadline: Deadline) -> Cache:
        disk = Store(self.tmp / "cache" / "akn", deadline) if settings.cache else None
        return Cache(memory, disk)

    def engine(self) -> Engine:
        """A new process: a new memory, the same disk."""
        return Engine(
            load=self.sources.__getitem__,
            network=self.network.factory,
            probe=self.probe,
            cache=self.cache,
        )

    def disk(self) -> Store:
        return Store(self.tmp / "cache" / "akn", Deadline(30))


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def _user(
    oid: str = USER_OID, upn: str = "alice@contoso.com", identity: str | None = None
) -> Token:
    return Token.from_secret(user_jwt(oid=oid, upn=upn), "azure_cli", identity=identity)


def _alice() -> Token:
    """What az answers for alice: a token it vouches for as the signed-in account's."""
    return _user(identity="azure_cli:alice@contoso.com")


def _run(
    world: World, target: Feed, order: str, engine: Engine | None = None, **env: str
) -> Result:
    return (engine or world.engine()).run(target, world.settings(order, **env))


def _failure(world: World, target: Feed, order: str, **env: str) -> str:
    with pytest.raises(NofussError) as caught:
        world.engine().credential(target, world.settings(order, **env))
    return str(caught.value)


# --- settings and failures ---------------------------------------------------------------------


def test_an_unknown_provider_is_reported_before_any_network(world: World) -> None:
    message = _failure(world, FEED, "nope")
    assert message.startswith(f"no credential for {FEED.label}: unknown provider 'nope' in ")
    assert "ARTIFACTS_KEYRING_NOFUSS_PROVIDER" in message
    assert "azure_cli" in message  # the fix lists the names
    assert world.network.built == 0


def test_a_bad_setting_is_reported_with_its_fix(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARTIFACTS_KEYRING_NOFUSS_TIMEOUT", "soon")
    with pytest.raises(NofussError) as caught:
        world.engine().credential(FEED)  # the settings are read when the lookup starts
    assert str(caught.value) == (
        f"no credential for {FEED.label}: ARTIFACTS_KEYRING_NOFUSS_TIMEOUT='soon' is not a "
        "number; unset it or give one"
    )


def test_a_failure_is_said_once_per_feed_and_scope(world: World) -> None:
    world.sources["token"] = FakeSource({"*": Unavailable("not set")})
    engine = world.engine()
    with pytest.raises(NofussError) as first:
        engine.credential(FEED, world.settings("token"))
    assert not isinstance(first.value, AlreadySaid)
    with pytest.raises(AlreadySaid) as second:
        engine.credential(FEED, world.settings("token"))
    assert str(second.value) == str(first.value)
    # Publishing is another question, asked afresh.
    with pytest.raises(NofussError) as upload:
        engine.credential(UPLOAD, world.settings("token"))
    assert not isinstance(upload.value, AlreadySaid)


# --- tokens handed over -------------------------------------------------------------------------


def test_a_given_token_needs_no_discovery_and_no_exchange(world: World) -> None:
    first = FakeSource({"*": Unavailable("nothing here")})
    given = FakeSource({"*": as_is(PAT, "devops_pat", "AZURE_DEVOPS_EXT_PAT")})
    later = FakeSource({"*": _alice()}, identity="azure_cli:alice@contoso.com")
    world.sources.update(token=first, devops_pat=given, azure_cli=later)
    result = _run(world, FEED, "token,devops_pat,azure_cli")
    assert result.token is not None
    assert (result.token.secret, result.token.kind) == (PAT, devops.GIVEN)
    assert (first.asked, given.asked, later.asked, later.prepares) == (1, 1, 0, 0)
    assert world.network.built == 0
    assert world.disk().entries() == []


def test_the_real_given_token_source_answers_without_the_network(world: World) -> None:
    world.sources["token"] = GivenTokenSource()
    later = FakeSource({"*": Token.from_secret(app_jwt(), "azure_identity")}, identity="app")
    world.sources["azure_identity"] = later
    result = _run(world, FEED, "token,azure_identity", ARTIFACTS_KEYRING_NOFUSS_TOKEN=PAT)
    assert result.token is not None and result.token.secret == PAT
    assert (later.prepares, later.asked, world.network.built) == (0, 0, 0)


def test_an_expired_given_token_stops_the_chain(world: World) -> None:
    world.sources["token"] = GivenTokenSource()
    would_answer = FakeSource({"*": as_is(PAT, "devops_pat", "x")})
    signed_in = FakeSource({"*": Token.from_secret(app_jwt(), "azure_identity")}, identity="a")
    world.sources.update(devops_pat=would_answer, azure_identity=signed_in)
    message = _failure(
        world,
        FEED,
        "token,devops_pat,azure_identity",
        ARTIFACTS_KEYRING_NOFUSS_TOKEN=user_jwt(exp=1_000_000_000),
    )
    assert message == (
        f"no credential for {FEED.label}: token: the token in ARTIFACTS_KEYRING_NOFUSS_TOKEN "
        "expired at 2001-09-09 01:46:40Z; put a fresh one there or unset it"
    )
    assert (would_answer.asked, signed_in.asked, world.network.built) == (0, 0, 0)


# --- the one line ---------------------------------------------------------------------------------


def test_the_failure_lists_each_sources_reason_and_fix_in_order(world: World) -> None:
    world.sources.update(
        token=FakeSource({"*": Unavailable("token is not set")}),
        external_endpoints=FakeSource({"*": SourceError("endpoints file is empty", "fill it")}),
        access_token=FakeSource({"*": Unavailable("no prefix matches", present=True)}),
        feed_endpoints=FakeSource({"*": Unavailable("feed endpoints are not set")}),
        azure_cli=FakeSource({"*": SourceError("az refused", "run `az login`")}, identity="a:x"),
        github_actions=FakeSource(
            {"*": Token.from_secret(app_jwt(exp=1_000_000_000), "github_actions")}, identity="g"
        ),
        interactive=FakeSource(
            {"*": Unavailable("the sign-in expired", present=True, fix="run `ak-nofuss login`")}
        ),
    )
    message = _failure(
        world,
        FEED,
        "token,external_endpoints,access_token,feed_endpoints,azure_cli,github_actions,interactive",
    )
    assert message == (
        f"no credential for {FEED.label}: "
        "external_endpoints: endpoints file is empty; fill it; access_token: no prefix matches; "
        "azure_cli: az refused; run `az login`; github_actions: its token expired at "
        "2001-09-09 01:46:40Z; interactive: the sign-in expired; run `ak-nofuss login` "
        "(2 other sources do not apply here). ARTIFACTS_KEYRING_NOFUSS_DEBUG=1 shows each step"
    )
    assert world.network.gets == [FEED.url]  # one discovery, for the sources needing it
    assert world.network.exchanges == []


def test_one_other_source_is_counted_in_the_singular(world: World) -> None:
    world.sources.update(
        token=FakeSource({"*": Unavailable("token is not set")}),
        devops_pat=FakeSource({"*": SourceError("the PAT has a space")}),
    )
    assert _failure(world, FEED, "token,devops_pat") == (
        f"no credential for {FEED.label}: devops_pat: the PAT has a space "
        "(1 other source does not apply here). ARTIFACTS_KEYRING_NOFUSS_DEBUG=1 shows each step"
    )
    assert world.network.built == 0


def test_when_nothing_applies_the_failure_says_how_to_sign_in(world: World) -> None:
    world.sources.update(
        token=FakeSource({"*": Unavailable("token is not set")}),
        azure_cli=FakeSource({"*": Unavailable("az is not installed")}),
        interactive=FakeSource({"*": Unavailable("nobody signed in")}),
    )
    assert _failure(world, FEED, "token,azure_cli,interactive") == (
        f"no credential for {FEED.label}: nothing on this machine can sign in (none of "
        "the 3 identity sources applies): run `az login`, or `ak-nofuss login "
        f"{FEED.index_url}` without az; in CI, map SYSTEM_ACCESSTOKEN or use a workload "
        "identity. ARTIFACTS_KEYRING_NOFUSS_DEBUG=1 shows each step"
    )
    assert world.network.built == 0  # nothing applied: nothing to discover


def test_a_single_forced_source_always_says_why(world: World) -> None:
    world.sources["azure_cli"] = FakeSource({"*": Unavailable("az is not installed")})
    assert _failure(world, FEED, "azure_cli") == (
        f"no credential for {FEED.label}: azure_cli: az is not installed. "
        "ARTIFACTS_KEYRING_NOFUSS_DEBUG=1 shows each step"
    )


# --- user tokens, the exchange and the cache -----------------------------------------------------


def test_a_user_token_is_exchanged_once_and_kept_under_its_identity(world: World) -> None:
    bearer = _user()
    helper = FakeSource({"*": bearer})  # codespaces cannot name its identity up front
    world.sources["codespaces"] = helper
    first = _run(world, FEED, "codespaces").token
    assert first is not None and first.kind == devops.SESSION
    assert world.network.exchanges == [(SERVICE + exchange.API, "vso.packaging", bearer.secret)]
    (kept,) = world.disk().entries()
    assert (kept.token, kept.identity) == (first.secret, f"azure_cli:{TENANT}/{USER_OID}")

    # Another process: nothing in memory, the same disk.
    again = _run(world, FEED, "codespaces").token
    assert again is not None and again.secret == first.secret
    assert len(world.network.exchanges) == 1
    assert world.network.gets == [FEED.url]  # the discovery came from the disk too
    assert helper.asked == 2  # it cannot say who it is without being asked
    assert world.probe.asked == [first.secret]  # a token from disk is checked once


def test_the_warm_path_asks_no_source_and_no_network(world: World) -> None:
    az = FakeSource({"*": _alice()}, identity="azure_cli:alice@contoso.com")
    world.sources["azure_cli"] = az
    cold = _run(world, FEED, "azure_cli")
    assert cold.token is not None
    before = (world.network.built, len(world.network.gets), az.asked)
    warm = _run(world, FEED, "azure_cli")
    assert warm.token is not None and warm.token.secret == cold.token.secret
    assert (world.network.built, len(world.network.gets), az.asked) == before
    assert world.probe.asked == [cold.token.secret]
    steps = [(s.stage, s.outcome) for s in warm.trace.steps]
    assert steps == [("discovery", APPLIED), ("probe", APPLIED), ("cache", APPLIED)]


def test_a_cached_token_the_feed_refuses_is_replaced_in_the_same_lookup(world: World) -> None:
    world.sources["azure_cli"] = FakeSource({"*": _alice()}, identity="azure_cli:alice@contoso.com")
    cold = _run(world, FEED, "azure_cli").token
    world.probe.verdict = False
    fresh = _run(world, FEED, "azure_cli").token
    assert cold is not None and fresh is not None
    assert fresh.secret != cold.secret
    assert len(world.network.exchanges) == 2
    assert [e.token for e in world.disk().entries()] == [fresh.secret]


def test_a_feed_that_cannot_be_asked_keeps_the_cached_token(world: World) -> None:
    world.sources["azure_cli"] = FakeSource({"*": _alice()}, identity="azure_cli:alice@contoso.com")
    cold = _run(world, FEED, "azure_cli").token
    world.probe.verdict = None
    warm = _run(world, FEED, "azure_cli").token
    assert cold is not None and warm is not None and warm.secret == cold.secret
    assert len(world.network.exchanges) == 1


def test_reading_and_publishing_get_their_own_scopes(world: World) -> None:
    world.sources["azure_cli"] = FakeSource({"*": _alice()}, identity="azure_cli:alice@contoso.com")
    engine = world.engine()
    read = _run(world, FEED, "azure_cli", engine).token
    write = _run(world, UPLOAD, "azure_cli", engine).token
    assert read is not None and write is not None and read.secret != write.secret
    assert [e[1] for e in world.network.exchanges] == ["vso.packaging", "vso.packaging_write"]
    assert (read.scope, write.scope) == ("vso.packaging", "vso.packaging_write")


def test_a_second_feed_of_the_organisation_costs_nothing(world: World) -> None:
    az = FakeSource({"*": _alice()}, identity="azure_cli:alice@contoso.com")
    world.sources["azure_cli"] = az
    engine = world.engine()
    assert _run(world, FEED, "azure_cli", engine).token is not None
    assert _run(world, TEAM, "azure_cli", engine).token is not None
    assert (len(world.network.gets), len(world.network.exchanges), az.asked) == (1, 1, 1)


# --- one process, several identities (issue: every token under the key it was minted for) ---------


def test_two_feeds_mapped_to_two_identities_get_their_own_tokens(world: World) -> None:
    system = Token.from_secret(app_jwt(appid="system-mi"), "feed_endpoints", identity="fe:system")
    user_mi = Token.from_secret(app_jwt(appid="user-mi"), "feed_endpoints", identity="fe:user")
    endpoints_source = FakeSource(
        {FEED.label: system, TEAM.label: user_mi}, identity=None, prepared=None
    )

    def identity_for(request: TokenRequest) -> Prepared | Unavailable:
        endpoints_source.prepares += 1
        return Prepared({FEED.label: "fe:system", TEAM.label: "fe:user"}.get(request.feed.label))

    endpoints_source.prepare = identity_for  # type: ignore[method-assign]
    world.sources["feed_endpoints"] = endpoints_source
    engine = world.engine()
    first = _run(world, FEED, "feed_endpoints", engine).token
    second = _run(world, TEAM, "feed_endpoints", engine).token
    assert first is not None and second is not None
    assert (first.secret, second.secret) == (system.secret, user_mi.secret)
    assert endpoints_source.asked == 2  # the user-assigned identity was asked
    # and each is reused for its own feed only
    again = _run(world, TEAM, "feed_endpoints", engine).token
    assert again is not None and again.secret == user_mi.secret
    assert endpoints_source.asked == 2


def test_a_feed_without_an_entry_never_gets_another_feeds_token(world: World) -> None:
    system = Token.from_secret(app_jwt(), "feed_endpoints", identity="fe:system")
    world.sources["feed_endpoints"] = FakeSource(
        {FEED.label: system, "*": Unavailable("no entry for it", present=True)},
        identity="fe:system",
    )
    engine = world.engine()
    assert _run(world, FEED, "feed_endpoints", engine).token is not None
    other = _run(world, TEAM, "feed_endpoints", engine)
    assert other.token is None
    assert other.failure is not None and "no entry for it" in other.failure


def test_az_login_as_someone_else_in_a_long_lived_process(world: World) -> None:
    signed_in = ["azure_cli:alice@contoso.com"]
    alice = _user(USER_OID, "alice@contoso.com", "azure_cli:alice@contoso.com")
    bob_oid = "99999999-2222-3333-4444-555555555555"
    bob = _user(bob_oid, "bob@contoso.com", "azure_cli:bob@contoso.com")
    az = FakeSource({"*": alice}, identity=lambda: signed_in[0])
    world.sources["azure_cli"] = az
    engine = world.engine()
    first = _run(world, UPLOAD, "azure_cli", engine).token
    assert first is not None
    # `az login` as bob: the profile and az's answers change.
    signed_in[0] = "azure_cli:bob@contoso.com"
    az.answers["*"] = bob
    second = _run(world, UPLOAD, "azure_cli", engine).token
    assert second is not None and second.secret != first.secret
    assert [e[2] for e in world.network.exchanges] == [alice.secret, bob.secret]
    # On disk, bob's key holds bob's token, and a new process signed in as bob gets it.
    kept = {e.identity: e.token for e in world.disk().entries()}
    assert kept == {
        "azure_cli:alice@contoso.com": first.secret,
        "azure_cli:bob@contoso.com": second.secret,
    }
    later = _run(world, UPLOAD, "azure_cli").token
    assert later is not None and later.secret == second.secret


def test_a_token_that_vouches_for_another_identity_is_kept_under_that_one(world: World) -> None:
    """The profile said alice, but az answered for bob (az login raced the lookup)."""
    bob = _user("99999999-2222-3333-4444-555555555555", "bob@contoso.com", identity=None)
    world.sources["azure_cli"] = FakeSource({"*": bob}, identity="azure_cli:alice@contoso.com")
    token = _run(world, FEED, "azure_cli").token
    assert token is not None
    (kept,) = world.disk().entries()
    assert kept.identity == bob.identity != "azure_cli:alice@contoso.com"


def test_an_application_token_is_used_as_it_is_and_never_written(world: World) -> None:
    app = Token.from_secret(app_jwt(), "azure_identity", identity="azure_identity:x")
    source = FakeSource({"*": app}, identity="azure_identity:x")
    world.sources["azure_identity"] = source
    engine = world.engine()
    first = _run(world, FEED, "azure_identity", engine).token
    second = _run(world, UPLOAD, "azure_identity", engine).token
    assert first is not None and second is not None
    assert first.secret == second.secret == app.secret
    assert source.asked == 1  # kept in this process
    assert world.network.exchanges == []
    assert world.disk().entries() == []
    assert app.secret not in world.disk().path.read_text(encoding="utf-8")


def test_a_refused_bearer_moves_on_to_the_next_source(world: World) -> None:
    refused = _user(upn="old@contoso.com", identity="azure_cli:old@contoso.com")
    world.network.refuse.add(refused.secret)
    world.sources.update(
        azure_cli=FakeSource({"*": refused}, identity="azure_cli:old@contoso.com"),
        codespaces=FakeSource(
            {"*": Token.from_secret(user_jwt(upn="new@contoso.com"), "codespaces")}
        ),
    )
    result = _run(world, FEED, "azure_cli,codespaces")
    assert result.token is not None and result.token.source == "codespaces"
    assert [(s.stage, s.name, s.outcome) for s in result.trace.steps if s.stage != "discovery"] == [
        ("source", "azure_cli", APPLIED),
        ("exchange", "azure_cli", "refused"),
        ("source", "codespaces", APPLIED),
        ("exchange", "codespaces", APPLIED),
    ]


# --- hosts the user declared -----------------------------------------------------------------


def test_a_declared_host_gets_only_handed_over_tokens(world: World) -> None:
    az = FakeSource({"*": _alice()}, identity="azure_cli:alice@contoso.com")
    world.sources.update(token=FakeSource({"*": Unavailable("not set")}), azure_cli=az)
    env = {"ARTIFACTS_CREDENTIALPROVIDER_VSTS_HOSTS": "ads.example.com"}
    target = parse_feed_url(
        "https://ads.example.com/tfs/DefaultCollection/_packaging/feed/pypi/simple/",
        ("ads.example.com",),
    )
    assert target is not None and target.extra
    result = world.engine().run(target, world.settings("token,azure_cli", **env))
    assert result.token is None
    assert (az.prepares, az.asked, world.network.built) == (0, 0, 0)
    assert result.failure is not None
    assert "ARTIFACTS_CREDENTIALPROVIDER_VSTS_HOSTS" in result.failure
    assert [s.outcome for s in result.trace.sources()] == [NOT_HERE, SKIPPED]
    # A token handed over for it is what it gets.
    world.sources["token"] = FakeSource({"*": as_is(PAT, "token", "x")})
    given = world.engine().run(target, world.settings("token,azure_cli", **env))
    assert given.token is not None and given.token.secret == PAT


# --- discovery ---------------------------------------------------------------------------------


def test_a_failed_discovery_skips_what_needs_it_and_still_asks_the_rest(world: World) -> None:
    world.network.discovery_status = 200
    az = FakeSource({"*": _alice()}, identity="azure_cli:alice@contoso.com")
    world.sources.update(azure_cli=az, devops_pat=FakeSource({"*": as_is(PAT, "devops_pat", "x")}))
    result = _run(world, FEED, "azure_cli,devops_pat")
    assert result.token is not None and result.token.secret == PAT
    assert az.asked == 0
    failed = _run(world, FEED, "azure_cli")
    assert failed.failure == (
        f"no credential for {FEED.label}: pkgs.dev.azure.com answered 200 without Azure DevOps "
        "sign-in headers; check that the URL is an Azure Artifacts feed. "
        "ARTIFACTS_KEYRING_NOFUSS_DEBUG=1 shows each step"
    )


def test_a_stale_discovery_is_dropped_when_everything_failed(world: World) -> None:
    world.sources["azure_cli"] = FakeSource({"*": _alice()}, identity="azure_cli:alice@contoso.com")
    assert _run(world, FEED, "azure_cli").token is not None
    world.sources["azure_cli"] = FakeSource({"*": SourceError("wrong tenant")}, identity="x:y")
    assert _run(world, FEED, "azure_cli").token is None
    assert world.disk().discovery("pkgs.dev.azure.com", "contoso") is None


# --- the deadline --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "identity"),
    [
        ("azure_cli", "azure_cli:alice@contoso.com"),
        # The interactive source asking msal silently, with no prompt shown (none possible): a
        # stalled refresh is a hung network like any other, not a person at a prompt.
        ("interactive", "interactive:bob"),
    ],
)
def test_a_hanging_source_ends_within_the_deadline(world: World, name: str, identity: str) -> None:
    release = threading.Event()

    class Hanging:
        def prepare(self, request: TokenRequest) -> Prepared:
            return Prepared(identity)

        def get_token(self, request: TokenRequest) -> Token:
            release.wait(30)
            return _user()

    world.sources[name] = Hanging()
    started = time.monotonic()
    result = _run(world, FEED, name, ARTIFACTS_KEYRING_NOFUSS_TIMEOUT="1")
    release.set()
    assert time.monotonic() - started < 3
    assert result.failure is not None
    assert "did not finish within the lookup's 1 s" in result.failure
    assert "raise ARTIFACTS_KEYRING_NOFUSS_TIMEOUT" in result.failure


def test_a_source_at_a_prompt_extends_the_deadline_while_it_waits(world: World) -> None:
    class Prompting:
        def prepare(self, request: TokenRequest) -> Prepared:
            return Prepared("interactive:bob")

        def get_token(self, request: TokenRequest) -> Token:
            request.deadline.extend(3)  # a person is reading the device code
            time.sleep(1.5)
            return _user(identity="interactive:bob")

    world.sources["interactive"] = Prompting()
    result = _run(world, FEED, "interactive", ARTIFACTS_KEYRING_NOFUSS_TIMEOUT="1")
    assert result.failure is None
    assert result.token is not None


def test_the_trace_is_what_the_lookup_did(world: World) -> None:
    world.sources.update(
        token=FakeSource({"*": Unavailable("not set")}),
        azure_cli=FakeSource({"*": _alice()}, identity="azure_cli:alice@contoso.com"),
    )
    result = _run(world, FEED, "token,azure_cli")
    assert [(s.stage, s.name, s.outcome) for s in result.trace.steps] == [
        ("source", "token", NOT_HERE),
        ("discovery", "discovery", APPLIED),
        ("source", "azure_cli", APPLIED),
        ("exchange", "azure_cli", APPLIED),
    ]
    assert result.trace.asked() == ["token", "azure_cli"]


def test_a_refused_token_of_another_tenant_says_which_tenant_to_sign_in_to(world: World) -> None:
    other = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
    guest = Token.from_secret(user_jwt(tid=other), "azure_cli", identity="azure_cli:alice")
    world.network.refuse.add(guest.secret)
    world.sources["azure_cli"] = FakeSource({"*": guest}, identity="azure_cli:alice")
    failure = _run(world, FEED, "azure_cli").failure
    assert failure is not None
    assert f"`az login --tenant {TENANT}`" in failure


# --- Azure DevOps as it is now: organisations that mint no session token for users ----------------

POLICY_ERROR = {
    "$id": "1",
    "innerException": None,
    "message": "Personal access token creation is restricted by your organization's policy.",
    "typeName": "Microsoft.VisualStudio.Services.DelegatedAuthorization."
    "DisablePatCreationPolicyViolationException, Microsoft.VisualStudio.Services.WebApi",
    "typeKey": "DisablePatCreationPolicyViolationException",
    "errorCode": 0,
    "eventId": 3000,
}


@dataclass
class PolicyNetwork(FakeNetwork):
    """An organisation whose "Restrict personal access token creation" policy is on."""

    refused: int = 0
    status: int = 403

    def post_json(
        self, url: str, body: dict[str, Any], bearer: str, replay_safe: bool = False
    ) -> Response:
        self.refused += 1
        return response(self.status, [("Content-Type", "application/json")], POLICY_ERROR)


@pytest.fixture
def policy(world: World) -> PolicyNetwork:
    world.network = PolicyNetwork()
    world.sources["azure_cli"] = FakeSource({"*": _alice()}, identity="azure_cli:alice@contoso.com")
    return world.network


@pytest.mark.parametrize("status", [400, 403])
def test_a_policy_refusal_hands_out_the_entra_token_and_is_remembered(
    world: World, policy: PolicyNetwork, status: int
) -> None:
    policy.status = status
    first = _run(world, FEED, "azure_cli")
    assert first.token is not None
    assert (first.token.kind, first.token.secret) == (devops.USER, _alice().secret)
    assert policy.refused == 1  # one refusal, not a retry without validTo
    said = [s for s in first.trace.steps if s.stage == "exchange"]
    assert len(said) == 1 and "DisablePatCreationPolicyViolation" in said[0].what
    assert "Entra token" in said[0].what
    # Another process: the refusal is remembered on disk, the Entra token is not.
    again = _run(world, FEED, "azure_cli")
    assert again.token is not None and again.token.kind == devops.USER
    assert policy.refused == 1
    assert _alice().secret not in world.disk().path.read_text(encoding="utf-8")
    assert world.disk().refusals()[0][:2] == ("contoso", "DisablePatCreationPolicyViolation")


@pytest.mark.parametrize("where", ["this process", "another process"])
def test_a_refusal_is_forgotten_after_its_time_in_a_long_lived_process(
    world: World, policy: PolicyNetwork, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """12 hours, then the token service is asked again (the policy may have been lifted),
    whether this process heard the refusal or read it from the disk."""
    if where == "another process":
        assert _run(world, FEED, "azure_cli").token is not None
    engine = world.engine()
    assert _run(world, FEED, "azure_cli", engine).token is not None
    assert policy.refused == 1
    later = time.time() + REFUSAL_TTL + 60
    monkeypatch.setattr(time, "time", lambda: later)
    again = _run(world, FEED, "azure_cli", engine).token
    assert again is not None and again.kind == devops.USER
    assert policy.refused == 2


def test_with_session_tokens_chosen_a_policy_refusal_fails_saying_what_to_set(
    world: World, policy: PolicyNetwork
) -> None:
    failure = _run(world, FEED, "azure_cli", ARTIFACTS_KEYRING_NOFUSS_USER_TOKEN="session").failure
    assert failure is not None
    assert "does not let users mint session tokens" in failure
    assert "ARTIFACTS_KEYRING_NOFUSS_USER_TOKEN=auto" in failure
    assert world.disk().refusals() == []


@pytest.mark.parametrize(
    "setting",
    [
        {"ARTIFACTS_KEYRING_NOFUSS_USER_TOKEN": "entra"},
        {"ARTIFACTS_CREDENTIALPROVIDER_RETURN_ENTRA_TOKENS": "true"},
    ],
)
def test_entra_tokens_always_means_no_exchange(world: World, setting: dict[str, str]) -> None:
    world.sources["azure_cli"] = FakeSource({"*": _alice()}, identity="azure_cli:alice@contoso.com")
    world.env.update(setting)
    result = _run(world, UPLOAD, "azure_cli")
    assert result.token is not None and result.token.kind == devops.USER
    assert world.network.exchanges == []
    (step,) = [s for s in result.trace.steps if s.stage == "exchange"]
    assert "not asked" in step.what and next(iter(setting)) in step.what


def test_a_narrow_token_is_handed_out_as_it_is(world: World) -> None:
    narrow = replace(
        Token.from_secret(user_jwt(scp="vso.packaging"), "interactive", identity="interactive:x"),
        scope=f"{devops.RESOURCE}/vso.packaging",
    )
    world.sources["interactive"] = FakeSource({"*": narrow}, identity="interactive:x")
    result = _run(world, FEED, "interactive")
    assert result.token is not None and result.token.secret == narrow.secret
    assert world.network.exchanges == []


def test_other_exchange_failures_keep_their_meaning(world: World) -> None:
    """A 401 is a refused bearer (the next source), not a policy: nothing is remembered."""
    refused = _alice()
    world.network.refuse.add(refused.secret)
    world.sources["azure_cli"] = FakeSource({"*": refused}, identity="azure_cli:alice@contoso.com")
    result = _run(world, FEED, "azure_cli")
    assert result.token is None
    assert world.disk().refusals() == []


# --- a token service that names no organisation (app.vssps) serves every tenant -------------------

GLOBAL_SERVICE = "https://app.vssps.visualstudio.com/"
LEGACY_CONTOSO = feed("https://contoso.pkgs.visualstudio.com/_packaging/shared/pypi/simple/")
LEGACY_FABRIKAM = feed("https://fabrikam.pkgs.visualstudio.com/_packaging/shared/pypi/simple/")
TENANTS = {LEGACY_CONTOSO.host: TENANT, LEGACY_FABRIKAM.host: OTHER_TENANT}


@dataclass
class GlobalServiceNetwork(FakeNetwork):
    """Two organisations in two tenants whose feeds both point at app.vssps, which mints from
    whichever tenant's bearer it is given; `policy_tenants`: tenants whose policy refuses."""

    policy_tenants: set[str] = field(default_factory=set)

    def get(self, url: str, bearer: str | None = None) -> Response:
        self.gets.append(url)
        tenant = next(t for host, t in TENANTS.items() if f"//{host}/" in url)
        return response(
            401,
            [
                ("WWW-Authenticate", f"Bearer authorization_uri={LOGIN}/{tenant}"),
                ("X-VSS-ResourceTenant", tenant),
                ("X-VSS-AuthorizationEndpoint", GLOBAL_SERVICE),
            ],
        )

    def post_json(
        self, url: str, body: dict[str, Any], bearer: str, replay_safe: bool = False
    ) -> Response:
        tid = Token.from_secret(bearer, "x").identity.split(":", 1)[1].split("/")[0]
        if tid in self.policy_tenants:
            return response(403, [("Content-Type", "application/json")], POLICY_ERROR)
        return super().post_json(url, body, bearer, replay_safe)


def _alice_in(tenant: str) -> Token:
    """az's token for alice in `tenant` (a guest in the other): the same account, vouched for
    by the same profile, whatever the tenant."""
    return Token.from_secret(
        user_jwt(tid=tenant), "azure_cli", identity="azure_cli:alice@contoso.com"
    )


@pytest.fixture
def two_tenants(world: World) -> GlobalServiceNetwork:
    world.network = GlobalServiceNetwork()
    world.sources["azure_cli"] = FakeSource(
        {LEGACY_CONTOSO.label: _alice_in(TENANT), LEGACY_FABRIKAM.label: _alice_in(OTHER_TENANT)},
        identity="azure_cli:alice@contoso.com",
    )
    return world.network


def test_a_session_from_a_global_token_service_stays_with_its_tenant(
    world: World, two_tenants: GlobalServiceNetwork
) -> None:
    engine = world.engine()
    contoso = _run(world, LEGACY_CONTOSO, "azure_cli", engine).token
    fabrikam = _run(world, LEGACY_FABRIKAM, "azure_cli", engine).token
    assert contoso is not None and fabrikam is not None
    # fabrikam's token is minted from fabrikam's tenant's bearer, not contoso's handed on
    assert [e[2] for e in two_tenants.exchanges] == [
        _alice_in(TENANT).secret,
        _alice_in(OTHER_TENANT).secret,
    ]
    assert fabrikam.secret != contoso.secret
    # and each is found again for its own organisation, in this process and the next
    for engine_now in (engine, world.engine()):
        again = _run(world, LEGACY_CONTOSO, "azure_cli", engine_now).token
        assert again is not None and again.secret == contoso.secret
    assert len(two_tenants.exchanges) == 2


def test_a_policy_refusal_in_one_tenant_is_not_remembered_for_another(
    world: World, two_tenants: GlobalServiceNetwork
) -> None:
    two_tenants.policy_tenants.add(TENANT)
    engine = world.engine()
    contoso = _run(world, LEGACY_CONTOSO, "azure_cli", engine).token
    assert contoso is not None and contoso.kind == devops.USER  # refused: the Entra token
    for engine_now in (engine, world.engine()):
        fabrikam = _run(world, LEGACY_FABRIKAM, "azure_cli", engine_now).token
        # fabrikam's tenant never refused: its lookup asks, and gets a session token
        assert fabrikam is not None and fabrikam.kind == devops.SESSION
    assert [e[2] for e in two_tenants.exchanges] == [_alice_in(OTHER_TENANT).secret]
