"""Host-based dispatch, fault injection and the request log, for every listener."""

from __future__ import annotations

import time

from . import jwts, world
from .arm import ResourceManager
from .credentials import identify, presented
from .entra import Entra
from .exchange import TokenService, is_token_host
from .faults import Step
from .feeds import FeedHosts, FeedPath, is_feed_host, parse_path, request_kind
from .github import GithubActions
from .httpserver import Request, Response, not_found, text_response
from .imds import TOKEN_PATH, Imds
from .log import Record
from .oidc import OidcIssuer
from .plainindex import PlainIndex
from .state import SimState

WEB = "web"  # HTTPS on 443 and 8443: every simulated name
IMDS = "imds"  # plain HTTP on 169.254.169.254:80
PLAIN_HTTP = "plain-http"  # plain HTTP on loopback:80: logs what arrives, redirects to https


class Services:
    def __init__(self, state: SimState) -> None:
        self.entra = Entra(state)
        self.feeds = FeedHosts(state)
        self.tokens = TokenService(state)
        self.imds = Imds(state)
        self.oidc = OidcIssuer(state)
        self.plain = PlainIndex(state)
        self.github = GithubActions(state)
        self.arm = ResourceManager(state)


class Router:
    def __init__(self, state: SimState, services: Services, mode: str) -> None:
        self.state = state
        self.services = services
        self.mode = mode

    def fault(self, request: Request) -> Step | None:
        # Called first for every request: classify it now, so that a request answered by an
        # injected fault still counts as what it asked for.
        request.note.kind = self._classify(request)
        request.note.generation = self.state.generation
        host = world.IMDS_ADDRESS if self.mode == IMDS else request.host
        target = request.path + (f"?{request.query}" if request.query else "")
        return self.state.faults.take(host, target)

    def handle(self, request: Request) -> Response:
        if self._stale(request):
            return text_response(503, "the test that sent this request is over")
        if self.mode == IMDS:
            return self.services.imds.handle(request)
        if self.mode == PLAIN_HTTP:
            https = request.url.replace("http://", "https://", 1).replace(":80/", "/", 1)
            return text_response(301, "Moved Permanently", headers=[("Location", https)])
        host = request.host
        if host in world.LOGIN_HOSTS:
            return self.services.entra.handle(request)
        if is_feed_host(host):
            return self.services.feeds.handle(request)
        if is_token_host(host):
            return self.services.tokens.handle(request)
        if host == world.OIDC_ISSUER_HOST:
            return self.services.oidc.handle(request)
        if host == world.PLAIN_INDEX_HOST:
            return self.services.plain.handle(request)
        if host in (world.GITHUB_TOKEN_HOST, world.GITHUB_ISSUER_HOST):
            return self.services.github.handle(request)
        if host == world.ARM_HOST:
            return self.services.arm.handle(request)
        return not_found()

    def _classify(self, request: Request) -> str:
        segs = [s.lower() for s in request.segments()]
        host = request.host
        if self.mode == IMDS:
            return "token" if request.path.rstrip("/") == TOKEN_PATH else "metadata"
        if self.mode == PLAIN_HTTP:
            return "other"
        if host in world.LOGIN_HOSTS:
            last = segs[-1] if segs else ""
            return last if last in ("token", "devicecode", "authorize") else "metadata"
        if is_feed_host(host):
            parsed = parse_path(request)
            if isinstance(parsed, FeedPath):
                return request_kind(request.method, [s.lower() for s in parsed.rest])
            return "other"
        if is_token_host(host):
            return "exchange" if segs[-3:] == ["_apis", "token", "sessiontokens"] else "other"
        if host == world.OIDC_ISSUER_HOST:
            return "metadata"
        if host == world.PLAIN_INDEX_HOST:
            return "plain-index"
        if host == world.GITHUB_TOKEN_HOST:
            return "github_oidc" if segs[-1:] == ["idtoken"] else "other"
        if host == world.GITHUB_ISSUER_HOST:
            return "metadata"
        if host == world.ARM_HOST:
            return "arm"
        return "other"

    def round_trip(self) -> float:
        # IMDS is a link-local service on the machine's own host: no internet in between.
        return 0.0 if self.mode == IMDS else self.state.knobs.round_trip

    def _stale(self, request: Request) -> bool:
        return request.note.generation != self.state.generation

    def record(self, request: Request, status: int) -> None:
        if self._stale(request):
            return  # the log now belongs to another test
        note = request.note
        shown = presented(request)
        note.auth_scheme = shown.scheme
        if shown.secret:
            note.credential_fingerprint = jwts.fingerprint(shown.secret)
            ident = identify(self.state, shown.secret)
            note.credential_kind = ident.kind
            if note.principal is None and ident.principal and ident.kind != "unknown":
                note.principal = ident.principal
        path, query = request.path, request.query
        for secret in self.state.issued():
            if secret in path or secret in query:
                # The log must stay secret-free, yet say that a secret travelled in a URL.
                mark = f"<redacted:{jwts.fingerprint(secret)}>"
                path, query = path.replace(secret, mark), query.replace(secret, mark)
                note.extra["secret_in_url"] = "true"
        self.state.log.add(
            Record(
                time=time.time(),
                scheme=request.scheme,
                host=world.IMDS_ADDRESS if self.mode == IMDS else request.host,
                port=request.port,
                method=request.method,
                path=path,
                query=query,
                status=status,
                kind=note.kind,
                auth_scheme=note.auth_scheme,
                credential_kind=note.credential_kind,
                credential_fingerprint=note.credential_fingerprint,
                principal=note.principal,
                scope=note.scope,
                valid_to=note.valid_to,
                token_type=note.token_type,
                grant_type=note.grant_type,
                client_id=note.client_id,
                fault=note.fault,
                user_agent=request.header("User-Agent"),
                extra=dict(note.extra),
                connection=note.connection,
                connected_at=note.connected_at,
                arrived=note.arrived,
            )
        )
