from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from artifacts_keyring_nofuss.endpoints import (
    DEFAULT_AUTHORITY,
    UntrustedEndpoint,
    authority_host,
    authorization_endpoint,
    default_authorization_endpoint,
    is_github_oidc_url,
    is_token_url,
    login_authority,
    valid_tenant,
)

from .helpers import NULL_TENANT, TENANT

LOGIN = "https://login.microsoftonline.com"


# ---------------------------------------------------------------- login_authority


@pytest.mark.parametrize(
    ("uri", "authority", "tenant"),
    [
        (f"{LOGIN}/{TENANT}", f"{LOGIN}/{TENANT}", TENANT),
        (f"{LOGIN}/{TENANT.upper()}", f"{LOGIN}/{TENANT}", TENANT),
        (f"{LOGIN}/{TENANT}/", f"{LOGIN}/{TENANT}", TENANT),
        (f"https://login.microsoftonline.com:443/{TENANT}", f"{LOGIN}/{TENANT}", TENANT),
        (f"HTTPS://LOGIN.MICROSOFTONLINE.COM/{TENANT}", f"{LOGIN}/{TENANT}", TENANT),
        (
            f"{LOGIN}/contoso.onmicrosoft.com",
            f"{LOGIN}/contoso.onmicrosoft.com",
            "contoso.onmicrosoft.com",
        ),
        (f"{LOGIN}/Contoso.COM", f"{LOGIN}/contoso.com", "contoso.com"),
        (f"https://login.windows.net/{TENANT}", f"https://login.windows.net/{TENANT}", TENANT),
        (f"https://login.microsoft.com/{TENANT}", f"https://login.microsoft.com/{TENANT}", TENANT),
        (LOGIN, DEFAULT_AUTHORITY, None),
        (f"{LOGIN}/", DEFAULT_AUTHORITY, None),
        (f"{LOGIN}/organizations", DEFAULT_AUTHORITY, None),
        (f"{LOGIN}/Organizations", DEFAULT_AUTHORITY, None),
        (f"{LOGIN}/common", f"{LOGIN}/common", None),
    ],
)
def test_login_authority_accepts(uri: str, authority: str, tenant: str | None) -> None:
    assert login_authority(uri) == (authority, tenant)


