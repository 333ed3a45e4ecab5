"""signin.py without msal's network: where the sign-in lives, the record of who signed in, the
authority, and the terminal a device-code prompt would use."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from artifacts_keyring_nofuss import local, signin
from artifacts_keyring_nofuss.errors import ConfigError, SourceError
from artifacts_keyring_nofuss.settings import Settings

from .helpers import TENANT, USER_OID, open_as

OTHER_UID = 12345
RECORD = signin.Record(
    home_account_id=f"{USER_OID}.{TENANT}",
    username="alice@contoso.com",
    tenant=TENANT,
    authority=f"https://login.microsoftonline.com/{TENANT}",
)
SRC = str(Path(signin.__file__).resolve().parents[1])

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX modes and terminals")


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    return tmp_path / "data" / local.APP_DIR


# ---------------------------------------------------------------- data_dir


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="the XDG layout")
def test_data_dir_under_an_absolute_xdg_data_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert signin.data_dir() == tmp_path / "artifacts-keyring-nofuss"


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="the XDG layout")
@pytest.mark.parametrize("xdg", ["", "relative/data", "."])
def test_data_dir_never_relative_to_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, xdg: str
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_DATA_HOME", xdg)
    monkeypatch.chdir(tmp_path)
    assert signin.data_dir() == tmp_path / "home" / ".local" / "share" / "artifacts-keyring-nofuss"


# ---------------------------------------------------------------- the record


def test_no_record() -> None:
    assert signin.load_record() is None


@posix_only
def test_a_record_round_trips_privately(data: Path) -> None:
    signin.save_record(RECORD)
    assert signin.load_record() == RECORD
    assert _mode(data) == 0o700
    assert _mode(data / "account.json") == 0o600
    assert json.loads((data / "account.json").read_text(encoding="utf-8")) == {
        "home_account_id": f"{USER_OID}.{TENANT}",
        "username": "alice@contoso.com",
        "tenant": TENANT,
        "authority": f"https://login.microsoftonline.com/{TENANT}",
        "client_id": signin.CLIENT_ID,
        "scopes": "",  # no secret anywhere in it
    }


def test_the_record_names_the_cache_identity() -> None:
    assert RECORD.identity == f"interactive:{USER_OID}.{TENANT}"


def test_saving_again_replaces_the_record(data: Path) -> None:
    signin.save_record(RECORD)
    bob = signin.Record("b.t", "bob@contoso.com", "t", "https://login.microsoftonline.com/t")
    signin.save_record(bob)
    assert signin.load_record() == bob


@posix_only
def test_a_loose_directory_is_made_private(data: Path) -> None:
    data.mkdir(parents=True, mode=0o755)
    data.chmod(0o755)
    signin.save_record(RECORD)
    assert _mode(data) == 0o700


@posix_only
def test_saving_over_a_loose_record_leaves_a_private_one(data: Path) -> None:
    """A record restored from a backup (0644) is ignored on load; `ak-nofuss login` must leave
    a record that the next lookup reads."""
    data.mkdir(parents=True, mode=0o700)
    (data / "account.json").write_text("{}", encoding="utf-8")
    (data / "account.json").chmod(0o644)
    signin.save_record(RECORD)
    assert _mode(data / "account.json") == 0o600
    assert signin.load_record() == RECORD


def _plant(data: Path, content: str, mode: int = 0o600) -> Path:
    data.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = data / "account.json"
    path.write_text(content, encoding="utf-8")
    path.chmod(mode)
    return path


@pytest.mark.parametrize(
    "content",
    [
        "",
        "not json",
        "[]",
        '"text"',
        "{}",
        '{"home_account_id": "x"}',
        json.dumps({**RECORD.__dict__, "username": ""}),
        json.dumps({**RECORD.__dict__, "tenant": None}),
        json.dumps({**RECORD.__dict__, "authority": 42}),
        '{"a": ' * 3000,  # nested deeper than the parser's recursion limit, in 15 kB
    ],
    ids=lambda c: repr(c)[:30],
)
def test_a_corrupt_record_is_ignored(data: Path, content: str) -> None:
    _plant(data, content)
    assert signin.load_record() is None


def test_extra_keys_in_a_record_are_ignored(data: Path) -> None:
    _plant(data, json.dumps({**RECORD.__dict__, "future": "field"}))
    assert signin.load_record() == RECORD


@posix_only
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o666, 0o620])
def test_a_record_others_can_read_or_write_is_ignored(data: Path, mode: int) -> None:
    _plant(data, json.dumps(RECORD.__dict__), mode)
    assert signin.load_record() is None


@posix_only
def test_a_record_owned_by_another_user_is_ignored(data: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("chown to another uid needs root")
    path = _plant(data, json.dumps(RECORD.__dict__))
    os.chown(path, OTHER_UID, OTHER_UID)
    assert signin.load_record() is None


@posix_only
def test_a_record_that_is_a_link_is_ignored(data: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text(json.dumps(RECORD.__dict__), encoding="utf-8")
    elsewhere.chmod(0o600)
    data.mkdir(parents=True, mode=0o700)
    (data / "account.json").symlink_to(elsewhere)
    assert signin.load_record() is None


# ---------------------------------------------------------------- forget


def test_forget_removes_the_record_and_msals_caches(data: Path) -> None:
    signin.save_record(RECORD)
    for name in (
        "msal_token_cache.bin",
        "msal_token_cache.json",
        "msal_token_cache.json.lockfile",
    ):
        (data / name).write_text("x", encoding="utf-8")
    (data / "unrelated.txt").write_text("keep me", encoding="utf-8")
    removed = signin.forget()
    assert sorted(p.name for p in removed) == [
        "account.json",
        "msal_token_cache.bin",
        "msal_token_cache.json",
    ]
    left = {p.name for p in data.iterdir()}
    # Where the OS has a keyring, msal-extensions touches an empty signal file as it empties
    # the keyring entry; nothing else may stay.
    assert left - {"msal_token_cache.bin"} == {"unrelated.txt"}
    if "msal_token_cache.bin" in left:
        assert (data / "msal_token_cache.bin").stat().st_size == 0
    assert signin.load_record() is None


def test_forget_with_nothing_there(data: Path) -> None:
    assert signin.forget() == []


@posix_only
def test_forget_removes_nothing_through_a_planted_link(data: Path, tmp_path: Path) -> None:
    """A shared XDG_DATA_HOME where someone else put a link in our directory's place: logout
    (as root, above all) must not delete the sign-in files of whoever the link leads to."""
    theirs = tmp_path / "someone-elses-sign-in"
    theirs.mkdir()
    for name in ("account.json", "msal_token_cache.json"):
        (theirs / name).write_text("theirs", encoding="utf-8")
    data.parent.mkdir(parents=True)
    data.symlink_to(theirs, target_is_directory=True)
    with pytest.raises(SourceError) as caught:
        signin.forget()
    assert str(caught.value) == (
        f"not removing the sign-in in {data}: it is a symbolic link; remove it yourself"
    )
    assert sorted(p.name for p in theirs.iterdir()) == ["account.json", "msal_token_cache.json"]


# ---------------------------------------------------------------- authority_for

LOGIN = "https://login.microsoftonline.com"


@pytest.mark.parametrize(
    ("tenant", "expected"),
    [
        (TENANT, f"{LOGIN}/{TENANT}"),
        ("contoso.onmicrosoft.com", f"{LOGIN}/contoso.onmicrosoft.com"),
        (None, f"{LOGIN}/organizations"),
        ("", f"{LOGIN}/organizations"),
    ],
)
def test_authority_for(tenant: str | None, expected: str) -> None:
    assert signin.authority_for(tenant, Settings.load()) == expected


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (f"{LOGIN}/{TENANT}", f"{LOGIN}/{TENANT}"),
        (f" {LOGIN}/{TENANT}/ ", f"{LOGIN}/{TENANT}"),
        (f"{LOGIN}/organizations", f"{LOGIN}/organizations"),
        (f"{LOGIN}/common", f"{LOGIN}/common"),
        (f"https://login.windows.net/{TENANT}", f"https://login.windows.net/{TENANT}"),
    ],
)
def test_the_authority_override_wins(
    monkeypatch: pytest.MonkeyPatch, override: str, expected: str
) -> None:
    monkeypatch.setenv("ARTIFACTS_CREDENTIALPROVIDER_MSAL_AUTHORITY", override)
    assert signin.authority_for(None, Settings.load()) == expected
    assert signin.authority_for("fabrikam.com", Settings.load()) == expected


@pytest.mark.parametrize(
    "override",
    [
        f"https://evil.com/{TENANT}",
        f"http://login.microsoftonline.com/{TENANT}",
        f"https://login.microsoftonline.com.evil.com/{TENANT}",
        f"https://login.microsoftonline.com:8443/{TENANT}",
        f"https://user@login.microsoftonline.com/{TENANT}",
        f"https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/token",
        "https://login.microsoftonline.com/--tenant=x",
        "login.microsoftonline.com/organizations",
    ],
)
def test_an_untrusted_authority_override_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch, override: str
) -> None:
    monkeypatch.setenv("ARTIFACTS_CREDENTIALPROVIDER_MSAL_AUTHORITY", override)
    with pytest.raises(ConfigError) as caught:
        signin.authority_for(TENANT, Settings.load())
    assert str(caught.value).startswith("ARTIFACTS_CREDENTIALPROVIDER_MSAL_AUTHORITY: ")


# ---------------------------------------------------------------- open_terminal


def _run_detached(code: str) -> subprocess.CompletedProcess[str]:
    """Python in a new session: no controlling terminal, whatever this test run has."""
    env = {**os.environ, "PYTHONPATH": SRC}
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )


@posix_only
def test_no_terminal_without_a_controlling_terminal() -> None:
    done = _run_detached(
        "from artifacts_keyring_nofuss import signin\nprint(signin.open_terminal())\n"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "None\n"
    assert done.stderr == ""


# ---------------------------------------------------------------- the private directory, as
# another local user would find it: a shared XDG_DATA_HOME, a directory made before us


REFRESH_TOKEN = "0.AAAA-refresh-token-of-alice"


def _hand_to_msal(directory: Path) -> None:
    """What SignIn does with the directory before msal signs anyone in (no network): the
    persistence msal-extensions writes the refresh token to, and its save."""
    persistence, _ = signin.persistence(directory)
    persistence.save(REFRESH_TOKEN)


def _sign_in_there() -> None:
    _hand_to_msal(signin._private_dir())


def _loot(tmp_path: Path) -> Path:
    """A file of the other user's, where a planted link points."""
    loot = tmp_path / "loot"
    loot.write_text("", encoding="utf-8")
    loot.chmod(0o666)
    return loot


