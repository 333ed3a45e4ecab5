"""Workloads with no person at the keyboard: workload identity federation, GitHub Actions OIDC,
Azure Pipelines, the official provider's feed endpoints, GitHub Codespaces; the order of the
identity sources and what debug output says about it; and a pipeline set up for Microsoft's
artifacts-keyring that switches by changing only the package name.

Each test checks what a user sees (exit code, the credential on stdout, which the feed accepts,
or our one line on stderr) and what the simulated services saw. No az login unless a test says
so.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from .helpers import run
from .scenarios import (
    DEBUG_PREFIX,
    bin_path,
    codespaces,
    feed_accepts,
    importable,
    keyring,
    one_line_message,
    signed_in,
    spoken,
    twine_upload,
    with_user,
)
from .sim import world
from .sim.server import Record, Simulator
from .sim.wheels import build_wheel

SHARED_SEED_INDEX = "https://pkgs.dev.azure.com/contoso/_packaging/shared/pypi/simple"
SHARED_SEED_UPLOAD = "https://pkgs.dev.azure.com/contoso/_packaging/shared/pypi/upload"


def get(env: dict[str, str], url: str = world.SHARED_INDEX) -> tuple[int, str, str]:
    done = keyring(env, "get", url, "VssSessionToken")
    return done.returncode, done.stdout.strip(), done.stderr


def entra_token_requests(sim: Simulator) -> list[Record]:
    return [r for r in sim.requests(kind="token") if r.host in world.LOGIN_HOSTS]


def assert_app_token_by_assertion(sim: Simulator, client_id: str) -> None:
    """One token request to Entra, for the app, answered 200, and no exchange: an application
    token goes to the feed as it is. The app has no secret and no certificate (a federated
    credential only), so the simulated Entra grants it only for a valid client assertion."""
    (request,) = entra_token_requests(sim)
    assert request.grant_type == "client_credentials"
    assert request.client_id == client_id
    assert request.status == 200
    assert world.T_CONTOSO in request.path
    assert sim.count("exchange") == 0


def uv_pip_install(target: Path, *args: str) -> list[str]:
    return [
        bin_path("uv"),
        "pip",
        "install",
        "--no-cache",
        "--target",
        str(target),
        "--keyring-provider",
        "subprocess",
        *args,
    ]


def no_request_to(sim: Simulator, host: str) -> None:
    assert sim.requests(host=host) == [], f"a request reached {host}"


def backend_requests(sim: Simulator) -> list[str]:
    """What the backend itself sent (its User-Agent), apart from the client's own requests:
    a client's first, anonymous request to the index also counts as `discovery`."""
    return [
        f"{r.method} {r.host}{r.path}"
        for r in sim.requests()
        if (r.user_agent or "").startswith("artifacts-keyring-nofuss/")
    ]


# --- workload identity federation (AZURE_FEDERATED_TOKEN_FILE) -------------------------------


@pytest.mark.parametrize("tenant_given", [True, False], ids=["tenant-id", "tenant-from-feed"])
def test_workload_identity_federation_with_a_token_file(
    sim: Simulator, client_env: dict[str, str], tmp_path: Path, tenant_given: bool
) -> None:
    path = sim.write_federated_assertion(
        tmp_path / "azure-identity-token", world.SP_CONTOSO_FEDERATED
    )
    env = dict(
        client_env,
        AZURE_CLIENT_ID=world.SP_CONTOSO_FEDERATED,
        AZURE_FEDERATED_TOKEN_FILE=str(path),
    )
    if tenant_given:
        env["AZURE_TENANT_ID"] = world.T_CONTOSO
    code, token, stderr = get(env)
    assert code == 0, stderr
    assert spoken(stderr) == []
    assert_app_token_by_assertion(sim, world.SP_CONTOSO_FEDERATED)
    # The feed is asked for its tenant either way; without AZURE_TENANT_ID that tenant is the
    # one the assertion went to (checked above).
    assert sim.count("discovery") == 1
    assert backend_requests(sim) == [
        "GET pkgs.dev.azure.com/contoso/_packaging/shared/pypi/simple/"
    ]
    assert feed_accepts(sim, world.SHARED_INDEX, token) == 200


