"""azure-identity for workloads: service principal (secret or certificate), workload identity
federation, managed identity. Its developer and interactive credentials are left out: the Azure
CLI has its own source, and the interactive sign-in is ours (`ak-nofuss login`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from contextlib import suppress
from typing import Any

from artifacts_keyring_nofuss import endpoints
from artifacts_keyring_nofuss import log as _log
from artifacts_keyring_nofuss.devops import DEFAULT_SCOPE
from artifacts_keyring_nofuss.errors import SourceError
from artifacts_keyring_nofuss.identities import Prepared, TokenRequest, Unavailable
from artifacts_keyring_nofuss.tokens import Token

FEDERATED_TOKEN_FILE_VAR = "AZURE_FEDERATED_TOKEN_FILE"  # noqa: S105 - a name
# A laptop has no metadata service: give up on it quickly instead of azure-identity's
# five retries with backoff (the retries are the pipeline's, the timeout our transport's).
IMDS_SETTINGS: dict[str, Any] = {"retry_total": 1}
IMDS_TRANSPORT: dict[str, Any] = {"connection_timeout": 2}
# What decides which application azure-identity signs in as: a change in any of them is
# another identity, never the same cache key.
IDENTITY_VARS = (
    "AZURE_CLIENT_ID",
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_CLIENT_CERTIFICATE_PASSWORD",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_AUTHORITY_HOST",
    "AZURE_USERNAME",
    "IDENTITY_ENDPOINT",
    "MSI_ENDPOINT",
)


def configured_identity(source: str, env: Mapping[str, str], *names: str) -> str:
    """A cache identity for an application configured by these variables (and their values,
    hashed: a secret must not appear in a key)."""
    text = "\n".join(f"{name}={env.get(name, '').strip()}" for name in names)
    return f"{source}:{hashlib.sha256(text.encode()).hexdigest()[:24]}"


def credential_options(request: TokenRequest, **transport: Any) -> dict[str, Any]:
    """What every azure-identity credential gets: our network layer (trust, proxies, no
    netrc), with the transport's own options."""
    from artifacts_keyring_nofuss.http import azure_transport

    return {"transport": azure_transport(request.settings.env, **transport)}


def workload_settings(request: TokenRequest, what: str) -> tuple[str, str, str | None]:
    """(client id, tenant, authority host) for a federated credential: AZURE_CLIENT_ID, then
    AZURE_TENANT_ID or the feed's own tenant, and AZURE_AUTHORITY_HOST if it is an Entra host."""
    env = request.settings.env
    client_id = env.get("AZURE_CLIENT_ID", "").strip()
    if not client_id:
        raise SourceError(
            f"{what} needs AZURE_CLIENT_ID", "set it to the client id of the app registration"
        )
    tenant = env.get("AZURE_TENANT_ID", "").strip() or request.tenant
    if not tenant:
        raise SourceError(
            f"{what} needs AZURE_TENANT_ID (the feed did not name its tenant)",
            "set AZURE_TENANT_ID",
        )
    try:
        authority = endpoints.authority_host(env.get("AZURE_AUTHORITY_HOST"))
    except endpoints.UntrustedEndpoint as exc:
        raise SourceError(str(exc), "unset AZURE_AUTHORITY_HOST or name an Entra host") from None
    return client_id, tenant, authority


def _credentials(request: TokenRequest) -> list[tuple[str, Any]]:
    from azure.identity import (
        EnvironmentCredential,
        ManagedIdentityCredential,
        WorkloadIdentityCredential,
    )

    env = request.settings.env
    found: list[tuple[str, Any]] = [
        ("service principal", EnvironmentCredential(**credential_options(request)))
    ]
    if env.get(FEDERATED_TOKEN_FILE_VAR, "").strip():
        client_id, tenant, authority = workload_settings(request, FEDERATED_TOKEN_FILE_VAR)
        found.append(
            (
                "workload identity",
                WorkloadIdentityCredential(
                    tenant_id=tenant,
                    client_id=client_id,
                    token_file_path=env[FEDERATED_TOKEN_FILE_VAR].strip(),
                    authority=authority,
                    **credential_options(request),
                ),
            )
        )
    else:
        found.append(
            (
                "managed identity",
                ManagedIdentityCredential(
                    client_id=env.get("AZURE_CLIENT_ID", "").strip() or None,
                    **IMDS_SETTINGS,
                    **credential_options(request, **IMDS_TRANSPORT),
                ),
            )
        )
    return found


class AzureIdentitySource:
    def prepare(self, request: TokenRequest) -> Prepared:
        # Whether it applies is azure-identity's to find out (a managed identity answers only
        # when asked); who it is follows from its settings.
        return Prepared(configured_identity("azure_identity", request.settings.env, *IDENTITY_VARS))

    def get_token(self, request: TokenRequest) -> Token | Unavailable:
        try:
            # azure-identity sends secrets and assertions wherever this points.
            endpoints.authority_host(request.settings.env.get("AZURE_AUTHORITY_HOST"))
        except endpoints.UntrustedEndpoint as exc:
            raise SourceError(
                str(exc), "unset AZURE_AUTHORITY_HOST or name an Entra host"
            ) from None
        with _log.hushed("azure", "msal"):
            from azure.core.exceptions import ClientAuthenticationError
            from azure.identity import CredentialUnavailableError

            try:
                credentials = _credentials(request)
            except SourceError:
                raise
            except Exception as exc:  # noqa: BLE001 - bad settings surface here as anything
                raise SourceError(
                    f"azure-identity settings are unusable: {first_line(exc)}",
                    "check the AZURE_* variables",
                ) from None
            for label, credential in credentials:
                try:
                    access = credential.get_token(DEFAULT_SCOPE)
                except CredentialUnavailableError as exc:
                    _log.debug("azure_identity: %s does not apply: %s", label, first_line(exc))
                    continue
                except ClientAuthenticationError as exc:
                    raise SourceError(
                        f"{label} sign-in failed: {first_line(exc)}",
                        "check the identity's settings and its access to the organisation",
                    ) from None
                except Exception as exc:  # noqa: BLE001 - azure-identity may raise anything
                    raise SourceError(
                        f"{label} failed: {type(exc).__name__}",
                        "check the identity's settings",
                    ) from None
                finally:
                    close(credential)
                return Token.from_secret(
                    access.token,
                    "azure_identity",
                    expires_on=access.expires_on,
                    identity=self.prepare(request).identity,
                )
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
