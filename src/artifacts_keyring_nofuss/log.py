"""Our one voice on stderr: debug lines on demand, otherwise only lines that say what to do.

stdout is the password channel of `keyring get`, so nothing here ever writes there. Only this
package's own logger is configured; other libraries' loggers are left as the host set them.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress

PREFIX = "artifacts-keyring-nofuss: "
# Debug lines say so, so that nobody mistakes them for the one line that asks for action.
DEBUG_PREFIX = "artifacts-keyring-nofuss [debug]: "
DEBUG_VAR = "ARTIFACTS_KEYRING_NOFUSS_DEBUG"

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


class _StderrHandler(logging.Handler):
    """Writes to whatever sys.stderr is at the time (a host may swap it), one line a record."""

    def emit(self, record: logging.LogRecord) -> None:
        # A log line must never break the client.
        with suppress(Exception):
            message = printable(redact(record.getMessage()))
            prefix = DEBUG_PREFIX if record.levelno < logging.WARNING else PREFIX
            sys.stderr.write(prefix + message + "\n")
            sys.stderr.flush()


def debug_enabled() -> bool:
    return os.environ.get(DEBUG_VAR, "").strip().lower() in ("1", "true", "yes", "on")


def logger() -> logging.Logger:
    if not _logger.handlers:
        _logger.addHandler(_StderrHandler())
        _logger.propagate = False
    _logger.setLevel(logging.DEBUG if debug_enabled() else logging.WARNING)
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
