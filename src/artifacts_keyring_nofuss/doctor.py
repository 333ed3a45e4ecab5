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
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from . import config, discovery, exchange, identities
from . import log as _log
from .deadline import Deadline
from .errors import BearerRefused, NofussError, SourceError
from .feeds import Feed, parse_feed_url
from .tokens import Token, describe_time

if TYPE_CHECKING:
    from .http import Http

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
    # A diagnosis never starts a sign-in; it says which command does.
    os.environ[config.NONINTERACTIVE_VAR] = "true"
    report = Report(url)
    with _log.hushed("azure", "msal"):
        _diagnose(report)
    if as_json:
        payload = {
            "url": _log.printable(_log.redact_url(url)),
            "accepted": report.accepted,
            "steps": [asdict(s) for s in report.steps],
        }
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
    else:
        sys.stdout.write(render(report, colour=_colour()))
    return 0 if report.healthy else 1


def _diagnose(report: Report) -> None:
    feed = parse_feed_url(report.url)
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
        + f"; needs {feed.scope} ({'publish' if feed.write else 'read'})",
    )
    _keyring_here(report)
    _keyring_on_path(report)
    _client_settings(report, feed)
    _network_settings(report)
    deadline = Deadline(config.deadline_seconds() * 3)
    from .http import Http

    http = Http(deadline)
    try:
        found = _discovery(report, feed, http)
        chosen = _sources(report, feed, found, deadline)
        if chosen is None:
            return
        credential = _exchange(report, feed, found, chosen, http)
    finally:
        http.close()
    if credential is not None:
        _feed_read(report, feed, credential)
        if report.accepted:
            _path_keyring_answers(report, feed)


# --- keyring: this interpreter, and the `keyring` that pip and uv run --------------------------


def _keyringrc_default() -> tuple[str | None, Path]:
    path = config.keyringrc_path()
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
    from .identities.azure_cli import find_on_path

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


