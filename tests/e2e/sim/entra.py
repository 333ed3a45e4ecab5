"""Simulated Entra ID on login.microsoftonline.com and its aliases.

Covers what MSAL, azure-identity and the Azure CLI ask for: instance and tenant discovery,
signing keys, user realm, the v1 and v2 token endpoints (password, refresh_token,
client_credentials with a secret, a certificate assertion or a federated assertion, device
code, authorization_code with PKCE), the device-code endpoint, and the v2 authorize endpoint
as a browser that is already signed in sees it (`Knobs.browser`). Failures carry the standard
OAuth error JSON with an AADSTS code, like the real service; the authorize endpoint answers
them in the browser (an HTML page, or an error sent back to the redirect URI).
"""

from __future__ import annotations

import base64
import hashlib
import html
import secrets
import time
import urllib.parse
from typing import Any

from . import jwts, tokens, world
from .client_assertions import JWT_BEARER, check_certificate_assertion, check_federated_assertion
from .credentials import presented
from .httpserver import Request, Response, json_response, not_found, text_response
from .oauth import OAuthError, describe, oauth_error_response, resource_of_scope
from .state import AUTH_CODE_LIFETIME, AuthCode, DeviceCode, RefreshGrant, SimState

RESERVED_SCOPES = {"openid", "profile", "offline_access", "email"}
DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
META_TENANTS = ("common", "organizations")
# Public clients may use any port (and path) on the loopback, as Entra allows for
# "http://localhost" registrations (RFC 8252 section 7.3).
LOOPBACK_REDIRECT_HOSTS = ("localhost", "127.0.0.1")
RESPONSE_MODES = ("query", "fragment", "form_post")
NO_STORE = [("Cache-Control", "no-store, no-cache"), ("Pragma", "no-cache")]


