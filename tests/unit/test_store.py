"""The on-disk session-token cache: what it keeps, for how long, and what it refuses to trust."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from artifacts_keyring_nofuss import devops, local, store
from artifacts_keyring_nofuss.cache import Cache, Memory
from artifacts_keyring_nofuss.deadline import Deadline
from artifacts_keyring_nofuss.keys import Key
from artifacts_keyring_nofuss.settings import Settings
from artifacts_keyring_nofuss.store import Entry


def Store(directory: Path, deadline: float = 30.0) -> store.Store:
    return store.Store(directory, Deadline(deadline))


def _key(service: str, scope: str, identity: str) -> Key:
    return Key(service=service, scope=scope, identity=identity, kind=devops.SESSION)


def _open_store() -> store.Store | None:
    return Cache.open(Memory(), Settings.load().cache, Deadline(30)).disk


pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX modes and owners")

EMPTY = {"version": store.FORMAT, "discovery": {}, "sessions": {}, "refusals": {}}
SERVICE = "https://vssps.dev.azure.com/contoso/"
SCOPE = "vso.packaging"
IDENTITY = "azure_cli:alice@contoso.com"
KEY = _key(SERVICE, SCOPE, IDENTITY)
K = _key(SERVICE, SCOPE, "k")
OTHER = _key(SERVICE, SCOPE, "other")
OTHER_UID = 65534  # nobody
LAYOUT_VALUES = {
    "tenant": "t",
    "authority": "https://login.microsoftonline.com/t",
    "token_service": SERVICE,
}


def _entry(token: str = "session-token", expires_on: float | None = None, **kw: str) -> Entry:
    fields = {"org": "contoso", "scope": SCOPE, "identity": IDENTITY, "who": "alice@contoso.com"}
    fields.update(kw)
    return Entry(
        token=token,
        expires_on=time.time() + 3600 if expires_on is None else expires_on,
        **fields,
    )


def _raw(entry: Entry) -> dict[str, Any]:
    return {
        "token": entry.token,
        "expires_on": entry.expires_on,
        "org": entry.org,
        "scope": entry.scope,
        "identity": entry.identity,
        "who": entry.who,
    }


def _layout(**sessions: Any) -> dict[str, Any]:
    return {"version": store.FORMAT, "discovery": {}, "sessions": dict(sessions)}


def _plant(cache: store.Store, content: str | bytes, mode: int = 0o600) -> Path:
    """Put a file where the cache keeps its data, as something other than the cache would."""
    cache.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    data = content.encode("utf-8") if isinstance(content, str) else content
    cache.path.write_bytes(data)
    cache.path.chmod(mode)
    return cache.path


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith(".sessions-"))


def _assert_safe_file(cache: store.Store) -> None:
    info = os.lstat(cache.path)
    assert stat.S_ISREG(info.st_mode)
    assert stat.S_IMODE(info.st_mode) == 0o600
    assert info.st_uid == os.getuid()
    assert _mode(cache.directory) == 0o700
    assert _leftovers(cache.directory) == []


def _needs_root() -> None:
    # CI runs the unit tests as root, where chown to another uid works; elsewhere only these
    # cases are skipped.
    if os.geteuid() != 0:
        pytest.skip("chown to another uid needs root")


@pytest.fixture
def cache(tmp_path: Path) -> store.Store:
    return Store(tmp_path / "cache")


# ---------------------------------------------------------------- enabled()


@pytest.mark.parametrize(
    "name",
    ["ARTIFACTS_KEYRING_NOFUSS_CACHE", "ARTIFACTS_CREDENTIALPROVIDER_SESSIONTOKENCACHE_ENABLED"],
)
@pytest.mark.parametrize(
    "value", ["0", "false", "no", "off", "False", "FALSE", "Off", "NO", " off ", "false\n", "\t0"]
)
def test_either_variable_turns_the_cache_off(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    assert Settings.load().cache is False


@pytest.mark.parametrize(
    "name",
    ["ARTIFACTS_KEYRING_NOFUSS_CACHE", "ARTIFACTS_CREDENTIALPROVIDER_SESSIONTOKENCACHE_ENABLED"],
)
@pytest.mark.parametrize(
    "value",
    [
        "",
        " ",
        "1",
        "true",
        "yes",
        "on",
        "TRUE",
        "00",
        "f",
        "n",
        "nope",
        "offline",
        "disabled",
        "false-ish",
        "0.0",
        "-1",
        "o f f",
    ],
)
def test_other_values_keep_the_cache_on(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    assert Settings.load().cache is True


def test_the_cache_is_on_by_default() -> None:
    assert Settings.load().cache is True


def test_one_variable_off_is_enough(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARTIFACTS_KEYRING_NOFUSS_CACHE", "1")
    monkeypatch.setenv("ARTIFACTS_CREDENTIALPROVIDER_SESSIONTOKENCACHE_ENABLED", "false")
    assert Settings.load().cache is False


# ---------------------------------------------------------------- cache_dir()

_posix_dirs = pytest.mark.skipif(sys.platform == "darwin", reason="XDG layout is Linux and BSD")


@_posix_dirs
def test_cache_dir_honours_xdg_cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert local.cache_dir() == tmp_path / "xdg" / local.APP_DIR
    opened = _open_store()
    assert opened is not None
    assert opened.path == tmp_path / "xdg" / local.APP_DIR / store.FILE_NAME


@_posix_dirs
@pytest.mark.parametrize("xdg", ["", "rel", ".", "./cache", "..", "~/.cache", "cache/"])
def test_a_relative_or_empty_xdg_cache_home_falls_back_to_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, xdg: str
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", xdg)
    assert local.cache_dir() == tmp_path / "home" / ".cache" / local.APP_DIR


@_posix_dirs
def test_without_xdg_cache_home_it_is_under_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert local.cache_dir() == tmp_path / "home" / ".cache" / local.APP_DIR


@_posix_dirs
@pytest.mark.parametrize(("home", "xdg"), [(".", None), ("rel", ""), ("~", "rel")])
def test_the_cache_is_never_relative_to_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, home: str, xdg: str | None
) -> None:
    """A checked-out repository must not be able to supply (or receive) the session tokens."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", home)
    if xdg is None:
        monkeypatch.delenv("XDG_CACHE_HOME")
    else:
        monkeypatch.setenv("XDG_CACHE_HOME", xdg)
    found = local.cache_dir()
    # Nowhere absolute to go means no cache at all, never one in the current directory.
    assert found is None or (found.is_absolute() and not found.is_relative_to(tmp_path)), found
    if found is None:
        assert _open_store() is None