HOSTILE_LOGIN: list[object] = [
    f"http://login.microsoftonline.com/{TENANT}",
    f"ftp://login.microsoftonline.com/{TENANT}",
    f"https://login.microsoftonline.com:444/{TENANT}",
    f"https://login.microsoftonline.com:8443/{TENANT}",
    f"https://login.microsoftonline.com:0/{TENANT}",
    f"https://login.microsoftonline.com:/{TENANT}",
    f"https://login.microsoftonline.com:99999/{TENANT}",
    f"https://user@login.microsoftonline.com/{TENANT}",
    f"https://user:pw@login.microsoftonline.com/{TENANT}",
    f"https://evil.com@login.microsoftonline.com/{TENANT}",
    f"https://login.microsoftonline.com@evil.com/{TENANT}",
    f"{LOGIN}/{TENANT}?x=1",
    f"{LOGIN}/{TENANT}?",
    f"{LOGIN}/{TENANT}#frag",
    f"{LOGIN}/{TENANT}#",
    f"{LOGIN}/{TENANT}/oauth2/v2.0/token",
    f"{LOGIN}/{TENANT}/..",
    f"{LOGIN}/..",
    f"{LOGIN}/../{TENANT}",
    f"{LOGIN}/./{TENANT}",
    f"{LOGIN}//{TENANT}",
    f"{LOGIN}/%2e%2e",
    f"{LOGIN}/%2E%2E/{TENANT}",
    f"{LOGIN}/{TENANT}%2F..",
    f"{LOGIN}\\{TENANT}",
    f"{LOGIN}\\@evil.com/{TENANT}",
    f" {LOGIN}/{TENANT}",
    f"{LOGIN}/{TENANT} ",
    f"{LOGIN}/{TENANT}\n",
    f"{LOGIN}/\t{TENANT}",
    f"https://login.microsoftonline.com./{TENANT}",
    f"https://login.microsoftonline.com.evil.com/{TENANT}",
    f"https://evil-login.microsoftonline.com/{TENANT}",
    f"https://x.login.microsoftonline.com/{TENANT}",
    f"https://login.microsoftonline.us/{TENANT}",
    f"https://login.microsoftonline.com.cn/{TENANT}",
    f"https://l\u043egin.microsoftonline.com/{TENANT}",  # Cyrillic o
    f"https://log\u212ain.microsoftonline.com/{TENANT}",  # Kelvin sign
    f"https://xn--lgin-1ve.microsoftonline.com/{TENANT}",
    f"https://xn--login-microsoftonline.com/{TENANT}",
    f"https://[::1]/{TENANT}",
    f"https://127.0.0.1/{TENANT}",
    f"{LOGIN}/{NULL_TENANT}",
    f"{LOGIN}/consumers",
    f"{LOGIN}/-rf",
    f"{LOGIN}/--tenant=evil.com",
    f"{LOGIN}/localhost",
    f"{LOGIN}/1.2.3.4",
    f"{LOGIN}/contoso.com.",
    f"{LOGIN}/con_toso.com",
    f"{LOGIN}/;contoso.com",
    f"{LOGIN}/$(id).com",
    f"{LOGIN}/{TENANT.replace('-', '')}",
    f"{LOGIN}/{TENANT}0",
    f"{LOGIN}/" + "a" * 600,
    "",
    "login.microsoftonline.com/" + TENANT,
    "//login.microsoftonline.com/" + TENANT,
    None,
    42,
    b"https://login.microsoftonline.com/contoso.com",
]


@pytest.mark.parametrize("uri", HOSTILE_LOGIN, ids=lambda u: repr(u)[:70])
def test_login_authority_refuses(uri: object) -> None:
    with pytest.raises(UntrustedEndpoint):
        login_authority(uri)


# ---------------------------------------------------------------- authorization_endpoint


@pytest.mark.parametrize(
    ("uri", "org", "expected"),
    [
        ("https://vssps.dev.azure.com/contoso/", "contoso", "https://vssps.dev.azure.com/contoso/"),
        ("https://vssps.dev.azure.com/contoso", "contoso", "https://vssps.dev.azure.com/contoso/"),
        ("https://vssps.dev.azure.com/Contoso/", "contoso", "https://vssps.dev.azure.com/contoso/"),
        ("https://vssps.dev.azure.com/contoso/", "Contoso", "https://vssps.dev.azure.com/contoso/"),
        ("https://VSSPS.dev.azure.com/contoso/", "contoso", "https://vssps.dev.azure.com/contoso/"),
        (
            "https://vssps.dev.azure.com:443/contoso/",
            "contoso",
            "https://vssps.dev.azure.com/contoso/",
        ),
        ("https://vssps.dev.azure.com/", "contoso", "https://vssps.dev.azure.com/"),
        (
            "https://contoso.vssps.visualstudio.com/",
            "contoso",
            "https://contoso.vssps.visualstudio.com/",
        ),
        (
            "https://contoso.vssps.visualstudio.com",
            "contoso",
            "https://contoso.vssps.visualstudio.com/",
        ),
        (
            "https://Contoso.vssps.visualstudio.com/",
            "contoso",
            "https://contoso.vssps.visualstudio.com/",
        ),
        ("https://app.vssps.visualstudio.com/", "contoso", "https://app.vssps.visualstudio.com/"),
        ("https://vssps.codedev.ms/contoso/", "contoso", "https://vssps.codedev.ms/contoso/"),
        ("https://contoso.vssps.codedev.ms/", "contoso", "https://contoso.vssps.codedev.ms/"),
        ("https://vssps.vsts.me/contoso/", "contoso", "https://vssps.vsts.me/contoso/"),
        ("https://contoso.vssps.vsts.me/", "contoso", "https://contoso.vssps.vsts.me/"),
    ],
)
def test_authorization_endpoint_accepts(uri: str, org: str, expected: str) -> None:
    assert authorization_endpoint(uri, org) == expected


