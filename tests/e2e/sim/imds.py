"""Azure Instance Metadata Service: managed identity tokens on http://169.254.169.254."""

from __future__ import annotations

from . import jwts, tokens, world
from .httpserver import Request, Response, json_response, not_found
from .oauth import resource_of_scope
from .state import SimState

TOKEN_PATH = "/metadata/identity/oauth2/token"


def _bad(description: str) -> Response:
    return json_response(400, {"error": "invalid_request", "error_description": description})


class Imds:
    def __init__(self, state: SimState) -> None:
        self.state = state

    def handle(self, request: Request) -> Response:
        if request.path.rstrip("/") == "/metadata/instance":
            request.note.kind = "metadata"
            if request.header("Metadata") != "true":
                return _bad("Required metadata header not specified")
            return json_response(200, {"compute": {"name": "vm1", "location": "westeurope"}})
        if request.path.rstrip("/") != TOKEN_PATH:
            return not_found()
        request.note.kind = "token"
        if request.header("Metadata") != "true":
            return _bad("Required metadata header not specified")
        params = request.params()
        if not params.get("api-version"):
            return _bad("Required query variable 'api-version' is missing")
        resource = params.get("resource", "")
        if not resource:
            return _bad("Required query variable 'resource' is missing")
        resource = resource_of_scope(resource) if resource.endswith("/.default") else resource
        app = self._identity(params)
        if app is None:
            return _bad("Identity not found")
        request.note.principal = app.client_id
        request.note.client_id = app.client_id
        with self.state.lock:
            lifetime = self.state.knobs.imds_token_lifetime
        issued = jwts.now()
        access = tokens.app_access_token(self.state.keys.entra, app, resource, lifetime, issued)
        self.state.remember(access)
        # IMDS answers numbers as strings.
        return json_response(
            200,
            {
                "access_token": access,
                "client_id": app.client_id,
                "expires_in": str(lifetime),
                "expires_on": str(issued + lifetime),
                "ext_expires_in": str(lifetime),
                "not_before": str(issued),
                "resource": resource,
                "token_type": "Bearer",
            },
        )

    def _identity(self, params: dict[str, str]) -> world.AppIdentity | None:
        with self.state.lock:
            system_on, user_on = self.state.knobs.mi_system, self.state.knobs.mi_user
        system = world.APP_IDENTITIES[world.MI_SYSTEM_CLIENT_ID]
        user = world.APP_IDENTITIES[world.MI_USER_CLIENT_ID]
        wanted = (
            params.get("client_id")
            or params.get("object_id")
            or params.get("principal_id")
            or params.get("msi_res_id")
            or params.get("mi_res_id")
        )
        if wanted:
            wanted = wanted.lower()
            for app, on in ((system, system_on), (user, user_on)):
                by_resource_id = app.kind == world.MI_USER and wanted.endswith(f"/{app.name}")
                if on and (wanted in (app.client_id, app.object_id) or by_resource_id):
                    return app
            return None
        if system_on:
            return system
        # Without a system identity, IMDS picks the only user-assigned one.
        return user if user_on else None
