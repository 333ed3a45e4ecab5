"""GitHub Actions' OIDC provider: the ID token service a runner's ACTIONS_ID_TOKEN_REQUEST_URL
points at (pipelinesghubeus2.actions.githubusercontent.com) and the issuer's metadata and keys
(token.actions.githubusercontent.com). The other side of workload identity federation from a
GitHub workflow with `permissions: id-token: write`.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from typing import Any

from . import jwts, world
from .credentials import presented
from .httpserver import Request, Response, json_response, not_found
from .state import GithubRequestGrant, SimState

TOKEN_LIFETIME = 300  # GitHub's ID tokens: five minutes from iat, nbf ten minutes before it


def parse_subject(subject: str) -> dict[str, str]:
    """Claims a workflow's subject implies: `repo:OWNER/REPO:ref:REF`,
    `repo:OWNER/REPO:environment:NAME`, `repo:OWNER/REPO:pull_request`, ..."""
    _, _, rest = subject.partition("repo:")
    repository, _, context = rest.partition(":")
    owner = repository.split("/", 1)[0] or "contoso"
    claims = {
        "repository": repository,
        "repository_owner": owner,
        "ref": "refs/heads/main",
        "ref_type": "branch",
        "event_name": "push",
    }
    kind, _, value = context.partition(":")
    if kind == "ref" and value:
        claims["ref"] = value
        claims["ref_type"] = "tag" if value.startswith("refs/tags/") else "branch"
    elif kind == "environment" and value:
        claims["environment"] = value
    elif kind == "pull_request":
        claims.update(ref="refs/pull/1/merge", event_name="pull_request")
    return claims


def default_audience(subject: str) -> str:
    """What GitHub puts in aud when the request names no audience: the owner's URL."""
    return f"https://github.com/{parse_subject(subject)['repository_owner']}"


def mint_id_token(
    state: SimState,
    subject: str,
    audience: str,
    *,
    lifetime: int = TOKEN_LIFETIME,
    forge: bool = False,
) -> str:
    """An ID token as GitHub Actions issues it; forge=True signs with a key nobody trusts."""
    implied = parse_subject(subject)
    repository = implied["repository"]
    sha = hashlib.sha1(repository.encode()).hexdigest()  # noqa: S324 - a commit id, not security
    workflow_ref = f"{repository}/.github/workflows/ci.yml@{implied['ref']}"
    numeric = str(int(hashlib.sha256(repository.encode()).hexdigest()[:8], 16))
    iat = jwts.now()
    claims: dict[str, Any] = {
        "jti": jwts.new_guid(),
        "sub": subject,
        "aud": audience,
        "ref": implied["ref"],
        "sha": sha,
        "repository": repository,
        "repository_owner": implied["repository_owner"],
        "repository_owner_id": numeric[:7],
        "run_id": str(secrets.randbelow(10**10)),
        "run_number": "1",
        "run_attempt": "1",
        "repository_visibility": "private",
        "repository_id": numeric,
        "actor_id": "1234567",
        "actor": "alice",
        "workflow": "CI",
        "head_ref": "",
        "base_ref": "",
        "event_name": implied["event_name"],
        "ref_protected": "false",
        "ref_type": implied["ref_type"],
        "workflow_ref": workflow_ref,
        "workflow_sha": sha,
        "job_workflow_ref": workflow_ref,
        "job_workflow_sha": sha,
        "runner_environment": "github-hosted",
        "iss": world.GITHUB_ISSUER,
        "nbf": iat - 600,
        "exp": iat + lifetime,
        "iat": iat,
    }
    if "environment" in implied:
        claims["environment"] = implied["environment"]
    key = jwts.new_signing_key() if forge else state.keys.github
    token = jwts.sign(key, claims)
    state.remember(token)
    return token


def runner_environment(state: SimState, subject: str) -> dict[str, str]:
    """What a runner gives a job with `id-token: write`: the request URL and its bearer."""
    request_token = secrets.token_urlsafe(48)
    with state.lock:
        state.grants.github_requests[request_token] = GithubRequestGrant(subject)
    state.remember(request_token)
    hub = secrets.token_urlsafe(32).replace("-", "").replace("_", "")[:40]
    plan, job = uuid.uuid4(), uuid.uuid4()
    url = (
        f"https://{world.GITHUB_TOKEN_HOST}/{hub}/00000000-0000-0000-0000-000000000000/_apis/"
        f"distributedtask/hubs/Actions/plans/{plan}/jobs/{job}/idtoken?api-version=2.0"
    )
    return {
        "ACTIONS_ID_TOKEN_REQUEST_URL": url,
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN": request_token,
        "GITHUB_ACTIONS": "true",
        "CI": "true",
    }


def _refused(message: str) -> Response:
    return json_response(401, {"message": message})


class GithubActions:
    def __init__(self, state: SimState) -> None:
        self.state = state

    def handle(self, request: Request) -> Response:
        if request.host == world.GITHUB_ISSUER_HOST:
            return self._issuer(request)
        segs = request.segments()
        if not segs or segs[-1].lower() != "idtoken":
            return not_found()
        request.note.kind = "github_oidc"
        if request.method not in ("GET", "HEAD"):
            return json_response(
                405,
                {
                    "message": "The requested resource does not support "
                    f"http method '{request.method}'."
                },
            )
        shown = presented(request)
        if shown.scheme != "bearer" or not shown.secret:
            return _refused("Bearer token is required.")
        with self.state.lock:
            grant = self.state.grants.github_requests.get(shown.secret)
        if grant is None:
            return _refused("Access denied: the token is not valid for this request.")
        request.note.principal = grant.subject
        audience = request.params().get("audience") or default_audience(grant.subject)
        request.note.extra["audience"] = audience
        token = mint_id_token(self.state, grant.subject, audience)
        return json_response(200, {"count": len(token), "value": token})

    def _issuer(self, request: Request) -> Response:
        request.note.kind = "metadata"
        low = [s.lower() for s in request.segments()]
        if low == [".well-known", "openid-configuration"]:
            return json_response(
                200,
                {
                    "issuer": world.GITHUB_ISSUER,
                    "jwks_uri": f"{world.GITHUB_ISSUER}/.well-known/jwks",
                    "subject_types_supported": ["public", "pairwise"],
                    "response_types_supported": ["id_token"],
                    "claims_supported": [
                        "sub",
                        "aud",
                        "exp",
                        "iat",
                        "iss",
                        "jti",
                        "nbf",
                        "ref",
                        "sha",
                        "repository",
                        "repository_id",
                        "repository_owner",
                        "repository_owner_id",
                        "run_id",
                        "run_number",
                        "run_attempt",
                        "actor",
                        "actor_id",
                        "workflow",
                        "workflow_ref",
                        "workflow_sha",
                        "head_ref",
                        "base_ref",
                        "event_name",
                        "ref_type",
                        "ref_protected",
                        "environment",
                        "job_workflow_ref",
                        "job_workflow_sha",
                        "repository_visibility",
                        "runner_environment",
                    ],
                    "id_token_signing_alg_values_supported": ["RS256"],
                    "scopes_supported": ["openid"],
                },
            )
        if low == [".well-known", "jwks"]:
            return json_response(200, {"keys": [self.state.keys.github.jwk()]})
        return not_found()