HOSTILE_ENDPOINTS: list[object] = [
    "http://vssps.dev.azure.com/contoso/",
    "https://vssps.dev.azure.com:444/contoso/",
    "https://vssps.dev.azure.com:8443/contoso/",
    "https://vssps.dev.azure.com:0/contoso/",
    "https://vssps.dev.azure.com:/contoso/",
    "https://vssps.dev.azure.com:443:443/contoso/",
    "https://contoso.vssps.visualstudio.com:444/",
    "https://u@vssps.dev.azure.com/contoso/",
    "https://u:p@vssps.dev.azure.com/contoso/",
    "https://vssps.dev.azure.com@evil.com/contoso/",
    "https://evil.com@vssps.dev.azure.com/contoso/",
    "https://vssps.dev.azure.com/contoso/?",
    "https://vssps.dev.azure.com/contoso/?a=b",
    "https://vssps.dev.azure.com/contoso/#f",
    "https://vssps.dev.azure.com/contoso/#",
    "https://vssps.dev.azure.com/contoso/_apis/",
    "https://vssps.dev.azure.com/contoso/a/b/c/",
    "https://vssps.dev.azure.com/contoso/../other/",
    "https://vssps.dev.azure.com/../contoso/",
    "https://vssps.dev.azure.com/./contoso/",
    "https://vssps.dev.azure.com//contoso/",
    "https://vssps.dev.azure.com/%2e%2e/contoso/",
    "https://vssps.dev.azure.com/contoso%2F../",
    "https://vssps.dev.azure.com\\contoso",
    "https://evil.com\\@vssps.dev.azure.com/contoso/",
    "https://vssps.dev.azure.com/contoso /",
    " https://vssps.dev.azure.com/contoso/",
    "https://vssps.dev.azure.com/contoso/\n",
    "https://vssps.dev.azure.com/other/",
    "https://vssps.dev.azure.com/contoso2/",
    "https://vssps.dev.azure.com/contos/",
    "https://other.vssps.visualstudio.com/",
    "https://contoso.other.vssps.visualstudio.com/",
    "https://evil.contoso.vssps.visualstudio.com/",
    "https://contoso.vssps.visualstudio.com/contoso/",
    "https://contoso.vssps.visualstudio.com/_apis/",
    "https://.vssps.visualstudio.com/",
    "https://vssps.visualstudio.com/",
    "https://contosovssps.visualstudio.com/",
    "https://vssps.dev.azure.com./contoso/",
    "https://contoso.vssps.visualstudio.com./",
    "https://vssps.dev.azure.com.evil.com/contoso/",
    "https://contoso.vssps.visualstudio.com.evil.com/",
    "https://dev.azure.com/contoso/",
    "https://pkgs.dev.azure.com/contoso/",
    "https://login.microsoftonline.com/contoso/",
    "https://vssps.dev.azure.co/contoso/",
    "https://vssps.dev.azure.com/c\u043entoso/",  # Cyrillic o in the org
    "https://vssps.dev.\u0430zure.com/contoso/",
    "https://v\u212assps.dev.azure.com/contoso/",
    "https://xn--vssps-dev-azure.com/contoso/",
    "https://vssps.dev.xn--zure-43d.com/contoso/",
    "https://[::1]/contoso/",
    "https://127.0.0.1/contoso/",
    "vssps.dev.azure.com/contoso/",
    "//vssps.dev.azure.com/contoso/",
    "https://vssps.dev.azure.com/" + "a" * 600,
    "",
    None,
    7,
    b"https://vssps.dev.azure.com/contoso/",
]