# ---------------------------------------------------------------- round trip and modes


def test_round_trip(cache: store.Store) -> None:
    entry = _entry(token="abc.DEF-123_~")
    cache.put_session(KEY, entry)
    assert cache.session(KEY, margin=0) == entry
    assert cache.entries() == [entry]
    assert Store(cache.directory).session(KEY, margin=0) == entry  # a fresh reader


def test_nothing_there_is_the_empty_layout(cache: store.Store) -> None:
    assert cache.load() == EMPTY
    assert cache.session(KEY, margin=0) is None
    assert cache.entries() == []
    assert cache.discovery("pkgs.dev.azure.com", "contoso") is None
    assert not cache.directory.exists()  # reading creates nothing


def test_the_file_is_0600_in_a_0700_directory(cache: store.Store) -> None:
    cache.put_session(KEY, _entry())
    _assert_safe_file(cache)


def test_modes_do_not_depend_on_the_umask(cache: store.Store) -> None:
    old = os.umask(0)
    try:
        cache.put_session(KEY, _entry())
        with cache.locked("x"):
            pass
    finally:
        os.umask(old)
    _assert_safe_file(cache)
    for lock in cache.directory.glob("*.lock"):
        assert _mode(lock) == 0o600


@pytest.mark.parametrize("mode", [0o755, 0o750, 0o705, 0o777, 0o711])
def test_an_open_directory_is_tightened(cache: store.Store, mode: int) -> None:
    cache.directory.mkdir()
    cache.directory.chmod(mode)
    cache.put_session(KEY, _entry())
    assert _mode(cache.directory) == 0o700
    _assert_safe_file(cache)


def test_missing_parents_are_created(tmp_path: Path) -> None:
    cache = Store(tmp_path / "a" / "b" / "c")
    cache.put_session(KEY, _entry())
    _assert_safe_file(cache)


def test_the_file_is_replaced_whole(cache: store.Store) -> None:
    """A reader that opened the file before a write still reads the complete old content."""
    first = _entry(token="first")
    cache.put_session(KEY, first)
    before = cache.path.stat().st_ino
    with cache.path.open("rb") as old:
        cache.put_session(_key("x", "y", "z"), _entry(token="second"))
        assert json.loads(old.read())["sessions"] == {KEY.digest(): _raw(first)}
    assert cache.path.stat().st_ino != before
    assert _leftovers(cache.directory) == []


def test_many_writes_leave_no_temporary_files(cache: store.Store) -> None:
    for n in range(10):
        cache.put_session(_key(SERVICE, SCOPE, f"id{n}"), _entry(token=f"t{n}"))
    cache.put_discovery("pkgs.dev.azure.com", "contoso", LAYOUT_VALUES)
    cache.drop_session(KEY)
    cache.clear()
    names = [p.name for p in cache.directory.iterdir()]
    assert store.FILE_NAME in names
    assert all(n == store.FILE_NAME or n.endswith(".lock") for n in names), names


