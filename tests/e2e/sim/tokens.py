"""Minting Entra-shaped tokens: access tokens for users and apps, ID tokens, client_info."""

from __future__ import annotations

import json
import secrets
from typing import Any

from . import jwts, world
from .jwts import SigningKey

APP_ROLES = ["Packaging.ReadWrite"]


def entra_issuer(tid: str) -> str:
    return f"https://sts.windows.net/{tid}/"


def user_access_token(
    key: SigningKey,
    user: world.User,
    tid: str,
    resource: str,
    client_id: str,
    lifetime: int,
    issued_at: int | None = None,
    scope: str = world.USER_IMPERSONATION,
) -> str:
    """`scope`: the delegated permissions granted, space-separated, as the scp claim has them."""
    iat = jwts.now() if issued_at is None else issued_at
    given, _, family = user.display_name.partition(" ")
    claims: dict[str, Any] = {
        "aud": resource,
        "iss": entra_issuer(tid),
        "iat": iat,
        "nbf": iat,
        "exp": iat + lifetime,
        "acr": "1",
        "amr": ["pwd"],
        "appid": client_id,
        "appidacr": "0",
        "family_name": family,
        "given_name": given,
        "idtyp": "user",
        "ipaddr": "127.0.0.1",
        "name": user.display_name,
        "oid": user.oid,
        "rh": "0.sim.",
        "scp": scope,
        "sub": jwts.b64url(user.oid.encode() + resource.encode())[:43],
        "tid": tid,
        "unique_name": user.upn,
        "upn": user.upn,
        "uti": secrets.token_urlsafe(16),
        "ver": "1.0",
    }
    if tid != user.tenant:
        claims["idp"] = entra_issuer(user.tenant)
    return jwts.sign(key, claims)


def app_access_token(
    key: SigningKey,
    app: world.AppIdentity,
    resource: str,
    lifetime: int,
    issued_at: int | None = None,
) -> str:
    iat = jwts.now() if issued_at is None else issued_at
    claims: dict[str, Any] = {
        "aud": resource,
        "iss": entra_issuer(app.tenant),
        "iat": iat,
        "nbf": iat,
        "exp": iat + lifetime,
        "aio": secrets.token_urlsafe(24),
        "appid": app.client_id,
        # 1: client secret; 2: certificate or assertion (managed identities are 2 as well).
        "appidacr": "1" if app.kind == world.SECRET else "2",
        "idp": entra_issuer(app.tenant),
        "idtyp": "app",
        "oid": app.object_id,
        "rh": "0.sim.",
        "roles": APP_ROLES,
        "sub": app.object_id,
        "tid": app.tenant,
        "uti": secrets.token_urlsafe(16),
        "ver": "1.0",
    }
    if app.kind in (world.MI_SYSTEM, world.MI_USER):
        kind = (
            "virtualMachines/vm1"
            if app.kind == world.MI_SYSTEM
            else (f"userAssignedIdentities/{app.name}")
        )
        provider = (
            "Microsoft.Compute" if app.kind == world.MI_SYSTEM else ("Microsoft.ManagedIdentity")
        )
        claims["xms_mirid"] = (
            "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/sim/providers/"
            f"{provider}/{kind}"
        )
    return jwts.sign(key, claims)


def id_token(
    key: SigningKey,
    user: world.User,
    tid: str,
    client_id: str,
    lifetime: int,
    nonce: str | None = None,
) -> str:
    """The v2 ID token; `nonce` is the authorize request's, which MSAL checks."""
    iat = jwts.now()
    claims: dict[str, Any] = {
        "aud": client_id,
        "iss": f"https://login.microsoftonline.com/{tid}/v2.0",
        "iat": iat,
        "nbf": iat,
        "exp": iat + lifetime,
        "name": user.display_name,
        "oid": user.oid,
        "preferred_username": user.upn,
        "sub": jwts.b64url(user.oid.encode() + client_id.encode())[:43],
        "tid": tid,
        "ver": "2.0",
    }
    if nonce is not None:
        claims["nonce"] = nonce
    return jwts.sign(key, claims)


def client_info(user: world.User) -> str:
    """MSAL's home account: the user's home tenant, whatever tenant the token is for."""
    return jwts.b64url(json.dumps({"uid": user.oid, "utid": user.tenant}).encode())
