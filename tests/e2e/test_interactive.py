"""The interactive sign-in with no az: msal's device code against the simulated Entra, offered
on the controlling terminal (pip and uv hide or hold back the keyring's stderr), never without
one, and silent afterwards from msal's cache and the sign-in record.

`helpers.run` starts every client in a session of its own with no controlling terminal, as in
CI; `scenarios.run_with_terminal` gives the client a pty as its controlling terminal while its
stdout and stderr stay pipes, as when pip or uv runs `keyring` for a person at a terminal.
"""

from __future__ import annotations

import json
import os
import re
import stat
import time
from pathlib import Path

import pytest

from .helpers import run
from .scenarios import (
    bin_path,
    feed_accepts,
    importable,
    one_line_message,
    run_with_terminal,
    spoken,
    with_user,
)
from .sim import world
from .sim.azcli import AZ_BIN_DIR
from .sim.server import Simulator

# The simulated Entra's device code message (what Entra says, and msal passes on).
DEVICE_MESSAGE = re.compile(
    r"To sign in, use a web browser to open the page https://microsoft\.com/devicelogin and "
    r"enter the code (?P<code>[A-Z0-9]{9}) to authenticate\."
)
DATA_DIR = "artifacts-keyring-nofuss"
RECORD_FIELDS = {"home_account_id", "username", "tenant", "authority", "client_id", "scopes"}


@pytest.fixture
def no_az(client_env: dict[str, str]) -> dict[str, str]:
    """A machine without the Azure CLI: the interactive sign-in is the only way in."""
    path = [p for p in client_env["PATH"].split(os.pathsep) if p != str(AZ_BIN_DIR)]
    return dict(client_env, PATH=os.pathsep.join(path))


def keyring_get(url: str = world.SHARED_INDEX) -> list[str]:
    return ["keyring", "get", url, "VssSessionToken"]


def data_dir(env: dict[str, str]) -> Path:
    return Path(env["XDG_DATA_HOME"]) / DATA_DIR


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def entra_tokens(sim: Simulator) -> int:
    return len([r for r in sim.requests(kind="token") if r.host in world.LOGIN_HOSTS])


# --- no terminal, or prompts off: fail at once, naming the command that signs in --------------


@pytest.mark.parametrize("noninteractive", [False, True], ids=["no-terminal", "noninteractive"])
def test_without_a_terminal_the_lookup_fails_at_once_naming_ak_nofuss_login(
    sim: Simulator, no_az: dict[str, str], noninteractive: bool
) -> None:
    env = dict(no_az)
    if noninteractive:
        env["ARTIFACTS_KEYRING_NONINTERACTIVE_MODE"] = "true"
    sim.set_device_flow(user=world.BOB, approve_after_polls=2, interval=1)
    started = time.monotonic()
    done = run(keyring_get(), env)
    assert time.monotonic() - started < 5
    assert done.returncode == 1
    assert done.stdout == ""
    line = one_line_message(done.stderr)
    assert f"`ak-nofuss login {world.SHARED_INDEX}`" in line
    assert sim.count("devicecode") == 0
    assert not data_dir(env).exists()


def test_prompts_off_with_a_terminal_attached_writes_nothing_there(
    sim: Simulator, no_az: dict[str, str]
) -> None:
    env = dict(no_az, ARTIFACTS_KEYRING_NONINTERACTIVE_MODE="true")
    sim.set_device_flow(user=world.BOB, approve_after_polls=2, interval=1)
    done = run_with_terminal(keyring_get(), env, timeout=60)
    assert done.seconds < 5
    assert done.returncode == 1
    assert done.terminal == ""
    assert done.stdout == ""
    line = one_line_message(done.stderr)
    assert f"`ak-nofuss login {world.SHARED_INDEX}`" in line
    assert sim.count("devicecode") == 0


# --- a terminal: the device code there, then silence ------------------------------------------


