"""The fake az (sim/bin/az) against the real one (.e2e/azure-cli), on the same inputs.

The fake stays for what the real one cannot be made to do (hang, crash, be slow on demand), so
it must not drift from it in what the backend reads: `az account get-access-token`'s JSON
(accessToken, expires_on, expiresOn, tenant), its error text when nobody is signed in or Entra
refuses, azureProfile.json after each kind of `az login` and `az logout` (which account is
the default one, and whether it is a user), and msal_token_cache.json (its file mode and
layout, its sections, every entry's key and fields, the targets, realms and client ids of the
access tokens), including when `get-access-token` answers from it without asking Entra. Each
step runs both, each in a home of its own."""

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
# Fields of msal's cache entries that differ on every run: secrets and times (strings of
# seconds since the epoch).
CACHE_SECRETS = ("secret",)
CACHE_TIMES = ("cached_at", "expires_on", "extended_expires_on", "last_modification_time")
CACHE_FILE = "msal_token_cache.json"


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

    def caches(self) -> dict[str, Any]:
        """Each az's msal_token_cache.json with secrets and times replaced by what they are,
        None where there is none."""
        found: dict[str, Any] = {}
        for name, env in self.envs.items():
            path = Path(env["HOME"]) / ".azure" / CACHE_FILE
            found[name] = cache_shape(path) if path.exists() else None
        return found

    def tokens_asked(self, sim: Simulator, *args: str) -> dict[str, int]:
        """Run the same command with each az, one after the other: how many token requests
        each sent to Entra."""
        asked = {}
        for name in ("fake", "real"):
            before = sim.count("token")
            if name == "fake":
                done = fake_az(self.envs[name], *args)
            else:
                done = realaz.az_quiet(self.envs[name], *args)
            assert done.returncode == 0, f"{name}: {done.stderr}"
            asked[name] = sim.count("token") - before
        return asked

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


def cache_shape(path: Path) -> dict[str, Any]:
    raw = path.read_bytes()
    assert path.stat().st_mode & 0o777 == 0o600
    assert raw.startswith(b'{\n    "')  # plaintext JSON, indent 4, no BOM
    data = json.loads(raw)
    shaped: dict[str, Any] = {}
    for section, entries in data.items():
        shaped[section] = {}
        for key, entry in entries.items():
            fields = dict(entry)
            for name in CACHE_SECRETS:
                if name in fields:
                    assert isinstance(fields[name], str) and fields[name]
                    fields[name] = "<secret>"
            for name in CACHE_TIMES:
                if name in fields:
                    assert isinstance(fields[name], str) and fields[name].isdigit()
                    fields[name] = "<time>"
            shaped[section][key] = fields
    # The order too: msal adds sections as it first fills them.
    shaped["<sections>"] = list(data)
    return shaped


def same_caches(pair: Pair) -> Any:
    caches = pair.caches()
    assert caches["fake"] == caches["real"]
    return caches["real"]