@pytest.mark.parametrize("uri", HOSTILE_ENDPOINTS, ids=lambda u: repr(u)[:70])
def test_authorization_endpoint_refuses(uri: object) -> None:
    with pytest.raises(UntrustedEndpoint):
        authorization_endpoint(uri, "contoso")


def test_app_front_door_is_not_an_organisation_of_its_own() -> None:
    # "app" is accepted as the organisation-less front door whatever the organisation.
    assert authorization_endpoint("https://app.vssps.visualstudio.com/", "fabrikam") == (
        "https://app.vssps.visualstudio.com/"
    )


def test_refusal_message_names_the_url() -> None:
    with pytest.raises(UntrustedEndpoint, match=r"vssps\.dev\.azure\.com\.evil\.com"):
        authorization_endpoint("https://vssps.dev.azure.com.evil.com/contoso/", "contoso")


# ---------------------------------------------------------------- default_authorization_endpoint


@pytest.mark.parametrize(
    ("host", "org", "expected"),
    [
        ("pkgs.dev.azure.com", "contoso", "https://vssps.dev.azure.com/contoso/"),
        ("pkgs.dev.azure.com:8443", "contoso", "https://vssps.dev.azure.com/contoso/"),
        ("pkgs.codedev.ms", "contoso", "https://vssps.codedev.ms/contoso/"),
        ("pkgs.vsts.me", "contoso", "https://vssps.vsts.me/contoso/"),
        ("contoso.pkgs.visualstudio.com", "contoso", "https://contoso.vssps.visualstudio.com/"),
        ("pkgs.dev.azure.com", "my-org.1", "https://vssps.dev.azure.com/my-org.1/"),
    ],
)
def test_default_authorization_endpoint(host: str, org: str, expected: str) -> None:
    assert default_authorization_endpoint(host, org) == expected
    assert is_token_url(expected + "_apis/Token/SessionTokens?api-version=5.0-preview.1")


@pytest.mark.parametrize(
    "org",
    [
        "",
        "Contoso",
        "my org",
        "../x",
        "-rf",
        ".hidden",
        "org/evil",
        "org?x",
        "org#x",
        "org@evil.com",
        "org\n",
        "org\r\n",
        "c\u043entoso",
        "a" * 101,
    ],
)
def test_default_authorization_endpoint_refuses_odd_organisations(org: str) -> None:
    with pytest.raises(UntrustedEndpoint):
        default_authorization_endpoint("pkgs.dev.azure.com", org)


# ---------------------------------------------------------------- valid_tenant


@pytest.mark.parametrize(
    "tenant",
    [
        TENANT,
        "contoso.com",
        "contoso.onmicrosoft.com",
        "a.b.c.d.e.f.com",
        "xn--80ak6aa92e.com",
        "my-tenant.example.co.uk",
        "a" * 63 + ".com",
    ],
)
def test_valid_tenant(tenant: str) -> None:
    assert valid_tenant(tenant) is True


@pytest.mark.parametrize(
    "tenant",
    [
        NULL_TENANT,
        "organizations",
        "common",
        "consumers",
        "contoso",
        "-rf",
        "--tenant",
        "--tenant=x.com",
        "../x",
        "../evil.com",
        "./x.com",
        "x.com/..",
        "contoso.com/",
        "/contoso.com",
        "1.2.3.4",
        "a.b-",
        "a..b",
        ".a.com",
        "a.com.",
        "a.-b.com",
        "a_b.com",
        "a b.com",
        "a.com ",
        " a.com",
        "a.com\n",
        "a.com\r",
        "a.com\x00",
        f"{TENANT}\n",
        f"\n{TENANT}",
        TENANT.replace("-", ""),
        TENANT + "0",
        "g" + TENANT[1:],
        "c\u043entoso.com",
        "a." + "b" * 64 + ".com",
        "x" * 254,
        "",
        None,
        42,
        b"contoso.com",
    ],
)
def test_invalid_tenant(tenant: object) -> None:
    assert valid_tenant(tenant) is False


