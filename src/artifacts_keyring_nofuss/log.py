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
DEBUG_VAR = "ARTIFACTS_KEYRING_NOFUSS_DEBUG"

_logger = logging.getLogger("artifacts_keyring_nofuss")

# Whatever slips into a message: JWTs, Authorization values, long opaque secrets.
_REDACTIONS = (
    (re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.?[A-Za-z0-9_-]*"), "<jwt redacted>"),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9+/=._~-]{8,}"), r"\1 <redacted>"),
    (re.compile(r"[A-Za-z0-9+/_-]{40,}={0,2}"), "<secret redacted>"),
)


def redact(text: str) -> str:
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


class _StderrHandler(logging.Handler):
    """Writes to whatever sys.stderr is at the time (a host may swap it), one line a record."""

    def emit(self, record: logging.LogRecord) -> None:
        # A log line must never break the client.
        with suppress(Exception):
            message = redact(record.getMessage()).replace("\n", " ").replace("\r", " ")
            sys.stderr.write(PREFIX + message + "\n")
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
