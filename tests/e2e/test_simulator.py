"""The simulator itself: does it behave like Azure DevOps and Entra ID as the scenarios assume?

Plain requests, subprocesses and azure-identity only; the product is never imported here.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import ssl
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from http import client as httpclient
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests

from .helpers import Wheelhouse, run
from .sim import world
from .sim.azcli import az, az_login
from .sim.exchange import parse_iso
from .sim.netns import inside_namespace
from .sim.server import RTT_VAR, Simulator, round_trip_from_environment
from .sim.wheels import build_wheel

EXCHANGE = "https://vssps.dev.azure.com/contoso/_apis/Token/SessionTokens?api-version=5.0-preview.1"
SUPPRESS = {"X-TFS-FedAuthRedirect": "Suppress"}
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def http(sim: Simulator) -> Iterator[requests.Session]:
    session = requests.Session()
    session.verify = str(sim.ca_pem)
    session.trust_env = False
    yield session
    session.close()


def claims(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def exchange(
    http: requests.Session, bearer: str, body: dict[str, Any], url: str = EXCHANGE
) -> requests.Response:
    return http.post(url, json=body, headers={"Authorization": f"Bearer {bearer}", **SUPPRESS})


def az_token(client_env: dict[str, str], *extra: str) -> dict[str, Any]:
    result = az(
        client_env,
        "account",
        "get-access-token",
        "--resource",
        world.DEVOPS_RESOURCE,
        "--output",
        "json",
        *extra,
    )
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


# --- the namespace ------------------------------------------------------------------------------


def test_runs_inside_the_namespace() -> None:
    assert inside_namespace()
    hosts = Path("/etc/hosts").read_text()
    for name in world.HOSTNAMES:
        assert f"127.0.0.1\t{name}\n" in hosts


# --- discovery --------------------------------------------------------------------------------


def test_anonymous_feed_request_gets_discovery_headers(
    sim: Simulator, http: requests.Session
) -> None:
    response = http.get(world.SHARED_INDEX)
    assert response.status_code == 401
    challenges = response.raw.headers.getlist("WWW-Authenticate")
    assert challenges == [
        f"Bearer authorization_uri=https://login.microsoftonline.com/{world.T_CONTOSO}",
        'Basic realm="https://pkgsprodsu3.pkgs.visualstudio.com/"',
        "TFS-Federated",
    ]
    assert response.headers["X-VSS-ResourceTenant"] == world.T_CONTOSO
    assert response.headers["X-VSS-AuthorizationEndpoint"] == "https://vssps.dev.azure.com/contoso/"
    assert response.headers["X-TFS-FedAuthIssuer"] == "https://pkgsprodsu3.pkgs.visualstudio.com/"
    assert response.headers["X-TFS-FedAuthRealm"]
    assert re.fullmatch(r"[0-9a-f-]{36}", response.headers["X-VSS-E2EID"])

    legacy = http.get(world.LEGACY_SHARED_INDEX)
    assert legacy.status_code == 401
    assert (
        legacy.headers["X-VSS-AuthorizationEndpoint"] == "https://contoso.vssps.visualstudio.com/"
    )
    fabrikam = http.get(world.RELEASES_INDEX)
    assert fabrikam.headers["X-VSS-ResourceTenant"] == world.T_FABRIKAM
    assert http.get(world.TEAM_INDEX).status_code == 401
    assert sim.count("discovery") == 4


def test_discovery_overrides(sim: Simulator, http: requests.Session) -> None:
    sim.override_discovery(
        "contoso",
        {
            "X-VSS-AuthorizationEndpoint": "https://vssps.dev.azure.com.evil.example/contoso/",
            "X-VSS-ResourceTenant": None,
        },
        combine_challenges=True,
        bare_bearer=True,
    )
    response = http.get(world.SHARED_INDEX)
    assert response.raw.headers.getlist("WWW-Authenticate") == [
        'Bearer, Basic realm="https://pkgsprodsu3.pkgs.visualstudio.com/", TFS-Federated'
    ]
    assert "X-VSS-ResourceTenant" not in response.headers
    assert response.headers["X-VSS-AuthorizationEndpoint"].startswith(
        "https://vssps.dev.azure.com.evil.example/"
    )
    # Other orgs are untouched.
    assert http.get(world.RELEASES_INDEX).headers["X-VSS-ResourceTenant"] == world.T_FABRIKAM


def test_onprem_server_discovery_has_no_entra(sim: Simulator, http: requests.Session) -> None:
    response = http.get(world.ONPREM_INDEX)
    assert response.status_code == 401
    assert "X-VSS-E2EID" in response.headers
    assert "X-TFS-FedAuthRealm" not in response.headers
    assert "X-VSS-ResourceTenant" not in response.headers
    pat = sim.add_pat(world.ORG_ONPREM, "vso.packaging")
    assert http.get(world.ONPREM_INDEX, auth=("", pat)).status_code == 200


# --- index, download, upload --------------------------------------------------------------------


def test_index_and_download_with_a_pat(
    sim: Simulator, http: requests.Session, wheelhouse: Wheelhouse
) -> None:
    pat = sim.add_pat("contoso", "vso.packaging")
    root = http.get(world.SHARED_INDEX, auth=("anything", pat))
    assert root.status_code == 200
    for name in ("tinyfeedpkg", "tinydep", "tinyapp"):
        assert f'href="{name}/"' in root.text
    assert http.get(world.SHARED_INDEX.rstrip("/"), auth=("x", pat)).status_code == 200

    page = http.get(world.SHARED_INDEX + "TinyFeedPkg/", auth=("x", pat))
    assert page.status_code == 200
    links = re.findall(r'href="([^"]+)"', page.text)
    assert len(links) == 2
    url, _, fragment = links[0].partition("#sha256=")
    assert url == (
        f"https://pkgs.dev.azure.com/contoso/_packaging/{world.FEED_SHARED_GUID}/pypi/download/"
        "tinyfeedpkg/1.0.0/tinyfeedpkg-1.0.0-py3-none-any.whl"
    )
    assert http.get(url).status_code == 401  # downloads need a credential too
    download = http.get(url, headers={"Authorization": f"Bearer {pat}"})
    assert download.status_code == 200
    assert hashlib.sha256(download.content).hexdigest() == fragment
    assert download.content == wheelhouse.path("tinyfeedpkg", "1.0.0").read_bytes()

    legacy = http.get(world.LEGACY_SHARED_INDEX + "tinydep/", auth=("x", pat))
    legacy_base = f"https://contoso.pkgs.visualstudio.com/_packaging/{world.FEED_SHARED_GUID}/"
    assert legacy_base in legacy.text
    assert http.get(world.SHARED_INDEX + "nosuchpkg/", auth=("x", pat)).status_code == 404
    # A PAT is good for its own organisation only.
    assert http.get(world.RELEASES_INDEX, auth=("x", pat)).status_code == 401
    assert sim.count("index") == 6
    assert sim.count("download") == 1


def test_project_feed_and_views(sim: Simulator, http: requests.Session, tmp_path: Path) -> None:
    pat = sim.add_pat("contoso", "vso.packaging")
    assert http.get(world.TEAM_INDEX, auth=("x", pat)).status_code == 200
    # The project feed is not reachable without its project.
    no_project = "https://pkgs.dev.azure.com/contoso/_packaging/team/pypi/simple/"
    assert http.get(no_project, auth=("x", pat)).status_code == 404
    local_only = build_wheel(tmp_path, "onlylocal", "1.0")
    sim.publish("shared", local_only)
    assert "onlylocal" in http.get(world.SHARED_INDEX, auth=("x", pat)).text
    release = http.get(world.SHARED_RELEASE_INDEX, auth=("x", pat))
    assert release.status_code == 200
    assert "tinyfeedpkg" in release.text
    assert "onlylocal" not in release.text
    bogus_view = world.SHARED_INDEX.replace("shared", "shared@Nope")
    assert http.get(bogus_view, auth=("x", pat)).status_code == 404


def _upload(
    http: requests.Session, wheel: Path, auth: tuple[str, str], url: str = world.SHARED_UPLOAD
) -> requests.Response:
    data = wheel.read_bytes()
    name, version = wheel.name.split("-")[:2]
    return http.post(
        url,
        auth=auth,
        data={
            ":action": "file_upload",
            "protocol_version": "1",
            "name": name,
            "version": version,
            "filetype": "bdist_wheel",
            "pyversion": "py3",
            "metadata_version": "2.1",
            "sha256_digest": hashlib.sha256(data).hexdigest(),
        },
        files={"content": (wheel.name, data, "application/octet-stream")},
    )


def test_upload_then_list(sim: Simulator, http: requests.Session, tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path, "freshpkg", "0.1.0")
    reader = sim.add_pat("contoso", "vso.packaging")
    writer = sim.add_pat("contoso", "vso.packaging_write")
    assert _upload(http, wheel, ("x", reader)).status_code == 403
    no_credential = http.post(world.SHARED_UPLOAD, files={"content": ("a.whl", b"x")})
    assert no_credential.status_code == 401
    assert _upload(http, wheel, ("x", writer)).status_code == 200
    assert sim.uploaded("shared") == [wheel.name]
    page = http.get(world.SHARED_INDEX + "freshpkg/", auth=("x", reader))
    assert wheel.name in page.text
    assert _upload(http, wheel, ("x", writer)).status_code == 409
    assert sim.count("upload") == 3
    sim.reset()
    assert sim.uploaded("shared") == []


def test_real_clients_install_and_publish(
    sim: Simulator, client_env: dict[str, str], tmp_path: Path
) -> None:
    """pip, uv and twine against the simulated feed with a PAT given the plain way."""
    pat = sim.add_pat("contoso", "vso.packaging_write")
    index = world.SHARED_INDEX.replace("https://", f"https://user:{pat}@")
    pip = run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--target",
            tmp_path / "pip",
            "--index-url",
            index,
            "tinyapp",
        ],
        client_env,
    )
    assert pip.returncode == 0, pip.stderr
    assert (tmp_path / "pip" / "tinydep.py").exists()
    uv = run(
        [
            "uv",
            "pip",
            "install",
            "--target",
            tmp_path / "uv",
            "--python",
            sys.executable,
            "--index-url",
            index,
            "tinyfeedpkg==1.0.0",
        ],
        client_env,
    )
    assert uv.returncode == 0, uv.stderr
    assert '__version__ = "1.0.0"' in (tmp_path / "uv" / "tinyfeedpkg.py").read_text()

    twine_wheel = build_wheel(tmp_path / "dist", "twinepkg", "1.0.0")
    twine = run(
        [
            "twine",
            "upload",
            "--non-interactive",
            "--repository-url",
            world.SHARED_UPLOAD,
            "-u",
            "VssSessionToken",
            "-p",
            pat,
            twine_wheel,
        ],
        client_env,
    )
    assert twine.returncode == 0, twine.stdout + twine.stderr
    uv_wheel = build_wheel(tmp_path / "dist2", "uvpkg", "1.0.0")
    published = run(
        [
            "uv",
            "publish",
            "--publish-url",
            world.SHARED_UPLOAD,
            "--username",
            "VssSessionToken",
            "--password",
            pat,
            uv_wheel,
        ],
        client_env,
    )
    assert published.returncode == 0, published.stderr
    assert sorted(sim.uploaded("shared")) == sorted([twine_wheel.name, uv_wheel.name])


# --- Entra ------------------------------------------------------------------------------------


def test_password_grant_and_errors(sim: Simulator, http: requests.Session) -> None:
    url = "https://login.microsoftonline.com/organizations/oauth2/v2.0/token"
    form = {
        "grant_type": "password",
        "client_id": world.AZURE_CLI_CLIENT_ID,
        "username": world.BOB,
        "password": world.BOB_PASSWORD,
        "scope": f"{world.DEVOPS_SCOPE} offline_access openid profile",
    }
    ok = http.post(url, data=form)
    assert ok.status_code == 200
    token = claims(ok.json()["access_token"])
    assert token["aud"] == world.DEVOPS_RESOURCE
    assert token["iss"] == f"https://sts.windows.net/{world.T_CONTOSO}/"
    assert (token["tid"], token["upn"], token["idtyp"], token["scp"]) == (
        world.T_CONTOSO,
        world.BOB,
        "user",
        "user_impersonation",
    )
    assert 3500 < token["exp"] - time.time() <= 3600
    assert ok.json()["refresh_token"]

    bad = http.post(url, data={**form, "password": "wrong"})
    assert bad.status_code == 400
    assert bad.json()["error"] == "invalid_grant"
    assert bad.json()["error_description"].startswith("AADSTS50126:")
    assert bad.json()["error_codes"] == [50126]
    unknown = http.post(
        "https://login.microsoftonline.com/nowhere.example/oauth2/v2.0/token", data=form
    )
    assert unknown.json()["error_codes"] == [90002]
    wrong_tenant = http.post(
        f"https://login.windows.net/{world.T_FABRIKAM}/oauth2/v2.0/token", data=form
    )
    assert wrong_tenant.json()["error_codes"] == [50034]
    assert sim.count("token") == 4


def test_openid_configuration(sim: Simulator, http: requests.Session) -> None:
    config = http.get(
        "https://login.microsoftonline.com/contoso.onmicrosoft.com/v2.0/"
        ".well-known/openid-configuration"
    ).json()
    assert config["token_endpoint"] == (
        f"https://login.microsoftonline.com/{world.T_CONTOSO}/oauth2/v2.0/token"
    )
    assert config["issuer"] == f"https://login.microsoftonline.com/{world.T_CONTOSO}/v2.0"
    common = http.get("https://login.microsoft.com/common/v2.0/.well-known/openid-configuration")
    assert common.json()["issuer"] == "https://login.microsoftonline.com/{tenantid}/v2.0"
    instance = http.get(
        "https://login.microsoftonline.com/common/discovery/instance",
        params={
            "api-version": "1.1",
            "authorization_endpoint": "https://login.microsoftonline.com/common/oauth2/authorize",
        },
    )
    assert "login.windows.net" in instance.json()["metadata"][0]["aliases"]
    keys = http.get(config["jwks_uri"]).json()["keys"]
    assert keys[0]["kty"] == "RSA"


def test_client_credentials_errors(sim: Simulator, http: requests.Session) -> None:
    url = f"https://login.microsoftonline.com/{world.T_CONTOSO}/oauth2/v2.0/token"
    form = {
        "grant_type": "client_credentials",
        "client_id": world.SP_CONTOSO_SECRET,
        "client_secret": world.SP_CONTOSO_SECRET_VALUE,
        "scope": world.DEVOPS_SCOPE,
    }
    ok = http.post(url, data=form)
    assert ok.status_code == 200
    token = claims(ok.json()["access_token"])
    assert (token["idtyp"], token["appid"], token["tid"]) == (
        "app",
        world.SP_CONTOSO_SECRET,
        world.T_CONTOSO,
    )
    assert token["roles"]
    assert http.post(url, data={**form, "client_secret": "nope"}).status_code == 401
    no_default = http.post(url, data={**form, "scope": f"{world.DEVOPS_RESOURCE}/x"})
    assert no_default.json()["error"] == "invalid_scope"
    elsewhere = http.post(url.replace(world.T_CONTOSO, world.T_FABRIKAM), data=form)
    assert elsewhere.json()["error_codes"] == [700016]
    # The federated app refuses an assertion about another subject.
    fed = {
        "grant_type": "client_credentials",
        "client_id": world.SP_CONTOSO_FEDERATED,
        "scope": world.DEVOPS_SCOPE,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
    }
    other = sim.mint_federated_assertion(subject="sc://contoso/Other/conn")
    assert http.post(url, data={**fed, "client_assertion": other}).json()["error_codes"] == [700213]
    forged = sim.mint_federated_assertion(forge=True)
    assert http.post(url, data={**fed, "client_assertion": forged}).status_code == 401
    good = sim.mint_federated_assertion()
    assert http.post(url, data={**fed, "client_assertion": good}).status_code == 200


def test_device_code_flow(sim: Simulator, http: requests.Session) -> None:
    sim.set_device_flow(user=world.BOB, approve_after_polls=2)
    base = "https://login.microsoftonline.com/organizations/oauth2/v2.0"
    started = http.post(
        f"{base}/devicecode",
        data={
            "client_id": world.AZURE_CLI_CLIENT_ID,
            "scope": f"{world.DEVOPS_SCOPE} offline_access",
        },
    )
    assert started.status_code == 200
    assert started.json()["verification_uri"] == "https://microsoft.com/devicelogin"
    poll = {
        "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
        "client_id": world.AZURE_CLI_CLIENT_ID,
        "device_code": started.json()["device_code"],
    }
    for _ in range(2):
        assert http.post(f"{base}/token", data=poll).json()["error"] == "authorization_pending"
    done = http.post(f"{base}/token", data=poll)
    assert done.status_code == 200
    assert claims(done.json()["access_token"])["upn"] == world.BOB


@pytest.fixture
def identity_env(sim: Simulator, monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """In-process azure-identity: trust the CA, forget any ambient Azure configuration."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(sim.ca_pem))
    for name in [n for n in os.environ if n.startswith(("AZURE_", "IDENTITY_", "MSI_"))]:
        monkeypatch.delenv(name)
    return monkeypatch