def _needs_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("chown to another uid needs root")


@posix_only
def test_a_directory_another_user_made_first_never_gets_the_sign_in(
    data: Path, tmp_path: Path
) -> None:
    _needs_root()
    loot = _loot(tmp_path)
    data.mkdir(parents=True)
    data.chmod(0o777)
    (data / signin.PLAIN_CACHE_FILE).symlink_to(loot)
    os.lchown(data / signin.PLAIN_CACHE_FILE, OTHER_UID, OTHER_UID)
    os.chown(data, OTHER_UID, OTHER_UID)
    os.chown(loot, OTHER_UID, OTHER_UID)
    with pytest.raises(SourceError) as caught:
        _sign_in_there()
    assert REFRESH_TOKEN not in loot.read_text(encoding="utf-8")
    assert str(caught.value) == (
        f"not keeping the sign-in in {data}: it belongs to another user; remove it (or set "
        "XDG_DATA_HOME to a directory of yours) and sign in again"
    )
    assert os.lstat(data).st_uid == OTHER_UID  # left as it was
    assert _mode(data) == 0o777


@posix_only
def test_another_users_directory_holds_no_record_we_would_use(data: Path) -> None:
    _needs_root()
    signin.save_record(RECORD)
    os.chown(data, OTHER_UID, OTHER_UID)  # they could swap account.json at any time
    assert signin.load_record() is None
    os.chown(data, os.getuid(), os.getgid())
    assert signin.load_record() == RECORD