def test_workload_identity_federation_with_the_entra_authority_host(
    sim: Simulator, client_env: dict[str, str], tmp_path: Path
) -> None:
    path = sim.write_federated_assertion(
        tmp_path / "azure-identity-token", world.SP_CONTOSO_FEDERATED
    )
    env = dict(
        client_env,
        AZURE_CLIENT_ID=world.SP_CONTOSO_FEDERATED,
        AZURE_FEDERATED_TOKEN_FILE=str(path),
        AZURE_TENANT_ID=world.T_CONTOSO,
        AZURE_AUTHORITY_HOST="https://login.microsoftonline.com",
    )
    code, token, stderr = get(env)
    assert code == 0, stderr
    assert_app_token_by_assertion(sim, world.SP_CONTOSO_FEDERATED)
    assert feed_accepts(sim, world.SHARED_INDEX, token) == 200


def test_workload_identity_federation_refuses_another_authority_host(
    sim: Simulator, client_env: dict[str, str], tmp_path: Path
) -> None:
    path = sim.write_federated_assertion(
        tmp_path / "azure-identity-token", world.SP_CONTOSO_FEDERATED
    )
    env = dict(
        client_env,
        AZURE_CLIENT_ID=world.SP_CONTOSO_FEDERATED,
        AZURE_FEDERATED_TOKEN_FILE=str(path),
        AZURE_TENANT_ID=world.T_CONTOSO,
        AZURE_AUTHORITY_HOST="https://login.evil.example",
    )
    code, token, stderr = get(env)
    assert code == 1
    assert token == ""
    line = one_line_message(stderr)
    assert (
        "AZURE_AUTHORITY_HOST 'https://login.evil.example' is not a Microsoft Entra login host"
        in (line)
    )
    # The assertion was sent nowhere: not to the host named, not to Entra either.
    no_request_to(sim, "login.evil.example")
    assert entra_token_requests(sim) == []


# --- GitHub Actions OIDC --------------------------------------------------------------------


def github_job(
    sim: Simulator, env: dict[str, str], tenant_given: bool = True, **kwargs: str
) -> dict[str, str]:
    job = dict(env, AZURE_CLIENT_ID=world.SP_CONTOSO_GITHUB)
    if tenant_given:
        job["AZURE_TENANT_ID"] = world.T_CONTOSO
    job.update(sim.github_actions(**kwargs))
    return job


@pytest.mark.parametrize("tenant_given", [True, False], ids=["tenant-id", "tenant-from-feed"])
def test_github_actions_oidc(
    sim: Simulator, client_env: dict[str, str], tenant_given: bool
) -> None:
    env = github_job(sim, client_env, tenant_given)
    code, token, stderr = get(env)
    assert code == 0, stderr
    assert spoken(stderr) == []
    (oidc,) = sim.requests(kind="github_oidc")
    assert oidc.status == 200
    assert oidc.extra["audience"] == "api://AzureADTokenExchange"
    assert oidc.credential_kind == "github-request"
    assert oidc.principal == world.GITHUB_SUBJECT_CONTOSO
    assert_app_token_by_assertion(sim, world.SP_CONTOSO_GITHUB)
    assert feed_accepts(sim, world.SHARED_INDEX, token) == 200


def test_github_actions_oidc_with_a_subject_entra_does_not_trust(
    sim: Simulator, client_env: dict[str, str]
) -> None:
    env = github_job(sim, client_env, subject="repo:evil/x:ref:refs/heads/main")
    code, token, stderr = get(env)
    assert code == 1
    assert token == ""
    line = one_line_message(stderr)
    assert f"Entra refused the GitHub ID token for app {world.SP_CONTOSO_GITHUB}" in line
    assert "AADSTS700213" in line
    assert "federated credential" in line
    (refused,) = entra_token_requests(sim)
    assert refused.status == 400
    assert sim.count("github_oidc") == 1