def _usable_on_feed(http: requests.Session, token: str, client_id: str) -> None:
    assert claims(token)["appid"] == client_id
    assert claims(token)["idtyp"] == "app"
    # Application tokens are used on the feed as they are, no exchange.
    assert http.get(world.SHARED_INDEX, auth=("x", token)).status_code == 200


def test_client_secret_credential(
    sim: Simulator, http: requests.Session, identity_env: pytest.MonkeyPatch
) -> None:
    from azure.identity import ClientSecretCredential

    credential = ClientSecretCredential(
        world.T_CONTOSO, world.SP_CONTOSO_SECRET, world.SP_CONTOSO_SECRET_VALUE
    )
    _usable_on_feed(http, credential.get_token(world.DEVOPS_SCOPE).token, world.SP_CONTOSO_SECRET)
    assert sim.count("token") == 1


def test_certificate_credential(
    sim: Simulator, http: requests.Session, identity_env: pytest.MonkeyPatch
) -> None:
    from azure.identity import CertificateCredential

    cert = sim.sp_certificate(world.SP_CONTOSO_CERT)
    assert re.fullmatch(r"[0-9A-F]{40}", cert.thumbprint)
    for send_chain in (False, True):
        credential = CertificateCredential(
            "contoso.onmicrosoft.com",
            world.SP_CONTOSO_CERT,
            certificate_path=str(cert.combined_pem),
            send_certificate_chain=send_chain,
        )
        token = credential.get_token(world.DEVOPS_SCOPE).token
        _usable_on_feed(http, token, world.SP_CONTOSO_CERT)
    # Another app's certificate is refused.
    other = CertificateCredential(
        world.T_FABRIKAM, world.SP_FABRIKAM_CERT, certificate_path=str(cert.combined_pem)
    )
    from azure.core.exceptions import ClientAuthenticationError

    with pytest.raises(ClientAuthenticationError, match="AADSTS700027"):
        other.get_token(world.DEVOPS_SCOPE)


def test_workload_identity_credential(
    sim: Simulator, http: requests.Session, tmp_path: Path, identity_env: pytest.MonkeyPatch
) -> None:
    from azure.identity import WorkloadIdentityCredential

    token_file = sim.write_federated_assertion(
        tmp_path / "federated.jwt", world.SP_CONTOSO_FEDERATED
    )
    identity_env.setenv("AZURE_TENANT_ID", world.T_CONTOSO)
    identity_env.setenv("AZURE_CLIENT_ID", world.SP_CONTOSO_FEDERATED)
    identity_env.setenv("AZURE_FEDERATED_TOKEN_FILE", str(token_file))
    token = WorkloadIdentityCredential().get_token(world.DEVOPS_SCOPE).token
    _usable_on_feed(http, token, world.SP_CONTOSO_FEDERATED)
    # The federated app is a contributor: it may publish.
    wheel = build_wheel(tmp_path, "fedpkg", "1.0")
    assert _upload(http, wheel, ("x", token)).status_code == 200


def test_managed_identity_credential(
    sim: Simulator, http: requests.Session, tmp_path: Path, identity_env: pytest.MonkeyPatch
) -> None:
    from azure.core.exceptions import ClientAuthenticationError
    from azure.identity import ManagedIdentityCredential

    with pytest.raises(ClientAuthenticationError, match="Identity not found"):
        ManagedIdentityCredential().get_token(world.DEVOPS_SCOPE)
    sim.enable_managed_identity()
    system = ManagedIdentityCredential().get_token(world.DEVOPS_SCOPE).token
    _usable_on_feed(http, system, world.MI_SYSTEM_CLIENT_ID)
    user = (
        ManagedIdentityCredential(client_id=world.MI_USER_CLIENT_ID)
        .get_token(world.DEVOPS_SCOPE)
        .token
    )
    _usable_on_feed(http, user, world.MI_USER_CLIENT_ID)
    # Managed identities are readers: they may not publish.
    wheel = build_wheel(tmp_path, "mipkg", "1.0")
    assert _upload(http, wheel, ("x", user)).status_code == 403
    assert sim.count("token") == 3


def test_azure_cli_credential_reads_the_fake_az(
    sim: Simulator, client_env: dict[str, str], identity_env: pytest.MonkeyPatch
) -> None:
    from azure.identity import AzureCliCredential

    az_login(client_env, world.CAROL)
    for name, value in client_env.items():
        identity_env.setenv(name, value)
    token = AzureCliCredential(tenant_id=world.T_FABRIKAM).get_token(world.DEVOPS_SCOPE)
    assert claims(token.token)["upn"] == world.CAROL
    assert token.expires_on > time.time() + 3000


def test_resource_manager_lists_tenants_and_no_subscriptions(
    sim: Simulator, http: requests.Session
) -> None:
    sim.add_guest(world.ALICE, world.T_FABRIKAM)
    base = f"https://{world.ARM_HOST}"
    arm = sim.mint_user_token(world.ALICE, resource=world.ARM_RESOURCE)

    def get(path: str, token: str | None, version: str | None = "2022-12-01") -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        params = {"api-version": version} if version else {}
        return http.get(base + path, headers=headers, params=params)

    tenants = get("/tenants", arm)
    assert tenants.status_code == 200
    assert [t["tenantId"] for t in tenants.json()["value"]] == [world.T_CONTOSO, world.T_FABRIKAM]
    assert tenants.json()["value"][0]["displayName"] == "Contoso"
    subscriptions = get("/subscriptions", arm)
    assert (subscriptions.status_code, subscriptions.json()["value"]) == (200, [])
    app = sim.mint_app_token(world.SP_FABRIKAM_SECRET, resource=world.ARM_RESOURCE)
    assert [t["tenantId"] for t in get("/tenants", app).json()["value"]] == [world.T_FABRIKAM]

    refused = {
        "no token": get("/tenants", None),
        "a DevOps token": get("/tenants", sim.mint_user_token(world.ALICE)),
        "a forged token": get(
            "/tenants", sim.mint_user_token(world.ALICE, resource=world.ARM_RESOURCE, forge=True)
        ),
        "an expired token": get(
            "/tenants",
            sim.mint_user_token(
                world.ALICE, resource=world.ARM_RESOURCE, issued_at=int(time.time()) - 7200
            ),
        ),
    }
    for case, response in refused.items():
        assert response.status_code == 401, case
        assert response.json()["error"]["code"].endswith("Token") or case == "no token", case
        assert "Bearer" in response.headers["WWW-Authenticate"], case
    assert get("/tenants", arm, version=None).status_code == 400
    assert http.get(base + "/providers", params={"api-version": "1"}).status_code == 404
    assert sim.count("arm") == 9


def test_imds(sim: Simulator) -> None:
    url = "http://169.254.169.254/metadata/identity/oauth2/token"
    params = {"api-version": "2018-02-01", "resource": world.DEVOPS_RESOURCE}
    plain = requests.Session()
    plain.trust_env = False
    assert plain.get(url, params=params).status_code == 400  # no Metadata header
    off = plain.get(url, params=params, headers={"Metadata": "true"})
    assert off.status_code == 400
    assert off.json() == {"error": "invalid_request", "error_description": "Identity not found"}
    sim.enable_managed_identity(system=False, user_assigned=True)
    on = plain.get(url, params=params, headers={"Metadata": "true"})
    assert on.status_code == 200
    body = on.json()
    assert body["client_id"] == world.MI_USER_CLIENT_ID
    assert body["resource"] == world.DEVOPS_RESOURCE
    assert body["token_type"] == "Bearer"
    assert int(body["expires_on"]) - int(body["expires_in"]) == pytest.approx(time.time(), abs=5)
    unknown = plain.get(
        url, params={**params, "client_id": world.SP_CONTOSO_SECRET}, headers={"Metadata": "true"}
    )
    assert unknown.status_code == 400
    assert sim.count("token") == 4


# --- the session-token exchange ---------------------------------------------------------------


