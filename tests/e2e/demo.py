"""A newcomer's first look: the backend, exactly as installed, driven by keyring, pip, uv and
twine against the simulated Azure DevOps, with what the server saw beside each step.

    ./scripts/demo        (which runs: python -m tests.e2e.sim.netns -- python -m tests.e2e.demo)
"""

from __future__ import annotations

import os
import shlex
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from .helpers import build_wheelhouse, client_env_for, run
from .sim import world
from .sim.azcli import az_login
from .sim.log import Record
from .sim.netns import inside_namespace
from .sim.server import Simulator
from .sim.wheels import build_wheel

TTY = sys.stdout.isatty() and os.environ.get("NO_COLOR") is None


def _style(code: str, text: str) -> str:
    return f"\033[{code}m{text}\033[0m" if TTY else text


def bold(text: str) -> str:
    return _style("1", text)


def dim(text: str) -> str:
    return _style("2", text)


def green(text: str) -> str:
    return _style("32", text)


def red(text: str) -> str:
    return _style("31", text)


class Demo:
    def __init__(self, sim: Simulator, env: dict[str, str], work: Path) -> None:
        self.sim = sim
        self.env = env
        self.work = work
        self.seen = 0
        self.step_no = 0
        self.failures = 0

    def step(self, title: str, why: str) -> None:
        self.step_no += 1
        print()
        print(bold(f"{self.step_no}. {title}"))
        print(dim(f"   {why}"))

    def redact(self, text: str) -> str:
        for secret in sorted(self.sim.issued_secrets(), key=len, reverse=True):
            if len(secret) >= 8 and secret in text:
                text = text.replace(secret, f"{secret[:10]}…<{len(secret)} chars>")
        return text

    def run(
        self,
        cmd: Sequence[str],
        *,
        expect_ok: bool = True,
        shown: str | None = None,
        cwd: Path | None = None,
        only: str | None = None,
    ) -> str:
        if shown is None:
            shown = shlex.join([Path(cmd[0]).name, *cmd[1:]]).replace(str(self.work), "$TMP")
        print(f"   $ {shown}")
        done = run(cmd, self.env, timeout=180, cwd=cwd)
        for stream, text in (("out", done.stdout), ("err", done.stderr)):
            lines = [ln for ln in self.redact(text).splitlines() if ln.strip()]
            if only is not None:  # the lines worth reading in a long report
                lines = [ln for ln in lines if any(word in ln for word in only.split("|"))]
            for line in lines[-8:]:
                print(f"     {dim(stream + ' |')} {line}")
        ok = (done.returncode == 0) == expect_ok
        verdict = f"exit {done.returncode}" + ("" if expect_ok else " (as expected)")
        print(f"     {green('✓ ' + verdict) if ok else red('✗ ' + verdict)}")
        if not ok:
            self.failures += 1
        self.server_view()
        return done.stdout

    def server_view(self) -> None:
        records = self.sim.requests()[self.seen :]
        self.seen += len(records)
        if not records:
            print(f"   {dim('server saw: no request at all')}")
            return
        print(f"   {dim('server saw:')}")
        for record in records:
            print(f"     {describe(record)}")


def describe(r: Record) -> str:
    who = r.auth_scheme if r.auth_scheme != "none" else "anonymous"
    if r.credential_kind:
        who += f" ({r.credential_kind})"
    extra = []
    if r.scope:
        extra.append(f"scope={r.scope}")
    if r.grant_type:
        extra.append(f"grant={r.grant_type}")
    path = r.path if len(r.path) <= 64 else r.path[:61] + "..."
    return f"{r.method:<4} {r.host:<28} {path:<64} {r.status}  {r.kind:<9} {who}" + (
        f"  {' '.join(extra)}" if extra else ""
    )


def main() -> int:
    if not inside_namespace():
        print(
            "run me through ./scripts/demo (it makes the private network namespace)",
            file=sys.stderr,
        )
        return 2
    with tempfile.TemporaryDirectory(prefix="nofuss-demo-") as tmp:
        work = Path(tmp)
        with Simulator(work / "sim") as sim:
            house = build_wheelhouse(work / "wheelhouse")
            sim.seed_packages(house.wheels)
            env = client_env_for(work / "client", sim.ca_pem)
            return tour(Demo(sim, env, work))


