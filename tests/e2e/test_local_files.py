"""What we write, read and print on a shared machine, end to end (issue 13): the log file the
official variable names, the files `ak-nofuss setup --write` edits, the sign-in's private
directory, and URLs with a password in them.

Inside the namespace there is one uid: the cases that need another local user (a file or a
directory that is not ours, a reader polling the home directory) are unit tests
(tests/unit/test_log.py, test_configure.py, test_signin.py), which run as root outside it.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from .connect_proxy import connect_proxy
from .helpers import run
from .scenarios import bin_path, feed_accepts, keyring, signed_in, spoken
from .sim import world
from .sim.server import Simulator

LOG_VAR = "ARTIFACTS_CREDENTIALPROVIDER_LOG_PATH"
DEADLINE = 10  # ARTIFACTS_KEYRING_NOFUSS_TIMEOUT for the lookups here


def _log_env(client_env: dict[str, str], path: Path | str) -> dict[str, str]:
    env = signed_in(client_env)
    env[LOG_VAR] = str(path)
    env["ARTIFACTS_KEYRING_NOFUSS_TIMEOUT"] = str(DEADLINE)
    return env


def _get_despite_the_log(sim: Simulator, env: dict[str, str], path: Path | str, why: str) -> None:
    """`keyring get` answers within its deadline with the credential alone on stdout, and says
    once, on stderr, that the log is off and why."""
    started = time.monotonic()
    try:
        done = keyring(env, "get", world.SHARED_INDEX, "VssSessionToken", timeout=DEADLINE * 3)
    except subprocess.TimeoutExpired:
        pytest.fail(f"keyring get with {LOG_VAR}={path} did not finish in {DEADLINE * 3} s")
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert elapsed < DEADLINE, f"{elapsed:.1f} s"
    lines = done.stdout.splitlines()
    assert len(lines) == 1, f"{len(lines)} lines on stdout"
    assert feed_accepts(sim, world.SHARED_INDEX, lines[0]) == 200
    assert spoken(done.stderr) == [
        f"artifacts-keyring-nofuss: {LOG_VAR}: not logging to {path}: {why}"
    ], done.stderr


# --- ARTIFACTS_CREDENTIALPROVIDER_LOG_PATH ----------------------------------------------------


def test_a_fifo_as_the_log_never_hangs_the_lookup(
    sim: Simulator, client_env: dict[str, str], tmp_path: Path
) -> None:
    fifo = tmp_path / "credprovider.log"
    os.mkfifo(fifo, 0o600)
    env = _log_env(client_env, fifo)
    _get_despite_the_log(sim, env, fifo, "it is not a regular file (a FIFO, a socket or a device)")


def test_a_link_as_the_log_is_not_followed(
    sim: Simulator, client_env: dict[str, str], tmp_path: Path
) -> None:
    target = Path(client_env["HOME"]) / ".bashrc"
    target.write_text("# mine\n", encoding="utf-8")
    target.chmod(0o600)
    link = tmp_path / "credprovider.log"
    link.symlink_to(target)
    env = _log_env(client_env, link)
    _get_despite_the_log(sim, env, link, "it is a symbolic link (name the file itself)")
    assert target.read_text(encoding="utf-8") == "# mine\n"
    assert link.is_symlink()


def test_a_world_writable_log_is_not_appended_to(
    sim: Simulator, client_env: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "credprovider.log"
    path.write_text("", encoding="utf-8")
    path.chmod(0o666)
    env = _log_env(client_env, path)
    _get_despite_the_log(sim, env, path, "group or others can read or write it (chmod 600 it)")
    assert path.read_text(encoding="utf-8") == ""


def test_dev_stdout_as_the_log_leaves_stdout_to_the_credential(
    sim: Simulator, client_env: dict[str, str]
) -> None:
    env = _log_env(client_env, "/dev/stdout")
    _get_despite_the_log(
        sim,
        env,
        "/dev/stdout",
        "it is a symbolic link to this process's stdout, which carries the credential",
    )


# --- passwords in URLs ------------------------------------------------------------------------

# Secrets that look like nothing (short, no digits run, no JWT shape): only the rule for URL
# passwords can hide them.
URL_PASSWORD = "urlPw-quokka"
PROXY_PASSWORD = "proxyPw-wombat"
BARE_PROXY_PASSWORD = "bareProxyPw-numbat"
PIP_PASSWORD = "pipPw-echidna"
UV_PASSWORD = "uvPw-bilby"
ENDPOINT_PASSWORD = "endpointPw-dingo"
PLANTED = (
    URL_PASSWORD,
    PROXY_PASSWORD,
    BARE_PROXY_PASSWORD,
    PIP_PASSWORD,
    UV_PASSWORD,
    ENDPOINT_PASSWORD,
)


def _planted_in(texts: dict[str, str], sim: Simulator) -> list[str]:
    """(what, which secret) for every planted or issued secret found; names only, never the
    secret itself."""
    issued = [s for s in sim.issued_secrets() if len(s) >= 8]
    found = []
    for what, text in texts.items():
        found += [f"{what}: planted #{i}" for i, s in enumerate(PLANTED) if s in text]
        found += [f"{what}: issued {sim.fingerprint(s)}" for s in issued if s in text]
    return found


def test_no_command_prints_a_url_password(
    sim: Simulator, client_env: dict[str, str], tmp_path: Path
) -> None:
    """Secrets in the URL, the proxy settings and the environment: doctor (text and JSON, a
    URL with and without a scheme, one that is not a feed), status, setup (shown and
    written), `keyring get` and `ak-nofuss token` (their lines on stderr), and the log file
    with debug on, hold none of them; the URLs are still shown, password redacted."""
    log = tmp_path / "credprovider.log"
    pat = sim.add_pat("fabrikam")
    base = signed_in(client_env)
    base.update(
        {
            LOG_VAR: str(log),
            "ARTIFACTS_KEYRING_NOFUSS_DEBUG": "1",
            "PIP_INDEX_URL": world.SHARED_INDEX.replace("https://", f"https://u:{PIP_PASSWORD}@"),
            "UV_INDEX_URL": world.SHARED_INDEX.replace("https://", f"https://u:{UV_PASSWORD}@"),
            "ARTIFACTS_CREDENTIALPROVIDER_EXTERNAL_FEED_ENDPOINTS": (
                '{"endpointCredentials": [{"endpoint": "https://u:'
                + ENDPOINT_PASSWORD
                + '@pkgs.dev.azure.com/fabrikam/_packaging/releases/pypi/simple/", '
                + f'"password": "{pat}"}}]}}'
            ),
        }
    )
    url = world.SHARED_INDEX.replace("https://", f"https://VssSessionToken:{URL_PASSWORD}@")
    bare_url = url.removeprefix("https://")
    not_a_feed = f"https://u:{URL_PASSWORD}@example.com/simple/"
    outputs: dict[str, str] = {}

    def record(name: str, done: subprocess.CompletedProcess[str], *, stdout: bool = True) -> None:
        outputs[f"{name} stderr"] = done.stderr
        if stdout:
            outputs[f"{name} stdout"] = done.stdout

    with connect_proxy() as proxy:
        host, port = str(proxy.server_address[0]), int(proxy.server_address[1])
        with_scheme = dict(base, HTTPS_PROXY=f"http://proxyuser:{PROXY_PASSWORD}@{host}:{port}")
        bare = dict(base, https_proxy=f"proxyuser:{BARE_PROXY_PASSWORD}@{host}:{port}")
        text = run_ak(with_scheme, "doctor", url)
        record("doctor", text)
        record("doctor --json", run_ak(with_scheme, "doctor", url, "--json"))
        record("doctor (no scheme)", run_ak(bare, "doctor", bare_url))
        record("doctor (not a feed)", run_ak(with_scheme, "doctor", not_a_feed))
        record("keyring get", keyring(with_scheme, "get", url, "VssSessionToken"), stdout=False)
        record("token (not a feed)", run_ak(with_scheme, "token", not_a_feed))
        record("token (no scheme)", run_ak(with_scheme, "token", "u:" + URL_PASSWORD + "@x.y/z"))
        for args in (["status"], ["status", "--json"]):
            record(" ".join(args), run_ak(with_scheme, *args))
        for tool in ("pip", "uv", "twine"):
            record(f"setup {tool}", run_ak(with_scheme, "setup", tool, url))
            record(f"setup {tool} --write", run_ak(with_scheme, "setup", tool, url, "--write"))
    outputs["log file"] = log.read_text(encoding="utf-8")
    for written in ("pip/pip.conf", "uv/uv.toml"):
        outputs[written] = (Path(base["XDG_CONFIG_HOME"]) / written).read_text(encoding="utf-8")
    outputs[".pypirc"] = (Path(base["HOME"]) / ".pypirc").read_text(encoding="utf-8")

    assert _planted_in(outputs, sim) == []
    # Shown, with the password redacted: the scan above cannot pass by printing nothing.
    redacted = "https://VssSessionToken:<redacted>@pkgs.dev.azure.com/contoso/"
    assert text.stdout.startswith(f"ak-nofuss doctor {redacted}")
    assert text.returncode == 0, text.stdout
    assert f"proxy HTTPS_PROXY=http://proxyuser:<redacted>@{host}:{port}" in text.stdout
    assert f'"url": "{redacted}' in outputs["doctor --json stdout"]
    assert (
        "doctor VssSessionToken:<redacted>@pkgs.dev.azure.com/"
        in outputs["doctor (no scheme) stdout"]
    )
    assert f"https_proxy=proxyuser:<redacted>@{host}:{port}" in outputs["doctor (no scheme) stdout"]
    assert "'https://u:<redacted>@example.com/simple/'" in outputs["token (not a feed) stderr"]
    assert "'u:<redacted>@x.y/z'" in outputs["token (no scheme) stderr"]
    # The proxy carried the requests: its password was really in use.
    assert any(t.startswith("pkgs.dev.azure.com:") for t in proxy.tunnels)


def run_ak(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run(["ak-nofuss", *args], env, timeout=120)


# --- the sign-in's private directory -----------------------------------------------------------


def test_login_refuses_a_planted_link_before_anyone_signs_in(
    sim: Simulator, client_env: dict[str, str], tmp_path: Path
) -> None:
    """A data directory left open to others (a shared XDG_DATA_HOME made with umask 0) where
    someone planted msal's cache file as a link: the refresh token must not go there, and the
    CLI must not say "readable only by you"."""
    data = tmp_path / "shared-data"
    directory = data / "artifacts-keyring-nofuss"
    directory.mkdir(parents=True)
    directory.chmod(0o777)
    loot = tmp_path / "planted-by-someone-else"
    loot.write_text("", encoding="utf-8")
    loot.chmod(0o666)
    (directory / "msal_token_cache.json").symlink_to(loot)
    env = dict(client_env, XDG_DATA_HOME=str(data))
    sim.set_device_flow(user=world.BOB, approve_after_polls=1, interval=1)

    done = run_ak(env, "login", "--device-code", world.SHARED_INDEX)

    assert done.returncode == 1, done.stdout
    assert done.stdout == ""
    assert spoken(done.stderr) == [
        f"ak-nofuss: not keeping the sign-in in {directory / 'msal_token_cache.json'}: it is a "
        "symbolic link; remove it and sign in again"
    ]
    assert loot.read_text(encoding="utf-8") == ""
    assert sim.count("devicecode") == 0  # refused before anyone was asked to sign in
    assert oct(directory.stat().st_mode & 0o777) == oct(0o700)

    # Once the link is gone, the same command signs in, into a private directory.
    (directory / "msal_token_cache.json").unlink()
    again = run_ak(env, "login", "--device-code", world.SHARED_INDEX)
    assert again.returncode == 0, again.stderr
    assert again.stdout == f"signed in as {world.BOB} (tenant {world.T_CONTOSO})\n"
    for path in directory.iterdir():
        assert path.stat().st_mode & 0o077 == 0, path.name


# --- ak-nofuss setup --write ---------------------------------------------------------------


def test_setup_edits_dotfiles_through_their_links(
    sim: Simulator, client_env: dict[str, str], tmp_path: Path
) -> None:
    """Dotfiles kept in a repository and linked into place: the link stays a link, the file
    in the repository gets the change (and keeps its mode), and the tool reads it there."""
    env = signed_in(client_env)
    env.pop("UV_NO_CONFIG")  # uv reads the user's uv.toml, as on a workstation
    env.pop("PIP_CONFIG_FILE")
    home = Path(env["HOME"])
    config = Path(env["XDG_CONFIG_HOME"])
    dotfiles = home / "dotfiles"
    dotfiles.mkdir()
    cases = {
        "twine": (home / ".pypirc", "[pypi]\nusername = __token__\n"),
        "pip": (config / "pip" / "pip.conf", "[global]\ntimeout = 60\n"),
        "uv": (config / "uv" / "uv.toml", "# my uv settings\n"),
    }
    for tool, (link, mine) in cases.items():
        real = dotfiles / link.name
        real.write_text(mine, encoding="utf-8")
        real.chmod(0o644)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(real)

        done = run_ak(env, "setup", tool, world.SHARED_INDEX, "--write")

        assert done.returncode == 0, done.stderr
        assert f"# wrote {real} (through the link {link})" in done.stdout.splitlines()
        assert link.is_symlink() and link.resolve() == real, tool
        text = real.read_text(encoding="utf-8")
        assert mine in text, tool
        assert "pkgs.dev.azure.com/contoso/_packaging/shared/pypi/" in text, tool
        assert oct(real.stat().st_mode & 0o777) == oct(0o644), tool
        assert [p.name for p in link.parent.iterdir() if p.name.endswith(".tmp")] == []
        assert [p.name for p in dotfiles.iterdir() if p.name.endswith(".tmp")] == []

    # uv reads its uv.toml through the link and installs from the feed with our credential.
    target = tmp_path / "target"
    install = run([bin_path("uv"), "pip", "install", "--target", str(target), "tinyfeedpkg"], env)
    assert install.returncode == 0, install.stderr
    assert {r.credential_kind for r in sim.requests(kind="download")} == {"session"}


def test_setup_creates_new_files_private(sim: Simulator, client_env: dict[str, str]) -> None:
    home = Path(client_env["HOME"])
    config = Path(client_env["XDG_CONFIG_HOME"])
    for tool, path in (
        ("twine", home / ".pypirc"),
        ("pip", config / "pip" / "pip.conf"),
        ("uv", config / "uv" / "uv.toml"),
    ):
        done = run_ak(client_env, "setup", tool, world.SHARED_INDEX, "--write")
        assert done.returncode == 0, done.stderr
        assert f"# wrote {path}" in done.stdout.splitlines()
        assert oct(path.stat().st_mode & 0o777) == oct(0o600), tool


def test_setup_refuses_a_dangling_dotfile_link(sim: Simulator, client_env: dict[str, str]) -> None:
    home = Path(client_env["HOME"])
    (home / ".pypirc").symlink_to(home / "dotfiles" / "pypirc")
    done = run_ak(client_env, "setup", "twine", world.SHARED_INDEX, "--write")
    assert done.returncode == 1
    assert spoken(done.stderr) == [
        f"ak-nofuss: {home / '.pypirc'} is a link to {home / 'dotfiles' / 'pypirc'}, which "
        "does not exist: create that file (or remove the link), then run this again"
    ]
    assert (home / ".pypirc").is_symlink()
    assert not (home / "dotfiles").exists()
