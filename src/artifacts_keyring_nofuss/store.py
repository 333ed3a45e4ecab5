"""The cache that outlives the process: session tokens and discovery results, nothing else.

Never an Entra bearer token, never an application token: those are minted by the identity the
machine has, cheaply, and are worth more to a thief. The file is 0600 in a 0700 directory,
replaced atomically, and ignored (then rewritten) when it is corrupt, foreign-owned or readable
by anyone else. Writers hold a per-key lock so that parallel cold lookups mint one token; every
wait for a lock ends with the lookup's deadline.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple, TypeGuard

from . import devops, local
from . import log as _log
from .deadline import Deadline
from .keys import Key

FILE_NAME = "sessions.json"
FORMAT = 2
MAX_FILE = 1024 * 1024
DISCOVERY_TTL = 24 * 3600
# An organisation that refused to mint session tokens for an identity is asked again after
# this long (a lifted policy is noticed within the day; meanwhile Entra tokens work).
REFUSAL_TTL = 12 * 3600
# The longest any lock is waited for (never longer than the lookup's deadline allows).
LOCK_TIMEOUT = 90.0
# A stuck writer holds a write no longer than this (nor a quarter of what the lookup has left);
# then it goes ahead unlocked: the file is replaced atomically, so the worst is a lost update,
# never a torn file, and the lookup keeps its time for what it is for.
WRITE_LOCK_WAIT = 2.0
_MAX_STAMP = 10**12  # far beyond any real expiry, far below float's limits
_SECTIONS = ("discovery", "sessions")
# Added later: a file without it is read as having none.
_OPTIONAL = ("refusals",)


class Entry(NamedTuple):
    """A session token as kept on disk, with what `status` may show about it."""

    token: str
    expires_on: float
    org: str
    scope: str
    identity: str
    who: str


def discovery_key(host: str, org: str) -> str:
    return f"{host}/{org}"


class Store:
    def __init__(self, directory: Path, deadline: Deadline) -> None:
        self.directory = directory
        self.path = self.directory / FILE_NAME
        self.deadline = deadline

    # --- reading: no lock, the file is only ever replaced whole ---------------------------

    def load(self) -> dict[str, Any]:
        data = self._read()
        if data is None:
            return {"version": FORMAT, **{name: {} for name in (*_SECTIONS, *_OPTIONAL)}}
        return data

    def _read(self) -> dict[str, Any] | None:
        try:
            raw = local.read_private(self.path, MAX_FILE)
        except local.Unsafe as exc:
            _log.debug("cache: ignoring %s: %s; it will be replaced", self.path, exc)
            return None
        if raw is None:
            return None
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            _log.debug("cache: %s is corrupt; it will be replaced", self.path)
            return None
        if (
            not isinstance(data, dict)
            or data.get("version") != FORMAT
            or not all(isinstance(data.get(name), dict) for name in _SECTIONS)
        ):
            _log.debug("cache: %s has an unknown layout; it will be replaced", self.path)
            return None
        for name in _OPTIONAL:
            if not isinstance(data.get(name), dict):
                data[name] = {}
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

    def session(self, key: Key, margin: float, now: float | None = None) -> Entry | None:
        if key.kind != devops.SESSION:
            return None
        entry = _entry(self.load()["sessions"].get(key.digest()))
        if entry is None:
            return None
        if entry.expires_on - margin <= (time.time() if now is None else now):
            return None
        return entry

    def refusal(self, key: Key, now: float | None = None) -> tuple[str, float] | None:
        """(the policy that refused to mint session tokens for this key, until when), while
        remembered."""
        entry = self.load()["refusals"].get(key.digest())
        if not isinstance(entry, dict):
            return None
        policy, expires = entry.get("policy"), entry.get("expires")
        if not isinstance(policy, str) or not _number(expires):
            return None
        if expires <= (time.time() if now is None else now):
            return None
        return _log.printable(policy)[:100], float(expires)

    def put_refusal(self, key: Key, policy: str, org: str) -> None:
        """Remember a refusal (no secret: the policy's name, the organisation, when to forget)."""
        value = {"policy": policy[:100], "org": org, "expires": time.time() + REFUSAL_TTL}
        self._update(lambda data: data["refusals"].__setitem__(key.digest(), value))

    def refusals(self) -> list[tuple[str, str, float]]:
        """(organisation, policy, until) of every refusal remembered, for `status`."""
        found = []
        for entry in self.load()["refusals"].values():
            if isinstance(entry, dict) and _number(entry.get("expires")):
                org, policy = entry.get("org"), entry.get("policy")
                if isinstance(org, str) and isinstance(policy, str):
                    found.append((org, policy, float(entry["expires"])))
        return found

    def entries(self) -> list[Entry]:
        found = (_entry(raw) for raw in self.load()["sessions"].values())
        return [e for e in found if e is not None]

    # --- writing: under a lock, atomically -------------------------------------------------

    @contextlib.contextmanager
    def locked(self, name: str, wait: float | None = None) -> Iterator[bool]:
        """Hold the lock for `name` across processes, waiting at most `wait` seconds (and
        never past the deadline); yields whether it is held (a stuck lock must cost time, not
        the install)."""
        from filelock import FileLock, Timeout

        if not self._ensure_directory():
            yield False
            return
        wait = min(LOCK_TIMEOUT if wait is None else wait, self.deadline.remaining())
        digest = hashlib.sha256(name.encode()).hexdigest()[:16]
        lock = FileLock(str(self.directory / f"{digest}.lock"), timeout=max(0.0, wait), mode=0o600)
        try:
            lock.acquire(poll_interval=0.02)
        except (Timeout, OSError) as exc:
            _log.debug("cache: no lock within %.1f s (%s); going on without it", wait, exc)
            yield False
            return
        try:
            yield True
        finally:
            lock.release()

    def put_session(self, key: Key, entry: Entry) -> None:
        if key.kind != devops.SESSION:
            # Only session tokens outlive the process; anything else is a bug, not a choice.
            raise ValueError(f"refusing to write a {key.kind} token to disk")
        self._update(lambda data: data["sessions"].__setitem__(key.digest(), entry._asdict()))

    def drop_session(self, key: Key) -> None:
        self._update(lambda data: data["sessions"].pop(key.digest(), None))

    def put_discovery(self, host: str, org: str, values: Mapping[str, str | None]) -> None:
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

    def _update(self, change: Callable[[dict[str, Any]], object]) -> None:
        if not self._ensure_directory():
            return
        wait = min(WRITE_LOCK_WAIT, LOCK_TIMEOUT, self.deadline.remaining() / 4)
        with self.locked(FILE_NAME, wait):
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
        problem = local.private_directory(self.directory)
        if problem is not None:
            _log.debug("cache: cannot use %s (%s); not caching", self.directory, problem)
            return False
        return True


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
    for name in ("discovery", "refusals"):
        data[name] = {
            k: v
            for k, v in data.get(name, {}).items()
            if isinstance(v, dict) and _number(v.get("expires")) and v["expires"] > now
        }
