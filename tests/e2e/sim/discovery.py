"""The anonymous 401 of a feed host: challenges and the headers that locate tenant and
token service, with per-organisation overrides for hostile-server tests."""

from __future__ import annotations

import json

from . import jwts, world
from .httpserver import Response, header_bytes
from .state import DiscoveryOverride

SCALE_UNIT = f"https://{world.SCALE_UNIT_HOST}/"


def authorization_endpoint(org: world.Org, legacy: bool) -> str:
    if legacy:
        return f"https://{world.legacy_vssps_host(org.name)}/"
    return f"https://{world.VSSPS_HOST}/{org.name}/"


def default_headers(org: world.Org, legacy: bool) -> list[tuple[str, str]]:
    if org.tenant is None:
        # Azure DevOps Server: Windows auth and Basic for PATs, no Entra, no FedAuth headers.
        return [
            ("WWW-Authenticate", "Negotiate"),
            ("WWW-Authenticate", "NTLM"),
            ("WWW-Authenticate", f'Basic realm="{world.ONPREM_HOST}"'),
            ("X-VSS-E2EID", jwts.new_guid()),
        ]
    return [
        (
            "WWW-Authenticate",
            f"Bearer authorization_uri=https://login.microsoftonline.com/{org.tenant}",
        ),
        ("WWW-Authenticate", f'Basic realm="{SCALE_UNIT}"'),
        ("WWW-Authenticate", "TFS-Federated"),
        ("X-TFS-FedAuthRealm", SCALE_UNIT),
        ("X-TFS-FedAuthIssuer", SCALE_UNIT),
        ("X-VSS-ResourceTenant", org.tenant),
        ("X-VSS-AuthorizationEndpoint", authorization_endpoint(org, legacy)),
        ("X-VSS-E2EID", jwts.new_guid()),
        ("X-TFS-ProcessId", jwts.new_guid()),
    ]


def apply_override(
    headers: list[tuple[str, str]], override: DiscoveryOverride | None
) -> list[tuple[str, str | bytes]]:
    result: list[tuple[str, str | bytes]] = list(headers)
    if override is None:
        return result
    if override.bare_bearer:
        result = [
            (k, "Bearer" if k.lower() == "www-authenticate" and v.startswith("Bearer") else v)
            for k, v in headers
        ]
    for name, value in override.headers.items():
        result = [(k, v) for k, v in result if k.lower() != name.lower()]
        if value is None:
            continue
        for line in [value] if isinstance(value, (str, bytes)) else value:
            result.append((name, line))
    if override.combine_challenges:
        challenges = [v for k, v in result if k.lower() == "www-authenticate"]
        result = [(k, v) for k, v in result if k.lower() != "www-authenticate"]
        if challenges:
            texts = [v for v in challenges if isinstance(v, str)]
            combined: str | bytes = (
                ", ".join(texts)
                if len(texts) == len(challenges)
                else b", ".join(header_bytes(v) for v in challenges)
            )
            result.insert(0, ("WWW-Authenticate", combined))
    return result


def unauthorized(
    org: world.Org, legacy: bool, override: DiscoveryOverride | None, message: str | None = None
) -> Response:
    headers = apply_override(default_headers(org, legacy), override)
    body = json.dumps(
        {
            "$id": "1",
            "innerException": None,
            "message": message
            or "TF400813: The user '' is not authorized to access this resource.",
            "typeName": "Microsoft.TeamFoundation.Framework.Server.UnauthorizedRequestException, "
            "Microsoft.TeamFoundation.Framework.Server",
            "typeKey": "UnauthorizedRequestException",
            "errorCode": 0,
            "eventId": 3000,
        }
    ).encode()
    return Response(401, [*headers, ("Content-Type", "application/json; charset=utf-8")], body)