def test_exchange_with_a_fake_az_user_token(
    sim: Simulator, http: requests.Session, client_env: dict[str, str], tmp_path: Path
) -> None:
    az_login(client_env, world.ALICE)
    bearer = az_token(client_env, "--tenant", world.T_CONTOSO)["accessToken"]
    reply = exchange(http, bearer, {"displayName": "e2e", "scope": "vso.packaging"})
    assert reply.status_code == 200, reply.text
    answer = reply.json()
    assert {
        "token",
        "validFrom",
        "validTo",
        "scope",
        "displayName",
        "targetAccounts",
        "authorizationId",
    } <= set(answer)
    assert answer["validTo"].endswith("Z")
    valid_to = datetime.fromtimestamp(parse_iso(answer["validTo"]), timezone.utc)
    assert abs((valid_to - datetime.now(timezone.utc)) - timedelta(hours=4)) < timedelta(minutes=1)
    read_only = answer["token"]
    assert http.get(world.SHARED_INDEX, auth=("VssSessionToken", read_only)).status_code == 200
    wheel = build_wheel(tmp_path, "sessionpkg", "1.0")
    assert _upload(http, wheel, ("VssSessionToken", read_only)).status_code == 403
    write = exchange(http, bearer, {"displayName": "e2e", "scope": "vso.packaging_write"})
    assert _upload(http, wheel, ("VssSessionToken", write.json()["token"])).status_code == 200
    # Bound to its organisation.
    assert http.get(world.RELEASES_INDEX, auth=("x", read_only)).status_code == 401
    record = sim.requests(kind="exchange")[0]
    assert (record.scope, record.credential_kind, record.principal) == (
        "vso.packaging",
        "entra-user",
        world.ALICE,
    )
    assert record.credential_fingerprint == Simulator.fingerprint(bearer)


def test_exchange_validto_policy(sim: Simulator, http: requests.Session) -> None:
    bearer = sim.mint_user_token(world.ALICE)
    soon = (datetime.now(timezone.utc) + timedelta(hours=8)).strftime("%Y-%m-%dT%H:%M:%SZ")
    too_far = (datetime.now(timezone.utc) + timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    ok = exchange(http, bearer, {"displayName": "t", "scope": "vso.packaging", "validTo": soon})
    assert ok.status_code == 200
    assert ok.json()["validTo"].startswith(soon[:16])
    refused = exchange(
        http, bearer, {"displayName": "t", "scope": "vso.packaging", "validTo": too_far}
    )
    assert refused.status_code == 400
    assert "maximum" in refused.json()["message"]
    assert sim.requests(kind="exchange")[1].valid_to == too_far
    sim.set_policy("contoso", max_session_hours=1)
    assert (
        exchange(
            http, bearer, {"displayName": "t", "scope": "vso.packaging", "validTo": soon}
        ).status_code
        == 400
    )
    sim.set_policy("contoso", refuse_validto=True, session_cap_seconds=600)
    assert (
        exchange(
            http, bearer, {"displayName": "t", "scope": "vso.packaging", "validTo": soon}
        ).status_code
        == 400
    )
    capped = exchange(http, bearer, {"displayName": "t", "scope": "vso.packaging"})
    assert capped.status_code == 200
    left = datetime.fromtimestamp(parse_iso(capped.json()["validTo"]), timezone.utc) - datetime.now(
        timezone.utc
    )
    assert left <= timedelta(seconds=600)
    unknown = exchange(http, bearer, {"displayName": "t", "scope": "vso.everything"})
    assert unknown.status_code == 400


def test_exchange_refusals(sim: Simulator, http: requests.Session) -> None:
    def refused(bearer: str) -> str:
        reply = exchange(http, bearer, {"displayName": "t", "scope": "vso.packaging"})
        assert reply.status_code == 401, reply.text
        return str(reply.json()["message"])

    assert refused(sim.mint_user_token(world.ALICE, forge=True)).startswith("TF400813")
    expired = sim.mint_user_token(world.ALICE, issued_at=int(time.time()) - 7200, lifetime=3600)
    assert refused(expired).startswith("TF400813")
    assert refused(sim.mint_user_token(world.CAROL)).startswith("TF400813")  # other tenant
    assert refused(sim.mint_user_token(world.ALICE, resource=world.ARM_RESOURCE))
    assert refused(sim.mint_app_token(world.SP_CONTOSO_SECRET))
    sim.set_never_signed_in(world.BOB, "contoso")
    assert "TF401444" in refused(sim.mint_user_token(world.BOB))
    # Without X-TFS-FedAuthRedirect: Suppress a refusal is a redirect to the sign-in page.
    bare = http.post(
        EXCHANGE,
        json={"scope": "vso.packaging"},
        allow_redirects=False,
        headers={"Authorization": f"Bearer {sim.mint_user_token(world.CAROL)}"},
    )
    assert bare.status_code == 302
    # Legacy and global token hosts answer as well.
    legacy = exchange(
        http,
        sim.mint_user_token(world.ALICE),
        {"scope": "vso.packaging"},
        "https://contoso.vssps.visualstudio.com/_apis/Token/SessionTokens"
        "?api-version=5.0-preview.1",
    )
    assert legacy.status_code == 200
    assert sim.count("exchange") == 8


def test_global_exchange_and_keep_alive(sim: Simulator, http: requests.Session) -> None:
    reply = exchange(
        http,
        sim.mint_user_token(world.CAROL),
        {"scope": "vso.packaging"},
        "https://app.vssps.visualstudio.com/_apis/Token/SessionTokens?api-version=5.0-preview.1",
    )
    assert reply.status_code == 200
    token = reply.json()["token"]
    # A token from app.vssps is good for the organisations of the user's tenant.
    assert http.get(world.RELEASES_INDEX, auth=("x", token)).status_code == 200
    assert http.get(world.SHARED_INDEX, auth=("x", token)).status_code == 401
    assert http.get(world.RELEASES_INDEX + "tinyapp/", auth=("x", token)).status_code == 200
    # Keep-alive: one connection carried all three requests to the feed host.
    adapter = http.get_adapter(world.RELEASES_INDEX)
    assert isinstance(adapter, requests.adapters.HTTPAdapter)
    pools = adapter.poolmanager.pools
    feed_pools = [pools[k] for k in list(pools.keys()) if k.key_host == world.FEED_HOST]
    assert [p.num_connections for p in feed_pools] == [1]


def test_user_tokens_on_feeds(sim: Simulator, http: requests.Session) -> None:
    alice = sim.mint_user_token(world.ALICE)
    assert http.get(world.SHARED_INDEX, auth=("x", alice)).status_code == 200
    assert http.get(world.SHARED_INDEX, headers={"Authorization": f"Bearer {alice}"}).ok
    assert http.get(world.RELEASES_INDEX, auth=("x", alice)).status_code == 401
    sim.refuse_user_tokens_on_feeds()
    assert http.get(world.SHARED_INDEX, auth=("x", alice)).status_code == 401


# --- the fake Azure CLI ------------------------------------------------------------------------


def test_fake_az_state(sim: Simulator, client_env: dict[str, str], tmp_path: Path) -> None:
    calls = tmp_path / "az-calls.txt"
    env = {**client_env, "FAKE_AZ_CALLS": str(calls)}
    before = az(env, "account", "get-access-token", "--resource", world.DEVOPS_RESOURCE)
    assert before.returncode == 1
    assert before.stderr.strip() == "ERROR: Please run 'az login' to setup account."
    az_login(env, world.ALICE)
    azure = Path(client_env["HOME"]) / ".azure"
    raw = (azure / "azureProfile.json").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    entry = json.loads(raw.decode("utf-8-sig"))["subscriptions"][0]
    assert entry["user"] == {"name": world.ALICE, "type": "user"}
    assert (entry["tenantId"], entry["isDefault"], entry["environmentName"]) == (
        world.T_CONTOSO,
        True,
        "AzureCloud",
    )
    cache = json.loads((azure / "msal_token_cache.json").read_text())
    assert {"AccessToken", "RefreshToken", "Account", "IdToken"} <= set(cache)
    assert len(cache["RefreshToken"]) == 1
    assert json.loads(az(env, "account", "show").stdout)["user"]["name"] == world.ALICE

    token = az_token(env)
    assert claims(token["accessToken"])["aud"] == world.DEVOPS_RESOURCE
    assert token["tenant"] == world.T_CONTOSO
    assert token["subscription"] == world.T_CONTOSO
    assert token["tokenType"] == "Bearer"
    assert isinstance(token["expires_on"], int)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}", token["expiresOn"])
    assert "subscription" not in az_token(env, "--tenant", world.T_CONTOSO)
    tsv = az(
        env,
        "account",
        "get-access-token",
        "--resource",
        world.DEVOPS_RESOURCE,
        "--query",
        "accessToken",
        "-o",
        "tsv",
    )
    assert tsv.stdout.strip() == token["accessToken"]  # the second call came from the cache

    other = az(
        env,
        "account",
        "get-access-token",
        "--resource",
        world.DEVOPS_RESOURCE,
        "--tenant",
        world.T_FABRIKAM,
    )
    assert other.returncode == 1
    assert other.stderr.startswith("ERROR: AADSTS50020")

    assert az(env, "logout").returncode == 0
    assert az(env, "account", "show").returncode == 1
    assert az(env, "logout").returncode == 1
    lines = calls.read_text().splitlines()
    assert lines[0] == f"account get-access-token --resource {world.DEVOPS_RESOURCE}"
    assert any(line.startswith("login --username alice@contoso.com") for line in lines)


def test_fake_az_answers_from_its_msal_cache(sim: Simulator, client_env: dict[str, str]) -> None:
    az_login(client_env, world.ALICE)
    cache_file = Path(client_env["HOME"]) / ".azure" / "msal_token_cache.json"
    assert cache_file.stat().st_mode & 0o777 == 0o600
    before = sim.count("token")
    first = az_token(client_env)
    assert sim.count("token") == before + 1
    assert az_token(client_env)["accessToken"] == first["accessToken"]
    assert sim.count("token") == before + 1  # from the cache: Entra was not asked
    cached = [e for e in json.loads(cache_file.read_text())["AccessToken"].values()
              if e["secret"] == first["accessToken"]]
    assert [(e["realm"], e["target"], e["expires_on"]) for e in cached] == [
        (world.T_CONTOSO, f"{world.DEVOPS_SCOPE} {world.DEVOPS_RESOURCE}/user_impersonation",
         str(first["expires_on"]))]
    # FAKE_AZ_NO_CACHE=1: every token comes from Entra (and still lands in the cache).
    fresh = az_token({**client_env, "FAKE_AZ_NO_CACHE": "1"})
    assert fresh["accessToken"] != first["accessToken"]
    assert sim.count("token") == before + 2
    assert az_token(client_env)["accessToken"] == fresh["accessToken"]
    assert sim.count("token") == before + 2


def test_fake_az_knobs(client_env: dict[str, str]) -> None:
    broken = az({**client_env, "FAKE_AZ_BROKEN": "1"}, "--version")
    assert broken.returncode == 1
    assert "Traceback (most recent call last)" in broken.stderr
    started = time.monotonic()
    slow = az({**client_env, "FAKE_AZ_DELAY": "0.5"}, "--version")
    assert slow.returncode == 0
    assert "azure-cli" in slow.stdout
    assert time.monotonic() - started >= 0.5
    with pytest.raises(subprocess.TimeoutExpired):
        az({**client_env, "FAKE_AZ_HANG": "1"}, "--version", timeout=1)


def test_client_env_is_isolated(client_env: dict[str, str], sim: Simulator) -> None:
    assert "AZURE_CONFIG_DIR" not in client_env
    # Only the debug pass's own switch may be there (AKN_E2E_DEBUG=1 turns debug on).
    assert not [
        k
        for k in client_env
        if k.startswith(("AZURE_", "ARTIFACTS_")) and k != "ARTIFACTS_KEYRING_NOFUSS_DEBUG"
    ]
    assert ("ARTIFACTS_KEYRING_NOFUSS_DEBUG" in client_env) == (
        os.environ.get("AKN_E2E_DEBUG") == "1"
    )
    assert not [k for k in client_env if k.lower().endswith("_proxy")]
    assert client_env["PATH"].split(os.pathsep)[0].endswith("sim/bin")
    assert client_env["SSL_CERT_FILE"] == str(sim.ca_pem)
    which = run(["sh", "-c", "command -v az keyring pip twine uv"], client_env)
    assert which.returncode == 0, which.stderr
    assert which.stdout.splitlines()[0].endswith("sim/bin/az")


# --- faults -------------------------------------------------------------------------------------


def test_fault_sequence(sim: Simulator, http: requests.Session) -> None:
    sim.fail(
        "pkgs.dev.azure.com",
        r"/_packaging/shared/",
        [(429, {"Retry-After": "1"}), 503, "pass", 500],
    )
    first = http.get(world.SHARED_INDEX)
    assert (first.status_code, first.headers["Retry-After"]) == (429, "1")
    assert http.get(world.SHARED_INDEX).status_code == 503
    assert http.get(world.TEAM_INDEX).status_code == 401  # other paths are not affected
    assert http.get(world.SHARED_INDEX).status_code == 401  # "pass"
    assert http.get(world.SHARED_INDEX).status_code == 500
    assert http.get(world.SHARED_INDEX).status_code == 401  # the sequence is used up
    assert [r.fault for r in sim.requests(path_contains="/shared/")] == [
        "status",
        "status",
        None,
        "status",
        None,
    ]


