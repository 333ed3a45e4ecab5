"""One lookup, one truth: each token under the key it was minted for, every wait inside the
deadline, every request with exactly the credential we chose, and doctor on the lookup's own
path. Each case here failed before the core was rebuilt around one key and one chain.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
from filelock import FileLock

from .helpers import run
from .scenarios import (
    REPO,
    as_service_principal,
    feed_accepts,
    keyring,
    one_line_message,
    signed_in,
)
from .sim import world
from .sim.server import Simulator

KEYRING_PYTHON = REPO / ".e2e" / "uv-tools" / "keyring" / "bin" / "python"
KEYRING = REPO / ".e2e" / "tools" / "bin" / "keyring"
DEBUG_PREFIX = "artifacts-keyring-nofuss [debug]: "


def _claims(token: str) -> dict[str, object]:
    payload = token.split(".")[1]
    claims: dict[str, object] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return claims


def _principal(sim: Simulator, url: str, token: str) -> str | None:
    """Whom the feed takes `token` for (the simulator's record of the read)."""
    assert feed_accepts(sim, url, token) == 200
    return sim.requests(kind="index")[-1].principal


def _in_one_process(
    env: Mapping[str, str], tmp_path: Path, steps: list[str], timeout: float = 120
) -> list[str | None]:
    """One long-lived Python process (pip in import mode, poetry, pdm) asking keyring several
    times; a step "az-login USER" runs `az login` in between. The passwords go to a private
    file, not to any output (they are credentials)."""
    out = tmp_path / "passwords.json"
    passwords = {u.upn: u.password for u in world.USERS.values()}
    script = f"""
import json, subprocess, keyring
answers = []
for step in {steps!r}:
    if step.startswith("az-login "):
        user = step.split(" ", 1)[1]
        login = ["az", "login", "--username", user, "--password", {passwords!r}[user],
                 "--allow-no-subscriptions"]
        subprocess.run(login, check=True, capture_output=True)
        continue
    answers.append(keyring.get_password(step, "VssSessionToken"))
with open({str(out)!r}, "w") as handle:
    json.dump(answers, handle)
"""
    done = subprocess.run(
        [str(KEYRING_PYTHON), "-c", script],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout == ""
    answers: list[str | None] = json.loads(out.read_text(encoding="utf-8"))
    out.unlink()
    return answers


# --- 1. one process, two feeds, two identities ----------------------------------------------------


def test_two_feeds_mapped_to_two_managed_identities_in_one_process(
    sim: Simulator, client_env: dict[str, str], tmp_path: Path
) -> None:
    sim.enable_managed_identity()
    document = {
        "endpointCredentials": [
            {"endpoint": world.SHARED_INDEX, "clientId": "system"},
            {"endpoint": world.TEAM_INDEX, "clientId": world.MI_USER_CLIENT_ID},
        ]
    }
    env = dict(
        client_env,
        ARTIFACTS_CREDENTIALPROVIDER_FEED_ENDPOINTS=json.dumps(document),
        # Only the per-feed identities: the machine's own managed identity would answer for any
        # feed through azure-identity, which is not what this is about.
        ARTIFACTS_KEYRING_NOFUSS_PROVIDER="feed_endpoints",
    )
    # The legacy host of the same organisation and tenant has no entry of its own.
    shared, team, unlisted = _in_one_process(
        env, tmp_path, [world.SHARED_INDEX, world.TEAM_INDEX, world.LEGACY_SHARED_INDEX]
    )
    assert shared is not None and team is not None
    assert _claims(shared)["appid"] == world.MI_SYSTEM_CLIENT_ID
    assert _claims(team)["appid"] == world.MI_USER_CLIENT_ID  # the user-assigned one was asked
    assert unlisted is None, "a feed with no entry got another feed's token"
    asked = [r.client_id for r in sim.requests(kind="token") if r.host == world.IMDS_ADDRESS]
    assert asked == [world.MI_SYSTEM_CLIENT_ID, world.MI_USER_CLIENT_ID]


# --- 2. az login as someone else in a long-lived process -----------------------------------------


def test_az_login_as_someone_else_inside_a_long_lived_process(
    sim: Simulator, client_env: dict[str, str], tmp_path: Path
) -> None:
    env = signed_in(client_env, world.ALICE)
    alices, bobs = _in_one_process(
        env, tmp_path, [world.SHARED_UPLOAD, f"az-login {world.BOB}", world.SHARED_UPLOAD]
    )
    assert alices is not None and bobs is not None
    assert alices != bobs, "bob was handed alice's token"
    assert _principal(sim, world.SHARED_INDEX, alices) == world.ALICE
    assert _principal(sim, world.SHARED_INDEX, bobs) == world.BOB
    exchanged_for = [r.principal for r in sim.requests(kind="exchange")]
    assert exchanged_for == [world.ALICE, world.BOB]
    # A later process signed in as bob is handed bob's token from disk, never alice's.
    done = keyring(env, "get", world.SHARED_UPLOAD, "VssSessionToken")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == bobs, "the later process was not handed bob's token"
    assert sim.count("exchange") == 2


# --- 3. declared hosts get handed-over tokens only ------------------------------------------------


def test_a_declared_host_never_receives_a_token_minted_from_the_sign_in(
    sim: Simulator, client_env: dict[str, str]
) -> None:
    host = "evil.example.com"
    url = f"https://{host}/contoso/_packaging/shared/pypi/simple/"
    contoso = {
        "WWW-Authenticate": f"Bearer authorization_uri=https://login.microsoftonline.com/{world.T_CONTOSO}",
        "X-VSS-ResourceTenant": world.T_CONTOSO,
        "X-VSS-AuthorizationEndpoint": "https://vssps.dev.azure.com/contoso/",
    }
    sim.fail(host, r"/contoso/", [(401, contoso)] * 6)
    env = dict(signed_in(client_env), ARTIFACTS_CREDENTIALPROVIDER_VSTS_HOSTS=host)
    for _ in range(2):  # and no second lookup sends anything there either
        done = keyring(env, "get", url, "VssSessionToken")
        assert done.returncode == 1, done.stderr  # (never a repr that would show stdout)
        assert done.stdout == "", "a credential was handed out for the declared host"
        line = one_line_message(done.stderr)
        assert "ARTIFACTS_CREDENTIALPROVIDER_VSTS_HOSTS" in line
        assert "only tokens handed over" in line
    assert sim.count("exchange") == 0
    assert [r for r in sim.requests() if r.host == host] == []  # not even a discovery
    # What it does get: a token handed over for it.
    pat = sim.add_pat("contoso")
    handed = dict(
        env,
        ARTIFACTS_CREDENTIALPROVIDER_EXTERNAL_FEED_ENDPOINTS=json.dumps(
            {"endpointCredentials": [{"endpoint": url, "password": pat}]}
        ),
    )
    done = keyring(handed, "get", url, "VssSessionToken")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == pat, "not the handed-over PAT"


# --- 4. and 5. every wait inside the deadline ----------------------------------------------------


def test_a_dripping_answer_to_the_warm_check_is_bounded_by_the_deadline(
    sim: Simulator, client_env: dict[str, str]
) -> None:
    env = dict(signed_in(client_env), ARTIFACTS_KEYRING_NOFUSS_TIMEOUT="5")
    first = keyring(env, "get", world.SHARED_INDEX, "VssSessionToken")
    assert first.returncode == 0, first.stderr
    sim.fail("pkgs.dev.azure.com", r"/simple/", [("drip", 1, "all")] * 3)
    started = time.monotonic()
    warm = keyring(env, "get", world.SHARED_INDEX, "VssSessionToken", timeout=60)
    elapsed = time.monotonic() - started
    assert elapsed < 9, f"the warm lookup took {elapsed:.1f} s"
    # The feed could not be asked in time: the cached token is handed out as it is.
    assert warm.returncode == 0, warm.stderr
    assert warm.stdout.strip() == first.stdout.strip(), "not the cached token"


def _cache_dir(env: Mapping[str, str]) -> Path:
    return Path(env["XDG_CACHE_HOME"]) / "artifacts-keyring-nofuss"


def test_a_held_cache_lock_costs_time_within_the_deadline_not_the_install(
    sim: Simulator, client_env: dict[str, str]
) -> None:
    env = dict(signed_in(client_env), ARTIFACTS_KEYRING_NOFUSS_TIMEOUT="5")
    directory = _cache_dir(env)
    directory.mkdir(parents=True, mode=0o700)
    digest = hashlib.sha256(b"sessions.json").hexdigest()[:16]
    with FileLock(str(directory / f"{digest}.lock")):
        started = time.monotonic()
        done = keyring(env, "get", world.SHARED_INDEX, "VssSessionToken", timeout=60)
        elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert elapsed < 9, f"the cold lookup took {elapsed:.1f} s behind a held lock"
    assert feed_accepts(sim, world.SHARED_INDEX, done.stdout.strip()) == 200


# --- 6. ~/.netrc rewrites nothing ----------------------------------------------------------------


def _plant_netrc(env: Mapping[str, str]) -> None:
    netrc = Path(env["HOME"]) / ".netrc"
    netrc.write_text(
        "machine pkgs.dev.azure.com login netrc-user password netrc-secret-0001\n"
        "default login netrc-default password netrc-secret-0002\n",
        encoding="utf-8",
    )
    netrc.chmod(0o600)


def test_netrc_neither_authenticates_discovery_nor_replaces_the_bearer(
    sim: Simulator, client_env: dict[str, str]
) -> None:
    env = signed_in(client_env)
    _plant_netrc(env)
    done = keyring(env, "get", world.SHARED_INDEX, "VssSessionToken")
    assert done.returncode == 0, done.stderr
    (discovery,) = sim.requests(kind="discovery")
    assert discovery.auth_scheme == "none"
    (exchange,) = sim.requests(kind="exchange")
    assert (exchange.auth_scheme, exchange.credential_kind) == ("bearer", "entra-user")


def test_netrc_adds_nothing_to_a_service_principals_token_request(
    sim: Simulator, client_env: dict[str, str]
) -> None:
    env = as_service_principal(client_env)
    _plant_netrc(env)
    done = keyring(env, "get", world.SHARED_INDEX, "VssSessionToken")
    assert done.returncode == 0, done.stderr
    entra = [r for r in sim.requests(kind="token") if r.host in world.LOGIN_HOSTS]
    assert entra and all(r.auth_scheme == "none" for r in entra)


# --- 7. no home directory -----------------------------------------------------------------------


def test_a_handed_over_token_works_without_a_home_directory(client_env: dict[str, str]) -> None:
    """A container run as an arbitrary uid: no HOME, no passwd entry (a nested user namespace
    maps us to uid 12345, which has none). keyring itself needs PYTHON_KEYRING_BACKEND then."""
    env = {
        "PATH": client_env["PATH"],
        "PYTHON_KEYRING_BACKEND": "artifacts_keyring_nofuss.backend.AzureArtifactsBackend",
        "ARTIFACTS_KEYRING_NOFUSS_TOKEN": "handed-over-token-without-home-0001",
        "SSL_CERT_FILE": client_env["SSL_CERT_FILE"],
    }
    done = subprocess.run(
        [
            "unshare",
            "--user",
            "--map-user=12345",
            "--map-group=12345",
            "--",
            str(KEYRING),
            "get",
            world.SHARED_INDEX,
            "VssSessionToken",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "handed-over-token-without-home-0001"
    assert done.stderr == ""


# --- 8. doctor walks the lookup's own path -------------------------------------------------------

_DEBUG_STEP = re.compile(
    r"^(?:(?P<stage>discovery|settings|cache|exchange|probe)(?: \((?P<name>[a-z_]+)\))?"
    r"|(?P<source>[a-z_]+)): (?P<outcome>applies|applied|does not apply|failed|refused|"
    r"expired|skipped|stopped|info|fell back): "
)
_SAME = {"applies": "applied", "does not apply": "n/a", "not here": "n/a", "unavailable": "n/a"}


def lookup_steps(stderr: str) -> list[tuple[str, str, str]]:
    """(stage, name, outcome) of each step, from a lookup's debug output."""
    found = []
    for line in stderr.splitlines():
        if not line.startswith(DEBUG_PREFIX):
            continue
        match = _DEBUG_STEP.match(line[len(DEBUG_PREFIX) :])
        if match is None:
            continue
        if match["source"] is not None:
            stage, name = "source", match["source"]
        else:
            stage, name = match["stage"], match["name"] or match["stage"]
        found.append((stage, name, _SAME.get(match["outcome"], match["outcome"])))
    return found


def doctor_steps(report: dict[str, object]) -> list[tuple[str, str, str]]:
    trace = report["trace"]
    assert isinstance(trace, list)
    return [(s["stage"], s["name"], _SAME.get(s["outcome"], s["outcome"])) for s in trace]


def _pipeline_elsewhere(sim: Simulator, env: dict[str, str]) -> dict[str, str]:
    return dict(signed_in(env), **sim.pipeline_env("fabrikam", sim.add_pipeline_token("fabrikam")))


def _expired_token(sim: Simulator, env: dict[str, str]) -> dict[str, str]:
    expired = sim.mint_user_token(world.ALICE, lifetime=60, issued_at=int(time.time()) - 7200)
    return dict(signed_in(env), ARTIFACTS_KEYRING_NOFUSS_TOKEN=expired)


def _hostile(sim: Simulator, env: dict[str, str]) -> dict[str, str]:
    sim.override_discovery("contoso", {"X-VSS-AuthorizationEndpoint": "https://evil.example.com/"})
    return signed_in(env)


def _no_access(sim: Simulator, env: dict[str, str]) -> dict[str, str]:
    sim.grant(world.ALICE, "contoso", None)
    return signed_in(env)


def _declared(sim: Simulator, env: dict[str, str]) -> dict[str, str]:
    return dict(signed_in(env), ARTIFACTS_CREDENTIALPROVIDER_VSTS_HOSTS=world.ONPREM_HOST)


SCENARIOS: dict[str, tuple[Callable[[Simulator, dict[str, str]], dict[str, str]], str]] = {
    "signed in": (lambda sim, env: signed_in(env), world.SHARED_INDEX),
    "publishing": (lambda sim, env: signed_in(env), world.SHARED_UPLOAD),
    "not signed in": (lambda sim, env: dict(env), world.SHARED_INDEX),
    "wrong tenant": (lambda sim, env: signed_in(env), world.RELEASES_INDEX),
    "no access": (_no_access, world.SHARED_INDEX),
    "expired handed-over token": (_expired_token, world.SHARED_INDEX),
    "pipeline of another organisation": (_pipeline_elsewhere, world.SHARED_INDEX),
    "service principal": (lambda sim, env: as_service_principal(env), world.SHARED_INDEX),
    "hostile discovery": (_hostile, world.SHARED_INDEX),
    "declared host": (_declared, world.ONPREM_INDEX),
    "forced order": (
        lambda sim, env: dict(
            signed_in(env), ARTIFACTS_KEYRING_NOFUSS_PROVIDER="codespaces,azure_cli"
        ),
        world.SHARED_INDEX,
    ),
    "unknown provider": (
        lambda sim, env: dict(env, ARTIFACTS_KEYRING_NOFUSS_PROVIDER="devicecode"),
        world.SHARED_INDEX,
    ),
}


@pytest.mark.parametrize("cache", ["cold", "warm"])
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_doctor_and_the_lookup_ask_the_same_sources_and_agree(
    sim: Simulator, client_env: dict[str, str], scenario: str, cache: str
) -> None:
    stage, url = SCENARIOS[scenario]
    env = dict(stage(sim, client_env), ARTIFACTS_KEYRING_NOFUSS_DEBUG="1")
    if cache == "cold":
        env["ARTIFACTS_KEYRING_NOFUSS_CACHE"] = "0"
    else:
        keyring(env, "get", url, "VssSessionToken")  # what pip's last run left behind
    looked = keyring(env, "get", url, "VssSessionToken")
    diagnosed = run(["ak-nofuss", "doctor", url, "--json"], env, timeout=120)
    report = json.loads(diagnosed.stdout)
    assert doctor_steps(report) == lookup_steps(looked.stderr), (
        looked.stderr + "\n" + diagnosed.stdout
    )
    assert doctor_steps(report), "the comparison must compare something"
    credential = [s for s in report["steps"] if s["name"] == "credential"]
    assert (looked.returncode == 0) == bool(credential and credential[0]["status"] == "ok")
    if looked.returncode != 0:
        identity = [s for s in report["steps"] if s["name"] == "identity"]
        assert identity and identity[0]["status"] == "fail"
