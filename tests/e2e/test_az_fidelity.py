"""The fake az (sim/bin/az) against the real one (.e2e/azure-cli), on the same inputs.

The fake stays for what the real one cannot be made to do (hang, crash, be slow on demand), so
it must not drift from it in what the backend reads: `az account get-access-token`'s JSON
(accessToken, expires_on, expiresOn, tenant), its error text when nobody is signed in or Entra
refuses, and azureProfile.json after each kind of `az login` and `az logout` (which account is
the default one, and whether it is a user). Each step runs both, each in a home of its own."""

from __future__ import annotations

import json
import re
import subprocess
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from . import realaz
from .helpers import client_env_for
from .sim import world
from .sim.azcli import az as fake_az
from .sim.jwts import unverified
from .sim.server import Simulator

# The parts of Entra's error text that differ on every request.
VOLATILE = re.compile(r" Trace ID: \S+ Correlation ID: \S+ Timestamp: [\d-]+ [\d:]+Z")


class Pair:
    """The fake and the real az, each with a home of its own."""

    def __init__(self, fake_env: dict[str, str], real_env: dict[str, str]) -> None:
        self.envs = {"fake": fake_env, "real": real_env}

    def run(self, *args: str) -> dict[str, subprocess.CompletedProcess[str]]:
        return {
            "fake": fake_az(self.envs["fake"], *args),
            "real": realaz.az_quiet(self.envs["real"], *args),
        }

    def login(self, *args: str) -> None:
        for name, done in self.run("login", *args, "--output", "none").items():
            assert done.returncode == 0, f"{name} az login: {done.stderr}"

    def login_user(self, upn: str) -> None:
        self.login("-u", upn, "-p", world.USERS[upn].password, "--allow-no-subscriptions")

    def profiles(self) -> dict[str, tuple[bytes, Any]]:
        found = {}
        for name, env in self.envs.items():
            raw = (Path(env["HOME"]) / ".azure" / "azureProfile.json").read_bytes()
            found[name] = (raw[:3], json.loads(raw.decode("utf-8-sig")))
        return found

    def signed_in_accounts(self, monkeypatch: pytest.MonkeyPatch) -> dict[str, str | None]:
        """Whom the backend reads from each profile (azure_cli.signed_in_account)."""
        from artifacts_keyring_nofuss.identities.azure_cli import signed_in_account

        found = {}
        for name, env in self.envs.items():
            monkeypatch.setenv("AZURE_CONFIG_DIR", str(Path(env["HOME"]) / ".azure"))
            found[name] = signed_in_account()
        return found


@pytest.fixture
def pair(sim: Simulator, real_az_env: dict[str, str], tmp_path: Path) -> Pair:
    return Pair(client_env_for(tmp_path / "fake", sim.ca_pem), real_az_env)


def token_args(*extra: str) -> tuple[str, ...]:
    return (
        "account",
        "get-access-token",
        "--resource",
        world.DEVOPS_RESOURCE,
        *extra,
        "--output",
        "json",
    )


def same_profiles(pair: Pair) -> Any:
    profiles = pair.profiles()
    assert profiles["fake"] == profiles["real"]
    bom, profile = profiles["real"]
    assert bom == b"\xef\xbb\xbf"
    return profile


def same_error(pair: Pair, *args: str) -> str:
    done = pair.run(*args)
    texts = {name: VOLATILE.sub(" <ids>", d.stderr) for name, d in done.items()}
    assert (done["fake"].returncode, done["fake"].stdout) == (done["real"].returncode, "")
    assert done["real"].returncode == 1
    assert texts["fake"] == texts["real"]
    return texts["real"]


def same_token_shape(pair: Pair, *extra: str) -> dict[str, Any]:
    """Both print the same fields, of the same types, for the same principal and audience."""
    done = pair.run(*token_args(*extra))
    outputs: dict[str, dict[str, Any]] = {}
    now = time.time()
    for name, result in done.items():
        assert (result.returncode, result.stderr) == (0, ""), f"{name}: {result.stderr}"
        data = json.loads(result.stdout)
        assert list(data) == sorted(data)  # az prints its JSON with sorted keys
        assert isinstance(data["expires_on"], int)
        assert abs(data["expires_on"] - (now + 3600)) < 60
        assert data["expiresOn"] == datetime.fromtimestamp(data["expires_on"]).strftime(
            "%Y-%m-%d %H:%M:%S.%f"
        )
        shaped = unverified(data["accessToken"])
        assert shaped is not None
        claims = shaped[1]
        data["accessToken"] = {k: claims.get(k) for k in ("aud", "tid", "idtyp", "upn", "appid")}
        data["expires_on"] = data["expiresOn"] = "<time>"
        outputs[name] = data
    assert outputs["fake"] == outputs["real"]
    return outputs["real"]