def test_device_code_sign_in_on_the_terminal_then_silent_from_the_cache(
    sim: Simulator, no_az: dict[str, str]
) -> None:
    sim.set_device_flow(user=world.BOB, approve_after_polls=2, interval=1)
    done = run_with_terminal(keyring_get(), no_az, timeout=60)
    assert done.returncode == 0, done.stderr + done.terminal

    # The instructions went to the terminal, nowhere else.
    shown = DEVICE_MESSAGE.search(done.terminal)
    assert shown is not None, done.terminal
    code = shown.group("code")
    assert code not in done.stderr
    assert code not in done.stdout
    assert "devicelogin" not in done.stderr + done.stdout
    assert spoken(done.stderr) == []
    (devicecode,) = sim.requests(kind="devicecode")
    assert devicecode.client_id == world.ARTIFACTS_CREDPROVIDER_CLIENT_ID

    # stdout is a session token for bob (exchanged), and the feed takes it.
    token = done.stdout.strip()
    (exchange,) = sim.requests(kind="exchange")
    assert exchange.status == 200
    assert exchange.principal == world.BOB
    assert exchange.credential_kind == "entra-user"
    assert feed_accepts(sim, world.SHARED_INDEX, token) == 200
    assert sim.requests(kind="index")[-1].credential_kind == "session"

    # Later, without a terminal: silent, the same session token, no new sign-in.
    tokens_before = entra_tokens(sim)
    later = run(keyring_get(), no_az)
    assert later.returncode == 0, later.stderr
    assert spoken(later.stderr) == []
    same_session_token = later.stdout.strip() == token
    assert same_session_token
    assert sim.count("devicecode") == 1
    assert sim.count("exchange") == 1
    assert entra_tokens(sim) == tokens_before

    # Another scope needs another exchange: msal's cache answers for bob, still no prompt.
    upload = run(keyring_get(world.SHARED_UPLOAD), no_az)
    assert upload.returncode == 0, upload.stderr
    assert spoken(upload.stderr) == []
    assert sim.count("devicecode") == 1
    assert [r.scope for r in sim.requests(kind="exchange")] == [
        "vso.packaging",
        "vso.packaging_write",
    ]
    assert sim.requests(kind="exchange")[-1].principal == world.BOB

    # What was kept: private files in a private directory, and no session token in them.
    directory = data_dir(no_az)
    assert mode(directory) == 0o700
    files = {p.name: p for p in directory.iterdir() if p.is_file()}
    record = files.pop("account.json")
    caches = [p for name, p in files.items() if name.startswith("msal_token_cache")]
    assert len(caches) == 1, sorted(files)
    for path in (record, *caches):
        assert mode(path) == 0o600, path
        text = path.read_text(encoding="utf-8")
        kept_a_session_token = token in text or upload.stdout.strip() in text
        assert not kept_a_session_token, path
    # The record holds no secret at all: who signed in, and where.
    kept = json.loads(record.read_text(encoding="utf-8"))
    assert set(kept) == RECORD_FIELDS
    assert kept["username"] == world.BOB
    assert kept["tenant"] == world.T_CONTOSO
    text = record.read_text(encoding="utf-8")
    secrets_kept = sum(1 for s in sim.issued_secrets() if len(s) >= 8 and s in text)
    assert secrets_kept == 0


def test_a_declined_sign_in_fails_with_one_line(sim: Simulator, no_az: dict[str, str]) -> None:
    sim.set_device_flow(user=world.BOB, approve_after_polls=2, decline=True, interval=1)
    done = run_with_terminal(keyring_get(), no_az, timeout=60)
    assert done.returncode == 1
    assert done.stdout == ""
    assert DEVICE_MESSAGE.search(done.terminal) is not None, done.terminal
    line = one_line_message(done.stderr)
    assert "interactive: the sign-in was declined" in line
    assert sim.count("exchange") == 0
    assert not (data_dir(no_az) / "account.json").exists()


