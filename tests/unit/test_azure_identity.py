from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from artifacts_keyring_nofuss.errors import SourceError
from artifacts_keyring_nofuss.identities import TokenRequest, Unavailable
from artifacts_keyring_nofuss.identities.azure_identity import (
    AzureIdentitySource,
    workload_settings,
)

from .helpers import token_request


def REQUEST_() -> TokenRequest:
    return token_request()


CLIENT = "11111111-1111-1111-1111-111111111111"
TENANT = "22222222-2222-2222-2222-222222222222"
OTHER = "33333333-3333-3333-3333-333333333333"


def _clean_env() -> dict[str, str]:
    prefixes = ("AZURE_", "IDENTITY_", "MSI_", "IMDS_", "ARTIFACTS_")
    return {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}


def test_nothing_configured_is_unavailable() -> None:
    result = AzureIdentitySource().get_token(REQUEST_())
    assert isinstance(result, Unavailable)
    assert "managed identity" in result.reason
    assert "AZURE_CLIENT_ID" in result.reason


def test_nothing_configured_prints_nothing_in_a_real_process() -> None:
    """No azure-identity warning paragraphs on a laptop without any Azure workload identity."""
    code = (
        "from artifacts_keyring_nofuss.deadline import Deadline\n"
        "from artifacts_keyring_nofuss.feeds import parse_feed_url\n"
        "from artifacts_keyring_nofuss.identities import TokenRequest\n"
        "from artifacts_keyring_nofuss.identities.azure_identity import AzureIdentitySource\n"
        "from artifacts_keyring_nofuss.settings import Settings\n"
        "feed = parse_feed_url('https://pkgs.dev.azure.com/contoso/_packaging/f/pypi/simple/')\n"
        "request = TokenRequest(feed, None, Deadline(30), Settings.load())\n"
        "result = AzureIdentitySource().get_token(request)\n"
        "print(type(result).__name__)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=_clean_env(),
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Unavailable\n"
    assert done.stderr == ""


def test_user_assigned_client_id_without_a_managed_identity_is_unavailable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AZURE_CLIENT_ID", CLIENT)
    result = AzureIdentitySource().get_token(REQUEST_())
    assert isinstance(result, Unavailable)
    assert capsys.readouterr().out == ""


def test_workload_identity_with_a_missing_token_file_is_a_source_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZURE_CLIENT_ID", CLIENT)
    monkeypatch.setenv("AZURE_TENANT_ID", TENANT)
    monkeypatch.setenv("AZURE_FEDERATED_TOKEN_FILE", str(tmp_path / "missing-token"))
    with pytest.raises(SourceError, match="workload identity"):
        AzureIdentitySource().get_token(REQUEST_())


def test_a_certificate_that_is_not_a_certificate_is_a_source_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bogus = tmp_path / "cert.pem"
    bogus.write_text("not a certificate\n", encoding="utf-8")
    monkeypatch.setenv("AZURE_CLIENT_ID", CLIENT)
    monkeypatch.setenv("AZURE_TENANT_ID", TENANT)
    monkeypatch.setenv("AZURE_CLIENT_CERTIFICATE_PATH", str(bogus))
    with pytest.raises(SourceError, match="azure-identity"):
        AzureIdentitySource().get_token(REQUEST_())


def test_a_missing_certificate_file_is_a_source_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A source that applies and fails raises SourceError, whatever azure-identity raised."""
    monkeypatch.setenv("AZURE_CLIENT_ID", CLIENT)
    monkeypatch.setenv("AZURE_TENANT_ID", TENANT)
    monkeypatch.setenv("AZURE_CLIENT_CERTIFICATE_PATH", str(tmp_path / "missing.pem"))
    with pytest.raises(SourceError):
        AzureIdentitySource().get_token(REQUEST_())


# ---------------------------------------------------------------- workload_settings


def test_workload_settings_need_a_client_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_TENANT_ID", TENANT)
    monkeypatch.setenv("AZURE_CLIENT_ID", "   ")
    with pytest.raises(SourceError) as caught:
        workload_settings(REQUEST_(), "Workload X")
    assert str(caught.value) == (
        "Workload X needs AZURE_CLIENT_ID; set it to the client id of the app registration"
    )


def test_workload_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_CLIENT_ID", f" {CLIENT} ")
    monkeypatch.setenv("AZURE_TENANT_ID", f" {TENANT} ")
    with_tenant = token_request(tenant=OTHER)
    assert workload_settings(with_tenant, "x") == (CLIENT, TENANT, None)


def test_workload_settings_take_the_feeds_tenant_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AZURE_CLIENT_ID", CLIENT)
    monkeypatch.setenv("AZURE_TENANT_ID", "  ")
    with_tenant = token_request(tenant=OTHER)
    assert workload_settings(with_tenant, "x") == (CLIENT, OTHER, None)


def test_workload_settings_without_any_tenant(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_CLIENT_ID", CLIENT)
    with pytest.raises(SourceError) as caught:
        workload_settings(REQUEST_(), "Workload X")
    assert str(caught.value) == (
        "Workload X needs AZURE_TENANT_ID (the feed did not name its tenant); set AZURE_TENANT_ID"
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://login.microsoftonline.com", "https://login.microsoftonline.com"),
        ("login.microsoftonline.com/", "https://login.microsoftonline.com"),
        ("https://login.windows.net", "https://login.windows.net"),
    ],
)
def test_workload_settings_pass_an_entra_authority_host(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: str
) -> None:
    monkeypatch.setenv("AZURE_CLIENT_ID", CLIENT)
    monkeypatch.setenv("AZURE_TENANT_ID", TENANT)
    monkeypatch.setenv("AZURE_AUTHORITY_HOST", value)
    assert workload_settings(REQUEST_(), "x") == (CLIENT, TENANT, expected)


@pytest.mark.parametrize(
    "value",
    [
        "https://evil.com",
        "http://login.microsoftonline.com",
        "https://login.microsoftonline.com.evil.com",
        "https://login.microsoftonline.com:8443",
        "https://user@login.microsoftonline.com",
        f"https://login.microsoftonline.com/{TENANT}",
    ],
)
def test_workload_settings_refuse_another_authority_host(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("AZURE_CLIENT_ID", CLIENT)
    monkeypatch.setenv("AZURE_TENANT_ID", TENANT)
    monkeypatch.setenv("AZURE_AUTHORITY_HOST", value)
    with pytest.raises(SourceError, match="AZURE_AUTHORITY_HOST"):
        workload_settings(REQUEST_(), "x")


def test_the_source_refuses_another_authority_host_before_asking_anything(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AZURE_AUTHORITY_HOST", "https://evil.com")
    monkeypatch.setenv("AZURE_CLIENT_ID", CLIENT)
    monkeypatch.setenv("AZURE_TENANT_ID", TENANT)
    monkeypatch.setenv("AZURE_CLIENT_SECRET", "a-client-secret-value")
    with pytest.raises(SourceError) as caught:
        AzureIdentitySource().get_token(REQUEST_())
    assert "is not a Microsoft Entra login host" in str(caught.value)
    assert "a-client-secret-value" not in str(caught.value)