def test_github_actions_request_url_elsewhere_gets_no_request_token(
    sim: Simulator, client_env: dict[str, str]
) -> None:
    env = github_job(sim, client_env)
    env["ACTIONS_ID_TOKEN_REQUEST_URL"] = (
        "https://evil.example.com/_apis/distributedtask/hubs/Actions/plans/1/jobs/2/idtoken"
        "?api-version=2.0"
    )
    code, token, stderr = get(env)
    assert code == 1
    assert token == ""
    line = one_line_message(stderr)
    assert "ACTIONS_ID_TOKEN_REQUEST_URL does not point at GitHub's token service" in line
    no_request_to(sim, "evil.example.com")
    assert sim.count("github_oidc") == 0
    assert entra_token_requests(sim) == []


def test_github_actions_without_azure_client_id(sim: Simulator, client_env: dict[str, str]) -> None:
    env = github_job(sim, client_env)
    del env["AZURE_CLIENT_ID"]
    code, token, stderr = get(env)
    assert code == 1
    assert token == ""
    line = one_line_message(stderr)
    assert "GitHub Actions OIDC needs AZURE_CLIENT_ID" in line
    # The job's request token was not spent on an ID token nobody can use.
    assert sim.count("github_oidc") == 0


def test_uv_pip_install_in_a_github_actions_job(
    sim: Simulator, client_env: dict[str, str], tmp_path: Path
) -> None:
    env = github_job(sim, client_env)
    target = tmp_path / "target"
    done = run(
        uv_pip_install(
            target, "--index-url", with_user(world.SHARED_INDEX, "VssSessionToken"), "tinyfeedpkg"
        ),
        env,
    )
    assert done.returncode == 0, done.stderr
    assert importable(target, env, "tinyfeedpkg") == "1.1.0"
    assert sim.count("github_oidc") >= 1
    assert {r.extra.get("audience") for r in sim.requests(kind="github_oidc")} == {
        "api://AzureADTokenExchange"
    }
    downloads = sim.requests(kind="download")
    assert downloads
    assert {(r.credential_kind, r.principal) for r in downloads} == {
        ("entra-app", world.SP_CONTOSO_GITHUB)
    }
    assert sim.count("exchange") == 0


# --- Azure Pipelines: System.AccessToken ------------------------------------------------------


def pipeline_job(sim: Simulator, env: dict[str, str]) -> tuple[dict[str, str], str]:
    token = sim.add_pipeline_token("contoso")
    job = dict(env)
    job.update(Simulator.pipeline_env("contoso", token))
    return job, token


@pytest.mark.parametrize(
    "url", [world.SHARED_INDEX, world.TEAM_INDEX], ids=["org-feed", "project-feed"]
)
def test_azure_pipelines_token_is_used_as_it_is(
    sim: Simulator, client_env: dict[str, str], url: str
) -> None:
    env, pipeline_token = pipeline_job(sim, client_env)
    code, token, stderr = get(env, url)
    assert code == 0, stderr
    assert spoken(stderr) == []
    handed_as_it_is = token == pipeline_token
    assert handed_as_it_is
    # Handed over: no discovery, no Entra, no exchange.
    assert sim.requests() == []
    assert feed_accepts(sim, url, token) == 200


def test_azure_pipelines_twine_upload(
    sim: Simulator, client_env: dict[str, str], tmp_path: Path
) -> None:
    env, _ = pipeline_job(sim, client_env)
    wheel = build_wheel(tmp_path / "dist", "freshpkg", "0.4.2")
    done = twine_upload(env, wheel)
    assert done.returncode == 0, done.stdout + done.stderr
    assert wheel.name in sim.uploaded("shared")
    (upload,) = sim.requests(kind="upload")
    assert upload.credential_kind == "pipeline"
    assert sim.count("exchange") == 0