def test_a_failed_write_keeps_the_old_file_and_leaves_nothing_behind(
    cache: store.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache.put_session(KEY, _entry(token="kept"))
    before = cache.path.read_bytes()

    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    cache.put_session(_key("x", "y", "z"), _entry(token="lost"))  # no exception
    monkeypatch.undo()
    assert cache.path.read_bytes() == before
    assert _leftovers(cache.directory) == []
    assert [e.token for e in cache.entries()] == ["kept"]


# ---------------------------------------------------------------- keys


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ((SERVICE, SCOPE, IDENTITY), ("https://vssps.dev.azure.com/fabrikam/", SCOPE, IDENTITY)),
        ((SERVICE, SCOPE, IDENTITY), (SERVICE, "vso.packaging_write", IDENTITY)),
        ((SERVICE, SCOPE, IDENTITY), (SERVICE, SCOPE, "azure_cli:bob@contoso.com")),
        ((SERVICE, SCOPE, IDENTITY), (SERVICE, SCOPE, IDENTITY.upper())),
        ((SERVICE, SCOPE, IDENTITY), (SERVICE, SCOPE, IDENTITY + " ")),
        ((SERVICE, SCOPE, IDENTITY), (SERVICE + "x", SCOPE, IDENTITY)),
        (("a", "b", "c"), ("c", "b", "a")),
        (("ab", "", "c"), ("a", "b", "c")),
        (("", "", ""), ("", "", "x")),
    ],
)
def test_session_keys_separate_service_scope_and_identity(
    one: tuple[str, str, str], other: tuple[str, str, str]
) -> None:
    assert _key(*one) != _key(*other)
    assert _key(*one) == _key(*one)


def test_a_session_key_is_a_digest_not_the_identity() -> None:
    key = _key(SERVICE, SCOPE, IDENTITY).digest()
    assert len(key) == 64
    assert int(key, 16) >= 0
    assert "alice" not in key


def test_sessions_under_different_keys_are_kept_apart(cache: store.Store) -> None:
    read = _entry(token="read")
    write = _entry(token="write", scope="vso.packaging_write")
    bob = _entry(token="bob", identity="azure_cli:bob@contoso.com")
    keys = {
        _key(SERVICE, SCOPE, IDENTITY): read,
        _key(SERVICE, "vso.packaging_write", IDENTITY): write,
        _key(SERVICE, SCOPE, "azure_cli:bob@contoso.com"): bob,
    }
    for key, entry in keys.items():
        cache.put_session(key, entry)
    for key, entry in keys.items():
        assert cache.session(key, margin=0) == entry
    assert cache.session(_key("elsewhere", SCOPE, IDENTITY), margin=0) is None
    assert sorted(e.token for e in cache.entries()) == ["bob", "read", "write"]


# ---------------------------------------------------------------- expiry


@pytest.mark.parametrize(
    ("margin", "offset", "found"),
    [
        (0, 0, True),
        (0, 99.9, True),
        (0, 100, False),
        (0, 1000, False),
        (50, 0, True),
        (50, 49.9, True),
        (50, 50, False),
        (100, 0, False),
        (150, 0, False),
        (150, -100, True),
    ],
)
def test_expiry_is_honoured_with_the_margin(
    cache: store.Store, margin: float, offset: float, found: bool
) -> None:
    now = time.time()
    entry = _entry(expires_on=now + 100)
    cache.put_session(KEY, entry)
    assert (cache.session(KEY, margin=margin, now=now + offset) == entry) is found


def test_expiry_without_now_uses_the_clock(cache: store.Store) -> None:
    cache.put_session(KEY, _entry(expires_on=time.time() + 120))
    assert cache.session(KEY, margin=60) is not None
    assert cache.session(KEY, margin=130) is None


def test_discovery_round_trip_and_ttl(cache: store.Store) -> None:
    start = time.time()
    cache.put_discovery("pkgs.dev.azure.com", "contoso", LAYOUT_VALUES)
    assert cache.discovery("pkgs.dev.azure.com", "contoso") == LAYOUT_VALUES
    assert cache.discovery("pkgs.dev.azure.com", "contoso", now=start + store.DISCOVERY_TTL - 60)
    assert (
        cache.discovery("pkgs.dev.azure.com", "contoso", now=start + store.DISCOVERY_TTL + 60)
        is None
    )
    assert cache.discovery("pkgs.dev.azure.com", "fabrikam") is None
    assert cache.discovery("contoso.pkgs.visualstudio.com", "contoso") is None


def test_discovery_keeps_none_values(cache: store.Store) -> None:
    values: dict[str, str | None] = {"tenant": None, "authority": None, "token_service": SERVICE}
    cache.put_discovery("pkgs.dev.azure.com", "contoso", values)
    assert cache.discovery("pkgs.dev.azure.com", "contoso") == values


def _discovery_file(entry: object) -> str:
    return json.dumps(
        {
            "version": store.FORMAT,
            "sessions": {},
            "discovery": {"pkgs.dev.azure.com/contoso": entry},
        }
    )


