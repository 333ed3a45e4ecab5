"""Our one voice on stderr: debug lines on demand, otherwise only lines that say what to do.

stdout is the password channel of `keyring get`, so nothing here ever writes there. Only this
package's own logger is configured; other libraries' loggers are left as the host set them.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import stat
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

PREFIX = "artifacts-keyring-nofuss: "
# Debug lines say so, so that nobody mistakes them for the one line that asks for action.
DEBUG_PREFIX = "artifacts-keyring-nofuss [debug]: "
DEBUG_VAR = "ARTIFACTS_KEYRING_NOFUSS_DEBUG"
# The official provider's "also write the log to this file": every line, debug included,
# redacted like stderr. Only an absolute path (nothing lands in the current directory) to a
# regular file of this user's that nobody else can read or write: see open_log_file.
LOG_PATH_VAR = "ARTIFACTS_CREDENTIALPROVIDER_LOG_PATH"

_logger = logging.getLogger("artifacts_keyring_nofuss")

# Whatever slips into a message: JWTs, Authorization values, long opaque secrets. GUIDs (tenant
# and client ids), URLs and paths stay readable: debug output is there to be read.
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.?[A-Za-z0-9_-]*")
_AUTH_VALUE = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9+/=._~-]{8,}")
_LONG_RUN = re.compile(r"[A-Za-z0-9+_~.-]{32,}={0,2}")
_GUID = re.compile(r"[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")
# A URL's password is a secret whatever it looks like (short, a word, a PAT): the feed URL
# `https://VssSessionToken:<PAT>@...`, a proxy's `http://user:pass@proxy:8080`. The password
# runs to the last `@` before the path, as URL parsers read it.
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s/?#@:]*):([^\s/?#]*)@")
# Proxy variables may hold a URL without a scheme (`user:pass@proxy:8080`), which the rule
# above cannot tell from other text; as an assignment, their value is known to be a URL.
_PROXY_SETTING = re.compile(r"(?i)\b(\w*proxy)=([^\s,;'\"]+)")
URL_PASSWORD_REDACTED = "<redacted>"  # noqa: S105 - the placeholder


def _secret_like(match: re.Match[str]) -> str:
    run = match.group(0)
    if (
        _GUID.fullmatch(run)
        or "." in run.strip(".")
        or not (any(c.isdigit() for c in run) and any(c.isalpha() for c in run))
    ):
        return run
    return "<secret redacted>"


def printable(text: str) -> str:
    """One line of plain text: a server's words must not drive the user's terminal (escape
    sequences can retitle the window, clear the screen or fake a prompt)."""
    return "".join(c if c.isprintable() else " " if c in "\r\n\t" else "?" for c in text)


def redact_url(url: str) -> str:
    """One URL with its userinfo password replaced; a URL without a scheme (a proxy variable
    may have none) is read as if it had one."""
    marker = url.find("://")
    start = marker + 3 if marker >= 0 else 0
    end = min((i for i in (url.find(c, start) for c in "/?#") if i >= 0), default=len(url))
    userinfo, at, host = url[start:end].rpartition("@")
    user, colon, password = userinfo.partition(":")
    if not (at and colon and password):
        return url
    return f"{url[:start]}{user}:{URL_PASSWORD_REDACTED}@{host}{url[end:]}"


def _url_password(match: re.Match[str]) -> str:
    if not match.group(2):
        return match.group(0)
    return f"{match.group(1)}:{URL_PASSWORD_REDACTED}@"


def redact_urls(text: str) -> str:
    """Every URL password in a text replaced, and nothing else touched: for output that is
    mostly paths and names (status, setup), where the token rules below would be too eager."""
    text = _URL_PASSWORD.sub(_url_password, text)
    return _PROXY_SETTING.sub(lambda m: f"{m.group(1)}={redact_url(m.group(2))}", text)


def redact(text: str) -> str:
    text = redact_urls(text)
    text = _JWT.sub("<jwt redacted>", text)
    text = _AUTH_VALUE.sub(r"\1 <redacted>", text)
    return _LONG_RUN.sub(_secret_like, text)


def _line(record: logging.LogRecord) -> str:
    message = printable(redact(record.getMessage()))
    return (DEBUG_PREFIX if record.levelno < logging.WARNING else PREFIX) + message + "\n"


class _StderrHandler(logging.Handler):
    """Writes to whatever sys.stderr is at the time (a host may swap it), one line a record."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno < logging.WARNING and not debug_enabled():
            return  # the record is here for the log file only
        # A log line must never break the client.
        with suppress(Exception):
            sys.stderr.write(_line(record))
            sys.stderr.flush()


class _FileHandler(logging.Handler):
    """Appends to the file named by LOG_PATH_VAR, opened per line: a keyring process lives for
    one lookup, and the variable may change in a long-lived host. A path we will not write to
    is said once on stderr, then left alone for the life of the process."""

    def emit(self, record: logging.LogRecord) -> None:
        path = log_path()
        if path is None or path in _LOG_REFUSED:
            return
        with suppress(Exception):
            fd, problem = open_log_file(path)
            if fd is None:
                _LOG_REFUSED.add(path)
                sys.stderr.write(
                    PREFIX + printable(f"{LOG_PATH_VAR}: not logging to {path}: {problem}") + "\n"
                )
                sys.stderr.flush()
                return
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(record.created))
            with os.fdopen(fd, "a", encoding="utf-8") as handle:
                handle.write(f"{stamp} [{os.getpid()}] {_line(record)}")


