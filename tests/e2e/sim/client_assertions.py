"""Client assertions on the token endpoint: certificate credentials and federated ones."""

from __future__ import annotations

import base64
import binascii
import time
import urllib.parse
from typing import Any

from cryptography.hazmat.primitives.serialization import load_pem_public_key

from . import jwts, world
from .jwts import SigningKey
from .oauth import OAuthError
from .state import SimState

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def _audience_ok(audience: Any, tenant: world.Tenant) -> bool:
    candidates = audience if isinstance(audience, list) else [audience]
    for aud in candidates:
        parts = urllib.parse.urlsplit(str(aud))
        segs = [s for s in parts.path.split("/") if s]
        if (
            parts.scheme == "https"
            and (parts.hostname or "") in world.LOGIN_HOSTS
            and segs
            and world.tenant_of_name(segs[0]) == tenant
            and [s.lower() for s in segs[1:]]
            in (["oauth2", "v2.0", "token"], ["oauth2", "token"], ["v2.0"], [])
        ):
            return True
    return False


def check_certificate_assertion(
    state: SimState, assertion: str, app: world.AppIdentity, tenant: world.Tenant
) -> None:
    """A client assertion signed with the app's registered certificate (x5t or x5t#S256,
    RS256 or PS256), issued by and about the app, for this tenant's token endpoint."""
    shaped = jwts.unverified(assertion)
    if shaped is None:
        raise OAuthError(400, "invalid_request", 50027, "JWT token is invalid or malformed.")
    header, claims = shaped
    cert = state.keys.certs.get(app.client_id)
    thumb = ""
    try:
        if header.get("x5t#S256"):
            thumb = base64.urlsafe_b64decode(header["x5t#S256"] + "==").hex()
            matches = cert is not None and thumb == cert.sha256_thumbprint
        else:
            thumb = base64.urlsafe_b64decode(str(header.get("x5t", "")) + "==").hex()
            matches = cert is not None and thumb == cert.sha1_thumbprint
    except (binascii.Error, ValueError):
        matches = False
    if not matches or cert is None:
        raise OAuthError(
            401,
            "invalid_client",
            700027,
            "The certificate with identifier used to sign the client assertion is not "
            "registered on application. [Reason - The key was not found., Thumbprint of key "
            f"used by client: '{thumb.upper()}']",
        )
    verified = jwts.verify(
        assertion, load_pem_public_key(cert.public_key_pem), algorithms=("RS256", "PS256")
    )
    if verified is None:
        raise OAuthError(
            401,
            "invalid_client",
            7000274,
            "Key was found, but use of the key to verify the signature failed.",
        )
    if claims.get("iss") != app.client_id or claims.get("sub") != app.client_id:
        raise OAuthError(
            401,
            "invalid_client",
            700023,
            "Client assertion issuer and subject must both be the client id.",
        )
    if not _audience_ok(claims.get("aud"), tenant):
        raise OAuthError(
            401,
            "invalid_client",
            700212,
            f"Client assertion audience claim does not match the token endpoint "
            f"(got {claims.get('aud')!r}).",
        )
    _check_time(claims)


def _check_time(claims: dict[str, Any]) -> None:
    exp, nbf, now = claims.get("exp"), claims.get("nbf"), time.time()
    if (
        not isinstance(exp, (int, float))
        or exp <= now
        or (isinstance(nbf, (int, float)) and nbf > now + 300)
    ):
        raise OAuthError(
            401,
            "invalid_client",
            700024,
            "Client assertion is not within its valid time range.",
        )


def issuer_key(state: SimState, issuer: str | None) -> SigningKey:
    """The key an OIDC issuer Entra trusts signs with: GitHub Actions' or Azure Pipelines'."""
    return state.keys.github if issuer == world.GITHUB_ISSUER else state.keys.oidc


def check_federated_assertion(state: SimState, assertion: str, app: world.AppIdentity) -> None:
    """An assertion from the registered OIDC issuer (Azure Pipelines or GitHub Actions), about
    the registered subject, for api://AzureADTokenExchange (workload identity federation)."""
    shaped = jwts.unverified(assertion)
    if shaped is None:
        raise OAuthError(400, "invalid_request", 50027, "JWT token is invalid or malformed.")
    _, claims = shaped
    if claims.get("iss") != app.federated_issuer:
        raise OAuthError(
            400,
            "invalid_client",
            700211,
            "No matching federated identity record found for presented assertion issuer "
            f"'{claims.get('iss')}'.",
        )
    if jwts.verify(assertion, issuer_key(state, app.federated_issuer).public_key) is None:
        raise OAuthError(
            401,
            "invalid_client",
            700027,
            "Client assertion failed signature validation.",
        )
    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    if world.FEDERATED_AUDIENCE not in audiences:
        raise OAuthError(
            400,
            "invalid_client",
            700212,
            "No matching federated identity record found for presented assertion audience "
            f"'{audience}'.",
        )
    if claims.get("sub") != app.federated_subject:
        raise OAuthError(
            400,
            "invalid_client",
            700213,
            "No matching federated identity record found for presented assertion subject "
            f"'{claims.get('sub')}'.",
        )
    _check_time(claims)