def test_signed_out_the_same(pair: Pair) -> None:
    text = same_error(pair, *token_args("--tenant", world.T_CONTOSO))
    assert text == "ERROR: Please run 'az login' to setup account.\n"
    assert same_error(pair, "logout") == "ERROR: There are no active accounts.\n"


def test_users_the_same(pair: Pair, monkeypatch: pytest.MonkeyPatch) -> None:
    pair.login_user(world.ALICE)
    profile = same_profiles(pair)
    assert [(s["user"]["name"], s["isDefault"]) for s in profile["subscriptions"]] == [
        (world.ALICE, True)
    ]
    assert pair.signed_in_accounts(monkeypatch) == {"fake": world.ALICE, "real": world.ALICE}

    token = same_token_shape(pair, "--tenant", world.T_CONTOSO)
    assert token["accessToken"]["upn"] == world.ALICE
    assert token["tenant"] == world.T_CONTOSO
    assert "subscription" not in token
    assert same_token_shape(pair)["subscription"] == world.T_CONTOSO

    # Another tenant: Entra's AADSTS error, then az's own advice, word for word.
    text = same_error(pair, *token_args("--tenant", world.T_FABRIKAM))
    assert text.startswith("ERROR: AADSTS50020: ")
    assert f'az login --tenant "{world.T_FABRIKAM}"' in text

    # A second user replaces the first: one tenant-level entry per tenant.
    pair.login_user(world.BOB)
    profile = same_profiles(pair)
    assert [s["user"]["name"] for s in profile["subscriptions"]] == [world.BOB]
    assert pair.signed_in_accounts(monkeypatch) == {"fake": world.BOB, "real": world.BOB}
    assert same_token_shape(pair, "--tenant", world.T_CONTOSO)["accessToken"]["upn"] == world.BOB

    for name, done in pair.run("logout").items():
        assert done.returncode == 0, f"{name}: {done.stderr}"
    assert same_profiles(pair) == {"subscriptions": []}
    assert pair.signed_in_accounts(monkeypatch) == {"fake": None, "real": None}
    same_error(pair, *token_args("--tenant", world.T_CONTOSO))


def test_a_guest_gets_an_entry_per_tenant_the_same(sim: Simulator, pair: Pair) -> None:
    sim.add_guest(world.ALICE, world.T_FABRIKAM)
    pair.login_user(world.ALICE)
    profile = same_profiles(pair)
    assert [(s["tenantId"], s["isDefault"]) for s in profile["subscriptions"]] == [
        (world.T_CONTOSO, True),
        (world.T_FABRIKAM, False),
    ]
    token = same_token_shape(pair, "--tenant", world.T_FABRIKAM)
    assert token["accessToken"]["tid"] == world.T_FABRIKAM


def test_service_principals_the_same(pair: Pair, monkeypatch: pytest.MonkeyPatch) -> None:
    pair.login(
        "--service-principal",
        "-u",
        world.SP_CONTOSO_SECRET,
        "-p",
        world.SP_CONTOSO_SECRET_VALUE,
        "--tenant",
        world.T_CONTOSO,
        "--allow-no-subscriptions",
    )
    profile = same_profiles(pair)
    assert [s["user"] for s in profile["subscriptions"]] == [
        {"name": world.SP_CONTOSO_SECRET, "type": "servicePrincipal"}
    ]
    # The backend keys nothing on disk by a service principal: it names no account.
    assert pair.signed_in_accounts(monkeypatch) == {"fake": None, "real": None}

    token = same_token_shape(pair, "--tenant", world.T_CONTOSO)
    assert (token["accessToken"]["idtyp"], token["accessToken"]["appid"]) == (
        "app",
        world.SP_CONTOSO_SECRET,
    )
    text = same_error(pair, *token_args("--tenant", world.T_FABRIKAM))
    assert "AADSTS700016" in text

    for name, done in pair.run("logout").items():
        assert done.returncode == 0, f"{name}: {done.stderr}"
    assert same_profiles(pair) == {"subscriptions": []}
