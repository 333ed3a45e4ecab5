"""identities/feed_endpoints.py: which identity each ARTIFACTS_CREDENTIALPROVIDER_FEED_ENDPOINTS
entry names, decided without signing in."""

from __future__ import annotations

import json
from typing import Any

import pytest

from artifacts_keyring_nofuss.errors import SourceError
from artifacts_keyring_nofuss.identities import TokenRequest, Unavailable, given
from artifacts_keyring_nofuss.identities.feed_endpoints import FeedEndpointsSource, describe

from .helpers import feed, token_request

CLIENT = "0a1b2c3d-4e5f-6789-abcd-ef0123456789"
WHERE = "ARTIFACTS_CREDENTIALPROVIDER_FEED_ENDPOINTS entry 1"
URL = "https://pkgs.dev.azure.com/contoso/_packaging/feed/pypi/simple/"


def REQUEST_() -> TokenRequest:
    return token_request(feed(URL))


@pytest.mark.parametrize(
    ("entry", "kind", "settings"),
    [
        ({"clientId": "system"}, "managed identity", {"client_id": None}),
        ({"clientId": " System "}, "managed identity", {"client_id": None}),
        ({"clientId": CLIENT}, "managed identity", {"client_id": CLIENT}),
        ({"clientId": f" {CLIENT.upper()} "}, "managed identity", {"client_id": CLIENT.upper()}),
        (
            {"clientId": CLIENT, "clientCertificateFilePath": "/etc/ssl/private/sp.pem"},
            "service principal",
            {"client_id": CLIENT, "certificate_path": "/etc/ssl/private/sp.pem"},
        ),
    ],
)
def test_describe_usable_entries(
    entry: dict[str, Any], kind: str, settings: dict[str, Any]
) -> None:
    assert describe({"endpoint": URL, **entry}, WHERE) == (kind, settings)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({}, f'{WHERE} has no "clientId"'),
        ({"clientId": ""}, f'{WHERE} has no "clientId"'),
        ({"clientId": "   "}, f'{WHERE} has no "clientId"'),
        ({"clientId": 42}, f'{WHERE} has no "clientId"'),
        ({"clientId": None}, f'{WHERE} has no "clientId"'),
        (
            {"clientId": CLIENT, "clientCertificateFilePath": "certs/sp.pem"},
            f'{WHERE} "clientCertificateFilePath" must be an absolute path',
        ),
        (
            {"clientId": CLIENT, "clientCertificateFilePath": ""},
            f'{WHERE} "clientCertificateFilePath" must be an absolute path',
        ),
        (
            {"clientId": CLIENT, "clientCertificateFilePath": ["/etc/sp.pem"]},
            f'{WHERE} "clientCertificateFilePath" must be an absolute path',
        ),
        (
            {"clientId": "system", "clientCertificateFilePath": "/etc/sp.pem"},
            f'{WHERE} "clientId" must be the service principal\'s client id',
        ),
        (
            {"clientId": "my-app", "clientCertificateFilePath": "/etc/sp.pem"},
            f'{WHERE} "clientId" must be the service principal\'s client id',
        ),
        (
            {"clientId": "my-identity"},
            f'{WHERE} "clientId" must be "system" or a managed identity\'s client id',
        ),
        (
            {"clientId": "--tenant=evil"},
            f'{WHERE} "clientId" must be "system" or a managed identity\'s client id',
        ),
    ],
)
def test_describe_unusable_entries(entry: dict[str, Any], message: str) -> None:
    assert describe({"endpoint": URL, **entry}, WHERE) == message


@pytest.mark.parametrize("client_id", ["system", CLIENT])
def test_a_certificate_subject_name_is_unsupported_with_what_to_do(client_id: str) -> None:
    described = describe(
        {"endpoint": URL, "clientId": client_id, "clientCertificateSubjectName": "CN=sp"}, WHERE
    )
    assert isinstance(described, str)
    assert described.startswith(f'{WHERE} names a certificate by "clientCertificateSubjectName"')
    assert "PEM" in described
    assert '"clientCertificateFilePath"' in described


def test_unset_is_unavailable() -> None:
    result = FeedEndpointsSource().get_token(REQUEST_())
    assert isinstance(result, Unavailable)
    assert "ARTIFACTS_CREDENTIALPROVIDER_FEED_ENDPOINTS is not set" in result.reason
    assert result.present is False


def test_no_entry_for_the_feed_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    other = "https://pkgs.dev.azure.com/fabrikam/_packaging/feed/pypi/simple/"
    monkeypatch.setenv(
        "ARTIFACTS_CREDENTIALPROVIDER_FEED_ENDPOINTS",
        json.dumps({"endpointCredentials": [{"endpoint": other, "clientId": "system"}]}),
    )
    result = FeedEndpointsSource().get_token(REQUEST_())
    assert isinstance(result, Unavailable)
    assert "has no entry for contoso/feed" in result.reason
    assert result.present is True


def test_an_unusable_entry_for_the_feed_is_a_source_error_before_any_sign_in(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(given, "_warned", set())
    entries = [
        "not an object",
        {"endpoint": URL, "clientId": CLIENT, "clientCertificateSubjectName": "CN=sp"},
    ]
    monkeypatch.setenv(
        "ARTIFACTS_CREDENTIALPROVIDER_FEED_ENDPOINTS", json.dumps({"endpointCredentials": entries})
    )
    with pytest.raises(SourceError) as caught:
        FeedEndpointsSource().get_token(REQUEST_())
    assert str(caught.value).startswith(
        "ARTIFACTS_CREDENTIALPROVIDER_FEED_ENDPOINTS entry 2 names a certificate by "
    )