def tour(demo: Demo) -> int:
    py_bin = Path(sys.executable).parent
    print(bold("artifacts-keyring-nofuss: a tour against a simulated Azure DevOps"))
    print(
        dim(
            "   pkgs.dev.azure.com, vssps.dev.azure.com and login.microsoftonline.com answer on "
            "127.0.0.1 in a private network namespace, over HTTPS with a throwaway CA."
        )
    )
    print(
        dim(
            "   The backend is the installed wheel; keyring is a uv tool with it, as users have it."
        )
    )

    demo.step(
        "Sign in the way a developer does: az login",
        "The fake az keeps its state in ~/.azure and gets tokens from the simulated Entra ID.",
    )
    az_login(demo.env, world.ALICE)
    print(f"   $ az login --username {world.ALICE} --password ******")
    demo.server_view()

    demo.step(
        "keyring get <feed> VssSessionToken (what uv runs)",
        "One anonymous GET finds the tenant and token service; az gives Alice's Entra token;"
        " it is exchanged for a read-only session token.",
    )
    demo.run(["keyring", "get", world.SHARED_INDEX, "VssSessionToken"])

    demo.step(
        "pip install, keyring in subprocess mode, no username in the URL",
        "pip >= 26.2 asks `keyring --mode=creds` after the feed's 401.",
    )
    demo.run(
        [
            str(py_bin / "pip"),
            "install",
            "-q",
            "--no-cache-dir",
            "--target",
            str(demo.work / "pip-target"),
            "--keyring-provider",
            "subprocess",
            "--index-url",
            world.SHARED_INDEX,
            "tinyapp",
        ]
    )

    demo.step(
        "uv pip install with __token__@ in the index URL",
        "uv asks keyring before its first request; it needs a username to ask.",
    )
    demo.run(
        [
            str(py_bin / "uv"),
            "pip",
            "install",
            "--no-cache",
            "--target",
            str(demo.work / "uv-target"),
            "--keyring-provider",
            "subprocess",
            "--index-url",
            world.SHARED_INDEX.replace("https://", "https://__token__@"),
            "tinyapp",
        ]
    )

    demo.step(
        "twine upload to the upload URL",
        "An upload URL gets a session token with vso.packaging_write, and only it does.",
    )
    wheel = build_wheel(demo.work / "dist", "demo-upload", "1.0.0")
    demo.run(
        [
            str(py_bin / "twine"),
            "upload",
            "--non-interactive",
            "--disable-progress-bar",
            "--repository-url",
            world.SHARED_UPLOAD,
            str(wheel),
        ]
    )

    demo.step(
        "A CI job: Azure Pipelines maps $(System.AccessToken)",
        "A token handed over is used as it is: no discovery, no az, no exchange.",
    )
    token = demo.sim.add_pipeline_token(world.ORG_CONTOSO)
    ci_env = dict(demo.env, **demo.sim.pipeline_env(world.ORG_CONTOSO, token))
    saved, demo.env = demo.env, ci_env
    demo.run(
        ["keyring", "get", world.TEAM_INDEX, "VssSessionToken"],
        shown="SYSTEM_ACCESSTOKEN=****** keyring get <team feed> VssSessionToken",
    )
    demo.env = saved

    demo.step(
        "ak-nofuss doctor: what is wrong with my setup?",
        "Every step of a lookup, checked in order, each failure with its fix; here, "
        "Alice asks for an organisation of another tenant.",
    )
    demo.run(
        ["ak-nofuss", "doctor", world.RELEASES_INDEX],
        expect_ok=False,
        only="FAIL|->|ok    discovery|the feed",
    )

    demo.step(
        "A URL that is not Azure Artifacts",
        "Answered with nothing, without a single request and without importing anything.",
    )
    demo.run(["keyring", "get", "https://pypi.org/simple/", "someone"], expect_ok=False)

    demo.step(
        "Signed out: what a user sees",
        "One line on stderr that says what failed and what to do; no traceback.",
    )
    demo.run(["az", "logout"])
    demo.run(["keyring", "get", world.RELEASES_INDEX, "VssSessionToken"], expect_ok=False)

    print()
    if demo.failures:
        print(red(bold(f"{demo.failures} step(s) did not go as expected")))
        return 1
    print(green(bold("Every step went as expected.")) + " Run ./scripts/test for the whole suite.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