def test_fault_reset_and_stall(sim: Simulator, http: requests.Session) -> None:
    sim.fail("login.microsoftonline.com", r"/token", ["reset", ("stall", 1.5), ("stall", 1.0)])
    url = f"https://login.microsoftonline.com/{world.T_CONTOSO}/oauth2/v2.0/token"
    with pytest.raises(requests.ConnectionError):
        http.post(url, data={"grant_type": "client_credentials"})
    with pytest.raises(requests.exceptions.ReadTimeout):
        http.post(url, data={"grant_type": "client_credentials"}, timeout=0.5)
    started = time.monotonic()
    late = http.post(url, data={"grant_type": "client_credentials"})
    assert time.monotonic() - started >= 1.0
    assert late.status_code == 400  # answered normally after the stall
    sim.fail(world.IMDS_ADDRESS, "identity", [500])
    imds = requests.get(
        "http://169.254.169.254/metadata/identity/oauth2/token",
        headers={"Metadata": "true"},
        timeout=5,
    )
    assert imds.status_code == 500


def test_fault_drip_binary_headers_and_stale_requests(
    sim: Simulator, http: requests.Session
) -> None:
    url = "https://evil.example.com/hostile"  # a short answer: "Not Found", 9 bytes
    sim.fail("evil.example.com", "/hostile", [("drip", 0.2), ("drip", 0.01, "all")])
    started = time.monotonic()
    slow = http.get(url, timeout=(5, 0.5))  # no single read waits 0.5 s: no timeout fires
    assert time.monotonic() - started >= 1.5
    assert (slow.status_code, slow.content) == (404, b"Not Found")
    started = time.monotonic()
    assert http.get(url, timeout=(5, 0.5)).status_code == 404
    assert time.monotonic() - started >= 1.0  # status line and headers dripped too
    assert [r.fault for r in sim.requests()] == ["drip", "drip"]

    sim.fail(
        "evil.example.com",
        "/hostile",
        [(401, {"X-Raw": b"\xff\xfe\x80", "X-Cyrillic": "l\u043egin"})],
    )
    raw = http.get(url)
    assert raw.raw.headers["X-Raw"] == b"\xff\xfe\x80".decode("latin-1")
    assert raw.raw.headers["X-Cyrillic"] == "l\u043egin".encode().decode("latin-1")
    sim.override_discovery("contoso", {"X-VSS-AuthorizationEndpoint": b"https://x/\xff"})
    assert http.get(world.SHARED_INDEX).raw.headers["X-VSS-AuthorizationEndpoint"] == (
        "https://x/\xff"
    )

    # A request stalled past reset() belongs to a test that is over: not served, not logged.
    sim.fail("evil.example.com", "/hostile", [("stall", 1.0)])
    with pytest.raises(requests.exceptions.ReadTimeout):
        http.get(url, timeout=(5, 0.3))
    sim.reset()
    time.sleep(1.2)
    assert sim.requests() == []


# --- other hosts, the log, leaks ------------------------------------------------------------


def test_other_hosts_log_credentials_and_plain_index(
    sim: Simulator, http: requests.Session, wheelhouse: Wheelhouse
) -> None:
    secret = sim.mint_user_token(world.ALICE)
    for host in ("evil.example.com", "vssps.dev.azure.com.evil.example", "pypi.org"):
        answer = http.get(
            f"https://{host}/x?token={secret}", headers={"Authorization": f"Bearer {secret}"}
        )
        assert answer.status_code == 404
    records = sim.requests(host="evil.example.com")
    assert len(records) == 1
    assert (records[0].auth_scheme, records[0].credential_kind) == ("bearer", "entra-user")
    assert records[0].extra["secret_in_url"] == "true"
    assert secret not in repr(sim.requests())
    assert secret in sim.issued_secrets()
    assert world.SP_CONTOSO_SECRET_VALUE in sim.issued_secrets()

    index = http.get(world.PLAIN_INDEX + "tinyapp/")
    assert index.status_code == 200
    link = re.findall(r'href="([^"#]+)', index.text)[0]
    assert http.get(link).content == wheelhouse.path("tinyapp", "2.0.0").read_bytes()
    assert sim.count("discovery") == 0


def test_plain_http_is_redirected_and_logged(sim: Simulator) -> None:
    plain = requests.Session()
    plain.trust_env = False
    answer = plain.get(
        "http://pkgs.dev.azure.com/contoso/_packaging/shared/pypi/simple/",
        auth=("x", "secret-over-http"),
        allow_redirects=False,
    )
    assert answer.status_code == 301
    assert answer.headers["Location"].startswith("https://pkgs.dev.azure.com/contoso/")
    record = sim.requests(host="pkgs.dev.azure.com")[0]
    assert (record.scheme, record.auth_scheme, record.credential_kind) == (
        "http",
        "basic",
        "unknown",
    )


def test_alternate_port(sim: Simulator, http: requests.Session) -> None:
    answer = http.get("https://pkgs.dev.azure.com:8443/contoso/_packaging/shared/pypi/simple/")
    assert answer.status_code == 401
    assert sim.requests()[0].port == 8443


# --- the simulated network's latency ---------------------------------------------------------

RTT = 0.1
# What the machine itself adds on top (TLS in Python, a busy runner): never a whole round trip.
SLACK = 0.09


def _timed_get(conn: httpclient.HTTPConnection, path: str) -> tuple[float, int]:
    started = time.monotonic()
    conn.request("GET", path)
    answer = conn.getresponse()
    answer.read()
    return time.monotonic() - started, answer.status


def test_latency_a_new_connection_costs_three_round_trips_and_the_next_request_one(
    sim: Simulator,
) -> None:
    sim.set_latency(RTT)
    path = urllib.parse.urlsplit(world.SHARED_INDEX).path
    tls = ssl.create_default_context(cafile=str(sim.ca_pem))
    conn = httpclient.HTTPSConnection(world.FEED_HOST, 443, context=tls, timeout=10)
    try:
        first, first_status = _timed_get(conn, path)  # TCP, TLS, the request
        second, second_status = _timed_get(conn, path)  # the same connection, kept alive
    finally:
        conn.close()
    assert (first_status, second_status) == (401, 401)
    assert 3 * RTT <= first < 3 * RTT + SLACK, first
    assert RTT <= second < RTT + SLACK, second
    one, two = sim.requests(kind="discovery")
    assert one.connection == two.connection != 0
    assert one.time - one.connected_at >= 3 * RTT
    assert two.time - two.arrived >= RTT

    plain = httpclient.HTTPConnection(world.FEED_HOST, 80, timeout=10)
    try:
        over_http, status = _timed_get(plain, path)  # TCP, the request: no TLS
    finally:
        plain.close()
    assert status == 301
    assert 2 * RTT <= over_http < 2 * RTT + SLACK, over_http

    imds = httpclient.HTTPConnection(world.IMDS_ADDRESS, 80, timeout=10)
    try:
        local, _ = _timed_get(imds, "/metadata/identity/oauth2/token")
    finally:
        imds.close()
    assert local < RTT, f"IMDS is on the machine itself, yet took {local:.3f} s"

    sim.reset()  # back to the loopback as it is
    conn = httpclient.HTTPSConnection(world.FEED_HOST, 443, context=tls, timeout=10)
    try:
        after_reset, _ = _timed_get(conn, path)
    finally:
        conn.close()
    assert after_reset < RTT, after_reset