def test_a_sign_in_nobody_completes_times_out(sim: Simulator, no_az: dict[str, str]) -> None:
    sim.set_device_flow(user=world.BOB, approve_after_polls=1000, interval=1)
    env = dict(no_az, ARTIFACTS_CREDENTIALPROVIDER_DEVICEFLOWTIMEOUTSECONDS="5")
    done = run_with_terminal(keyring_get(), env, timeout=60)
    assert done.seconds < 15
    assert done.returncode == 1
    assert done.stdout == ""
    assert DEVICE_MESSAGE.search(done.terminal) is not None, done.terminal
    line = one_line_message(done.stderr)
    assert "not completed within 5 s" in line
    assert "ARTIFACTS_CREDENTIALPROVIDER_DEVICEFLOWTIMEOUTSECONDS" in line
    assert sim.count("exchange") == 0


@pytest.mark.parametrize(
    "command",
    [keyring_get(world.SHARED_UPLOAD), ["ak-nofuss", "token", world.SHARED_UPLOAD]],
    ids=["keyring-get", "ak-nofuss-token"],
)
def test_a_silent_refresh_that_stalls_ends_within_the_lookups_deadline(
    sim: Simulator, no_az: dict[str, str], command: list[str]
) -> None:
    # Signed in, with an access token msal must refresh (under its five minutes); then Entra's
    # token endpoint stops answering. No prompt is shown (none may be): the stalled refresh is
    # a hung network, held to the lookup's deadline, not to the sign-in's 90 s on top of it.
    sim.set_token_lifetime(user=120)
    sim.set_device_flow(user=world.BOB, approve_after_polls=1, interval=1)
    assert run_with_terminal(keyring_get(), no_az, timeout=60).returncode == 0
    sim.fail("login.microsoftonline.com", r"/oauth2/v2\.0/token", [("stall", 300)] * 5)
    env = dict(
        no_az, ARTIFACTS_KEYRING_NOFUSS_TIMEOUT="5", ARTIFACTS_KEYRING_NONINTERACTIVE_MODE="true"
    )
    started = time.monotonic()
    done = run(command, env, timeout=200)
    assert time.monotonic() - started < 5 + 4
    assert done.returncode == 1
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    (line,) = spoken(done.stderr)
    assert "did not finish within the lookup's 5 s" in line
    assert "ARTIFACTS_KEYRING_NOFUSS_TIMEOUT" in line
    assert sim.count("exchange") == 1  # the first sign-in's only


# --- uv holds the keyring's stderr: the prompt still reaches the person -----------------------


def test_uv_pip_install_prompts_on_the_terminal(
    sim: Simulator, no_az: dict[str, str], tmp_path: Path
) -> None:
    sim.set_device_flow(user=world.BOB, approve_after_polls=2, interval=1)
    target = tmp_path / "target"
    done = run_with_terminal(
        [
            bin_path("uv"),
            "pip",
            "install",
            "--no-cache",
            "--target",
            str(target),
            "--keyring-provider",
            "subprocess",
            "--index-url",
            with_user(world.SHARED_INDEX, "VssSessionToken"),
            "tinyfeedpkg",
        ],
        no_az,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr + done.terminal
    shown = DEVICE_MESSAGE.search(done.terminal)
    assert shown is not None, done.terminal
    assert shown.group("code") not in done.stderr + done.stdout
    assert importable(target, no_az, "tinyfeedpkg") == "1.1.0"
    assert sim.count("devicecode") == 1
    assert sim.count("exchange") == 1
    downloads = sim.requests(kind="download")
    assert downloads
    assert {r.credential_kind for r in downloads} == {"session"}
    # And the next install, without a terminal, is silent.
    again = run(
        [
            bin_path("uv"),
            "pip",
            "install",
            "--no-cache",
            "--target",
            str(tmp_path / "again"),
            "--keyring-provider",
            "subprocess",
            "--index-url",
            with_user(world.SHARED_INDEX, "VssSessionToken"),
            "tinyfeedpkg",
        ],
        no_az,
    )
    assert again.returncode == 0, again.stderr
    assert sim.count("devicecode") == 1
