"""GitHub Actions OIDC: the job's ID token, exchanged for an Entra token of the app registration
that trusts it (workload identity federation, client-assertion flow).

Applies when the job has `permissions: id-token: write` (the runner then sets
ACTIONS_ID_TOKEN_REQUEST_URL and ..._TOKEN) and AZURE_CLIENT_ID names the app registration.
The tenant is AZURE_TENANT_ID, or the feed's own tenant from discovery.
"""

from __future__ import annotations

from urllib.parse import quote

from artifacts_keyring_nofuss import endpoints
from artifacts_keyring_nofuss import log as _log
from artifacts_keyring_nofuss.devops import DEFAULT_SCOPE
from artifacts_keyring_nofuss.errors import SourceError
from artifacts_keyring_nofuss.identities import Prepared, TokenRequest, Unavailable
from artifacts_keyring_nofuss.identities.azure_identity import (
    configured_identity,
    credential_options,
    first_line,
    workload_settings,
)
from artifacts_keyring_nofuss.tokens import Token

REQUEST_URL_VAR = "ACTIONS_ID_TOKEN_REQUEST_URL"
REQUEST_TOKEN_VAR = "ACTIONS_ID_TOKEN_REQUEST_TOKEN"  # noqa: S105 - a name
AUDIENCE = "api://AzureADTokenExchange"


def id_token_url(request_url: str) -> str:
    separator = "&" if "?" in request_url else "?"
    return f"{request_url}{separator}audience={quote(AUDIENCE, safe='')}"


_NOT_HERE = (
    f"not a GitHub Actions job with `permissions: id-token: write` ({REQUEST_URL_VAR} is not set)"
)
_IDENTITY_VARS = (REQUEST_URL_VAR, "AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_AUTHORITY_HOST")


class GitHubActionsSource:
    def prepare(self, request: TokenRequest) -> Prepared | Unavailable:
        env = request.settings.env
        if not env.get(REQUEST_URL_VAR, "").strip() or not env.get(REQUEST_TOKEN_VAR, "").strip():
            return Unavailable(_NOT_HERE)
        return Prepared(configured_identity("github_actions", env, *_IDENTITY_VARS))

    def get_token(self, request: TokenRequest) -> Token | Unavailable:
        env = request.settings.env
        request_url = env.get(REQUEST_URL_VAR, "").strip()
        request_token = env.get(REQUEST_TOKEN_VAR, "").strip()
        if not request_url or not request_token:
            return Unavailable(_NOT_HERE)
        client_id, tenant, authority = workload_settings(request, "GitHub Actions OIDC")
        if not endpoints.is_github_oidc_url(request_url):
            raise SourceError(
                f"{REQUEST_URL_VAR} does not point at GitHub's token service "
                "(*.actions.githubusercontent.com): not sending the job's request token there",
                f"unset {REQUEST_URL_VAR} unless GitHub Actions set it",
            )
        assertion = self._id_token(request, request_url, request_token)
        _log.debug("github_actions: got the job's ID token; exchanging it for app %s", client_id)
        with _log.hushed("azure", "msal"):
            from azure.identity import ClientAssertionCredential

            credential = ClientAssertionCredential(
                tenant,
                client_id,
                lambda: assertion,
                authority=authority,
                **credential_options(request),
            )
            try:
                access = credential.get_token(DEFAULT_SCOPE)
            except Exception as exc:  # noqa: BLE001 - azure-identity raises many kinds
                raise SourceError(
                    f"Entra refused the GitHub ID token for app {client_id}: {first_line(exc)}",
                    "check the app's federated credential: issuer, subject and audience "
                    f"{AUDIENCE}",
                ) from None
            finally:
                credential.close()
        identity = configured_identity("github_actions", request.settings.env, *_IDENTITY_VARS)
        return Token.from_secret(
            access.token, "github_actions", expires_on=access.expires_on, identity=identity
        )

    def _id_token(self, request: TokenRequest, request_url: str, request_token: str) -> str:
        from artifacts_keyring_nofuss.http import Http

        http = Http(request.deadline, request.settings.env)
        try:
            response = http.get(id_token_url(request_url), bearer=request_token)
        finally:
            http.close()
        if response.status != 200:
            raise SourceError(
                f"GitHub's OIDC service answered {response.status}",
                "give the job `permissions: id-token: write`",
            )
        try:
            value = response.json().get("value")
        except (ValueError, AttributeError):
            value = None
        if not isinstance(value, str) or value.count(".") != 2:
            raise SourceError(
                "GitHub's OIDC service answered without an ID token", "re-run the job"
            )
        return value
