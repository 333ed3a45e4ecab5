"""Azure DevOps as it is now: an organisation whose "Restrict personal access token creation"
policy refuses the session-token exchange, Entra tokens handed out instead (and never written by
us), the organisation's own narrow-scope client, and a dropped exchange survived."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from .helpers import run
from .scenarios import (
    bin_path,
    feed_accepts,
    importable,
    keyring,
    one_line_message,
    pip_install,
    signed_in,
    spoken,
    twine_upload,
    with_user,
)
from .sim import world
from .sim.azcli import AZ_BIN_DIR
from .sim.jwts import unverified
from .sim.server import Simulator
from .sim.wheels import build_wheel

RESOURCE = "499b84ac-1321-427f-aa17-267ca6975798"
POLICY = "DisablePatCreationPolicyViolation"


def lookup(env: dict[str, str], url: str = world.SHARED_INDEX) -> str:
    done = keyring(env, "get", url, "VssSessionToken")
    assert done.returncode == 0, done.stderr
    assert spoken(done.stderr) == [], done.stderr
    return done.stdout.strip()


def claims(token: str) -> dict[str, object]:
    shaped = unverified(token)
    assert shaped is not None, "not a JWT"
    found: dict[str, object] = shaped[1]
    return found


def files_we_write(env: dict[str, str]) -> list[Path]:
    """Every file in our cache and data directories, and the log."""
    roots = [
        Path(env["XDG_CACHE_HOME"]) / "artifacts-keyring-nofuss",
        Path(env["XDG_DATA_HOME"]) / "artifacts-keyring-nofuss",
    ]
    found = [p for root in roots if root.exists() for p in root.rglob("*") if p.is_file()]
    log = env.get("ARTIFACTS_CREDENTIALPROVIDER_LOG_PATH")
    return found + ([Path(log)] if log and Path(log).exists() else [])


def assert_written_nowhere(env: dict[str, str], *tokens: str) -> None:
    for path in files_we_write(env):
        text = path.read_bytes()
        for token in tokens:
            assert token.encode() not in text, f"a bearer token in {path}"


@pytest.fixture
def policy_org(sim: Simulator, client_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """alice, signed in with az, in contoso with the policy on; every step logged to a file."""
    sim.restrict_pat_creation("contoso")
    return dict(
        signed_in(client_env),
        FAKE_AZ_CALLS=str(tmp_path / "az-calls"),
        ARTIFACTS_CREDENTIALPROVIDER_LOG_PATH=str(tmp_path / "lookups.log"),
    )


def az_runs(env: dict[str, str]) -> int:
    path = Path(env["FAKE_AZ_CALLS"])
    return len(path.read_text().splitlines()) if path.exists() else 0


# --- the fallback, and what is remembered -----------------------------------------------------


@pytest.mark.parametrize(
    ("status", "style"),
    [(403, "type-key"), (400, "type-key"), (403, "error-name"), (400, "message")],
)
def test_the_policy_refusal_hands_out_the_entra_token_and_is_remembered(
    sim: Simulator, client_env: dict[str, str], tmp_path: Path, status: int, style: str
) -> None:
    sim.restrict_pat_creation("contoso", status=status, style=style)
    env = dict(
        signed_in(client_env),
        FAKE_AZ_CALLS=str(tmp_path / "az-calls"),
        ARTIFACTS_CREDENTIALPROVIDER_LOG_PATH=str(tmp_path / "lookups.log"),
    )
    token = lookup(env)
    assert claims(token)["upn"] == world.ALICE  # the user's Entra token itself
    assert feed_accepts(sim, world.SHARED_INDEX, token) == 200
    assert [r.status for r in sim.requests(kind="exchange")] == [status]
    # A later process: no refused round trip, and no az either (az's own cache has the token).
    runs = az_runs(env)
    again = lookup(env)
    assert claims(again)["upn"] == world.ALICE
    assert sim.count("exchange") == 1
    assert az_runs(env) == runs
    assert_written_nowhere(env, token, again)
    log = Path(env["ARTIFACTS_CREDENTIALPROVIDER_LOG_PATH"]).read_text(encoding="utf-8")
    assert "does not let users mint session tokens" in log  # the one debug line that says why


def test_pip_uv_and_twine_work_as_an_az_user_in_the_organisation(
    sim: Simulator, policy_org: dict[str, str], tmp_path: Path
) -> None:
    env = policy_org
    pip_target = tmp_path / "pip"
    done = run(
        pip_install(
            env, pip_target, world.SHARED_INDEX, "--keyring-provider", "subprocess", "tinyfeedpkg"
        ),
        env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert importable(pip_target, env, "tinyfeedpkg") is not None
    uv_target = tmp_path / "uv"
    done = run(
        [
            bin_path("uv"),
            "pip",
            "install",
            "--no-cache",
            "--target",
            str(uv_target),
            "--keyring-provider",
            "subprocess",
            "--index-url",
            with_user(world.SHARED_INDEX, "VssSessionToken"),
            "tinyfeedpkg",
        ],
        env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    wheel = build_wheel(tmp_path / "dist", "policypkg", "1.0.0")
    done = twine_upload(env, wheel)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "policypkg-1.0.0-py3-none-any.whl" in sim.uploaded("shared")
    uploads = sim.requests(kind="upload")
    assert uploads and {r.credential_kind for r in uploads} == {"entra-user"}
    # Refused once for reading and once for publishing, then remembered for the identity.
    assert len(sim.requests(kind="exchange")) == 1
    assert_written_nowhere(env, *(s for s in sim.issued_secrets() if s.startswith("eyJ")))


def test_session_mode_fails_there_and_says_what_to_set(
    sim: Simulator, policy_org: dict[str, str]
) -> None:
    env = dict(policy_org, ARTIFACTS_KEYRING_NOFUSS_USER_TOKEN="session")
    done = keyring(env, "get", world.SHARED_INDEX, "VssSessionToken")
    assert done.returncode == 1
    assert done.stdout == ""
    line = one_line_message(done.stderr)
    assert POLICY in line
    assert "ARTIFACTS_KEYRING_NOFUSS_USER_TOKEN=auto" in line


def test_the_official_switch_means_entra_tokens_always(
    sim: Simulator, client_env: dict[str, str]
) -> None:
    env = dict(signed_in(client_env), ARTIFACTS_CREDENTIALPROVIDER_RETURN_ENTRA_TOKENS="true")
    token = lookup(env, world.SHARED_UPLOAD)
    assert claims(token)["upn"] == world.ALICE
    assert sim.count("exchange") == 0  # no policy here, and yet no exchange


def test_a_dropped_exchange_connection_is_retried(
    sim: Simulator, client_env: dict[str, str]
) -> None:
    env = signed_in(client_env)
    sim.fail("vssps.dev.azure.com", "SessionTokens", ["reset"])
    token = lookup(env)
    assert [r.fault for r in sim.requests(kind="exchange")] == ["reset", None]
    assert feed_accepts(sim, world.SHARED_INDEX, token) == 200


def test_doctor_names_the_policy_and_what_pip_gets(
    sim: Simulator, policy_org: dict[str, str]
) -> None:
    done = run(["ak-nofuss", "doctor", world.SHARED_INDEX, "--json"], policy_org)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    steps = {s["name"]: s for s in report["steps"]}
    assert steps["exchange"]["status"] == "warn"
    assert POLICY in steps["exchange"]["detail"]
    assert "ARTIFACTS_KEYRING_NOFUSS_CLIENT_ID" in (steps["exchange"]["fix"] or "")
    assert steps["credential"]["detail"].startswith("a user's Entra token for " + world.ALICE)
    assert "user_impersonation" in steps["credential"]["detail"]


def test_doctor_says_global_pats_ended_when_a_handed_over_pat_is_refused(
    sim: Simulator, client_env: dict[str, str]
) -> None:
    env = dict(client_env, ARTIFACTS_KEYRING_NOFUSS_TOKEN="oldglobalpat0123456789abcdefghijklmnopq")
    done = run(["ak-nofuss", "doctor", world.SHARED_INDEX, "--json"], env)
    assert done.returncode == 1
    feed = next(s for s in json.loads(done.stdout)["steps"] if s["name"] == "feed")
    assert feed["status"] == "fail"
    assert "2026-12-01" in feed["detail"]
    assert "Packaging (Read)" in feed["fix"]


# --- least privilege without session tokens: the organisation's own client ---------------------


def sign_in_with(sim: Simulator, env: dict[str, str], client: str, *args: str) -> dict[str, str]:
    paths = [p for p in env["PATH"].split(os.pathsep) if p != str(AZ_BIN_DIR)]
    env = dict(env, PATH=os.pathsep.join(paths), ARTIFACTS_KEYRING_NOFUSS_CLIENT_ID=client)
    sim.set_device_flow(user=world.ALICE, approve_after_polls=1, interval=1)
    done = run(["ak-nofuss", "login", "--device-code", world.SHARED_INDEX, *args], env)
    assert done.returncode == 0, done.stderr
    return env


def test_the_packaging_client_installs_but_cannot_publish(
    sim: Simulator, client_env: dict[str, str], tmp_path: Path
) -> None:
    sim.restrict_pat_creation("contoso")
    env = sign_in_with(sim, client_env, world.CONTOSO_PACKAGING_CLIENT_ID)
    token = lookup(env)
    assert claims(token)["scp"] == "vso.packaging"  # never user_impersonation, never .default
    assert sim.count("exchange") == 0  # narrow already: nothing to exchange
    target = tmp_path / "pip"
    done = run(
        pip_install(
            env, target, world.SHARED_INDEX, "--keyring-provider", "subprocess", "tinyfeedpkg"
        ),
        env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    status = run(["ak-nofuss", "status"], env)
    assert f"{RESOURCE}/vso.packaging" in status.stdout
    assert f"{RESOURCE}/user_impersonation" not in status.stdout
    # Publishing needs vso.packaging_write, which this client was never granted.
    wheel = build_wheel(tmp_path / "dist", "narrowpkg", "1.0.0")
    done = twine_upload(env, wheel)
    assert done.returncode != 0
    assert "narrowpkg-1.0.0-py3-none-any.whl" not in sim.uploaded("shared")
    assert "vso.packaging_write" in done.stdout + done.stderr


def test_the_publishing_client_publishes_with_the_write_scope(
    sim: Simulator, client_env: dict[str, str], tmp_path: Path
) -> None:
    env = sign_in_with(sim, client_env, world.CONTOSO_PUBLISHING_CLIENT_ID)
    token = lookup(env, world.SHARED_UPLOAD)
    assert "vso.packaging_write" in str(claims(token)["scp"]).split()
    assert "user_impersonation" not in str(claims(token)["scp"]).split()
    wheel = build_wheel(tmp_path / "dist", "widepkg", "1.0.0")
    done = twine_upload(env, wheel)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "widepkg-1.0.0-py3-none-any.whl" in sim.uploaded("shared")
