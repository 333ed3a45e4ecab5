"""`ak-nofuss doctor URL`: every step a lookup takes, checked in order on the same code paths as
the backend, each failing step with what to do. Exit 0 only when the feed accepted the
credential. It never prompts and never prints a token.
"""

from __future__ import annotations

import configparser
import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from . import devops, identities
from . import log as _log
from . import trace as _trace
from .errors import NofussError
from .feeds import Feed, parse_feed_url
from .settings import NONINTERACTIVE_VAR, Settings, keyringrc_path
from .tokens import Token, describe_time

if TYPE_CHECKING:
    from .configure import UvAdvice

OK, WARN, FAIL, INFO = "ok", "warn", "fail", "info"
BACKEND_CLASS = "AzureArtifactsBackend"
INSTALL_HINT = "uv tool install keyring --with artifacts-keyring-nofuss"
KEYRING_BACKEND_VAR = "PYTHON_KEYRING_BACKEND"


@dataclass
class Step:
    name: str
    status: str
    detail: str
    fix: str | None = None


@dataclass
class Report:
    url: str
    steps: list[Step] = field(default_factory=list)
    accepted: bool = False
    # The lookup's own trace, as it ran: the same data the one line and debug output render.
    trace: list[dict[str, str | None]] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        """The feed took the credential and nothing on the way to pip or uv is broken."""
        return self.accepted and not any(s.status == FAIL for s in self.steps)

    def add(self, name: str, status: str, detail: str, fix: str | None = None) -> Step:
        step = Step(name, status, self._shown(detail), None if fix is None else self._shown(fix))
        self.steps.append(step)
        return step

    def _shown(self, text: str) -> str:
        # The URL as typed may have no scheme, which redact() cannot recognise as a URL.
        text = text.replace(self.url, _log.redact_url(self.url)) if self.url else text
        return _log.printable(_log.redact(text))


def run(url: str, as_json: bool) -> int:
    # A diagnosis never starts a sign-in; it says which command does (its lookup runs with
    # prompts off, and so does the `keyring get` it runs).
    report = Report(url)
    with _log.hushed("azure", "msal"):
        _diagnose(report)
    if as_json:
        payload = {
            "url": _log.printable(_log.redact_url(url)),
            "accepted": report.accepted,
            "steps": [asdict(s) for s in report.steps],
            "trace": report.trace,
        }
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
    else:
        sys.stdout.write(render(report, colour=_colour()))
    return 0 if report.healthy else 1


def _diagnose(report: Report) -> None:
    try:
        settings: Settings | None = Settings.load()
    except NofussError as exc:
        settings = None
        problem = exc
    feed = parse_feed_url(report.url, settings.extra_hosts if settings else None)
    if feed is None:
        report.add(
            "url",
            FAIL,
            f"{report.url!r} is not an Azure Artifacts feed URL",
            "use https://pkgs.dev.azure.com/ORG[/PROJECT]/_packaging/FEED/pypi/simple/ "
            "(or /pypi/upload/ to publish)",
        )
        return
    report.add(
        "url",
        OK,
        f"organisation {feed.org}, project {feed.project or '(none)'}, feed {feed.feed}"
        + (f", view {feed.view}" if feed.view else "")
        + f"; needs {feed.scope} ({'publish' if feed.write else 'read'})"
        + ("; a host declared as Azure DevOps: handed-over tokens only" if feed.extra else ""),
    )
    _keyring_here(report)
    _keyring_on_path(report)
    _client_settings(report, feed)
    _network_settings(report, feed)
    if settings is None:
        report.add("settings", FAIL, problem.what, problem.fix)
        return
    if not feed.extra:
        _azure_cli(report, settings)
    credential = _lookup(report, feed, settings)
    if credential is not None:
        _feed_read(report, feed, credential, settings)
        if report.accepted:
            _path_keyring_answers(report, feed, settings.deadline)


# --- keyring: this interpreter, and the `keyring` that pip and uv run --------------------------


def _keyringrc_default() -> tuple[str | None, Path | None]:
    path = keyringrc_path()
    if path is None:
        return None, None
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
        return parser.get("backend", "default-keyring", fallback=None), path
    except (configparser.Error, OSError, UnicodeDecodeError):
        return None, path


