"""The token service (vssps): Entra user token -> Azure DevOps session token.

Served on vssps.dev.azure.com/{org}/, {org}.vssps.visualstudio.com and
app.vssps.visualstudio.com, at _apis/Token/SessionTokens.
"""

from __future__ import annotations

import dataclasses
import json
import re
import secrets
import time
import urllib.parse
from datetime import datetime, timezone
from typing import Any

from . import jwts, world
from .credentials import ENTRA_USER, identify, presented
from .feeds import never_signed_in_message
from .httpserver import Request, Response, json_response, not_found, text_response
from .state import PatRestriction, SessionGrant, SimState

KNOWN_SCOPES = frozenset(
    {
        "app_token",
        "vso.packaging",
        "vso.packaging_write",
        "vso.packaging_manage",
        "vso.drop",
        "vso.drop_write",
        "vso.drop_manage",
        "vso.code",
        "vso.code_write",
        "vso.build",
        "vso.build_execute",
        "vso.profile",
        "vso.identity",
        "vso.project",
        "vso.work",
        "vso.tokens",
    }
)
SESSION_ISSUER = "app.vstoken.visualstudio.com"
PACKAGING_SCOPES = frozenset({"vso.packaging", "vso.packaging_write", "vso.packaging_manage"})
# The organisation policy "Restrict personal access token creation". What is public: git
# credential manager prints the error's "message" field, and its users saw
# "DisablePatCreationPolicyViolation" there (git-credential-manager #2344, PR #2346); a sibling
# error of the same exchange, FailedToReadTenantPolicy, came as HTTP 400 (#355). The status, the
# typeKey and any longer wording are not public: the styles below cover what a client may meet.
PAT_POLICY_ERROR = "DisablePatCreationPolicyViolation"
PAT_POLICY_SENTENCE = (
    "Your organization's policy restricts the creation of personal access tokens. Ask a "
    "Project Collection Administrator to add you to the policy's allowlist, or sign in with "
    "Microsoft Entra ID instead."
)