def test_azure_pipelines_token_is_not_sent_to_another_organisation(
    sim: Simulator, client_env: dict[str, str]
) -> None:
    env, pipeline_token = pipeline_job(sim, client_env)
    code, token, stderr = get(env, world.RELEASES_INDEX)
    assert code == 1
    assert token == ""
    said_the_token = pipeline_token in stderr
    assert not said_the_token
    line = one_line_message(stderr)
    assert "pipeline: the pipeline's token is for https://dev.azure.com/contoso/" in line
    carried = [
        r
        for r in sim.requests()
        if r.credential_fingerprint == Simulator.fingerprint(pipeline_token)
    ]
    assert carried == []


def test_azure_pipelines_uv_recipe_with_only_the_token_mapped(
    sim: Simulator, client_env: dict[str, str], tmp_path: Path
) -> None:
    """Seed 004 rewritten for this backend: no UV_INDEX_*_PASSWORD, keyring not disabled, only
    `SYSTEM_ACCESSTOKEN: $(System.AccessToken)` mapped (the agent sets the collection URI)."""
    env, _ = pipeline_job(sim, client_env)
    env["FAKE_AZ_CALLS"] = str(tmp_path / "az-calls")
    target = tmp_path / "target"
    done = run(
        uv_pip_install(
            target, "--index-url", with_user(world.SHARED_INDEX, "VssSessionToken"), "tinyfeedpkg"
        ),
        env,
    )
    assert done.returncode == 0, done.stderr
    assert importable(target, env, "tinyfeedpkg") == "1.1.0"
    downloads = sim.requests(kind="download")
    assert downloads
    assert {r.credential_kind for r in downloads} == {"pipeline"}
    # Handed over as it is: the backend sent nothing (no discovery), nothing went to Entra.
    assert backend_requests(sim) == []
    assert sim.count("exchange") == 0
    assert entra_token_requests(sim) == []
    assert not (tmp_path / "az-calls").exists()


# --- ARTIFACTS_CREDENTIALPROVIDER_FEED_ENDPOINTS ------------------------------------------------


def feed_endpoints(env: dict[str, str], *entries: dict[str, str]) -> dict[str, str]:
    document = {"endpointCredentials": list(entries)}
    return dict(env, ARTIFACTS_CREDENTIALPROVIDER_FEED_ENDPOINTS=json.dumps(document))


@pytest.mark.parametrize(
    "client_id", ["system", world.MI_USER_CLIENT_ID], ids=["system", "user-assigned"]
)
def test_feed_endpoints_with_a_managed_identity(
    sim: Simulator, client_env: dict[str, str], client_id: str
) -> None:
    sim.enable_managed_identity()
    env = feed_endpoints(client_env, {"endpoint": world.SHARED_INDEX, "clientId": client_id})
    code, token, stderr = get(env)
    assert code == 0, stderr
    (imds,) = sim.requests(kind="token")
    assert imds.host == world.IMDS_ADDRESS
    assert imds.status == 200
    user_assigned = client_id != "system"
    assert (f"client_id={world.MI_USER_CLIENT_ID}" in imds.query) is user_assigned
    assert imds.client_id == (
        world.MI_USER_CLIENT_ID if user_assigned else world.MI_SYSTEM_CLIENT_ID
    )
    assert sim.count("exchange") == 0
    assert feed_accepts(sim, world.SHARED_INDEX, token) == 200


def test_feed_endpoints_with_a_certificate_file(sim: Simulator, client_env: dict[str, str]) -> None:
    cert = sim.sp_certificate(world.SP_CONTOSO_CERT)
    env = feed_endpoints(
        client_env,
        {
            "endpoint": world.SHARED_INDEX,
            "clientId": world.SP_CONTOSO_CERT,
            "clientCertificateFilePath": str(cert.combined_pem),
        },
    )
    code, token, stderr = get(env)
    assert code == 0, stderr
    (request,) = entra_token_requests(sim)
    assert request.grant_type == "client_credentials"
    assert request.client_id == world.SP_CONTOSO_CERT
    assert request.status == 200
    assert sim.count("exchange") == 0
    assert feed_accepts(sim, world.SHARED_INDEX, token) == 200


