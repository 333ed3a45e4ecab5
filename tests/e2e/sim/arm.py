"""Azure Resource Manager on management.azure.com: only what `az login` asks after signing in.

The real Azure CLI lists the tenants of the signed-in user (`GET /tenants`) and then, with a
token for each tenant, that tenant's subscriptions (`GET /subscriptions`); a service principal
lists only its own tenant's subscriptions. The simulated world has no subscriptions, so `az
login` needs `--allow-no-subscriptions` and keeps a tenant-level account, as for the many Azure
DevOps users without an Azure subscription. Both lists are pages in ARM's shape
(`{"value": [...]}`, no `nextLink`); a request without a valid ARM token of the simulated Entra
gets ARM's 401.
"""

from __future__ import annotations

import time

from . import jwts, world
from .credentials import presented
from .httpserver import Request, Response, json_response, not_found
from .state import SimState

# The audiences Entra puts in tokens for ARM: the classic resource id (what az asks for) and the
# newer one.
ARM_AUDIENCES = frozenset(
    {
        world.ARM_RESOURCE,
        world.ARM_RESOURCE.rstrip("/"),
        "https://management.azure.com/",
        "https://management.azure.com",
    }
)

# What ARM answers a request it cannot authenticate with, beside the JSON error.
CHALLENGE = (
    'Bearer authorization_uri="https://login.windows.net/", error="invalid_token", '
    'error_description="The access token is missing or invalid."'
)


def _error(status: int, code: str, message: str) -> Response:
    headers = [("WWW-Authenticate", CHALLENGE)] if status == 401 else None
    return json_response(status, {"error": {"code": code, "message": message}}, headers)


class ResourceManager:
    def __init__(self, state: SimState) -> None:
        self.state = state

    def handle(self, request: Request) -> Response:
        segs = [s.lower() for s in request.segments()]
        if request.method != "GET" or segs not in (["tenants"], ["subscriptions"]):
            return not_found()
        request.note.kind = "arm"
        if not request.params().get("api-version"):
            return _error(
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            )
        shown = presented(request)
        if shown.scheme != "bearer" or not shown.secret:
            return _error(
                401,
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is missing.",
            )
        claims = jwts.verify(shown.secret, self.state.keys.entra.public_key)
        if claims is None or claims.get("aud") not in ARM_AUDIENCES:
            return _error(
                401,
                "InvalidAuthenticationToken",
                "The access token is invalid. The audience or the signature is not ARM's.",
            )
        exp = claims.get("exp")
        if not isinstance(exp, int) or exp <= time.time():
            return _error(
                401,
                "ExpiredAuthenticationToken",
                "The access token expiry UTC time is earlier than current UTC time.",
            )
        tid = str(claims.get("tid", ""))
        if segs == ["subscriptions"]:
            # No subscriptions in the simulated world, for anyone.
            return json_response(200, {"count": {"type": "Total", "value": 0}, "value": []})
        upn = claims.get("upn")
        if claims.get("idtyp") == "user" and isinstance(upn, str):
            request.note.principal = upn
            ids = [t for t in world.TENANTS if self.state.user_in_tenant(upn, t)]
        else:
            ids = [tid] if tid in world.TENANTS else []
        return json_response(200, {"value": [_tenant_entry(world.TENANTS[t]) for t in ids]})


def _tenant_entry(tenant: world.Tenant) -> dict[str, object]:
    """A tenant as `GET /tenants?api-version=2022-12-01` lists it."""
    return {
        "id": f"/tenants/{tenant.id}",
        "tenantId": tenant.id,
        "countryCode": "US",
        "displayName": tenant.display_name,
        "domains": [tenant.domain, *tenant.custom_domains],
        "tenantCategory": "Home",
        "defaultDomain": tenant.domain,
        "tenantType": "AAD",
    }
