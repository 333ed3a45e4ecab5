"""This machine: where our files live, where programs are found, and how files are read.

Everything that differs between Linux, macOS and Windows, or that a local attacker could steer
(a relative directory, the current directory on PATH, a FIFO or a link where a file should be),
is decided here and nowhere else. Nothing here imports more than the standard library: the
warm path uses it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, NamedTuple

APP_DIR = "artifacts-keyring-nofuss"
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)


def home(environ: Mapping[str, str] | None = None) -> Path | None:
    """The user's home directory as an absolute path, or None: with HOME unset and no passwd
    entry (a container run as an arbitrary uid) there is none, and nothing may then land
    relative to the current directory."""
    env = os.environ if environ is None else environ
    value = env.get("USERPROFILE" if sys.platform == "win32" else "HOME", "")
    if value:
        found = Path(value)
        return found if found.is_absolute() else None
    try:
        found = Path.home()
    except (RuntimeError, KeyError, OSError):
        return None
    return found if found.is_absolute() else None


def _absolute(value: str | None) -> Path | None:
    if value and Path(value).is_absolute():
        return Path(value)
    return None


def cache_dir(environ: Mapping[str, str] | None = None) -> Path | None:
    """Where the session-token cache lives (what platformdirs' user_cache_dir says; not
    imported: it costs 17 ms on every warm lookup). None when no absolute one exists."""
    env = os.environ if environ is None else environ
    base = home(env)
    if sys.platform == "win32":
        local = _absolute(env.get("LOCALAPPDATA")) or (base and base / "AppData" / "Local")
        return local / APP_DIR / "Cache" if local else None
    if sys.platform == "darwin":
        return base / "Library" / "Caches" / APP_DIR if base else None
    root = _absolute(env.get("XDG_CACHE_HOME")) or (base and base / ".cache")
    return root / APP_DIR if root else None


def data_dir(environ: Mapping[str, str] | None = None) -> Path | None:
    """Where the interactive sign-in lives: the data directory, which cleaners leave alone."""
    env = os.environ if environ is None else environ
    base = home(env)
    if sys.platform == "win32":
        local = _absolute(env.get("LOCALAPPDATA")) or (base and base / "AppData" / "Local")
        return local / APP_DIR / "Data" if local else None
    if sys.platform == "darwin":
        return base / "Library" / "Application Support" / APP_DIR if base else None
    root = _absolute(env.get("XDG_DATA_HOME")) or (base and base / ".local" / "share")
    return root / APP_DIR if root else None


def config_home(environ: Mapping[str, str] | None = None) -> Path | None:
    """XDG_CONFIG_HOME, else ~/.config (pip, uv and keyring read their files there on Linux
    and macOS)."""
    env = os.environ if environ is None else environ
    base = home(env)
    return _absolute(env.get("XDG_CONFIG_HOME")) or (base and base / ".config")


def find_on_path(names: tuple[str, ...], path: str | None = None) -> str | None:
    """The first of `names` on PATH, never from the current directory or a relative entry.

    Windows looks in the current directory first by default; a checked-out repository must not
    be able to plant an `az.cmd` (or a `keyring`, or the program `exec` hands a token) there.
    """
    search = os.environ.get("PATH", "") if path is None else path
    try:
        cwd: Path | None = Path.cwd().resolve()
    except OSError:
        cwd = None
    for entry in search.split(os.pathsep):
        if not entry or not Path(entry).is_absolute():
            continue
        directory = Path(entry)
        try:
            if cwd is not None and directory.resolve() == cwd:
                continue
        except OSError:
            continue
        for name in names:
            candidate = directory / name
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
    return None


# --- programs we run: az, ~/ado-auth-helper ----------------------------------------------------

# A token answer is a few kilobytes; az's errors a few lines.
OUTPUT_LIMIT = 1024 * 1024
# Once the program has exited, how long its output may take to drain: a child it left behind
# (telemetry, a daemon) may hold the pipes open long after the answer is complete.
_DRAIN = 0.5


class Ran(NamedTuple):
    returncode: int
    stdout: bytes
    stderr: bytes


class TooMuchOutput(Exception):
    """The program printed more than we read; it was stopped."""


class _Reader:
    """Reads one pipe on a thread of its own, up to a limit; kills the program past it."""

    def __init__(self, pipe: IO[bytes], limit: int, stop: Callable[[], None]) -> None:
        import threading

        self.chunks: list[bytes] = []
        self.overflow = False
        self._pipe, self._limit, self._stop = pipe, limit, stop
        self.thread = threading.Thread(target=self._read, name="nofuss-output", daemon=True)
        self.thread.start()

    def _read(self) -> None:
        size = 0
        try:
            while True:
                chunk = os.read(self._pipe.fileno(), 65536)
                if not chunk:
                    return
                size += len(chunk)
                if size > self._limit:
                    self.overflow = True
                    self._stop()
                    return
                self.chunks.append(chunk)
        except OSError:
            return
        finally:
            # Closed only here: another thread closing it while this one reads could hand the
            # number to a new file, read from in its place.
            self._pipe.close()

    def data(self) -> bytes:
        return b"".join(list(self.chunks))


def run_program(command: list[str], timeout: float, limit: int = OUTPUT_LIMIT) -> Ran:
    """Run a program with no stdin and return its exit status and outputs, once it has exited.

    subprocess.run(capture_output=True) waits for the end of its outputs, not of the program:
    a child it leaves behind holding them turns an answer into a timeout, and it keeps what a
    runaway program prints, gigabytes within a lookup's deadline. Here each output is read up
    to `limit` bytes (TooMuchOutput past it, the program killed), and once the program has
    exited what it printed is taken as it is. subprocess.TimeoutExpired after `timeout`
    seconds (the program killed), OSError when it cannot be started.
    """
    import subprocess

    process = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )

    def stop() -> None:
        with contextlib.suppress(OSError):
            process.kill()

    assert process.stdout is not None and process.stderr is not None  # noqa: S101 - PIPE
    readers = [_Reader(process.stdout, limit, stop), _Reader(process.stderr, limit, stop)]
    try:
        returncode = process.wait(timeout)
    except subprocess.TimeoutExpired:
        stop()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(_DRAIN)
        raise
    end = time.monotonic() + _DRAIN
    for reader in readers:
        reader.thread.join(max(0.0, end - time.monotonic()))
    if any(reader.overflow for reader in readers):
        raise TooMuchOutput(f"more than {limit // 1024} KiB")
    return Ran(returncode, readers[0].data(), readers[1].data())


def read_regular(path: Path, limit: int, own: bool = False) -> bytes | None:
    """A regular file's bytes when it has at most `limit` of them; None for anything else.

    Never blocks (a FIFO planted where a file should be would hang the lookup), never reads
    /dev/zero into memory. Links are followed: az's and Kubernetes' files are often links.
    `own`: only a file of ours that nobody else may write (else they could plant what we read);
    the file the link leads to is what is checked.
    """
    try:
        fd = os.open(path, _READ_FLAGS)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return None
        if (
            own
            and sys.platform != "win32"
            and (info.st_uid != os.getuid() or stat.S_IMODE(info.st_mode) & 0o022)
        ):
            return None
        return _read_all(fd, limit)
    except OSError:
        return None
    finally:
        os.close(fd)


def _read_all(fd: int, limit: int) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    data = b"".join(chunks)
    return data if len(data) <= limit else None


def private_problem(info: os.stat_result) -> str | None:
    """Why a file of ours may not be trusted, or None: what a private file must be."""
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file"
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        return "owned by another user"
    if sys.platform != "win32" and stat.S_IMODE(info.st_mode) & 0o077:
        return "readable or writable by group or others"
    return None


class Unsafe(Exception):
    """A private file that exists but may not be trusted; the message says why."""


def read_private(path: Path, limit: int) -> bytes | None:
    """The bytes of a regular file of ours that nobody else can read or write; None when it
    does not exist; Unsafe (with the reason) for a link, a FIFO, a foreign or open file, or one
    larger than `limit`. Never follows a link, never blocks."""
    try:
        fd = os.open(path, _READ_FLAGS | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise Unsafe(exc.strerror or type(exc).__name__) from None
    try:
        problem = private_problem(os.fstat(fd))
        if problem:
            raise Unsafe(problem)
        data = _read_all(fd, limit)
    except OSError as exc:
        raise Unsafe(exc.strerror or type(exc).__name__) from None
    finally:
        os.close(fd)
    if data is None:
        raise Unsafe("too large")
    return data


def private_directory(directory: Path) -> str | None:
    """Make `directory` (and its parents) exist, ours and 0700; None when it is, else why it
    cannot be used. A link, another user's directory, one others may enter, or one below a
    directory anyone may rename things in is refused: what we put there would be theirs to
    read or replace."""
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
        directory.mkdir(mode=0o700, exist_ok=True)
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    exposed = exposed_ancestor(directory)
    if exposed is not None:
        return exposed
    return private_dir_problem(directory, tighten=True) or None


# --- the rules for a directory and the files in it that hold secrets ---------------------------

MISSING = "it does not exist"
_NO_FOLLOW = getattr(os, "O_NOFOLLOW", 0)


def private_dir_problem(directory: Path, tighten: bool) -> str:
    """ "" when `directory` is a directory of ours, not a link, that only we can enter (made so
    when `tighten` and it was looser); otherwise why it must not hold a secret."""
    if sys.platform == "win32":
        return ""  # the profile directory's ACL is the user's
    try:
        info = os.lstat(directory)
    except FileNotFoundError:
        return MISSING
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    if stat.S_ISLNK(info.st_mode):
        return "it is a symbolic link"
    if not stat.S_ISDIR(info.st_mode):
        return "it is not a directory"
    if info.st_uid != os.getuid():
        return "it belongs to another user"
    if not stat.S_IMODE(info.st_mode) & 0o077:
        return ""
    if not tighten:
        return "group or others can enter it"
    try:
        # Through a descriptor of the directory itself: the name may not be swapped for a link
        # between the check and the change.
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _NO_FOLLOW)
        try:
            if os.fstat(fd).st_ino != info.st_ino:
                return "it changed while being checked"
            os.fchmod(fd, 0o700)
        finally:
            os.close(fd)
    except OSError as exc:
        return f"group or others can enter it ({exc.strerror})"
    return ""


def exposed_ancestor(directory: Path) -> str | None:
    """Who, besides us and root, can rename a directory above `directory` (or anything in
    it), said as "<who> can rename <what> (<why>)"; None when nobody can. Whoever can, can put
    a directory of theirs in our directory's place between a check and a write: anyone, in a
    directory writable by all without the sticky bit; its owner, in any directory of theirs,
    sticky bit or not (a shared XDG_DATA_HOME another user made). The directories a link in
    the path leads to are checked as well as the names."""
    if sys.platform == "win32":
        return None
    real = Path(os.path.realpath(directory))
    for parent in dict.fromkeys([*directory.parents, *real.parents]):
        try:
            info = parent.stat()
        except OSError:
            continue
        if info.st_mode & stat.S_IWOTH and not info.st_mode & stat.S_ISVTX:
            return f"anyone can rename {parent} (writable by all, without the sticky bit)"
        if info.st_uid not in (0, os.getuid()):
            return (
                f"uid {info.st_uid} can rename anything in {parent} (it is theirs, sticky bit "
                "or not)"
            )
    return None


def private_file_problem(path: Path) -> str:
    """ "" when `path` does not exist, or is a regular file of ours (made 0600 if it was looser);
    otherwise why it must not be written or read: a link (to a file the planter reads), a
    FIFO, somebody else's file."""
    if sys.platform == "win32":
        return ""
    try:
        fd = os.open(path, os.O_RDONLY | _NO_FOLLOW | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        return ""
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "it is a symbolic link"
        if exc.errno == errno.ENXIO:
            return "it is not a regular file"
        return exc.strerror or type(exc).__name__
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return "it is not a regular file"
        if info.st_uid != os.getuid():
            return "it belongs to another user"
        if stat.S_IMODE(info.st_mode) & 0o077:
            os.fchmod(fd, 0o600)
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    finally:
        os.close(fd)
    return ""
