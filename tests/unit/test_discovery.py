from __future__ import annotations

import pytest

from artifacts_keyring_nofuss.discovery import Discovery, discover, interpret
from artifacts_keyring_nofuss.errors import DiscoveryError
from artifacts_keyring_nofuss.http import Response

from .helpers import NULL_TENANT, OTHER_TENANT, TENANT, feed, response

LOGIN = "https://login.microsoftonline.com"
DEV = feed("https://pkgs.dev.azure.com/Contoso/_packaging/feed/pypi/simple/")
LEGACY = feed("https://contoso.pkgs.visualstudio.com/_packaging/feed/pypi/simple/")
COMBINED = (
    f"Bearer authorization_uri={LOGIN}/{TENANT}, "
    'Basic realm="https://pkgsprodsu3.pkgs.visualstudio.com/", TFS-Federated'
)


def _real_headers(
    challenge: str = COMBINED,
    resource_tenant: str = TENANT,
    endpoint: str | None = "https://vssps.dev.azure.com/Contoso/",
) -> list[tuple[str, str]]:
    headers = [
        ("Content-Type", "application/json; charset=utf-8"),
        ("WWW-Authenticate", challenge),
        ("X-TFS-ProcessId", "0d6f2a9e-5a39-4cd8-a9b0-4e6a1f1e0f1a"),
        ("X-TFS-FedAuthRealm", "https://pkgsprodsu3.pkgs.visualstudio.com/"),
        ("X-TFS-FedAuthIssuer", "https://contoso.visualstudio.com/"),
        ("X-VSS-ResourceTenant", resource_tenant),
        ("X-VSS-E2EID", "2e9c04b4-0b2c-4c17-9b7b-5d0c7a3f3b11"),
        ("X-FRAME-OPTIONS", "SAMEORIGIN"),
    ]
    if endpoint is not None:
        headers.append(("X-VSS-AuthorizationEndpoint", endpoint))
    return headers


def test_the_real_answer() -> None:
    found = interpret(DEV, response(401, _real_headers()))
    assert found == Discovery(
        tenant=TENANT,
        authority=f"{LOGIN}/{TENANT}",
        authorization_endpoint="https://vssps.dev.azure.com/contoso/",
    )


def test_header_names_are_case_insensitive() -> None:
    headers = [(name.lower(), value) for name, value in _real_headers()]
    assert interpret(DEV, response(401, headers)).tenant == TENANT


def test_separate_challenge_lines() -> None:
    headers = [
        ("WWW-Authenticate", f"Bearer authorization_uri={LOGIN}/{TENANT}"),
        ("WWW-Authenticate", 'Basic realm="https://pkgsprodsu3.pkgs.visualstudio.com/"'),
        ("WWW-Authenticate", "TFS-Federated"),
        ("X-VSS-ResourceTenant", TENANT),
        ("X-VSS-AuthorizationEndpoint", "https://vssps.dev.azure.com/contoso/"),
    ]
    assert interpret(DEV, response(401, headers)) == interpret(DEV, response(401, _real_headers()))


def test_basic_before_bearer() -> None:
    headers = [
        ("WWW-Authenticate", 'Basic realm="x"'),
        ("WWW-Authenticate", f'Bearer authorization_uri="{LOGIN}/{TENANT}"'),
        ("X-VSS-ResourceTenant", TENANT),
    ]
    assert interpret(DEV, response(401, headers)).tenant == TENANT


def test_bare_bearer_falls_back_to_the_resource_tenant() -> None:
    found = interpret(DEV, response(401, _real_headers(challenge='Bearer, Basic realm="x"')))
    assert found.tenant == TENANT
    assert found.authority in (f"{LOGIN}/{TENANT}", f"{LOGIN}/organizations")


def test_bare_bearer_without_tenant_uses_organizations() -> None:
    headers = [("WWW-Authenticate", "Bearer"), ("X-VSS-ResourceTenant", NULL_TENANT)]
    found = interpret(DEV, response(401, headers))
    assert found.tenant is None
    assert found.authority == f"{LOGIN}/organizations"
    assert found.authorization_endpoint == "https://vssps.dev.azure.com/contoso/"