DISCOVERIES: list[tuple[str, str]] = [
    ("not a dict", _discovery_file("not a dict")),
    ("null", _discovery_file(None)),
    ("no expiry", _discovery_file({**LAYOUT_VALUES})),
    ("expires true", _discovery_file({**LAYOUT_VALUES, "expires": True})),
    ("expires text", _discovery_file({**LAYOUT_VALUES, "expires": "4000000000"})),
    ("expires null", _discovery_file({**LAYOUT_VALUES, "expires": None})),
    ("long expired", _discovery_file({**LAYOUT_VALUES, "expires": 1})),
    ("tenant a number", _discovery_file({**LAYOUT_VALUES, "expires": 4e9, "tenant": 5})),
    ("authority a list", _discovery_file({**LAYOUT_VALUES, "expires": 4e9, "authority": ["x"]})),
    ("service a dict", _discovery_file({**LAYOUT_VALUES, "expires": 4e9, "token_service": {}})),
    # Not a number of seconds at all: must not mean "never expires".
    ("expires nan", _discovery_file({**LAYOUT_VALUES, "expires": float("nan")})),
    (
        "expires 1e400",
        '{"version": 2, "sessions": {}, "discovery": {"pkgs.dev.azure.com/contoso": '
        '{"tenant": "t", "authority": null, "token_service": null, "expires": 1e400}}}',
    ),
]


@pytest.mark.parametrize("text", [d[1] for d in DISCOVERIES], ids=[d[0] for d in DISCOVERIES])
def test_unusable_discovery_entries_are_ignored(cache: store.Store, text: str) -> None:
    _plant(cache, text)
    assert cache.discovery("pkgs.dev.azure.com", "contoso") is None


def test_expired_entries_are_pruned_on_the_next_write(cache: store.Store) -> None:
    now = time.time()
    fresh = _entry(token="fresh", expires_on=now + 3600)
    data = {
        "version": store.FORMAT,
        "sessions": {
            "gone": _raw(_entry(token="gone", expires_on=now - 1)),
            "fresh": _raw(fresh),
            "broken": {"token": 5},
        },
        "discovery": {
            "pkgs.dev.azure.com/old": {**LAYOUT_VALUES, "expires": now - 1},
            "pkgs.dev.azure.com/new": {**LAYOUT_VALUES, "expires": now + 3600},
            "pkgs.dev.azure.com/bad": "x",
        },
    }
    _plant(cache, json.dumps(data))
    assert len(cache.load()["sessions"]) == 3  # reading alone changes nothing
    cache.put_session(KEY, _entry(token="new"))
    on_disk = json.loads(cache.path.read_text(encoding="utf-8"))
    assert set(on_disk["sessions"]) == {"fresh", KEY.digest()}
    assert set(on_disk["discovery"]) == {"pkgs.dev.azure.com/new"}


def test_an_entry_written_already_expired_is_not_kept(cache: store.Store) -> None:
    cache.put_session(KEY, _entry(expires_on=time.time() - 5))
    assert cache.load()["sessions"] == {}


# ---------------------------------------------------------------- clear and drop


def test_clear_returns_the_count_and_forgets_tokens(cache: store.Store) -> None:
    for n in range(3):
        cache.put_session(_key(SERVICE, SCOPE, f"id{n}"), _entry(token=f"t{n}"))
    cache.put_discovery("pkgs.dev.azure.com", "contoso", LAYOUT_VALUES)
    assert cache.clear() == 3
    assert cache.entries() == []
    assert cache.load()["sessions"] == {}
    assert "t0" not in cache.path.read_text(encoding="utf-8")
    assert cache.discovery("pkgs.dev.azure.com", "contoso") == LAYOUT_VALUES
    assert cache.clear() == 0
    _assert_safe_file(cache)


def test_clear_with_nothing_there(cache: store.Store) -> None:
    assert cache.clear() == 0


def test_drop_session_drops_only_that_one(cache: store.Store) -> None:
    other = _key(SERVICE, SCOPE, "azure_cli:bob@contoso.com")
    cache.put_session(KEY, _entry(token="alice"))
    cache.put_session(other, _entry(token="bob"))
    cache.drop_session(KEY)
    assert cache.session(KEY, margin=0) is None
    assert cache.session(other, margin=0) is not None
    cache.drop_session(_key("no such", SCOPE, IDENTITY))
    assert cache.session(other, margin=0) is not None


def test_drop_discovery_drops_only_that_one(cache: store.Store) -> None:
    cache.put_discovery("pkgs.dev.azure.com", "contoso", LAYOUT_VALUES)
    cache.put_discovery("pkgs.dev.azure.com", "fabrikam", LAYOUT_VALUES)
    cache.put_session(KEY, _entry())
    cache.drop_discovery("pkgs.dev.azure.com", "contoso")
    assert cache.discovery("pkgs.dev.azure.com", "contoso") is None
    assert cache.discovery("pkgs.dev.azure.com", "fabrikam") == LAYOUT_VALUES
    assert cache.session(KEY, margin=0) is not None
    cache.drop_discovery("nowhere", "nobody")


