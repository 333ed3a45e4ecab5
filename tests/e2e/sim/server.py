"""The simulated Azure DevOps + Entra ID: `Simulator` and the knobs tests turn.

It must run inside the network namespace (see netns.py): it binds 443, 8443 and 80 on the
loopback and 80 on 169.254.169.254, where the namespace's hosts file sends every simulated
name.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import ssl
import uuid
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

from . import github, jwts, oidc, pki, tokens, world
from .exchange import SESSION_ISSUER
from .faults import StepSpec
from .httpserver import Listener, ipv6_usable
from .log import Record
from .router import IMDS, PLAIN_HTTP, WEB, Router, Services
from .state import (
    POLICY_STYLES,
    BrowserSession,
    DiscoveryOverride,
    Keys,
    PackageFile,
    PatGrant,
    PatRestriction,
    RegisteredCert,
    SimState,
    normalize,
)
from .wheels import wheel_name_version
from .world import (
    ALICE,
    ALICE_PASSWORD,
    APP_IDENTITIES,
    AZURE_CLI_CLIENT_ID,
    BOB,
    BOB_PASSWORD,
    CAROL,
    CAROL_PASSWORD,
    CONTRIBUTOR,
    DEVOPS_RESOURCE,
    DEVOPS_SCOPE,
    FEEDS,
    HOSTNAMES,
    MI_SYSTEM_CLIENT_ID,
    MI_USER_CLIENT_ID,
    ORG_CONTOSO,
    ORG_FABRIKAM,
    ORGS,
    READER,
    SP_CONTOSO_CERT,
    SP_CONTOSO_FEDERATED,
    SP_CONTOSO_GITHUB,
    SP_CONTOSO_SECRET,
    SP_CONTOSO_SECRET_VALUE,
    SP_FABRIKAM_CERT,
    SP_FABRIKAM_FEDERATED,
    SP_FABRIKAM_SECRET,
    SP_FABRIKAM_SECRET_VALUE,
    T_CONTOSO,
    T_FABRIKAM,
    USERS,
)

__all__ = [
    "ALICE",
    "ALICE_PASSWORD",
    "AZURE_CLI_CLIENT_ID",
    "BOB",
    "BOB_PASSWORD",
    "CAROL",
    "CAROL_PASSWORD",
    "CONTRIBUTOR",
    "DEVOPS_RESOURCE",
    "DEVOPS_SCOPE",
    "HOSTNAMES",
    "MI_SYSTEM_CLIENT_ID",
    "MI_USER_CLIENT_ID",
    "ORG_CONTOSO",
    "ORG_FABRIKAM",
    "READER",
    "SP_CONTOSO_CERT",
    "SP_CONTOSO_FEDERATED",
    "SP_CONTOSO_GITHUB",
    "SP_CONTOSO_SECRET",
    "SP_CONTOSO_SECRET_VALUE",
    "SP_FABRIKAM_CERT",
    "SP_FABRIKAM_FEDERATED",
    "SP_FABRIKAM_SECRET",
    "SP_FABRIKAM_SECRET_VALUE",
    "T_CONTOSO",
    "T_FABRIKAM",
    "Record",
    "Simulator",
]

HTTPS_PORT = 443
ALT_HTTPS_PORT = 8443  # the same services on a non-default port, for "default port only" tests
# Milliseconds of one round trip to the simulated internet hosts, for a whole run (the demo, a
# manual session): read by the simulator when it starts; set_latency() changes it per test.
RTT_VAR = "AKN_SIM_RTT_MS"


def round_trip_from_environment() -> float:
    """Seconds of one round trip that RTT_VAR asks for (0 when unset); a value that is not a
    number of milliseconds from 0 to 10000 stops the simulator with a message that says so."""
    raw = os.environ.get(RTT_VAR, "").strip()
    if not raw:
        return 0.0
    try:
        milliseconds = float(raw)
    except ValueError:
        milliseconds = -1.0
    if not 0 <= milliseconds <= 10_000:
        raise ValueError(f"{RTT_VAR}={raw!r}: want milliseconds of one round trip, 0 to 10000")
    return milliseconds / 1000


class Simulator:
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = Path(state_dir)
        self._state: SimState | None = None
        self._listeners: list[Listener] = []
        self._certs: dict[str, pki.ClientCertificate] = {}
        self._pki: pki.ServerPki | None = None

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> Simulator:
        if self._state is not None:
            return self
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._pki = pki.make_server_pki(self.state_dir)
        for app in APP_IDENTITIES.values():
            if app.kind == world.CERTIFICATE:
                self._certs[app.client_id] = pki.make_client_certificate(
                    self.state_dir / "sp", app.name
                )
        registered = {
            cid: RegisteredCert(cid, c.public_key_pem, c.thumbprint.lower(), c.sha256_thumbprint)
            for cid, c in self._certs.items()
        }
        keys = Keys(
            entra=jwts.new_signing_key(),
            devops=jwts.new_signing_key(),
            oidc=jwts.new_signing_key(),
            github=jwts.new_signing_key(),
            certs=registered,
        )
        state = SimState(keys, round_trip_from_environment())
        for secret in self._static_secrets():
            state.remember(secret)
        self._state = state
        services = Services(state)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self._pki.server_pem, self._pki.server_key)
        web = Router(state, services, WEB)
        v6 = ipv6_usable()
        wildcard = "::" if v6 else "0.0.0.0"
        plans: list[tuple[tuple[str, int], str, Router, ssl.SSLContext | None]] = [
            ((wildcard, HTTPS_PORT), "https", web, context),
            ((wildcard, ALT_HTTPS_PORT), "https", web, context),
            (("127.0.0.1", 80), "http", Router(state, services, PLAIN_HTTP), None),
            ((world.IMDS_ADDRESS, 80), "http", Router(state, services, IMDS), None),
        ]
        if v6:
            plans.append((("::1", 80), "http", Router(state, services, PLAIN_HTTP), None))
        try:
            for address, scheme, router, ctx in plans:
                listener = Listener(address, scheme, router, ctx, state.stopping)
                self._listeners.append(listener)
                listener.start()
        except OSError as exc:
            self.stop()
            raise RuntimeError(
                f"cannot listen on {address[0]}:{address[1]} ({exc}): the simulator runs inside "
                "the test network namespace (python -m tests.e2e.sim.netns -- ...)"
            ) from exc
        return self

    def stop(self) -> None:
        if self._state is not None:
            self._state.stopping.set()
        for listener in self._listeners:
            listener.stop()
        self._listeners.clear()
        self._state = None

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def state(self) -> SimState:
        if self._state is None:
            raise RuntimeError("the simulator is not started")
        return self._state

    # --- files the clients need ---------------------------------------------------------------

    @property
    def ca_pem(self) -> Path:
        assert self._pki is not None, "start() first"
        return self._pki.ca_pem

    @property
    def server_pem(self) -> Path:
        assert self._pki is not None, "start() first"
        return self._pki.server_pem

    @property
    def server_key(self) -> Path:
        assert self._pki is not None, "start() first"
        return self._pki.server_key

    def sp_certificate(self, client_id: str) -> pki.ClientCertificate:
        """Certificate, key and combined PEM of a certificate service principal."""
        return self._certs[client_id.lower()]

    # --- packages -------------------------------------------------------------------------

    def seed_packages(self, paths: Iterable[Path]) -> None:
        """Files every feed, every view and plain-index.example serve; they survive reset()."""
        with self.state.lock:
            known = {f.filename for f in self.state.packages.seeds}
            for path in paths:
                if path.name not in known:
                    self.state.packages.seeds.append(_package(path))
                    known.add(path.name)

    def publish(self, feed: str, path: Path, views: Iterable[str] = ()) -> None:
        """Put a file in one feed as if uploaded (and promoted to `views`); cleared by reset()."""
        target = _feed(feed)
        package = dataclasses.replace(_package(path), views=frozenset(views))
        with self.state.lock:
            self.state.packages.uploads.setdefault(target.guid, []).append(package)

    def uploaded(self, feed: str) -> list[str]:
        """File names uploaded to a feed since the last reset()."""
        with self.state.lock:
            return [f.filename for f in self.state.packages.uploads.get(_feed(feed).guid, [])]

    # --- knobs ------------------------------------------------------------------------------

    def reset(self) -> None:
        """Back to baseline: log, faults, uploads, knobs, PATs and issued grants cleared."""
        self.state.reset()

    def fail(self, host: str | None, path_regex: str, sequence: list[StepSpec]) -> None:
        """Inject failures; see faults.py for the step forms. host None/"*" means any host."""
        self.state.faults.add(host, path_regex, sequence)

    def set_latency(self, round_trip: float) -> None:
        """Seconds of one network round trip to every simulated internet host (feeds, token
        service, Entra ID, GitHub, plain-index.example; not IMDS), until reset(): a new
        connection costs the TCP and the TLS handshake (two round trips; plain HTTP one) and
        every request one more, so a first request costs three round trips and the next one
        on the same kept-alive connection one. 0 is the loopback as it is. reset() goes back
        to AKN_SIM_RTT_MS (milliseconds) as it was when the simulator started, else to 0."""
        if not 0 <= round_trip <= 10:
            raise ValueError(f"a round trip of {round_trip} s? want 0 to 10")
        with self.state.lock:
            self.state.knobs.round_trip = float(round_trip)

    def set_policy(
        self,
        org: str,
        *,
        max_session_hours: float | None = None,
        refuse_validto: bool | None = None,
        default_session_hours: float | None = None,
        session_cap_seconds: float | None = None,
    ) -> None:
        with self.state.lock:
            policy = self.state.knobs.policy(org)
            if max_session_hours is not None:
                policy.max_session_hours = max_session_hours
            if refuse_validto is not None:
                policy.refuse_validto = refuse_validto
            if default_session_hours is not None:
                policy.default_session_hours = default_session_hours
            if session_cap_seconds is not None:
                policy.session_cap_seconds = session_cap_seconds

    def enable_managed_identity(self, system: bool = True, user_assigned: bool = True) -> None:
        with self.state.lock:
            self.state.knobs.mi_system = system
            self.state.knobs.mi_user = user_assigned

    def set_token_lifetime(
        self, *, user: int | None = None, app: int | None = None, imds: int | None = None
    ) -> None:
        """Seconds until Entra access tokens expire (defaults 3600, 3599, 86399)."""
        with self.state.lock:
            knobs = self.state.knobs
            knobs.user_token_lifetime = user if user is not None else knobs.user_token_lifetime
            knobs.app_token_lifetime = app if app is not None else knobs.app_token_lifetime
            knobs.imds_token_lifetime = imds if imds is not None else knobs.imds_token_lifetime

    def override_discovery(
        self,
        org: str,
        headers: dict[str, str | bytes | list[str | bytes] | None] | None = None,
        *,
        combine_challenges: bool = False,
        bare_bearer: bool = False,
    ) -> None:
        """Change the anonymous 401 of an org's feeds: replace (str, bytes sent as they are, or
        a list of either, one line each) or drop (None) headers, put the challenges on one
        line, or send Bearer without authorization_uri."""
        with self.state.lock:
            self.state.knobs.discovery[org.lower()] = DiscoveryOverride(
                dict(headers or {}), combine_challenges, bare_bearer
            )

    def revoke_sessions(self, upn: str | None = None) -> int:
        """Revoke the session tokens issued (to one user, or to all): what an admin, a password
        change or a policy change does. Returns how many were revoked."""
        with self.state.lock:
            doomed = [
                secret
                for secret, grant in self.state.grants.sessions.items()
                if upn is None or grant.upn.lower() == upn.lower()
            ]
            for secret in doomed:
                del self.state.grants.sessions[secret]
            return len(doomed)

    def set_never_signed_in(self, upn: str, org: str, never: bool = True) -> None:
        """The user never opened the org in a browser: exchange and feeds answer TF401444."""
        key = (upn.lower(), org.lower())
        with self.state.lock:
            if never:
                self.state.knobs.never_signed_in.add(key)
            else:
                self.state.knobs.never_signed_in.discard(key)

    def restrict_pat_creation(
        self,
        org: str,
        enabled: bool = True,
        *,
        status: int = 403,
        style: str = "type-key",
        allow_packaging: bool = False,
        allowlist: Iterable[str] = (),
    ) -> None:
        """The organisation policy "Restrict personal access token creation" (enabled=False
        lifts it, as reset() does). While on, the org's session-token exchange refuses every
        user token with `status` (400 or 403) and the policy error in `style`: "type-key"
        (message, typeKey and typeName name DisablePatCreationPolicyViolation), "error-name"
        (only the message does, with a generic typeKey) or "message" (a sentence only).
        Checked right after the token is authenticated (a valid user token of the org's
        tenant), before membership and everything else; logged as
        Record.extra["refused"] = "DisablePatCreationPolicyViolation". allow_packaging: the
        sub-policy that still lets users mint tokens whose scopes are all packaging ones;
        allowlist: users (upns) the policy exempts. PATs (add_pat), session tokens minted
        before, pipeline and application tokens keep working; global session tokens (from
        app.vssps) do not, on this org's feeds, for users off the allowlist."""
        if style not in POLICY_STYLES:
            raise ValueError(f"style must be one of {POLICY_STYLES}, not {style!r}")
        if status not in (400, 403):
            raise ValueError(f"the policy answers 400 or 403, not {status}")
        if world.org_named(org) is None:
            raise KeyError(f"no organisation {org!r}")
        with self.state.lock:
            if enabled:
                self.state.knobs.pat_restrictions[org.lower()] = PatRestriction(
                    status, style, allow_packaging, frozenset(u.lower() for u in allowlist)
                )
            else:
                self.state.knobs.pat_restrictions.pop(org.lower(), None)

    def refuse_user_tokens_on_feeds(self, refuse: bool = True) -> None:
        """Feeds accept Entra user tokens as they are by default, like the real service."""
        with self.state.lock:
            self.state.knobs.accept_user_tokens_on_feeds = not refuse

    def add_guest(self, upn: str, tenant: str, org_role: str | None = READER) -> None:
        """Invite a user into another tenant (and give them a role in that tenant's orgs)."""
        with self.state.lock:
            self.state.knobs.guests.add((upn.lower(), tenant))
            for org in ORGS.values():
                if org.tenant == tenant:
                    self.state.knobs.rights[(upn.lower(), org.name.lower())] = org_role

    def grant(self, principal: str, org: str, role: str | None) -> None:
        """Feed role of a user (upn) or app identity (client id) in an org; None removes it."""
        with self.state.lock:
            self.state.knobs.rights[(principal.lower(), org.lower())] = role

    def set_device_flow(
        self,
        *,
        user: str | None = None,
        approve_after_polls: int | None = None,
        decline: bool | None = None,
        interval: int | None = None,
        expires_in: int | None = None,
    ) -> None:
        """Who approves device code sign-ins (after how many polls), or that the user declines;
        the polling interval and the codes' lifetime (seconds) Entra announces."""
        with self.state.lock:
            flow = self.state.knobs.device_flow
            flow.user = user.lower() if user is not None else flow.user
            if approve_after_polls is not None:
                flow.approve_after_polls = approve_after_polls
            flow.decline = decline if decline is not None else flow.decline
            flow.interval = interval if interval is not None else flow.interval
            flow.expires_in = expires_in if expires_in is not None else flow.expires_in

    def set_browser_user(self, upn: str | None, consent: bool = True) -> None:
        """Who the browser is signed in to Entra as. With a user, the authorize endpoint sends
        a code back to the (loopback) redirect URI at once (prompt=select_account picks that
        user; a login_hint naming another user, or prompt=login, shows the sign-in page);
        consent=False: the user declines (access_denied, AADSTS65004). None: the sign-in page,
        which a test's browser never gets past."""
        if upn is not None and upn.lower() not in USERS:
            raise KeyError(f"no user {upn!r}")
        with self.state.lock:
            self.state.knobs.browser = BrowserSession(
                upn.lower() if upn is not None else None, consent
            )

    def add_pat(self, org: str, scope: str = "vso.packaging", label: str = "pat") -> str:
        """A personal access token for an org; valid until reset()."""
        token = hashlib.sha256(jwts.new_guid().encode()).hexdigest()[:52]
        with self.state.lock:
            self.state.grants.pats[token] = PatGrant(org.lower(), frozenset(scope.split()), label)
        self.state.remember(token)
        return token

    def add_pipeline_token(
        self, org: str, scope: str = "vso.packaging_write", *, lifetime: int = 3600
    ) -> str:
        """An Azure Pipelines job token (System.AccessToken) of an org's build service: a JWT
        from app.vstoken.visualstudio.com, good on that org's feeds (read; upload when `scope`
        has vso.packaging_write) as the Basic password or a bearer until it expires or reset(),
        and nowhere else: not on other orgs' feeds, not at the SessionTokens exchange."""
        target = world.org_named(org)
        if target is None:
            raise KeyError(f"no organisation {org!r}")
        now = jwts.now()
        build_service = str(uuid.uuid5(uuid.NAMESPACE_URL, f"build-service/{target.guid}"))
        token = jwts.sign(
            self.state.keys.devops,
            {
                "nameid": build_service,
                "scp": "app_token",
                "aui": jwts.new_guid(),
                "sid": jwts.new_guid(),
                "iss": SESSION_ISSUER,
                "aud": f"{SESSION_ISSUER}|vso:{target.guid}",
                "nbf": now,
                "exp": now + lifetime,
            },
        )
        grant = PatGrant(
            target.name.lower(),
            frozenset(scope.split()),
            f"Project Collection Build Service ({target.name})",
            pipeline=True,
            valid_to=now + lifetime,
        )
        with self.state.lock:
            self.state.grants.pats[token] = grant
        self.state.remember(token)
        return token

    @staticmethod
    def pipeline_env(org: str, token: str) -> dict[str, str]:
        """What an Azure Pipelines job has: the token (once mapped with
        `env: SYSTEM_ACCESSTOKEN: $(System.AccessToken)`), the collection URI, TF_BUILD."""
        target = world.org_named(org)
        if target is None:
            raise KeyError(f"no organisation {org!r}")
        if target.tenant is None:
            collection = f"https://{world.ONPREM_HOST}/tfs/{target.name}/"
        else:
            collection = f"https://dev.azure.com/{target.name}/"
        return {
            "SYSTEM_ACCESSTOKEN": token,
            "SYSTEM_TEAMFOUNDATIONCOLLECTIONURI": collection,
            "SYSTEM_COLLECTIONURI": collection,
            "TF_BUILD": "True",
        }

    def github_actions(self, subject: str = world.GITHUB_SUBJECT_CONTOSO) -> dict[str, str]:
        """The environment of a GitHub Actions job with `permissions: id-token: write`
        (ACTIONS_ID_TOKEN_REQUEST_URL and _TOKEN, GITHUB_ACTIONS, CI): the URL answers ID
        tokens about `subject`, for the audience asked for, until reset()."""
        return github.runner_environment(self.state, subject)

    # --- minting, for tests that need a particular token ------------------------------------

    def mint_user_token(
        self,
        upn: str,
        *,
        tenant: str | None = None,
        resource: str = DEVOPS_RESOURCE,
        lifetime: int = 3600,
        issued_at: int | None = None,
        client_id: str = AZURE_CLI_CLIENT_ID,
        forge: bool = False,
        scope: str = world.USER_IMPERSONATION,
    ) -> str:
        """An Entra user access token; forge=True signs it with a key the sim does not trust;
        `scope`: its delegated permissions (the scp claim), e.g. "vso.packaging"."""
        user = USERS[upn.lower()]
        key = jwts.new_signing_key() if forge else self.state.keys.entra
        token = tokens.user_access_token(
            key, user, tenant or user.tenant, resource, client_id, lifetime, issued_at, scope
        )
        self.state.remember(token)
        return token

    def mint_app_token(
        self,
        client_id: str,
        *,
        resource: str = DEVOPS_RESOURCE,
        lifetime: int = 3599,
        issued_at: int | None = None,
        forge: bool = False,
    ) -> str:
        app = APP_IDENTITIES[client_id.lower()]
        key = jwts.new_signing_key() if forge else self.state.keys.entra
        token = tokens.app_access_token(key, app, resource, lifetime, issued_at)
        self.state.remember(token)
        return token

    def mint_federated_assertion(
        self,
        client_id: str = SP_CONTOSO_FEDERATED,
        *,
        subject: str | None = None,
        issuer: str | None = None,
        audience: str = world.FEDERATED_AUDIENCE,
        lifetime: int = 600,
        forge: bool = False,
    ) -> str:
        return oidc.mint_assertion(
            self.state,
            client_id,
            subject=subject,
            issuer=issuer,
            audience=audience,
            lifetime=lifetime,
            forge=forge,
        )

    def write_federated_assertion(
        self, path: Path, client_id: str = SP_CONTOSO_FEDERATED, **kwargs: object
    ) -> Path:
        """Write an assertion where AZURE_FEDERATED_TOKEN_FILE would point."""
        assertion = self.mint_federated_assertion(client_id, **kwargs)  # type: ignore[arg-type]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(assertion)
        return path

    # --- what happened ----------------------------------------------------------------------

    def requests(
        self, host: str | None = None, path_contains: str | None = None, kind: str | None = None
    ) -> list[Record]:
        return self.state.log.select(host, path_contains, kind)

    def count(self, kind: str) -> int:
        """discovery (anonymous 401s on feed hosts), exchange, token (Entra token endpoint and
        IMDS), index, download, upload, devicecode, authorize, github_oidc, metadata,
        plain-index, other."""
        return len(self.state.log.select(kind=kind))

    def issued_secrets(self) -> set[str]:
        """Every token, secret and password the simulator issued or knows, for leak scans."""
        return self.state.issued()

    @staticmethod
    def fingerprint(secret: str) -> str:
        """The value Record.credential_fingerprint holds for this secret."""
        return jwts.fingerprint(secret)

    def _static_secrets(self) -> list[str]:
        known = [u.password for u in USERS.values()]
        known += [a.secret for a in APP_IDENTITIES.values() if a.secret]
        for cert in self._certs.values():
            # The key's base64 body: a leaked key shows up in output as those lines.
            body = cert.key_pem.read_text().splitlines()[1:-1]
            known += [line for line in body if len(line) > 40]
        return known


def _package(path: Path) -> PackageFile:
    data = path.read_bytes()
    dist, version = wheel_name_version(path.name)
    return PackageFile(normalize(dist), version, path.name, data, hashlib.sha256(data).hexdigest())


def _feed(name_or_guid: str) -> world.Feed:
    wanted = name_or_guid.lower()
    for feed in FEEDS:
        if wanted in (feed.name.lower(), feed.guid):
            return feed
    raise KeyError(f"no feed {name_or_guid!r}")