def test_feed_endpoints_with_a_certificate_subject_name(
    sim: Simulator, client_env: dict[str, str]
) -> None:
    cert = sim.sp_certificate(world.SP_CONTOSO_CERT)
    env = feed_endpoints(
        client_env,
        {
            "endpoint": world.SHARED_INDEX,
            "clientId": world.SP_CONTOSO_CERT,
            "clientCertificateSubjectName": cert.subject,
        },
    )
    code, token, stderr = get(env)
    assert code == 1
    assert token == ""
    line = one_line_message(stderr)
    assert '"clientCertificateSubjectName"' in line
    assert 'use "clientCertificateFilePath"' in line
    assert entra_token_requests(sim) == []


def test_feed_endpoints_entry_for_another_feed_does_not_apply(
    sim: Simulator, client_env: dict[str, str]
) -> None:
    env = feed_endpoints(
        client_env, {"endpoint": world.RELEASES_INDEX, "clientId": world.MI_USER_CLIENT_ID}
    )
    code, token, stderr = get(env)
    assert code == 1
    assert token == ""
    line = one_line_message(stderr)
    assert "feed_endpoints: ARTIFACTS_CREDENTIALPROVIDER_FEED_ENDPOINTS has no entry for" in line
    assert "for contoso/shared" in line
    # The user-assigned identity of the other feed's entry was never asked for.
    assert all(world.MI_USER_CLIENT_ID not in r.query for r in sim.requests(kind="token"))


# --- GitHub Codespaces ----------------------------------------------------------------------


def in_a_codespace(env: dict[str, str]) -> dict[str, str]:
    codespaces(Path(env["HOME"]), world.ALICE, world.ALICE_PASSWORD)
    return dict(env)


def test_codespaces_helper_signs_in_and_the_session_token_is_kept(
    sim: Simulator, client_env: dict[str, str], tmp_path: Path
) -> None:
    env = in_a_codespace(client_env)
    env["FAKE_ADO_HELPER_CALLS"] = str(tmp_path / "helper-calls")
    code, token, stderr = get(env)
    assert code == 0, stderr
    assert spoken(stderr) == []
    (signin,) = entra_token_requests(sim)
    assert signin.grant_type == "password"
    assert signin.client_id == world.VSCODE_CLIENT_ID
    (exchange,) = sim.requests(kind="exchange")
    assert exchange.status == 200
    assert exchange.principal == world.ALICE
    assert feed_accepts(sim, world.SHARED_INDEX, token) == 200
    # A new process: the session token comes from the disk cache, not from a second exchange.
    again, token_again, stderr_again = get(env)
    assert again == 0, stderr_again
    same_session_token = token_again == token
    assert same_session_token
    assert sim.count("exchange") == 1
    assert set((tmp_path / "helper-calls").read_text().splitlines()) == {"get-access-token"}


def test_codespaces_helper_broken(sim: Simulator, client_env: dict[str, str]) -> None:
    env = dict(in_a_codespace(client_env), FAKE_ADO_HELPER_BROKEN="1")
    code, token, stderr = get(env)
    assert code == 1
    assert token == ""
    line = one_line_message(stderr)
    assert "codespaces: ~/ado-auth-helper failed" in line
    assert sim.count("exchange") == 0


def test_codespaces_helper_hung(sim: Simulator, client_env: dict[str, str]) -> None:
    env = dict(
        in_a_codespace(client_env),
        FAKE_ADO_HELPER_HANG="1",
        ARTIFACTS_KEYRING_NOFUSS_AZ_TIMEOUT="2",
    )
    started = time.monotonic()
    code, token, stderr = get(env)
    assert time.monotonic() - started < 10
    assert code == 1
    assert token == ""
    line = one_line_message(stderr)
    assert "~/ado-auth-helper did not answer in 2 s" in line


