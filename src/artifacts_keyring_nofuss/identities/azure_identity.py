"""azure-identity for workloads: service principal (secret or certificate), workload identity
federation, managed identity. Its developer and interactive credentials are left out: the Azure
CLI has its own source, and the interactive sign-in is ours (`ak-nofuss login`).
"""

from __future__ import annotations

import os
from contextlib import suppress
from typing import Any

from artifacts_keyring_nofuss import endpoints
from artifacts_keyring_nofuss import log as _log
from artifacts_keyring_nofuss.errors import SourceError
from artifacts_keyring_nofuss.identities import DEVOPS_SCOPE, TokenRequest, Unavailable
from artifacts_keyring_nofuss.tokens import Token

FEDERATED_TOKEN_FILE_VAR = "AZURE_FEDERATED_TOKEN_FILE"  # noqa: S105 - a name
# A laptop has no metadata service: give up on it quickly instead of azure-identity's
# five retries with backoff.
IMDS_SETTINGS: dict[str, Any] = {"connection_timeout": 2, "retry_total": 1}


def workload_settings(request: TokenRequest, what: str) -> tuple[str, str, str | None]:
    """(client id, tenant, authority host) for a federated credential: AZURE_CLIENT_ID, then
    AZURE_TENANT_ID or the feed's own tenant, and AZURE_AUTHORITY_HOST if it is an Entra host."""
    client_id = os.environ.get("AZURE_CLIENT_ID", "").strip()
    if not client_id:
        raise SourceError(f"{what} needs AZURE_CLIENT_ID: the client id of the app registration")
    tenant = os.environ.get("AZURE_TENANT_ID", "").strip() or request.tenant
    if not tenant:
        raise SourceError(f"{what} needs AZURE_TENANT_ID (the feed did not name its tenant)")
    try:
        authority = endpoints.authority_host(os.environ.get("AZURE_AUTHORITY_HOST"))
    except endpoints.UntrustedEndpoint as exc:
        raise SourceError(str(exc)) from None
    return client_id, tenant, authority


def _credentials(request: TokenRequest) -> list[tuple[str, Any]]:
    from azure.identity import (
        EnvironmentCredential,
        ManagedIdentityCredential,
        WorkloadIdentityCredential,
    )

    found: list[tuple[str, Any]] = [("service principal", EnvironmentCredential())]
    if os.environ.get(FEDERATED_TOKEN_FILE_VAR, "").strip():
        client_id, tenant, authority = workload_settings(request, FEDERATED_TOKEN_FILE_VAR)
        found.append(
            (
                "workload identity",
                WorkloadIdentityCredential(
                    tenant_id=tenant,
                    client_id=client_id,
                    token_file_path=os.environ[FEDERATED_TOKEN_FILE_VAR].strip(),
                    authority=authority,
                ),
            )
        )
    else:
        found.append(
            (
                "managed identity",
                ManagedIdentityCredential(
                    client_id=os.environ.get("AZURE_CLIENT_ID") or None, **IMDS_SETTINGS
                ),
            )
        )
    return found


class AzureIdentitySource:
    name = "azure_identity"
    needs_discovery = True

    def cache_identity(self) -> str | None:
        return None  # application tokens are never cached on disk

    def get_token(self, request: TokenRequest) -> Token | Unavailable:
        try:
            # azure-identity sends secrets and assertions wherever this points.
            endpoints.authority_host(os.environ.get("AZURE_AUTHORITY_HOST"))
        except endpoints.UntrustedEndpoint as exc:
            raise SourceError(str(exc)) from None
        with _log.hushed("azure", "msal"):
            from azure.core.exceptions import ClientAuthenticationError
            from azure.identity import CredentialUnavailableError

            try:
                credentials = _credentials(request)
            except SourceError:
                raise
            except Exception as exc:  # noqa: BLE001 - bad settings surface here as anything
                raise SourceError(
                    f"azure-identity settings are unusable: {first_line(exc)}"
                ) from None
            for label, credential in credentials:
                try:
                    access = credential.get_token(DEVOPS_SCOPE)
                except CredentialUnavailableError as exc:
                    _log.debug("azure_identity: %s does not apply: %s", label, first_line(exc))
                    continue
                except ClientAuthenticationError as exc:
                    raise SourceError(f"{label} sign-in failed: {first_line(exc)}") from None
                except Exception as exc:  # noqa: BLE001 - azure-identity may raise anything
                    raise SourceError(f"{label} failed: {type(exc).__name__}") from None
                finally:
                    close(credential)
                return Token.from_secret(access.token, self.name, expires_on=access.expires_on)
        return Unavailable(
            "no service principal (AZURE_CLIENT_ID with AZURE_CLIENT_SECRET or a certificate), "
            "workload identity or managed identity found"
        )


def first_line(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc)
    lines = [ln.strip() for ln in str(message).splitlines() if ln.strip()]
    return lines[0][:300] if lines else type(exc).__name__


def close(credential: Any) -> None:
    with suppress(Exception):  # closing is best effort
        credential.close()