@given(st.text())
@example("contoso.com\n")
def test_a_valid_tenant_can_never_be_an_option_or_carry_whitespace(tenant: str) -> None:
    if valid_tenant(tenant):
        assert not tenant.startswith("-")
        assert tenant.strip() == tenant
        assert all(ch.isascii() and (ch.isalnum() or ch in ".-") for ch in tenant)


# ---------------------------------------------------------------- is_token_url

API = "_apis/Token/SessionTokens?api-version=5.0-preview.1&tokenType=SelfDescribing"


@pytest.mark.parametrize(
    "url",
    [
        f"https://vssps.dev.azure.com/contoso/{API}",
        f"https://vssps.dev.azure.com/{API}",
        f"https://contoso.vssps.visualstudio.com/{API}",
        f"https://app.vssps.visualstudio.com/{API}",
        f"https://vssps.codedev.ms/contoso/{API}",
        f"https://contoso.vssps.vsts.me/{API}",
        f"https://vssps.dev.azure.com:443/contoso/{API}",
        "https://vssps.dev.azure.com/contoso/_apis/Token/SessionTokens",
    ],
)
def test_is_token_url_accepts(url: str) -> None:
    assert is_token_url(url) is True


@pytest.mark.parametrize(
    "url",
    [
        f"http://vssps.dev.azure.com/contoso/{API}",
        f"https://vssps.dev.azure.com:444/contoso/{API}",
        f"https://vssps.dev.azure.com:8443/contoso/{API}",
        f"https://vssps.dev.azure.com:0/contoso/{API}",
        f"https://u@vssps.dev.azure.com/contoso/{API}",
        f"https://u:p@vssps.dev.azure.com/contoso/{API}",
        f"https://evil.com/{API}&next=https://vssps.dev.azure.com/",
        f"https://evil.com/?https://vssps.dev.azure.com/{API}",
        "https://evil.com?.vssps.visualstudio.com/",
        "https://evil.com#.vssps.visualstudio.com/",
        "https://evil.com\\.vssps.visualstudio.com/",
        "https://evil.com\\@vssps.dev.azure.com/contoso/",
        "https://vssps.dev.azure.com/contoso/_apis#frag",
        f"https://vssps.dev.azure.com/contoso/../{API}",
        f"https://vssps.dev.azure.com/contoso/%2e%2e/{API}",
        f"https://vssps.dev.azure.com//{API}",
        f"https://pkgs.dev.azure.com/contoso/{API}",
        f"https://dev.azure.com/contoso/{API}",
        f"https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/token",
        f"https://a.b.vssps.visualstudio.com/{API}",
        f"https://-x.vssps.visualstudio.com/{API}",
        f"https://.vssps.visualstudio.com/{API}",
        f"https://vssps.visualstudio.com/{API}",
        f"https://vssps.dev.azure.com.evil.com/{API}",
        f"https://vssps.dev.azure.com./{API}",
        f"https://contoso.vssps.visualstudio.com./{API}",
        f"https://v\u212assps.dev.azure.com/contoso/{API}",
        f"https://vssps.dev.\u0430zure.com/contoso/{API}",
        f"https://[::1]/{API}",
        f" https://vssps.dev.azure.com/contoso/{API}",
        f"https://vssps.dev.azure.com/con toso/{API}",
        "",
        "vssps.dev.azure.com/contoso/",
    ],
)
def test_is_token_url_refuses(url: str) -> None:
    assert is_token_url(url) is False


# ---------------------------------------------------------------- is_github_oidc_url

OIDC = "https://pipelinesghubeus21.actions.githubusercontent.com/aBc123"
OIDC_PATH = "/_apis/distributedtask/hubs/Actions/plans/p1/jobs/j1/idtoken"