# --- the order of the sources, and what debug output says about it ----------------------------


DEFAULT_ORDER = (
    "token",
    "external_endpoints",
    "access_token",
    "pipeline",
    "devops_pat",
    "feed_endpoints",
    "azure_cli",
    "github_actions",
    "azure_identity",
    "codespaces",
    "interactive",
)


def debug_lines(stderr: str) -> list[str]:
    return [
        line[len(DEBUG_PREFIX) :] for line in stderr.splitlines() if line.startswith(DEBUG_PREFIX)
    ]


def verdicts(lines: list[str]) -> list[str]:
    """The source names, in the order their "applies" or "does not apply" lines came."""
    found = []
    for line in lines:
        name, _, rest = line.partition(": ")
        if name in DEFAULT_ORDER and rest.startswith(("applies: ", "does not apply: ")):
            found.append(name)
    return found


def test_debug_says_what_each_source_made_of_it(sim: Simulator, client_env: dict[str, str]) -> None:
    env = signed_in(dict(client_env, ARTIFACTS_KEYRING_NOFUSS_DEBUG="1"))
    code, token, stderr = get(env)
    assert code == 0, stderr
    lines = debug_lines(stderr)
    assert f"sources, in order: {', '.join(DEFAULT_ORDER)}" in lines
    # Each source in turn, up to the first that applies; the ones after it are not asked.
    asked = DEFAULT_ORDER[: DEFAULT_ORDER.index("azure_cli") + 1]
    assert verdicts(lines) == list(asked)
    for name in asked[:-1]:
        assert any(line.startswith(f"{name}: does not apply: ") for line in lines), name
    assert any(
        line.startswith("azure_cli: applies: token for alice@contoso.com") for line in lines
    ), lines
    assert spoken(stderr) == []
    assert feed_accepts(sim, world.SHARED_INDEX, token) == 200


def test_debug_says_why_no_source_applied(sim: Simulator, client_env: dict[str, str]) -> None:
    env = dict(client_env, ARTIFACTS_KEYRING_NOFUSS_DEBUG="1")
    code, token, stderr = get(env)
    assert code == 1
    assert token == ""
    lines = debug_lines(stderr)
    assert verdicts(lines) == list(DEFAULT_ORDER)
    assert "azure_cli: does not apply: not signed in; run `az login --tenant" in "\n".join(lines)
    # The one line names what is set up here (az, installed but not signed in) and counts the
    # rest, which debug output listed.
    line = one_line_message(stderr)
    assert "azure_cli: not signed in; run `az login --tenant" in line
    assert "other sources do not apply here" in line


def test_a_forced_provider_uses_the_service_principal_and_never_runs_az(
    sim: Simulator, client_env: dict[str, str], tmp_path: Path
) -> None:
    env = signed_in(client_env)
    tokens_before = len(entra_token_requests(sim))
    env.update(
        AZURE_CLIENT_ID=world.SP_CONTOSO_SECRET,
        AZURE_TENANT_ID=world.T_CONTOSO,
        AZURE_CLIENT_SECRET=world.SP_CONTOSO_SECRET_VALUE,
        ARTIFACTS_KEYRING_NOFUSS_PROVIDER="azure_identity",
        FAKE_AZ_CALLS=str(tmp_path / "az-calls"),
    )
    code, token, stderr = get(env)
    assert code == 0, stderr
    assert not (tmp_path / "az-calls").exists()
    (request,) = entra_token_requests(sim)[tokens_before:]
    assert request.grant_type == "client_credentials"
    assert request.client_id == world.SP_CONTOSO_SECRET
    assert sim.count("exchange") == 0
    assert feed_accepts(sim, world.SHARED_INDEX, token) == 200


