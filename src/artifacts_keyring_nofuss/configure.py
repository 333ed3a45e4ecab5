"""`ak-nofuss setup TOOL URL`: the configuration each client needs to ask keyring for a feed.

It prints the change; with --write it shows it, then writes the user-level file (pip.conf,
uv.toml, .pypirc) or runs the tool's own command (poetry, pdm). It never writes a secret: the
username is the customary `VssSessionToken`, the password always comes from keyring.
"""

from __future__ import annotations

import configparser
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

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


def run(tool: str, feed: Feed, url: str, write: bool, name: str | None) -> int:
    index_name = name or _default_name(feed)
    plan = PLANS[tool](feed, index_name)
    out = sys.stdout
    out.write(f"# {plan.explain}\n")
    if plan.path is not None:
        out.write(f"# in {plan.path}:\n")
    out.write(plan.text if plan.text.endswith("\n") else plan.text + "\n")
    if not write:
        out.write("# (ak-nofuss setup ... --write makes this change)\n")
        return 0
    if plan.path is not None:
        changed = _apply_file(tool, plan, feed, index_name)
        out.write(f"# {'wrote' if changed else 'already there, unchanged:'} {plan.path}\n")
    for number, command in enumerate(plan.commands):
        from .identities.azure_cli import find_on_path

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


def _config_home() -> Path:
    xdg = os.environ.get("XDG_CONFIG_HOME", "")
    return Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".config"


def pip_config_path() -> Path:
    if sys.platform == "win32":
        return Path(os.environ.get("APPDATA", Path.home())) / "pip" / "pip.ini"
    return _config_home() / "pip" / "pip.conf"


def uv_config_path() -> Path:
    if sys.platform == "win32":
        return Path(os.environ.get("APPDATA", Path.home())) / "uv" / "uv.toml"
    return _config_home() / "uv" / "uv.toml"


def pypirc_path() -> Path:
    return Path.home() / ".pypirc"


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


def _apply_file(tool: str, plan: Plan, feed: Feed, name: str) -> bool:
    assert plan.path is not None  # noqa: S101 - only file plans get here
    path = plan.path
    before = path.read_text(encoding="utf-8") if path.is_file() else ""
    after = _merge_uv(before, feed, name) if tool == "uv" else _merge_ini(before, plan.text, path)
    if after == before:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_name(path.name + ".ak-nofuss.tmp")
    staged.write_text(after, encoding="utf-8")
    if path.exists():
        staged.chmod(path.stat().st_mode & 0o777)
    staged.replace(path)
    return True


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
