"""`ak-nofuss login` through a browser: msal's interactive sign-in against the simulated Entra.

The browser is sim/bin/fake-browser, named by BROWSER (what Python's webbrowser module, and so
msal, runs), standing for a browser already signed in as the user `sim.set_browser_user` names:
it loads the authorize URL and hands the answer to msal's loopback server. No DISPLAY: BROWSER
alone says that a browser can be opened. No az anywhere.
"""

from __future__ import annotations

import os
import subprocess
import time
import urllib.parse
from collections.abc import Mapping
from pathlib import Path

import pytest

from .helpers import run
from .scenarios import feed_accepts, keyring, spoken
from .sim import world
from .sim.azcli import AZ_BIN_DIR
from .sim.server import Simulator

FAKE_BROWSER = AZ_BIN_DIR / "fake-browser"
PROG_PREFIX = "ak-nofuss: "
OPENING = "ak-nofuss: opening a browser to sign in to "
TIMEOUT_VAR = "ARTIFACTS_CREDENTIALPROVIDER_DEVICEFLOWTIMEOUTSECONDS"
LOGIN_HINT_VAR = "ARTIFACTS_CREDENTIALPROVIDER_MSAL_LOGIN_HINT"
AUTHORIZE = f"https://login.microsoftonline.com/{world.T_CONTOSO}/oauth2/v2.0/authorize"


@pytest.fixture
def browser_log(tmp_path: Path) -> Path:
    return tmp_path / "fake-browser.log"


@pytest.fixture
def env(client_env: dict[str, str], browser_log: Path) -> dict[str, str]:
    """The client environment with the fake browser as BROWSER, no display, and no az."""
    paths = [p for p in client_env["PATH"].split(os.pathsep) if p != str(AZ_BIN_DIR)]
    out = dict(
        client_env,
        PATH=os.pathsep.join(paths),
        BROWSER=str(FAKE_BROWSER),
        FAKE_BROWSER_LOG=str(browser_log),
    )
    for name in ("DISPLAY", "WAYLAND_DISPLAY"):
        out.pop(name, None)
    return out


