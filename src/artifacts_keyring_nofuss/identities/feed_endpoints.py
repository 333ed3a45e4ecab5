"""The official provider's ARTIFACTS_CREDENTIALPROVIDER_FEED_ENDPOINTS: per feed, a managed
identity (`"clientId": "system"` or a user-assigned one's client id) or a service principal
with a certificate file, matched by feed like the external endpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from artifacts_keyring_nofuss import endpoints
from artifacts_keyring_nofuss import log as _log
from artifacts_keyring_nofuss.devops import DEFAULT_SCOPE
from artifacts_keyring_nofuss.errors import SourceError
from artifacts_keyring_nofuss.feeds import same_feed
from artifacts_keyring_nofuss.identities import Prepared, TokenRequest, Unavailable
from artifacts_keyring_nofuss.identities.azure_identity import (
    IMDS_SETTINGS,
    IMDS_TRANSPORT,
    close,
    credential_options,
    first_line,
)
from artifacts_keyring_nofuss.identities.given import endpoint_credentials
from artifacts_keyring_nofuss.tokens import Token

FEED_ENDPOINTS_VAR = "ARTIFACTS_CREDENTIALPROVIDER_FEED_ENDPOINTS"


def describe(entry: dict[str, Any], where: str) -> tuple[str, dict[str, Any]] | str:
    """("managed identity" | "service principal", settings) for an entry, or why it is
    unusable."""
    client_id = entry.get("clientId")
    if not isinstance(client_id, str) or not client_id.strip():
        return f'{where} has no "clientId"'
    client_id = client_id.strip()
    cert_path = entry.get("clientCertificateFilePath")
    subject = entry.get("clientCertificateSubjectName")
    if cert_path is not None:
        if not isinstance(cert_path, str) or not Path(cert_path).is_absolute():
            return f'{where} "clientCertificateFilePath" must be an absolute path'
        if not endpoints.is_guid(client_id.lower()):
            return f'{where} "clientId" must be the service principal\'s client id'
        return "service principal", {"client_id": client_id, "certificate_path": cert_path}
    if subject is not None:
        return (
            f'{where} names a certificate by "clientCertificateSubjectName", which needs the '
            'OS certificate store; export it to a PEM file and use "clientCertificateFilePath"'
        )
    if client_id.lower() == "system":
        return "managed identity", {"client_id": None}
    if not endpoints.is_guid(client_id.lower()):
        return f'{where} "clientId" must be "system" or a managed identity\'s client id'
    return "managed identity", {"client_id": client_id}


class _Entry(NamedTuple):
    kind: str  # "managed identity" | "service principal"
    settings: dict[str, Any]
    where: str

    @property
    def identity(self) -> str:
        """Each entry's identity is its own: a feed mapped to the system-assigned identity and
        another to a user-assigned one never share a token."""
        client = self.settings.get("client_id") or "system"
        certificate = self.settings.get("certificate_path")
        parts = [self.kind.replace(" ", "-"), str(client).lower()]
        if certificate:
            parts.append(str(certificate))
        return "feed_endpoints:" + ":".join(parts)


def _entry_for(request: TokenRequest) -> _Entry | Unavailable:
    text = request.settings.env.get(FEED_ENDPOINTS_VAR, "")
    if not text.strip():
        return Unavailable(f"{FEED_ENDPOINTS_VAR} is not set")
    for entry in endpoint_credentials(text, FEED_ENDPOINTS_VAR):
        if not same_feed(str(entry["endpoint"]), request.feed):
            continue
        where = f"{FEED_ENDPOINTS_VAR} entry {entry['number']}"
        described = describe(entry, where)
        if isinstance(described, str):
            raise SourceError(described, f"fix that entry in {FEED_ENDPOINTS_VAR}")
        kind, settings = described
        return _Entry(kind, settings, where)
    return Unavailable(f"{FEED_ENDPOINTS_VAR} has no entry for {request.feed.label}", present=True)


class FeedEndpointsSource:
    def prepare(self, request: TokenRequest) -> Prepared | Unavailable:
        entry = _entry_for(request)
        return entry if isinstance(entry, Unavailable) else Prepared(entry.identity)

    def get_token(self, request: TokenRequest) -> Token | Unavailable:
        entry = _entry_for(request)
        if isinstance(entry, Unavailable):
            return entry
        return self._get(request, entry)

    def _get(self, request: TokenRequest, entry: _Entry) -> Token:
        kind, settings, where = entry.kind, entry.settings, entry.where
        with _log.hushed("azure", "msal"):
            from azure.identity import CertificateCredential, ManagedIdentityCredential

            credential: Any
            if kind == "managed identity":
                credential = ManagedIdentityCredential(
                    client_id=settings["client_id"],
                    **IMDS_SETTINGS,
                    **credential_options(request, **IMDS_TRANSPORT),
                )
            else:
                if not request.tenant:
                    raise SourceError(
                        f"{where}: the feed did not name its tenant",
                        "use a managed identity for this feed, or a feed of an Entra tenant",
                    )
                try:
                    credential = CertificateCredential(
                        request.tenant,
                        settings["client_id"],
                        settings["certificate_path"],
                        **credential_options(request),
                    )
                except (OSError, ValueError) as exc:
                    raise SourceError(
                        f"{where}: cannot load the certificate: {first_line(exc)}",
                        "point clientCertificateFilePath at a PEM file with the key",
                    ) from None
            _log.debug("feed_endpoints: %s for %s (%s)", kind, request.feed.label, where)
            try:
                access = credential.get_token(DEFAULT_SCOPE)
            except Exception as exc:  # noqa: BLE001 - azure-identity raises many kinds
                raise SourceError(
                    f"{where}: {kind} sign-in failed: {first_line(exc)}",
                    "check the identity and its access to the organisation",
                ) from None
            finally:
                close(credential)
        return Token.from_secret(
            access.token, "feed_endpoints", expires_on=access.expires_on, identity=entry.identity
        )