def test_all_zero_resource_tenant_keeps_the_challenge_tenant() -> None:
    found = interpret(DEV, response(401, _real_headers(resource_tenant=NULL_TENANT)))
    assert found.tenant == TENANT
    assert found.authority == f"{LOGIN}/{TENANT}"


def test_organizations_challenge_and_null_tenant() -> None:
    found = interpret(
        DEV,
        response(
            401,
            _real_headers(
                challenge=f"Bearer authorization_uri={LOGIN}/organizations",
                resource_tenant=NULL_TENANT,
            ),
        ),
    )
    assert found.tenant is None
    assert found.authority == f"{LOGIN}/organizations"


def test_upper_case_tenants_are_the_same_tenant() -> None:
    found = interpret(
        DEV,
        response(
            401,
            _real_headers(
                challenge=f"Bearer authorization_uri={LOGIN}/{TENANT.upper()}",
                resource_tenant=TENANT.upper(),
            ),
        ),
    )
    assert found.tenant == TENANT


def test_domain_tenant_in_the_challenge() -> None:
    found = interpret(
        DEV,
        response(401, _real_headers(challenge=f"Bearer authorization_uri={LOGIN}/contoso.com")),
    )
    assert found.tenant in ("contoso.com", TENANT)
    assert found.authority == f"{LOGIN}/contoso.com"


def test_tenant_mismatch_is_refused() -> None:
    headers = _real_headers(resource_tenant=OTHER_TENANT)
    with pytest.raises(DiscoveryError) as caught:
        interpret(DEV, response(401, headers))
    assert TENANT in str(caught.value)
    assert OTHER_TENANT in str(caught.value)


@pytest.mark.parametrize(
    "resource_tenant",
    ["-rf", "../evil", "not a tenant", "--tenant=evil.com", "organizations", TENANT + "x"],
)
def test_hostile_resource_tenant_is_refused(resource_tenant: str) -> None:
    with pytest.raises(DiscoveryError):
        interpret(
            DEV, response(401, _real_headers(challenge="Bearer", resource_tenant=resource_tenant))
        )


@pytest.mark.parametrize(
    "authorization_uri",
    [
        f"http://login.microsoftonline.com/{TENANT}",
        f"https://login.microsoftonline.com.evil.com/{TENANT}",
        f"https://evil.com/{TENANT}",
        f"https://login.microsoftonline.com:8443/{TENANT}",
        f"https://user@login.microsoftonline.com/{TENANT}",
        f"https://login.microsoftonline.com/{TENANT}?x=1",
        f"https://login.microsoftonline.com/{TENANT}/../evil",
        "https://login.microsoftonline.com/-rf",
        f"https://login.microsoftonline.com/{NULL_TENANT}",
        "",
        "garbage",
    ],
)
def test_hostile_authorization_uri_is_refused(authorization_uri: str) -> None:
    challenge = f'Bearer authorization_uri="{authorization_uri}", Basic realm="x"'
    with pytest.raises(DiscoveryError) as caught:
        interpret(DEV, response(401, _real_headers(challenge=challenge)))
    assert "not sending any token" in str(caught.value)


@pytest.mark.parametrize(
    "endpoint",
    [
        "https://evil.com/",
        "http://vssps.dev.azure.com/contoso/",
        "https://vssps.dev.azure.com:444/contoso/",
        "https://vssps.dev.azure.com/fabrikam/",
        "https://fabrikam.vssps.visualstudio.com/",
        "https://vssps.dev.azure.com.evil.com/contoso/",
        "https://u:p@vssps.dev.azure.com/contoso/",
        "https://vssps.dev.azure.com/contoso/?x",
        "https://vssps.dev.azure.com/contoso/../fabrikam/",
        "https://vssps.dev.azure.com/contoso/_apis/",
        "",
    ],
)
def test_hostile_authorization_endpoint_is_refused(endpoint: str) -> None:
    with pytest.raises(DiscoveryError):
        interpret(DEV, response(401, _real_headers(endpoint=endpoint)))