def ak(
    env: Mapping[str, str], *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return run(["ak-nofuss", *args], env, timeout=timeout)


def opened(browser_log: Path) -> list[str]:
    """The URLs the browser was given."""
    return browser_log.read_text().splitlines() if browser_log.exists() else []


def said(stderr: str) -> list[str]:
    """What a user reads on stderr besides the announcement that a browser opens."""
    assert "Traceback" not in stderr, stderr
    return [line for line in spoken(stderr) if not line.startswith(OPENING)]


def code_grants(sim: Simulator) -> list[int]:
    return [r.status for r in sim.requests(kind="token") if r.grant_type == "authorization_code"]


def test_login_through_the_browser_then_lookups_are_silent(
    sim: Simulator, env: dict[str, str], browser_log: Path
) -> None:
    sim.set_browser_user(world.BOB)
    done = ak(env, "login", world.SHARED_INDEX, timeout=60)

    assert done.returncode == 0, done.stderr
    assert done.stdout == f"signed in as {world.BOB} (tenant {world.T_CONTOSO})\n"
    # Nothing else but, where no keyring can encrypt msal's cache, a note saying so.
    assert all(line.startswith(f"{PROG_PREFIX}note: ") for line in said(done.stderr)), done.stderr
    announced = [line for line in spoken(done.stderr) if line.startswith(OPENING)]
    assert announced == [f"{OPENING}https://login.microsoftonline.com/{world.T_CONTOSO} ..."], (
        done.stderr
    )

    # The browser was sent to the feed's tenant's authorize endpoint, with PKCE (S256) and a
    # loopback redirect, as the credential provider's public client.
    (url,) = opened(browser_log)
    assert url.startswith(f"{AUTHORIZE}?"), url
    params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
    assert params["client_id"] == world.ARTIFACTS_CREDPROVIDER_CLIENT_ID
    assert params["response_type"] == "code"
    assert params["code_challenge_method"] == "S256"
    assert len(params["code_challenge"]) == 43  # base64url of a SHA-256, unpadded
    redirect = urllib.parse.urlsplit(params["redirect_uri"])
    assert (redirect.scheme, redirect.hostname) == ("http", "localhost")
    assert redirect.port is not None
    assert world.DEVOPS_SCOPE in params["scope"].split()
    assert "login_hint" not in params
    (authorize,) = sim.requests(kind="authorize")
    assert (authorize.status, authorize.principal, authorize.extra["outcome"]) == (
        200 if params.get("response_mode") == "form_post" else 302,
        world.BOB,
        "code",
    )
    # The code came back to msal and was redeemed, once.
    assert code_grants(sim) == [200]
    assert sim.count("devicecode") == 0

    # A later lookup: silent, no browser, no new authorize, the session token works.
    get = keyring(env, "get", world.SHARED_INDEX, "VssSessionToken")
    assert get.returncode == 0, get.stderr
    assert spoken(get.stderr) == [], get.stderr
    assert feed_accepts(sim, world.SHARED_INDEX, get.stdout.strip()) == 200
    assert len(opened(browser_log)) == 1
    assert sim.count("authorize") == 1
    assert code_grants(sim) == [200]
    (exchange,) = sim.requests(kind="exchange")
    assert exchange.principal == world.BOB

    status = ak(env, "status")
    (line,) = [ln for ln in status.stdout.splitlines() if ln.startswith("sign-in: ")]
    assert line.startswith(f"sign-in: {world.BOB} (tenant {world.T_CONTOSO}), scopes ")
    # The first-party client holds Azure DevOps' broad scope: status says so.
    assert "499b84ac-1321-427f-aa17-267ca6975798/user_impersonation" in line


def test_login_hint_reaches_the_authorize_url(
    sim: Simulator, env: dict[str, str], browser_log: Path
) -> None:
    sim.set_browser_user(world.BOB)
    # BROWSER as a command line: webbrowser puts the URL where %s is.
    hinted = dict(env, BROWSER=f"{FAKE_BROWSER} %s", **{LOGIN_HINT_VAR: world.BOB})
    done = ak(hinted, "login", world.SHARED_INDEX, timeout=60)

    assert done.returncode == 0, done.stderr
    assert done.stdout == f"signed in as {world.BOB} (tenant {world.T_CONTOSO})\n"
    (url,) = opened(browser_log)
    params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
    assert params["login_hint"] == world.BOB
    assert code_grants(sim) == [200]


def test_device_code_flag_never_opens_the_browser(
    sim: Simulator, env: dict[str, str], browser_log: Path
) -> None:
    sim.set_browser_user(world.BOB)
    sim.set_device_flow(user=world.BOB, approve_after_polls=1, interval=1)
    done = ak(env, "login", "--device-code", world.SHARED_INDEX, timeout=60)

    assert done.returncode == 0, done.stderr
    assert done.stdout == f"signed in as {world.BOB} (tenant {world.T_CONTOSO})\n"
    assert not any(line.startswith(OPENING) for line in spoken(done.stderr)), done.stderr
    assert opened(browser_log) == []
    assert sim.count("authorize") == 0
    assert sim.count("devicecode") == 1


def test_declined_consent_fails_with_one_line(
    sim: Simulator, env: dict[str, str], browser_log: Path
) -> None:
    sim.set_browser_user(world.BOB, consent=False)
    done = ak(env, "login", world.SHARED_INDEX, timeout=60)

    assert done.returncode == 1, done.stderr
    assert done.stdout == ""
    assert said(done.stderr) == [f"{PROG_PREFIX}the sign-in was declined"], done.stderr
    assert len(opened(browser_log)) == 1
    assert code_grants(sim) == []


def test_a_browser_that_cannot_sign_in_fails_in_time_with_one_line(
    sim: Simulator, env: dict[str, str], browser_log: Path
) -> None:
    # Nobody signed in to the browser: the sign-in page, which never sends anything back.
    started = time.monotonic()
    done = ak(dict(env, **{TIMEOUT_VAR: "5"}), "login", world.SHARED_INDEX, timeout=60)
    elapsed = time.monotonic() - started

    assert done.returncode == 1, done.stderr
    assert elapsed < 20, f"login took {elapsed:.1f} s with a 5 s limit"
    assert done.stdout == ""
    lines = said(done.stderr)
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(PROG_PREFIX), done.stderr
    assert "unexpected" not in lines[0], done.stderr
    assert "not completed within 5 s" in lines[0], done.stderr
    assert TIMEOUT_VAR in lines[0], done.stderr
    assert len(opened(browser_log)) == 1
    (authorize,) = sim.requests(kind="authorize")
    assert (authorize.status, authorize.extra["outcome"]) == (200, "sign-in page")
    assert code_grants(sim) == []
    assert "sign-in: none" in ak(env, "status").stdout
