"""Azure Pipelines' OIDC issuer (vstoken.dev.azure.com/{org-guid}): the other side of
workload identity federation. It signs the assertions a pipeline would hand to Entra."""

from __future__ import annotations

from . import jwts, world
from .client_assertions import issuer_key
from .httpserver import Request, Response, json_response, not_found
from .state import SimState


def mint_assertion(
    state: SimState,
    client_id: str,
    *,
    subject: str | None = None,
    issuer: str | None = None,
    audience: str = world.FEDERATED_AUDIENCE,
    lifetime: int = 600,
    forge: bool = False,
) -> str:
    """A federated assertion for an app registered with a federated credential; subject and
    issuer default to the registered ones. forge=True signs with a key nobody trusts."""
    app = world.APP_IDENTITIES[client_id.lower()]
    iat = jwts.now()
    chosen_issuer = issuer or app.federated_issuer or world.oidc_issuer(world.ORG_CONTOSO)
    claims = {
        "iss": chosen_issuer,
        "sub": subject or app.federated_subject or "sc://unregistered",
        "aud": audience,
        "iat": iat,
        "nbf": iat,
        "exp": iat + lifetime,
        "jti": jwts.new_guid(),
    }
    key = jwts.new_signing_key() if forge else issuer_key(state, chosen_issuer)
    assertion = jwts.sign(key, claims)
    state.remember(assertion)
    return assertion


class OidcIssuer:
    def __init__(self, state: SimState) -> None:
        self.state = state

    def handle(self, request: Request) -> Response:
        segs = request.segments()
        request.note.kind = "metadata"
        if len(segs) != 3 or segs[1] != ".well-known":
            return not_found()
        guid = segs[0].lower()
        if not any(org.guid == guid for org in world.ORGS.values()):
            return not_found()
        base = f"https://{world.OIDC_ISSUER_HOST}/{guid}"
        if segs[2] == "openid-configuration":
            return json_response(
                200,
                {
                    "issuer": base,
                    "jwks_uri": f"{base}/.well-known/jwks",
                    "subject_types_supported": ["public", "pairwise"],
                    "response_types_supported": ["id_token"],
                    "claims_supported": ["sub", "aud", "exp", "iat", "iss", "nbf"],
                    "id_token_signing_alg_values_supported": ["RS256"],
                    "scopes_supported": ["openid"],
                },
            )
        if segs[2] == "jwks":
            return json_response(200, {"keys": [self.state.keys.oidc.jwk()]})
        return not_found()
