"""`ak-nofuss setup ... --write`: the user's files keep everything that is not ours."""

from __future__ import annotations

import configparser
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from artifacts_keyring_nofuss import configure
from artifacts_keyring_nofuss.errors import Failed
from artifacts_keyring_nofuss.feeds import parse_feed_url

from .helpers import as_user

URL = "https://pkgs.dev.azure.com/contoso/_packaging/shared/pypi/simple/"
FEED = parse_feed_url(URL)
assert FEED is not None
PIP = configure.PLANS["pip"](FEED, "contoso-shared").text
TWINE = configure.PLANS["twine"](FEED, "contoso-shared").text
WHERE = Path("/home/someone/.config/pip/pip.conf")


def _read(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(text)
    return parser


def test_an_empty_pip_conf_gets_the_snippet() -> None:
    after = configure._merge_ini("", PIP, WHERE)
    parsed = _read(after)
    assert parsed.get("global", "index-url") == (
        "https://VssSessionToken@pkgs.dev.azure.com/contoso/_packaging/shared/pypi/simple/"
    )
    assert parsed.get("global", "keyring-provider") == "subprocess"


def test_comments_other_keys_their_case_and_other_sections_are_kept() -> None:
    before = (
        "# my pip settings, keep me\n"
        "[global]\n"
        "Timeout = 60\n"
        "; the old index\n"
        "index-url = https://pypi.org/simple/\n"
        "\n"
        "[install]\n"
        "user = false\n"
    )
    after = configure._merge_ini(before, PIP, WHERE)
    assert after.startswith("# my pip settings, keep me\n[global]\nTimeout = 60\n; the old index\n")
    assert "https://pypi.org/simple/" not in after  # replaced where it stood
    assert after.index("index-url = https://VssSessionToken@") < after.index("[install]")
    assert "keyring-provider = subprocess" in after.split("[install]")[0]
    assert after.endswith("[install]\nuser = false\n")


def test_a_second_run_changes_nothing() -> None:
    once = configure._merge_ini("[global]\ntimeout = 60\n", PIP, WHERE)
    assert configure._merge_ini(once, PIP, WHERE) == once


def test_a_multi_line_value_is_replaced_whole() -> None:
    before = "[global]\nindex-url =\n    https://a.example/simple/\n    \n[other]\nk = v\n"
    after = configure._merge_ini(before, PIP, WHERE)
    assert "https://a.example" not in after
    assert _read(after).get("other", "k") == "v"


def test_pypirc_index_servers_are_appended_to_not_replaced() -> None:
    before = "[distutils]\nindex-servers =\n    pypi\n\n[pypi]\nusername = __token__\n"
    after = configure._merge_ini(before, TWINE, Path("/home/someone/.pypirc"))
    parsed = _read(after)
    assert parsed.get("distutils", "index-servers").split() == ["pypi", "contoso-shared"]
    assert parsed.get("pypi", "username") == "__token__"
    assert parsed.get("contoso-shared", "repository") == (
        "https://pkgs.dev.azure.com/contoso/_packaging/shared/pypi/upload/"
    )
    assert configure._merge_ini(after, TWINE, Path("/home/someone/.pypirc")) == after


@pytest.mark.parametrize(
    "broken",
    ["index-url = https://pypi.org/simple/\n", "[global\nx = 1\n", "[a]\n[a]\n"],
    ids=["no section", "bad header", "duplicate section"],
)
def test_a_file_configparser_cannot_read_is_one_message_naming_it(broken: str) -> None:
    with pytest.raises(Failed) as caught:
        configure._merge_ini(broken, PIP, WHERE)
    assert str(WHERE) in str(caught.value)
    assert "merge the lines above by hand" in str(caught.value)


def test_uv_toml_puts_the_provider_first_and_keeps_the_rest() -> None:
    assert FEED is not None
    before = '# mine\n[[index]]\nname = "other"\nurl = "https://other.example/simple/"\n'
    after = configure._merge_uv(before, FEED, "contoso-shared")
    assert after.startswith('keyring-provider = "subprocess"\n\n# mine\n[[index]]\nname = "other"')
    assert after.rstrip().endswith(
        'url = "https://VssSessionToken@pkgs.dev.azure.com/contoso/_packaging/shared/pypi/simple/"'
    )
    assert configure._merge_uv(after, FEED, "contoso-shared") == after


# ---------------------------------------------------------------- writing the user's file, as
# another local user watches a home directory that others can read

OTHER_UID = 12345
PYPI_TOKEN = "pypi-AgEIcHlwaS5vcmcCJGZha2UtdG9rZW4tb2YtYW5vdGhlci1zZWN0aW9u"
PYPIRC = (
    "[distutils]\nindex-servers =\n    pypi\n\n"
    f"[pypi]\nusername = __token__\npassword = {PYPI_TOKEN}\n"
)
SRC = str(Path(configure.__file__).resolve().parents[1])
posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX owners and modes")


def _needs_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("another uid needs root")


@pytest.fixture
def home(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A home directory others can enter and read (the default on many systems), with
    XDG_CONFIG_HOME under it; outside pytest's own temporary directory, which only its owner
    may enter."""
    shared = Path(tempfile.mkdtemp(prefix="akn-homes-"))
    try:
        shared.chmod(0o755)
        home = shared / "home"
        home.mkdir(mode=0o755)
        home.chmod(0o755)
        monkeypatch.setenv("HOME", str(home))
        monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
        yield home
    finally:
        shutil.rmtree(shared)


def _setup(tool: str, capsys: pytest.CaptureFixture[str] | None = None) -> str:
    assert FEED is not None
    assert configure.run(tool, FEED, URL, write=True, name=None) == 0
    return capsys.readouterr().out if capsys is not None else ""


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def _no_leftovers(directory: Path) -> None:
    assert [p.name for p in directory.iterdir() if p.name.endswith(".tmp")] == []


# The writer, with a reader as another uid at every step it takes: an audit hook runs at each
# file-system operation (open, chmod, rename, ...), before it happens, and forks a child that
# drops to OTHER_UID and reads every file in the home directory. Deterministic: it sees each
# state the files pass through, where a polling loop would only see some. A file anyone may
# read, `control`, proves that the reader could read what was there to read.
_WATCHED_WRITER = """
import json, os, sys
from pathlib import Path
from artifacts_keyring_nofuss import configure
from artifacts_keyring_nofuss.feeds import parse_feed_url

home = Path(os.environ["HOME"])
secret = os.environ["WATCHED_SECRET"].encode()
uid = int(os.environ["WATCHER_UID"])
leaks, polls, controls = set(), 0, 0
busy = False

def read_as_other():
    readable, writable = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            os.setgid(uid)
            os.setuid(uid)
            for name in os.listdir(home):
                try:
                    fd = os.open(home / name, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
                except OSError:
                    continue
                data = os.read(fd, 1 << 20)
                os.close(fd)
                if secret in data:
                    os.write(writable, ("leak:" + name + "\\n").encode())
                elif data == b"control":
                    os.write(writable, b"control\\n")
        finally:
            os._exit(0)
    os.close(writable)
    os.waitpid(child, 0)
    with os.fdopen(readable) as result:
        return result.read().split()

def watch(event, args):
    global busy, polls, controls
    if busy or not (event == "open" or event.startswith(("os.", "shutil."))):
        return
    busy = True
    try:
        found = read_as_other()
        polls += 1
        controls += "control" in found
        leaks.update(f"{f[5:]} (at {event})" for f in found if f.startswith("leak:"))
    finally:
        busy = False

os.umask(0o022)
feed = parse_feed_url(sys.argv[1])
sys.addaudithook(watch)
configure.run("twine", feed, sys.argv[1], write=True, name=None)
busy = True
print(json.dumps({"leaks": sorted(leaks), "polls": polls, "controls": controls}), file=sys.stderr)
"""


@posix_only
def test_a_second_user_polling_the_home_never_reads_pypirc(home: Path) -> None:
    """The issue's reader: the staged copy of .pypirc was created with the umask's 0644 and only
    chmod'ed afterwards, so another user captured the PyPI token of another section."""
    _needs_root()
    pypirc = home / ".pypirc"
    pypirc.write_text(PYPIRC, encoding="utf-8")
    pypirc.chmod(0o600)
    (home / "control").write_text("control", encoding="utf-8")
    (home / "control").chmod(0o644)
    done = subprocess.run(
        [sys.executable, "-c", _WATCHED_WRITER, URL],
        env={
            **os.environ,
            "PYTHONPATH": SRC,
            "WATCHED_SECRET": PYPI_TOKEN,
            "WATCHER_UID": str(OTHER_UID),
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    watched = json.loads(done.stderr.splitlines()[-1])
    assert watched["polls"] >= 3, watched  # at least: staging, mode, replace
    assert watched["controls"] == watched["polls"], watched
    assert watched["leaks"] == [], "another user read the token"
    assert "contoso-shared" in pypirc.read_text(encoding="utf-8")  # the change was made
    assert PYPI_TOKEN in pypirc.read_text(encoding="utf-8")
    assert _mode(pypirc) == 0o600
    _no_leftovers(home)


@posix_only
@pytest.mark.parametrize("tool", ["pip", "uv", "twine"])
def test_a_new_file_is_created_private(
    home: Path, capsys: pytest.CaptureFixture[str], tool: str
) -> None:
    os.umask(umask := os.umask(0o022))  # the usual umask, whatever the test run's is
    try:
        os.umask(0o022)
        _setup(tool)
    finally:
        os.umask(umask)
    written = {
        "pip": home / ".config/pip/pip.conf",
        "uv": home / ".config/uv/uv.toml",
        "twine": home / ".pypirc",
    }[tool]
    assert _mode(written) == 0o600
    assert os.lstat(written).st_uid == os.getuid()
    _no_leftovers(written.parent)


@posix_only
@pytest.mark.parametrize("mode", [0o600, 0o640, 0o644, 0o400])
def test_an_existing_file_keeps_its_mode(
    home: Path, capsys: pytest.CaptureFixture[str], mode: int
) -> None:
    pypirc = home / ".pypirc"
    pypirc.write_text(PYPIRC, encoding="utf-8")
    pypirc.chmod(mode)
    _setup("twine")
    assert _mode(pypirc) == mode
    assert "contoso-shared" in pypirc.read_text(encoding="utf-8")
    _no_leftovers(home)


@posix_only
def test_an_existing_file_keeps_its_owner(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`sudo ak-nofuss setup ...` with the user's HOME: the user's file stays the user's."""
    _needs_root()
    pypirc = home / ".pypirc"
    pypirc.write_text(PYPIRC, encoding="utf-8")
    pypirc.chmod(0o640)
    os.chown(pypirc, OTHER_UID, OTHER_UID)
    _setup("twine")
    info = os.lstat(pypirc)
    assert (info.st_uid, info.st_gid, _mode(pypirc)) == (OTHER_UID, OTHER_UID, 0o640)
    assert "contoso-shared" in pypirc.read_text(encoding="utf-8")
    _no_leftovers(home)


@posix_only
def test_a_file_of_another_users_is_never_taken_over(home: Path) -> None:
    """As a user who is not root, in a home they own, a .pypirc that belongs to someone else
    (root, after a `sudo twine ...`) is not replaced by a file of theirs: one line says so."""
    _needs_root()
    pypirc = home / ".pypirc"
    pypirc.write_text(PYPIRC, encoding="utf-8")
    pypirc.chmod(0o644)
    os.chown(home, OTHER_UID, OTHER_UID)
    outcome = as_user(OTHER_UID, lambda: _setup("twine"))
    os.chown(home, os.getuid(), os.getgid())
    assert outcome.startswith("Failed: ")
    assert outcome == (
        f"Failed: {pypirc} belongs to another user (uid 0); ak-nofuss edits only your own "
        "files: merge the lines above by hand"
    )
    assert os.lstat(pypirc).st_uid == 0
    assert pypirc.read_text(encoding="utf-8") == PYPIRC
    _no_leftovers(home)


# ---------------------------------------------------------------- dotfiles: links


@posix_only
@pytest.mark.parametrize(
    ("tool", "where"),
    [("twine", ".pypirc"), ("pip", ".config/pip/pip.conf"), ("uv", ".config/uv/uv.toml")],
)
def test_a_linked_dotfile_is_edited_through_its_link(
    home: Path, capsys: pytest.CaptureFixture[str], tool: str, where: str
) -> None:
    dotfiles = home / "dotfiles"
    dotfiles.mkdir()
    real = dotfiles / Path(where).name
    real.write_text("# from my dotfiles repository\n", encoding="utf-8")
    real.chmod(0o644)
    link = home / where
    link.parent.mkdir(parents=True, exist_ok=True)
    # A relative link, as dotfile managers make them, or an absolute one.
    link.symlink_to(Path("dotfiles") / real.name if "/" not in where else real)
    out = _setup(tool, capsys)
    assert link.is_symlink()
    assert link.resolve() == real
    text = real.read_text(encoding="utf-8")
    assert "# from my dotfiles repository" in text
    assert "pkgs.dev.azure.com/contoso/_packaging/shared" in text
    assert _mode(real) == 0o644
    assert f"# wrote {real} (through the link {link})" in out.splitlines()
    _no_leftovers(dotfiles)
    _no_leftovers(link.parent)
    # Again: nothing to change, and the link is still a link.
    assert f"# already there, unchanged: {link}" in _setup(tool, capsys).splitlines()
    assert link.is_symlink()


@posix_only
def test_a_chain_of_links_is_followed_to_the_file(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    real = home / "repo" / "pypirc"
    real.parent.mkdir()
    real.write_text(PYPIRC, encoding="utf-8")
    real.chmod(0o600)
    (home / "middle").symlink_to(real)
    (home / ".pypirc").symlink_to(home / "middle")
    _setup("twine", capsys)
    assert (home / ".pypirc").is_symlink() and (home / "middle").is_symlink()
    assert "contoso-shared" in real.read_text(encoding="utf-8")
    assert _mode(real) == 0o600


@posix_only
def test_a_dangling_link_is_refused(home: Path) -> None:
    (home / ".pypirc").symlink_to(home / "dotfiles" / "pypirc")
    with pytest.raises(Failed) as caught:
        _setup("twine")
    assert str(caught.value) == (
        f"{home / '.pypirc'} is a link to {home / 'dotfiles' / 'pypirc'}, which does not exist: "
        "create that file (or remove the link), then run this again"
    )
    assert not (home / "dotfiles").exists()
    assert (home / ".pypirc").is_symlink()


@posix_only
def test_a_link_loop_is_refused(home: Path) -> None:
    (home / ".pypirc").symlink_to(home / "other")
    (home / "other").symlink_to(home / ".pypirc")
    with pytest.raises(Failed, match="is a link that leads nowhere"):
        _setup("twine")


@posix_only
def test_a_hard_linked_file_is_refused(home: Path) -> None:
    pypirc = home / ".pypirc"
    pypirc.write_text(PYPIRC, encoding="utf-8")
    os.link(pypirc, home / "backup-of-pypirc")
    with pytest.raises(Failed, match="has 2 hard links"):
        _setup("twine")
    assert pypirc.read_text(encoding="utf-8") == PYPIRC


@posix_only
@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_something_that_is_not_a_file_is_refused(home: Path, kind: str) -> None:
    pypirc = home / ".pypirc"
    if kind == "fifo":
        os.mkfifo(pypirc, 0o600)
    else:
        pypirc.mkdir()
    with pytest.raises(Failed, match="is not a regular file"):
        _setup("twine")
    assert pypirc.exists() and not pypirc.is_file()


def test_a_file_that_is_not_utf8_is_one_line(home: Path) -> None:
    (home / ".pypirc").write_bytes(b"[pypi]\nusername = \xff\xfe\n")
    with pytest.raises(Failed, match="is not UTF-8 text; merge the lines above by hand"):
        _setup("twine")


@posix_only
def test_a_link_another_user_planted_is_not_followed(home: Path) -> None:
    """A config directory others can write to (a shared XDG_CONFIG_HOME): their link to a file
    of ours is not a way to make us edit it."""
    _needs_root()
    ours = home / "my-notes.ini"
    ours.write_text("[notes]\nkeep = me\n", encoding="utf-8")
    conf = home / ".config" / "pip" / "pip.conf"
    conf.parent.mkdir(parents=True)
    conf.symlink_to(ours)
    os.lchown(conf, OTHER_UID, OTHER_UID)
    with pytest.raises(Failed) as caught:
        _setup("pip")
    assert str(caught.value) == (
        f"{conf} is a link made by another user (uid {OTHER_UID}): not following it; remove "
        "it, or merge the lines above by hand"
    )
    assert ours.read_text(encoding="utf-8") == "[notes]\nkeep = me\n"


@posix_only
@pytest.mark.parametrize("where", ["middle", "directory"])
def test_a_link_another_user_planted_further_along_is_not_followed(
    home: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """Our own link to a shared place, where another user's link (or a directory name that is
    their link) leads on to a file of ours: only our own (or root's) links are followed, every
    one of them, not just the first."""
    _needs_root()
    ours = home / "my-notes.ini"
    ours.write_text("[notes]\nkeep = me\n", encoding="utf-8")
    shared = home / "shared"
    shared.mkdir(mode=0o1777)
    if where == "middle":
        planted = shared / "pypirc"
        planted.symlink_to(ours)
        (home / ".pypirc").symlink_to(planted)
        tool, path = "twine", home / ".pypirc"
    else:
        (home / "elsewhere").mkdir()
        (home / "elsewhere" / "pip.conf").symlink_to(ours)
        planted = shared / "pip"
        planted.symlink_to(home / "elsewhere", target_is_directory=True)
        monkeypatch.setenv("XDG_CONFIG_HOME", str(shared))
        tool, path = "pip", shared / "pip" / "pip.conf"
    os.lchown(planted, OTHER_UID, OTHER_UID)
    with pytest.raises(Failed) as caught:
        _setup(tool)
    assert str(caught.value) == (
        f"{path} leads through {planted}, a link made by another user (uid {OTHER_UID}): not "
        "following it; remove it, or merge the lines above by hand"
    )
    assert ours.read_text(encoding="utf-8") == "[notes]\nkeep = me\n"


@pytest.mark.parametrize("tool", ["twine", "pip", "uv"])
def test_a_relative_home_is_never_the_current_directory(
    home: Path, monkeypatch: pytest.MonkeyPatch, tool: str
) -> None:
    """HOME=. (or any relative HOME): ~/.pypirc, ~/.config/pip/pip.conf would be read and
    written in the current directory, a checked-out repository's files."""
    work = home / "checkout"
    work.mkdir()
    planted = "[distutils]\nindex-servers = theirs\n"
    (work / ".pypirc").write_text(planted, encoding="utf-8")
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", ".")
    monkeypatch.delenv("XDG_CONFIG_HOME")
    with pytest.raises(Failed) as caught:
        _setup(tool)
    assert str(caught.value) == (
        "HOME is not an absolute path, and the user's configuration is never looked for in "
        "the current directory: set HOME to your home directory"
    )
    assert sorted(p.name for p in work.iterdir()) == [".pypirc"]
    assert (work / ".pypirc").read_text(encoding="utf-8") == planted


def test_a_file_where_the_config_directory_should_be_is_one_line_with_the_fix(
    home: Path,
) -> None:
    (home / ".config").write_text("", encoding="utf-8")
    with pytest.raises(Failed) as caught:
        _setup("pip")
    assert str(caught.value) == (
        f"cannot read {home / '.config' / 'pip' / 'pip.conf'} (Not a directory); merge the "
        "lines above by hand"
    )


# --- uv: the form we write, and what doctor says of the others ---------------------------------


def test_the_uv_plan_puts_the_username_in_every_index_url_it_prints() -> None:
    assert FEED is not None
    text = configure.PLANS["uv"](FEED, "contoso-shared").text
    urls = [
        line.split("=", 1)[1].strip().strip('"')
        for line in text.splitlines()
        if line.lstrip("# ").startswith("url =")
    ]
    assert urls == [configure._with_user(URL)] * 2  # uv.toml, and the pyproject.toml lines
    assert configure.uv_index_advice(urls[0]) is None
    # `authenticate = "always"` is named only to say why it is not the form to use.
    assert not [line for line in text.splitlines() if line.startswith("authenticate")]
    assert not [line for line in text.splitlines() if line.startswith("# authenticate")]


@pytest.mark.parametrize(
    "url",
    [
        "https://VssSessionToken@pkgs.dev.azure.com/contoso/_packaging/shared/pypi/simple/",
        "https://__token__@pkgs.dev.azure.com/contoso/_packaging/shared/pypi/simple",
        "https://u:p@pkgs.dev.azure.com/contoso/_packaging/shared/pypi/simple/",
        "http://pkgs.dev.azure.com/contoso/_packaging/shared/pypi/simple/",
        "https://[::1/simple/",
        "",
    ],
    ids=["VssSessionToken", "__token__", "password in the URL", "not https", "unparsable", "empty"],
)
def test_no_advice_for_the_form_we_write_or_for_what_is_not_an_index_url(url: str) -> None:
    assert configure.uv_index_advice(url, authenticate="always") is None


def test_advice_for_authenticate_always_without_a_username() -> None:
    advice = configure.uv_index_advice(URL, authenticate=" Always ")
    assert advice is not None
    assert "`uv sync` from a uv.lock" in advice.what and "401" in advice.what
    assert advice.fix == f"put the username in the index URL: {configure._with_user(URL)}"


def test_advice_for_a_username_from_the_environment() -> None:
    advice = configure.uv_index_advice(URL, username_variable="UV_INDEX_AZURE_USERNAME")
    assert advice is not None
    assert advice.what.startswith("UV_INDEX_AZURE_USERNAME gives uv the username")
    assert "after their 401" in advice.what
    assert advice.fix == (
        f"put the username in the index URL: {configure._with_user(URL)} "
        "(and unset UV_INDEX_AZURE_USERNAME)"
    )


@pytest.mark.parametrize("authenticate", [None, "auto", "never"])
def test_advice_for_no_username_at_all(authenticate: str | None) -> None:
    advice = configure.uv_index_advice(URL, authenticate=authenticate)
    assert advice == configure.UvAdvice(
        "no username in the index URL: uv never asks keyring for it",
        f"put the username in the index URL: {configure._with_user(URL)}",
    )