@posix_only
@pytest.mark.parametrize(
    "name",
    [
        signin.PLAIN_CACHE_FILE,
        signin.PLAIN_CACHE_FILE + ".lockfile",
        signin.CACHE_FILE,
        signin.CACHE_FILE + ".lockfile",
        signin.RECORD_FILE,
    ],
)
def test_a_link_planted_in_a_loose_directory_of_ours_is_refused(
    data: Path, tmp_path: Path, name: str
) -> None:
    """Our directory, left open (umask 0, a restored backup): someone planted a link before we
    closed it. Closing it does not remove the link."""
    loot = _loot(tmp_path)
    data.mkdir(parents=True)
    data.chmod(0o777)
    (data / name).symlink_to(loot)
    with pytest.raises(SourceError) as caught:
        _sign_in_there()
    assert REFRESH_TOKEN not in loot.read_text(encoding="utf-8")
    assert str(caught.value) == (
        f"not keeping the sign-in in {data / name}: it is a symbolic link; remove it and sign "
        "in again"
    )
    assert _mode(data) == 0o700  # closed to others all the same


@posix_only
def test_a_dangling_link_is_not_created_through(data: Path, tmp_path: Path) -> None:
    data.mkdir(parents=True, mode=0o700)
    (data / signin.PLAIN_CACHE_FILE).symlink_to(tmp_path / "where-the-planter-reads")
    with pytest.raises(SourceError, match="it is a symbolic link"):
        _sign_in_there()
    assert not (tmp_path / "where-the-planter-reads").exists()