@pytest.mark.parametrize(
    "url",
    [
        f"{OIDC}{OIDC_PATH}?api-version=2.0",
        f"{OIDC}{OIDC_PATH}",
        f"{OIDC}{OIDC_PATH}?api-version=2.0&audience=x",
        "https://vstoken.actions.githubusercontent.com/_apis/x?api-version=2.0",
        "https://PIPELINES.Actions.GitHubUserContent.com/x",
        "https://pipelines.actions.githubusercontent.com:443/x",
        "https://pipelines.actions.githubusercontent.com",
        "https://pipelines.actions.githubusercontent.com/",
        # a query may say anything: it does not change where the request goes
        "https://pipelines.actions.githubusercontent.com/x?next=https://evil.com/%2e%2e",
    ],
)
def test_github_oidc_url_accepted(url: str) -> None:
    assert is_github_oidc_url(url) is True


@pytest.mark.parametrize(
    "url",
    [
        f"http://pipelinesghubeus21.actions.githubusercontent.com/aBc123{OIDC_PATH}",
        f"ftp://pipelinesghubeus21.actions.githubusercontent.com/aBc123{OIDC_PATH}",
        f"//pipelinesghubeus21.actions.githubusercontent.com/aBc123{OIDC_PATH}",
        f"pipelinesghubeus21.actions.githubusercontent.com/aBc123{OIDC_PATH}",
        # other hosts, lookalikes, the bare suffix, empty or odd labels
        "https://evil.com/x",
        "https://actions.githubusercontent.com/x",
        "https://.actions.githubusercontent.com/x",
        "https://a.b.actions.githubusercontent.com/x",
        "https://-x.actions.githubusercontent.com/x",
        "https://x-.actions.githubusercontent.com/x",
        "https://x_y.actions.githubusercontent.com/x",
        "https://xactions.githubusercontent.com/x",
        "https://x.actionsgithubusercontent.com/x",
        "https://x.actions.githubusercontent.co/x",
        "https://x.actions.githubusercontent.com.evil.com/x",
        "https://actions.githubusercontent.com.evil.com/x",
        "https://x.actions.githubusercontent.com./x",
        "https://x.actions.githubusercontent.com../x",
        "https://githubusercontent.com/x",
        "https://token.actions.githubusercontent.net/x",
        "https://evil.com/x.actions.githubusercontent.com/",
        "https://evil.com/?.actions.githubusercontent.com",
        "https://evil.com?x.actions.githubusercontent.com/",
        "https://evil.com#.actions.githubusercontent.com/",
        "https://evil.com#@x.actions.githubusercontent.com/",
        # userinfo, in either direction
        "https://u@x.actions.githubusercontent.com/x",
        "https://u:p@x.actions.githubusercontent.com/x",
        "https://x.actions.githubusercontent.com@evil.com/x",
        "https://x.actions.githubusercontent.com:443@evil.com/x",
        # ports
        "https://x.actions.githubusercontent.com:8443/x",
        "https://x.actions.githubusercontent.com:444/x",
        "https://x.actions.githubusercontent.com:0/x",
        "https://x.actions.githubusercontent.com:/x",
        "https://x.actions.githubusercontent.com:99999/x",
        "https://x.actions.githubusercontent.com:x/x",
        # backslashes: clients end the authority there
        "https://evil.com\\.actions.githubusercontent.com/x",
        "https://evil.com\\@x.actions.githubusercontent.com/x",
        "https://x.actions.githubusercontent.com\\@evil.com/x",
        "https://x.actions.githubusercontent.com\\x",
        # percent-escapes in the host or the path
        "https://%78.actions.githubusercontent.com/x",
        "https://x.actions.githubusercontent%2ecom/x",
        "https://evil.com%2f.actions.githubusercontent.com/x",
        "https://evil.com%40x.actions.githubusercontent.com/x",
        "https://x.actions.githubusercontent.com/%2e%2e/x",
        "https://x.actions.githubusercontent.com/a%2Fb",
        # odd paths, fragments
        "https://x.actions.githubusercontent.com/../x",
        "https://x.actions.githubusercontent.com/./x",
        "https://x.actions.githubusercontent.com//x",
        "https://x.actions.githubusercontent.com/x#frag",
        # whitespace, control characters, unicode
        " https://x.actions.githubusercontent.com/x",
        "https://x.actions.githubusercontent.com/x ",
        "https://x.actions.githubusercontent.com/x\n",
        "https://x.actions.githubusercontent.com/x\r\nX-Injected: 1",
        "https://x.actions.githubusercontent.com\x00.evil.com/x",
        "https://x.\u0430ctions.githubusercontent.com/x",  # Cyrillic a
        "https://x.actions.githubusercontent\u3002com/x",  # ideographic full stop
        "https://x.actions.githubuser\u212aontent.com/x",  # Kelvin sign
        # not hosts
        "https://[::1]/x",
        "https://127.0.0.1/x",
        "https://",
        "",
        "https://x.actions.githubusercontent.com/" + "a" * 600,
    ],
)
def test_github_oidc_url_refused(url: str) -> None:
    assert is_github_oidc_url(url) is False


