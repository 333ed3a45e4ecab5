"""Identity sources: each turns what the machine already has into an Entra (or other) token.

A source returns Unavailable when it does not apply here (no `az`, nothing configured), raises
SourceError when it applied and failed, and otherwise returns a Token. The chain order is data.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Protocol

from artifacts_keyring_nofuss.deadline import Deadline
from artifacts_keyring_nofuss.errors import ConfigError
from artifacts_keyring_nofuss.feeds import Feed
from artifacts_keyring_nofuss.tokens import Token

DEVOPS_RESOURCE = "499b84ac-1321-427f-aa17-267ca6975798"
DEVOPS_SCOPE = DEVOPS_RESOURCE + "/.default"


@dataclass(frozen=True)
class TokenRequest:
    feed: Feed
    tenant: str | None  # validated by discovery: a GUID or a domain name
    deadline: Deadline


@dataclass(frozen=True)
class Unavailable:
    """The source does not apply here, and why. `present`: it is set up on this machine (az is
    installed, a variable is set) but cannot serve this feed; that reason is worth a place in
    the one line a user sees, the others only in debug output."""

    reason: str
    present: bool = False


class Source(Protocol):
    name: str
    # False: the source needs neither the tenant nor the token service (a token handed to
    # us); it is asked before discovery, so a pipeline with a token never probes the feed.
    needs_discovery: bool

    def cache_identity(self) -> str | None:
        """Who this source would answer as, known without asking it for a token (cheap: it
        decides whether a cached session token may be used). None: unknown, or never cached."""

    def get_token(self, request: TokenRequest) -> Token | Unavailable: ...


# name -> "module:class", imported only when the chain reaches it. The order is the default
# chain: what somebody handed us on purpose first, then what this machine is signed in as,
# then workload identities, then the interactive sign-in (which is silent once signed in).
REGISTRY: dict[str, str] = {
    "token": "given:GivenTokenSource",
    "external_endpoints": "given:ExternalEndpointsSource",
    "access_token": "given:AccessTokenSource",
    "pipeline": "given:PipelineSource",
    "devops_pat": "given:DevopsPatSource",
    "feed_endpoints": "feed_endpoints:FeedEndpointsSource",
    "azure_cli": "azure_cli:AzureCliSource",
    "github_actions": "github_actions:GitHubActionsSource",
    "azure_identity": "azure_identity:AzureIdentitySource",
    "codespaces": "codespaces:CodespacesSource",
    "interactive": "interactive:InteractiveSource",
}
DEFAULT_ORDER: tuple[str, ...] = tuple(REGISTRY)
# Known without importing them, so that a warm lookup loads only what it asks: the sources that
# need no discovery (tokens handed over), and those that can name their identity up front.
GIVEN = frozenset({"token", "external_endpoints", "access_token", "pipeline", "devops_pat"})
KNOWS_IDENTITY = frozenset({"azure_cli", "interactive"})


def load(name: str) -> Source:
    module_name, _, class_name = REGISTRY[name].partition(":")
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
        if name not in REGISTRY:
            raise ConfigError(
                f"unknown provider {raw.strip()!r} in {where}; use one of: {', '.join(REGISTRY)}"
            )
        if name not in names:
            names.append(name)
    return tuple(names)
