"""identities/github_actions.py: the job's request token goes to GitHub's OIDC service only."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest

from artifacts_keyring_nofuss import identities
from artifacts_keyring_nofuss.errors import SourceError
from artifacts_keyring_nofuss.identities import TokenRequest, Unavailable
from artifacts_keyring_nofuss.identities.github_actions import (
    AUDIENCE,
    GitHubActionsSource,
    id_token_url,
)

from .helpers import TENANT, token_request


def REQUEST_() -> TokenRequest:
    return token_request(tenant=TENANT, seconds=10)


GITHUB = "https://pipelinesghubeus21.actions.githubusercontent.com/aBc/_apis/idtoken"
CLIENT = "0a1b2c3d-4e5f-6789-abcd-ef0123456789"


@pytest.mark.parametrize(
    ("request_url", "expected"),
    [
        (
            f"{GITHUB}?api-version=2.0",
            f"{GITHUB}?api-version=2.0&audience=api%3A%2F%2FAzureADTokenExchange",
        ),
        (GITHUB, f"{GITHUB}?audience=api%3A%2F%2FAzureADTokenExchange"),
    ],
)
def test_id_token_url(request_url: str, expected: str) -> None:
    assert id_token_url(request_url) == expected


def test_id_token_url_asks_for_the_exchange_audience() -> None:
    query = parse_qs(urlsplit(id_token_url(f"{GITHUB}?api-version=2.0")).query)
    assert query == {"api-version": ["2.0"], "audience": [AUDIENCE]}


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"ACTIONS_ID_TOKEN_REQUEST_URL": GITHUB},
        {"ACTIONS_ID_TOKEN_REQUEST_TOKEN": "request-token"},
        {"ACTIONS_ID_TOKEN_REQUEST_URL": " ", "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "request-token"},
    ],
)
def test_not_a_job_with_id_token_permission_is_unavailable(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str]
) -> None:
    monkeypatch.setenv("AZURE_CLIENT_ID", CLIENT)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = GitHubActionsSource().get_token(REQUEST_())
    assert isinstance(result, Unavailable)
    assert "id-token: write" in result.reason
    assert "ACTIONS_ID_TOKEN_REQUEST_URL" in result.reason


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A local port that records whether anything connected to it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        sock.setblocking(False)
        yield sock


def _connected(sock: socket.socket) -> bool:
    try:
        conn, _ = sock.accept()
    except BlockingIOError:
        return False
    conn.close()
    return True


@pytest.mark.parametrize(
    "request_url",
    [
        "https://127.0.0.1:{port}/_apis/idtoken",
        "https://localhost:{port}/_apis/idtoken",
        "http://127.0.0.1:{port}/x.actions.githubusercontent.com/",
        "https://x.actions.githubusercontent.com@127.0.0.1:{port}/",
        "https://127.0.0.1:{port}\\@x.actions.githubusercontent.com/",
    ],
)
def test_a_request_url_that_is_not_github_is_refused_before_any_request(
    monkeypatch: pytest.MonkeyPatch, listener: socket.socket, request_url: str
) -> None:
    port = listener.getsockname()[1]
    monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_URL", request_url.format(port=port))
    monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "the-jobs-request-token")
    monkeypatch.setenv("AZURE_CLIENT_ID", CLIENT)
    with pytest.raises(SourceError) as caught:
        GitHubActionsSource().get_token(REQUEST_())
    message = str(caught.value)
    assert "ACTIONS_ID_TOKEN_REQUEST_URL does not point at GitHub's token service" in message
    assert "the-jobs-request-token" not in message
    assert not _connected(listener)


def test_without_azure_client_id_it_is_a_source_error(
    monkeypatch: pytest.MonkeyPatch, listener: socket.socket
) -> None:
    port = listener.getsockname()[1]
    monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_URL", f"https://127.0.0.1:{port}/_apis/idtoken")
    monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "the-jobs-request-token")
    with pytest.raises(SourceError, match="GitHub Actions OIDC needs AZURE_CLIENT_ID"):
        GitHubActionsSource().get_token(REQUEST_())
    assert not _connected(listener)


def test_without_a_tenant_it_is_a_source_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_URL", GITHUB)
    monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "the-jobs-request-token")
    monkeypatch.setenv("AZURE_CLIENT_ID", CLIENT)
    no_tenant = token_request(seconds=10)
    with pytest.raises(SourceError, match="needs AZURE_TENANT_ID"):
        GitHubActionsSource().get_token(no_tenant)


def test_an_untrusted_authority_host_is_a_source_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_URL", GITHUB)
    monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "the-jobs-request-token")
    monkeypatch.setenv("AZURE_CLIENT_ID", CLIENT)
    monkeypatch.setenv("AZURE_AUTHORITY_HOST", "https://evil.com")
    with pytest.raises(SourceError, match="AZURE_AUTHORITY_HOST"):
        GitHubActionsSource().get_token(REQUEST_())


def test_application_tokens_are_never_cached() -> None:
    source = GitHubActionsSource()
    assert identities.SPECS["github_actions"].needs_discovery is True
    assert source.prepare(token_request()) == Unavailable(
        "not a GitHub Actions job with `permissions: id-token: write` "
        "(ACTIONS_ID_TOKEN_REQUEST_URL is not set)"
    )