class Entra:
    def __init__(self, state: SimState) -> None:
        self.state = state

    # --- routing ------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        segs = request.segments()
        low = [s.lower() for s in segs]
        try:
            if low[:3] == ["common", "discovery", "instance"]:
                request.note.kind = "metadata"
                return self._instance_discovery(request)
            if low[:2] == ["common", "userrealm"] and len(segs) == 3:
                request.note.kind = "metadata"
                return self._user_realm(segs[2])
            if len(segs) >= 2:
                tenant_seg, rest = segs[0], low[1:]
                if rest in (
                    ["v2.0", ".well-known", "openid-configuration"],
                    [".well-known", "openid-configuration"],
                ):
                    request.note.kind = "metadata"
                    return self._openid_configuration(request, tenant_seg, v2=rest[0] == "v2.0")
                if rest in (["discovery", "v2.0", "keys"], ["discovery", "keys"]):
                    request.note.kind = "metadata"
                    return json_response(200, {"keys": [self.state.keys.entra.jwk()]})
                if request.method == "POST" and rest in (
                    ["oauth2", "v2.0", "token"],
                    ["oauth2", "token"],
                ):
                    request.note.kind = "token"
                    return self._token(request, tenant_seg, v1=rest == ["oauth2", "token"])
                if request.method == "GET" and rest == ["oauth2", "v2.0", "authorize"]:
                    request.note.kind = "authorize"
                    return self._authorize(request, tenant_seg)
                if request.method == "POST" and rest in (
                    ["oauth2", "v2.0", "devicecode"],
                    ["oauth2", "devicecode"],
                ):
                    request.note.kind = "devicecode"
                    v1 = rest == ["oauth2", "devicecode"]
                    return self._device_code(request, tenant_seg, v1=v1)
        except OAuthError as err:
            return oauth_error_response(request, err)
        return not_found()

    # --- metadata -----------------------------------------------------------------------

    def _instance_discovery(self, request: Request) -> Response:
        params = request.params()
        endpoint = params.get("authorization_endpoint", "")
        tenant = "common"
        parts = urllib.parse.urlsplit(endpoint).path.split("/")
        if len(parts) > 1 and parts[1]:
            tenant = parts[1]
        host = "login.microsoftonline.com"
        return json_response(
            200,
            {
                "tenant_discovery_endpoint": (
                    f"https://{host}/{tenant}/v2.0/.well-known/openid-configuration"
                ),
                "api-version": params.get("api-version", "1.1"),
                "metadata": [
                    {
                        "preferred_network": "login.microsoftonline.com",
                        "preferred_cache": "login.windows.net",
                        "aliases": [
                            "login.microsoftonline.com",
                            "login.windows.net",
                            "login.microsoft.com",
                            "sts.windows.net",
                        ],
                    }
                ],
            },
        )

    def _user_realm(self, username: str) -> Response:
        domain = username.rpartition("@")[2].lower()
        known = world.tenant_of_name(domain) is not None
        return json_response(
            200,
            {
                "ver": "1.0",
                "account_type": "Managed" if known else "Unknown",
                "domain_name": domain,
                "cloud_instance_name": "microsoftonline.com",
                "cloud_audience_urn": "urn:federation:MicrosoftOnline",
            },
        )

    def _tenant(self, tenant_seg: str) -> world.Tenant | None:
        """The tenant a path names; None for common/organizations."""
        if tenant_seg.lower() in META_TENANTS:
            return None
        tenant = world.tenant_of_name(tenant_seg)
        if tenant is None:
            raise OAuthError(
                400,
                "invalid_request",
                90002,
                f"Tenant '{tenant_seg}' not found. Check to make sure you have the correct tenant "
                "ID and are signing into the correct cloud. Check with your subscription "
                "administrator, this may happen if there are no active subscriptions for the "
                "tenant.",
            )
        return tenant

    def _openid_configuration(self, request: Request, tenant_seg: str, v2: bool) -> Response:
        tenant = self._tenant(tenant_seg)
        path_tenant = tenant.id if tenant else tenant_seg.lower()
        base = f"https://{request.host}/{path_tenant}"
        version = "/v2.0" if v2 else ""
        issuer_tid = tenant.id if tenant else "{tenantid}"
        issuer = (
            f"https://login.microsoftonline.com/{issuer_tid}/v2.0"
            if v2
            else f"https://sts.windows.net/{issuer_tid}/"
        )
        return json_response(
            200,
            {
                "token_endpoint": f"{base}/oauth2{version}/token",
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "private_key_jwt",
                    "client_secret_basic",
                ],
                "jwks_uri": f"{base}/discovery{version}/keys",
                "response_modes_supported": ["query", "fragment", "form_post"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "issuer": issuer,
                "request_uri_parameter_supported": False,
                "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
                "authorization_endpoint": f"{base}/oauth2{version}/authorize",
                "device_authorization_endpoint": f"{base}/oauth2{version}/devicecode",
                "http_logout_supported": True,
                "frontchannel_logout_supported": True,
                "end_session_endpoint": f"{base}/oauth2{version}/logout",
                "claims_supported": [
                    "sub",
                    "iss",
                    "cloud_instance_name",
                    "cloud_instance_host_name",
                    "cloud_graph_host_name",
                    "msgraph_host",
                    "aud",
                    "exp",
                    "iat",
                    "auth_time",
                    "acr",
                    "nonce",
                    "preferred_username",
                    "name",
                    "tid",
                    "ver",
                    "at_hash",
                    "c_hash",
                    "email",
                ],
                "kerberos_endpoint": f"{base}/kerberos",
                "tenant_region_scope": "EU",
                "cloud_instance_name": "microsoftonline.com",
                "cloud_graph_host_name": "graph.windows.net",
                "msgraph_host": "graph.microsoft.com",
                "rbac_url": "https://pas.windows.net",
            },
        )

    # --- token endpoint -------------------------------------------------------------------

    def _token(self, request: Request, tenant_seg: str, v1: bool) -> Response:
        form = request.form()
        grant = form.get("grant_type", "")
        request.note.grant_type = grant
        client_id = form.get("client_id", "")
        basic = presented(request)
        if basic.scheme == "basic" and basic.username:
            client_id = client_id or urllib.parse.unquote(basic.username)
        request.note.client_id = client_id or None
        tenant = self._tenant(tenant_seg)
        if not client_id:
            raise OAuthError(
                400,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'client_id'.",
            )
        if grant == "password":
            return self._password_grant(request, form, tenant, client_id, v1)
        if grant == "refresh_token":
            return self._refresh_grant(request, form, tenant, client_id, v1)
        if grant == "client_credentials":
            return self._client_credentials(request, form, tenant, tenant_seg, client_id, v1)
        if grant in (DEVICE_CODE_GRANT, "device_code"):
            return self._device_code_grant(request, form, client_id, v1)
        if grant == "authorization_code":
            return self._auth_code_grant(request, form, tenant, client_id, v1)
        raise OAuthError(
            400,
            "unsupported_grant_type",
            70003,
            f"The app requested an unsupported grant type '{grant}'.",
        )

    def _requested(self, form: dict[str, str], v1: bool) -> tuple[str, list[str]]:
        """(resource, reserved OIDC scopes asked for)."""
        if v1 and form.get("resource"):
            return form["resource"], ["openid"]
        scopes = form.get("scope", "").split()
        reserved = [s.lower() for s in scopes if s.lower() in RESERVED_SCOPES]
        resources = {resource_of_scope(s) for s in scopes if s.lower() not in RESERVED_SCOPES}
        if len(resources) > 1:
            raise OAuthError(
                400,
                "invalid_scope",
                28000,
                "Provided value for the input parameter scope is not valid because it contains "
                "more than one resource. Scope " + form.get("scope", "") + " is not valid.",
            )
        resource = resources.pop() if resources else world.GRAPH_RESOURCE
        return resource, reserved

    def _grant(
        self, client_id: str, tid: str, resource: str, asked: str
    ) -> tuple[list[str], list[str]]:
        """(the delegated permissions a user token gets, the scopes the v2 answer names) for a
        request of `asked` (v2 scopes, reserved ones included; "" for a v1 request, which is
        .default's) by `client_id` in tenant `tid`.

        Azure DevOps' permissions are granted as Entra grants them: a registered client gets
        every permission an administrator consented to for it, whichever of them it names (or
        .default), and AADSTS65001 for one it lacks; Microsoft's first-party clients (and any
        client id the world does not register) get user_impersonation, and a first-party client
        naming a narrower permission gets AADSTS65002. Other resources: user_impersonation."""
        wanted = [s for s in asked.split() if s.lower() not in RESERVED_SCOPES]
        names = [s.rsplit("/", 1)[1] for s in wanted if "/" in s] or [".default"]
        defaults = [s for s in wanted if s.lower().endswith("/.default")]
        base = resource if resource not in world.DEVOPS_AUDIENCES else resource.rstrip("/")
        if resource not in world.DEVOPS_AUDIENCES:
            return [world.USER_IMPERSONATION], [f"{base}/{world.USER_IMPERSONATION}", *defaults]
        if ".default" in names and len(names) > 1:
            raise OAuthError(
                400,
                "invalid_scope",
                70011,
                f"The provided value for the input parameter 'scope' is not valid. The scope "
                f"'{' '.join(wanted)}' is not valid. .default scope can't be combined with "
                "resource-specific scopes.",
            )
        client = world.PUBLIC_CLIENTS.get(client_id.lower())
        named = sorted(set(names) - {".default"})
        if client is not None:
            if client.tenant != tid:
                tenant = world.TENANTS[tid]
                raise OAuthError(
                    400,
                    "unauthorized_client",
                    700016,
                    f"Application with identifier '{client_id}' was not found in the directory "
                    f"'{tenant.display_name}'. This can happen if the application has not been "
                    "installed by the administrator of the tenant or consented to by any user "
                    "in the tenant. You may have sent your authentication request to the wrong "
                    "tenant.",
                )
            lacking = [n for n in named if n not in client.devops_permissions]
            if lacking:
                raise self._no_consent(client_id, client.name)
            # Entra's token carries every consented permission of the client on the resource,
            # not only those the request named.
            permissions = sorted(client.devops_permissions)
        elif named and named != [world.USER_IMPERSONATION]:
            if client_id.lower() in world.FIRST_PARTY_CLIENTS:
                raise OAuthError(
                    400,
                    "invalid_grant",
                    65002,
                    f"Consent between first party application '{client_id}' and first party "
                    f"resource '{world.DEVOPS_RESOURCE}' must be configured via "
                    "preauthorization - applications owned and operated by Microsoft must get "
                    "approval from the API owner before requesting tokens for that API.",
                )
            raise self._no_consent(client_id, client_id)
        else:
            permissions = [world.USER_IMPERSONATION]
        return permissions, [f"{base}/{p}" for p in permissions] + defaults

    @staticmethod
    def _no_consent(client_id: str, name: str) -> OAuthError:
        return OAuthError(
            400,
            "invalid_grant",
            65001,
            f"The user or administrator has not consented to use the application with ID "
            f"'{client_id}' named '{name}'. Send an interactive authorization request for this "
            "user and resource.",
            suberror="consent_required",
        )

    def _user_tokens(
        self,
        user: world.User,
        tid: str,
        client_id: str,
        resource: str,
        reserved: list[str],
        request: Request,
        v1: bool,
        asked: str = "",
        nonce: str | None = None,
    ) -> Response:
        with self.state.lock:
            lifetime = self.state.knobs.user_token_lifetime
        keys = self.state.keys
        permissions, answered = self._grant(client_id, tid, resource, asked)
        access = tokens.user_access_token(
            keys.entra, user, tid, resource, client_id, lifetime, scope=" ".join(permissions)
        )
        if v1:
            scope = f"{resource.rstrip('/')}/user_impersonation" + "".join(
                f" {s}" for s in reserved if s != "offline_access"
            )
        else:
            # What Entra's v2 answer names (never openid, profile or offline_access): the
            # delegated permissions granted, then the .default scope itself if it was asked
            # for. MSAL files the token under them and finds it there on a later silent request.
            scope = " ".join(answered)
        body: dict[str, Any] = {
            "token_type": "Bearer",
            "scope": scope,
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": access,
        }
        secrets_out = [access]
        if v1 or "offline_access" in reserved:
            refresh = "1.Sim" + secrets.token_urlsafe(48)
            with self.state.lock:
                self.state.grants.refresh_tokens[refresh] = RefreshGrant(
                    user.upn, client_id.lower()
                )
            body["refresh_token"] = refresh
            secrets_out.append(refresh)
        if "openid" in reserved:
            body["id_token"] = tokens.id_token(keys.entra, user, tid, client_id, lifetime, nonce)
            secrets_out.append(body["id_token"])
        if request.form().get("client_info") == "1":
            body["client_info"] = tokens.client_info(user)
        if v1:
            body.update(
                expires_on=str(jwts.now() + lifetime),
                not_before=str(jwts.now()),
                resource=resource,
            )
        self.state.remember(*secrets_out)
        request.note.principal = user.upn
        return json_response(200, body, [("Cache-Control", "no-store, no-cache")])

    def _password_grant(
        self,
        request: Request,
        form: dict[str, str],
        tenant: world.Tenant | None,
        client_id: str,
        v1: bool,
    ) -> Response:
        username = form.get("username", "")
        user = world.USERS.get(username.lower())
        target = tenant or (world.TENANTS[user.tenant] if user else None)
        directory = target.display_name if target else "organizations"
        if user is None or not self.state.user_in_tenant(user.upn, target.id if target else ""):
            raise OAuthError(
                400,
                "invalid_grant",
                50034,
                f"The user account {{EmailHidden}} does not exist in the {directory} directory. "
                "To sign into this application, the account must be added to the directory.",
            )
        request.note.principal = user.upn
        if form.get("password") != user.password:
            raise OAuthError(
                400,
                "invalid_grant",
                50126,
                "Error validating credentials due to invalid username or password.",
            )
        assert target is not None
        resource, reserved = self._requested(form, v1)
        return self._user_tokens(
            user,
            target.id,
            client_id,
            resource,
            reserved,
            request,
            v1,
            "" if v1 else form.get("scope", ""),
        )

    def _refresh_grant(
        self,
        request: Request,
        form: dict[str, str],
        tenant: world.Tenant | None,
        client_id: str,
        v1: bool,
    ) -> Response:
        with self.state.lock:
            grant = self.state.grants.refresh_tokens.get(form.get("refresh_token", ""))
        if grant is None:
            raise OAuthError(
                400,
                "invalid_grant",
                9002313,
                "Invalid request. Request is malformed or invalid.",
            )
        if grant.client_id != client_id.lower():
            raise OAuthError(
                400,
                "invalid_grant",
                70000,
                "Provided grant is invalid or malformed. The refresh token was issued to a "
                "different client.",
            )
        user = world.USERS[grant.upn]
        request.note.principal = user.upn
        target = tenant or world.TENANTS[user.tenant]
        if not self.state.user_in_tenant(user.upn, target.id):
            raise OAuthError(
                400,
                "invalid_grant",
                50020,
                f"User account '{{EmailHidden}}' from identity provider "
                f"'https://sts.windows.net/{user.tenant}/' does not exist in tenant "
                f"'{target.display_name}' and cannot access the application '{client_id}' in "
                "that tenant. The account needs to be added as an external user in the tenant "
                "first. Sign out and sign in again with a different Azure Active Directory user "
                "account.",
            )
        resource, reserved = self._requested(form, v1)
        return self._user_tokens(
            user,
            target.id,
            client_id,
            resource,
            reserved,
            request,
            v1,
            "" if v1 else form.get("scope", ""),
        )

    def _client_credentials(
        self,
        request: Request,
        form: dict[str, str],
        tenant: world.Tenant | None,
        tenant_seg: str,
        client_id: str,
        v1: bool,
    ) -> Response:
        if tenant is None:
            raise OAuthError(
                400,
                "invalid_request",
                50059,
                "No tenant-identifying information found in either the request or implied by "
                "any provided credentials.",
            )
        app = world.APP_IDENTITIES.get(client_id.lower())
        if app is None or app.tenant != tenant.id or app.kind in (world.MI_SYSTEM, world.MI_USER):
            raise OAuthError(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory "
                f"'{tenant.display_name}'. This can happen if the application has not been "
                "installed by the administrator of the tenant or consented to by any user in "
                "the tenant. You may have sent your authentication request to the wrong tenant.",
            )
        request.note.principal = app.client_id
        if v1:
            resource = form.get("resource", "")
        else:
            scope = form.get("scope", "").strip()
            if not scope.endswith("/.default") or " " in scope:
                raise OAuthError(
                    400,
                    "invalid_scope",
                    1002012,
                    f"The provided value for scope {scope} is not valid. Client credential flows "
                    "must have a scope value with /.default suffixed to the resource identifier "
                    "(application ID URI).",
                )
            resource = resource_of_scope(scope)
        basic = presented(request)
        secret = form.get("client_secret") or (
            urllib.parse.unquote(basic.secret) if basic.scheme == "basic" and basic.secret else ""
        )
        assertion = form.get("client_assertion", "")
        if secret:
            if app.kind != world.SECRET or not secrets.compare_digest(secret, app.secret or ""):
                raise OAuthError(
                    401,
                    "invalid_client",
                    7000215,
                    "Invalid client secret provided. Ensure the secret being sent in the request "
                    "is the client secret value, not the client secret ID, for a secret added to "
                    f"app '{app.client_id}'.",
                )
        elif assertion:
            if form.get("client_assertion_type") != JWT_BEARER:
                raise OAuthError(
                    400,
                    "invalid_request",
                    7000219,
                    "'client_assertion_type' is missing or invalid.",
                )
            if app.kind == world.CERTIFICATE:
                check_certificate_assertion(self.state, assertion, app, tenant)
            elif app.kind == world.FEDERATED:
                check_federated_assertion(self.state, assertion, app)
            else:
                raise OAuthError(
                    401,
                    "invalid_client",
                    700027,
                    "Client assertion failed signature validation. No certificate is registered "
                    "on the application.",
                )
        else:
            raise OAuthError(
                401,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or "
                "'client_secret'.",
            )
        with self.state.lock:
            lifetime = self.state.knobs.app_token_lifetime
        access = tokens.app_access_token(self.state.keys.entra, app, resource, lifetime)
        self.state.remember(access)
        body: dict[str, Any] = {
            "token_type": "Bearer",
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": access,
        }
        if v1:
            body.update(
                expires_on=str(jwts.now() + lifetime),
                not_before=str(jwts.now()),
                resource=resource,
            )
        return json_response(200, body, [("Cache-Control", "no-store, no-cache")])

    # --- device code ----------------------------------------------------------------------

    def _device_code(self, request: Request, tenant_seg: str, v1: bool) -> Response:
        self._tenant(tenant_seg)
        form = request.form()
        client_id = form.get("client_id", "")
        request.note.client_id = client_id or None
        if not client_id:
            raise OAuthError(
                400,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'client_id'.",
            )
        scope = form.get("resource", "") if v1 else form.get("scope", "")
        with self.state.lock:
            flow = self.state.knobs.device_flow
        device_code = "SimDC" + secrets.token_urlsafe(40)
        user_code = "".join(secrets.choice("ABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(9))
        with self.state.lock:
            self.state.grants.device_codes[device_code] = DeviceCode(
                client_id.lower(), tenant_seg, scope, time.time() + flow.expires_in
            )
        self.state.remember(device_code)
        uri_key = "verification_url" if v1 else "verification_uri"
        return json_response(
            200,
            {
                "user_code": user_code,
                "device_code": device_code,
                uri_key: "https://microsoft.com/devicelogin",
                "expires_in": flow.expires_in,
                "interval": flow.interval,
                "message": "To sign in, use a web browser to open the page "
                "https://microsoft.com/devicelogin and enter the code "
                f"{user_code} to authenticate.",
            },
        )

    def _device_code_grant(
        self, request: Request, form: dict[str, str], client_id: str, v1: bool
    ) -> Response:
        code = form.get("device_code") or form.get("code") or ""
        with self.state.lock:
            pending = self.state.grants.device_codes.get(code)
            flow = self.state.knobs.device_flow
            if pending is not None:
                pending.polls += 1
        if pending is None or pending.client_id != client_id.lower():
            raise OAuthError(400, "invalid_grant", 70000, "Provided grant is invalid or malformed.")
        if pending.expires_at <= time.time():
            raise OAuthError(400, "expired_token", 70019, "Verification code expired.")
        if flow.decline:
            raise OAuthError(
                400,
                "authorization_declined",
                70000,
                "The user declined the sign-in request.",
            )
        if pending.polls <= flow.approve_after_polls:
            raise OAuthError(
                400,
                "authorization_pending",
                70016,
                "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
            )
        with self.state.lock:
            self.state.grants.device_codes.pop(code, None)
        user = world.USERS[flow.user.lower()]
        tenant = self._tenant(pending.tenant_path) or world.TENANTS[user.tenant]
        if not self.state.user_in_tenant(user.upn, tenant.id):
            raise OAuthError(
                400,
                "invalid_grant",
                50020,
                f"User account '{{EmailHidden}}' does not exist in tenant '{tenant.display_name}'.",
            )
        fake_form = {"scope": pending.scope, "resource": pending.scope}
        resource, reserved = self._requested(fake_form, v1)
        return self._user_tokens(
            user,
            tenant.id,
            client_id,
            resource,
            reserved,
            request,
            v1,
            "" if v1 else pending.scope,
        )

    # --- authorize: the browser's leg of the authorization code flow ------------------------

    def _authorize(self, request: Request, tenant_seg: str) -> Response:
        """What a browser signed in as `Knobs.browser.user` sees: a redirect (or, with
        response_mode=form_post, a page that posts itself) to the loopback redirect URI with a
        code, or an error; the sign-in page when nobody is signed in (or another user is asked
        for, or prompt=login); an error page when the request cannot be sent back."""
        params = request.params()
        client_id = params.get("client_id", "")
        request.note.client_id = client_id or None
        request.note.scope = params.get("scope") or None
        redirect_uri = params.get("redirect_uri", "")
        request.note.extra["response_mode"] = params.get("response_mode") or "query"
        try:
            tenant = self._tenant(tenant_seg)
            if not client_id:
                raise OAuthError(
                    400,
                    "invalid_request",
                    900144,
                    "The request body must contain the following parameter: 'client_id'.",
                )
            if not _loopback_redirect(redirect_uri):
                raise OAuthError(
                    400,
                    "invalid_request",
                    50011,
                    f"The redirect URI '{redirect_uri}' specified in the request does not match "
                    f"the redirect URIs configured for the application '{client_id}'. Make sure "
                    "the redirect URI sent in the request matches one added to your application "
                    "in the Azure portal. Navigate to https://aka.ms/redirectUriMismatchError to "
                    "learn more about how to fix this.",
                )
        except OAuthError as err:
            request.note.extra["outcome"] = f"error page AADSTS{err.code}"
            return _error_page(err)
        # From here on, errors go back to the application, as the redirect URI is trusted.
        mode = params.get("response_mode") or "query"
        mode = mode if mode in RESPONSE_MODES else "query"
        state = params.get("state")
        try:
            user, consent, tid = self._authorize_checks(params, tenant)
            if user is None:
                request.note.extra["outcome"] = "sign-in page"
                return _sign_in_page(tenant_seg, params.get("login_hint", ""))
            request.note.principal = user.upn
            if not consent:
                raise OAuthError(
                    400,
                    "access_denied",
                    65004,
                    "User declined to consent to access the app.",
                )
        except OAuthError as err:
            request.note.extra["outcome"] = f"error AADSTS{err.code}"
            description = describe(err)[0]
            return _auth_response(
                redirect_uri,
                mode,
                {
                    "error": err.error,
                    "error_description": description,
                    "error_uri": f"https://{request.host}/error?code={err.code}",
                    "state": state,
                },
            )
        code = "1.Sim" + secrets.token_urlsafe(96)
        challenge = params.get("code_challenge") or None
        with self.state.lock:
            self.state.grants.auth_codes[code] = AuthCode(
                client_id=client_id.lower(),
                redirect_uri=redirect_uri,
                code_challenge=challenge,
                challenge_method=params.get("code_challenge_method") or "plain",
                scope=params.get("scope", ""),
                upn=user.upn,
                tenant=tid,
                nonce=params.get("nonce"),
                expires_at=time.time() + AUTH_CODE_LIFETIME,
            )
        self.state.remember(code)
        request.note.extra["outcome"] = "code"
        return _auth_response(
            redirect_uri, mode, {"code": code, "state": state, "session_state": jwts.new_guid()}
        )

    def _authorize_checks(
        self, params: dict[str, str], tenant: world.Tenant | None
    ) -> tuple[world.User | None, bool, str]:
        """(the user who signs in, or None for the sign-in page; whether they consent; the
        tenant id the code is for). Raises OAuthError for what goes back as an error."""
        response_type = params.get("response_type", "")
        if response_type != "code":
            raise OAuthError(
                400,
                "unsupported_response_type",
                700054,
                f"response_type '{response_type}' is not enabled for the application.",
            )
        scope = params.get("scope", "")
        if not scope.strip():
            raise OAuthError(
                400,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'scope'.",
            )
        self._requested({"scope": scope}, v1=False)  # one resource only (AADSTS28000)
        if params.get("code_challenge") and (
            params.get("code_challenge_method") or "plain"
        ) not in ("S256", "plain"):
            raise OAuthError(
                400,
                "invalid_request",
                501491,
                "Invalid code_challenge_method: only S256 and plain are supported.",
            )
        prompt = params.get("prompt", "").lower()
        with self.state.lock:
            upn, consent = self.state.knobs.browser.user, self.state.knobs.browser.consent
        hint = params.get("login_hint", "").strip().lower()
        if upn is None or (hint and hint != upn) or prompt == "login":
            # Someone has to type a password: the browser of a test cannot.
            if prompt == "none":
                raise OAuthError(
                    400,
                    "login_required",
                    50058,
                    "A silent sign-in request was sent but no user is signed in.",
                )
            return None, False, ""
        user = world.USERS[upn]
        target = tenant or world.TENANTS[user.tenant]
        if not self.state.user_in_tenant(user.upn, target.id):
            raise OAuthError(
                400,
                "invalid_request",
                50020,
                f"User account '{{EmailHidden}}' from identity provider "
                f"'https://sts.windows.net/{user.tenant}/' does not exist in tenant "
                f"'{target.display_name}' and cannot access the application "
                f"'{params.get('client_id', '')}' in that tenant.",
            )
        if not consent and prompt == "none":
            raise OAuthError(
                400,
                "consent_required",
                65001,
                "The user or administrator has not consented to use the application.",
            )
        resource, _ = self._requested({"scope": scope}, v1=False)
        self._grant(params.get("client_id", ""), target.id, resource, scope)
        return user, consent, target.id

    def _auth_code_grant(
        self,
        request: Request,
        form: dict[str, str],
        tenant: world.Tenant | None,
        client_id: str,
        v1: bool,
    ) -> Response:
        code = form.get("code", "")
        with self.state.lock:
            grant = self.state.grants.auth_codes.get(code)
            if grant is None:
                raise OAuthError(
                    400,
                    "invalid_grant",
                    70000,
                    "Provided grant is invalid or malformed.",
                )
            if grant.client_id != client_id.lower():
                raise OAuthError(
                    400,
                    "invalid_grant",
                    70000,
                    "Provided grant is invalid or malformed. The authorization code was issued "
                    "to a different client.",
                )
            if grant.redeemed:
                raise OAuthError(
                    400,
                    "invalid_grant",
                    54005,
                    "OAuth2 Authorization code was already redeemed, please retry with a new "
                    "valid code or use an existing refresh token.",
                )
            grant.redeemed = True  # any attempt by its client uses the code up
        request.note.principal = grant.upn
        if grant.expires_at <= time.time():
            raise OAuthError(
                400,
                "invalid_grant",
                70008,
                "The provided authorization code or refresh token has expired due to "
                "inactivity. Send a new interactive authorization request for this user and "
                "resource.",
            )
        if tenant is not None and tenant.id != grant.tenant:
            raise OAuthError(
                400,
                "invalid_grant",
                700005,
                "Provided Authorization Code is intended to use against other tenant, thus "
                "rejected.",
            )
        if form.get("redirect_uri", "") != grant.redirect_uri:
            raise OAuthError(
                400,
                "invalid_grant",
                500112,
                f"The reply address '{form.get('redirect_uri', '')}' does not match the reply "
                f"address '{grant.redirect_uri}' provided when requesting Authorization code.",
            )
        if grant.code_challenge is not None and not _pkce_matches(
            grant.code_challenge, grant.challenge_method, form.get("code_verifier", "")
        ):
            raise OAuthError(
                400,
                "invalid_grant",
                50148,
                "The code_verifier does not match the code_challenge supplied in the "
                "authorization request for PKCE.",
            )
        granted, reserved = self._requested({"scope": grant.scope}, v1=False)
        asked = "" if v1 else (form.get("scope") or grant.scope)
        resource = granted
        if v1 and form.get("resource"):
            resource = form["resource"]
        elif not v1 and form.get("scope"):
            resource, _ = self._requested(form, v1=False)
        if resource != granted:
            raise OAuthError(
                400,
                "invalid_grant",
                70000,
                "Provided grant is invalid or malformed. The authorization code was issued for "
                "another resource.",
            )
        user = world.USERS[grant.upn]
        return self._user_tokens(
            user,
            grant.tenant,
            client_id,
            resource,
            reserved,
            request,
            v1,
            asked,
            grant.nonce,
        )


def _loopback_redirect(uri: str) -> bool:
    """http://localhost[:port][/path] or http://127.0.0.1[:port][/path], nothing else."""
    try:
        parts = urllib.parse.urlsplit(uri)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return False
    return (
        parts.scheme == "http"
        and parts.hostname in LOOPBACK_REDIRECT_HOSTS
        and "@" not in parts.netloc
        and not parts.fragment
    )


def _pkce_matches(challenge: str, method: str, verifier: str) -> bool:
    if not verifier:
        return False
    if method == "S256":
        digest = hashlib.sha256(verifier.encode("ascii", "replace")).digest()
        expected = base64.urlsafe_b64encode(digest).decode().rstrip("=")
    else:
        expected = verifier
    return secrets.compare_digest(expected, challenge)


def _auth_response(redirect_uri: str, mode: str, values: dict[str, str | None]) -> Response:
    """The authorization response, as Entra sends it back through the browser."""
    fields = [(k, v) for k, v in values.items() if v is not None]
    if mode == "form_post":
        inputs = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}" />'
            for k, v in fields
        )
        page = (
            "<html><head><title>Working...</title></head><body>"
            f'<form method="POST" name="hiddenform" action="{html.escape(redirect_uri)}">'
            f"{inputs}<noscript><p>Script is disabled. Click Submit to continue.</p>"
            '<input type="submit" value="Submit" /></noscript></form>'
            '<script language="javascript">document.forms[0].submit();</script>'
            "</body></html>"
        )
        return text_response(200, page, "text/html; charset=utf-8", NO_STORE)
    encoded = urllib.parse.urlencode(fields)
    if mode == "fragment":
        location = f"{redirect_uri}#{encoded}"
    else:
        location = f"{redirect_uri}{'&' if '?' in redirect_uri else '?'}{encoded}"
    return text_response(
        302, "Object moved", "text/html; charset=utf-8", [("Location", location), *NO_STORE]
    )


def _error_page(err: OAuthError) -> Response:
    """An error Entra cannot send back to the application: shown in the browser."""
    description = html.escape(describe(err)[0])
    page = (
        "<!DOCTYPE html><html><head><title>Sign in to your account</title></head><body>"
        "<h1>Sign in</h1><p>Sorry, but we're having trouble signing you in.</p>"
        f'<p id="error">{description}</p></body></html>'
    )
    return text_response(err.status, page, "text/html; charset=utf-8", NO_STORE)


def _sign_in_page(tenant_seg: str, login_hint: str) -> Response:
    """The page that asks for a user name and password: a test's browser stops here."""
    action = f"/{urllib.parse.quote(tenant_seg)}/login"
    page = (
        "<!DOCTYPE html><html><head><title>Sign in to your account</title></head><body>"
        f'<form name="f1" method="post" action="{html.escape(action)}"><h1>Sign in</h1>'
        f'<input type="email" name="loginfmt" value="{html.escape(login_hint)}" />'
        '<input type="password" name="passwd" />'
        '<input type="submit" value="Next" /></form></body></html>'
    )
    return text_response(200, page, "text/html; charset=utf-8", NO_STORE)