@posix_only
def test_a_file_of_another_users_in_our_directory_is_refused(data: Path) -> None:
    _needs_root()
    data.mkdir(parents=True, mode=0o700)
    planted = data / signin.PLAIN_CACHE_FILE
    planted.write_text("", encoding="utf-8")
    planted.chmod(0o666)
    os.chown(planted, OTHER_UID, OTHER_UID)
    with pytest.raises(SourceError, match="it belongs to another user"):
        _sign_in_there()
    assert planted.read_text(encoding="utf-8") == ""


@posix_only
def test_a_fifo_in_place_of_the_cache_is_refused(data: Path) -> None:
    data.mkdir(parents=True, mode=0o700)
    os.mkfifo(data / signin.PLAIN_CACHE_FILE, 0o600)
    with pytest.raises(SourceError, match="it is not a regular file"):
        signin._private_dir()


@posix_only
def test_a_directory_that_is_a_link_is_refused(data: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o755)
    data.parent.mkdir(parents=True)
    data.symlink_to(elsewhere)
    with pytest.raises(SourceError, match="it is a symbolic link"):
        _sign_in_there()
    assert list(elsewhere.iterdir()) == []
    assert _mode(elsewhere) == 0o755


@posix_only
def test_our_own_loose_cache_file_is_made_private(data: Path) -> None:
    """A cache file of ours that others can read (a backup restored 0644): msal-extensions
    would keep its mode, and the refresh token with it."""
    data.mkdir(parents=True, mode=0o700)
    cache = data / signin.PLAIN_CACHE_FILE
    cache.write_text("{}", encoding="utf-8")
    cache.chmod(0o644)
    _sign_in_there()
    assert _mode(cache) == 0o600
    assert cache.read_text(encoding="utf-8") == REFRESH_TOKEN


