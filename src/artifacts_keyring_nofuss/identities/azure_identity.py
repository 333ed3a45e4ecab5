"""azure-identity for workloads: service principal (secret or certificate), workload identity
federation, managed identity. Its developer and interactive credentials are left out: the Azure
CLI has its own source, and a keyring lookup must never open a browser on its own.
"""

from __future__ import annotations

import os
from contextlib import suppress
from typing import Any

from artifacts_keyring_nofuss import log as _log
from artifacts_keyring_nofuss.errors import SourceError
from artifacts_keyring_nofuss.identities import DEVOPS_SCOPE, TokenRequest, Unavailable
from artifacts_keyring_nofuss.tokens import Token

_WORKLOAD_VARS = ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_FEDERATED_TOKEN_FILE")
# A laptop has no metadata service: give up on it quickly instead of azure-identity's
# five retries with backoff.
_IMDS_SETTINGS: dict[str, Any] = {"connection_timeout": 2, "retry_total": 1}


def _credentials() -> list[tuple[str, Any]]:
    from azure.identity import (
        EnvironmentCredential,
        ManagedIdentityCredential,
        WorkloadIdentityCredential,
    )

    found: list[tuple[str, Any]] = [("service principal", EnvironmentCredential())]
    if all(os.environ.get(v) for v in _WORKLOAD_VARS):
        found.append(("workload identity", WorkloadIdentityCredential()))
    else:
        client_id = os.environ.get("AZURE_CLIENT_ID") or None
        found.append(
            ("managed identity", ManagedIdentityCredential(client_id=client_id, **_IMDS_SETTINGS))
        )
    return found


class AzureIdentitySource:
    name = "azure_identity"

    def cache_identity(self) -> str | None:
        return None  # application tokens are never cached on disk

    def get_token(self, request: TokenRequest) -> Token | Unavailable:
        with _log.hushed("azure", "msal"):
            from azure.core.exceptions import ClientAuthenticationError
            from azure.identity import CredentialUnavailableError

            try:
                credentials = _credentials()
            except Exception as exc:  # noqa: BLE001 - bad settings surface here as anything
                raise SourceError(
                    f"azure-identity settings are unusable: {_first_line(exc)}"
                ) from None
            for label, credential in credentials:
                try:
                    access = credential.get_token(DEVOPS_SCOPE)
                except CredentialUnavailableError as exc:
                    _log.debug("azure_identity: %s does not apply: %s", label, _first_line(exc))
                    continue
                except ClientAuthenticationError as exc:
                    raise SourceError(f"{label} sign-in failed: {_first_line(exc)}") from None
                except Exception as exc:  # noqa: BLE001 - azure-identity may raise anything
                    raise SourceError(f"{label} failed: {type(exc).__name__}") from None
                finally:
                    _close(credential)
                return Token.from_secret(access.token, self.name, expires_on=access.expires_on)
        return Unavailable(
            "no service principal (AZURE_CLIENT_ID with AZURE_CLIENT_SECRET or a certificate), "
            "workload identity or managed identity found"
        )


def _first_line(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc)
    lines = [ln.strip() for ln in str(message).splitlines() if ln.strip()]
    return lines[0][:300] if lines else type(exc).__name__


def _close(credential: Any) -> None:
    with suppress(Exception):  # closing is best effort
        credential.close()
