"""`ak-nofuss setup TOOL URL`: the configuration each client needs to ask keyring for a feed.

It prints the change; with --write it shows it, then writes the user-level file (pip.conf,
uv.toml, .pypirc) or runs the tool's own command (poetry, pdm). It never writes a secret: the
username is the customary `VssSessionToken`, the password always comes from keyring.
"""

from __future__ import annotations

import configparser
import os
import re
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from . import local
from . import log as _log
from .errors import Failed
from .feeds import Feed

USERNAME = "VssSessionToken"


@dataclass
class Plan:
    tool: str
    explain: str
    text: str  # what is printed: a file snippet or commands
    path: Path | None = None  # the file --write changes
    commands: list[list[str]] = field(default_factory=list)  # or the commands it runs
    # command index -> given the program's path, is that step already done?
    done_when: dict[int, Callable[[str], bool]] = field(default_factory=dict)


class _Out:
    """stdout, with every URL's password redacted: what setup prints comes from the feed, never
    from the URL as typed, and this keeps it so."""

    @staticmethod
    def write(text: str) -> None:
        sys.stdout.write(_log.redact_urls(text))


def run(tool: str, feed: Feed, url: str, write: bool, name: str | None) -> int:
    index_name = name or _default_name(feed)
    plan = PLANS[tool](feed, index_name)
    out = _Out()
    out.write(f"# {plan.explain}\n")
    if plan.path is not None:
        out.write(f"# in {plan.path}:\n")
    out.write(plan.text if plan.text.endswith("\n") else plan.text + "\n")
    if not write:
        out.write("# (ak-nofuss setup ... --write makes this change)\n")
        return 0
    if plan.path is not None:
        written = _apply_file(tool, plan, feed, index_name)
        if written is None:
            out.write(f"# already there, unchanged: {plan.path}\n")
        else:
            link = f" (through the link {plan.path})" if written != plan.path else ""
            out.write(f"# wrote {written}{link}\n")
    for number, command in enumerate(plan.commands):
        from .local import find_on_path

        program = find_on_path((command[0],))
        if program is None:
            raise Failed(f"`{command[0]}` is not on PATH; run the commands above yourself")
        check = plan.done_when.get(number)
        if check is not None and check(program):
            out.write(f"# already done: {' '.join(command)}\n")
            continue
        done = subprocess.run([program, *command[1:]], stdin=subprocess.DEVNULL, check=False)
        if done.returncode != 0:
            raise Failed(f"`{' '.join(command)}` failed (exit {done.returncode})")
        out.write(f"# ran: {' '.join(command)}\n")
    return 0


