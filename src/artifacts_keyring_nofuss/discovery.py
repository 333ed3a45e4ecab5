"""The anonymous probe: one GET of the feed, whose 401 names the tenant and the token service."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from . import endpoints
from . import log as _log
from .errors import DiscoveryError
from .feeds import Feed

if TYPE_CHECKING:
    from .challenges import Challenge
    from .http import Network, Response


class Discovery(NamedTuple):
    tenant: str | None  # GUID or domain; None for an organisation without an Entra tenant
    authority: str  # https://login.../{tenant or organizations}
    authorization_endpoint: str  # validated session-token service, ending in '/'


def discover(feed: Feed, http: Network) -> Discovery:
    response = http.get(feed.url)
    return interpret(feed, response)


def interpret(feed: Feed, response: Response) -> Discovery:
    """Validate what the anonymous answer says; raise DiscoveryError rather than trust it."""
    if 300 <= response.status < 400:
        raise DiscoveryError(
            f"{feed.host} redirected the anonymous request instead of asking for sign-in",
            "check the feed URL",
        )
    from . import challenges  # only when the feed is asked: a warm lookup reads the cache

    found = challenges.parse(response.header_values("WWW-Authenticate"))
    bearer = next((c for c in found if c.scheme == "bearer"), None)
    resource_tenant = (response.header("X-VSS-ResourceTenant") or "").strip().lower()
    endpoint_header = response.header("X-VSS-AuthorizationEndpoint")
    if bearer is None and not resource_tenant and endpoint_header is None:
        if response.status == 429 or response.status >= 500:
            raise DiscoveryError(
                f"{feed.host} answered HTTP {response.status} (busy or down) to every try",
                "try again later",
            )
        raise DiscoveryError(
            f"{feed.host} answered {response.status} without Azure DevOps sign-in headers",
            "check that the URL is an Azure Artifacts feed",
        )
    try:
        authority, tenant = _authority(bearer)
        tenant = _reconcile_tenant(tenant, resource_tenant)
        if tenant is not None and authority.endswith("/organizations"):
            authority = authority.rsplit("/", 1)[0] + "/" + tenant
        if endpoint_header is None:
            token_service = endpoints.default_authorization_endpoint(feed.host, feed.org)
        else:
            token_service = endpoints.authorization_endpoint(endpoint_header.strip(), feed.org)
    except endpoints.UntrustedEndpoint as exc:
        raise DiscoveryError(
            f"not sending any token for {feed.host}/{feed.org}: {exc}",
            "check the network: a proxy or DNS entry may be tampering with the feed's answer",
        ) from None
    result = Discovery(tenant=tenant, authority=authority, authorization_endpoint=token_service)
    _log.debug(
        "discovery for %s: tenant %s, authority %s, token service %s",
        feed.org,
        tenant or "(none)",
        authority,
        token_service,
    )
    return result


def _authority(bearer: Challenge | None) -> tuple[str, str | None]:
    if bearer is None or "authorization_uri" not in bearer.params:
        return endpoints.DEFAULT_AUTHORITY, None
    return endpoints.login_authority(bearer.params["authorization_uri"].strip())


def _reconcile_tenant(from_uri: str | None, header: str) -> str | None:
    if not header or endpoints.is_null_tenant(header):
        return from_uri
    if not endpoints.valid_tenant(header):
        raise endpoints.UntrustedEndpoint(f"X-VSS-ResourceTenant {header!r} is not a tenant id")
    if from_uri is not None and endpoints.is_guid(from_uri) and from_uri != header:
        raise endpoints.UntrustedEndpoint(
            f"the challenge names tenant {from_uri} but X-VSS-ResourceTenant says {header}"
        )
    return from_uri or header
