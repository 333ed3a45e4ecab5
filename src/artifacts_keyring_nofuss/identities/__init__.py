"""Identity sources: each turns what the machine already has into an Entra (or other) token.

Every source is declared once, in SOURCES, with what the chain needs to know about it without
importing it. A source answers two questions:

- `prepare(request)`: does it apply here at all, and as whom would it answer? Cheap: no network,
  no subprocess (an environment variable, a file, a stat). Unavailable when it does not apply;
  otherwise the identity it would answer as, when it can know it before minting a token (the key
  under which a token it minted earlier may be waiting).
- `get_token(request)`: the token, or Unavailable, or SourceError when it applied and failed.

The token a source returns names the identity it was minted for (`Token.identity`), vouched for
by the source or read from the token's own claims: that, and nothing predicted, is the key it is
kept under.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, NamedTuple, Protocol

from artifacts_keyring_nofuss.deadline import Deadline
from artifacts_keyring_nofuss.devops import DEFAULT_SCOPE
from artifacts_keyring_nofuss.errors import ConfigError
from artifacts_keyring_nofuss.feeds import Feed
from artifacts_keyring_nofuss.tokens import Token

if TYPE_CHECKING:
    from artifacts_keyring_nofuss.settings import Settings


class TokenRequest(NamedTuple):
    feed: Feed
    tenant: str | None  # validated by discovery: a GUID or a domain name
    deadline: Deadline
    settings: Settings


class Unavailable(NamedTuple):
    """The source does not apply here, and why. `present`: it is set up on this machine (az is
    installed, a variable is set) but cannot serve this feed; that reason is worth a place in
    the one line a user sees, the others only in debug output."""

    reason: str
    present: bool = False
    fix: str | None = None


class Prepared(NamedTuple):
    """The source applies (as far as it can tell without asking for a token)."""

    identity: str | None = None  # "{source}:{who}", when known before minting
    scope: str = DEFAULT_SCOPE  # the Entra scope it would ask for (a narrow one, or .default)


class Source(Protocol):
    def prepare(self, request: TokenRequest) -> Prepared | Unavailable: ...

    def get_token(self, request: TokenRequest) -> Token | Unavailable: ...


class Spec(NamedTuple):
    name: str
    target: str  # "module:Class", imported only when the chain reaches it
    # False: a token handed over; it needs neither the tenant nor the token service, is asked
    # before discovery (a pipeline with a token never probes the feed), and is used as it is.
    needs_discovery: bool
    # It can say who it would answer as before minting a token, so a token it minted earlier
    # (in this process, or a session token on disk) can be found without asking it.
    knows_identity: bool
    # It may put a prompt in front of a person (it extends the lookup's deadline while one is
    # shown, and only then).
    prompts: bool = False


# The default chain, in order: what somebody handed us on purpose first, then what this
# machine is signed in as, then workload identities, then the interactive sign-in (which is
# silent once signed in).
SOURCES: tuple[Spec, ...] = (
    Spec("token", "given:GivenTokenSource", needs_discovery=False, knows_identity=False),
    Spec(
        "external_endpoints",
        "given:ExternalEndpointsSource",
        needs_discovery=False,
        knows_identity=False,
    ),
    Spec("access_token", "given:AccessTokenSource", needs_discovery=False, knows_identity=False),
    Spec("pipeline", "given:PipelineSource", needs_discovery=False, knows_identity=False),
    Spec("devops_pat", "given:DevopsPatSource", needs_discovery=False, knows_identity=False),
    Spec(
        "feed_endpoints",
        "feed_endpoints:FeedEndpointsSource",
        needs_discovery=True,
        knows_identity=True,
    ),
    Spec("azure_cli", "azure_cli:AzureCliSource", needs_discovery=True, knows_identity=True),
    Spec(
        "github_actions",
        "github_actions:GitHubActionsSource",
        needs_discovery=True,
        knows_identity=True,
    ),
    Spec(
        "azure_identity",
        "azure_identity:AzureIdentitySource",
        needs_discovery=True,
        knows_identity=True,
    ),
    Spec("codespaces", "codespaces:CodespacesSource", needs_discovery=True, knows_identity=False),
    Spec(
        "interactive",
        "interactive:InteractiveSource",
        needs_discovery=True,
        knows_identity=True,
        prompts=True,
    ),
)
SPECS: dict[str, Spec] = {spec.name: spec for spec in SOURCES}
DEFAULT_ORDER: tuple[str, ...] = tuple(SPECS)


def load(name: str) -> Source:
    module_name, _, class_name = SPECS[name].target.partition(":")
    module = importlib.import_module(f"{__name__}.{module_name}")
    source: Source = getattr(module, class_name)()
    return source


def chain(forced: str | None, where: str) -> tuple[str, ...]:
    """The source names to try, in order: the default chain, or the one (or comma-separated
    several) the user forced; an unknown name is a ConfigError."""
    if forced is None:
        return DEFAULT_ORDER
    names: list[str] = []
    for raw in forced.split(","):
        name = raw.strip().lower().replace("-", "_")
        if name not in SPECS:
            raise ConfigError(
                f"unknown provider {raw.strip()!r} in {where}",
                f"use one of: {', '.join(SPECS)}",
            )
        if name not in names:
            names.append(name)
    return tuple(names)