def _succeeds(command: list[str]) -> bool:
    try:
        done = subprocess.run(
            command, stdin=subprocess.DEVNULL, capture_output=True, timeout=120, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def _poetry_has_backend(program: str) -> bool:
    """Can poetry's own interpreter import the backend? Its script's shebang names it (pipx,
    uv tool and the official installer all make one); else ask `poetry self show`."""
    try:
        with Path(program).open("rb") as handle:
            first = handle.readline(512)
    except OSError:
        first = b""
    if first.startswith(b"#!"):
        interpreter = first[2:].decode("utf-8", "replace").strip()
        if Path(interpreter).is_absolute() and " " not in interpreter:
            return _succeeds([interpreter, "-c", "import artifacts_keyring_nofuss.backend"])
    return _succeeds([program, "self", "show", "artifacts-keyring-nofuss"])


def _default_name(feed: Feed) -> str:
    name = re.sub(r"[^a-z0-9]+", "-", f"{feed.org}-{feed.feed}".lower()).strip("-")
    return name or "azure-artifacts"


def _with_user(url: str) -> str:
    return url.replace("https://", f"https://{USERNAME}@", 1)


def _index_url(feed: Feed) -> str:
    return feed.index_url


def _upload_url(feed: Feed) -> str:
    return feed.index_url.replace("/pypi/simple/", "/pypi/upload/")


# --- where each tool keeps its user configuration ---------------------------------------------


def _home() -> Path:
    """The home directory, absolute: Path.home() is HOME as given, and HOME=. would make the
    current directory's (a checked-out repository's) .pypirc the one read and rewritten."""
    found = local.home()
    if found is None:
        raise Failed(
            "HOME is not an absolute path, and the user's configuration is never looked for in "
            "the current directory: set HOME to your home directory"
        )
    return found


def _config_home() -> Path:
    xdg = os.environ.get("XDG_CONFIG_HOME", "")
    return Path(xdg) if xdg and Path(xdg).is_absolute() else _home() / ".config"


def pip_config_path() -> Path:
    if sys.platform == "win32":
        return Path(os.environ.get("APPDATA", Path.home())) / "pip" / "pip.ini"
    return _config_home() / "pip" / "pip.conf"


def uv_config_path() -> Path:
    if sys.platform == "win32":
        return Path(os.environ.get("APPDATA", Path.home())) / "uv" / "uv.toml"
    return _config_home() / "uv" / "uv.toml"


def pypirc_path() -> Path:
    return _home() / ".pypirc"


# --- the plans ----------------------------------------------------------------------------------


def _pip(feed: Feed, name: str) -> Plan:
    text = f"[global]\nindex-url = {_with_user(_index_url(feed))}\nkeyring-provider = subprocess\n"
    return Plan(
        "pip",
        "pip asks the `keyring` command on PATH after the feed's 401; the username makes every "
        "pip version ask",
        text,
        path=pip_config_path(),
    )


def _uv_snippets(feed: Feed, name: str) -> tuple[str, str]:
    top = 'keyring-provider = "subprocess"\n'
    index = f'[[index]]\nname = "{name}"\nurl = "{_with_user(_index_url(feed))}"\n'
    return top, index


def _uv(feed: Feed, name: str) -> Plan:
    top, index = _uv_snippets(feed, name)
    text = (
        top
        + "\n"
        + index
        + "\n# or, in a project's pyproject.toml:\n"
        + "# [tool.uv]\n# "
        + top
        + "# [[tool.uv.index]]\n"
        + f'# name = "{name}"\n'
        + f'# url = "{_with_user(_index_url(feed))}"\n'
        + "# the username in the URL is what makes uv ask keyring, for the index and for the\n"
        + '# files a uv.lock lists (not under the index URL: `authenticate = "always"` without\n'
        + "# a username does not reach them, and `uv sync` from a lock fails with 401)\n"
        + f"# to publish: uv publish --index {name} --publish-url {_upload_url(feed)} "
        + f"--username {USERNAME} --keyring-provider subprocess\n"
    )
    return Plan(
        "uv",
        "uv asks the `keyring` command on PATH once, before its first request, when the index "
        "URL has a username: the fastest form that works for installs and for `uv sync` from "
        "a lock",
        text,
        path=uv_config_path(),
    )


@dataclass(frozen=True)
class UvAdvice:
    """What is wrong with the way uv is told about a feed, and what to write instead."""

    what: str
    fix: str


def uv_index_advice(
    url: str, *, authenticate: str | None = None, username_variable: str | None = None
) -> UvAdvice | None:
    """None when `url` (an index URL as written in uv.toml, pyproject.toml, UV_INDEX or
    --index-url) is the form `setup uv` writes: a username and no password in it. Otherwise
    what the form costs or breaks, and the URL to write instead. `authenticate` is the index's
    `authenticate` setting, `username_variable` the name of a UV_INDEX_<NAME>_USERNAME that is
    set for it. Reads nothing and runs nothing: what it says was measured with uv 0.13
    (bench/run: uv sends every request under the index with the credential keyring gave it
    before the first one; the feed's files live under the feed's id, not under the index URL,
    so uv reaches them with the username it has for the host)."""
    try:
        parts = urlsplit(url.strip())
        password = parts.password
    except ValueError:
        return None
    if parts.scheme.lower() != "https" or not parts.hostname:
        return None
    if parts.username or password:
        return None  # the fastest form; a password in the URL never asks keyring at all
    instead = f"put the username in the index URL: {_with_user(url.strip())}"
    if username_variable:
        return UvAdvice(
            f"{username_variable} gives uv the username: uv sends the first requests with the "
            "username alone, asks keyring only after their 401, and sends them again",
            f"{instead} (and unset {username_variable})",
        )
    if (authenticate or "").strip().lower() == "always":
        return UvAdvice(
            '`authenticate = "always"` without a username: uv asks keyring only for URLs '
            "under the index URL, and the feed's files are not under it: `uv sync` from a "
            "uv.lock with an empty cache (a new clone, CI) fails with 401",
            instead,
        )
    return UvAdvice("no username in the index URL: uv never asks keyring for it", instead)


def _twine(feed: Feed, name: str) -> Plan:
    text = (
        f"[distutils]\nindex-servers =\n    {name}\n\n[{name}]\nrepository = {_upload_url(feed)}\n"
    )
    return Plan(
        "twine",
        f"twine asks keyring for the upload URL; then: twine upload -r {name} dist/*",
        text,
        path=pypirc_path(),
    )


def _poetry(feed: Feed, name: str) -> Plan:
    url = _index_url(feed).rstrip("/")
    commands = [
        ["poetry", "self", "add", "artifacts-keyring-nofuss"],
        ["poetry", "source", "add", "--priority=primary", name, url],
    ]
    text = "\n".join(" ".join(c) for c in commands) + (
        f"\n# to publish: poetry config repositories.{name} {_upload_url(feed)}"
        f"\n#             poetry publish -r {name}\n"
    )
    return Plan(
        "poetry",
        "poetry asks keyring from its own environment: add the backend there, then the source "
        "(in the project in the current directory)",
        text,
        commands=commands,
        done_when={0: _poetry_has_backend},
    )


def _pdm(feed: Feed, name: str) -> Plan:
    commands = [["pdm", "config", "pypi.url", _index_url(feed)]]
    text = "\n".join(" ".join(c) for c in commands) + (
        "\n# pdm imports keyring from its own environment: add the backend there (pdm self add "
        "artifacts-keyring-nofuss); only when keyring is not importable there does it run the "
        "`keyring` command on PATH\n"
        f"# to keep PyPI and search the feed as well: pdm config pypi.{name}.url "
        f"{_index_url(feed)}\n"
        f"# to publish: pdm publish --repository {_upload_url(feed)} --username {USERNAME}\n"
    )
    return Plan(
        "pdm",
        "pdm asks keyring after the feed's 401, and before an upload",
        text,
        commands=commands,
    )


PLANS = {"pip": _pip, "uv": _uv, "twine": _twine, "poetry": _poetry, "pdm": _pdm}


# --- writing ------------------------------------------------------------------------------------


def _apply_file(tool: str, plan: Plan, feed: Feed, name: str) -> Path | None:
    """The file written (the link's target when the user's file is a link), or None when it
    already had the change."""
    assert plan.path is not None  # noqa: S101 - only file plans get here
    target = edit_target(plan.path)
    before, original = read_config(target)
    after = _merge_uv(before, feed, name) if tool == "uv" else _merge_ini(before, plan.text, target)
    if after == before:
        return None
    replace_file(target, after, original)
    return target


# --- the user's file, edited in place as far as anyone can see --------------------------------
# Another local user may poll a home directory that others can read, and dotfiles are often
# links into a repository: a staged copy must never be readable by others for an instant, and a
# link must stay a link, its target holding the change.

MAX_CONFIG = 1024 * 1024


def edit_target(path: Path) -> Path:
    """The file to edit for `path`: itself, or the file a link (a chain of links) leads to. A
    link that leads nowhere is refused: creating a file wherever it points is not ours to do."""
    foreign = _foreign_link(path)
    if foreign is not None:
        # Planted in a directory others can write to (a shared XDG_CONFIG_HOME), or root
        # running with a user's HOME: a link someone else made could lead anywhere we can write.
        link, owner = foreign
        what = f"{path} is a link" if link == path else f"{path} leads through {link}, a link"
        raise Failed(
            f"{what} made by another user (uid {owner}): not following it; remove it, or merge "
            "the lines above by hand"
        )
    try:
        info = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return path  # nothing there: reading it says so (a file in a directory's place, too)
    if not stat.S_ISLNK(info.st_mode):
        return path
    try:
        return Path(os.path.realpath(path, strict=True))
    except FileNotFoundError:
        raise Failed(
            f"{path} is a link to {os.path.realpath(path)}, which does not exist: create that file "
            "(or remove the link), then run this again"
        ) from None
    except OSError as exc:
        raise Failed(f"{path} is a link that leads nowhere ({exc.strerror})") from None


def _foreign_link(path: Path) -> tuple[Path, int] | None:
    """The first link on the way to `path` that neither we nor root made, with its owner, or
    None: each one is checked, in a directory's name as in the file's own and all along a chain
    (ours to a shared place, theirs from there to a file of ours is still theirs to aim)."""
    if sys.platform == "win32":
        return None
    trusted = (0, os.geteuid())
    pending = list(path.parts)
    current = Path(pending.pop(0)) if path.is_absolute() else Path()
    hops = 0
    while pending:
        name = pending.pop(0)
        if name == "..":
            current = current.parent  # `current` has no link in it: the physical parent
            continue
        candidate = current / name
        try:
            info = os.lstat(candidate)
        except OSError:
            return None  # nothing further on exists to be a link; realpath says the rest
        if not stat.S_ISLNK(info.st_mode):
            current = candidate
            continue
        if info.st_uid not in trusted:
            return candidate, info.st_uid
        hops += 1
        if hops > 40:
            return None  # a loop: realpath refuses it
        try:
            target = candidate.readlink()
        except OSError:
            return None
        pending[:0] = target.parts
        if target.is_absolute():
            current = Path(pending.pop(0))
    return None


def read_config(path: Path) -> tuple[str, os.stat_result | None]:
    """The text of a config file and its status, or ("", None) when there is none. Only a
    regular file of a reasonable size, with one name (a replace would leave another name, a
    hard link, holding the old text); never blocking on a FIFO."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return "", None
    except OSError as exc:
        raise Failed(
            f"cannot read {path} ({exc.strerror}); merge the lines above by hand"
        ) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise Failed(f"{path} is not a regular file; merge the lines above by hand")
        if info.st_nlink > 1:
            raise Failed(
                f"{path} has {info.st_nlink} hard links, which replacing it would leave with the "
                "old text; merge the lines above by hand"
            )
        if info.st_size > MAX_CONFIG:
            raise Failed(f"{path} is larger than 1 MiB; merge the lines above by hand")
        data = os.read(fd, MAX_CONFIG + 1)
    finally:
        os.close(fd)
    try:
        return data.decode("utf-8"), info
    except UnicodeDecodeError:
        raise Failed(f"{path} is not UTF-8 text; merge the lines above by hand") from None


def replace_file(path: Path, text: str, original: os.stat_result | None) -> None:
    """Write `text` to `path` atomically: staged in the same directory, created exclusively
    (mkstemp: 0600, never through a link), given the original's owner and mode (0600 for a new
    file) before its first byte, then moved over the old one."""
    posix = sys.platform != "win32"
    if original is None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise Failed(
                f"cannot write {path} ({exc.strerror}); merge the lines above by hand"
            ) from None
    elif posix and original.st_uid != os.geteuid() and os.geteuid() != 0:
        raise Failed(
            f"{path} belongs to another user (uid {original.st_uid}); ak-nofuss edits only "
            "your own files: merge the lines above by hand"
        )
    try:
        fd, staged = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise Failed(
            f"cannot write {path} ({exc.strerror}); merge the lines above by hand"
        ) from None
    try:
        if posix:
            if original is not None:
                mine = os.fstat(fd)
                if (mine.st_uid, mine.st_gid) != (original.st_uid, original.st_gid):
                    os.fchown(fd, original.st_uid, original.st_gid)
            os.fchmod(fd, 0o600 if original is None else stat.S_IMODE(original.st_mode) & 0o777)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        Path(staged).replace(path)
    except BaseException as exc:
        with suppress(OSError):
            Path(staged).unlink()
        if isinstance(exc, OSError):
            raise Failed(
                f"cannot write {path} ({exc.strerror}); merge the lines above by hand"
            ) from None
        raise


def _merge_ini(before: str, snippet: str, where: Path) -> str:
    """The snippet's keys set in an INI file; every other section and key kept."""
    current = configparser.ConfigParser(interpolation=None)
    try:
        current.read_string(before)
    except configparser.Error as exc:
        first = str(exc).splitlines()[0]
        raise Failed(
            f"cannot read {where} ({first}); fix it, or merge the lines above by hand"
        ) from None
    wanted = configparser.ConfigParser(interpolation=None)
    wanted.read_string(snippet)
    lines = before.splitlines()
    changed = False
    for section in wanted.sections():
        for key, value in wanted.items(section):
            new = value.strip()
            if key == "index-servers" and current.has_option(section, key):
                names = current.get(section, key).split()
                extra = [n for n in new.split() if n not in names]
                if not extra:
                    continue
                new = "\n".join(names + extra)
            old = current.get(section, key, fallback=None) if current.has_section(section) else None
            if old is None or old.strip() != new:
                _set_line(lines, section, key, new)
                changed = True
    if not changed:
        return before
    return "\n".join(lines) + "\n"