@pytest.mark.parametrize("order", ["pipeline,azure_cli", "azure_cli,pipeline"])
def test_a_forced_order_is_respected(
    sim: Simulator, client_env: dict[str, str], tmp_path: Path, order: str
) -> None:
    env, pipeline_token = pipeline_job(sim, signed_in(client_env))
    pat = sim.add_pat("contoso")
    env.update(
        # First in the default order; not in the forced one, so never used.
        ARTIFACTS_KEYRING_NOFUSS_TOKEN=pat,
        ARTIFACTS_KEYRING_NOFUSS_PROVIDER=order,
        ARTIFACTS_KEYRING_NOFUSS_DEBUG="1",
        FAKE_AZ_CALLS=str(tmp_path / "az-calls"),
    )
    code, token, stderr = get(env)
    assert code == 0, stderr
    lines = debug_lines(stderr)
    assert f"sources, in order: {order.replace(',', ', ')}" in lines
    first = order.split(",", maxsplit=1)[0]
    # The first source of the forced order answers; the token variable is not looked at.
    assert verdicts(lines) == [first], lines
    handed_the_pipeline_token = token == pipeline_token
    handed_the_pat = token == pat
    assert not handed_the_pat
    if first == "pipeline":
        assert handed_the_pipeline_token
        assert not (tmp_path / "az-calls").exists()
        assert sim.count("exchange") == 0
    else:
        assert not handed_the_pipeline_token
        assert (tmp_path / "az-calls").exists()
        (exchange,) = sim.requests(kind="exchange")
        assert exchange.principal == world.ALICE
    assert feed_accepts(sim, world.SHARED_INDEX, token) == 200


# --- switching from Microsoft's artifacts-keyring: the same commands and variables -------------


def official_pipeline_env(sim: Simulator, env: dict[str, str], variables: str) -> dict[str, str]:
    """Only what the official tasks set for artifacts-keyring, and a shell that is not pip's
    --no-input (the seed's commands carry no --keyring-provider: pip's "auto" asks keyring
    only when it may prompt)."""
    token = sim.add_pipeline_token("contoso")
    official = dict(env, ARTIFACTS_KEYRING_NONINTERACTIVE_MODE="true")
    official.pop("PIP_NO_INPUT")
    if variables == "access-token":
        official["VSS_NUGET_ACCESSTOKEN"] = token
        official["VSS_NUGET_URI_PREFIXES"] = (
            "https://pkgs.dev.azure.com/contoso/;https://contoso.pkgs.visualstudio.com/"
        )
    else:
        official["VSS_NUGET_EXTERNAL_FEED_ENDPOINTS"] = json.dumps(
            {
                "endpointCredentials": [
                    {
                        "endpoint": "https://pkgs.dev.azure.com/contoso/_packaging/shared/nuget/v3/index.json",
                        "username": "build",
                        "password": token,
                    }
                ]
            }
        )
    return official


@pytest.mark.parametrize("variables", ["access-token", "external-endpoints"])
def test_official_pipeline_variables_drive_pip_and_twine_with_the_seed_commands(
    sim: Simulator, client_env: dict[str, str], tmp_path: Path, variables: str
) -> None:
    env = official_pipeline_env(sim, client_env, variables)
    target = tmp_path / "target"
    # Seed 001's commands; --target only keeps the test's own environment as it was.
    install = run(
        [
            "pip",
            "install",
            "tinyfeedpkg",
            "--index-url",
            SHARED_SEED_INDEX,
            "--target",
            str(target),
        ],
        env,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    assert importable(target, env, "tinyfeedpkg") == "1.1.0"
    downloads = sim.requests(kind="download")
    assert downloads
    assert {r.credential_kind for r in downloads} == {"pipeline"}

    wheel = build_wheel(tmp_path / "dist", "freshpkg", "0.4.2")
    upload = run(["twine", "upload", "--repository-url", SHARED_SEED_UPLOAD, str(wheel)], env)
    assert upload.returncode == 0, upload.stdout + upload.stderr
    assert wheel.name in sim.uploaded("shared")
    (uploaded,) = sim.requests(kind="upload")
    assert uploaded.credential_kind == "pipeline"
    assert backend_requests(sim) == []
    assert sim.count("exchange") == 0
    assert entra_token_requests(sim) == []