def _path_keyring_answers(report: Report, feed: Feed) -> None:
    """What pip and uv will get: the `keyring` on PATH asked the way they ask."""
    program = _path_keyring()
    if program is None:
        return
    try:  # with the environment run() set: never prompting
        done = subprocess.run(
            [program, "get", feed.url, "VssSessionToken"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=config.deadline_seconds() + 15,
            check=False,
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
    elif not user:
        report.add(
            "uv",
            WARN,
            "keyring provider subprocess, but the URL has no username: uv asks keyring only "
            'with one, or with `authenticate = "always"` on the index',
            f"ak-nofuss setup uv {feed.index_url}",
        )
    else:
        report.add("uv", OK, f"keyring provider subprocess, username {user!r} in the URL")


def _username(url: str) -> str | None:
    from urllib.parse import unquote, urlsplit

    try:
        name = urlsplit(url if "://" in url else "https://" + url).username
    except ValueError:
        return None
    return unquote(name) if name else None


def _network_settings(report: Report) -> None:
    proxy = next(
        (
            f"{v}={os.environ[v]}"
            for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")
            if os.environ.get(v)
        ),
        None,
    )
    bundle_var = next(
        (v for v in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE") if os.environ.get(v)), None
    )
    parts = [f"proxy {proxy}" if proxy else "no proxy"]
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


# --- discovery, identity sources, exchange, the feed ----------------------------------------


def _discovery(report: Report, feed: Feed, http: Http) -> discovery.Discovery | None:
    try:
        found = discovery.discover(feed, http)
    except NofussError as exc:
        report.add(
            "discovery",
            FAIL,
            str(exc),
            "check the URL, the network and the proxy (sources that need no discovery, "
            "such as a given token, may still work)",
        )
        return None
    report.add(
        "discovery",
        OK,
        f"tenant {found.tenant or '(not named: personal accounts)'}, sign-in at "
        f"{found.authority}, token service {found.authorization_endpoint}",
    )
    return found


def _sources(
    report: Report, feed: Feed, found: discovery.Discovery | None, deadline: Deadline
) -> tuple[str, Token] | None:
    try:
        forced, where = config.provider_setting()
        names = identities.chain(forced, where)
    except NofussError as exc:
        report.add("identity", FAIL, str(exc), "fix the provider setting")
        return None
    chosen: tuple[str, Token] | None = None
    for name in names:
        source = identities.load(name)
        if source.needs_discovery and found is None:
            report.add(f"source {name}", INFO, "skipped: needs the discovery that failed")
            continue
        request = identities.TokenRequest(
            feed=feed, tenant=found.tenant if found else None, deadline=deadline
        )
        try:
            got = deadline.run(name, partial(source.get_token, request))
        except NofussError as exc:
            detail, fix = split_fix(str(exc))
            status = FAIL if chosen is None or not isinstance(exc, SourceError) else WARN
            report.add(f"source {name}", status, f"failed: {detail}", fix)
            continue
        if isinstance(got, identities.Unavailable):
            report.add(f"source {name}", INFO, f"does not apply: {got.reason}")
            continue
        report.add(f"source {name}", *_describe_token(got, found, chosen is None))
        if chosen is None and not got.expired():
            chosen = (name, got)
    if chosen is None:
        failed = [s for s in report.steps if s.name.startswith("source ") and s.status == FAIL]
        report.add(
            "identity",
            FAIL,
            "no identity source produced a token",
            f"see the failed {failed[0].name} above: {failed[0].fix}"
            if failed and failed[0].fix
            else f"run `az login`, or `ak-nofuss login {feed.index_url}`, or set one of the "
            "variables the sources above name",
        )
    return chosen


def _describe_token(
    token: Token, found: discovery.Discovery | None, first: bool
) -> tuple[str, str, str | None]:
    from . import claims

    tid = claims.tenant(claims.read_claims(token.secret))
    kind = "given token" if token.as_is else "user token" if token.user else "application token"
    detail = (
        f"{kind} for {token.who}"
        + (f", tenant {tid}" if tid else "")
        + f", expires {describe_time(token.expires_on)}"
        + ("" if first else " (not used: an earlier source applies)")
    )
    if token.expired():
        return FAIL, detail + ": expired", "put a fresh token there, or unset it"
    tenant = found.tenant if found else None
    if tid and tenant and tid.lower() != tenant.lower() and not token.as_is:
        return (
            FAIL,
            detail + f": but the feed's organisation is in tenant {tenant}",
            f"sign in to that tenant: `az login --tenant {tenant}` (or `ak-nofuss login URL`)",
        )
    return OK if first else INFO, detail, None


def _exchange(
    report: Report,
    feed: Feed,
    found: discovery.Discovery | None,
    chosen: tuple[str, Token],
    http: Http,
) -> Token | None:
    name, token = chosen
    if token.as_is or not token.user:
        why = "a given token" if token.as_is else "an application token"
        report.add("exchange", INFO, f"not needed: {name} gave {why}, used as it is")
        return token
    if found is None:
        return None
    try:
        session = exchange.session_token(http, feed, found, token, config.session_minutes())
    except BearerRefused as exc:
        report.add(
            "exchange",
            FAIL,
            str(exc),
            f"{token.who} has no access to organisation {feed.org}: ask one of its "
            "administrators to add this account (or sign in as one that has access)",
        )
        return None
    except NofussError as exc:
        detail, fix = split_fix(str(exc))
        report.add("exchange", FAIL, detail, fix)
        return None
    report.add(
        "exchange",
        OK,
        f"session token with scope {feed.scope} until {describe_time(session.expires_on)}",
    )
    # Kept where a lookup looks for it: the `keyring get` below, and pip's next run, are warm.
    from . import lookup, store

    disk = store.open_store()
    if disk is not None:
        source = identities.load(name)
        lookup.keep_discovery(disk, feed, found)
        lookup.keep(disk, found, feed, lookup.session_identity(name, source, token), session)
    return session


def _feed_read(report: Report, feed: Feed, token: Token) -> None:
    from .probe import answer, refused

    status = answer(feed, token.secret)
    if status is None:
        report.add("feed", FAIL, f"could not reach {feed.index_url}", "check the network")
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


_FIX_MARKERS = ("; run ", ": run ", ": open ", "; open ", "; put ", "; set ", "; use ")


def split_fix(message: str) -> tuple[str, str | None]:
    """(what failed, what to do) from one of our messages, which name the fix after a marker."""
    at = min((i for m in _FIX_MARKERS if (i := message.find(m)) >= 0), default=-1)
    if at < 0:
        return message, None
    return message[:at], message[at + 2 :].strip()


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
