"""`ak-nofuss`, every command end to end, as installed (the uv tool beside `keyring`).

No token is ever printed by a test, nor put in an assertion: every command runs through `ran`
(outputs with the simulator's secrets replaced by their fingerprints) or, when its stdout is the
credential, `answered` (whose repr and attributes never show it); tokens are compared by their
sha256, and feed answers are taken into a variable before they are asserted on.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shlex
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from .helpers import OUTPUTS, SYSTEM_PATH, TOOLS_BIN, run
from .scenarios import bin_path, feed_accepts, signed_in, spoken
from .sim import world
from .sim.azcli import AZ_BIN_DIR
from .sim.server import Simulator
from .sim.wheels import build_wheel

PROG_PREFIX = "ak-nofuss: "
BACKEND_PREFIX = "artifacts-keyring-nofuss: "
TOKEN_VAR = "ARTIFACTS_KEYRING_NOFUSS_TOKEN"
TIMEOUT_VAR = "ARTIFACTS_CREDENTIALPROVIDER_DEVICEFLOWTIMEOUTSECONDS"
DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
WHEN = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$")
# The tool environment `ak-nofuss` runs in (a uv tool with keyring): its own interpreter.
TOOL_PYTHON = (TOOLS_BIN / "ak-nofuss").resolve().parent / "python"
ENTRA_HOST = "login.microsoftonline.com"


# --- running commands without ever showing a secret --------------------------------------------


def redact(sim: Simulator, text: str) -> str:
    for secret in sorted((s for s in sim.issued_secrets() if len(s) >= 8), key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, f"<secret {sim.fingerprint(secret)}>")
    return text


@dataclass(frozen=True)
class Ran:
    """A command's exit status and outputs, every known secret replaced by its fingerprint;
    `clean` says whether there was none to replace."""

    code: int
    out: str
    err: str
    clean: bool


def ran(
    sim: Simulator,
    cmd: Sequence[str | os.PathLike[str]],
    env: Mapping[str, str],
    *,
    cwd: Path | None = None,
    timeout: float = 120,
) -> Ran:
    done = run(cmd, env, timeout=timeout, cwd=cwd)
    out, err = redact(sim, done.stdout), redact(sim, done.stderr)
    return Ran(done.returncode, out, err, out == done.stdout and err == done.stderr)


def ak(sim: Simulator, env: Mapping[str, str], *args: str, cwd: Path | None = None) -> Ran:
    return ran(sim, ["ak-nofuss", *args], env, cwd=cwd)


class Answer:
    """A command whose stdout is the credential (`ak-nofuss token`, `keyring get`): the secret
    is there for the test to use, never in a repr."""

    def __init__(self, sim: Simulator, done: subprocess.CompletedProcess[str]) -> None:
        self.code = done.returncode
        self.secret = done.stdout
        self.err = redact(sim, done.stderr)
        self.printed = len(done.stdout)  # characters on stdout

    def __repr__(self) -> str:
        return f"Answer(exit {self.code}, {self.printed} characters on stdout, err={self.err!r})"


def token_cmd(sim: Simulator, env: Mapping[str, str], *args: str) -> Answer:
    return Answer(sim, run(["ak-nofuss", "token", *args], env))


def keyring_get(sim: Simulator, env: Mapping[str, str], url: str) -> Answer:
    return Answer(sim, run(["keyring", "get", url, "VssSessionToken"], env, timeout=60))


def token_of(sim: Simulator, env: Mapping[str, str], *args: str) -> str:
    """`ak-nofuss token ARGS`, which must succeed with one line and nothing else said."""
    got = token_cmd(sim, env, *args)
    assert got.code == 0, got.err
    assert spoken(got.err) == [], got.err
    lines = len(got.secret.splitlines())
    assert lines == 1, f"{lines} lines on stdout"
    return got.secret.strip()


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def cli_line(stderr: str) -> str:
    """The command's one line on stderr: nothing else a user reads there, no traceback."""
    assert "Traceback" not in stderr, stderr
    said = spoken(stderr)
    assert len(said) == 1, stderr
    assert said[0].startswith(PROG_PREFIX), stderr
    return said[0]