def _set_line(lines: list[str], section: str, key: str, value: str) -> None:
    """Set one key in INI text, in place, leaving every other line (comments included) as it
    was: configparser would rewrite the whole file."""
    rendered = (
        [f"{key} = {value}"]
        if "\n" not in value
        else [
            f"{key} =",
            *(f"    {part}" for part in value.splitlines()),
        ]
    )
    header = re.compile(r"\s*\[\s*(.+?)\s*\]\s*$")
    start = next(
        (i for i, ln in enumerate(lines) if (m := header.match(ln)) and m.group(1) == section),
        None,
    )
    if start is None:
        if lines and lines[-1].strip():
            lines.append("")
        lines += [f"[{section}]", *rendered]
        return
    end = next((i for i in range(start + 1, len(lines)) if header.match(lines[i])), len(lines))
    pattern = re.compile(rf"\s*{re.escape(key)}\s*[=:]", re.IGNORECASE)
    for i in range(start + 1, end):
        if pattern.match(lines[i]):
            stop = i + 1
            while stop < end and lines[stop][:1].isspace() and lines[stop].strip():
                stop += 1  # the value's continuation lines
            lines[i:stop] = rendered
            return
    last = max((i for i in range(start, end) if lines[i].strip()), default=start)
    lines[last + 1 : last + 1] = rendered


def _merge_uv(before: str, feed: Feed, name: str) -> str:
    """uv.toml: the top-level keyring-provider first (a key after a table belongs to it), the
    [[index]] appended, unless the file already has them."""
    top, index = _uv_snippets(feed, name)
    after = before
    if not re.search(r"(?m)^\s*keyring-provider\s*=", before):
        after = top + ("\n" + after if after else "")
    if _index_url(feed) not in before and _with_user(_index_url(feed)) not in before:
        after = after.rstrip("\n") + ("\n\n" if after.strip() else "") + index
    return after
