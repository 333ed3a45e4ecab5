"""Every snippet of docs/identities.md, run as it is written against the simulated Azure DevOps.

The page marks each snippet with `<!-- snippet: NAME -->` before its fenced block; this module
reads them from the page on every run, fills in the placeholders from the simulated world, and
runs each in the environment it is written for. A snippet without a test, or a test of a
snippet the page no longer has, fails (test_every_snippet_has_a_test_and_every_test_a_snippet),
so that the page and the tests cannot drift apart.

What the tests provide around a snippet, and never change in it (each is said where it is done):

- The machine's Python is a fresh environment per test (`python_environment`): pip, keyring
  and the backend importable as if `pip install keyring artifacts-keyring-nofuss` had run
  there, and whatever the snippet installs lands there, never in the interpreter that runs the
  tests. Its bin directory is first on PATH, so `pip` in a snippet is that environment's pip.
- What a CI image or runner has and the namespace cannot download (no registry here): `pipx`
  and `uv tool install keyring --with artifacts-keyring-nofuss` are shims satisfied by what is
  already on PATH (uv from the test environment, `keyring` with the backend from the prebuilt
  uv tool in .e2e/tools/bin); `uv pip install --system` installs into the runner's "system"
  Python, which is the fresh environment (UV_PYTHON points uv at it: uv's --system skips
  virtual environments otherwise).
- The one change made to a snippet: `az login` (interactive: a browser) becomes the
  non-interactive `az login --username ... --password ... --allow-no-subscriptions` the fake az
  supports (the simulated world has no Azure subscriptions, and az, real or fake, refuses a
  login without one unless told), in the test only.
- `docker` is a fake (FAKE_DOCKER below) that emulates BuildKit for `docker build --secret`.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import sysconfig
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

from .helpers import SYSTEM_PATH, TOOLS_BIN, run
from .scenarios import REPO, assert_no_leak, bin_path, codespaces, signed_in
from .sim import world
from .sim.azcli import AZ_BIN_DIR
from .sim.server import Simulator

DOCS = REPO / "docs" / "identities.md"
LANGUAGES = frozenset({"bash", "yaml", "dockerfile"})
MARKER = re.compile(r"<!--\s*snippet:\s*(?P<name>[a-z0-9-]+)\s*-->")
FENCE_OPEN = re.compile(r"```(?P<lang>[a-z]+)")

# The placeholders of the page and what the simulated world has for them.
SHARED = next(f for f in world.FEEDS if f.org == world.ORG_CONTOSO and f.name == "shared")
RELEASES = next(f for f in world.FEEDS if f.org == world.ORG_FABRIKAM and f.name == "releases")
PLACEHOLDERS = {
    "org": SHARED.org,
    "feed": SHARED.name,
    "other_org": RELEASES.org,
    "other_feed": RELEASES.name,
    "client_id": world.SP_CONTOSO_SECRET,
    "tenant_id": world.T_CONTOSO,
    "client_secret": world.SP_CONTOSO_SECRET_VALUE,
    "user_assigned_client_id": world.MI_USER_CLIENT_ID,
    "packaging_client_id": world.CONTOSO_PACKAGING_CLIENT_ID,
}
PLACEHOLDER = re.compile(r"\{(" + "|".join(PLACEHOLDERS) + r")\}")
# What is left of a placeholder nobody filled: `{word}`, not `${{ ... }}` nor JSON's `{"`.
UNFILLED = re.compile(r"(?<![{$])\{[a-z_]+\}(?!\})")

PACKAGE, PACKAGE_VERSION = "tinyfeedpkg", "1.1.0"  # the newest tinyfeedpkg in the wheelhouse


@dataclass(frozen=True)
class Snippet:
    name: str
    lang: str
    text: str  # as on the page, placeholders and all
    line: int  # of the marker, for messages


def read_snippets(path: Path = DOCS) -> dict[str, Snippet]:
    """Every `<!-- snippet: NAME -->` of the page and the fenced block right after it."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found: dict[str, Snippet] = {}
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        i += 1
        if "snippet" not in line or not line.startswith("<!--"):
            continue
        marker = MARKER.fullmatch(line)
        if marker is None:
            raise ValueError(f"{path.name}:{i}: a snippet marker this test cannot read: {line}")
        name = marker["name"]
        if name in found:
            raise ValueError(f"{path.name}:{i}: snippet {name!r} twice")
        opening = FENCE_OPEN.fullmatch(lines[i].strip()) if i < len(lines) else None
        if opening is None or opening["lang"] not in LANGUAGES:
            raise ValueError(
                f"{path.name}:{i}: snippet {name!r} is not followed by a ```bash, ```yaml or "
                "```dockerfile block"
            )
        body: list[str] = []
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i])
            i += 1
        if i == len(lines):
            raise ValueError(f"{path.name}: the block of snippet {name!r} never ends")
        i += 1
        found[name] = Snippet(name, opening["lang"], "\n".join(body) + "\n", i)
    return found


