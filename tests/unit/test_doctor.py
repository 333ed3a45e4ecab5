"""doctor.py: how a report reads, and what it says about a token, without the network."""

from __future__ import annotations

import pytest

from artifacts_keyring_nofuss.discovery import Discovery
from artifacts_keyring_nofuss.doctor import FAIL, INFO, OK, WARN, Report, _describe_token, render
from artifacts_keyring_nofuss.identities.given import as_is
from artifacts_keyring_nofuss.tokens import Token

from .helpers import OTHER_TENANT, TENANT, app_jwt, user_jwt

URL = "https://pkgs.dev.azure.com/contoso/_packaging/feed/pypi/simple/"
FOUND = Discovery(
    tenant=TENANT,
    authority=f"https://login.microsoftonline.com/{TENANT}",
    authorization_endpoint="https://vssps.dev.azure.com/contoso/",
)
ELSEWHERE = Discovery(
    tenant=OTHER_TENANT,
    authority=f"https://login.microsoftonline.com/{OTHER_TENANT}",
    authorization_endpoint="https://vssps.dev.azure.com/contoso/",
)


def _report() -> Report:
    report = Report(URL)
    report.add("url", OK, "organisation contoso, feed feed")
    report.add("uv", WARN, "UV_KEYRING_PROVIDER is unset", "ak-nofuss setup uv URL")
    report.add("source azure_cli", INFO, "does not apply: az is not installed")
    report.add("identity", FAIL, "no identity source produced a token", "run `az login`")
    return report


# ---------------------------------------------------------------- render


def test_render_without_colour() -> None:
    text = render(_report(), colour=False)
    assert "\033" not in text
    assert text.splitlines() == [
        f"ak-nofuss doctor {URL}",
        "  ok    url               organisation contoso, feed feed",
        "  warn  uv                UV_KEYRING_PROVIDER is unset",
        "                          -> ak-nofuss setup uv URL",
        "        source azure_cli  does not apply: az is not installed",
        "  FAIL  identity          no identity source produced a token",
        "                          -> run `az login`",
        "the feed did not accept a credential: fix the first FAIL above",
    ]


def test_render_with_colour_marks_each_status() -> None:
    text = render(_report(), colour=True)
    assert "\033[32mok  \033[0m" in text
    assert "\033[33mwarn\033[0m" in text
    assert "\033[31mFAIL\033[0m" in text
    assert "\033[2m    \033[0m" in text
    assert "-> run `az login`" in text


def test_render_an_accepted_report() -> None:
    report = Report(URL)
    report.add("feed", OK, f"{URL} accepted the credential (200)")
    report.accepted = True
    text = render(report, colour=False)
    assert "->" not in text
    assert text.endswith("the feed accepted the credential: pip, uv and twine will get it\n")


def test_render_an_empty_report() -> None:
    assert render(Report(URL), colour=False).splitlines() == [
        f"ak-nofuss doctor {URL}",
        "the feed did not accept a credential: fix the first FAIL above",
    ]


def test_a_detail_never_shows_a_token_or_drives_the_terminal() -> None:
    report = Report(URL)
    secret = user_jwt()
    report.add("exchange", FAIL, f"refused {secret}\n\x1b[2Jfake prompt:")
    text = render(report, colour=False)
    assert secret not in text
    assert "\x1b" not in text
    assert len(text.splitlines()) == 3


# ---------------------------------------------------------------- _describe_token


def test_a_user_token_of_the_feeds_tenant() -> None:
    token = Token.from_secret(user_jwt(), "azure_cli")
    status, detail, fix = _describe_token(token, FOUND, first=True)
    assert status == OK
    assert detail == (
        f"user token for alice@contoso.com, tenant {TENANT}, expires 2096-10-02 07:06:40Z"
    )
    assert fix is None


def test_a_later_token_is_information_only() -> None:
    token = Token.from_secret(app_jwt(), "azure_identity")
    status, detail, fix = _describe_token(token, FOUND, first=False)
    assert status == INFO
    assert detail.startswith("application token for ")
    assert detail.endswith(" (not used: an earlier source applies)")
    assert fix is None


def test_an_expired_token_fails() -> None:
    token = Token.from_secret(user_jwt(exp=1_000_000_000), "azure_cli")
    status, detail, fix = _describe_token(token, FOUND, first=True)
    assert status == FAIL
    assert detail.endswith("expires 2001-09-09 01:46:40Z: expired")
    assert fix == "put a fresh token there, or unset it"


def test_a_token_of_another_tenant_fails_naming_the_fix() -> None:
    token = Token.from_secret(user_jwt(), "azure_cli")  # tenant TENANT
    status, detail, fix = _describe_token(token, ELSEWHERE, first=True)
    assert status == FAIL
    assert detail.endswith(f": but the feed's organisation is in tenant {OTHER_TENANT}")
    assert fix is not None
    assert f"`az login --tenant {OTHER_TENANT}`" in fix
    assert "ak-nofuss login" in fix


@pytest.mark.parametrize("tid", [TENANT.upper(), TENANT])
def test_the_tenant_is_compared_without_case(tid: str) -> None:
    token = Token.from_secret(user_jwt(tid=tid), "azure_cli")
    assert _describe_token(token, FOUND, first=True)[0] == OK


def test_a_given_token_is_not_judged_by_its_tenant() -> None:
    token = as_is(user_jwt(), "token", "ARTIFACTS_KEYRING_NOFUSS_TOKEN")
    status, detail, _ = _describe_token(token, ELSEWHERE, first=True)
    assert status == OK
    assert detail.startswith("given token for alice@contoso.com")


def test_without_discovery_the_tenant_is_not_judged() -> None:
    token = Token.from_secret(user_jwt(), "azure_cli")
    assert _describe_token(token, None, first=True)[0] == OK


def test_an_opaque_token() -> None:
    token = as_is("4xqkz7hvb2mny6wpt3rdc5sjl8fgae9u0oi1qwertyuiopasdfgh", "devops_pat", "PAT_VAR")
    status, detail, fix = _describe_token(token, FOUND, first=True)
    assert (status, fix) == (OK, None)
    assert detail == "given token for the token in PAT_VAR, expires (not stated)"
