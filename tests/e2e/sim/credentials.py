"""What a request presents (Authorization header) and what the simulated services make of it."""

from __future__ import annotations

import base64
import binascii
import time
from dataclasses import dataclass
from typing import Any

from . import jwts, world
from .httpserver import Request
from .state import SimState

SESSION = "session"
PAT = "pat"
PIPELINE = "pipeline"  # Azure Pipelines' System.AccessToken
GITHUB_REQUEST = "github-request"  # ACTIONS_ID_TOKEN_REQUEST_TOKEN
ENTRA_USER = "entra-user"
ENTRA_APP = "entra-app"
UNKNOWN = "unknown"


@dataclass(frozen=True)
class Presented:
    scheme: str  # none, basic, bearer, or the scheme as sent
    secret: str | None
    username: str | None = None


def presented(request: Request) -> Presented:
    header = request.header("Authorization")
    if not header or not header.strip():
        return Presented("none", None)
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    lowered = scheme.lower()
    if lowered == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8", "replace")
        except (binascii.Error, ValueError):
            return Presented("basic", value or None)
        username, sep, password = decoded.partition(":")
        return Presented("basic", password if sep else decoded, username if sep else None)
    return Presented(lowered, value or None)


@dataclass(frozen=True)
class Identified:
    kind: str
    principal: str | None = None  # upn for users, client id for apps
    tenant: str | None = None
    org: str | None = None  # sessions and PATs: the org they are bound to
    scopes: frozenset[str] = frozenset()
    claims: dict[str, Any] | None = None
    # Why the credential cannot be used at all (bad signature, expired, ...), or None.
    problem: str | None = None


def identify(state: SimState, secret: str) -> Identified:
    with state.lock:
        session = state.grants.sessions.get(secret)
        pat = state.grants.pats.get(secret)
        github = state.grants.github_requests.get(secret)
    if session is not None:
        problem = "expired" if session.valid_to <= time.time() else None
        return Identified(
            SESSION, session.upn, session.tenant, session.org, session.scopes, problem=problem
        )
    if pat is not None:
        expired = pat.valid_to is not None and pat.valid_to <= time.time()
        return Identified(
            PIPELINE if pat.pipeline else PAT,
            pat.label,
            None,
            pat.org,
            pat.scopes,
            problem="expired" if expired else None,
        )
    if github is not None:
        return Identified(GITHUB_REQUEST, github.subject)
    shaped = jwts.unverified(secret)
    if shaped is None:
        return Identified(UNKNOWN, problem="not a credential the simulator issued")
    _, claims = shaped
    issuer = str(claims.get("iss", ""))
    if not (issuer.startswith("https://sts.windows.net/") or issuer.startswith("https://login.")):
        return Identified(UNKNOWN, problem=f"JWT from an unknown issuer {issuer!r}")
    kind = ENTRA_APP if is_app_token(claims) else ENTRA_USER
    principal = claims.get("appid") if kind == ENTRA_APP else claims.get("upn")
    tenant = claims.get("tid")
    return Identified(
        kind,
        str(principal).lower() if principal else None,
        str(tenant) if tenant else None,
        claims=claims,
        problem=entra_problem(state, secret),
    )


def is_app_token(claims: dict[str, Any]) -> bool:
    if "idtyp" in claims:
        return bool(claims["idtyp"] == "app")
    return "scp" not in claims


def entra_problem(state: SimState, token: str) -> str | None:
    """Why an access token is not a valid Azure DevOps token from the simulated Entra."""
    claims = jwts.verify(token, state.keys.entra.public_key)
    if claims is None:
        return "signature"
    if claims.get("aud") not in world.DEVOPS_AUDIENCES:
        return f"audience {claims.get('aud')!r}"
    tid = claims.get("tid")
    if tid not in world.TENANTS:
        return "tenant"
    if claims.get("iss") not in (
        f"https://sts.windows.net/{tid}/",
        f"https://login.microsoftonline.com/{tid}/v2.0",
    ):
        return "issuer"
    now = time.time()
    if not isinstance(claims.get("exp"), int) or claims["exp"] <= now:
        return "expired"
    if isinstance(claims.get("nbf"), int) and claims["nbf"] > now + 300:
        return "not yet valid"
    return None