# ---------------------------------------------------------------- hostile and damaged files

PLANTED = _entry(token="planted-token", expires_on=4_000_000_000)
PLANTED_TEXT = json.dumps(_layout(**{KEY.digest(): _raw(PLANTED)}))


def _big() -> str:
    # Valid, and holding a usable entry: only its size is wrong.
    return PLANTED_TEXT + " " * (store.MAX_FILE + 1 - len(PLANTED_TEXT))


FILES: list[tuple[str, bytes | str, int]] = [
    ("empty", b"", 0o600),
    ("garbage", b"\x00\xff\xfe garbage \x80", 0o600),
    ("not utf-8", b'{"version": 2, "discovery": {}, "sessions": {"\xff": 1}}', 0o600),
    ("utf-16", PLANTED_TEXT.encode("utf-16"), 0o600),
    ("truncated", PLANTED_TEXT[: len(PLANTED_TEXT) // 2], 0o600),
    ("trailing junk", PLANTED_TEXT + "}", 0o600),
    ("list", "[]", 0o600),
    ("list of layouts", json.dumps([json.loads(PLANTED_TEXT)]), 0o600),
    ("null", "null", 0o600),
    ("string", '"sessions"', 0o600),
    ("number", "1", 0o600),
    ("wrong version", json.dumps({**json.loads(PLANTED_TEXT), "version": 1}), 0o600),
    ("version as text", json.dumps({**json.loads(PLANTED_TEXT), "version": "1"}), 0o600),
    (
        "no version",
        json.dumps({k: v for k, v in json.loads(PLANTED_TEXT).items() if k != "version"}),
        0o600,
    ),
    (
        "sessions a list",
        json.dumps({**json.loads(PLANTED_TEXT), "sessions": [_raw(PLANTED)]}),
        0o600,
    ),
    ("sessions a string", json.dumps({**json.loads(PLANTED_TEXT), "sessions": "x"}), 0o600),
    ("sessions missing", json.dumps({"version": store.FORMAT, "discovery": {}}), 0o600),
    ("discovery a list", json.dumps({**json.loads(PLANTED_TEXT), "discovery": []}), 0o600),
    ("deep nesting", "[" * 100_000 + "]" * 100_000, 0o600),
    ("huge integer", '{"version": ' + "9" * 10_000 + "}", 0o600),
    ("group-readable", PLANTED_TEXT, 0o640),
    ("group-writable", PLANTED_TEXT, 0o620),
    ("world-readable", PLANTED_TEXT, 0o604),
    ("world-writable", PLANTED_TEXT, 0o602),
    ("open to all", PLANTED_TEXT, 0o666),
    ("too large", _big(), 0o600),
]


@pytest.mark.parametrize(("content", "mode"), [f[1:] for f in FILES], ids=[f[0] for f in FILES])
def test_a_damaged_or_exposed_file_is_ignored_then_replaced(
    cache: store.Store, content: bytes | str, mode: int
) -> None:
    _plant(cache, content, mode)
    assert cache.load() == EMPTY
    assert cache.session(KEY, margin=0) is None
    assert cache.entries() == []
    mine = _entry(token="mine")
    other = _key(SERVICE, SCOPE, "azure_cli:bob@contoso.com")
    cache.put_session(other, mine)
    _assert_safe_file(cache)
    assert cache.session(other, margin=0) == mine
    assert cache.session(KEY, margin=0) is None  # nothing from the ignored file came back


def test_a_file_of_exactly_the_largest_size_is_read(cache: store.Store) -> None:
    _plant(cache, PLANTED_TEXT + " " * (store.MAX_FILE - len(PLANTED_TEXT)))
    assert cache.path.stat().st_size == store.MAX_FILE
    assert cache.session(KEY, margin=0) == PLANTED


def test_a_0600_file_of_ours_is_read(cache: store.Store) -> None:
    _plant(cache, PLANTED_TEXT, 0o600)
    assert cache.session(KEY, margin=0) == PLANTED


def test_a_symlink_is_not_followed(cache: store.Store, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.json"
    target.write_text(PLANTED_TEXT, encoding="utf-8")
    target.chmod(0o600)
    cache.directory.mkdir(mode=0o700)
    cache.path.symlink_to(target)
    assert cache.load() == EMPTY
    assert cache.session(KEY, margin=0) is None
    cache.put_session(K, _entry(token="mine"))
    _assert_safe_file(cache)
    assert target.read_text(encoding="utf-8") == PLANTED_TEXT
    assert _mode(target) == 0o600
    assert cache.session(K, margin=0) is not None


@pytest.mark.parametrize("target", ["/dev/zero", "/nonexistent/x", "sessions.json", "/etc/passwd"])
def test_other_symlinks_are_ignored_and_replaced(cache: store.Store, target: str) -> None:
    cache.directory.mkdir(mode=0o700)
    cache.path.symlink_to(target)
    assert cache.load() == EMPTY
    cache.put_session(KEY, _entry())
    _assert_safe_file(cache)


def test_a_symlinked_cache_directory_is_not_written_through(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    Store(link).put_session(KEY, _entry())
    assert list(real.iterdir()) == []


def test_a_directory_in_place_of_the_file(cache: store.Store) -> None:
    """It cannot be renamed over: ignored on reading, and writing carries on without caching."""
    cache.path.mkdir(parents=True)
    (cache.path / "inside").write_text("x", encoding="utf-8")
    assert cache.load() == EMPTY
    cache.put_session(KEY, _entry())  # no exception
    assert cache.clear() == 0
    assert _leftovers(cache.directory) == []
    assert (cache.path / "inside").read_text(encoding="utf-8") == "x"


def test_a_fifo_in_place_of_the_file_does_not_hang(cache: store.Store) -> None:
    cache.directory.mkdir(mode=0o700)
    os.mkfifo(cache.path, 0o600)
    result: list[object] = []
    reader = threading.Thread(target=lambda: result.append(cache.load()), daemon=True)
    reader.start()
    reader.join(1)
    hung = reader.is_alive()
    if hung:  # let the stuck open() return so the thread ends
        fd = os.open(cache.path, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        reader.join(2)
    assert not hung, "Store.load() blocks forever opening a FIFO at sessions.json"
    assert result == [EMPTY]
    cache.put_session(KEY, _entry())
    _assert_safe_file(cache)


def test_a_file_owned_by_another_user_is_ignored_then_replaced(cache: store.Store) -> None:
    _needs_root()
    _plant(cache, PLANTED_TEXT, 0o600)
    os.chown(cache.path, OTHER_UID, OTHER_UID)
    assert cache.load() == EMPTY
    assert cache.session(KEY, margin=0) is None
    cache.put_session(K, _entry(token="mine"))
    _assert_safe_file(cache)
    assert cache.session(KEY, margin=0) is None


def test_a_cache_directory_owned_by_another_user_turns_caching_off(cache: store.Store) -> None:
    _needs_root()
    cache.directory.mkdir(mode=0o700)
    os.chown(cache.directory, OTHER_UID, OTHER_UID)
    cache.put_session(KEY, _entry())
    cache.put_discovery("pkgs.dev.azure.com", "contoso", LAYOUT_VALUES)
    with cache.locked("x"):
        pass
    assert cache.clear() == 0
    assert list(cache.directory.iterdir()) == []
    assert _mode(cache.directory) == 0o700
    assert os.lstat(cache.directory).st_uid == OTHER_UID
    # Hand it back, so that pytest can clean up later from inside the e2e namespace too.
    os.chown(cache.directory, os.getuid(), os.getgid())


def test_a_cache_directory_under_another_users_directory_turns_caching_off(
    tmp_path: Path,
) -> None:
    """A shared XDG_CACHE_HOME another user made (sticky or not): they may rename anything in
    it, ours included, so nothing is kept there."""
    _needs_root()
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o1777)
    os.chown(shared, OTHER_UID, OTHER_UID)
    cache = Store(shared / local.APP_DIR)
    cache.put_session(KEY, _entry())
    assert local.private_directory(cache.directory) == (
        f"uid {OTHER_UID} can rename anything in {shared} (it is theirs, sticky bit or not)"
    )
    assert not cache.path.exists()


@pytest.mark.parametrize("depth", [1, 2])
def test_a_cache_path_under_a_regular_file(tmp_path: Path, depth: int) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory", encoding="utf-8")
    directory = blocker.joinpath(*(["cache"] * depth))
    cache = Store(directory)
    assert cache.load() == EMPTY
    cache.put_session(KEY, _entry())
    cache.put_discovery("pkgs.dev.azure.com", "contoso", LAYOUT_VALUES)
    cache.drop_session(KEY)
    with cache.locked("x"):
        pass
    assert cache.clear() == 0
    assert blocker.read_text(encoding="utf-8") == "not a directory"


def test_a_regular_file_in_place_of_the_cache_directory(tmp_path: Path) -> None:
    blocker = tmp_path / "cache"
    blocker.write_text("x", encoding="utf-8")
    cache = Store(blocker)
    cache.put_session(KEY, _entry())
    with cache.locked("x"):
        pass
    assert blocker.read_text(encoding="utf-8") == "x"


def _with_session(raw: object) -> str:
    return json.dumps(_layout(**{KEY.digest(): raw}))


_GOOD = _raw(PLANTED)
ENTRIES: list[tuple[str, str]] = [
    ("entry a list", _with_session([_GOOD])),
    ("entry a string", _with_session("planted-token")),
    ("entry null", _with_session(None)),
    ("token an int", _with_session({**_GOOD, "token": 12345})),
    ("token null", _with_session({**_GOOD, "token": None})),
    ("token a list", _with_session({**_GOOD, "token": ["planted-token"]})),
    ("token empty", _with_session({**_GOOD, "token": ""})),
    ("token non-ascii", _with_session({**_GOOD, "token": "t\u00f6k\u00e9n"})),
    ("token lookalike", _with_session({**_GOOD, "token": "planted\u2010token"})),
    ("token with newline", _with_session({**_GOOD, "token": "planted\r\nX-Injected: 1"})),
    ("token with nul", _with_session({**_GOOD, "token": "planted\x00"})),
    ("token missing", _with_session({k: v for k, v in _GOOD.items() if k != "token"})),
    ("expires_on true", _with_session({**_GOOD, "expires_on": True})),
    ("expires_on text", _with_session({**_GOOD, "expires_on": "4000000000"})),
    ("expires_on null", _with_session({**_GOOD, "expires_on": None})),
    ("expires_on missing", _with_session({k: v for k, v in _GOOD.items() if k != "expires_on"})),
    ("expires_on nan", _with_session({**_GOOD, "expires_on": float("nan")})),
    (
        "expires_on 1e400",
        _with_session({**_GOOD, "expires_on": 0}).replace('"expires_on": 0', '"expires_on": 1e400'),
    ),
    ("org an int", _with_session({**_GOOD, "org": 1})),
    ("who null", _with_session({**_GOOD, "who": None})),
    ("identity missing", _with_session({k: v for k, v in _GOOD.items() if k != "identity"})),
    ("scope a list", _with_session({**_GOOD, "scope": ["vso.packaging"]})),
]


@pytest.mark.parametrize("text", [e[1] for e in ENTRIES], ids=[e[0] for e in ENTRIES])
def test_a_damaged_entry_is_ignored_then_pruned(cache: store.Store, text: str) -> None:
    _plant(cache, text)
    assert cache.session(KEY, margin=0) is None
    assert cache.entries() == []
    cache.put_session(OTHER, _entry(token="mine"))
    assert set(cache.load()["sessions"]) == {OTHER.digest()}
    _assert_safe_file(cache)


def test_the_damaged_entry_table_is_damaged_only_where_it_says() -> None:
    """The table above would prove nothing if the base entry were itself unusable."""
    assert store._entry(_GOOD) == PLANTED


# ---------------------------------------------------------------- locks

_HOLDER = """
import sys
from pathlib import Path
from artifacts_keyring_nofuss.deadline import Deadline
from artifacts_keyring_nofuss.store import Store
with Store(Path(sys.argv[1]), Deadline(120)).locked(sys.argv[2]):
    print("held", flush=True)
    sys.stdin.readline()
print("released", flush=True)
"""


@pytest.fixture
def holder(cache: store.Store) -> Iterator[Callable[[str], subprocess.Popen[str]]]:
    """Another process that holds a lock until its stdin is closed."""
    started: list[subprocess.Popen[str]] = []

    def hold(name: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-c", _HOLDER, str(cache.directory), name],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        started.append(proc)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "held"
        return proc

    yield hold
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(5)


def _release_later(proc: subprocess.Popen[str], after: float) -> threading.Thread:
    def release() -> None:
        time.sleep(after)
        assert proc.stdin is not None
        proc.stdin.close()

    thread = threading.Thread(target=release, daemon=True)
    thread.start()
    return thread


def test_another_process_holding_the_lock_makes_us_wait(
    cache: store.Store, holder: Callable[[str], subprocess.Popen[str]]
) -> None:
    proc = holder("pkgs.dev.azure.com/contoso\nvso.packaging\nazure_cli:alice")
    _release_later(proc, 0.4)
    start = time.monotonic()
    with cache.locked("pkgs.dev.azure.com/contoso\nvso.packaging\nazure_cli:alice"):
        waited = time.monotonic() - start
        assert proc.wait(5) == 0  # it had let go before we got in
    assert waited >= 0.3


def test_different_names_do_not_block_each_other(
    cache: store.Store,
    holder: Callable[[str], subprocess.Popen[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(store, "LOCK_TIMEOUT", 5.0)
    proc = holder("one")
    start = time.monotonic()
    with cache.locked("two"):
        assert time.monotonic() - start < 1.0
        assert proc.poll() is None  # the other lock is still held
    cache.put_session(KEY, _entry())  # the file's own lock is free too
    assert time.monotonic() - start < 1.0


def test_a_lock_that_cannot_be_had_lets_the_caller_go_on(
    cache: store.Store,
    holder: Callable[[str], subprocess.Popen[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(store, "LOCK_TIMEOUT", 0.3)
    proc = holder("stuck")
    start = time.monotonic()
    ran = False
    with cache.locked("stuck"):
        ran = True
        assert proc.poll() is None
    elapsed = time.monotonic() - start
    assert ran
    assert 0.25 <= elapsed < 3


def test_a_write_goes_on_when_the_file_lock_is_stuck(
    cache: store.Store,
    holder: Callable[[str], subprocess.Popen[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(store, "LOCK_TIMEOUT", 0.2)
    holder(store.FILE_NAME)
    cache.put_session(KEY, _entry(token="anyway"))
    found = cache.session(KEY, margin=0)
    assert found is not None
    assert found.token == "anyway"


def test_threads_contend_for_the_same_name(cache: store.Store) -> None:
    held = threading.Event()
    order: list[str] = []

    def first() -> None:
        with cache.locked("same"):
            held.set()
            time.sleep(0.3)
            order.append("first out")

    thread = threading.Thread(target=first)
    thread.start()
    assert held.wait(5)
    with cache.locked("same"):
        order.append("second in")
    thread.join(5)
    assert order == ["first out", "second in"]


def test_threads_with_different_names_run_together(cache: store.Store) -> None:
    held = threading.Event()
    done = threading.Event()

    def first() -> None:
        with cache.locked("a"):
            held.set()
            done.wait(5)

    thread = threading.Thread(target=first)
    thread.start()
    assert held.wait(5)
    start = time.monotonic()
    with cache.locked("b"):
        assert time.monotonic() - start < 1.0
    done.set()
    thread.join(5)


def test_lock_files_are_0600_inside_the_cache_directory(cache: store.Store, tmp_path: Path) -> None:
    names = ["x", "../../escape", "/etc/passwd", "a\nb\nc", "\u00e9", ""]
    for name in names:
        with cache.locked(name):
            locks = list(cache.directory.glob("*.lock"))
            assert locks
            for lock in locks:
                assert _mode(lock) == 0o600
                assert os.lstat(lock).st_uid == os.getuid()
    assert len(list(cache.directory.glob("*.lock"))) == len(names)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]
    assert _mode(cache.directory) == 0o700


def test_an_error_inside_the_lock_releases_it(
    cache: store.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store, "LOCK_TIMEOUT", 2.0)
    with pytest.raises(RuntimeError), cache.locked("x"):
        raise RuntimeError("boom")
    start = time.monotonic()
    with cache.locked("x"):
        pass
    assert time.monotonic() - start < 1.0


def test_an_error_inside_an_unobtainable_lock_still_propagates(
    cache: store.Store,
    holder: Callable[[str], subprocess.Popen[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(store, "LOCK_TIMEOUT", 0.1)
    holder("x")
    with pytest.raises(RuntimeError), cache.locked("x"):
        raise RuntimeError("boom")


_WRITER = """
import sys, time
from pathlib import Path
from artifacts_keyring_nofuss.deadline import Deadline
from artifacts_keyring_nofuss.keys import Key
from artifacts_keyring_nofuss.store import Entry, Store
cache = Store(Path(sys.argv[1]), Deadline(60))
for n in range(int(sys.argv[3])):
    name = f"{sys.argv[2]}-{n}"
    key = Key("https://vssps.dev.azure.com/o/", "s", name, "session")
    cache.put_session(key, Entry(name, time.time() + 3600, "o", "s", name, "w"))
"""


def test_parallel_writers_lose_no_update(cache: store.Store) -> None:
    writers, each = 4, 8
    procs = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(cache.directory), f"w{w}", str(each)])
        for w in range(writers)
    ]
    for proc in procs:
        assert proc.wait(30) == 0
    assert len(cache.entries()) == writers * each
    _assert_safe_file(cache)


# ---------------------------------------------------------------- refusals (no secret)


def test_a_refusal_is_remembered_with_its_expiry_and_no_secret(cache: store.Store) -> None:
    from artifacts_keyring_nofuss.keys import REFUSAL

    key = Key(SERVICE, "*", IDENTITY, REFUSAL)
    cache.put_refusal(key, "DisablePatCreationPolicyViolation", "contoso")
    policy, until = cache.refusal(key) or ("", 0.0)
    assert policy == "DisablePatCreationPolicyViolation"
    assert time.time() < until <= time.time() + store.REFUSAL_TTL
    assert cache.refusal(Key(SERVICE, "*", "azure_cli:bob@contoso.com", REFUSAL)) is None
    assert cache.refusal(key, now=time.time() + store.REFUSAL_TTL + 1) is None
    assert cache.refusals()[0][:2] == ("contoso", "DisablePatCreationPolicyViolation")
    _assert_safe_file(cache)


def test_a_file_without_refusals_reads_as_none(cache: store.Store) -> None:
    _plant(cache, json.dumps({"version": store.FORMAT, "discovery": {}, "sessions": {}}))
    assert cache.refusals() == []
    cache.put_session(KEY, _entry())
    assert cache.session(KEY, margin=0) is not None
