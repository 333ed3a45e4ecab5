"""Identities other than `az login`: service principal, managed identity, and forcing a source."""

from __future__ import annotations

from pathlib import Path

import pytest

from .scenarios import as_service_principal, feed_accepts, keyring, one_line_message, signed_in
from .sim import world
from .sim.server import Simulator


def test_service_principal_from_azure_identity_variables(
    sim: Simulator, client_env: dict[str, str]
) -> None:
    env = as_service_principal(client_env)
    done = keyring(env, "get", world.SHARED_INDEX, "VssSessionToken")
    assert done.returncode == 0, done.stderr
    assert sim.count("exchange") == 0
    (token_request,) = [r for r in sim.requests(kind="token") if r.host.startswith("login.")]
    assert token_request.grant_type == "client_credentials"
    assert feed_accepts(sim, world.SHARED_INDEX, done.stdout.strip()) == 200


def test_service_principal_with_a_certificate(sim: Simulator, client_env: dict[str, str]) -> None:
    cert = sim.sp_certificate(world.SP_CONTOSO_CERT)
    env = dict(
        client_env,
        AZURE_CLIENT_ID=world.SP_CONTOSO_CERT,
        AZURE_TENANT_ID=world.T_CONTOSO,
        AZURE_CLIENT_CERTIFICATE_PATH=str(cert.combined_pem),
    )
    done = keyring(env, "get", world.SHARED_INDEX, "VssSessionToken")
    assert done.returncode == 0, done.stderr
    assert sim.count("exchange") == 0
    assert feed_accepts(sim, world.SHARED_INDEX, done.stdout.strip()) == 200


@pytest.mark.parametrize("user_assigned", [False, True], ids=["system", "user-assigned"])
def test_managed_identity_through_the_metadata_service(
    sim: Simulator, client_env: dict[str, str], user_assigned: bool
) -> None:
    sim.enable_managed_identity()
    env = dict(client_env)
    if user_assigned:
        env["AZURE_CLIENT_ID"] = world.MI_USER_CLIENT_ID
    done = keyring(env, "get", world.SHARED_INDEX, "VssSessionToken")
    assert done.returncode == 0, done.stderr
    (imds,) = [r for r in sim.requests(kind="token") if r.host == "169.254.169.254"]
    assert imds.status == 200
    assert (f"client_id={world.MI_USER_CLIENT_ID}" in imds.query) is user_assigned
    expected = world.MI_USER_CLIENT_ID if user_assigned else world.MI_SYSTEM_CLIENT_ID
    assert imds.client_id == expected
    assert sim.count("exchange") == 0
    assert feed_accepts(sim, world.SHARED_INDEX, done.stdout.strip()) == 200


@pytest.mark.parametrize("where", ["environment", "keyringrc"])
def test_a_forced_provider_skips_az(
    sim: Simulator, client_env: dict[str, str], tmp_path: Path, where: str
) -> None:
    env = as_service_principal(signed_in(client_env))
    env["FAKE_AZ_CALLS"] = str(tmp_path / "az-calls")
    if where == "environment":
        env["ARTIFACTS_KEYRING_NOFUSS_PROVIDER"] = "azure_identity"
    else:
        config = Path(env["XDG_CONFIG_HOME"]) / "python_keyring"
        config.mkdir(parents=True)
        (config / "keyringrc.cfg").write_text(
            "[artifacts_keyring_nofuss]\nprovider = azure_identity\n"
        )
    done = keyring(env, "get", world.SHARED_INDEX, "VssSessionToken")
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "az-calls").exists()
    assert sim.count("exchange") == 0


def test_an_unknown_provider_is_one_line_before_any_request(
    sim: Simulator, client_env: dict[str, str]
) -> None:
    env = signed_in(client_env)
    sim.reset()
    env["ARTIFACTS_KEYRING_NOFUSS_PROVIDER"] = "azure-clii"
    done = keyring(env, "get", world.SHARED_INDEX, "VssSessionToken")
    assert done.returncode == 1
    line = one_line_message(done.stderr)
    assert "unknown provider 'azure-clii'" in line
    # Every name that can be forced is listed, so the typo is easy to fix.
    assert "use one of: token, external_endpoints, access_token, pipeline, devops_pat" in line
    assert "azure_cli, github_actions, azure_identity, codespaces, interactive" in line
    assert sim.requests() == []
