"""The cache that outlives the process: session tokens and discovery results, nothing else.

Never an Entra bearer token, never an application token: those are minted by the identity the
machine has, cheaply, and are worth more to a thief. The file is 0600 in a 0700 directory,
replaced atomically, and ignored (then rewritten) when it is corrupt, foreign-owned or readable
by anyone else. Writers hold a per-key lock so that parallel cold lookups mint one token.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import stat
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeGuard

from . import log as _log

APP_DIR = "artifacts-keyring-nofuss"
FILE_NAME = "sessions.json"
FORMAT = 1
MAX_FILE = 1024 * 1024
DISCOVERY_TTL = 24 * 3600
LOCK_TIMEOUT = 90.0
_MAX_STAMP = 10**12  # far beyond any real expiry, far below float's limits
CACHE_VARS = (
    ("ARTIFACTS_KEYRING_NOFUSS_CACHE", ("0", "false", "no", "off")),
    ("ARTIFACTS_CREDENTIALPROVIDER_SESSIONTOKENCACHE_ENABLED", ("0", "false", "no", "off")),
)


def enabled() -> bool:
    return all(os.environ.get(name, "").strip().lower() not in off for name, off in CACHE_VARS)


def cache_dir() -> Path | None:
    """The user's cache directory, as platformdirs computes it (not imported: it costs 17 ms
    on every warm lookup, which is most of our budget); None when no absolute one can be found,
    for the cache must never land relative to the current directory."""
    try:
        home = Path.home()
    except (RuntimeError, KeyError):
        home = Path()
    if sys.platform == "win32":
        local = os.environ.get("LOCALAPPDATA", "")
        base = Path(local) if local else home / "AppData" / "Local"
        found = base / APP_DIR / "Cache"
    elif sys.platform == "darwin":
        found = home / "Library" / "Caches" / APP_DIR
    else:
        xdg = os.environ.get("XDG_CACHE_HOME", "")
        found = (Path(xdg) if xdg and Path(xdg).is_absolute() else home / ".cache") / APP_DIR
    return found if found.is_absolute() else None


def open_store() -> Store | None:
    """The on-disk store, unless switched off or there is nowhere safe to put it."""
    if not enabled():
        return None
    directory = cache_dir()
    if directory is None:
        _log.debug("cache: no absolute cache directory (HOME?); not caching")
        return None
    return Store(directory)


def session_key(token_service: str, scope: str, identity: str) -> str:
    return hashlib.sha256(f"{token_service}\n{scope}\n{identity}".encode()).hexdigest()


def discovery_key(host: str, org: str) -> str:
    return f"{host}/{org}"


@dataclass(frozen=True)
class Entry:
    """A session token as kept on disk, with what `status` may show about it."""

    token: str
    expires_on: float
    org: str
    scope: str
    identity: str
    who: str


class Store:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = self.directory / FILE_NAME

    # --- reading: no lock, the file is only ever replaced whole ---------------------------

    def load(self) -> dict[str, Any]:
        data = self._read()
        if data is None:
            return {"version": FORMAT, "discovery": {}, "sessions": {}}
        return data

    def _read(self) -> dict[str, Any] | None:
        raw = read_private(self.path, MAX_FILE)
        if raw is None:
            return None
        if len(raw) > MAX_FILE:
            _log.debug("cache: %s is too large; it will be replaced", self.path)
            return None
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            _log.debug("cache: %s is corrupt; it will be replaced", self.path)
            return None
        if (
            not isinstance(data, dict)
            or data.get("version") != FORMAT
            or not isinstance(data.get("discovery"), dict)
            or not isinstance(data.get("sessions"), dict)
        ):
            _log.debug("cache: %s has an unknown layout; it will be replaced", self.path)
            return None
        return data

    def discovery(
        self, host: str, org: str, now: float | None = None
    ) -> dict[str, str | None] | None:
        entry = self.load()["discovery"].get(discovery_key(host, org))
        if not isinstance(entry, dict):
            return None
        expires = entry.get("expires")
        if not _number(expires):
            return None
        if expires <= (time.time() if now is None else now):
            return None
        values: dict[str, str | None] = {}
        for name in ("tenant", "authority", "token_service"):
            value = entry.get(name)
            if not (value is None or isinstance(value, str)):
                return None
            values[name] = value
        return values

    def session(self, key: str, margin: float, now: float | None = None) -> Entry | None:
        raw = self.load()["sessions"].get(key)
        entry = _entry(raw)
        if entry is None:
            return None
        if entry.expires_on - margin <= (time.time() if now is None else now):
            return None
        return entry

    def entries(self) -> list[Entry]:
        found = (_entry(raw) for raw in self.load()["sessions"].values())
        return [e for e in found if e is not None]

    # --- writing: under a lock, atomically -------------------------------------------------

    @contextlib.contextmanager
    def locked(self, name: str, timeout: float | None = None) -> Iterator[None]:
        """Hold the lock for `name` across processes (or carry on unlocked if it cannot be had:
        a stuck lock must cost time, not the install)."""
        from filelock import FileLock, Timeout

        if not self._ensure_directory():
            yield
            return
        digest = hashlib.sha256(name.encode()).hexdigest()[:16]
        wait = LOCK_TIMEOUT if timeout is None else timeout
        lock = FileLock(str(self.directory / f"{digest}.lock"), timeout=wait, mode=0o600)
        try:
            lock.acquire()
        except (Timeout, OSError) as exc:
            _log.debug("cache: no lock for %s (%s); going on without it", name, exc)
            yield
            return
        try:
            yield
        finally:
            lock.release()

    def put_session(self, key: str, entry: Entry) -> None:
        self._update(lambda data: data["sessions"].__setitem__(key, asdict(entry)))

    def drop_session(self, key: str) -> None:
        self._update(lambda data: data["sessions"].pop(key, None))

    def put_discovery(self, host: str, org: str, values: dict[str, str | None]) -> None:
        def change(data: dict[str, Any]) -> None:
            data["discovery"][discovery_key(host, org)] = {
                **values,
                "expires": time.time() + DISCOVERY_TTL,
            }

        self._update(change)

    def drop_discovery(self, host: str, org: str) -> None:
        self._update(lambda data: data["discovery"].pop(discovery_key(host, org), None))

    def clear(self) -> int:
        """Forget every session token; returns how many there were."""
        count = len(self.load()["sessions"])
        self._update(lambda data: data["sessions"].clear())
        return count

    def _update(self, change: Any) -> None:
        if not self._ensure_directory():
            return
        with self.locked(FILE_NAME):
            data = self.load()
            change(data)
            _prune(data)
            self._write(data)

    def _write(self, data: dict[str, Any]) -> None:
        payload = json.dumps(data, separators=(",", ":")).encode("utf-8")
        try:
            # mkstemp creates the file 0600 from the start, never following a link.
            fd, temp = tempfile.mkstemp(prefix=".sessions-", dir=self.directory)
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(payload)
                    handle.flush()
                    os.fsync(handle.fileno())
                Path(temp).replace(self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    Path(temp).unlink()
                raise
        except OSError as exc:
            _log.debug("cache: cannot write %s (%s); going on without it", self.path, exc)

    def _ensure_directory(self) -> bool:
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            info = os.lstat(self.directory)
        except OSError as exc:
            _log.debug("cache: cannot use %s (%s)", self.directory, exc.strerror)
            return False
        if not stat.S_ISDIR(info.st_mode):
            _log.debug("cache: %s is not a directory; not caching", self.directory)
            return False
        if hasattr(os, "getuid") and info.st_uid != os.getuid():
            _log.debug("cache: %s belongs to someone else; not caching", self.directory)
            return False
        if stat.S_IMODE(info.st_mode) & 0o077:
            try:
                self.directory.chmod(0o700)
            except OSError:
                _log.debug("cache: %s is open to others; not caching", self.directory)
                return False
        return True


def read_private(path: Path, limit: int) -> bytes | None:
    """The bytes of a regular file of ours that nobody else can read, or None (with a debug
    line). Never follows a link, never blocks on a FIFO, never reads more than `limit`."""
    flags = (
        os.O_RDONLY
        | getattr(os, "O_NOFOLLOW", 0)
        | getattr(os, "O_NONBLOCK", 0)
        | getattr(os, "O_BINARY", 0)
    )
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return None
    except OSError as exc:
        _log.debug("cache: cannot open %s (%s); ignoring it", path, exc.strerror)
        return None
    try:
        problem = _unsafe(os.fstat(fd))
        if problem:
            _log.debug("cache: ignoring %s: %s; it will be replaced", path, problem)
            return None
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
    except OSError as exc:
        _log.debug("cache: cannot read %s (%s); ignoring it", path, exc.strerror)
        return None
    finally:
        os.close(fd)


def _unsafe(info: os.stat_result) -> str | None:
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file"
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        return "owned by another user"
    if sys.platform != "win32" and stat.S_IMODE(info.st_mode) & 0o077:
        return "readable or writable by group or others"
    if info.st_size > MAX_FILE:
        return "too large"
    return None


def _number(value: object) -> TypeGuard[float]:
    """A finite number: NaN never compares as expired, and 1e400 is infinity in JSON."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    # A JSON integer can be arbitrarily large; math.isfinite would overflow converting it.
    return abs(value) < _MAX_STAMP if isinstance(value, int) else math.isfinite(value)


def _entry(raw: object) -> Entry | None:
    if not isinstance(raw, dict):
        return None
    token, expires = raw.get("token"), raw.get("expires_on")
    texts = [raw.get(f) for f in ("org", "scope", "identity", "who")]
    if not isinstance(token, str) or not token or not token.isascii() or not token.isprintable():
        return None
    if not _number(expires):
        return None
    if not all(isinstance(t, str) for t in texts):
        return None
    org, scope, identity, who = (str(t) for t in texts)
    return Entry(token, float(expires), org, scope, identity, who)


def _prune(data: dict[str, Any]) -> None:
    now = time.time()
    data["sessions"] = {
        k: v for k, v in data["sessions"].items() if (e := _entry(v)) and e.expires_on > now
    }
    data["discovery"] = {
        k: v
        for k, v in data["discovery"].items()
        if isinstance(v, dict) and _number(v.get("expires")) and v["expires"] > now
    }