def test_endpoint_header_is_trimmed() -> None:
    found = interpret(
        DEV, response(401, _real_headers(endpoint="  https://vssps.dev.azure.com/contoso/ "))
    )
    assert found.authorization_endpoint == "https://vssps.dev.azure.com/contoso/"


def test_legacy_host_with_its_own_endpoint() -> None:
    found = interpret(
        LEGACY, response(401, _real_headers(endpoint="https://contoso.vssps.visualstudio.com/"))
    )
    assert found.authorization_endpoint == "https://contoso.vssps.visualstudio.com/"


def test_legacy_host_with_the_app_front_door() -> None:
    found = interpret(
        LEGACY, response(401, _real_headers(endpoint="https://app.vssps.visualstudio.com/"))
    )
    assert found.authorization_endpoint == "https://app.vssps.visualstudio.com/"


@pytest.mark.parametrize(
    ("which", "expected"),
    [
        (DEV, "https://vssps.dev.azure.com/contoso/"),
        (LEGACY, "https://contoso.vssps.visualstudio.com/"),
        (
            feed("https://pkgs.codedev.ms/contoso/_packaging/f/pypi/simple/"),
            "https://vssps.codedev.ms/contoso/",
        ),
    ],
)
def test_missing_endpoint_header_is_derived(which: object, expected: str) -> None:
    found = interpret(which, response(401, _real_headers(endpoint=None)))  # type: ignore[arg-type]
    assert found.authorization_endpoint == expected
    assert found.tenant == TENANT


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirects_are_refused(status: int) -> None:
    headers = [("Location", "https://evil.com/login"), *_real_headers()]
    with pytest.raises(DiscoveryError, match="redirect"):
        interpret(DEV, response(status, headers))


@pytest.mark.parametrize("status", [200, 203, 401, 403, 404])
def test_an_answer_without_sign_in_headers_is_refused(status: int) -> None:
    with pytest.raises(DiscoveryError, match="Azure Artifacts"):
        interpret(DEV, response(status, [("Content-Type", "text/html")], b"<html>hi</html>"))


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_a_busy_or_down_feed_is_not_blamed_on_the_url(status: int) -> None:
    with pytest.raises(DiscoveryError, match=f"HTTP {status} \\(busy or down\\).*try again"):
        interpret(DEV, response(status, [("Content-Type", "text/html")], b"<html>down</html>"))


def test_basic_only_is_not_azure_devops_services() -> None:
    # Azure DevOps Server on-premises: Basic only, X-VSS-E2EID alone.
    headers = [("WWW-Authenticate", 'Basic realm="ads.example.com"'), ("X-VSS-E2EID", "x")]
    with pytest.raises(DiscoveryError):
        interpret(DEV, response(401, headers))


def test_unparseable_challenge_with_tenant_header_still_works() -> None:
    headers = [("WWW-Authenticate", '"""==,,'), ("X-VSS-ResourceTenant", TENANT)]
    found = interpret(DEV, response(401, headers))
    assert found.tenant == TENANT


def test_error_messages_name_the_feed_host() -> None:
    with pytest.raises(DiscoveryError, match=r"pkgs\.dev\.azure\.com"):
        interpret(DEV, response(404))


class _RecordingGet:
    def __init__(self, answer: Response) -> None:
        self.answer = answer
        self.urls: list[str] = []

    def get(self, url: str) -> Response:
        self.urls.append(url)
        return self.answer


def test_discover_probes_the_feed_url_without_userinfo() -> None:
    user_feed = feed("https://user:pw@pkgs.dev.azure.com/Contoso/_packaging/feed/pypi/simple/?x=1")
    http = _RecordingGet(response(401, _real_headers()))
    found = discover(user_feed, http)  # type: ignore[arg-type]
    assert http.urls == ["https://pkgs.dev.azure.com/Contoso/_packaging/feed/pypi/simple/"]
    assert found.tenant == TENANT