def backend_line(stderr: str) -> str:
    """The backend's one line on stderr (what `keyring get` says when it has no credential)."""
    assert "Traceback" not in stderr, stderr
    said = spoken(stderr)
    assert len(said) == 1, stderr
    assert said[0].startswith(BACKEND_PREFIX), stderr
    return said[0]


def without_az(env: Mapping[str, str]) -> dict[str, str]:
    """No Azure CLI at all: the fake az's directory off PATH."""
    paths = [p for p in env["PATH"].split(os.pathsep) if p != str(AZ_BIN_DIR)]
    return dict(env, PATH=os.pathsep.join(paths))


def entra_requests_since(sim: Simulator, mark: int) -> list[tuple[str, str | None]]:
    return [
        (r.kind, r.grant_type)
        for r in sim.requests()[mark:]
        if r.host == ENTRA_HOST and r.kind in ("token", "devicecode")
    ]


# --- token -----------------------------------------------------------------------------------


def test_token_prints_only_the_token_and_the_feed_accepts_it(
    sim: Simulator, client_env: dict[str, str]
) -> None:
    env = signed_in(client_env)
    got = token_cmd(sim, env, world.SHARED_INDEX)

    assert got.code == 0, got.err
    assert spoken(got.err) == [], got.err
    one_line = got.secret.endswith("\n") and got.secret.count("\n") == 1
    assert one_line, "stdout is not exactly one line"
    token = got.secret[:-1]
    bare = bool(token) and token == token.strip() and " " not in token
    assert bare, "the line is not a bare token"
    status = feed_accepts(sim, world.SHARED_INDEX, token)
    assert status == 200
    (exchange,) = sim.requests(kind="exchange")
    assert exchange.scope == "vso.packaging"
    assert exchange.principal == world.ALICE


def test_token_write_on_a_read_url_can_upload(
    sim: Simulator, client_env: dict[str, str], tmp_path: Path
) -> None:
    env = signed_in(client_env)
    token = token_of(sim, env, world.SHARED_INDEX, "--write")
    (exchange,) = sim.requests(kind="exchange")
    assert exchange.scope == "vso.packaging_write"

    wheel = build_wheel(tmp_path / "dist", "writtenpkg", "0.1.0")
    upload_env = dict(env, TWINE_USERNAME="VssSessionToken", TWINE_PASSWORD=token)
    twine = [bin_path("twine"), "upload", "--non-interactive", "--repository-url"]
    done = ran(sim, [*twine, world.SHARED_UPLOAD, str(wheel)], upload_env)
    assert done.code == 0, done.out + done.err
    assert wheel.name in sim.uploaded("shared")
    (upload,) = sim.requests(kind="upload")
    assert upload.credential_kind == "session"
    same = upload.credential_fingerprint == sim.fingerprint(token)
    assert same, "the upload did not carry the token `ak-nofuss token --write` printed"

    scope = json.loads(token_of(sim, env, world.SHARED_INDEX, "--write", "--format", "json"))[
        "scope"
    ]
    assert scope == "vso.packaging_write"


def test_token_format_basic(sim: Simulator, client_env: dict[str, str]) -> None:
    env = signed_in(client_env)
    header = token_of(sim, env, world.SHARED_INDEX, "--format", "basic")
    plain = token_of(sim, env, world.SHARED_INDEX)

    scheme, _, encoded = header.partition(" ")
    assert scheme == "Basic"
    pair = base64.b64decode(encoded).decode()
    named = pair.startswith("VssSessionToken:")
    assert named, "the Basic pair's user name is not VssSessionToken"
    same = digest(pair.removeprefix("VssSessionToken:")) == digest(plain)
    assert same, "the Basic header carries another token than `ak-nofuss token`"
    status = requests.get(
        world.SHARED_INDEX, headers={"Authorization": header}, verify=str(sim.ca_pem), timeout=30
    ).status_code
    assert status == 200
    assert sim.count("exchange") == 1  # the second command took it from the cache


def test_token_format_json(sim: Simulator, client_env: dict[str, str]) -> None:
    env = signed_in(client_env)
    answer = json.loads(token_of(sim, env, world.SHARED_INDEX, "--format", "json"))

    keys = sorted(answer)
    assert {"username", "password", "expires_on", "scope"} <= set(keys)
    username, expires_on, scope = answer["username"], answer["expires_on"], answer["scope"]
    assert username == "VssSessionToken"
    assert scope == "vso.packaging"
    assert WHEN.match(expires_on), expires_on
    status = feed_accepts(sim, world.SHARED_INDEX, answer["password"])
    assert status == 200