def test_latency_from_the_environment(tmp_path: Path) -> None:
    """AKN_SIM_RTT_MS is the latency a simulator starts with, and what reset() goes back to."""
    code = (
        "import sys; from pathlib import Path; from tests.e2e.sim.server import Simulator\n"
        "with Simulator(Path(sys.argv[1])) as sim:\n"
        "    before = sim.state.knobs.round_trip; sim.set_latency(0); sim.reset()\n"
        "    print(before, sim.state.knobs.round_trip)\n"
    )
    # A namespace of its own: the session's simulator holds the ports.
    env = {k: v for k, v in os.environ.items() if k != "AKN_E2E_NETNS"}
    env["AKN_SIM_RTT_MS"] = "40"
    done = subprocess.run(
        [sys.executable, "-m", "tests.e2e.sim.netns", "--", sys.executable, "-c", code,
         str(tmp_path / "sim")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0.04", "0.04"]


@pytest.mark.parametrize("value", ["forty", "-5", "nan", "inf", "1e9"])
def test_latency_from_the_environment_must_be_milliseconds(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(RTT_VAR, value)
    with pytest.raises(ValueError, match=r"want milliseconds of one round trip, 0 to 10000"):
        round_trip_from_environment()
    monkeypatch.setenv(RTT_VAR, " 12.5 ")
    assert round_trip_from_environment() == 0.0125


# --- the guard outside the namespace ------------------------------------------------------------


@pytest.mark.parametrize("ci", ["", "true"])
def test_outside_the_namespace_skips_or_fails(ci: str) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("AKN_E2E_NETNS", "CI")}
    if ci:
        env["CI"] = ci
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-rs",
            "tests/e2e/test_simulator.py::test_runs_inside_the_namespace",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if ci:
        assert result.returncode != 0
        assert "end-to-end tests did not run" in result.stdout
    else:
        assert result.returncode == 0, result.stdout
        assert "needs a network namespace: run ./scripts/test" in result.stdout


def test_federated_assertion_is_a_jwt(sim: Simulator) -> None:
    assertion = sim.mint_federated_assertion(world.SP_FABRIKAM_FEDERATED)
    body = claims(assertion)
    assert body["aud"] == world.FEDERATED_AUDIENCE
    assert body["iss"] == world.oidc_issuer("fabrikam")
    assert body["sub"] == world.FEDERATED_SUBJECT_FABRIKAM
    header = json.loads(base64.urlsafe_b64decode(assertion.split(".")[0] + "=="))
    assert header["alg"] == "RS256"


# --- GitHub Actions' OIDC token service -------------------------------------------------------

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
CONTOSO_TOKEN_URL = f"https://login.microsoftonline.com/{world.T_CONTOSO}/oauth2/v2.0/token"


def _header(token: str) -> dict[str, Any]:
    return dict(jwt.get_unverified_header(token))


def _assertion_answer(http: requests.Session, client_id: str, assertion: str) -> requests.Response:
    return http.post(
        CONTOSO_TOKEN_URL,
        data={
            "grant_type": "client_credentials",
            "client_id": client_id,
            "scope": world.DEVOPS_SCOPE,
            "client_assertion_type": JWT_BEARER,
            "client_assertion": assertion,
        },
    )


def test_github_actions_id_token_service(sim: Simulator, http: requests.Session) -> None:
    env = sim.github_actions()
    url, request_token = env["ACTIONS_ID_TOKEN_REQUEST_URL"], env["ACTIONS_ID_TOKEN_REQUEST_TOKEN"]
    assert (env["GITHUB_ACTIONS"], env["CI"]) == ("true", "true")
    guid = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
    assert re.fullmatch(
        rf"https://pipelinesghubeus2\.actions\.githubusercontent\.com/\w+/{guid}/_apis/"
        rf"distributedtask/hubs/Actions/plans/{guid}/jobs/{guid}/idtoken\?api-version=2\.0",
        url,
    )
    assert request_token in sim.issued_secrets()

    # What actions/core's getIDToken and azure/login do: append the audience, send the bearer.
    bearer = {"Authorization": f"Bearer {request_token}"}
    asked = http.get(f"{url}&audience=api://AzureADTokenExchange", headers=bearer)
    assert asked.status_code == 200
    assert set(asked.json()) == {"count", "value"}
    token = asked.json()["value"]
    body = claims(token)
    assert body["iss"] == "https://token.actions.githubusercontent.com"
    assert (body["sub"], body["aud"]) == (world.GITHUB_SUBJECT_CONTOSO, world.FEDERATED_AUDIENCE)
    assert (body["repository"], body["repository_owner"], body["ref"]) == (
        "contoso/app",
        "contoso",
        "refs/heads/main",
    )
    assert body["exp"] - body["iat"] == 300
    assert body["nbf"] <= time.time() <= body["exp"]
    header = _header(token)
    assert header["alg"] == "RS256"
    # The issuer publishes the key that signed it, under the header's kid.
    issuer = http.get(
        "https://token.actions.githubusercontent.com/.well-known/openid-configuration"
    ).json()
    assert issuer["issuer"] == "https://token.actions.githubusercontent.com"
    keys = http.get(issuer["jwks_uri"]).json()["keys"]
    assert [k["kid"] for k in keys] == [header["kid"]]
    public_key = jwt.PyJWK(keys[0]).key
    verified = jwt.decode(
        token,
        public_key,
        algorithms=["RS256"],
        audience=world.FEDERATED_AUDIENCE,
        issuer=issuer["issuer"],
    )
    assert verified["sub"] == world.GITHUB_SUBJECT_CONTOSO

    # No audience: the owner's URL. No api-version: answered all the same.
    default = http.get(url, headers=bearer).json()["value"]
    assert claims(default)["aud"] == "https://github.com/contoso"
    bare = url.split("?", 1)[0] + "?audience=custom-aud"
    assert claims(http.get(bare, headers=bearer).json()["value"])["aud"] == "custom-aud"

    for refused in (
        {},
        {"Authorization": "Bearer not-the-token"},
        {"Authorization": f"Basic {request_token}"},
    ):
        answer = http.get(url, headers=refused)
        assert answer.status_code == 401
        assert answer.headers["Content-Type"].startswith("application/json")
        assert answer.json()["message"]
    records = sim.requests(host=world.GITHUB_TOKEN_HOST)
    assert [r.kind for r in records] == ["github_oidc"] * 6
    assert [r.status for r in records] == [200, 200, 200, 401, 401, 401]
    assert records[0].credential_kind == "github-request"
    assert records[0].principal == world.GITHUB_SUBJECT_CONTOSO
    assert records[0].credential_fingerprint == Simulator.fingerprint(request_token)
    assert request_token not in repr(sim.requests())
    assert sim.count("github_oidc") == 6
    sim.reset()
    assert http.get(url, headers=bearer).status_code == 401


def test_entra_trusts_github_actions_for_the_registered_repository(
    sim: Simulator, http: requests.Session, tmp_path: Path, identity_env: pytest.MonkeyPatch
) -> None:
    env = sim.github_actions()

    def github_token(
        audience: str | None = world.FEDERATED_AUDIENCE, job: dict[str, str] = env
    ) -> str:
        url = job["ACTIONS_ID_TOKEN_REQUEST_URL"]
        if audience is not None:
            url += f"&audience={audience}"
        answer = http.get(
            url, headers={"Authorization": f"Bearer {job['ACTIONS_ID_TOKEN_REQUEST_TOKEN']}"}
        )
        return str(answer.json()["value"])

    ok = _assertion_answer(http, world.SP_CONTOSO_GITHUB, github_token())
    assert ok.status_code == 200, ok.text
    app_token = ok.json()["access_token"]
    _usable_on_feed(http, app_token, world.SP_CONTOSO_GITHUB)
    assert _upload(http, build_wheel(tmp_path, "ghpkg", "1.0"), ("x", app_token)).status_code == 200

    def refused(client_id: str, assertion: str) -> list[int]:
        answer = _assertion_answer(http, client_id, assertion)
        assert answer.status_code in (400, 401)
        return list(answer.json()["error_codes"])

    assert refused(world.SP_CONTOSO_GITHUB, github_token(None)) == [700212]  # github.com/contoso
    other_branch = sim.github_actions("repo:contoso/app:ref:refs/heads/feature")
    assert refused(world.SP_CONTOSO_GITHUB, github_token(job=other_branch)) == [700213]
    other_repo = sim.github_actions("repo:fabrikam/app:ref:refs/heads/main")
    assert refused(world.SP_CONTOSO_GITHUB, github_token(job=other_repo)) == [700213]
    # A GitHub token is no good for the app that trusts Azure Pipelines, and the reverse.
    assert refused(world.SP_CONTOSO_FEDERATED, github_token()) == [700211]
    assert refused(world.SP_CONTOSO_GITHUB, sim.mint_federated_assertion()) == [700211]
    forged = sim.mint_federated_assertion(world.SP_CONTOSO_GITHUB, forge=True)
    assert claims(forged)["iss"] == world.GITHUB_ISSUER
    assert refused(world.SP_CONTOSO_GITHUB, forged) == [700027]
    # Right claims, signed by another issuer's key (Azure Pipelines'): refused.
    now = int(time.time())
    wrong_key = jwt.encode(
        {
            "iss": world.GITHUB_ISSUER,
            "sub": world.GITHUB_SUBJECT_CONTOSO,
            "aud": world.FEDERATED_AUDIENCE,
            "iat": now,
            "nbf": now,
            "exp": now + 300,
        },
        sim.state.keys.oidc.private_key,
        algorithm="RS256",
        headers={"kid": sim.state.keys.oidc.kid},
    )
    assert refused(world.SP_CONTOSO_GITHUB, wrong_key) == [700027]
    expired = sim.mint_federated_assertion(world.SP_CONTOSO_GITHUB, lifetime=-60)
    assert refused(world.SP_CONTOSO_GITHUB, expired) == [700024]

    # azure-identity, as azure/login's OIDC path does it: an assertion callback.
    from azure.identity import ClientAssertionCredential

    credential = ClientAssertionCredential(world.T_CONTOSO, world.SP_CONTOSO_GITHUB, github_token)
    token = credential.get_token(world.DEVOPS_SCOPE).token
    assert claims(token)["appid"] == world.SP_CONTOSO_GITHUB


# --- Azure Pipelines' System.AccessToken --------------------------------------------------------


def test_pipeline_access_token(sim: Simulator, http: requests.Session, tmp_path: Path) -> None:
    token = sim.add_pipeline_token("contoso")
    assert token in sim.issued_secrets()
    parts = token.split(".")
    assert len(parts) == 3
    assert all(re.fullmatch(r"[A-Za-z0-9_-]+", p) for p in parts)
    assert _header(token)["alg"] == "RS256"
    body = claims(token)
    assert body["iss"] == "app.vstoken.visualstudio.com"
    assert body["aud"] == f"app.vstoken.visualstudio.com|vso:{world.ORGS['contoso'].guid}"
    assert body["scp"] == "app_token"
    assert re.fullmatch(r"[0-9a-f-]{36}", body["nameid"])
    assert body["nbf"] <= time.time() < body["exp"]
    assert 3590 < body["exp"] - time.time() <= 3600
    assert not {"idtyp", "upn", "tid", "appid"} & set(body)

    for user in ("", "build", "VssSessionToken"):
        assert http.get(world.SHARED_INDEX, auth=(user, token)).status_code == 200
    assert http.get(world.TEAM_INDEX, headers={"Authorization": f"Bearer {token}"}).ok
    assert _upload(http, build_wheel(tmp_path, "pipepkg", "1.0"), ("x", token)).status_code == 200
    assert sim.uploaded("shared") == ["pipepkg-1.0-py3-none-any.whl"]
    assert http.get(world.RELEASES_INDEX, auth=("x", token)).status_code == 401  # other org
    record = sim.requests(kind="index")[0]
    assert (record.credential_kind, record.principal) == (
        "pipeline",
        "Project Collection Build Service (contoso)",
    )
    # Not an Entra token: the session-token exchange refuses it.
    refused = exchange(http, token, {"displayName": "t", "scope": "vso.packaging"})
    assert refused.status_code == 401
    assert refused.json()["message"].startswith("TF400813")

    read_only = sim.add_pipeline_token("contoso", "vso.packaging")
    assert http.get(world.SHARED_INDEX, auth=("x", read_only)).status_code == 200
    assert (
        _upload(http, build_wheel(tmp_path / "ro", "ropkg", "1.0"), ("x", read_only)).status_code
        == 403
    )
    fabrikam = sim.add_pipeline_token("fabrikam")
    assert http.get(world.RELEASES_INDEX, auth=("x", fabrikam)).status_code == 200
    assert http.get(world.SHARED_INDEX, auth=("x", fabrikam)).status_code == 401
    expired = sim.add_pipeline_token("contoso", lifetime=0)
    assert http.get(world.SHARED_INDEX, auth=("x", expired)).status_code == 401
    sim.reset()
    assert http.get(world.SHARED_INDEX, auth=("x", token)).status_code == 401

    assert sim.pipeline_env("contoso", token) == {
        "SYSTEM_ACCESSTOKEN": token,
        "SYSTEM_TEAMFOUNDATIONCOLLECTIONURI": "https://dev.azure.com/contoso/",
        "SYSTEM_COLLECTIONURI": "https://dev.azure.com/contoso/",
        "TF_BUILD": "True",
    }
    onprem = sim.pipeline_env(world.ORG_ONPREM, "t")
    assert onprem["SYSTEM_TEAMFOUNDATIONCOLLECTIONURI"] == (
        "https://ads.example.com/tfs/DefaultCollection/"
    )


# --- GitHub Codespaces' ~/ado-auth-helper ------------------------------------------------------


def ado_helper(
    env: dict[str, str], helper: Path, *args: str, stdin: str = "", timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    # Not helpers.run: printing the token is what the helper is for, like `keyring get`.
    return subprocess.run(
        [str(helper), *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_codespaces_ado_auth_helper(
    sim: Simulator, client_env: dict[str, str], http: requests.Session, tmp_path: Path
) -> None:
    from .scenarios import codespaces

    home = Path(client_env["HOME"])
    helper = codespaces(home, world.ALICE, world.ALICE_PASSWORD)
    assert helper == home / "ado-auth-helper"
    assert helper.stat().st_mode & 0o777 == 0o755
    calls = tmp_path / "helper-calls.txt"
    env = {**client_env, "FAKE_ADO_HELPER_CALLS": str(calls)}

    done = ado_helper(env, helper, "get-access-token")
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    assert done.stdout.endswith("\n")
    assert done.stdout.count("\n") == 1
    token = done.stdout.strip()
    body = claims(token)
    assert (body["aud"], body["upn"], body["tid"], body["appid"]) == (
        world.DEVOPS_RESOURCE,
        world.ALICE,
        world.T_CONTOSO,
        world.VSCODE_CLIENT_ID,
    )
    assert token in sim.issued_secrets()
    record = sim.requests(kind="token")[0]
    assert (record.grant_type, record.client_id, record.principal) == (
        "password",
        world.VSCODE_CLIENT_ID,
        world.ALICE,
    )
    assert http.get(world.SHARED_INDEX, auth=("x", token)).status_code == 200
    assert exchange(http, token, {"scope": "vso.packaging"}).status_code == 200

    # The git credential helper side, as git asks it.
    git = ado_helper(env, helper, "get", stdin="protocol=https\nhost=dev.azure.com\n\n")
    assert git.returncode == 0
    lines = git.stdout.splitlines()
    assert lines[0] == "username=token"
    assert claims(lines[1].removeprefix("password="))["upn"] == world.ALICE
    other = ado_helper(env, helper, "get", stdin="protocol=https\nhost=github.com\n\n")
    assert (other.returncode, other.stdout) == (0, "")
    # Any other command: nothing at all, and success.
    version = ado_helper(env, helper, "--version")
    assert (version.returncode, version.stdout, version.stderr) == (0, "", "")
    assert calls.read_text().splitlines() == ["get-access-token", "get", "get", "--version"]

    wrong = codespaces(home, world.ALICE, "not-her-password")
    refused = ado_helper(env, wrong, "get-access-token")
    assert (refused.returncode, refused.stdout) == (1, "")
    assert "AADSTS50126" in refused.stderr
    (home / ".ado-auth-helper.json").unlink()
    no_window = ado_helper(env, helper, "get-access-token")  # no VS Code window connected
    assert (no_window.returncode, no_window.stdout, no_window.stderr) == (1, "", "")


def test_codespaces_ado_auth_helper_knobs(sim: Simulator, client_env: dict[str, str]) -> None:
    from .scenarios import codespaces

    helper = codespaces(Path(client_env["HOME"]), world.BOB, world.BOB_PASSWORD)
    broken = ado_helper({**client_env, "FAKE_ADO_HELPER_BROKEN": "1"}, helper, "get-access-token")
    assert (broken.returncode, broken.stdout) == (1, "")
    assert "AggregateError" in broken.stderr
    with pytest.raises(subprocess.TimeoutExpired):
        ado_helper(
            {**client_env, "FAKE_ADO_HELPER_HANG": "1"}, helper, "get-access-token", timeout=1
        )
    assert sim.count("token") == 0
    ok = ado_helper(client_env, helper, "get-access-token")
    assert claims(ok.stdout.strip())["upn"] == world.BOB


# --- interactive sign-in with MSAL's device code flow ---------------------------------------


def _public_client(sim: Simulator, cache: Any) -> Any:
    import msal

    return msal.PublicClientApplication(
        world.ARTIFACTS_CREDPROVIDER_CLIENT_ID,
        authority=f"https://login.microsoftonline.com/{world.T_CONTOSO}",
        # requests lets REQUESTS_CA_BUNDLE override a session's verify: identity_env sets both.
        verify=str(sim.ca_pem),
        token_cache=cache,
    )


def test_msal_device_code_then_silent_refresh(
    sim: Simulator, http: requests.Session, tmp_path: Path, identity_env: pytest.MonkeyPatch
) -> None:
    import msal

    # Under MSAL's five minutes of headroom: the next silent request must use the refresh token.
    sim.set_token_lifetime(user=240)
    sim.set_device_flow(user=world.BOB, approve_after_polls=2, interval=1)
    cache = msal.SerializableTokenCache()
    app = _public_client(sim, cache)
    flow = app.initiate_device_flow(scopes=[world.DEVOPS_SCOPE])
    assert flow["verification_uri"] == "https://microsoft.com/devicelogin"
    assert re.fullmatch(r"[A-Z0-9]{9}", flow["user_code"])
    assert flow["user_code"] in flow["message"]
    assert "https://microsoft.com/devicelogin" in flow["message"]
    assert (flow["interval"], flow["expires_in"]) == (1, 900)
    started = time.monotonic()
    result = app.acquire_token_by_device_flow(flow)
    assert "access_token" in result, result
    assert time.monotonic() - started >= 2  # two pending answers, one interval apart
    assert claims(result["access_token"])["upn"] == world.BOB
    assert claims(result["access_token"])["appid"] == world.ARTIFACTS_CREDPROVIDER_CLIENT_ID
    assert result["id_token_claims"]["preferred_username"] == world.BOB
    polls = sim.requests(kind="token")
    assert [(r.grant_type, r.status) for r in polls] == [
        ("urn:ietf:params:oauth:grant-type:device_code", 400)
    ] * 2 + [("urn:ietf:params:oauth:grant-type:device_code", 200)]
    assert sim.count("devicecode") == 1

    # A later process: the persisted cache, its account, a silent request.
    saved = tmp_path / "msal-cache.json"
    saved.write_text(cache.serialize())
    later_cache = msal.SerializableTokenCache()
    later_cache.deserialize(saved.read_text())
    later = _public_client(sim, later_cache)
    accounts = later.get_accounts()
    user = world.USERS[world.BOB]
    assert [(a["username"], a["home_account_id"]) for a in accounts] == [
        (world.BOB, f"{user.oid}.{world.T_CONTOSO}")
    ]
    silent = later.acquire_token_silent([world.DEVOPS_SCOPE], account=accounts[0])
    assert silent is not None
    assert "access_token" in silent, silent
    assert silent["token_source"] == "identity_provider"
    refresh = sim.requests(kind="token")[-1]
    assert (refresh.grant_type, refresh.client_id, refresh.status) == (
        "refresh_token",
        world.ARTIFACTS_CREDPROVIDER_CLIENT_ID,
        200,
    )
    assert exchange(http, silent["access_token"], {"scope": "vso.packaging"}).status_code == 200

    # With a fresh access token in the cache, a silent request needs no network at all.
    sim.set_token_lifetime(user=3600)
    fresh = later.acquire_token_silent(
        [world.DEVOPS_SCOPE], account=accounts[0], force_refresh=True
    )
    assert fresh is not None
    assert "access_token" in fresh
    before = len(sim.requests())
    cached = later.acquire_token_silent([world.DEVOPS_SCOPE], account=accounts[0])
    assert cached is not None
    assert cached["token_source"] == "cache"
    assert len(sim.requests()) == before


def test_msal_device_code_declined_and_expired(
    sim: Simulator, identity_env: pytest.MonkeyPatch
) -> None:
    import msal

    sim.set_device_flow(decline=True, interval=1)
    app = _public_client(sim, msal.SerializableTokenCache())
    declined = app.acquire_token_by_device_flow(app.initiate_device_flow([world.DEVOPS_SCOPE]))
    assert declined["error"] == "authorization_declined"
    sim.set_device_flow(decline=False, approve_after_polls=100, interval=1, expires_in=1)
    flow = app.initiate_device_flow([world.DEVOPS_SCOPE])
    assert flow["expires_in"] == 1
    expired = app.acquire_token_by_device_flow(flow)
    assert expired["error"] == "expired_token"
    assert expired["error_codes"] == [70019]
    assert app.get_accounts() == []


# --- the authorize endpoint, the authorization code grant and the fake browser ---------------

AUTHORIZE = f"https://login.microsoftonline.com/{world.T_CONTOSO}/oauth2/v2.0/authorize"
CODE_TOKEN = f"https://login.microsoftonline.com/{world.T_CONTOSO}/oauth2/v2.0/token"
FAKE_BROWSER = Path(__file__).resolve().parent / "sim" / "bin" / "fake-browser"
LOOPBACK = "http://localhost:49152"
SIGN_IN_SCOPE = f"{world.DEVOPS_SCOPE} offline_access openid profile"


def _pkce() -> tuple[str, str]:
    """(verifier, S256 challenge)."""
    verifier = base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _authorize(
    http: requests.Session, challenge: str, url: str = AUTHORIZE, **extra: str
) -> requests.Response:
    params = {
        "client_id": world.ARTIFACTS_CREDPROVIDER_CLIENT_ID,
        "response_type": "code",
        "redirect_uri": LOOPBACK,
        "scope": SIGN_IN_SCOPE,
        "state": "st4te",
        "nonce": "n0nce",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "prompt": "select_account",
        **extra,
    }
    return http.get(url, params={k: v for k, v in params.items() if v}, allow_redirects=False)


def _sent_back(response: requests.Response) -> dict[str, str]:
    """What a 302 to the redirect URI carries in its query."""
    assert response.status_code == 302, response.text
    location = response.headers["Location"]
    assert location.startswith(f"{LOOPBACK}?")
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))


def _redeem(
    http: requests.Session, code: str, verifier: str, url: str = CODE_TOKEN, **extra: str
) -> requests.Response:
    form = {
        "grant_type": "authorization_code",
        "client_id": world.ARTIFACTS_CREDPROVIDER_CLIENT_ID,
        "code": code,
        "redirect_uri": LOOPBACK,
        "code_verifier": verifier,
        "scope": SIGN_IN_SCOPE,
        "client_info": "1",
        **extra,
    }
    return http.post(url, data=form)


def _aadsts(response: requests.Response) -> tuple[str, list[int]]:
    return response.json()["error"], response.json()["error_codes"]


def test_authorize_sends_a_code_that_redeems_once_with_pkce(
    sim: Simulator, http: requests.Session
) -> None:
    sim.set_browser_user(world.BOB)
    verifier, challenge = _pkce()
    back = _sent_back(_authorize(http, challenge))
    assert back["state"] == "st4te"
    code = back["code"]
    assert code in sim.issued_secrets()
    (seen,) = sim.requests(kind="authorize")
    assert (seen.status, seen.principal, seen.client_id, seen.extra["outcome"]) == (
        302,
        world.BOB,
        world.ARTIFACTS_CREDPROVIDER_CLIENT_ID,
        "code",
    )
    assert "secret_in_url" not in seen.extra

    done = _redeem(http, code, verifier)
    assert done.status_code == 200, done.text
    body = done.json()
    access = claims(body["access_token"])
    assert (access["upn"], access["tid"], access["aud"], access["appid"]) == (
        world.BOB,
        world.T_CONTOSO,
        world.DEVOPS_RESOURCE,
        world.ARTIFACTS_CREDPROVIDER_CLIENT_ID,
    )
    # As Entra answers: the permissions and the .default asked for, never openid or profile.
    assert body["scope"].split() == [
        f"{world.DEVOPS_RESOURCE}/user_impersonation",
        world.DEVOPS_SCOPE,
    ]
    assert body["refresh_token"] in sim.issued_secrets()
    identity = claims(body["id_token"])
    assert (identity["preferred_username"], identity["nonce"], identity["aud"]) == (
        world.BOB,
        "n0nce",
        world.ARTIFACTS_CREDPROVIDER_CLIENT_ID,
    )
    assert json.loads(base64.urlsafe_b64decode(body["client_info"] + "==")) == {
        "uid": world.USERS[world.BOB].oid,
        "utid": world.T_CONTOSO,
    }
    assert exchange(http, body["access_token"], {"scope": "vso.packaging"}).status_code == 200
    # The refresh token works like any other user grant's.
    refreshed = http.post(
        CODE_TOKEN,
        data={
            "grant_type": "refresh_token",
            "client_id": world.ARTIFACTS_CREDPROVIDER_CLIENT_ID,
            "refresh_token": body["refresh_token"],
            "scope": SIGN_IN_SCOPE,
        },
    )
    assert claims(refreshed.json()["access_token"])["upn"] == world.BOB

    again = _redeem(http, code, verifier)
    assert (again.status_code, *_aadsts(again)) == (400, "invalid_grant", [54005])
    grants = [(r.grant_type, r.status) for r in sim.requests(kind="token")]
    assert grants == [
        ("authorization_code", 200),
        ("refresh_token", 200),
        ("authorization_code", 400),
    ]


def test_authorization_code_is_bound_to_verifier_client_redirect_tenant_and_time(
    sim: Simulator, http: requests.Session
) -> None:
    sim.set_browser_user(world.BOB)

    def fresh() -> tuple[str, str]:
        verifier, challenge = _pkce()
        return _sent_back(_authorize(http, challenge))["code"], verifier

    code, verifier = fresh()
    wrong = _redeem(http, code, verifier[:-1] + ("A" if verifier[-1] != "A" else "B"))
    assert _aadsts(wrong) == ("invalid_grant", [50148])
    assert _aadsts(_redeem(http, code, verifier)) == ("invalid_grant", [54005])  # used up
    code, verifier = fresh()
    assert _aadsts(_redeem(http, code, "")) == ("invalid_grant", [50148])
    code, verifier = fresh()
    other_client = _redeem(http, code, verifier, client_id=world.AZURE_CLI_CLIENT_ID)
    assert _aadsts(other_client) == ("invalid_grant", [70000])
    assert _redeem(http, code, verifier).status_code == 200  # its own client still can
    code, verifier = fresh()
    moved = _redeem(http, code, verifier, redirect_uri="http://localhost:49153")
    assert _aadsts(moved) == ("invalid_grant", [500112])
    code, verifier = fresh()
    elsewhere = _redeem(
        http, code, verifier, url=CODE_TOKEN.replace(world.T_CONTOSO, world.T_FABRIKAM)
    )
    assert _aadsts(elsewhere) == ("invalid_grant", [700005])
    code, verifier = fresh()
    other_resource = _redeem(
        http, code, verifier, scope="https://management.core.windows.net//.default"
    )
    assert _aadsts(other_resource) == ("invalid_grant", [70000])
    code, verifier = fresh()
    with sim.state.lock:
        sim.state.grants.auth_codes[code].expires_at = time.time() - 1
    assert _aadsts(_redeem(http, code, verifier)) == ("invalid_grant", [70008])
    assert _aadsts(_redeem(http, "1.SimNotACode", verifier)) == ("invalid_grant", [70000])
    # Ten minutes, as Entra's codes.
    code, _ = fresh()
    assert 590 < sim.state.grants.auth_codes[code].expires_at - time.time() <= 600


def test_authorize_redirect_uri_must_be_the_loopback(
    sim: Simulator, http: requests.Session
) -> None:
    sim.set_browser_user(world.BOB)
    _, challenge = _pkce()
    for refused in (
        "https://evil.example.com/",
        "http://localhost.evil.example:8080",
        "http://evil.example.com@localhost:8080",
        "https://localhost:8080",
        "http://10.0.0.1:8080",
        "http://localhost:8080/#x",
        "",
    ):
        page = _authorize(http, challenge, redirect_uri=refused or "")
        assert page.status_code == 400, refused
        assert page.headers["Content-Type"].startswith("text/html")
        assert "AADSTS50011" in page.text, refused
        assert "Location" not in page.headers
    for accepted in ("http://127.0.0.1:8400", "http://localhost", "http://localhost:8400/cb"):
        answer = _authorize(http, challenge, redirect_uri=accepted)
        assert answer.status_code == 302, accepted
        assert answer.headers["Location"].startswith(f"{accepted}?code="), accepted
    assert "AADSTS900144" in _authorize(http, challenge, client_id="").text
    unknown = _authorize(http, challenge, url=AUTHORIZE.replace(world.T_CONTOSO, "nowhere.example"))
    assert (unknown.status_code, "AADSTS90002" in unknown.text) == (400, True)
    outcomes = [r.extra["outcome"] for r in sim.requests(kind="authorize")]
    assert outcomes == ["error page AADSTS50011"] * 7 + ["code"] * 3 + [
        "error page AADSTS900144",
        "error page AADSTS90002",
    ]


def test_authorize_without_a_signed_in_browser_and_other_answers(
    sim: Simulator, http: requests.Session
) -> None:
    _, challenge = _pkce()
    page = _authorize(http, challenge)  # nobody signed in (the baseline)
    assert page.status_code == 200
    assert "Sign in to your account" in page.text and 'name="passwd"' in page.text
    assert "localhost" not in page.text
    assert not sim.state.grants.auth_codes
    silent = _sent_back(_authorize(http, challenge, prompt="none"))
    assert (silent["error"], silent["state"]) == ("login_required", "st4te")
    assert silent["error_description"].startswith("AADSTS50058:")

    sim.set_browser_user(world.BOB)
    assert _authorize(http, challenge, login_hint=world.ALICE).status_code == 200  # not him
    assert _authorize(http, challenge, prompt="login").status_code == 200
    assert "code" in _sent_back(_authorize(http, challenge, login_hint=world.BOB.upper()))
    guest = _sent_back(
        _authorize(http, challenge, url=AUTHORIZE.replace(world.T_CONTOSO, world.T_FABRIKAM))
    )
    assert guest["error_description"].startswith("AADSTS50020:")
    assert _sent_back(_authorize(http, challenge, response_type="token"))["error"] == (
        "unsupported_response_type"
    )
    two = _sent_back(
        _authorize(
            http, challenge, scope=f"{world.DEVOPS_SCOPE} https://graph.microsoft.com/.default"
        )
    )
    assert two["error"] == "invalid_scope"

    sim.set_browser_user(world.BOB, consent=False)
    declined = _sent_back(_authorize(http, challenge))
    assert (declined["error"], declined["state"]) == ("access_denied", "st4te")
    assert declined["error_description"].startswith("AADSTS65004:")
    assert _sent_back(_authorize(http, challenge, prompt="none"))["error"] == "consent_required"

    sim.set_browser_user(world.ALICE)
    posted = _authorize(http, challenge, response_mode="form_post")
    assert posted.status_code == 200
    assert f'action="{LOOPBACK}"' in posted.text
    assert 'name="state" value="st4te"' in posted.text
    assert re.search(r'name="code" value="1\.Sim[\w-]+"', posted.text)
    fragment = _authorize(http, challenge, response_mode="fragment")
    assert fragment.headers["Location"].startswith(f"{LOOPBACK}#code=")
    with pytest.raises(KeyError):
        sim.set_browser_user("mallory@contoso.com")
    sim.set_browser_user(None)
    assert _authorize(http, challenge).status_code == 200
    sim.reset()
    assert sim.state.knobs.browser.user is None


class _Loopback:
    """A stand-in for an application's loopback server: records what arrives."""

    def __init__(self) -> None:
        import http.server
        import threading

        self.seen: list[tuple[str, str, str]] = []
        self.arrived = threading.Event()
        seen, arrived = self.seen, self.arrived

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self, body: str) -> None:
                seen.append((self.command, self.path, body))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
                arrived.set()

            def do_GET(self) -> None:
                self._answer("")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                self._answer(self.rfile.read(length).decode())

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_fake_browser_delivers_the_answer_to_the_loopback(
    sim: Simulator, client_env: dict[str, str], tmp_path: Path
) -> None:
    sim.set_browser_user(world.BOB)
    log = tmp_path / "browser.log"
    env = {**client_env, "FAKE_BROWSER_LOG": str(log)}
    _, challenge = _pkce()
    loopback = _Loopback()
    try:

        def visit(**extra: str) -> tuple[subprocess.CompletedProcess[str], str]:
            params = {
                "client_id": world.ARTIFACTS_CREDPROVIDER_CLIENT_ID,
                "response_type": "code",
                "scope": SIGN_IN_SCOPE,
                "state": "st4te",
                "redirect_uri": f"http://localhost:{loopback.port}/cb",
                "code_challenge": challenge,
                "code_challenge_method": "S256",
                **extra,
            }
            url = f"{AUTHORIZE}?{urllib.parse.urlencode(params)}"
            loopback.arrived.clear()
            done = subprocess.run(
                [str(FAKE_BROWSER), url],
                env=env,
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            return done, url

        query, first = visit()
        assert (query.returncode, query.stdout, query.stderr) == (0, "", "")
        assert loopback.arrived.wait(10)
        method, path, _ = loopback.seen[-1]
        sent = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(path).query))
        assert (method, urllib.parse.urlsplit(path).path, sent["state"]) == ("GET", "/cb", "st4te")
        assert sent["code"] in sim.issued_secrets()

        posted, second = visit(response_mode="form_post")
        assert (posted.returncode, posted.stderr) == (0, "")
        assert loopback.arrived.wait(10)
        method, path, body = loopback.seen[-1]
        fields = dict(urllib.parse.parse_qsl(body))
        assert (method, path, fields["state"]) == ("POST", "/cb", "st4te")
        assert fields["code"] in sim.issued_secrets()

        sim.set_browser_user(None)
        stuck, third = visit()
        assert (stuck.returncode, stuck.stderr) == (0, "")
        assert not loopback.arrived.wait(2)  # the sign-in page: nothing reaches the application
        assert len(loopback.seen) == 2
        assert log.read_text().splitlines() == [first, second, third]
        assert [r.extra["outcome"] for r in sim.requests(kind="authorize")] == [
            "code",
            "code",
            "sign-in page",
        ]
        ua = sim.requests(kind="authorize")[0].user_agent
        assert ua is not None and "fake-browser" in ua
    finally:
        loopback.close()


MSAL_BROWSER_SIGN_IN = """
import json, sys, msal
app = msal.PublicClientApplication(sys.argv[1], authority=sys.argv[2])
result = app.acquire_token_interactive([sys.argv[3]], prompt="select_account",
                                       login_hint=sys.argv[4] or None, timeout=int(sys.argv[5]))
claims = result.get("id_token_claims") or {}
print(json.dumps({"ok": "access_token" in result, "error": result.get("error"),
                  "user": claims.get("preferred_username"),
                  "accounts": [a["username"] for a in app.get_accounts()]}))
"""


def _msal_browser_sign_in(env: dict[str, str], hint: str = "", timeout: int = 30) -> dict[str, Any]:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            MSAL_BROWSER_SIGN_IN,
            world.ARTIFACTS_CREDPROVIDER_CLIENT_ID,
            f"https://login.microsoftonline.com/{world.T_CONTOSO}",
            world.DEVOPS_SCOPE,
            hint,
            str(timeout),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout + 30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def test_msal_interactive_sign_in_through_the_fake_browser(
    sim: Simulator, client_env: dict[str, str], tmp_path: Path
) -> None:
    """MSAL as it is (form_post to its loopback server, PKCE, nonce) against the simulator."""
    log = tmp_path / "browser.log"
    env = {**client_env, "BROWSER": str(FAKE_BROWSER), "FAKE_BROWSER_LOG": str(log)}
    env.pop("DISPLAY", None)
    sim.set_browser_user(world.CAROL)
    sim.add_guest(world.CAROL, world.T_CONTOSO)
    assert _msal_browser_sign_in(env) == {
        "ok": True,
        "error": None,
        "user": world.CAROL,
        "accounts": [world.CAROL],
    }
    (url,) = log.read_text().splitlines()
    params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
    assert url.startswith(f"{AUTHORIZE}?")
    assert (params["response_mode"], params["code_challenge_method"]) == ("form_post", "S256")
    assert params["redirect_uri"].startswith("http://localhost:")
    codes = [(r.grant_type, r.status) for r in sim.requests(kind="token")]
    assert codes == [("authorization_code", 200)]

    sim.set_browser_user(world.BOB, consent=False)
    assert _msal_browser_sign_in(env)["error"] == "access_denied"


# --- the "Restrict personal access token creation" policy ------------------------------------

GLOBAL_EXCHANGE = ("https://app.vssps.visualstudio.com/_apis/Token/SessionTokens"
                   "?api-version=5.0-preview.1")


def test_pat_creation_policy_refuses_the_exchange(sim: Simulator, http: requests.Session,
                                                  tmp_path: Path) -> None:
    alice = sim.mint_user_token(world.ALICE)
    before = exchange(http, alice, {"scope": "vso.packaging_write"}).json()["token"]
    pat = sim.add_pat("contoso", "vso.packaging_write")
    pipeline = sim.add_pipeline_token("contoso", "vso.packaging_write")
    global_token = exchange(http, alice, {"scope": "vso.packaging"}, GLOBAL_EXCHANGE)
    assert global_token.status_code == 200
    sim.restrict_pat_creation("contoso")

    refused = exchange(http, alice, {"displayName": "t", "scope": "vso.packaging"})
    assert refused.status_code == 403
    assert refused.json() == {
        "$id": "1", "innerException": None, "message": "DisablePatCreationPolicyViolation",
        "typeName": "Microsoft.VisualStudio.Services.DelegatedAuthorization."
        "DisablePatCreationPolicyViolationException, Microsoft.VisualStudio.Services.WebApi",
        "typeKey": "DisablePatCreationPolicyViolationException", "errorCode": 0,
        "eventId": 3000}
    record = sim.requests(kind="exchange")[-1]
    assert (record.status, record.principal, record.extra["refused"]) == (
        403, world.ALICE, "DisablePatCreationPolicyViolation")
    # Legacy token host, any scope, even without X-TFS-FedAuthRedirect: the same refusal.
    legacy = http.post("https://contoso.vssps.visualstudio.com/_apis/Token/SessionTokens"
                       "?api-version=5.0-preview.1", json={"scope": "vso.packaging_write"},
                       headers={"Authorization": f"Bearer {alice}"}, allow_redirects=False)
    assert (legacy.status_code, legacy.json()["message"]) == (
        403, "DisablePatCreationPolicyViolation")

    # Before membership, TF401444, api-version and the body: only authentication comes first.
    sim.grant(world.BOB, "contoso", None)
    sim.set_never_signed_in(world.ALICE, "contoso")
    assert exchange(http, sim.mint_user_token(world.BOB), {}).status_code == 403
    assert exchange(http, alice, {}).status_code == 403
    no_version = http.post(EXCHANGE.split("?", maxsplit=1)[0], data=b"not json",
                           headers={"Authorization": f"Bearer {alice}", **SUPPRESS})
    assert no_version.status_code == 403
    sim.set_never_signed_in(world.ALICE, "contoso", never=False)
    for bearer in (sim.mint_user_token(world.ALICE, forge=True),
                   sim.mint_user_token(world.CAROL),  # another tenant
                   sim.mint_user_token(world.ALICE, scope="vso.packaging"),
                   sim.mint_app_token(world.SP_CONTOSO_SECRET)):
        assert exchange(http, bearer, {"scope": "vso.packaging"}).status_code == 401
    # Other organisations are not concerned.
    carol = sim.mint_user_token(world.CAROL)
    fabrikam = ("https://vssps.dev.azure.com/fabrikam/_apis/Token/SessionTokens"
                "?api-version=5.0-preview.1")
    assert exchange(http, carol, {"scope": "vso.packaging"}, fabrikam).status_code == 200

    # What existed keeps working: PATs, the session token minted before, pipeline tokens,
    # application tokens and Entra user tokens themselves; a global token does not.
    wheel = build_wheel(tmp_path, "policypkg", "1.0")
    for token in (pat, before, pipeline, sim.mint_app_token(world.SP_CONTOSO_SECRET), alice):
        assert http.get(world.SHARED_INDEX, auth=("x", token)).status_code == 200
    assert _upload(http, wheel, ("x", pat)).status_code == 200
    assert http.get(world.SHARED_INDEX, auth=("x", global_token.json()["token"])).status_code \
        == 401

    sim.restrict_pat_creation("contoso", enabled=False)
    assert exchange(http, alice, {"scope": "vso.packaging"}).status_code == 200
    assert http.get(world.SHARED_INDEX, auth=("x", global_token.json()["token"])).status_code \
        == 200
    sim.restrict_pat_creation("contoso")
    sim.reset()
    assert exchange(http, alice, {"scope": "vso.packaging"}).status_code == 200


@pytest.mark.parametrize(
    ("status", "style", "message", "type_key"),
    [
        (400, "type-key", "DisablePatCreationPolicyViolation",
         "DisablePatCreationPolicyViolationException"),
        (403, "error-name", "DisablePatCreationPolicyViolation", "SessionTokenCreateException"),
        (400, "message", "Your organization's policy restricts the creation of personal access "
         "tokens.", "SessionTokenCreateException"),
    ],
)
def test_pat_creation_policy_variants(sim: Simulator, http: requests.Session, status: int,
                                      style: str, message: str, type_key: str) -> None:
    sim.restrict_pat_creation("contoso", status=status, style=style)
    refused = exchange(http, sim.mint_user_token(world.ALICE), {"scope": "vso.packaging"})
    assert refused.status_code == status
    body = refused.json()
    assert body["message"].startswith(message)
    assert (body["typeKey"], body["$id"], body["errorCode"]) == (type_key, "1", 0)
    assert body["typeName"].endswith(f".{type_key}, Microsoft.VisualStudio.Services.WebApi")
    if style == "message":
        assert "DisablePatCreation" not in refused.text
    assert sim.requests(kind="exchange")[0].extra["refused"] == "DisablePatCreationPolicyViolation"


def test_pat_creation_policy_allowlist_and_packaging_sub_policy(sim: Simulator,
                                                                http: requests.Session) -> None:
    sim.restrict_pat_creation("contoso", allow_packaging=True, allowlist=["Bob@Contoso.com"])
    alice, bob = sim.mint_user_token(world.ALICE), sim.mint_user_token(world.BOB)
    assert exchange(http, alice, {"scope": "vso.packaging"}).status_code == 200
    assert exchange(http, alice, {"scope": "vso.packaging_write vso.packaging"}).status_code == 200
    assert exchange(http, alice, {"scope": "vso.packaging vso.code"}).status_code == 403
    assert exchange(http, alice, {}).status_code == 403  # app_token: every scope
    assert exchange(http, bob, {"scope": "vso.code"}).status_code == 200
    bob_global = exchange(http, bob, {"scope": "vso.packaging"}, GLOBAL_EXCHANGE).json()["token"]
    assert http.get(world.SHARED_INDEX, auth=("x", bob_global)).status_code == 200
    with pytest.raises(ValueError, match="style"):
        sim.restrict_pat_creation("contoso", style="loud")
    with pytest.raises(ValueError, match="400 or 403"):
        sim.restrict_pat_creation("contoso", status=401)
    with pytest.raises(KeyError):
        sim.restrict_pat_creation("nowhere")


# --- Entra user tokens by scope, on feeds and at the exchange --------------------------------


def test_feeds_honour_an_entra_token_s_delegated_scopes(sim: Simulator, http: requests.Session,
                                                        tmp_path: Path) -> None:
    def token(upn: str, scope: str) -> str:
        return sim.mint_user_token(upn, scope=scope, client_id=world.CONTOSO_PUBLISHING_CLIENT_ID)

    wheel = build_wheel(tmp_path, "scopedpkg", "1.0")
    read = token(world.ALICE, "vso.packaging")
    assert claims(read)["scp"] == "vso.packaging"
    assert http.get(world.SHARED_INDEX, auth=("x", read)).status_code == 200
    assert http.get(world.TEAM_INDEX, headers={"Authorization": f"Bearer {read}"}).ok
    refused = _upload(http, wheel, ("x", read))
    assert (refused.status_code, refused.json()["typeKey"]) == (
        403, "FeedNeedsPermissionsException")
    write = token(world.ALICE, "vso.packaging_write")  # write implies read
    assert http.get(world.SHARED_INDEX, auth=("x", write)).status_code == 200
    assert _upload(http, wheel, ("x", write)).status_code == 200
    both = token(world.ALICE, "vso.packaging vso.packaging_write")
    assert _upload(http, build_wheel(tmp_path, "scopedpkg", "1.1"), ("x", both)).status_code == 200
    # The role still rules: Bob reads only, whatever his token's scope.
    assert _upload(http, build_wheel(tmp_path, "scopedpkg", "1.2"),
                   ("x", token(world.BOB, "vso.packaging_write"))).status_code == 403
    unrelated = token(world.ALICE, "vso.code")
    assert http.get(world.SHARED_INDEX, auth=("x", unrelated)).status_code == 403
    assert http.get(world.RELEASES_INDEX, auth=("x", write)).status_code == 401  # other tenant
    assert sim.uploaded("shared") == ["scopedpkg-1.0-py3-none-any.whl",
                                      "scopedpkg-1.1-py3-none-any.whl"]
    # A narrow token cannot mint a session token: it cannot act for the user in general.
    at_exchange = exchange(http, write, {"scope": "vso.packaging"})
    assert (at_exchange.status_code, at_exchange.json()["typeKey"]) == (
        401, "UnauthorizedRequestException")
    assert at_exchange.json()["message"].startswith("TF400813")
    assert sim.requests(kind="exchange")[-1].extra["reason"] == "scp vso.packaging_write"
    sim.refuse_user_tokens_on_feeds()
    assert http.get(world.SHARED_INDEX, auth=("x", read)).status_code == 401


# --- narrow scopes in Entra: an organisation's own public clients ----------------------------

ORG_TOKEN = "https://login.microsoftonline.com/organizations/oauth2/v2.0/token"
PACKAGING = f"{world.DEVOPS_RESOURCE}/vso.packaging"
PACKAGING_WRITE = f"{world.DEVOPS_RESOURCE}/vso.packaging_write"


def _password(http: requests.Session, client_id: str, scope: str, upn: str = world.ALICE,
              url: str = ORG_TOKEN) -> requests.Response:
    return http.post(url, data={
        "grant_type": "password", "client_id": client_id, "username": upn,
        "password": world.USERS[upn].password, "scope": f"{scope} offline_access openid profile",
        "client_info": "1"})


def test_entra_grants_a_registered_client_its_consented_permissions(
    sim: Simulator, http: requests.Session
) -> None:
    def granted(client_id: str, scope: str) -> tuple[str, str]:
        answer = _password(http, client_id, scope)
        assert answer.status_code == 200, answer.text
        return claims(answer.json()["access_token"])["scp"], answer.json()["scope"]

    reader, publisher = world.CONTOSO_PACKAGING_CLIENT_ID, world.CONTOSO_PUBLISHING_CLIENT_ID
    assert granted(reader, PACKAGING) == ("vso.packaging", PACKAGING)
    assert granted(reader, world.DEVOPS_SCOPE) == (
        "vso.packaging", f"{PACKAGING} {world.DEVOPS_SCOPE}")
    both = ("vso.packaging vso.packaging_write", f"{PACKAGING} {PACKAGING_WRITE}")
    assert granted(publisher, PACKAGING_WRITE) == both
    assert granted(publisher, f"{PACKAGING} {PACKAGING_WRITE}") == both
    # Entra's token carries every permission consented for the client, not only those named.
    assert granted(publisher, PACKAGING) == both
    assert granted(publisher, "https://app.vssps.visualstudio.com/vso.packaging")[0] == both[0]
    # The first-party clients keep user_impersonation, for .default or by name.
    assert granted(world.AZURE_CLI_CLIENT_ID, world.DEVOPS_SCOPE) == (
        "user_impersonation", f"{world.DEVOPS_RESOURCE}/user_impersonation {world.DEVOPS_SCOPE}")
    assert granted(world.VSCODE_CLIENT_ID, f"{world.DEVOPS_RESOURCE}/user_impersonation")[0] == \
        "user_impersonation"
    assert granted(world.AZURE_CLI_CLIENT_ID, f"{world.ARM_RESOURCE}/.default")[1] == (
        "https://management.core.windows.net//user_impersonation "
        "https://management.core.windows.net//.default")

    def refused(client_id: str, scope: str, upn: str = world.ALICE,
                url: str = ORG_TOKEN) -> dict[str, Any]:
        answer = _password(http, client_id, scope, upn, url)
        assert answer.status_code == 400, answer.text
        return dict(answer.json())

    lacking = refused(reader, PACKAGING_WRITE)
    assert (lacking["error"], lacking["error_codes"], lacking["suberror"]) == (
        "invalid_grant", [65001], "consent_required")
    assert f"'{reader}' named 'Contoso packages (read)'" in lacking["error_description"]
    assert refused(reader, f"{world.DEVOPS_RESOURCE}/user_impersonation")["error_codes"] == [65001]
    for first_party in sorted(world.FIRST_PARTY_CLIENTS):
        answer = refused(first_party, PACKAGING)
        assert (answer["error"], answer["error_codes"]) == ("invalid_grant", [65002])
        assert "preauthorization" in answer["error_description"]
    assert refused(reader, f"{world.DEVOPS_SCOPE} {PACKAGING}")["error_codes"] == [70011]
    # Registered in contoso's tenant only: a fabrikam user cannot use it, a guest can.
    assert refused(reader, PACKAGING, world.CAROL)["error_codes"] == [700016]
    sim.add_guest(world.CAROL, world.T_CONTOSO)
    guest = _password(http, reader, PACKAGING, world.CAROL,
                      f"https://login.microsoftonline.com/{world.T_CONTOSO}/oauth2/v2.0/token")
    assert claims(guest.json()["access_token"])["scp"] == "vso.packaging"
    # The v1 endpoint (resource=) is .default's: the consented permissions.
    v1 = http.post(f"https://login.microsoftonline.com/{world.T_CONTOSO}/oauth2/token", data={
        "grant_type": "password", "client_id": reader, "username": world.ALICE,
        "password": world.ALICE_PASSWORD, "resource": world.DEVOPS_RESOURCE})
    assert claims(v1.json()["access_token"])["scp"] == "vso.packaging"


def test_a_narrow_client_s_refresh_token_and_authorization_code(
    sim: Simulator, http: requests.Session
) -> None:
    publisher = world.CONTOSO_PUBLISHING_CLIENT_ID
    first = _password(http, publisher, PACKAGING).json()
    refresh = {"grant_type": "refresh_token", "client_id": publisher,
               "refresh_token": first["refresh_token"],
               "scope": f"{PACKAGING_WRITE} offline_access openid profile"}
    again = http.post(ORG_TOKEN, data=refresh)
    assert claims(again.json()["access_token"])["scp"] == "vso.packaging vso.packaging_write"
    other = http.post(ORG_TOKEN, data={**refresh, "client_id": world.CONTOSO_PACKAGING_CLIENT_ID})
    assert other.json()["error_codes"] == [70000]  # bound to the client it was issued to
    reader = _password(http, world.CONTOSO_PACKAGING_CLIENT_ID, PACKAGING).json()
    write = http.post(ORG_TOKEN, data={**refresh, "client_id": world.CONTOSO_PACKAGING_CLIENT_ID,
                                       "refresh_token": reader["refresh_token"]})
    assert write.json()["error_codes"] == [65001]

    # The browser's leg: a scope the client lacks goes back to the application as an error.
    sim.set_browser_user(world.ALICE)
    verifier, challenge = _pkce()
    scope = f"{PACKAGING} offline_access openid profile"
    back = _sent_back(_authorize(http, challenge, client_id=publisher, scope=scope))
    done = _redeem(http, back["code"], verifier, client_id=publisher, scope=scope)
    assert claims(done.json()["access_token"])["scp"] == "vso.packaging vso.packaging_write"
    denied = _sent_back(_authorize(http, challenge, client_id=world.CONTOSO_PACKAGING_CLIENT_ID,
                                   scope=f"{PACKAGING_WRITE} offline_access openid profile"))
    assert denied["error"] == "invalid_grant"
    assert denied["error_description"].startswith("AADSTS65001:")
    first_party = _sent_back(_authorize(http, challenge, scope=scope))
    assert first_party["error_description"].startswith("AADSTS65002:")


def test_msal_with_a_narrow_client(sim: Simulator, identity_env: pytest.MonkeyPatch) -> None:
    """MSAL as the product uses it: device code sign-in for the read scope, then a silent
    request for the write scope (the same refresh token once the access token is stale)."""
    import msal

    def app(client_id: str) -> Any:
        return msal.PublicClientApplication(
            client_id, authority=f"https://login.microsoftonline.com/{world.T_CONTOSO}",
            verify=str(sim.ca_pem), token_cache=msal.SerializableTokenCache())

    sim.set_token_lifetime(user=240)  # under MSAL's five minutes: silent requests refresh
    sim.set_device_flow(user=world.ALICE, approve_after_polls=0, interval=1)
    publisher = app(world.CONTOSO_PUBLISHING_CLIENT_ID)
    signed_in = publisher.acquire_token_by_device_flow(publisher.initiate_device_flow([PACKAGING]))
    assert claims(signed_in["access_token"])["scp"] == "vso.packaging vso.packaging_write"
    assert signed_in["scope"].split() == [PACKAGING, PACKAGING_WRITE]
    (account,) = publisher.get_accounts()
    silent = publisher.acquire_token_silent([PACKAGING_WRITE], account=account)
    assert silent is not None
    assert silent["token_source"] == "identity_provider"
    refreshed = sim.requests(kind="token")[-1]
    assert (refreshed.grant_type, refreshed.client_id, refreshed.status) == (
        "refresh_token", world.CONTOSO_PUBLISHING_CLIENT_ID, 200)
    sim.set_token_lifetime(user=3600)
    fresh = publisher.acquire_token_silent([PACKAGING], account=account, force_refresh=True)
    assert fresh is not None
    before = len(sim.requests())
    cached = publisher.acquire_token_silent([PACKAGING_WRITE], account=account)
    assert cached is not None
    assert cached["token_source"] == "cache"
    assert len(sim.requests()) == before

    reader = app(world.CONTOSO_PACKAGING_CLIENT_ID)
    reader.acquire_token_by_device_flow(reader.initiate_device_flow([PACKAGING]))
    (account,) = reader.get_accounts()
    assert reader.acquire_token_silent([PACKAGING], account=account) is not None
    lacking = reader.acquire_token_silent_with_error([PACKAGING_WRITE], account=account)
    assert lacking is not None
    assert (lacking["error"], lacking["error_codes"], lacking.get("suberror")) == (
        "invalid_grant", [65001], "consent_required")

    first_party = app(world.ARTIFACTS_CREDPROVIDER_CLIENT_ID)
    flow = first_party.initiate_device_flow([PACKAGING])
    refused = first_party.acquire_token_by_device_flow(flow)
    assert refused["error_codes"] == [65002]
