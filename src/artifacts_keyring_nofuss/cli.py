"""`ak-nofuss`: the backend's flow on the command line, for people and for scripts.

stdout carries the answer (a token, a report, a configuration) and nothing else; every
problem is one line on stderr. Exit codes: 0 done, 1 failed (no credential, the feed refused
it, a check failed), 2 wrong usage, 130 interrupted; `exec` exits with its command's status.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shlex
import subprocess
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, NoReturn

from . import __version__
from . import log as _log
from .errors import Failed, NofussError
from .feeds import Feed, parse_feed_url
from .tokens import Token, describe_time

if TYPE_CHECKING:
    from .settings import Settings
    from .signin import Record
    from .store import Store

PROG = "ak-nofuss"
USERNAME = "VssSessionToken"
TOKEN_ENV = "ARTIFACTS_KEYRING_NOFUSS_TOKEN"  # noqa: S105 - a name
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

EXAMPLES = """\
examples:
  ak-nofuss doctor https://pkgs.dev.azure.com/ORG/_packaging/FEED/pypi/simple/
  ak-nofuss login https://pkgs.dev.azure.com/ORG/_packaging/FEED/pypi/simple/
  ak-nofuss token URL --format json
  ak-nofuss exec URL -- \\
      docker build --secret id=artifacts_keyring_nofuss_token,env=ARTIFACTS_KEYRING_NOFUSS_TOKEN .
  ak-nofuss setup uv URL --write
  ak-nofuss status

exit codes: 0 done, 1 failed (the line on stderr says why and what to do), 2 wrong usage,
130 interrupted; exec exits with its command's status.
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # argparse echoes what it could not place: often a URL pasted after the wrong command,
        # with or without its scheme (doctor takes both), so each word is read as a URL too.
        words = " ".join(_log.redact_url(word) for word in message.split(" "))
        shown = _log.printable(_log.redact(words))
        sys.stderr.write(f"{PROG}: {shown} (see `{PROG} --help`)\n")
        raise SystemExit(EXIT_USAGE)