@posix_only
def test_a_second_user_can_read_nothing_of_the_sign_in(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under a shared XDG_DATA_HOME that everyone can enter, the sign-in's files, as msal and
    we write them, are closed to another uid."""
    _needs_root()
    shared = Path(tempfile.mkdtemp(prefix="akn-xdg-"))
    try:
        shared.chmod(0o1777)
        monkeypatch.setenv("XDG_DATA_HOME", str(shared))
        _sign_in_there()
        signin.save_record(RECORD)
        directory = shared / local.APP_DIR
        assert _mode(directory) == 0o700
        for path in (directory, directory / signin.PLAIN_CACHE_FILE, directory / "account.json"):
            assert open_as(OTHER_UID, path) == "EACCES", path
    finally:
        shutil.rmtree(shared)


@posix_only
def test_a_shared_data_home_anyone_can_rename_in_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """XDG_DATA_HOME writable by all without the sticky bit: anyone could move our directory
    aside and put theirs in its place between the check and msal's write."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    monkeypatch.setenv("XDG_DATA_HOME", str(shared))
    with pytest.raises(SourceError) as caught:
        _sign_in_there()
    assert str(caught.value) == (
        f"not keeping the sign-in in {shared / local.APP_DIR}: anyone can rename {shared} "
        "(writable by all, without the sticky bit) and put their own directory there; set "
        "XDG_DATA_HOME to a directory of yours and sign in again"
    )
    assert signin.load_record() is None
    shared.chmod(0o1777)  # /tmp's way: nobody may rename what is not theirs
    _sign_in_there()
    signin.save_record(RECORD)
    assert signin.load_record() == RECORD


@posix_only
@pytest.mark.parametrize("mode", [0o1777, 0o755])
def test_a_data_home_another_user_owns_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: int
) -> None:
    """XDG_DATA_HOME made by another user, sticky or not: its owner may rename anything in it
    (the sticky bit binds everyone else), so between our check and msal's write they could
    put a directory of theirs, with a link where msal writes, in ours' place."""
    _needs_root()
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(mode)
    os.chown(shared, OTHER_UID, OTHER_UID)
    monkeypatch.setenv("XDG_DATA_HOME", str(shared))
    with pytest.raises(SourceError) as caught:
        _sign_in_there()
    assert str(caught.value) == (
        f"not keeping the sign-in in {shared / local.APP_DIR}: uid {OTHER_UID} can rename "
        f"anything in {shared} (it is theirs, sticky bit or not) and put their own directory "
        "there; set XDG_DATA_HOME to a directory of yours and sign in again"
    )
    assert not (shared / local.APP_DIR / signin.PLAIN_CACHE_FILE).exists()
    assert signin.load_record() is None


def test_a_file_where_the_data_home_should_be_is_one_line_with_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("", encoding="utf-8")
    monkeypatch.setenv("XDG_DATA_HOME", str(blocker))
    with pytest.raises(SourceError) as caught:
        signin._private_dir()
    assert str(caught.value) == (
        f"cannot keep the sign-in in {blocker / local.APP_DIR} (File exists); set "
        "XDG_DATA_HOME to a directory of yours and sign in again"
    )


# ---------------------------------------------------------------- the organisation's own client


def test_the_first_party_client_asks_default_the_own_client_a_narrow_scope(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    resource = "499b84ac-1321-427f-aa17-267ca6975798"
    assert signin.scopes_for(Settings.load(), write=False) == [f"{resource}/.default"]
    assert signin.scopes_for(Settings.load(), write=True) == [f"{resource}/.default"]
    monkeypatch.setenv("ARTIFACTS_KEYRING_NOFUSS_CLIENT_ID", USER_OID)
    loaded = Settings.load()
    assert signin.scopes_for(loaded, write=False) == [f"{resource}/vso.packaging"]
    assert signin.scopes_for(loaded, write=True) == [f"{resource}/vso.packaging_write"]
    assert signin.client_for(loaded) == USER_OID


def test_a_sign_in_of_the_own_client_is_another_identity() -> None:
    own = signin.Record("o.t", "alice@contoso.com", "t", "https://x/t", client_id=USER_OID)
    first_party = signin.Record("o.t", "alice@contoso.com", "t", "https://x/t")
    assert own.identity != first_party.identity
    assert first_party.identity == "interactive:o.t"


def test_an_older_record_without_a_client_is_the_first_party_clients(data: Path) -> None:
    data.mkdir(parents=True, mode=0o700)
    old = {
        "home_account_id": "o.t",
        "username": "alice@contoso.com",
        "tenant": TENANT,
        "authority": f"https://login.microsoftonline.com/{TENANT}",
    }
    path = data / signin.RECORD_FILE
    path.write_text(json.dumps(old), encoding="utf-8")
    path.chmod(0o600)
    record = signin.load_record()
    assert record is not None
    assert record.client_id == signin.CLIENT_ID
    assert record.identity == "interactive:o.t"
