"""Everything the simulator remembers, behind one lock.

`Knobs` is what a test may turn (reset to baseline between tests); `Grants` is what the
simulated services have handed out (tokens, PATs, device codes); `Packages` is what the feeds
hold. Keys and registered certificates are fixed for the simulator's lifetime.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field

from . import world
from .faults import Faults
from .jwts import SigningKey
from .log import RequestLog

# --- knobs ----------------------------------------------------------------------------------


@dataclass
class OrgPolicy:
    max_session_hours: float = 24.0
    # True: any validTo at all is refused with 400, as some organisations do.
    refuse_validto: bool = False
    default_session_hours: float = 4.0
    # The service may hand out shorter tokens than asked for: cap validTo at this many seconds.
    session_cap_seconds: float | None = None


POLICY_STYLES = ("type-key", "error-name", "message")


@dataclass(frozen=True)
class PatRestriction:
    """The organisation policy "Restrict personal access token creation": the token service
    refuses to mint session tokens (PATs) from user tokens, with `status` (400 or 403) and an
    error of `style` ("type-key": message, typeKey and typeName name
    DisablePatCreationPolicyViolation; "error-name": only the message does; "message": only a
    sentence says so). Its sub-policy may still allow tokens whose scopes are all packaging
    ones; users on its allowlist are exempt. Global session tokens stop working on the
    organisation's feeds for users not on the allowlist."""

    status: int = 403
    style: str = "type-key"
    allow_packaging: bool = False
    allowlist: frozenset[str] = frozenset()  # upns, lower case


@dataclass
class DiscoveryOverride:
    # Header name (any case) -> replacement value, a list of values (one line each), or None
    # to drop it. "WWW-Authenticate" replaces every challenge line. Bytes go out as they are.
    headers: dict[str, str | bytes | list[str | bytes] | None] = field(default_factory=dict)
    combine_challenges: bool = False
    bare_bearer: bool = False


@dataclass
class DeviceFlow:
    user: str = world.ALICE
    approve_after_polls: int = 1
    decline: bool = False
    interval: int = 1
    expires_in: int = 900


@dataclass
class BrowserSession:
    """Who the simulated browser is signed in to Entra as: None shows the sign-in page, which
    a test's browser cannot get past. consent=False: the user declines the consent prompt."""

    user: str | None = None
    consent: bool = True


@dataclass
class Knobs:
    policies: dict[str, OrgPolicy] = field(default_factory=dict)
    discovery: dict[str, DiscoveryOverride] = field(default_factory=dict)
    mi_system: bool = False
    mi_user: bool = False
    user_token_lifetime: int = 3600
    app_token_lifetime: int = 3599
    imds_token_lifetime: int = 86399
    accept_user_tokens_on_feeds: bool = True
    never_signed_in: set[tuple[str, str]] = field(default_factory=set)  # (upn, org)
    guests: set[tuple[str, str]] = field(default_factory=set)  # (upn, tenant id)
    # (principal, org) -> role or None (no access); principal is a upn or a client id.
    rights: dict[tuple[str, str], str | None] = field(default_factory=dict)
    device_flow: DeviceFlow = field(default_factory=DeviceFlow)
    browser: BrowserSession = field(default_factory=BrowserSession)
    pat_restrictions: dict[str, PatRestriction] = field(default_factory=dict)  # org -> policy
    # Seconds of one network round trip to the simulated internet hosts (not IMDS): what a
    # new connection (TCP + TLS handshakes) and every request cost on a real network.
    round_trip: float = 0.0

    def policy(self, org: str) -> OrgPolicy:
        return self.policies.setdefault(org.lower(), OrgPolicy())


# --- grants ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionGrant:
    org: str | None  # None: a global token from app.vssps, good for the user's tenant
    tenant: str
    scopes: frozenset[str]
    upn: str
    valid_to: float
    authorization_id: str


@dataclass(frozen=True)
class PatGrant:
    org: str
    scopes: frozenset[str]
    label: str
    # An Azure Pipelines job token (System.AccessToken) rather than a personal access token.
    pipeline: bool = False
    valid_to: float | None = None


@dataclass(frozen=True)
class GithubRequestGrant:
    """ACTIONS_ID_TOKEN_REQUEST_TOKEN of a simulated GitHub Actions job."""

    subject: str


@dataclass(frozen=True)
class RefreshGrant:
    upn: str
    client_id: str


@dataclass
class DeviceCode:
    client_id: str
    tenant_path: str
    scope: str
    expires_at: float
    polls: int = 0


