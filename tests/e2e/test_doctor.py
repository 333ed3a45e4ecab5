"""`ak-nofuss doctor URL`: for every failure the suite can stage, the report names the broken step
and what to do about it, and the command exits 1; it exits 0 only when the feed accepted the
credential. It never prompts and never prints a token.

Each case asserts on what a user reads: the step's line (`FAIL  <step>  <detail>`) and the
`-> <fix>` line under it; some also on `--json`.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .helpers import run
from .scenarios import REPO, as_service_principal, signed_in, spoken, with_user
from .sim import world
from .sim.server import Simulator

BARE_KEYRING_BIN = REPO / ".e2e" / "bare" / "bin"  # keyring without our backend
INSTALL_HINT = "uv tool install keyring --with artifacts-keyring-nofuss"
FAIL_KEYRING = "keyring.backends.fail.Keyring"
STEP_LINE = re.compile(r"^  (?P<mark>ok  |warn|FAIL|    )  (?P<name>\S.*?)  +(?P<detail>.*)$")
FIX_LINE = re.compile(r"^ +-> (?P<fix>.*)$")


@dataclass
class Shown:
    """One step as the text report shows it."""

    mark: str  # "ok", "warn", "FAIL" or "" (information)
    name: str
    detail: str
    fix: str | None

    @property
    def text(self) -> str:
        return self.detail + ("\n-> " + self.fix if self.fix else "")


def shown_steps(stdout: str) -> list[Shown]:
    steps: list[Shown] = []
    for line in stdout.splitlines():
        fix = FIX_LINE.match(line)
        if fix is not None and steps:
            steps[-1].fix = fix["fix"]
            continue
        match = STEP_LINE.match(line)
        if match is not None:
            steps.append(Shown(match["mark"].strip(), match["name"], match["detail"], None))
    return steps


def step(stdout: str, name: str) -> Shown:
    found = [s for s in shown_steps(stdout) if s.name == name]
    assert len(found) == 1, f"no single step {name!r} in:\n{stdout}"
    return found[0]


def json_step(report: dict[str, Any], name: str) -> dict[str, Any]:
    found = [s for s in report["steps"] if s["name"] == name]
    assert len(found) == 1, f"no single step {name!r} in {report['steps']}"
    step: dict[str, Any] = found[0]
    return step


@dataclass(frozen=True)
class Ran:
    """What a doctor run showed, with every secret the simulator knows replaced by its
    fingerprint (so that no failing assertion can print one), and the fingerprints of the
    secrets that were there (`leaks`: empty, or doctor printed a token)."""

    code: int
    out: str
    err: str
    leaks: tuple[str, ...]
    seconds: float


def redact(sim: Simulator, text: str) -> tuple[str, list[str]]:
    found = []
    for secret in sorted((s for s in sim.issued_secrets() if len(s) >= 8), key=len, reverse=True):
        if secret in text:
            found.append(sim.fingerprint(secret))
            text = text.replace(secret, f"<secret {sim.fingerprint(secret)}>")
    return text, sorted(found)


def doctor(sim: Simulator, env: Mapping[str, str], url: str, *args: str) -> Ran:
    started = time.monotonic()
    done = run(["ak-nofuss", "doctor", url, *args], env, timeout=120)
    seconds = time.monotonic() - started
    out, leaked_out = redact(sim, done.stdout)
    err, leaked_err = redact(sim, done.stderr)
    return Ran(done.returncode, out, err, tuple(sorted({*leaked_out, *leaked_err})), seconds)


def first_fail(stdout: str) -> Shown:
    fails = [s for s in shown_steps(stdout) if s.mark == "FAIL"]
    assert fails, f"no FAIL step in:\n{stdout}"
    return fails[0]


# --- all good --------------------------------------------------------------------------------


def test_all_good_every_step_ok_and_exit_0(sim: Simulator, client_env: dict[str, str]) -> None:
    # A URL with the username uv needs, uv and pip told to ask keyring (pip's default `auto`
    # is off under the suite's PIP_NO_INPUT): nothing left to warn about.
    env = signed_in(
        dict(client_env, UV_KEYRING_PROVIDER="subprocess", PIP_KEYRING_PROVIDER="subprocess")
    )
    done = doctor(sim, env, with_user(world.SHARED_INDEX, "VssSessionToken"))

    assert done.code == 0, done.out + done.err
    assert spoken(done.err) == [], done.err
    steps = shown_steps(done.out)
    not_ok = [f"{s.mark} {s.name}: {s.detail}" for s in steps if s.mark not in ("ok", "")]
    assert not_ok == [], done.out
    ok = {s.name for s in steps if s.mark == "ok"}
    for name in (
        "url",
        "keyring (this Python)",
        "keyring (on PATH)",
        "pip",
        "uv",
        "discovery",
        "source azure_cli",
        "exchange",
        "feed",
        "keyring get",
    ):
        assert name in ok, done.out
    assert "alice@contoso.com" in step(done.out, "source azure_cli").detail
    assert "accepted the credential (200)" in step(done.out, "feed").detail
    assert done.out.rstrip().endswith("pip, uv and twine will get it")
    assert done.leaks == ()
    # One exchange: doctor keeps its session token where lookups look, so the `keyring get` it
    # runs as pip and uv would (and pip's next run) is warm.
    assert [r.scope for r in sim.requests(kind="exchange")] == ["vso.packaging"]


def test_all_good_json_says_accepted(sim: Simulator, client_env: dict[str, str]) -> None:
    env = signed_in(client_env)
    done = doctor(sim, env, world.SHARED_INDEX, "--json")

    assert done.code == 0, done.out + done.err
    report = json.loads(done.out)
    assert report["accepted"] is True
    assert report["url"] == world.SHARED_INDEX
    assert [s["name"] for s in report["steps"] if s["status"] == "fail"] == []
    assert json_step(report, "feed")["status"] == "ok"
    assert json_step(report, "keyring get")["status"] == "ok"
    assert done.leaks == ()


# --- no identity -----------------------------------------------------------------------------


def test_not_signed_in_fails_the_identity_step(sim: Simulator, client_env: dict[str, str]) -> None:
    done = doctor(sim, client_env, world.SHARED_INDEX)

    assert done.code == 1, done.out + done.err
    identity = step(done.out, "identity")
    assert identity.mark == "FAIL", done.out
    assert identity.fix is not None, done.out
    assert "az login" in identity.fix
    assert f"ak-nofuss login {world.SHARED_INDEX}" in identity.fix
    assert first_fail(done.out).name == "identity", done.out
    # Each source says why it did not apply; az's names the tenant to sign in to.
    assert f"az login --tenant {world.T_CONTOSO}" in (step(done.out, "source azure_cli").fix or "")
    assert "fix the first FAIL above" in done.out
    assert sim.count("exchange") == 0


def test_not_signed_in_json(sim: Simulator, client_env: dict[str, str]) -> None:
    done = doctor(sim, client_env, world.SHARED_INDEX, "--json")

    assert done.code == 1, done.out + done.err
    report = json.loads(done.out)
    assert report["accepted"] is False
    identity = json_step(report, "identity")
    assert identity["status"] == "fail"
    assert "az login" in identity["fix"]
    assert f"ak-nofuss login {world.SHARED_INDEX}" in identity["fix"]
    assert [s["name"] for s in report["steps"] if s["status"] == "fail"] == ["identity"]
    assert "feed" not in {s["name"] for s in report["steps"]}


def test_doctor_never_prompts(sim: Simulator, client_env: dict[str, str]) -> None:
    # A device code sign-in would succeed if doctor started one: it must not.
    sim.set_device_flow(user=world.BOB, approve_after_polls=1, interval=1)
    done = doctor(sim, client_env, world.SHARED_INDEX)

    assert done.code == 1, done.out + done.err
    assert done.seconds < 15, f"doctor took {done.seconds:.1f} s with nobody signed in"
    assert sim.count("devicecode") == 0
    assert "microsoft.com/devicelogin" not in done.out + done.err
    interactive = step(done.out, "source interactive")
    assert f"ak-nofuss login {world.SHARED_INDEX}" in interactive.detail


# --- the wrong tenant ------------------------------------------------------------------------


def test_wrong_tenant_names_az_login_with_the_feeds_tenant(
    sim: Simulator, client_env: dict[str, str]
) -> None:
    env = signed_in(client_env)  # alice, of contoso; the releases feed is fabrikam's
    done = doctor(sim, env, world.RELEASES_INDEX)

    assert done.code == 1, done.out + done.err
    assert world.T_FABRIKAM in step(done.out, "discovery").detail
    azure_cli = step(done.out, "source azure_cli")
    assert azure_cli.mark == "FAIL", done.out
    assert "failed" in azure_cli.detail
    assert f"az login --tenant {world.T_FABRIKAM}" in azure_cli.text, done.out
    assert first_fail(done.out).name == "source azure_cli", done.out
    assert step(done.out, "identity").mark == "FAIL"
    assert sim.count("exchange") == 0


def test_wrong_tenant_json_carries_the_fix(sim: Simulator, client_env: dict[str, str]) -> None:
    done = doctor(sim, signed_in(client_env), world.RELEASES_INDEX, "--json")
    report = json.loads(done.out)
    azure_cli = json_step(report, "source azure_cli")
    assert azure_cli["status"] == "fail"
    assert azure_cli["fix"] == f"run `az login --tenant {world.T_FABRIKAM}`"
    # The identity step points at the fix that helps, not at a generic `az login`.
    assert f"az login --tenant {world.T_FABRIKAM}" in json_step(report, "identity")["fix"]


def test_pip_without_input_does_not_ask_keyring(sim: Simulator, client_env: dict[str, str]) -> None:
    # The suite's client_env sets PIP_NO_INPUT=1, as CI images often do.
    done = doctor(sim, signed_in(client_env), world.SHARED_INDEX)
    pip = step(done.out, "pip")
    assert pip.mark == "warn", done.out
    assert "PIP_NO_INPUT" in pip.detail
    assert "PIP_KEYRING_PROVIDER=import" in pip.text
    assert done.code == 0  # a warning is not a failure: the feed accepted the credential


# --- keyring: the one pip and uv run, and what shadows the backend ---------------------------


def test_keyring_on_path_without_the_backend(sim: Simulator, client_env: dict[str, str]) -> None:
    env = signed_in(client_env)
    env["PATH"] = os.pathsep.join([str(BARE_KEYRING_BIN), env["PATH"]])
    done = doctor(sim, env, world.SHARED_INDEX)

    on_path = step(done.out, "keyring (on PATH)")
    assert on_path.mark == "FAIL", done.out
    assert str(BARE_KEYRING_BIN / "keyring") in on_path.detail
    assert "does not load this backend" in on_path.detail
    assert on_path.fix is not None, done.out
    assert INSTALL_HINT in on_path.fix
    assert first_fail(done.out).name == "keyring (on PATH)", done.out
    # pip and uv would get nothing from that keyring: the command must not exit 0, and the
    # report must not say they will get the credential.
    assert done.code == 1, "a FAIL step, yet exit 0:\n" + done.out
    assert "pip, uv and twine will get it" not in done.out, done.out


def test_python_keyring_backend_shadows_the_backend(
    sim: Simulator, client_env: dict[str, str]
) -> None:
    env = signed_in(dict(client_env, PYTHON_KEYRING_BACKEND=FAIL_KEYRING))
    done = doctor(sim, env, world.SHARED_INDEX)

    on_path = step(done.out, "keyring (on PATH)")
    assert on_path.mark == "FAIL", done.out
    assert f"PYTHON_KEYRING_BACKEND={FAIL_KEYRING}" in on_path.detail
    assert on_path.fix == "unset PYTHON_KEYRING_BACKEND", done.out
    here = step(done.out, "keyring (this Python)")
    assert here.mark == "FAIL", done.out
    assert here.fix == "unset PYTHON_KEYRING_BACKEND", done.out
    assert done.code == 1, "a FAIL step, yet exit 0:\n" + done.out
    assert "pip, uv and twine will get it" not in done.out, done.out


def test_keyringrc_default_keyring_shadows_the_backend(
    sim: Simulator, client_env: dict[str, str]
) -> None:
    env = signed_in(client_env)
    rc = Path(env["XDG_CONFIG_HOME"]) / "python_keyring" / "keyringrc.cfg"
    rc.parent.mkdir(parents=True)
    rc.write_text(f"[backend]\ndefault-keyring = {FAIL_KEYRING}\n", encoding="utf-8")
    done = doctor(sim, env, world.SHARED_INDEX)

    on_path = step(done.out, "keyring (on PATH)")
    assert on_path.mark == "FAIL", done.out
    assert str(rc) in on_path.detail
    assert FAIL_KEYRING in on_path.detail
    assert on_path.fix == f"remove that line from {rc}", done.out
    here = step(done.out, "keyring (this Python)")
    assert here.mark == "FAIL", done.out
    assert str(rc) in here.text
    assert done.code == 1, "a FAIL step, yet exit 0:\n" + done.out
    assert "pip, uv and twine will get it" not in done.out, done.out


# --- the service refuses ---------------------------------------------------------------------


def test_user_without_access_to_the_organisation(
    sim: Simulator, client_env: dict[str, str]
) -> None:
    env = signed_in(client_env)
    sim.grant(world.ALICE, "contoso", None)  # alice is no longer a member of contoso
    done = doctor(sim, env, world.SHARED_INDEX)

    assert done.code == 1, done.out + done.err
    # The token service refuses to exchange a token of someone without access: that step fails.
    exchange = step(done.out, "exchange")
    assert exchange.mark == "FAIL", done.out
    assert first_fail(done.out).name == "exchange", done.out
    assert "alice@contoso.com" in exchange.detail
    assert "'contoso'" in exchange.detail
    assert "TF400813" in exchange.detail
    assert exchange.fix is not None, done.out
    assert "admin" in exchange.fix
    assert "feed" not in {s.name for s in shown_steps(done.out)}
    (refused,) = sim.requests(kind="exchange")
    assert refused.status == 401


def test_feed_refuses_an_application_without_a_feed_role(
    sim: Simulator, client_env: dict[str, str]
) -> None:
    env = as_service_principal(client_env)
    sim.grant(world.SP_CONTOSO_SECRET, "contoso", None)
    done = doctor(sim, env, world.SHARED_INDEX)

    assert done.code == 1, done.out + done.err
    assert step(done.out, "source azure_identity").mark == "ok", done.out
    assert "not needed" in step(done.out, "exchange").detail
    feed = step(done.out, "feed")
    assert feed.mark == "FAIL", done.out
    assert "refused the credential" in feed.detail
    assert world.SP_CONTOSO_SECRET in feed.detail
    assert feed.fix is not None, done.out
    assert "Feed Reader" in feed.fix
    assert "shared" in feed.fix
    assert world.SP_CONTOSO_SECRET in feed.fix
    assert first_fail(done.out).name == "feed", done.out
    assert "keyring get" not in {s.name for s in shown_steps(done.out)}


def test_feed_refusal_json(sim: Simulator, client_env: dict[str, str]) -> None:
    env = as_service_principal(client_env)
    sim.grant(world.SP_CONTOSO_SECRET, "contoso", None)
    done = doctor(sim, env, world.SHARED_INDEX, "--json")

    assert done.code == 1, done.out + done.err
    report = json.loads(done.out)
    assert report["accepted"] is False
    feed = json_step(report, "feed")
    assert feed["status"] == "fail"
    assert "Feed Reader" in feed["fix"]
    assert world.SP_CONTOSO_SECRET in feed["fix"]
    assert done.leaks == ()


def test_never_signed_in_to_the_organisation(sim: Simulator, client_env: dict[str, str]) -> None:
    env = signed_in(client_env)
    sim.set_never_signed_in(world.ALICE, "contoso")  # TF401444
    done = doctor(sim, env, world.SHARED_INDEX)

    assert done.code == 1, done.out + done.err
    failed = first_fail(done.out)
    assert failed.name in ("exchange", "source azure_cli"), done.out
    assert "https://dev.azure.com/contoso" in failed.text, done.out
    assert "browser" in failed.text
    (refused,) = sim.requests(kind="exchange")
    assert refused.extra.get("refused") == "TF401444"


# --- the URL and the network -----------------------------------------------------------------


def test_a_url_that_is_not_a_feed_stops_at_the_url_step(
    sim: Simulator, client_env: dict[str, str]
) -> None:
    env = signed_in(client_env)
    sim.reset()  # az signing in spoke to Entra; from here on nothing may be asked
    done = doctor(sim, env, "https://pypi.org/simple/")

    assert done.code == 1, done.out + done.err
    steps = shown_steps(done.out)
    assert [(s.mark, s.name) for s in steps] == [("FAIL", "url")], done.out
    assert "not an Azure Artifacts feed URL" in steps[0].detail
    assert steps[0].fix is not None
    assert "https://pkgs.dev.azure.com/ORG[/PROJECT]/_packaging/FEED/pypi/simple/" in steps[0].fix

    as_json = doctor(sim, env, "https://pypi.org/simple/", "--json")
    assert as_json.code == 1
    report = json.loads(as_json.out)
    assert report["accepted"] is False
    assert [(s["name"], s["status"]) for s in report["steps"]] == [("url", "fail")]
    assert "pypi/simple" in report["steps"][0]["fix"]
    assert sim.requests() == []


def test_a_ca_bundle_that_does_not_exist(sim: Simulator, client_env: dict[str, str]) -> None:
    env = signed_in(client_env)
    env["REQUESTS_CA_BUNDLE"] = "/nonexistent"
    done = doctor(sim, env, world.SHARED_INDEX)

    assert done.code == 1, done.out + done.err
    network = step(done.out, "network")
    assert network.mark == "FAIL", done.out
    assert "REQUESTS_CA_BUNDLE=/nonexistent does not exist" in network.detail
    assert network.fix is not None
    assert "REQUESTS_CA_BUNDLE" in network.fix
    assert first_fail(done.out).name == "network", done.out
    assert sim.count("exchange") == 0


# --- the Azure CLI a lookup would run ---------------------------------------------------------


def test_doctor_names_the_az_release_and_warns_about_a_known_bad_one(
    sim: Simulator, client_env: dict[str, str]
) -> None:
    env = signed_in(client_env)
    fine = step(doctor(sim, env, world.SHARED_INDEX).out, "azure cli")
    assert fine.mark == ""
    assert "is azure-cli 2." in fine.detail
    bad = doctor(sim, dict(env, FAKE_AZ_VERSION="2.83.0"), world.SHARED_INDEX)
    shown = step(bad.out, "azure cli")
    assert shown.mark == "warn"
    assert "azure-cli 2.83.0" in shown.detail and "Azure/azure-cli#32853" in shown.detail
    assert shown.fix is not None and "az upgrade" in shown.fix
    # A warning, not a failure: the lookup itself worked.
    assert bad.code == 0 or first_fail(bad.out).name != "azure cli"