# ---------------------------------------------------------------- authority_host


@pytest.mark.parametrize("value", [None, "", "   ", "\t\n"])
def test_authority_host_unset(value: str | None) -> None:
    assert authority_host(value) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://login.microsoftonline.com", "https://login.microsoftonline.com"),
        ("https://login.microsoftonline.com/", "https://login.microsoftonline.com"),
        ("login.microsoftonline.com", "https://login.microsoftonline.com"),
        ("  https://login.microsoftonline.com  ", "https://login.microsoftonline.com"),
        ("HTTPS://LOGIN.MICROSOFTONLINE.COM", "https://login.microsoftonline.com"),
        ("https://login.microsoftonline.com:443", "https://login.microsoftonline.com"),
        ("https://login.windows.net", "https://login.windows.net"),
        ("https://login.microsoft.com/", "https://login.microsoft.com"),
    ],
)
def test_authority_host_accepts_entra_login_hosts(value: str, expected: str) -> None:
    assert authority_host(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "http://login.microsoftonline.com",
        "ftp://login.microsoftonline.com",
        "https://evil.com",
        "evil.com",
        "https://login.microsoftonline.com.evil.com",
        "https://evil-login.microsoftonline.com",
        "https://x.login.microsoftonline.com",
        "https://login.microsoftonline.com./",
        "https://login.microsoftonline.us",
        "https://localhost",
        "https://127.0.0.1",
        "https://[::1]",
        f"https://login.microsoftonline.com/{TENANT}",
        "https://login.microsoftonline.com/organizations",
        "https://login.microsoftonline.com/..",
        "https://login.microsoftonline.com//",
        "https://login.microsoftonline.com:8443",
        "https://login.microsoftonline.com:0",
        "https://login.microsoftonline.com:x",
        "https://user@login.microsoftonline.com",
        "https://login.microsoftonline.com@evil.com",
        "https://evil.com@login.microsoftonline.com",
        "https://evil.com\\@login.microsoftonline.com",
        "https://login.microsoftonline.com\\@evil.com",
        "https://login.microsoftonline.com\\",
        "https://login%2emicrosoftonline.com",
        "https://login.microsoftonline.com%2f@evil.com",
        "https://login.microsoftonline.com/%2e%2e",
        "https://login.microsoftonline.com?x=1",
        "https://login.microsoftonline.com#x",
        "https://l\u043egin.microsoftonline.com",  # Cyrillic o
        "https://log\u212ain.microsoftonline.com",  # Kelvin sign
        "https://login.microsoftonline.com\x00.evil.com",
        "https://login.micro softonline.com",
        "//login.microsoftonline.com",
        "https://",
        "https://" + "a" * 600 + ".com",
    ],
)
def test_authority_host_refuses_anything_else(value: str) -> None:
    with pytest.raises(UntrustedEndpoint) as caught:
        authority_host(value)
    assert "AZURE_AUTHORITY_HOST" in str(caught.value)