AUTH_CODE_LIFETIME = 600  # seconds, as Entra's authorization codes


@dataclass
class AuthCode:
    """An authorization code from the authorize endpoint: bound to the client, redirect URI,
    PKCE challenge and scope it was issued for, good once, for AUTH_CODE_LIFETIME seconds."""

    client_id: str  # lower case
    redirect_uri: str
    code_challenge: str | None
    challenge_method: str  # "S256" or "plain"
    scope: str
    upn: str
    tenant: str  # the tenant id the code (and its tokens) are for
    nonce: str | None
    expires_at: float
    redeemed: bool = False


@dataclass
class Grants:
    sessions: dict[str, SessionGrant] = field(default_factory=dict)
    pats: dict[str, PatGrant] = field(default_factory=dict)
    refresh_tokens: dict[str, RefreshGrant] = field(default_factory=dict)
    device_codes: dict[str, DeviceCode] = field(default_factory=dict)
    auth_codes: dict[str, AuthCode] = field(default_factory=dict)
    github_requests: dict[str, GithubRequestGrant] = field(default_factory=dict)


# --- packages -------------------------------------------------------------------------------


def normalize(name: str) -> str:
    """PEP 503 project name normalisation."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class PackageFile:
    project: str  # normalised
    version: str
    filename: str
    data: bytes
    sha256: str
    # Views (besides Local) the file has been promoted to.
    views: frozenset[str] = frozenset()


@dataclass
class Packages:
    # Seeds are in every feed and every view, and survive reset().
    seeds: list[PackageFile] = field(default_factory=list)
    uploads: dict[str, list[PackageFile]] = field(default_factory=dict)  # feed guid -> files

    def in_feed(self, feed_guid: str, view: str | None) -> list[PackageFile]:
        uploaded = self.uploads.get(feed_guid, [])
        if view is not None and view.lower() != "local":
            uploaded = [f for f in uploaded if view.lower() in {v.lower() for v in f.views}]
        return [*self.seeds, *uploaded]


# --- certificates registered on service principals ------------------------------------------


@dataclass(frozen=True)
class RegisteredCert:
    client_id: str
    public_key_pem: bytes
    sha1_thumbprint: str  # hex
    sha256_thumbprint: str  # hex


@dataclass(frozen=True)
class Keys:
    entra: SigningKey
    devops: SigningKey
    oidc: SigningKey  # Azure Pipelines' OIDC issuer
    github: SigningKey  # GitHub Actions' OIDC issuer
    certs: dict[str, RegisteredCert]  # client id -> certificate


class SimState:
    def __init__(self, keys: Keys, round_trip: float = 0.0) -> None:
        self.lock = threading.RLock()
        self.keys = keys
        # What reset() goes back to: AKN_SIM_RTT_MS when the simulator started, else none.
        self.base_round_trip = round_trip
        self.knobs = Knobs(round_trip=round_trip)
        self.grants = Grants()
        self.packages = Packages()
        self.log = RequestLog()
        self.faults = Faults()
        self.stopping = threading.Event()
        # Bumped by reset(): requests from before it are neither served nor logged.
        self.generation = 0
        # Every secret ever handed out or known, for leak scans; never cleared.
        self._issued: set[str] = set()

    def remember(self, *secrets: str) -> None:
        with self.lock:
            self._issued.update(s for s in secrets if s)

    def issued(self) -> set[str]:
        with self.lock:
            return set(self._issued)

    def reset(self) -> None:
        with self.lock:
            self.generation += 1
            self.knobs = Knobs(round_trip=self.base_round_trip)
            self.grants = Grants()
            self.packages.uploads.clear()
            self.log.clear()
            self.faults.clear()

    # --- questions every service asks -----------------------------------------------------

    def user_in_tenant(self, upn: str, tenant: str) -> bool:
        user = world.USERS.get(upn.lower())
        if user is None:
            return False
        with self.lock:
            return user.tenant == tenant or (user.upn, tenant) in self.knobs.guests

    def role(self, principal: str, org: str) -> str | None:
        """The feed role of a user (by upn) or app identity (by client id) in an org."""
        key = (principal.lower(), org.lower())
        with self.lock:
            if key in self.knobs.rights:
                return self.knobs.rights[key]
        user = world.USERS.get(principal.lower())
        if user is not None:
            return user.rights.get(org.lower())
        app = world.APP_IDENTITIES.get(principal.lower())
        if app is not None:
            return app.rights.get(org.lower())
        return None