def test_token_format_env(sim: Simulator, client_env: dict[str, str]) -> None:
    env = signed_in(client_env)
    line = token_of(sim, env, world.SHARED_INDEX, "--format", "env")
    plain = token_of(sim, env, world.SHARED_INDEX)

    words = shlex.split(line)
    count = len(words)
    assert count == 1, "not one shell word"
    name, _, value = words[0].partition("=")
    assert name == TOKEN_VAR
    same = digest(value) == digest(plain)
    assert same, f"{TOKEN_VAR}=... is not the token `ak-nofuss token` prints"


def test_token_with_no_identity_fails_with_one_line(
    sim: Simulator, client_env: dict[str, str]
) -> None:
    got = token_cmd(sim, client_env, world.SHARED_INDEX)

    assert got.code == 1
    assert got.printed == 0
    line = cli_line(got.err)
    assert "no credential for contoso/shared" in line
    assert f"az login --tenant {world.T_CONTOSO}" in line  # az is there, not signed in
    assert sim.count("exchange") == 0

    # Without az either, the line names the sign-in that needs no az.
    bare = token_cmd(sim, without_az(client_env), world.SHARED_INDEX)
    assert bare.code == 1
    assert bare.printed == 0
    assert f"ak-nofuss login {world.SHARED_INDEX}" in cli_line(bare.err)


def test_token_for_a_url_that_is_not_a_feed(sim: Simulator, client_env: dict[str, str]) -> None:
    got = token_cmd(sim, client_env, "https://pypi.org/simple/")

    assert got.code == 1
    assert got.printed == 0
    assert "is not an Azure Artifacts feed URL" in cli_line(got.err)
    assert sim.requests() == []


# --- exec ------------------------------------------------------------------------------------


def test_exec_gives_the_command_the_token_and_exits_with_its_status(
    sim: Simulator, client_env: dict[str, str]
) -> None:
    env = signed_in(client_env)
    script = f'printf %s "${TOKEN_VAR}" | sha256sum; echo "args: $0 $1"; exit 7'
    done = ak(sim, env, "exec", world.SHARED_INDEX, "--", "sh", "-c", script, "first", "second")

    assert done.code == 7, done.err
    assert done.clean
    assert spoken(done.err) == [], done.err
    seen_digest, args_line = done.out.splitlines()
    assert args_line == "args: first second"
    printed = digest(token_of(sim, env, world.SHARED_INDEX))
    assert seen_digest.split()[0] == printed, "the command saw another token"
    assert sim.count("exchange") == 1


def test_exec_passes_a_zero_status_through(sim: Simulator, client_env: dict[str, str]) -> None:
    env = signed_in(client_env)
    done = ak(sim, env, "exec", world.SHARED_INDEX, "--", "sh", "-c", f'test -n "${TOKEN_VAR}"')
    assert done.code == 0, done.err
    assert done.out == ""


@pytest.mark.parametrize(
    ("command", "said"),
    [
        ([], "exec needs a command after `--`"),
        (["--"], "exec needs a command after `--`"),
        (["--", "no-such-command-akn"], "command not found: 'no-such-command-akn'"),
    ],
    ids=["nothing", "dashes-only", "not-on-path"],
)
def test_exec_without_a_command_it_can_run(
    sim: Simulator, client_env: dict[str, str], command: list[str], said: str
) -> None:
    env = signed_in(client_env)
    sim.reset()
    done = ak(sim, env, "exec", world.SHARED_INDEX, *command)

    assert done.code == 1
    assert done.out == ""
    assert said in cli_line(done.err)
    assert sim.count("exchange") == 0  # nothing to hand a token to: none was made


