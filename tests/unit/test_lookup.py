"""lookup.credential, exercised without any network: every path here fails before or at the
first connection (a bad setting, or a proxy on a closed local port)."""

from __future__ import annotations

import socket
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from artifacts_keyring_nofuss import endpoints, exchange, identities, lookup, store
from artifacts_keyring_nofuss import http as http_module
from artifacts_keyring_nofuss.cache import MemoryCache
from artifacts_keyring_nofuss.errors import NofussError, SourceError
from artifacts_keyring_nofuss.feeds import Feed
from artifacts_keyring_nofuss.http import Response
from artifacts_keyring_nofuss.identities import Unavailable
from artifacts_keyring_nofuss.identities.given import GivenTokenSource, as_is
from artifacts_keyring_nofuss.tokens import Token

from .helpers import TENANT, USER_OID, app_jwt, feed, response, user_jwt

PAT = "4xqkz7hvb2mny6wpt3rdc5sjl8fgae9u0oi1qwertyuiopasdfgh"


def _fresh_feed(kind: str = "simple") -> Feed:
    # lookup keeps a per-process memory of failures: every test gets an organisation of its own.
    org = "org" + uuid.uuid4().hex[:12]
    return feed(f"https://pkgs.dev.azure.com/{org}/_packaging/feed/pypi/{kind}/")


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def dead_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every request goes to a local proxy port where nothing listens: refused at once."""
    proxy = f"http://127.0.0.1:{_closed_port()}"
    for name in ("HTTPS_PROXY", "https_proxy"):
        monkeypatch.setenv(name, proxy)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)


def test_an_unknown_provider_is_reported_with_the_feed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARTIFACTS_KEYRING_NOFUSS_PROVIDER", "nope")
    target = _fresh_feed()
    with pytest.raises(NofussError) as caught:
        lookup.credential(target)
    message = str(caught.value)
    assert message.startswith(f"no credential for {target.label}: ")
    assert "'nope'" in message
    assert "ARTIFACTS_KEYRING_NOFUSS_PROVIDER" in message
    assert "azure_cli" in message


def test_a_failure_is_remembered_for_the_same_feed_and_scope(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ARTIFACTS_KEYRING_NOFUSS_PROVIDER", "nope")
    target = _fresh_feed()
    with pytest.raises(NofussError) as first:
        lookup.credential(target)
    monkeypatch.setenv("ARTIFACTS_KEYRING_NOFUSS_PROVIDER", "still-wrong")
    with pytest.raises(NofussError) as second:
        lookup.credential(target)
    assert str(second.value) == str(first.value)  # one failure, not one per call
    assert "still-wrong" not in str(second.value)


def test_a_remembered_failure_is_not_wrapped_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARTIFACTS_KEYRING_NOFUSS_PROVIDER", "nope")
    target = _fresh_feed()
    for _ in range(3):
        with pytest.raises(NofussError) as caught:
            lookup.credential(target)
        assert str(caught.value).count("no credential for") == 1


def test_a_failure_for_reading_does_not_block_publishing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARTIFACTS_KEYRING_NOFUSS_PROVIDER", "nope")
    read = _fresh_feed("simple")
    with pytest.raises(NofussError):
        lookup.credential(read)
    upload = Feed(
        url=read.url.replace("/simple/", "/upload/"),
        host=read.host,
        org=read.org,
        project=None,
        feed=read.feed,
        view=None,
        write=True,
    )
    monkeypatch.setenv("ARTIFACTS_KEYRING_NOFUSS_PROVIDER", "other")
    with pytest.raises(NofussError, match="'other'"):
        lookup.credential(upload)


@pytest.mark.usefixtures("dead_proxy")
def test_an_unreachable_network_is_a_clear_message() -> None:
    target = _fresh_feed()
    with pytest.raises(NofussError) as caught:
        lookup.credential(target)
    message = str(caught.value)
    assert message.startswith(f"no credential for {target.label}: ")
    assert "pkgs.dev.azure.com" in message
    assert "HTTPS_PROXY" in message


# --- the chain, with the identity registry holding scripted sources --------------------------


# The sources that need no discovery: tokens handed over, asked before anything else.
GIVEN = ("token", "external_endpoints", "access_token", "pipeline", "devops_pat")


@dataclass
class FakeSource:
    """An identity source that answers from a script and counts how often it was asked; it
    stands in for the registered source of the same name."""

    name: str
    answer: Token | Unavailable | SourceError
    identity: str | None = None
    asked: int = 0

    @property
    def needs_discovery(self) -> bool:
        return self.name not in GIVEN

    def cache_identity(self) -> str | None:
        return self.identity

    def get_token(self, request: object) -> Token | Unavailable:
        self.asked += 1
        if isinstance(self.answer, SourceError):
            raise self.answer
        return self.answer


@dataclass
class FakeNetwork:
    """http.Http's interface: the feed's 401 and the token service's answer, all recorded."""

    feed: Feed
    opened: int = 0
    probes: list[str] = field(default_factory=list)
    exchanges: list[tuple[str, str]] = field(default_factory=list)

    def http(self, deadline: object) -> FakeNetwork:
        self.opened += 1
        return self

    def close(self) -> None:
        pass

    def get(self, url: str, bearer: str | None = None) -> Response:
        self.probes.append(url)
        assert bearer is None
        return response(
            401,
            [
                ("WWW-Authenticate", f"Bearer authorization_uri={LOGIN}/{TENANT}"),
                ("X-VSS-ResourceTenant", TENANT),
                ("X-VSS-AuthorizationEndpoint", f"https://vssps.dev.azure.com/{self.feed.org}/"),
            ],
        )

    def post_json(self, url: str, body: dict[str, Any], bearer: str) -> Response:
        assert endpoints.is_token_url(url)
        self.exchanges.append((url, bearer))
        return response(
            200,
            [("Content-Type", "application/json")],
            {"token": f"session-token-{len(self.exchanges)}", "validTo": "2099-01-01T00:00:00Z"},
        )