def parser() -> argparse.ArgumentParser:
    top = _Parser(
        prog=PROG,
        description="Azure DevOps Artifacts credentials from the identity this machine has.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    top.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = top.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    doctor = commands.add_parser("doctor", help="check every step for a feed, and say what to fix")
    doctor.add_argument("url", metavar="URL")
    doctor.add_argument("--json", action="store_true", help="a report for machines")

    token = commands.add_parser("token", help="print the credential for a feed")
    token.add_argument("url", metavar="URL")
    token.add_argument("--write", action="store_true", help="a token that may publish")
    token.add_argument(
        "--format",
        choices=("password", "basic", "json", "env"),
        default="password",
        help="password: the token; basic: an Authorization header value; json: username, "
        f"password and expiry; env: {TOKEN_ENV}=... (default: password)",
    )

    run = commands.add_parser("exec", help=f"run a command with {TOKEN_ENV} set for a feed")
    run.add_argument("url", metavar="URL")
    run.add_argument("--write", action="store_true", help="a token that may publish")
    run.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- CMD ...")

    login = commands.add_parser("login", help="sign in without az (browser or device code)")
    login.add_argument("url", metavar="URL", nargs="?", help="a feed, to sign in to its tenant")
    login.add_argument("--device-code", action="store_true", help="never open a browser")
    login.add_argument(
        "--write",
        action="store_true",
        help="with your organisation's own client (ARTIFACTS_KEYRING_NOFUSS_CLIENT_ID): ask "
        "for the publish scope too (an upload URL asks for it anyway)",
    )

    commands.add_parser("logout", help="forget the sign-in and every cached session token")

    status = commands.add_parser("status", help="what is cached (redacted)")
    status.add_argument("--json", action="store_true")

    setup = commands.add_parser("setup", help="the configuration a tool needs for a feed")
    setup.add_argument("tool", choices=("pip", "uv", "poetry", "pdm", "twine"))
    setup.add_argument("url", metavar="URL")
    setup.add_argument("--write", action="store_true", help="write it, after showing it")
    setup.add_argument("--name", default=None, help="the index / repository name to use")
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command is None:
        parser().print_help(sys.stderr)
        return EXIT_USAGE
    try:
        result: int = {
            "doctor": _doctor,
            "token": _token,
            "exec": _exec,
            "login": _login,
            "logout": _logout,
            "status": _status,
            "setup": _setup,
        }[args.command](args)
    except NofussError as exc:  # Failed included
        _say_error(str(exc))
        return EXIT_FAILED
    except KeyboardInterrupt:
        _say_error("interrupted")
        return EXIT_INTERRUPTED
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        _say_error(f"{args.command}: {where}{exc.strerror or type(exc).__name__}")
        return EXIT_FAILED
    except Exception as exc:  # noqa: BLE001 - one line, never a traceback
        _say_error(
            f"{args.command}: unexpected {type(exc).__name__}; please report it with "
            f"{_log.DEBUG_VAR}=1 output"
        )
        return EXIT_FAILED
    return result


def _say_error(message: str) -> None:
    sys.stderr.write(f"{PROG}: {_log.printable(_log.redact(message))}\n")


def feed_of(url: str, write: bool = False, hosts: tuple[str, ...] | None = None) -> Feed:
    feed = parse_feed_url(url, hosts)
    if feed is None:
        raise Failed(
            f"{_log.redact_url(url)!r} is not an Azure Artifacts feed URL; expected "
            "https://pkgs.dev.azure.com/ORG[/PROJECT]/_packaging/FEED/pypi/simple/"
        )
    return feed._replace(write=True) if write and not feed.write else feed


def _credential(url: str, write: bool) -> tuple[Feed, Token]:
    from .lookup import Engine
    from .settings import Settings

    settings = Settings.load()
    feed = feed_of(url, write, settings.extra_hosts)
    return feed, Engine().credential(feed, settings)


# --- token and exec ------------------------------------------------------------------------


def _token(args: argparse.Namespace) -> int:
    _, token = _credential(args.url, args.write)
    if args.format == "password":
        out = token.secret
    elif args.format == "basic":
        pair = f"{USERNAME}:{token.secret}".encode()
        out = "Basic " + base64.b64encode(pair).decode("ascii")
    elif args.format == "env":
        out = f"{TOKEN_ENV}={shlex.quote(token.secret)}"
    else:
        out = json.dumps(
            {
                "username": USERNAME,
                "password": token.secret,
                "expires_on": describe_time(token.expires_on) if token.expires_on else None,
                "scope": token.scope,
                "kind": token.kind,
                "source": token.source,
            }
        )
    sys.stdout.write(out + "\n")
    return EXIT_OK


def _exec(args: argparse.Namespace) -> int:
    command = list(args.cmd)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise Failed("exec needs a command after `--`, e.g. `ak-nofuss exec URL -- make build`")
    program = _which(command[0])
    if program is None:
        raise Failed(f"command not found: {command[0]!r}")
    _, token = _credential(args.url, args.write)
    env = dict(os.environ)
    env[TOKEN_ENV] = token.secret
    try:
        done = subprocess.run([program, *command[1:]], env=env, check=False)
    except OSError as exc:
        raise Failed(f"cannot run {command[0]!r}: {exc.strerror}") from None
    return done.returncode if done.returncode >= 0 else 128 - done.returncode


def _which(name: str) -> str | None:
    """A program by path, or on PATH without the current directory (a checked-out repository
    must not be able to plant a program that receives the token)."""
    if os.sep in name or (os.altsep and os.altsep in name):
        return name if os.access(name, os.X_OK) else None
    from .local import find_on_path

    return find_on_path((name,))


# --- login, logout, status -------------------------------------------------------------------


def _login(args: argparse.Namespace) -> int:
    from . import signin
    from .settings import Settings

    settings = Settings.load()
    tenant = None
    write = bool(args.write)
    if args.url:
        feed = feed_of(args.url, hosts=settings.extra_hosts)
        tenant = _tenant_of(feed, settings)
        write = write or feed.write
    authority = signin.authority_for(tenant, settings)
    scopes = signin.scopes_for(settings, write)
    timeout = settings.device_flow_timeout
    with _log.hushed("msal"):
        session = signin.SignIn(authority, settings)
        if not args.device_code and _browser_available():
            sys.stderr.write(f"{PROG}: opening a browser to sign in to {authority} ...\n")
            result = session.browser(timeout, settings.login_hint, scopes)
        else:

            def say(message: str) -> None:
                sys.stderr.write(f"{PROG}: {message}\n")
                sys.stderr.flush()

            result = session.device_code(say, timeout, scopes)
        record = session.record(result, authority)
    signin.save_record(record)
    granted = f", scopes {record.scopes}" if settings.client_id is not None else ""
    sys.stdout.write(f"signed in as {record.username} (tenant {record.tenant}{granted})\n")
    if not session.encrypted:
        sys.stderr.write(
            f"{PROG}: note: this system offers no keyring to encrypt the sign-in; msal keeps it "
            f"in {session.cache_location}, readable only by you (as az does)\n"
        )
    return EXIT_OK


def _tenant_of(feed: Feed, settings: Settings) -> str | None:
    from .deadline import Deadline
    from .discovery import discover
    from .http import Http

    if feed.extra:
        raise Failed(
            f"{feed.host} is a host declared in ARTIFACTS_CREDENTIALPROVIDER_VSTS_HOSTS, not an "
            "Azure DevOps Services feed: a sign-in is never used for it"
        )
    http = Http(Deadline(settings.deadline), settings.env)
    try:
        return discover(feed, http).tenant
    finally:
        http.close()


def _browser_available() -> bool:
    import webbrowser

    if sys.platform.startswith("linux") and not any(
        os.environ.get(v) for v in ("DISPLAY", "WAYLAND_DISPLAY", "BROWSER")
    ):
        return False
    try:
        webbrowser.get()
    except webbrowser.Error:
        return False
    return True


def _store() -> Store | None:
    """The session-token cache on disk, when it is on and there is somewhere to keep it."""
    from .deadline import Deadline
    from .local import cache_dir
    from .settings import Settings
    from .store import Store

    settings = Settings.load()
    directory = cache_dir(settings.env)
    if not settings.cache or directory is None:
        return None
    return Store(directory, Deadline(settings.deadline))


def _logout(args: argparse.Namespace) -> int:
    from . import signin

    record = signin.load_record()
    disk = _store()
    sessions = len(disk.entries()) if disk is not None else 0
    if disk is not None:
        disk.clear()
    # After the session tokens: a sign-in directory that is not ours is one line, and the
    # cache is gone all the same.
    removed = signin.forget()
    who = f"the sign-in of {record.username}" if record else "no sign-in"
    sys.stdout.write(
        f"forgot {who} and {sessions} cached session token{'s' * (sessions != 1)}"
        + (f" ({len(removed)} file{'s' * (len(removed) != 1)})" if removed else "")
        + "\n"
    )
    return EXIT_OK


def _status(args: argparse.Namespace) -> int:
    from . import signin

    record = signin.load_record()
    disk = _store()
    entries = disk.entries() if disk is not None else []
    rows = [
        {
            "organisation": e.org,
            "scope": e.scope,
            "identity": _log.redact(e.who),
            "expires": describe_time(e.expires_on),
        }
        for e in sorted(entries, key=lambda e: (e.org, e.scope, e.expires_on))
    ]
    refusals = [
        {"organisation": org, "policy": policy, "until": describe_time(until)}
        for org, policy, until in sorted(disk.refusals() if disk is not None else [])
    ]
    held = _scopes_held(record) if record is not None else []
    if args.json:
        signed_in = None
        if record is not None:
            signed_in = {
                "username": record.username,
                "tenant": record.tenant,
                "client_id": record.client_id,
                "scopes": held,
            }
        report = {
            "signed_in": signed_in,
            "cache": str(disk.directory) if disk is not None else None,
            "sessions": rows,
            "session_tokens_refused": refusals,
        }
        sys.stdout.write(_log.redact_urls(json.dumps(report, indent=2)) + "\n")
        return EXIT_OK
    if record is not None:
        client = "" if record.client_id == signin.CLIENT_ID else f", client {record.client_id}"
        sign_in = f"sign-in: {record.username} (tenant {record.tenant}{client}), scopes " + (
            " ".join(held) or "(none held now)"
        )
    else:
        sign_in = "sign-in: none (`ak-nofuss login` signs in without az)"
    lines = [sign_in, f"cache: {disk.directory}" if disk is not None else "cache: off"]
    if rows:
        lines.append("session tokens (the tokens themselves are not shown):")
        lines += [
            f"  {r['organisation']}  {r['scope']}  {r['identity']}  until {r['expires']}"
            for r in rows
        ]
    else:
        lines.append("session tokens: none cached")
    if refusals:
        lines.append("organisations that refuse session tokens (Entra tokens are handed out):")
        lines += [f"  {r['organisation']}  {r['policy']}  until {r['until']}" for r in refusals]
    sys.stdout.write(_log.redact_urls("\n".join(lines)) + "\n")
    return EXIT_OK


def _scopes_held(record: Record) -> list[str]:
    """The scopes msal holds tokens of for this sign-in; the recorded grant when msal's cache
    cannot be read here."""
    from . import signin
    from .settings import Settings

    try:
        with _log.hushed("msal"):
            session = signin.SignIn(record.authority, Settings.load(), record.client_id)
            return session.scopes_held(record)
    except Exception:  # noqa: BLE001 - status shows what it can; msal's cache is msal's
        return record.scopes.split()


# --- doctor and setup ------------------------------------------------------------------------


def _doctor(args: argparse.Namespace) -> int:
    from .doctor import run

    return run(args.url, as_json=args.json)


def _setup(args: argparse.Namespace) -> int:
    from .configure import run

    return run(args.tool, feed_of(args.url), args.url, write=args.write, name=args.name)


if __name__ == "__main__":
    raise SystemExit(main())
