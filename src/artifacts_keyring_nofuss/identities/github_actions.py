"""GitHub Actions OIDC: the job's ID token, exchanged for an Entra token of the app registration
that trusts it (workload identity federation, client-assertion flow).

Applies when the job has `permissions: id-token: write` (the runner then sets
ACTIONS_ID_TOKEN_REQUEST_URL and ..._TOKEN) and AZURE_CLIENT_ID names the app registration.
The tenant is AZURE_TENANT_ID, or the feed's own tenant from discovery.
"""

from __future__ import annotations

import os
from urllib.parse import quote

from artifacts_keyring_nofuss import endpoints
from artifacts_keyring_nofuss import log as _log
from artifacts_keyring_nofuss.errors import SourceError
from artifacts_keyring_nofuss.identities import DEVOPS_SCOPE, TokenRequest, Unavailable
from artifacts_keyring_nofuss.identities.azure_identity import first_line, workload_settings
from artifacts_keyring_nofuss.tokens import Token

REQUEST_URL_VAR = "ACTIONS_ID_TOKEN_REQUEST_URL"
REQUEST_TOKEN_VAR = "ACTIONS_ID_TOKEN_REQUEST_TOKEN"  # noqa: S105 - a name
AUDIENCE = "api://AzureADTokenExchange"


def id_token_url(request_url: str) -> str:
    separator = "&" if "?" in request_url else "?"
    return f"{request_url}{separator}audience={quote(AUDIENCE, safe='')}"


class GitHubActionsSource:
    name = "github_actions"
    needs_discovery = True

    def cache_identity(self) -> str | None:
        return None  # application tokens are never cached on disk

    def get_token(self, request: TokenRequest) -> Token | Unavailable:
        request_url = os.environ.get(REQUEST_URL_VAR, "").strip()
        request_token = os.environ.get(REQUEST_TOKEN_VAR, "").strip()
        if not request_url or not request_token:
            return Unavailable(
                f"not a GitHub Actions job with `permissions: id-token: write` "
                f"({REQUEST_URL_VAR} is not set)"
            )
        client_id, tenant, authority = workload_settings(request, "GitHub Actions OIDC")
        if not endpoints.is_github_oidc_url(request_url):
            raise SourceError(
                f"{REQUEST_URL_VAR} does not point at GitHub's token service "
                "(*.actions.githubusercontent.com); refusing to send the job's request token"
            )
        assertion = self._id_token(request, request_url, request_token)
        _log.debug("github_actions: got the job's ID token; exchanging it for app %s", client_id)
        with _log.hushed("azure", "msal"):
            from azure.identity import ClientAssertionCredential

            credential = ClientAssertionCredential(
                tenant, client_id, lambda: assertion, authority=authority
            )
            try:
                access = credential.get_token(DEVOPS_SCOPE)
            except Exception as exc:  # noqa: BLE001 - azure-identity raises many kinds
                raise SourceError(
                    f"Entra refused the GitHub ID token for app {client_id}: {first_line(exc)} "
                    "(check the app's federated credential: issuer, subject and audience "
                    f"{AUDIENCE})"
                ) from None
            finally:
                credential.close()
        return Token.from_secret(access.token, self.name, expires_on=access.expires_on)

    def _id_token(self, request: TokenRequest, request_url: str, request_token: str) -> str:
        from artifacts_keyring_nofuss.http import Http

        http = Http(request.deadline)
        try:
            response = http.get(id_token_url(request_url), bearer=request_token)
        finally:
            http.close()
        if response.status != 200:
            raise SourceError(
                f"GitHub's OIDC service answered {response.status}; does the job have "
                "`permissions: id-token: write`?"
            )
        try:
            value = response.json().get("value")
        except (ValueError, AttributeError):
            value = None
        if not isinstance(value, str) or value.count(".") != 2:
            raise SourceError("GitHub's OIDC service answered without an ID token")
        return value