LOGIN = "https://login.microsoftonline.com"


@pytest.fixture
def network(monkeypatch: pytest.MonkeyPatch) -> FakeNetwork:
    """A fresh memory, and a scripted network for a feed of its own."""
    monkeypatch.setattr(lookup, "_cache", MemoryCache())
    fake = FakeNetwork(_fresh_feed())
    monkeypatch.setattr(http_module, "Http", fake.http)
    return fake


def _chain(monkeypatch: pytest.MonkeyPatch, *sources: identities.Source) -> None:
    table = {source.name: source for source in sources}
    monkeypatch.setattr(identities, "load", table.__getitem__)
    monkeypatch.setattr(identities, "DEFAULT_ORDER", tuple(table))
    # The lookup plans from the registry's metadata, without loading the sources.
    given = frozenset(name for name, source in table.items() if not source.needs_discovery)
    monkeypatch.setattr(identities, "GIVEN", given)
    monkeypatch.setattr(identities, "KNOWS_IDENTITY", frozenset(table) - given)


def _given(name: str, secret: str = PAT) -> Token:
    return as_is(secret, name, f"the {name} variable")


def test_a_given_token_needs_no_discovery_and_no_exchange(
    monkeypatch: pytest.MonkeyPatch, network: FakeNetwork
) -> None:
    first = FakeSource("token", Unavailable("nothing here"))
    given = FakeSource("devops_pat", _given("devops_pat"))
    later = FakeSource("azure_cli", Token.from_secret(user_jwt(), "azure_cli"), "azure_cli:x")
    _chain(monkeypatch, first, given, later)
    token = lookup.credential(network.feed)
    assert token.secret == PAT
    assert token.source == "devops_pat"
    assert (first.asked, given.asked, later.asked) == (1, 1, 0)
    assert network.opened == 0  # no discovery, no exchange: Http never constructed
    assert store.Store(_cache_dir()).entries() == []


def test_the_real_given_token_source_answers_without_the_network(
    monkeypatch: pytest.MonkeyPatch, network: FakeNetwork
) -> None:
    monkeypatch.setenv("ARTIFACTS_KEYRING_NOFUSS_TOKEN", PAT)
    later = FakeSource("azure_identity", Token.from_secret(app_jwt(), "azure_identity"))
    _chain(monkeypatch, GivenTokenSource(), later)
    assert lookup.credential(network.feed).secret == PAT
    assert later.asked == 0
    assert network.opened == 0


def test_an_expired_given_token_stops_the_chain(
    monkeypatch: pytest.MonkeyPatch, network: FakeNetwork
) -> None:
    monkeypatch.setenv("ARTIFACTS_KEYRING_NOFUSS_TOKEN", user_jwt(exp=1_000_000_000))
    would_answer = FakeSource("devops_pat", _given("devops_pat"))
    signed_in = FakeSource("azure_identity", Token.from_secret(app_jwt(), "azure_identity"))
    _chain(monkeypatch, GivenTokenSource(), would_answer, signed_in)
    with pytest.raises(NofussError) as caught:
        lookup.credential(network.feed)
    assert str(caught.value) == (
        f"no credential for {network.feed.label}: token: the token in "
        "ARTIFACTS_KEYRING_NOFUSS_TOKEN expired at 2001-09-09 01:46:40Z; "
        "put a fresh one there or unset it"
    )
    assert (would_answer.asked, signed_in.asked) == (0, 0)
    assert network.opened == 0