def access_tokens(cache: dict[str, Any]) -> list[tuple[str, str, str, str | None]]:
    """(client id, realm, target, home account id) of each access token, sorted."""
    return sorted(
        (e["client_id"], e["realm"], e["target"], e["home_account_id"])
        for e in cache["AccessToken"].values()
    )


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
    alice = f"{world.USERS[world.ALICE].oid}.{world.T_CONTOSO}"
    arm = "https://management.core.windows.net//.default"
    arm_target = f"{arm} https://management.core.windows.net//user_impersonation"
    cache = same_caches(pair)
    assert cache["<sections>"] == [
        "AccessToken",
        "Account",
        "IdToken",
        "RefreshToken",
        "AppMetadata",
    ]
    # The password grant at organizations, then a refresh-token grant for the tenant.
    assert access_tokens(cache) == [
        (world.AZURE_CLI_CLIENT_ID, realm, arm_target, alice)
        for realm in sorted([world.T_CONTOSO, "organizations"])
    ]
    assert [
        (a["realm"], a["username"], a["account_source"]) for a in cache["Account"].values()
    ] == [("organizations", world.ALICE, "password")]

    token = same_token_shape(pair, "--tenant", world.T_CONTOSO)
    assert token["accessToken"]["upn"] == world.ALICE
    assert token["tenant"] == world.T_CONTOSO
    assert "subscription" not in token
    devops = (
        world.AZURE_CLI_CLIENT_ID,
        world.T_CONTOSO,
        f"{world.DEVOPS_SCOPE} {world.DEVOPS_RESOURCE}/user_impersonation",
        alice,
    )
    assert devops in access_tokens(same_caches(pair))
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

    bob = f"{world.USERS[world.BOB].oid}.{world.T_CONTOSO}"
    both = same_caches(pair)
    assert {a["username"] for a in both["Account"].values()} == {world.ALICE, world.BOB}
    assert {home for *_, home in access_tokens(both)} == {alice, bob}

    for name, done in pair.run("logout").items():
        assert done.returncode == 0, f"{name}: {done.stderr}"
    assert same_profiles(pair) == {"subscriptions": []}
    assert pair.signed_in_accounts(monkeypatch) == {"fake": None, "real": None}
    # Bob's tokens and account are gone, Alice's stay: az logout signs out the current one.
    left = same_caches(pair)
    assert {a["username"] for a in left["Account"].values()} == {world.ALICE}
    assert {home for *_, home in access_tokens(left)} == {alice}
    same_error(pair, *token_args("--tenant", world.T_CONTOSO))
    for name, done in pair.run("account", "clear").items():
        assert done.returncode == 0, f"{name}: {done.stderr}"
    assert pair.caches() == {"fake": None, "real": None}


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
    realms = [
        realm
        for _, realm, target, _ in access_tokens(same_caches(pair))
        if target.startswith(world.DEVOPS_RESOURCE)
    ]
    assert realms == [world.T_FABRIKAM]


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
    cache = same_caches(pair)
    assert cache["<sections>"] == ["AccessToken", "AppMetadata"]
    assert access_tokens(cache) == [
        (world.SP_CONTOSO_SECRET, world.T_CONTOSO, target, None)
        for target in (world.DEVOPS_SCOPE, "https://management.core.windows.net//.default")
    ]
    text = same_error(pair, *token_args("--tenant", world.T_FABRIKAM))
    assert "AADSTS700016" in text

    for name, done in pair.run("logout").items():
        assert done.returncode == 0, f"{name}: {done.stderr}"
    assert same_profiles(pair) == {"subscriptions": []}
    assert access_tokens(same_caches(pair)) == []


def test_tokens_come_from_the_cache_the_same(sim: Simulator, pair: Pair) -> None:
    """get-access-token answers from msal's cache while the token has five minutes left, for
    the same account, tenant and resource, and asks Entra otherwise: the same requests, the
    same cache after them."""
    pair.login_user(world.ALICE)
    first = token_args("--tenant", world.T_CONTOSO)
    assert pair.tokens_asked(sim, *first) == {"fake": 1, "real": 1}
    assert pair.tokens_asked(sim, *first) == {"fake": 0, "real": 0}
    # The subscription's tenant is the same tenant; --scope names the same scope.
    assert pair.tokens_asked(sim, *token_args()) == {"fake": 0, "real": 0}
    assert pair.tokens_asked(
        sim, "account", "get-access-token", "--scope", world.DEVOPS_SCOPE, "--output", "json"
    ) == {"fake": 0, "real": 0}
    # A domain names the tenant: msal files tokens under the tenant's id, and finds them.
    assert pair.tokens_asked(sim, *token_args("--tenant", "contoso.com")) == {"fake": 0, "real": 0}
    # Another resource is another token.
    arm = ("account", "get-access-token", "--resource", world.ARM_RESOURCE, "--output", "json")
    assert pair.tokens_asked(sim, *arm) == {"fake": 0, "real": 0}  # az login fetched it
    cache = same_caches(pair)
    (refresh,) = cache["RefreshToken"].values()
    assert refresh["target"] == (
        "https://management.core.windows.net//.default "
        "https://management.core.windows.net//user_impersonation"
    )

    # Under five minutes left: msal refreshes, every time.
    sim.set_token_lifetime(user=240)
    for name, done in pair.run("logout").items():
        assert done.returncode == 0, f"{name}: {done.stderr}"
    pair.login_user(world.ALICE)
    assert pair.tokens_asked(sim, *first) == {"fake": 1, "real": 1}
    assert pair.tokens_asked(sim, *first) == {"fake": 1, "real": 1}
    same_caches(pair)