def _version(distribution: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return "?"


def _shadowing() -> tuple[str, str] | None:
    """(what forces another backend, the fix), for this Python and the `keyring` on PATH alike:
    both read the same variable and the same keyringrc.cfg."""
    forced = os.environ.get(KEYRING_BACKEND_VAR, "").strip()
    if forced and BACKEND_CLASS not in forced:
        return f"{KEYRING_BACKEND_VAR}={forced}", f"unset {KEYRING_BACKEND_VAR}"
    default, rc_path = _keyringrc_default()
    if default and BACKEND_CLASS not in default:
        return (
            f"{rc_path} ([backend] default-keyring = {default})",
            f"remove that line from {rc_path}",
        )
    return None


def _path_keyring() -> str | None:
    """The `keyring` that pip's subprocess mode and uv run (never the current directory's)."""
    from .local import find_on_path

    return find_on_path(("keyring.exe", "keyring") if sys.platform == "win32" else ("keyring",))


def _keyring_here(report: Report) -> None:
    import keyring

    active = keyring.get_keyring()
    names = [type(b).__name__ for b in getattr(active, "backends", [active])]
    shadow = _shadowing()
    if BACKEND_CLASS in names:
        report.add(
            "keyring (this Python)",
            OK,
            f"{BACKEND_CLASS} is active in {sys.executable} (keyring {_version('keyring')})",
        )
    elif shadow is not None:
        what, fix = shadow
        report.add("keyring (this Python)", FAIL, f"{what} shadows this backend", fix)
    else:
        report.add(
            "keyring (this Python)",
            FAIL,
            f"keyring in {sys.executable} uses {', '.join(names)}, not {BACKEND_CLASS}",
            "reinstall: pip install --force-reinstall artifacts-keyring-nofuss",
        )


def _keyring_on_path(report: Report) -> None:
    program = _path_keyring()
    if program is None:
        report.add(
            "keyring (on PATH)",
            WARN,
            "no `keyring` command on PATH: uv and pip's subprocess mode cannot ask this backend",
            INSTALL_HINT,
        )
        return
    try:
        done = subprocess.run(
            [program, "--list-backends"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=30,
            check=False,
        )
        listed = done.stdout.decode("utf-8", "replace")
    except (OSError, subprocess.TimeoutExpired) as exc:
        report.add("keyring (on PATH)", FAIL, f"{program} --list-backends failed: {exc}")
        return
    shadow = _shadowing()
    if BACKEND_CLASS not in listed:
        report.add(
            "keyring (on PATH)",
            FAIL,
            f"{program} (the one pip and uv run) does not load this backend",
            f"{INSTALL_HINT} (or install artifacts-keyring-nofuss next to that keyring)",
        )
    elif shadow is not None:
        what, fix = shadow
        report.add(
            "keyring (on PATH)", FAIL, f"{program} loads this backend, but {what} shadows it", fix
        )
    else:
        report.add("keyring (on PATH)", OK, f"{program} loads this backend")


def _path_keyring_answers(report: Report, feed: Feed, timeout: float) -> None:
    """What pip and uv will get: the `keyring` on PATH asked the way they ask."""
    program = _path_keyring()
    if program is None:
        return
    try:
        done = subprocess.run(
            [program, "get", feed.url, "VssSessionToken"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout + 15,
            check=False,
            env={**os.environ, NONINTERACTIVE_VAR: "true"},  # never prompting
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        report.add("keyring get", FAIL, f"`keyring get` on PATH failed: {exc}")
        return
    if done.returncode == 0 and done.stdout.strip():
        report.add("keyring get", OK, f"`{program} get URL VssSessionToken` returns a credential")
    else:
        said = done.stderr.decode("utf-8", "replace").strip().splitlines()
        report.add(
            "keyring get",
            FAIL,
            f"`{program} get` returned nothing" + (f": {said[-1]}" if said else ""),
            "fix the keyring steps above (a missing backend, PYTHON_KEYRING_BACKEND or a "
            f"keyringrc.cfg default-keyring); if they are ok: {INSTALL_HINT}",
        )


# --- the clients' own settings -------------------------------------------------------------


def _client_settings(report: Report, feed: Feed) -> None:
    pip_provider = os.environ.get("PIP_KEYRING_PROVIDER", "").strip()
    uv_provider = os.environ.get("UV_KEYRING_PROVIDER", "").strip()
    user = _username(report.url)
    pip_detail = f"keyring provider {pip_provider or 'auto (the default)'}"
    no_input = os.environ.get("PIP_NO_INPUT", "").strip().lower() in ("1", "true", "yes", "on")
    if pip_provider in ("", "auto") and no_input:
        report.add(
            "pip",
            WARN,
            "PIP_NO_INPUT is set, and pip's `auto` keyring provider is off without input: "
            "pip will not ask keyring",
            "set PIP_KEYRING_PROVIDER=import (keyring in pip's environment) or subprocess",
        )
    elif pip_provider == "disabled":
        report.add(
            "pip",
            FAIL,
            pip_detail + ": pip will never ask keyring",
            "unset PIP_KEYRING_PROVIDER or set it to subprocess",
        )
    else:
        report.add(
            "pip",
            OK if user else INFO,
            pip_detail
            + (
                ""
                if user
                else "; no username in the URL: pip >= 26.2 asks keyring anyway, "
                "older pip needs one (https://VssSessionToken@...)"
            ),
        )
    if uv_provider != "subprocess":
        report.add(
            "uv",
            WARN,
            f"UV_KEYRING_PROVIDER is {uv_provider or 'unset'}: uv asks keyring only with "
            "`subprocess` (here, or keyring-provider in uv.toml / pyproject.toml)",
            f"ak-nofuss setup uv {feed.index_url}",
        )
    elif (advice := _uv_advice(report.url, feed)) is not None:
        report.add("uv", WARN, f"keyring provider subprocess, but {advice.what}", advice.fix)
    else:
        report.add("uv", OK, f"keyring provider subprocess, username {user!r} in the URL")


def _uv_advice(url: str, feed: Feed) -> UvAdvice | None:
    """What the index URL's form costs or breaks with uv (measured: bench/run), if anything."""
    from .configure import uv_index_advice

    text = url if "://" in url else "https://" + url
    return uv_index_advice(text)


def _username(url: str) -> str | None:
    from urllib.parse import unquote, urlsplit

    try:
        name = urlsplit(url if "://" in url else "https://" + url).username
    except ValueError:
        return None
    return unquote(name) if name else None


def _network_settings(report: Report, feed: Feed) -> None:
    from .http import NO_PROXY_VARS, PROXY_VARS, first_set, proxy_for

    # The variable the lookup takes its proxy from, and whether NO_PROXY skips it for this
    # feed: what the requests will really do.
    found = first_set(os.environ, PROXY_VARS)
    no_proxy = first_set(os.environ, NO_PROXY_VARS)
    if found is None:
        proxy = "no proxy"
    elif no_proxy is not None and proxy_for(feed.index_url, os.environ) is None:
        proxy = f"no proxy ({no_proxy[0]} names {feed.host})"
    else:
        # Redacted here, where the value is known to be one URL: a password may hold `;` or
        # `,`, where the rule for `..._PROXY=` in free text has to stop.
        proxy = f"proxy {found[0]}={_log.redact_url(found[1])}"
    bundle_var = next(
        (v for v in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE") if os.environ.get(v)), None
    )
    parts = [proxy]
    if bundle_var is None:
        parts.append("the system's trust store")
        report.add("network", INFO, ", ".join(parts))
        return
    bundle = os.environ[bundle_var]
    if not Path(bundle).is_file():
        report.add(
            "network",
            FAIL,
            f"{bundle_var}={bundle} does not exist",
            f"point {bundle_var} at your proxy's CA certificate (PEM), or unset it",
        )
        return
    parts.append(f"CA certificates from {bundle_var}={bundle}")
    report.add("network", INFO, ", ".join(parts))


def _azure_cli(report: Report, settings: Settings) -> None:
    """Which az a lookup would run, and whether its release is known to break us."""
    from .azversion import az_version, known_problem
    from .identities.azure_cli import find_az

    az = find_az()
    if az is None:
        report.add("azure cli", INFO, "no `az` on PATH (the azure_cli source does not apply)")
        return
    version = az_version(az, timeout=min(5.0, settings.az_timeout))
    if version is None:
        report.add("azure cli", INFO, f"{az}, version unknown")
        return
    problem = known_problem(version)
    if problem is not None:
        what, _, fix = problem.partition(": ")
        report.add("azure cli", WARN, f"{az} is azure-cli {version}: {what}", fix or None)
        return
    report.add("azure cli", INFO, f"{az} is azure-cli {version}")


# --- the lookup, as its trace tells it -----------------------------------------------------

_KINDS = {
    devops.GIVEN: "a handed-over token",
    devops.USER: "a user's Entra token",
    devops.APPLICATION: "an application token",
    devops.SESSION: "a session token",
}


def _lookup(report: Report, feed: Feed, settings: Settings) -> Token | None:
    """The lookup itself (never prompting), and each step it took, as the trace says."""
    from .lookup import Engine

    result = Engine().run(feed, settings.never_prompting())
    failed = result.token is None
    report.trace = [
        {
            "stage": step.stage,
            "name": step.name,
            "outcome": step.outcome,
            "what": _log.printable(_log.redact(step.what)),
            "fix": _log.printable(_log.redact(step.fix)) if step.fix else None,
        }
        for step in result.trace.steps
    ]
    for step in result.trace.steps:
        _show(report, step, failed)
    if result.token is None:
        stop = result.trace.stopped()
        fixes = [
            s.fix
            for s in result.trace.steps
            if s.fix and s.outcome in (_trace.FAILED, _trace.REFUSED, _trace.STOPPED)
        ]
        report.add(
            "identity",
            FAIL,
            (stop.sentence() if stop is not None else "no identity source produced a token"),
            fixes[0]
            if fixes
            else f"run `az login`, or `ak-nofuss login {feed.index_url}`, or set one of the "
            "variables the sources above name",
        )
        return None
    token = result.token
    asked = result.trace.asked()
    later = [n for n in identities.chain(settings.provider, settings.provider_where)]
    rest = later[later.index(asked[-1]) + 1 :] if asked and asked[-1] in later else []
    if token.kind in (devops.GIVEN, devops.APPLICATION):
        report.add(
            "exchange",
            INFO,
            f"not needed: {token.source} gave {_KINDS[token.kind]}, used as it is",
        )
    report.add("credential", OK, describe_credential(token))
    if rest:
        report.add("not asked", INFO, f"{', '.join(rest)} (an earlier source answered)")
    return token


def describe_credential(token: Token) -> str:
    """What pip will be handed: which kind of token, for whom, with which rights, until when."""
    from . import claims

    what = _KINDS[token.kind]
    if token.kind == devops.GIVEN:
        what += (
            " (a JWT)" if claims.read_claims(token.secret) else " (a PAT, or another opaque token)"
        )
    scope = token.scope
    if token.kind == devops.USER and scope in (None, devops.DEFAULT_SCOPE):
        scope = "user_impersonation: everything the user may do in Azure DevOps"
    elif token.kind == devops.APPLICATION:
        scope = "what the application is granted in the organisation"
    elif token.kind == devops.GIVEN:
        scope = "whatever it was minted with"
    return (
        f"{what} for {token.who} from {token.source}, scope {scope}, expires "
        f"{describe_time(token.expires_on)}"
    )


def _show(report: Report, step: _trace.Step, failed: bool) -> None:
    """One step of the trace as a report line: the same words, a status for a person."""
    outcome = step.outcome
    if step.stage == _trace.DISCOVERY:
        if outcome == _trace.APPLIED:
            report.add("discovery", OK, step.what)
        else:
            report.add(
                "discovery",
                FAIL,
                step.what,
                step.fix or "check the URL, the network and the proxy",
            )
        return
    if step.stage == _trace.SETTINGS:
        report.add("settings", FAIL, step.what, step.fix)
        return
    name = {
        _trace.SOURCE: f"source {step.name}",
        _trace.CACHE: "cache",
        _trace.PROBE: "cached token",
        _trace.EXCHANGE: "exchange",
    }.get(step.stage, step.name)
    if outcome == _trace.STOPPED:
        report.add(name, FAIL, f"failed: {step.what}", step.fix)
    elif outcome == _trace.APPLIED:
        report.add(name, OK, step.what)
    elif outcome == _trace.FELL_BACK:
        report.add(name, WARN, step.what, step.fix)
    elif outcome in (_trace.NOT_HERE, _trace.SKIPPED, _trace.INFO):
        # Not this machine's way in: what would make it one, in the line itself.
        prefix = "does not apply: " if outcome == _trace.NOT_HERE else ""
        report.add(name, INFO, prefix + step.sentence())
    elif outcome == _trace.UNAVAILABLE:
        report.add(name, WARN if failed else INFO, f"does not apply: {step.what}", step.fix)
    else:  # failed, refused, expired: a FAIL only when nothing after it answered
        word = {_trace.REFUSED: "refused", _trace.EXPIRED: "expired"}.get(outcome, "failed")
        report.add(name, FAIL if failed else WARN, f"{word}: {step.what}", step.fix)


def _feed_read(report: Report, feed: Feed, token: Token, settings: Settings) -> None:
    from .deadline import Deadline
    from .probe import answer, refused

    # A token handed over is sent where the user sends it; on a declared host, nothing else is.
    status = answer(
        feed,
        token.secret,
        settings.env,
        Deadline(settings.deadline),
        declared_host_ok=token.kind == devops.GIVEN,
    )
    if status is None:
        report.add("feed", FAIL, f"could not reach {feed.index_url}", "check the network")
    elif (refused(status) or status == 403) and _a_pat(token):
        report.add(
            "feed",
            FAIL,
            f"{feed.index_url} refused the handed-over PAT ({status}): global PATs (for all "
            "organisations) stopped working on 2026-12-01, and a PAT also needs the Packaging "
            "scope",
            f"create an organisation-scoped PAT for {feed.org} with Packaging (Read) (Read & "
            "write to publish) and hand that over, or let a sign-in answer instead (unset the "
            f"variable {token.source} read)",
        )
    elif refused(status) or status == 403:
        report.add(
            "feed",
            FAIL,
            f"{feed.index_url} refused the credential ({status}) for {token.who}",
            f"ask an owner of feed {feed.feed} to grant {token.who} Feed Reader "
            "(Feed Publisher to upload)",
        )
    elif status == 404:
        report.add(
            "feed",
            FAIL,
            f"{feed.index_url} does not exist (404)",
            "check the organisation, project and feed names",
        )
    elif status >= 400:
        report.add("feed", FAIL, f"{feed.index_url} answered {status}", "try again later")
    else:
        report.accepted = True
        report.add("feed", OK, f"{feed.index_url} accepted the credential ({status})")


def _a_pat(token: Token) -> bool:
    from . import claims

    return token.kind == devops.GIVEN and claims.read_claims(token.secret) is None


# --- output ----------------------------------------------------------------------------------


def _colour() -> bool:
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


MARKS = {OK: ("ok  ", "32"), WARN: ("warn", "33"), FAIL: ("FAIL", "31"), INFO: ("    ", "2")}


def render(report: Report, colour: bool) -> str:
    lines = [f"ak-nofuss doctor {_log.printable(_log.redact_url(report.url))}"]
    width = max((len(s.name) for s in report.steps), default=0)
    for step in report.steps:
        mark, code = MARKS[step.status]
        shown = f"\033[{code}m{mark}\033[0m" if colour else mark
        lines.append(f"  {shown}  {step.name.ljust(width)}  {step.detail}")
        if step.fix:
            lines.append(f"  {' ' * 4}  {' ' * width}  -> {step.fix}")
    if report.healthy:
        verdict = "the feed accepted the credential: pip, uv and twine will get it"
    elif report.accepted:
        verdict = (
            "the feed accepts the credential, but pip or uv will not get it: fix the FAIL above"
        )
    else:
        verdict = "the feed did not accept a credential: fix the first FAIL above"
    lines.append(verdict)
    return "\n".join(lines) + "\n"