def test_the_failure_lists_each_sources_reason_in_order(
    monkeypatch: pytest.MonkeyPatch, network: FakeNetwork
) -> None:
    _chain(
        monkeypatch,
        FakeSource("token", Unavailable("token is not set")),
        FakeSource("external_endpoints", SourceError("endpoints file is empty")),
        FakeSource("access_token", Unavailable("no prefix matches", present=True)),
        FakeSource("feed_endpoints", Unavailable("feed endpoints are not set")),
        FakeSource("azure_cli", SourceError("az refused")),
        FakeSource("github_actions", Token.from_secret(app_jwt(exp=1_000_000_000), "gh")),
        FakeSource("interactive", Unavailable("the sign-in expired", present=True)),
    )
    with pytest.raises(NofussError) as caught:
        lookup.credential(network.feed)
    assert str(caught.value) == (
        f"no credential for {network.feed.label}: "
        "external_endpoints: endpoints file is empty; access_token: no prefix matches; "
        "azure_cli: az refused; github_actions: its token expired at 2001-09-09 01:46:40Z; "
        "interactive: the sign-in expired "
        "(2 other sources do not apply here). ARTIFACTS_KEYRING_NOFUSS_DEBUG=1 shows each step"
    )
    assert network.probes == [network.feed.url]  # one discovery, for the sources needing it
    assert network.exchanges == []


def test_one_other_source_is_counted_in_the_singular(
    monkeypatch: pytest.MonkeyPatch, network: FakeNetwork
) -> None:
    _chain(
        monkeypatch,
        FakeSource("token", Unavailable("token is not set")),
        FakeSource("devops_pat", SourceError("the PAT has a space")),
    )
    with pytest.raises(NofussError) as caught:
        lookup.credential(network.feed)
    assert str(caught.value) == (
        f"no credential for {network.feed.label}: devops_pat: the PAT has a space "
        "(1 other source does not apply here). ARTIFACTS_KEYRING_NOFUSS_DEBUG=1 shows each step"
    )
    assert network.opened == 0  # given sources only: nothing to discover


def test_when_nothing_applies_the_failure_says_how_to_sign_in(
    monkeypatch: pytest.MonkeyPatch, network: FakeNetwork
) -> None:
    _chain(
        monkeypatch,
        FakeSource("token", Unavailable("token is not set")),
        FakeSource("azure_cli", Unavailable("az is not installed")),
        FakeSource("interactive", Unavailable("nobody signed in")),
    )
    with pytest.raises(NofussError) as caught:
        lookup.credential(network.feed)
    assert str(caught.value) == (
        f"no credential for {network.feed.label}: nothing on this machine can sign in (none of "
        "the 3 identity sources applies): run `az login`, or `ak-nofuss login "
        f"{network.feed.index_url}` without az; in CI, map SYSTEM_ACCESSTOKEN or use a workload "
        "identity. ARTIFACTS_KEYRING_NOFUSS_DEBUG=1 shows each step"
    )


def test_a_single_forced_source_always_says_why(
    monkeypatch: pytest.MonkeyPatch, network: FakeNetwork
) -> None:
    _chain(monkeypatch, FakeSource("azure_cli", Unavailable("az is not installed")))
    with pytest.raises(NofussError) as caught:
        lookup.credential(network.feed)
    assert str(caught.value) == (
        f"no credential for {network.feed.label}: azure_cli: az is not installed. "
        "ARTIFACTS_KEYRING_NOFUSS_DEBUG=1 shows each step"
    )


def test_a_user_token_is_exchanged_once_and_kept_under_its_identity(
    monkeypatch: pytest.MonkeyPatch, network: FakeNetwork, dead_proxy: None
) -> None:
    bearer = Token.from_secret(user_jwt(), "codespaces")
    helper = FakeSource("codespaces", bearer, identity=None)
    _chain(monkeypatch, helper)
    first = lookup.credential(network.feed)
    assert first.secret == "session-token-1"
    assert first.user is True
    service = f"https://vssps.dev.azure.com/{network.feed.org}/"
    assert network.exchanges == [(service + exchange.API, bearer.secret)]

    identity = f"codespaces:{TENANT}/{USER_OID}"
    kept = store.Store(_cache_dir()).session(
        store.session_key(service, network.feed.scope, identity), margin=0
    )
    assert kept is not None
    assert (kept.token, kept.identity, kept.org) == ("session-token-1", identity, network.feed.org)

    # Another process: nothing in memory, the same disk. The feed cannot be reached to
    # re-check the token (the proxy is closed), which is "cannot tell", not "refused".
    monkeypatch.setattr(lookup, "_cache", MemoryCache())
    again = lookup.credential(network.feed)
    assert again.secret == "session-token-1"
    assert len(network.exchanges) == 1
    assert network.probes == [network.feed.url]  # the discovery came from the disk too
    assert helper.asked == 2  # it cannot say who it is without being asked


def _cache_dir() -> Path:
    found = store.cache_dir()
    assert found is not None
    return found