# The log paths this process refused (and said so).
_LOG_REFUSED: set[str] = set()


def open_log_file(path: str) -> tuple[int | None, str]:
    """(a descriptor to append to, "") or (None, why not). Only a regular file of this user's
    that nobody else can read or write, created 0600: never through a link (it could point at
    a file of ours that someone else reads), never blocking (a FIFO would hang the lookup past
    its deadline), never a terminal, a device or stdout (the password channel of `keyring
    get`)."""
    if not os.path.isabs(path):  # noqa: PTH117 - no pathlib here
        return None, "not an absolute path"
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
    for name in ("O_NOFOLLOW", "O_NONBLOCK", "O_NOCTTY", "O_CLOEXEC"):
        flags |= getattr(os, name, 0)
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return None, "it is a symbolic link" + _link_hint(path)
        if exc.errno == errno.ENXIO:
            return None, "it is not a regular file (a FIFO, a socket or a device)"
        return None, exc.strerror or type(exc).__name__
    try:
        problem = unfit_log_file(os.fstat(fd), _stdout_identity())
    except OSError as exc:
        problem = exc.strerror or type(exc).__name__
    if problem:
        os.close(fd)
        return None, problem
    return fd, ""


def unfit_log_file(info: os.stat_result, stdout: tuple[int, int] | None) -> str:
    """Why an opened file must not receive the log, or ""."""
    if stat.S_ISCHR(info.st_mode):
        return "it is a terminal or a device, not a file"
    if not stat.S_ISREG(info.st_mode):
        return "it is not a regular file (a FIFO, a socket or a device)"
    if stdout == (info.st_dev, info.st_ino):
        return "it is this process's stdout, which carries the credential"
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        return "it belongs to another user"
    if sys.platform != "win32" and info.st_nlink != 1:
        # Where anyone may link to a file they do not own (no fs.protected_hardlinks), a name
        # another user made for a private file of ours passes every check above.
        return "it has another name (a hard link), which may be a file of ours it is not"
    if sys.platform != "win32" and stat.S_IMODE(info.st_mode) & 0o066:
        return "group or others can read or write it (chmod 600 it)"
    return ""


def _link_hint(path: str) -> str:
    """What a refused link leads to, for the line that says why (stat never opens it)."""
    try:
        info = os.stat(path)  # noqa: PTH116 - no pathlib here
    except OSError:
        return ""
    if (info.st_dev, info.st_ino) == _stdout_identity():
        return " to this process's stdout, which carries the credential"
    if not stat.S_ISREG(info.st_mode):
        return " to something that is not a regular file"
    return " (name the file itself)"


def _stdout_identity() -> tuple[int, int] | None:
    try:
        info = os.fstat(1)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def debug_enabled() -> bool:
    return os.environ.get(DEBUG_VAR, "").strip().lower() in ("1", "true", "yes", "on")


def log_path() -> str | None:
    """The log file asked for, as given: a relative one is refused (and said) when first used,
    never created in the current directory."""
    return os.environ.get(LOG_PATH_VAR, "").strip() or None


def logger() -> logging.Logger:
    if not _logger.handlers:
        _logger.addHandler(_StderrHandler())
        _logger.addHandler(_FileHandler())
        _logger.propagate = False
    verbose = debug_enabled() or log_path() is not None
    _logger.setLevel(logging.DEBUG if verbose else logging.WARNING)
    return _logger


def debug(message: str, *args: object) -> None:
    log = logger()
    if log.isEnabledFor(logging.DEBUG):
        log.debug(message, *args)


def warn(message: str, *args: object) -> None:
    logger().warning(message, *args)


class _Forward(logging.Handler):
    """Turns another library's warnings into our debug lines (one line, redacted)."""

    def emit(self, record: logging.LogRecord) -> None:
        with suppress(Exception):
            first = record.getMessage().strip().splitlines()
            debug("%s: %s", record.name, first[0] if first else "")


@contextmanager
def hushed(*names: str) -> Iterator[None]:
    """While a library call runs, keep its multi-paragraph warnings off the user's terminal.

    azure-identity logs WARNING on every failed credential; with no handler configured,
    Python's last-resort handler would print them. Only for the duration of our call, its
    loggers get our forwarding handler and stop propagating, then are restored as they were.
    """
    handler = _Forward(level=logging.WARNING)
    saved: list[tuple[logging.Logger, bool]] = []
    for name in names:
        other = logging.getLogger(name)
        saved.append((other, other.propagate))
        other.addHandler(handler)
        other.propagate = False
    try:
        yield
    finally:
        for other, propagate in saved:
            other.removeHandler(handler)
            other.propagate = propagate
