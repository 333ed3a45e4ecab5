"""Simulated Entra ID on login.microsoftonline.com and its aliases.

Covers what MSAL, azure-identity and the Azure CLI ask for: instance and tenant discovery,
signing keys, user realm, the v1 and v2 token endpoints (password, refresh_token,
client_credentials with a secret, a certificate assertion or a federated assertion, device
code) and the device-code endpoint. Failures carry the standard OAuth error JSON with an
AADSTS code, like the real service.
"""

from __future__ import annotations

import secrets
import time
import urllib.parse
from typing import Any

from . import jwts, tokens, world
from .client_assertions import JWT_BEARER, check_certificate_assertion, check_federated_assertion
from .credentials import presented
from .httpserver import Request, Response, json_response, not_found
from .oauth import OAuthError, oauth_error_response, resource_of_scope
from .state import DeviceCode, RefreshGrant, SimState

RESERVED_SCOPES = {"openid", "profile", "offline_access", "email"}
DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
META_TENANTS = ("common", "organizations")


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
                if rest in (["v2.0", ".well-known", "openid-configuration"],
                            [".well-known", "openid-configuration"]):
                    request.note.kind = "metadata"
                    return self._openid_configuration(request, tenant_seg, v2=rest[0] == "v2.0")
                if rest in (["discovery", "v2.0", "keys"], ["discovery", "keys"]):
                    request.note.kind = "metadata"
                    return json_response(200, {"keys": [self.state.keys.entra.jwk()]})
                if request.method == "POST" and rest in (["oauth2", "v2.0", "token"],
                                                         ["oauth2", "token"]):
                    request.note.kind = "token"
                    return self._token(request, tenant_seg, v1=rest == ["oauth2", "token"])
                if request.method == "POST" and rest in (["oauth2", "v2.0", "devicecode"],
                                                         ["oauth2", "devicecode"]):
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
                400, "invalid_request", 90002,
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
            if v2 else f"https://sts.windows.net/{issuer_tid}/"
        )
        return json_response(
            200,
            {
                "token_endpoint": f"{base}/oauth2{version}/token",
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post", "private_key_jwt", "client_secret_basic",
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
                    "sub", "iss", "cloud_instance_name", "cloud_instance_host_name",
                    "cloud_graph_host_name", "msgraph_host", "aud", "exp", "iat", "auth_time",
                    "acr", "nonce", "preferred_username", "name", "tid", "ver", "at_hash",
                    "c_hash", "email",
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
                400, "invalid_request", 900144,
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
        raise OAuthError(
            400, "unsupported_grant_type", 70003,
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
                400, "invalid_scope", 28000,
                "Provided value for the input parameter scope is not valid because it contains "
                "more than one resource. Scope " + form.get("scope", "") + " is not valid.",
            )
        resource = resources.pop() if resources else world.GRAPH_RESOURCE
        return resource, reserved

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
    ) -> Response:
        with self.state.lock:
            lifetime = self.state.knobs.user_token_lifetime
        keys = self.state.keys
        access = tokens.user_access_token(keys.entra, user, tid, resource, client_id, lifetime)
        # A v2 request for RESOURCE/.default is answered with the delegated permissions and the
        # .default scope itself, which MSAL's cache then matches on the next silent request.
        defaults = [s for s in asked.split() if s.lower().endswith("/.default")]
        body: dict[str, Any] = {
            "token_type": "Bearer",
            "scope": f"{resource.rstrip('/')}/user_impersonation"
            + "".join(f" {s}" for s in defaults)
            + "".join(f" {s}" for s in reserved if s != "offline_access"),
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
            body["id_token"] = tokens.id_token(keys.entra, user, tid, client_id, lifetime)
            secrets_out.append(body["id_token"])
        if request.form().get("client_info") == "1":
            body["client_info"] = tokens.client_info(user)
        if v1:
            body.update(
                expires_on=str(jwts.now() + lifetime), not_before=str(jwts.now()),
                resource=resource,
            )
        self.state.remember(*secrets_out)
        request.note.principal = user.upn
        return json_response(200, body, [("Cache-Control", "no-store, no-cache")])

    def _password_grant(
        self, request: Request, form: dict[str, str], tenant: world.Tenant | None,
        client_id: str, v1: bool,
    ) -> Response:
        username = form.get("username", "")
        user = world.USERS.get(username.lower())
        target = tenant or (world.TENANTS[user.tenant] if user else None)
        directory = target.display_name if target else "organizations"
        if user is None or not self.state.user_in_tenant(user.upn, target.id if target else ""):
            raise OAuthError(
                400, "invalid_grant", 50034,
                f"The user account {{EmailHidden}} does not exist in the {directory} directory. "
                "To sign into this application, the account must be added to the directory.",
            )
        request.note.principal = user.upn
        if form.get("password") != user.password:
            raise OAuthError(
                400, "invalid_grant", 50126,
                "Error validating credentials due to invalid username or password.",
            )
        assert target is not None
        resource, reserved = self._requested(form, v1)
        return self._user_tokens(
            user, target.id, client_id, resource, reserved, request, v1,
            "" if v1 else form.get("scope", ""),
        )

    def _refresh_grant(
        self, request: Request, form: dict[str, str], tenant: world.Tenant | None,
        client_id: str, v1: bool,
    ) -> Response:
        with self.state.lock:
            grant = self.state.grants.refresh_tokens.get(form.get("refresh_token", ""))
        if grant is None:
            raise OAuthError(
                400, "invalid_grant", 9002313, "Invalid request. Request is malformed or invalid.",
            )
        if grant.client_id != client_id.lower():
            raise OAuthError(
                400, "invalid_grant", 70000,
                "Provided grant is invalid or malformed. The refresh token was issued to a "
                "different client.",
            )
        user = world.USERS[grant.upn]
        request.note.principal = user.upn
        target = tenant or world.TENANTS[user.tenant]
        if not self.state.user_in_tenant(user.upn, target.id):
            raise OAuthError(
                400, "invalid_grant", 50020,
                f"User account '{{EmailHidden}}' from identity provider "
                f"'https://sts.windows.net/{user.tenant}/' does not exist in tenant "
                f"'{target.display_name}' and cannot access the application '{client_id}' in "
                "that tenant. The account needs to be added as an external user in the tenant "
                "first. Sign out and sign in again with a different Azure Active Directory user "
                "account.",
            )
        resource, reserved = self._requested(form, v1)
        return self._user_tokens(
            user, target.id, client_id, resource, reserved, request, v1,
            "" if v1 else form.get("scope", ""),
        )

    def _client_credentials(
        self, request: Request, form: dict[str, str], tenant: world.Tenant | None,
        tenant_seg: str, client_id: str, v1: bool,
    ) -> Response:
        if tenant is None:
            raise OAuthError(
                400, "invalid_request", 50059,
                "No tenant-identifying information found in either the request or implied by "
                "any provided credentials.",
            )
        app = world.APP_IDENTITIES.get(client_id.lower())
        if app is None or app.tenant != tenant.id or app.kind in (world.MI_SYSTEM, world.MI_USER):
            raise OAuthError(
                400, "unauthorized_client", 700016,
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
                    400, "invalid_scope", 1002012,
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
                    401, "invalid_client", 7000215,
                    "Invalid client secret provided. Ensure the secret being sent in the request "
                    "is the client secret value, not the client secret ID, for a secret added to "
                    f"app '{app.client_id}'.",
                )
        elif assertion:
            if form.get("client_assertion_type") != JWT_BEARER:
                raise OAuthError(
                    400, "invalid_request", 7000219,
                    "'client_assertion_type' is missing or invalid.",
                )
            if app.kind == world.CERTIFICATE:
                check_certificate_assertion(self.state, assertion, app, tenant)
            elif app.kind == world.FEDERATED:
                check_federated_assertion(self.state, assertion, app)
            else:
                raise OAuthError(
                    401, "invalid_client", 700027,
                    "Client assertion failed signature validation. No certificate is registered "
                    "on the application.",
                )
        else:
            raise OAuthError(
                401, "invalid_client", 7000218,
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
                expires_on=str(jwts.now() + lifetime), not_before=str(jwts.now()),
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
                400, "invalid_request", 900144,
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
                400, "authorization_declined", 70000,
                "The user declined the sign-in request.",
            )
        if pending.polls <= flow.approve_after_polls:
            raise OAuthError(
                400, "authorization_pending", 70016,
                "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
            )
        with self.state.lock:
            self.state.grants.device_codes.pop(code, None)
        user = world.USERS[flow.user.lower()]
        tenant = self._tenant(pending.tenant_path) or world.TENANTS[user.tenant]
        if not self.state.user_in_tenant(user.upn, tenant.id):
            raise OAuthError(
                400, "invalid_grant", 50020,
                f"User account '{{EmailHidden}}' does not exist in tenant '{tenant.display_name}'.",
            )
        fake_form = {"scope": pending.scope, "resource": pending.scope}
        resource, reserved = self._requested(fake_form, v1)
        return self._user_tokens(
            user, tenant.id, client_id, resource, reserved, request, v1,
            "" if v1 else pending.scope,
        )
