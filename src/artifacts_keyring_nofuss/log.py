"""Our one voice on stderr: debug lines on demand, otherwise only lines that say what to do.

stdout is the password channel of `keyring get`, so nothing here ever writes there. Only this
package's own logger is configured; other libraries' loggers are left as the host set them.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

PREFIX = "artifacts-keyring-nofuss: "
# Debug lines say so, so that nobody mistakes them for the one line that asks for action.
DEBUG_PREFIX = "artifacts-keyring-nofuss [debug]: "
DEBUG_VAR = "ARTIFACTS_KEYRING_NOFUSS_DEBUG"
# The official provider's "also write the log to this file": every line, debug included,
# redacted like stderr. Only an absolute path: nothing lands in the current directory.
LOG_PATH_VAR = "ARTIFACTS_CREDENTIALPROVIDER_LOG_PATH"

_logger = logging.getLogger("artifacts_keyring_nofuss")

# Whatever slips into a message: JWTs, Authorization values, long opaque secrets. GUIDs (tenant
# and client ids), URLs and paths stay readable: debug output is there to be read.
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.?[A-Za-z0-9_-]*")
_AUTH_VALUE = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9+/=._~-]{8,}")
_LONG_RUN = re.compile(r"[A-Za-z0-9+_~.-]{32,}={0,2}")
_GUID = re.compile(r"[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")


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


def redact(text: str) -> str:
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
    """Appends to the file named by LOG_PATH_VAR (created 0600), opened per line: a keyring
    process lives for one lookup, and the variable may change in a long-lived host."""

    def emit(self, record: logging.LogRecord) -> None:
        path = log_path()
        if path is None:
            return
        with suppress(Exception):
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(record.created))
            with os.fdopen(fd, "a", encoding="utf-8") as handle:
                handle.write(f"{stamp} [{os.getpid()}] {_line(record)}")


def debug_enabled() -> bool:
    return os.environ.get(DEBUG_VAR, "").strip().lower() in ("1", "true", "yes", "on")


def log_path() -> str | None:
    value = os.environ.get(LOG_PATH_VAR, "").strip()
    return value if value and os.path.isabs(value) else None  # noqa: PTH117 - no pathlib here


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