def fill(text: str) -> str:
    filled = PLACEHOLDER.sub(lambda m: PLACEHOLDERS[m[1]], text)
    left = UNFILLED.findall(filled)
    assert not left, f"placeholders this test has no value for: {left}"
    return filled


def snippet(name: str, lang: str) -> str:
    """The snippet as the page has it now, placeholders filled in."""
    snippets = read_snippets()
    assert name in snippets, f"docs/identities.md has no snippet {name!r} any more"
    found = snippets[name]
    assert found.lang == lang, f"snippet {name!r} is ```{found.lang}, this test runs {lang}"
    return fill(found.text)


# --- which test runs which snippet -----------------------------------------------------------

COVERED: dict[str, list[str]] = {}
F = TypeVar("F", bound=Callable[..., object])


def covers(*names: str) -> Callable[[F], F]:
    """Mark a test as running these snippets (the drift check reads the marks)."""

    def mark(test: F) -> F:
        for name in names:
            COVERED.setdefault(name, []).append(test.__name__)
        return test

    return mark


# --- the machine a snippet runs on ----------------------------------------------------------


def python_environment(root: Path) -> Path:
    """A fresh Python environment at `root` (a venv of the test interpreter: no registry
    needed) in which pip, keyring and the backend are importable as if they had been installed
    there, as on a machine or in an image where `pip install keyring artifacts-keyring-nofuss`
    ran: the test environment's site-packages comes in through a .pth file, after the
    environment's own. Whatever pip or uv installs lands in this environment alone, never in
    the interpreter that runs the tests. `root/bin` has python and pip. Returns `root`."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    python = root / "bin" / "python"
    done = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    )
    purelib = Path(done.stdout.strip())
    (purelib / "_test_environment.pth").write_text(sysconfig.get_path("purelib") + "\n")
    pip = root / "bin" / "pip"
    pip.write_text(
        f"#!{python}\nimport sys\nfrom pip._internal.cli.main import main\nsys.exit(main())\n"
    )
    pip.chmod(0o755)
    return root


def on_path(env: Mapping[str, str], *first: Path) -> dict[str, str]:
    return dict(env, PATH=os.pathsep.join([*map(str, first), env["PATH"]]))


def machine(env: Mapping[str, str], python: Path) -> dict[str, str]:
    """A shell on a machine whose Python is `python` (its bin first on PATH), with pip's
    defaults. The client environment sets PIP_NO_INPUT=1, as CI jobs often do, and with it
    pip's default keyring provider (auto) never asks keyring: the snippets run pip without
    `--keyring-provider`, as on a developer's machine or a job that does not set it. stdin is
    still /dev/null: a prompt would fail, not wait."""
    shell = on_path(env, python / "bin")
    shell.pop("PIP_NO_INPUT", None)
    return shell


def without_az(env: Mapping[str, str]) -> dict[str, str]:
    """A machine with no Azure CLI at all (the fake az's directory off PATH)."""
    kept = [p for p in env["PATH"].split(os.pathsep) if p != str(AZ_BIN_DIR)]
    return dict(env, PATH=os.pathsep.join(kept))


def run_bash(
    script: str, env: Mapping[str, str], *, cwd: Path | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """A bash snippet, strict: the first failing command fails the run. Through helpers.run,
    so the secrets scan reads what it printed."""
    return run(["bash", "-euo", "pipefail", "-c", script], env, timeout=timeout, cwd=cwd)


def assert_ran(sim: Simulator, done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    assert_no_leak(sim, [done.stdout, done.stderr])


def assert_installed(env_root: Path, env: Mapping[str, str]) -> None:
    """tinyfeedpkg is installed in that environment, and only there."""
    code = f"import {PACKAGE}; print({PACKAGE}.__version__); print({PACKAGE}.__file__)"
    check = run([str(env_root / "bin" / "python"), "-c", code], env)
    assert check.returncode == 0, check.stderr
    version, where = check.stdout.split()
    assert version == PACKAGE_VERSION
    assert Path(where).resolve().is_relative_to(env_root.resolve()), where
    assert not (Path(sysconfig.get_path("purelib")) / PACKAGE).exists()


def downloads_used(sim: Simulator, kind: str) -> None:
    downloads = sim.requests(kind="download")
    assert downloads, "nothing was downloaded from the feed"
    assert {(r.status, r.credential_kind) for r in downloads} == {(200, kind)}


def write_script(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


# Runner tools the namespace cannot download. Each shim appends its argv to $SHIM_CALLS and
# accepts only the documented command, so a changed snippet fails here rather than passing.
PIPX_SHIM = """#!/bin/bash
# `pipx install uv` on a runner: uv is already on PATH here (the test environment's).
printf 'pipx %s\\n' "$*" >> "$SHIM_CALLS"
[ "$*" = "install uv" ] || { echo "pipx shim: not emulated: pipx $*" >&2; exit 2; }
command -v uv > /dev/null || { echo "pipx shim: uv is not on PATH" >&2; exit 1; }
"""
UV_SHIM = """#!/bin/bash
# `uv tool install keyring --with artifacts-keyring-nofuss`: already done, by scripts/bootstrap
# (the uv tool whose `keyring` and `ak-nofuss` are in {tools_bin}, on PATH). Everything else
# goes to the real uv.
if [ "${{1-}}" = tool ]; then
    printf 'uv %s\\n' "$*" >> "$SHIM_CALLS"
    [ "$*" = "tool install keyring --with artifacts-keyring-nofuss" ] ||
        {{ echo "uv shim: not emulated: uv $*" >&2; exit 2; }}
    [ "$(command -v keyring)" = "{tools_bin}/keyring" ] ||
        {{ echo "uv shim: keyring on PATH is not the prebuilt tool" >&2; exit 1; }}
    exit 0
fi
exec {uv} "$@"
"""


@dataclass
class Runner:
    """A CI runner: the shims, its "system" Python, the environment a step starts from."""

    env: dict[str, str]
    python: Path
    calls: Path

    def shim_calls(self) -> list[str]:
        return self.calls.read_text().splitlines() if self.calls.exists() else []


def ci_runner(tmp_path: Path, client_env: Mapping[str, str]) -> Runner:
    """The shims first on PATH; the runner's "system" Python a fresh environment, which
    `uv pip install --system` reaches through UV_PYTHON (with --system, uv skips a virtual
    environment it finds on PATH and would take /usr/bin/python3 instead)."""
    shims = tmp_path / "shims"
    write_script(shims / "pipx", PIPX_SHIM)
    write_script(shims / "uv", UV_SHIM.format(tools_bin=TOOLS_BIN, uv=shlex.quote(bin_path("uv"))))
    python = python_environment(tmp_path / "system-python")
    calls = tmp_path / "shim-calls"
    env = on_path(client_env, shims, python / "bin")
    env.update(SHIM_CALLS=str(calls), UV_PYTHON=str(python / "bin" / "python"))
    return Runner(env, python, calls)


DOCUMENTED_SHIM_CALLS = ["uv tool install keyring --with artifacts-keyring-nofuss"]


# --- the drift check -----------------------------------------------------------------------


def test_every_snippet_has_a_test_and_every_test_a_snippet() -> None:
    snippets = read_snippets()
    untested = sorted(set(snippets) - set(COVERED))
    gone = {name: tests for name, tests in COVERED.items() if name not in snippets}
    assert not untested, f"snippets of docs/identities.md that no test runs: {untested}"
    assert not gone, f"tests of snippets docs/identities.md no longer has: {gone}"
    # The page says so on its last line; keep the promise and the file name together.
    last = DOCS.read_text(encoding="utf-8").strip().splitlines()[-2:]
    assert "tests/e2e/test_docs.py" in " ".join(last)


def test_the_placeholders_make_the_worlds_urls() -> None:
    index = "https://pkgs.dev.azure.com/{org}/_packaging/{feed}/pypi/simple/"
    assert fill(index) == world.SHARED_INDEX
    assert fill(index.replace("{org}", "{other_org}").replace("{feed}", "{other_feed}")) == (
        world.RELEASES_INDEX
    )


# --- local development ---------------------------------------------------------------------


@covers("local-az")
def test_local_az(sim: Simulator, client_env: dict[str, str], tmp_path: Path) -> None:
    script = snippet("local-az", "bash")
    # The fake az has no browser: its `az login` needs a user name and password. The one
    # change to a snippet in this module, here in the test only; the user name and password
    # come from the environment, so that the password is not in the script's text.
    assert re.search(r"^az login --allow-no-subscriptions$", script, re.M), script
    script = re.sub(
        r"^az login --allow-no-subscriptions$",
        'az login --username "$AZ_USER" --password "$AZ_PASSWORD" --allow-no-subscriptions',
        script,
        flags=re.M,
    )
    python = python_environment(tmp_path / "python")
    env = machine(client_env, python)
    env.update(AZ_USER=world.ALICE, AZ_PASSWORD=world.ALICE_PASSWORD)
    done = run_bash(script, env)
    assert_ran(sim, done)
    assert_installed(python, env)
    downloads_used(sim, "session")
    (exchange,) = sim.requests(kind="exchange")
    assert exchange.principal == world.ALICE


@covers("local-login")
def test_local_login(sim: Simulator, client_env: dict[str, str], tmp_path: Path) -> None:
    script = snippet("local-login", "bash")
    sim.set_device_flow(user=world.BOB, approve_after_polls=2, interval=1)
    python = python_environment(tmp_path / "python")
    env = machine(without_az(client_env), python)  # "with no az at all"
    done = run_bash(script, env)
    assert_ran(sim, done)
    assert "signed in as bob@contoso.com" in done.stdout
    assert_installed(python, env)
    downloads_used(sim, "session")
    assert [r.grant_type for r in sim.requests(kind="token")].count(
        "urn:ietf:params:oauth:grant-type:device_code"
    ) >= 1
    (exchange,) = sim.requests(kind="exchange")
    assert exchange.principal == world.BOB


@covers("own-client")
def test_own_client(sim: Simulator, client_env: dict[str, str], tmp_path: Path) -> None:
    script = snippet("own-client", "bash")
    sim.restrict_pat_creation("contoso")  # where this matters: no session tokens at all
    sim.set_device_flow(user=world.ALICE, approve_after_polls=2, interval=1)
    python = python_environment(tmp_path / "python")
    env = machine(without_az(client_env), python)
    done = run_bash(script, env)
    assert_ran(sim, done)
    assert "signed in as alice@contoso.com" in done.stdout
    assert_installed(python, env)
    assert sim.count("exchange") == 0  # a packaging-only token: nothing to exchange
    downloads = sim.requests(kind="download")
    assert downloads and {r.credential_kind for r in downloads} == {"entra-user"}
    assert "499b84ac-1321-427f-aa17-267ca6975798/vso.packaging" in done.stdout  # status
    assert "user_impersonation" not in done.stdout


# --- Azure Pipelines -------------------------------------------------------------------------


def pipeline_macros(text: str, variables: Mapping[str, str]) -> str:
    """Azure Pipelines' macro syntax, `$(Name)`, for the variables the job has; the agent
    leaves a macro it has no variable for as it is."""
    return re.sub(r"\$\(([A-Za-z0-9_.]+)\)", lambda m: variables.get(m[1], m[0]), text)


@covers("azure-pipelines")
def test_azure_pipelines(sim: Simulator, client_env: dict[str, str], tmp_path: Path) -> None:
    pipeline = yaml.safe_load(snippet("azure-pipelines", "yaml"))
    token = sim.add_pipeline_token("contoso")
    variables = {"System.AccessToken": token}
    # What the agent sets in every job, except the token: a job has SYSTEM_ACCESSTOKEN only
    # when the YAML maps it (that mapping is the snippet's point).
    agent = {
        k: v
        for k, v in Simulator.pipeline_env("contoso", token).items()
        if k != "SYSTEM_ACCESSTOKEN"
    }
    runner = ci_runner(tmp_path, client_env)
    steps = pipeline["steps"]
    assert steps
    for step in steps:
        assert set(step) <= {"script", "displayName", "env"}, f"not emulated: {step}"
        env = dict(runner.env, **agent)
        env.update({k: pipeline_macros(str(v), variables) for k, v in step.get("env", {}).items()})
        done = run_bash(pipeline_macros(step["script"], variables), env)
        assert_ran(sim, done)
    assert runner.shim_calls() == ["pipx install uv", *DOCUMENTED_SHIM_CALLS]
    assert_installed(runner.python, runner.env)
    downloads_used(sim, "pipeline")
    assert sim.count("exchange") == 0
    assert sim.count("token") == 0


@covers("official-variables")
def test_official_variables(sim: Simulator, client_env: dict[str, str], tmp_path: Path) -> None:
    script = snippet("official-variables", "bash")
    pipeline_token = sim.add_pipeline_token("contoso")
    other_org_pat = sim.add_pat("fabrikam")
    # The snippet sends what `keyring get` prints to /dev/null; a transparent wrapper records
    # it on the way (to a file: what keyring prints is the credential), so that the test can
    # see that each feed got its own token.
    record = tmp_path / "keyring-answers.jsonl"
    wrapper = write_script(
        tmp_path / "wrapper" / "keyring",
        f"""#!{sys.executable}
import json, subprocess, sys
done = subprocess.run([{str(TOOLS_BIN / "keyring")!r}, *sys.argv[1:]], stdout=subprocess.PIPE,
                      text=True, check=False)
with open({str(record)!r}, "a") as out:
    out.write(json.dumps({{"argv": sys.argv[1:], "stdout": done.stdout}}) + "\\n")
sys.stdout.write(done.stdout)
sys.exit(done.returncode)
""",
    )
    env = on_path(client_env, wrapper.parent)
    env.update(PIPELINE_TOKEN=pipeline_token, OTHER_ORG_PAT=other_org_pat)
    done = run_bash(script, env)
    assert_ran(sim, done)
    answers = [json.loads(line) for line in record.read_text().splitlines()]
    assert [(a["argv"][1], a["stdout"].strip()) for a in answers] == [
        (world.SHARED_INDEX, pipeline_token),
        (world.RELEASES_INDEX.rstrip("/"), other_org_pat),
    ]
    # Handed-over tokens are used as they are: nothing asked of any service.
    assert sim.count("discovery") == 0
    assert sim.count("exchange") == 0
    assert sim.count("token") == 0


# --- GitHub Actions --------------------------------------------------------------------------


def github_expressions(text: str, values: Mapping[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        assert match[1] in values, f"no value for ${{{{ {match[1]} }}}}"
        return values[match[1]]

    filled = re.sub(r"\$\{\{\s*([A-Za-z0-9_.]+)\s*\}\}", value, text)
    assert "${{" not in filled, filled
    return filled


@covers("github-actions")
def test_github_actions(sim: Simulator, client_env: dict[str, str], tmp_path: Path) -> None:
    workflow = yaml.safe_load(
        github_expressions(
            snippet("github-actions", "yaml"),
            {
                "vars.AZURE_CLIENT_ID": world.SP_CONTOSO_GITHUB,
                "vars.AZURE_TENANT_ID": world.T_CONTOSO,
            },
        )
    )
    # Without it a job has no ACTIONS_ID_TOKEN_REQUEST_URL: the runner environment below is
    # only what a job with this permission gets.
    permissions = workflow.get("permissions") or {}
    assert permissions.get("id-token") == "write", f"no `id-token: write`: {permissions}"
    (job,) = workflow["jobs"].values()
    runner = ci_runner(tmp_path, client_env)
    job_env = dict(
        runner.env, **sim.github_actions(), **{k: str(v) for k, v in job.get("env", {}).items()}
    )
    ran = 0
    for step in job["steps"]:
        if "uses" in step:
            # Actions are not run; what this one installs (uv) is on PATH already.
            assert step["uses"].startswith("astral-sh/setup-uv@"), f"not emulated: {step}"
            continue
        assert set(step) <= {"run", "name", "env"}, f"not emulated: {step}"
        env = dict(job_env, **{k: str(v) for k, v in step.get("env", {}).items()})
        done = run_bash(step["run"], env)
        assert_ran(sim, done)
        ran += 1
    assert ran == 2
    assert runner.shim_calls() == DOCUMENTED_SHIM_CALLS
    assert_installed(runner.python, runner.env)
    downloads_used(sim, "entra-app")
    assert sim.count("github_oidc") >= 1
    assert sim.count("exchange") == 0
    grants = [r for r in sim.requests(kind="token") if r.host.startswith("login.")]
    assert grants
    assert {(r.client_id, r.status) for r in grants} == {(world.SP_CONTOSO_GITHUB, 200)}


# --- Docker builds -----------------------------------------------------------------------------

# A fake `docker` that does what BuildKit does for `docker build --secret id=X,env=Y CONTEXT`
# with a Dockerfile of FROM and RUN instructions (anything else is refused, so that a snippet
# this does not emulate fails instead of passing):
# - FROM is recorded; the image's filesystem is a fresh Python environment where
#   `RUN pip install keyring artifacts-keyring-nofuss` has, in effect, already run (the
#   registry is out of reach), so that one instruction is skipped.
# - RUN runs `/bin/sh -c COMMAND` (what BuildKit runs for the shell form; python:3.12-slim's
#   /bin/sh) in a clean environment: a container inherits nothing from the host's. It gets the
#   image's PATH and HOME (empty directories of its own, no az), and the CA variables that
#   stand in for a CA in the image; also the backend's debug switch in the debug pass, so that
#   the secrets scan reads the build's debug output too.
# - `--mount=type=secret,id=X[,target=...][,required=...]` is taken off the command and the
#   secret (read from $Y, or from src=FILE) is a file at /run/secrets/X (mode 0400) for that
#   RUN only, removed when it ends. /run/secrets is the build_secrets fixture's tmpfs.
# - Output as a build log on stderr; exit 0, or 1 at the first failing RUN (docker build's).
# It records to RECORD (JSON): its argv and environment's names, each RUN's argv and full
# environment, the mounted secrets' fingerprints (as the simulator's log has them) and the
# statuses: what `ps` would have shown of the build, for the test to look for the token in.
FAKE_DOCKER = r'''
import hashlib, json, os, shlex, subprocess, sys
from pathlib import Path

PROVIDED = "pip install keyring artifacts-keyring-nofuss"
record = {"argv": sys.argv, "env_keys": sorted(os.environ), "from": None, "steps": [],
          "status": None}


def save():
    Path(CONFIG["record"]).write_text(json.dumps(record, indent=1))


def die(message, code=1):
    print(f"ERROR: {message}", file=sys.stderr)
    record["status"] = code
    save()
    sys.exit(code)


def options(text):
    fields = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep:
            die(f"invalid field {part!r} in {text!r}")
        fields[key.strip().lower()] = value.strip()
    return fields


def parse_args(argv):
    if not argv or argv[0] != "build":
        die(f"fake docker: only `docker build` is emulated, not {shlex.join(argv)!r}", 2)
    secrets, dockerfile, context = {}, None, None
    args = argv[1:]
    while args:
        arg = args.pop(0)
        name, eq, value = arg.partition("=")
        if name in ("--secret", "-f", "--file", "-t", "--tag", "--progress") and not eq:
            if not args:
                die(f"flag needs an argument: {name}", 2)
            value = args.pop(0)
        if name == "--secret":
            spec = options(value)
            if "id" not in spec:
                die(f"--secret needs an id: {value!r}", 2)
            if "env" in spec:
                if spec["env"] not in os.environ:
                    die(f"secret {spec['id']}: environment variable {spec['env']} not set")
                secrets[spec["id"]] = os.environ[spec["env"]]
            elif "src" in spec or "source" in spec:
                secrets[spec["id"]] = Path(spec.get("src") or spec["source"]).read_text()
            else:
                die(f"fake docker: only env= and src= secrets are emulated: {value!r}", 2)
        elif name in ("-f", "--file"):
            dockerfile = value
        elif name in ("-t", "--tag", "--progress"):
            pass
        elif arg.startswith("-"):
            die(f"fake docker: flag not emulated: {arg}", 2)
        elif context is None:
            context = arg
        else:
            die("docker build accepts exactly 1 argument", 2)
    if context is None:
        die("docker build requires exactly 1 argument", 2)
    path = Path(dockerfile) if dockerfile else Path(context) / "Dockerfile"
    return secrets, path


def instructions(text):
    """(INSTRUCTION, arguments) with line continuations joined, comments and blanks skipped."""
    out, pending = [], ""
    for line in text.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1]
            continue
        whole = (pending + line).strip()
        pending = ""
        keyword, _, rest = whole.partition(" ")
        out.append((keyword.upper(), rest.strip()))
    if pending:
        die("the Dockerfile ends in a line continuation")
    return out


def run_flags(rest):
    mounts = []
    while rest.startswith("--"):
        flag, _, rest = rest.partition(" ")
        rest = rest.lstrip()
        if not flag.startswith("--mount="):
            die(f"fake docker: RUN flag not emulated: {flag}", 2)
        spec = options(flag[len("--mount="):])
        if spec.get("type") != "secret":
            die(f"fake docker: only secret mounts are emulated: {flag}", 2)
        if "id" not in spec or set(spec) - {"type", "id", "target", "dst", "destination",
                                            "required", "mode", "uid", "gid"}:
            die(f"fake docker: mount not emulated: {flag}", 2)
        target = spec.get("target") or spec.get("dst") or spec.get("destination")
        target = target or f"/run/secrets/{spec['id']}"
        if Path(target).parent != Path(CONFIG["secrets_dir"]):
            die(f"fake docker: secrets go to {CONFIG['secrets_dir']} here, not {target}", 2)
        mounts.append((spec["id"], target, spec.get("required", "false") == "true",
                       int(spec.get("mode", "0400"), 8)))
    return mounts, rest


def main():
    secrets, dockerfile = parse_args(sys.argv[1:])
    steps = instructions(dockerfile.read_text())
    if not steps or steps[0][0] != "FROM":
        die("the Dockerfile must start with FROM")
    record["from"] = steps[0][1]
    total = len(steps)
    print(f"#1 [internal] load build definition from {dockerfile.name}", file=sys.stderr)
    print(f"#2 [1/{total}] FROM {steps[0][1]} (the test's image)", file=sys.stderr)
    for number, (keyword, rest) in enumerate(steps[1:], start=2):
        if keyword != "RUN":
            die(f"fake docker: instruction not emulated: {keyword}", 2)
        mounts, command = run_flags(rest)
        if command == PROVIDED:
            print(f"#{number + 1} [{number}/{total}] RUN {command} (in the image already)",
                  file=sys.stderr)
            continue
        print(f"#{number + 1} [{number}/{total}] RUN {command}", file=sys.stderr)
        env = dict(CONFIG["env"])
        argv = ["/bin/sh", "-c", command]
        step = {"argv": argv, "env": env, "mounted": [], "status": None}
        record["steps"].append(step)
        written = []
        try:
            for secret_id, target, required, mode in mounts:
                if secret_id not in secrets:
                    if required:
                        die(f"secret {secret_id}: not found")
                    continue
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
                written.append(target)
                with os.fdopen(fd, "w") as out:
                    out.write(secrets[secret_id])
                fingerprint = hashlib.sha256(secrets[secret_id].encode()).hexdigest()[:16]
                step["mounted"].append({"id": secret_id, "target": target,
                                        "fingerprint": fingerprint})
            sys.stdout.flush()
            sys.stderr.flush()
            done = subprocess.run(argv, env=env, cwd=CONFIG["rootfs"], check=False,
                                  stdin=subprocess.DEVNULL)
        finally:
            for target in written:
                os.unlink(target)
        step["status"] = done.returncode
        if done.returncode != 0:
            die(f'failed to solve: process "/bin/sh -c {command}" did not complete '
                f"successfully: exit code: {done.returncode}")
    print(f"#{total + 1} DONE", file=sys.stderr)
    record["status"] = 0
    save()


main()
'''


def fake_docker(
    path: Path, *, image: Path, client_env: Mapping[str, str], record: Path, secrets_dir: Path
) -> Path:
    home, rootfs = image / "root", image / "rootfs"
    home.mkdir(parents=True)
    rootfs.mkdir()
    env = {
        "PATH": os.pathsep.join([str(image / "bin"), SYSTEM_PATH]),
        "HOME": str(home),
        **{k: client_env[k] for k in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "PIP_CERT")},
        # The image has no pip configuration; the namespace's /etc/pip.conf is the host's.
        "PIP_CONFIG_FILE": os.devnull,
    }
    if "ARTIFACTS_KEYRING_NOFUSS_DEBUG" in client_env:
        env["ARTIFACTS_KEYRING_NOFUSS_DEBUG"] = client_env["ARTIFACTS_KEYRING_NOFUSS_DEBUG"]
    config = {
        "env": env,
        "record": str(record),
        "rootfs": str(rootfs),
        "secrets_dir": str(secrets_dir),
    }
    return write_script(path, f"#!{sys.executable}\nCONFIG = {json.dumps(config)!s}\n{FAKE_DOCKER}")


@dataclass
class Build:
    done: subprocess.CompletedProcess[str]
    record: dict[str, Any]
    image: Path
    env: dict[str, str]


def docker_build(tmp_path: Path, client_env: Mapping[str, str], secrets_dir: Path) -> Build:
    """The host, signed in with az, runs the docker-build snippet in a build context that has
    the dockerfile snippet as its Dockerfile."""
    assert secrets_dir == Path("/run/secrets")  # where BuildKit mounts secrets by default
    context = tmp_path / "context"
    context.mkdir()
    (context / "Dockerfile").write_text(snippet("dockerfile", "dockerfile"))
    image = python_environment(tmp_path / "image")
    record = tmp_path / "docker-record.json"
    docker = fake_docker(
        tmp_path / "shims" / "docker",
        image=image,
        client_env=client_env,
        record=record,
        secrets_dir=secrets_dir,
    )
    env = on_path(signed_in(client_env), docker.parent)
    done = run_bash(snippet("docker-build", "bash"), env, cwd=context)
    return Build(done, json.loads(record.read_text()), image, env)


def assert_token_stayed_out_of_the_build(sim: Simulator, build: Build) -> None:
    """The token reached docker through its environment only; the build got it as a file, and
    no argument list nor environment of the build had it."""
    secrets = [s for s in sim.issued_secrets() if len(s) >= 8]
    assert "ARTIFACTS_KEYRING_NOFUSS_TOKEN" in build.record["env_keys"]
    seen = [" ".join(build.record["argv"])]
    for step in build.record["steps"]:
        seen.append(" ".join(step["argv"]))
        seen.extend(f"{k}={v}" for k, v in step["env"].items())
        assert "ARTIFACTS_KEYRING_NOFUSS_TOKEN" not in step["env"]
    for text in seen:
        for secret in secrets:
            assert secret not in text, "the token is in the build's argv or environment"
    assert list(Path("/run/secrets").iterdir()) == []  # unmounted after the RUN


@covers("dockerfile", "docker-build")
def test_docker_build_with_a_buildkit_secret(
    sim: Simulator, client_env: dict[str, str], tmp_path: Path, build_secrets: Path
) -> None:
    build = docker_build(tmp_path, client_env, build_secrets)
    assert_ran(sim, build.done)
    assert build.record["status"] == 0
    assert build.record["from"] == "python:3.12-slim"
    (step,) = build.record["steps"]  # the install; the image had keyring and the backend
    assert [m["id"] for m in step["mounted"]] == ["artifacts_keyring_nofuss_token"]
    assert_installed(build.image, build.env)
    assert_token_stayed_out_of_the_build(sim, build)
    # The host exchanged az's token once; the build used what it was handed, as it is.
    assert sim.count("exchange") == 1
    downloads_used(sim, "session")
    fingerprints = {r.credential_fingerprint for r in sim.requests(kind="download")}
    assert fingerprints == {step["mounted"][0]["fingerprint"]}


@covers("dockerfile", "docker-build")
def test_docker_build_failing_is_the_host_commands_status(
    sim: Simulator, client_env: dict[str, str], tmp_path: Path, build_secrets: Path
) -> None:
    # The feed has no tinyfeedpkg this time: pip fails in the build, the build fails, and
    # `ak-nofuss exec` exits with docker's status.
    sim.fail("pkgs.dev.azure.com", rf"/pypi/simple/{PACKAGE}/", [404] * 20)
    build = docker_build(tmp_path, client_env, build_secrets)
    assert build.record["status"] == 1
    assert build.done.returncode == build.record["status"]
    (step,) = build.record["steps"]
    assert step["status"] not in (None, 0)
    assert "did not complete successfully" in build.done.stderr
    assert_no_leak(sim, [build.done.stdout, build.done.stderr])
    assert_token_stayed_out_of_the_build(sim, build)


# --- Codespaces, service principals, managed identity ------------------------------------------


@covers("codespaces")
def test_codespaces(sim: Simulator, client_env: dict[str, str], tmp_path: Path) -> None:
    script = snippet("codespaces", "bash")
    codespaces(Path(client_env["HOME"]), world.ALICE, world.ALICE_PASSWORD)
    python = python_environment(tmp_path / "python")
    env = machine(without_az(client_env), python)  # a Codespace without the Azure CLI
    done = run_bash(script, env)
    assert_ran(sim, done)
    assert_installed(python, env)
    downloads_used(sim, "session")
    (exchange,) = sim.requests(kind="exchange")
    assert exchange.principal == world.ALICE
    grants = [r for r in sim.requests(kind="token") if r.host.startswith("login.")]
    assert {r.client_id for r in grants} == {world.VSCODE_CLIENT_ID}


@covers("service-principal")
def test_service_principal(sim: Simulator, client_env: dict[str, str], tmp_path: Path) -> None:
    script = snippet("service-principal", "bash")
    python = python_environment(tmp_path / "python")
    env = machine(client_env, python)
    done = run_bash(script, env)
    assert_ran(sim, done)
    assert_installed(python, env)
    downloads_used(sim, "entra-app")
    assert sim.count("exchange") == 0
    grants = [r for r in sim.requests(kind="token") if r.host.startswith("login.")]
    assert {(r.grant_type, r.client_id, r.status) for r in grants} == {
        ("client_credentials", world.SP_CONTOSO_SECRET, 200)
    }


@covers("managed-identity")
def test_managed_identity(sim: Simulator, client_env: dict[str, str], tmp_path: Path) -> None:
    script = snippet("managed-identity", "bash")
    sim.enable_managed_identity()
    python = python_environment(tmp_path / "python")
    env = machine(client_env, python)
    done = run_bash(script, env)
    assert_ran(sim, done)
    assert_installed(python, env)
    downloads_used(sim, "entra-app")
    assert sim.count("exchange") == 0
    imds = [r for r in sim.requests(kind="token") if r.host == world.IMDS_ADDRESS]
    assert imds
    assert {(r.client_id, r.status) for r in imds} == {(world.MI_USER_CLIENT_ID, 200)}