def iso(moment: float) -> str:
    """UTC as Azure DevOps (Json.NET) writes it: up to 7 fractional digits, trailing zeros
    dropped, e.g. 2026-11-21T18:00:00.5266667Z or 2026-11-21T18:00:00Z."""
    whole = int(moment)
    ticks = f"{int((moment - whole) * 10_000_000):07d}".rstrip("0")
    stamp = datetime.fromtimestamp(whole, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{ticks}Z" if ticks else f"{stamp}Z"


def parse_iso(text: str) -> float:
    """ISO 8601 as .NET writes it (Z or offset, up to 7 fractional digits); naive means UTC."""
    cleaned = text.strip()
    if cleaned.endswith(("Z", "z")):
        cleaned = cleaned[:-1] + "+00:00"
    cleaned = re.sub(r"(\.\d{6})\d+", r"\1", cleaned)
    moment = datetime.fromisoformat(cleaned)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def _message(status: int, message: str, type_key: str) -> Response:
    return json_response(
        status,
        {
            "$id": "1",
            "innerException": None,
            "message": message,
            "typeName": f"Microsoft.VisualStudio.Services.DelegatedAuthorization.{type_key}, "
            "Microsoft.VisualStudio.Services.WebApi",
            "typeKey": type_key,
            "errorCode": 0,
            "eventId": 3000,
        },
    )


def pat_policy_refusal(restriction: PatRestriction) -> Response:
    """The exchange's answer while an organisation restricts PAT creation, in one of the
    styles of PatRestriction: "type-key" (message, typeKey and typeName all name it),
    "error-name" (only the message, as GCM's users saw it; a generic typeKey) or "message"
    (a sentence, nothing to key on)."""
    if restriction.style == "type-key":
        return _message(restriction.status, PAT_POLICY_ERROR, f"{PAT_POLICY_ERROR}Exception")
    if restriction.style == "error-name":
        return _message(restriction.status, PAT_POLICY_ERROR, "SessionTokenCreateException")
    return _message(restriction.status, PAT_POLICY_SENTENCE, "SessionTokenCreateException")


def is_token_host(host: str) -> bool:
    return host in (world.VSSPS_HOST, world.APP_VSSPS_HOST) or (
        host.endswith(".vssps.visualstudio.com") and host.count(".") == 3
    )


class TokenService:
    def __init__(self, state: SimState) -> None:
        self.state = state

    def handle(self, request: Request) -> Response:
        segs = [s.lower() for s in request.segments()]
        org: world.Org | None
        if request.host == world.VSSPS_HOST:
            if not segs:
                return not_found()
            org = world.org_named(segs[0])
            if org is None or org.tenant is None:
                return not_found()
            segs = segs[1:]
        elif request.host == world.APP_VSSPS_HOST:
            org = None
            if segs[:1] == ["_signin"]:
                return text_response(200, "<html><body>Sign in</body></html>", "text/html")
        else:
            org = world.org_named(request.host.split(".", 1)[0])
            if org is None or org.tenant is None:
                return not_found()
        if segs != ["_apis", "token", "sessiontokens"]:
            return not_found()
        request.note.kind = "exchange"
        if request.method != "POST":
            return _message(
                405,
                f"The requested resource does not support http method '{request.method}'.",
                "HttpMethodNotAllowed",
            )
        return self._exchange(request, org)

    def _refuse(self, request: Request, message: str) -> Response:
        suppress = (request.header("X-TFS-FedAuthRedirect") or "").lower() == "suppress"
        request.note.extra["refused"] = message.split(":", 1)[0]
        if not suppress:
            # Without the header the service sends a browser to its sign-in page.
            reply = urllib.parse.quote(request.url, safe="")
            return Response(
                302,
                [
                    (
                        "Location",
                        f"https://{world.APP_VSSPS_HOST}/_signin?realm={request.host}"
                        f"&reply_to={reply}&redirect=1",
                    ),
                    ("Content-Type", "text/html; charset=utf-8"),
                ],
                b"<html><body>Object moved</body></html>",
            )
        return _message(401, message, "UnauthorizedRequestException")

    def _exchange(self, request: Request, org: world.Org | None) -> Response:
        params = {k.lower(): v for k, v in request.params().items()}
        token_type = params.get("tokentype", "SelfDescribing")
        request.note.token_type = token_type
        shown = presented(request)
        denied = "TF400813: The user '' is not authorized to access this resource."
        if shown.scheme != "bearer" or not shown.secret:
            return self._refuse(request, denied)
        ident = identify(self.state, shown.secret)
        if ident.kind != ENTRA_USER or ident.problem is not None or ident.principal is None:
            request.note.extra["reason"] = ident.problem or f"not a user token ({ident.kind})"
            return self._refuse(request, denied)
        upn = ident.principal
        denied = f"TF400813: The user '{upn}' is not authorized to access this resource."
        granted = str((ident.claims or {}).get("scp", "")).split()
        if world.USER_IMPERSONATION not in granted:
            # A token scoped to some of Azure DevOps (vso.packaging, ...) cannot act for the
            # user in general, so it cannot mint a token that would.
            request.note.extra["reason"] = f"scp {' '.join(granted) or '(none)'}"
            return self._refuse(request, denied)
        if org is not None:
            if ident.tenant != org.tenant:
                return self._refuse(request, denied)
            with self.state.lock:
                restriction = self.state.knobs.pat_restrictions.get(org.name.lower())
            if restriction is not None and not _exempt(restriction, upn, request):
                request.note.extra["refused"] = PAT_POLICY_ERROR
                return pat_policy_refusal(restriction)
            if self.state.role(upn, org.name) is None:
                return self._refuse(request, denied)
            with self.state.lock:
                never = (upn, org.name.lower()) in self.state.knobs.never_signed_in
            if never:
                return self._refuse(request, never_signed_in_message(upn, org))
        if not params.get("api-version"):
            return _message(
                400,
                'No api-version was supplied for the "POST" request. The version must be '
                'supplied either as part of the Accept header (e.g. "application/json; '
                "api-version=1.0\") or as a query parameter (e.g. '?api-version=1.0').",
                "VssVersionNotSpecifiedException",
            )
        try:
            body: Any = json.loads(request.body.decode("utf-8-sig") or "{}")
        except (UnicodeDecodeError, ValueError):
            return _message(400, "The request body is not valid JSON.", "InvalidRequestBody")
        if not isinstance(body, dict):
            return _message(400, "The request body must be a JSON object.", "InvalidRequestBody")
        return self._issue(request, org, ident.tenant or "", upn, body, token_type)

    def _issue(
        self,
        request: Request,
        org: world.Org | None,
        tenant: str,
        upn: str,
        body: dict[str, Any],
        token_type: str,
    ) -> Response:
        scope = body.get("scope")
        scope_text = scope if isinstance(scope, str) and scope.strip() else "app_token"
        request.note.scope = scope_text
        valid_to = body.get("validTo")
        request.note.valid_to = None if valid_to is None else str(valid_to)
        unknown = [s for s in scope_text.split() if s not in KNOWN_SCOPES]
        if unknown:
            return _message(
                400,
                f"The scope '{unknown[0]}' is not a valid scope.",
                "SessionTokenCreateException",
            )
        with self.state.lock:
            policy = dataclasses.replace(self.state.knobs.policy(org.name if org else "*"))
        now = time.time()
        max_seconds = policy.max_session_hours * 3600
        if valid_to not in (None, ""):
            if policy.refuse_validto:
                return _message(
                    400,
                    "The validTo value is not accepted by this organization.",
                    "SessionTokenCreateException",
                )
            try:
                wanted = parse_iso(str(valid_to))
            except ValueError:
                return _message(
                    400,
                    f"The value '{valid_to}' is not a valid validTo date.",
                    "SessionTokenCreateException",
                )
            if wanted <= now:
                return _message(
                    400, "The validTo date must be in the future.", "SessionTokenCreateException"
                )
            # A minute's grace for the client's clock and the time the request took.
            if wanted - now > max_seconds + 60:
                return _message(
                    400,
                    "The requested expiration date exceeds the maximum lifespan allowed by your "
                    f"organization's policy ({policy.max_session_hours:g} hours). Request a "
                    "token with an earlier expiration date.",
                    "SessionTokenCreateException",
                )
        else:
            wanted = now + min(policy.default_session_hours * 3600, max_seconds)
        if policy.session_cap_seconds is not None:
            wanted = min(wanted, now + policy.session_cap_seconds)
        return self._answer(request, org, tenant, upn, body, scope_text, token_type, now, wanted)

    def _answer(
        self,
        request: Request,
        org: world.Org | None,
        tenant: str,
        upn: str,
        body: dict[str, Any],
        scope: str,
        token_type: str,
        now: float,
        valid_to: float,
    ) -> Response:
        authorization_id = jwts.new_guid()
        user = world.USERS[upn]
        if token_type.lower() == "compact":
            token = secrets.token_hex(26)  # 52 characters, like a PAT
        else:
            audience = f"{SESSION_ISSUER}|vso:{org.guid}" if org else SESSION_ISSUER
            token = jwts.sign(
                self.state.keys.devops,
                {
                    "nameid": user.oid,
                    "scp": scope,
                    "aui": authorization_id,
                    "sid": jwts.new_guid(),
                    "iss": SESSION_ISSUER,
                    "aud": audience,
                    "nbf": int(now),
                    "exp": int(valid_to),
                },
            )
        grant = SessionGrant(
            org.name.lower() if org else None,
            tenant,
            frozenset(scope.split()),
            upn,
            valid_to,
            authorization_id,
        )
        with self.state.lock:
            self.state.grants.sessions[token] = grant
        self.state.remember(token)
        targets = body.get("targetAccounts")
        return json_response(
            200,
            {
                "clientId": "00000000-0000-0000-0000-000000000000",
                "accessId": jwts.new_guid(),
                "authorizationId": authorization_id,
                "hostAuthorizationId": "00000000-0000-0000-0000-000000000000",
                "userId": user.oid,
                "validFrom": iso(now),
                "validTo": iso(valid_to),
                "displayName": str(body.get("displayName") or ""),
                "scope": scope,
                "targetAccounts": targets
                if isinstance(targets, list)
                else ([org.guid] if org else []),
                "token": token,
                "alternateToken": None,
                "isValid": True,
                "isPublic": False,
                "publicData": None,
                "source": None,
                "claims": None,
            },
        )


def _exempt(restriction: PatRestriction, upn: str, request: Request) -> bool:
    """Whether the policy lets this user mint this token: the allowlist, or the sub-policy
    that allows tokens whose scopes are all packaging ones."""
    if upn.lower() in restriction.allowlist:
        return True
    if not restriction.allow_packaging:
        return False
    try:
        body: Any = json.loads(request.body.decode("utf-8-sig") or "{}")
    except (UnicodeDecodeError, ValueError):
        return False
    scope = body.get("scope") if isinstance(body, dict) else None
    scopes = scope.split() if isinstance(scope, str) else []
    return bool(scopes) and set(scopes) <= PACKAGING_SCOPES