def test_exec_for_a_docker_build_the_given_token_answers_inside(
    sim: Simulator, client_env: dict[str, str], tmp_path: Path
) -> None:
    """`ak-nofuss exec URL -- docker build --secret id=...,env=ARTIFACTS_KEYRING_NOFUSS_TOKEN`:
    inside the build there is no az and no cache, only the variable; `keyring get` answers
    with it, for another feed of the organisation too, and nothing is exchanged again."""
    env = signed_in(client_env)
    inside = tmp_path / "build-container"
    (inside / ".cache").mkdir(parents=True)
    build = [
        "env",
        f"HOME={inside}",
        f"XDG_CACHE_HOME={inside / '.cache'}",
        f"XDG_DATA_HOME={inside / '.local' / 'share'}",
        f"XDG_CONFIG_HOME={inside / '.config'}",
        f"PATH={TOOLS_BIN}{os.pathsep}{SYSTEM_PATH}",
        "keyring",
        "get",
        world.TEAM_INDEX,
        "VssSessionToken",
    ]
    # Its stdout is a token: run directly, not through helpers.run (whose outputs are scanned).
    done = subprocess.run(
        ["ak-nofuss", "exec", world.SHARED_INDEX, "--", *build],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    OUTPUTS.append(done.stderr)
    inner = Answer(sim, done)

    assert inner.code == 0, inner.err
    assert spoken(inner.err) == [], inner.err
    assert sim.count("exchange") == 1  # exec's own; none inside
    assert sim.count("discovery") == 1
    answered = digest(inner.secret.strip())
    printed = digest(token_of(sim, env, world.SHARED_INDEX))
    assert answered == printed, "keyring inside did not answer with the token exec gave"


# --- status and logout -----------------------------------------------------------------------


def test_status_lists_the_cache_without_tokens_and_logout_empties_it(
    sim: Simulator, client_env: dict[str, str]
) -> None:
    env = signed_in(client_env)
    read = keyring_get(sim, env, world.SHARED_INDEX)
    assert read.code == 0, read.err
    write = keyring_get(sim, env, world.SHARED_UPLOAD)
    assert write.code == 0, write.err
    assert sim.count("exchange") == 2

    status = ak(sim, env, "status")
    assert status.code == 0, status.err
    assert status.clean, "status printed a secret"
    assert spoken(status.err) == []
    lines = status.out.splitlines()
    assert lines[0] == "sign-in: none (`ak-nofuss login` signs in without az)"
    cache_dir = Path(env["XDG_CACHE_HOME"]) / "artifacts-keyring-nofuss"
    assert f"cache: {cache_dir}" in lines
    rows = [line.split() for line in lines if line.startswith("  ")]
    assert [r[:3] for r in rows] == [
        ["contoso", "vso.packaging", world.ALICE],
        ["contoso", "vso.packaging_write", world.ALICE],
    ], status.out
    assert all(r[3] == "until" and WHEN.match(" ".join(r[4:6])) for r in rows), status.out

    as_json = ak(sim, env, "status", "--json")
    assert as_json.code == 0, as_json.err
    assert as_json.clean, "status --json printed a secret"
    report = json.loads(as_json.out)
    assert report["signed_in"] is None
    assert report["cache"] == str(cache_dir)
    assert [(s["organisation"], s["scope"], s["identity"]) for s in report["sessions"]] == [
        ("contoso", "vso.packaging", world.ALICE),
        ("contoso", "vso.packaging_write", world.ALICE),
    ]
    assert all(WHEN.match(s["expires"]) for s in report["sessions"]), report

    out = ak(sim, env, "logout")
    assert out.code == 0, out.err
    assert out.out == "forgot no sign-in and 2 cached session tokens\n"
    assert "session tokens: none cached" in ak(sim, env, "status").out.splitlines()
    assert json.loads(ak(sim, env, "status", "--json").out)["sessions"] == []

    again = keyring_get(sim, env, world.SHARED_INDEX)
    assert again.code == 0, again.err
    assert sim.count("exchange") == 3  # a fresh exchange: nothing was left to reuse


# --- login (device code), then silent lookups, then logout -----------------------------------


def test_login_with_a_device_code_then_lookups_are_silent_until_logout(
    sim: Simulator, client_env: dict[str, str]
) -> None:
    env = without_az(client_env)
    sim.set_device_flow(user=world.BOB, approve_after_polls=2, interval=1)
    done = ak(sim, env, "login", "--device-code", world.SHARED_INDEX)

    assert done.code == 0, done.err
    assert done.clean, "login printed a secret"
    assert done.out == f"signed in as {world.BOB} (tenant {world.T_CONTOSO})\n"
    assert "Traceback" not in done.err
    instructions = [line for line in spoken(done.err) if "devicelogin" in line]
    assert len(instructions) == 1, done.err
    assert instructions[0].startswith(PROG_PREFIX)
    assert "https://microsoft.com/devicelogin" in instructions[0]
    assert "enter the code" in instructions[0]
    assert sim.count("devicecode") == 1
    polls = [grant for kind, grant in entra_requests_since(sim, 0) if kind == "token"]
    assert polls, "no device code polls"
    assert set(polls) == {DEVICE_CODE_GRANT}

    # No az at all: the sign-in answers, silently, with no new device code.
    mark = len(sim.requests())
    get = keyring_get(sim, env, world.SHARED_INDEX)
    assert get.code == 0, get.err
    assert spoken(get.err) == [], get.err
    status_code = feed_accepts(sim, world.SHARED_INDEX, get.secret.strip())
    assert status_code == 200
    after = entra_requests_since(sim, mark)
    assert ("devicecode", None) not in after
    assert {grant for _, grant in after} <= {"refresh_token"}, after  # cached, or refreshed
    (exchange,) = sim.requests(kind="exchange")
    assert exchange.principal == world.BOB

    status = ak(sim, env, "status")
    assert status.code == 0, status.err
    (line,) = [ln for ln in status.out.splitlines() if ln.startswith("sign-in: ")]
    assert line.startswith(f"sign-in: {world.BOB} (tenant {world.T_CONTOSO}), scopes ")
    # The first-party client holds Azure DevOps' broad scope: status says so.
    assert "499b84ac-1321-427f-aa17-267ca6975798/user_impersonation" in line
    row = rf"^  contoso  vso\.packaging  {re.escape(world.BOB)}  until "
    assert re.search(row, status.out, re.M), status.out
    report = json.loads(ak(sim, env, "status", "--json").out)
    assert report["signed_in"] == {
        "username": world.BOB,
        "tenant": world.T_CONTOSO,
        "client_id": world.ARTIFACTS_CREDPROVIDER_CLIENT_ID,
        "scopes": [
            "499b84ac-1321-427f-aa17-267ca6975798/.default",
            "499b84ac-1321-427f-aa17-267ca6975798/user_impersonation",
        ],
    }

    out = ak(sim, env, "logout")
    assert out.code == 0, out.err
    assert out.out.startswith(f"forgot the sign-in of {world.BOB} and 1 cached session token")
    assert "sign-in: none" in ak(sim, env, "status").out

    forgotten = keyring_get(sim, env, world.SHARED_INDEX)
    assert forgotten.code == 1
    assert forgotten.printed == 0
    line = backend_line(forgotten.err)
    assert f"ak-nofuss login {world.SHARED_INDEX}" in line
    assert sim.count("devicecode") == 1  # no terminal: no new sign-in was started


def test_login_declined(sim: Simulator, client_env: dict[str, str]) -> None:
    env = without_az(client_env)
    sim.set_device_flow(user=world.BOB, approve_after_polls=1, decline=True, interval=1)
    done = ak(sim, env, "login", "--device-code", world.SHARED_INDEX)

    assert done.code == 1
    assert done.out == ""
    assert "Traceback" not in done.err
    said = [line for line in spoken(done.err) if "devicelogin" not in line]
    assert said == [f"{PROG_PREFIX}the sign-in was declined"], done.err
    assert "sign-in: none" in ak(sim, env, "status").out


def test_login_times_out_naming_the_variable(sim: Simulator, client_env: dict[str, str]) -> None:
    env = dict(without_az(client_env), **{TIMEOUT_VAR: "5"})
    sim.set_device_flow(user=world.BOB, approve_after_polls=10_000, interval=1)
    started = time.monotonic()
    done = ak(sim, env, "login", "--device-code", world.SHARED_INDEX)
    elapsed = time.monotonic() - started

    assert done.code == 1
    assert elapsed < 15, f"login took {elapsed:.1f} s with a 5 s limit"
    assert done.out == ""
    said = [line for line in spoken(done.err) if "devicelogin" not in line]
    assert len(said) == 1, done.err
    assert said[0].startswith(PROG_PREFIX)
    assert "not completed within 5 s" in said[0]
    assert TIMEOUT_VAR in said[0]


# --- setup -----------------------------------------------------------------------------------


def written_has_no_secret(sim: Simulator, path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    clean = redact(sim, text) == text
    assert clean, f"{path} holds a secret"


def test_setup_pip_then_a_plain_pip_install(
    sim: Simulator, client_env: dict[str, str], tmp_path: Path
) -> None:
    env = signed_in(client_env)
    env.pop("PIP_CONFIG_FILE")  # pip reads the user's pip.conf, as on a workstation
    conf = Path(env["XDG_CONFIG_HOME"]) / "pip" / "pip.conf"
    done = ak(sim, env, "setup", "pip", world.SHARED_INDEX, "--write")

    assert done.code == 0, done.err
    assert f"# wrote {conf}" in done.out.splitlines()
    text = conf.read_text(encoding="utf-8")
    assert "index-url = https://VssSessionToken@pkgs.dev.azure.com/" in text
    assert "keyring-provider = subprocess" in text

    target = tmp_path / "target"
    install = ran(sim, [bin_path("pip"), "install", "--target", str(target), "tinyfeedpkg"], env)
    assert install.code == 0, install.out + install.err
    version = ran(
        sim,
        [bin_path("python"), "-c", "import tinyfeedpkg; print(tinyfeedpkg.__version__)"],
        dict(env, PYTHONPATH=str(target)),
    )
    assert version.out == "1.1.0\n", version.err
    downloads = sim.requests(kind="download")
    assert downloads, "nothing was downloaded from the feed"
    assert {r.credential_kind for r in downloads} == {"session"}

    twice = ak(sim, env, "setup", "pip", world.SHARED_INDEX, "--write")
    assert twice.code == 0, twice.err
    assert f"# already there, unchanged: {conf}" in twice.out.splitlines()
    assert conf.read_text(encoding="utf-8") == text
    written_has_no_secret(sim, conf)


def test_setup_uv_then_a_plain_uv_pip_install(
    sim: Simulator, client_env: dict[str, str], tmp_path: Path
) -> None:
    env = signed_in(client_env)
    env.pop("UV_NO_CONFIG")  # uv reads the user's uv.toml, as on a workstation
    conf = Path(env["XDG_CONFIG_HOME"]) / "uv" / "uv.toml"
    done = ak(sim, env, "setup", "uv", world.SHARED_INDEX, "--write")

    assert done.code == 0, done.err
    assert f"# wrote {conf}" in done.out.splitlines()
    text = conf.read_text(encoding="utf-8")
    assert text.startswith('keyring-provider = "subprocess"\n')

    target = tmp_path / "target"
    install = ran(
        sim, [bin_path("uv"), "pip", "install", "--target", str(target), "tinyfeedpkg"], env
    )
    assert install.code == 0, install.err
    version = ran(
        sim,
        [bin_path("python"), "-c", "import tinyfeedpkg; print(tinyfeedpkg.__version__)"],
        dict(env, PYTHONPATH=str(target)),
    )
    assert version.out == "1.1.0\n", version.err
    assert {r.credential_kind for r in sim.requests(kind="download")} == {"session"}
    assert sim.count("exchange") == 1

    twice = ak(sim, env, "setup", "uv", world.SHARED_INDEX, "--write")
    assert twice.code == 0, twice.err
    assert f"# already there, unchanged: {conf}" in twice.out.splitlines()
    assert conf.read_text(encoding="utf-8") == text
    written_has_no_secret(sim, conf)


def test_setup_twine_then_upload_by_repository_name(
    sim: Simulator, client_env: dict[str, str], tmp_path: Path
) -> None:
    env = signed_in(client_env)
    pypirc = Path(env["HOME"]) / ".pypirc"
    done = ak(sim, env, "setup", "twine", world.SHARED_INDEX, "--write", "--name", "azure")

    assert done.code == 0, done.err
    assert f"# wrote {pypirc}" in done.out.splitlines()
    assert "twine upload -r azure dist/*" in done.out

    wheel = build_wheel(tmp_path / "dist", "setuppkg", "0.2.0")
    upload = ran(
        sim,
        [bin_path("twine"), "upload", "--non-interactive", "-r", "azure", str(wheel)],
        env,
        cwd=tmp_path,
    )
    assert upload.code == 0, upload.out + upload.err
    assert wheel.name in sim.uploaded("shared")
    assert [r.scope for r in sim.requests(kind="exchange")] == ["vso.packaging_write"]

    twice = ak(sim, env, "setup", "twine", world.SHARED_INDEX, "--write", "--name", "azure")
    assert twice.code == 0, twice.err
    assert f"# already there, unchanged: {pypirc}" in twice.out.splitlines()
    written_has_no_secret(sim, pypirc)


def test_setup_keeps_what_the_files_already_hold(
    sim: Simulator, client_env: dict[str, str]
) -> None:
    pypirc = Path(client_env["HOME"]) / ".pypirc"
    pypirc.write_text(
        "[distutils]\nindex-servers =\n    pypi\n\n[pypi]\nusername = __token__\n",
        encoding="utf-8",
    )
    done = ak(sim, client_env, "setup", "twine", world.SHARED_INDEX, "--write")
    assert done.code == 0, done.err
    text = pypirc.read_text(encoding="utf-8")
    assert "[pypi]" in text and "username = __token__" in text
    assert re.search(r"index-servers =\s+pypi\s+contoso-shared", text), text
    assert "repository = " + world.SHARED_UPLOAD in text


def test_setup_poetry_prints_the_commands(sim: Simulator, client_env: dict[str, str]) -> None:
    done = ak(sim, client_env, "setup", "poetry", world.SHARED_INDEX)

    assert done.code == 0, done.err
    lines = done.out.splitlines()
    assert "poetry self add artifacts-keyring-nofuss" in lines
    assert any(line.startswith("poetry source add ") for line in lines), done.out
    assert world.SHARED_INDEX.rstrip("/") in done.out
    assert "--write" in done.out  # says how to make the change; made none
    assert "# ran:" not in done.out
    assert sim.requests() == []


def test_setup_without_write_changes_nothing(sim: Simulator, client_env: dict[str, str]) -> None:
    home = Path(client_env["HOME"])
    before = sorted(home.rglob("*"))
    for tool in ("pip", "uv", "twine", "pdm"):
        done = ak(sim, client_env, "setup", tool, world.SHARED_INDEX)
        assert done.code == 0, done.err
        assert done.out.rstrip().endswith("# (ak-nofuss setup ... --write makes this change)")
    assert sorted(home.rglob("*")) == before


# --- version, help, usage --------------------------------------------------------------------


def test_version_help_and_wrong_usage(sim: Simulator, client_env: dict[str, str]) -> None:
    version = ak(sim, client_env, "--version")
    assert version.code == 0, version.err
    assert re.fullmatch(r"ak-nofuss \d+\.\d+\.\d+\S*\n", version.out), version.out

    module = ran(sim, [TOOL_PYTHON, "-m", "artifacts_keyring_nofuss", "--version"], client_env)
    assert module.code == 0, module.err
    assert module.out == version.out

    helped = ak(sim, client_env, "--help")
    assert helped.code == 0, helped.err
    assert "examples:" in helped.out
    assert "exit codes:" in helped.out
    for command in ("doctor", "token", "exec", "login", "logout", "status", "setup"):
        assert re.search(rf"^    {command}\s", helped.out, re.M), command
    assert "ak-nofuss token URL --format json" in helped.out

    wrong = ak(sim, client_env, "frobnicate")
    assert wrong.code == 2
    assert wrong.out == ""
    line = cli_line(wrong.err)
    assert "frobnicate" in line and "ak-nofuss --help" in line

    for args in (
        ["token"],
        ["token", world.SHARED_INDEX, "--format", "xml"],
        ["setup", "npm", world.SHARED_INDEX],
    ):
        usage = ak(sim, client_env, *args)
        assert usage.code == 2, args
        assert usage.out == ""
        cli_line(usage.err)

    bare = ak(sim, client_env)
    assert bare.code == 2
    assert bare.out == ""
    assert "usage: ak-nofuss" in bare.err
    assert sim.requests() == []
