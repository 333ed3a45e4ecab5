from __future__ import annotations

import logging
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from artifacts_keyring_nofuss import log

from .helpers import TENANT, open_as, user_jwt

PAT = "a" * 20 + "b1c2d3e4f5g6h7i8j9k0l1m2n3o4p5q6"  # 52 characters, like a PAT
# Secrets that look like nothing: only the URL rule can find them.
PASSWORD = "pw7Kx9Qa"
OTHER_UID = 12345
SRC = str(Path(log.__file__).resolve().parents[1])
posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX files and modes")


@pytest.fixture(autouse=True)
def _fresh_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test is a process of its own as far as the log's said-once memory goes."""
    monkeypatch.setattr(log, "_LOG_REFUSED", set(), raising=False)


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (f"token {user_jwt()} refused", user_jwt()),
        (f"Authorization: Bearer {user_jwt()}", user_jwt()),
        ("Authorization: Bearer abcdefgh12345678", "abcdefgh12345678"),
        ("authorization: bearer abcdefgh12345678", "abcdefgh12345678"),
        ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA=="),
        ("BASIC   dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA=="),
        (f"password={PAT}", PAT),
        (f"{PAT}", PAT),
        ("secret " + "Zm9vYmFy" * 8 + "==", "Zm9vYmFy" * 8),
        ("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0", "eyJzdWIiOiJ4In0"),
    ],
)
def test_redact_hides_secrets(text: str, secret: str) -> None:
    redacted = log.redact(text)
    assert secret not in redacted
    assert "redacted" in redacted


@pytest.mark.parametrize(
    "text",
    [
        "az failed: no message",
        "Basic realm",
        "Bearer",
        "tenant " + TENANT,
        "organisation contoso, feed feed, scope vso.packaging",
        "short token abc123",
    ],
)
def test_redact_leaves_ordinary_text_alone(text: str) -> None:
    assert log.redact(text) == text


@pytest.mark.parametrize(
    "url",
    [
        "https://pkgs.dev.azure.com/contoso/_packaging/feed/pypi/simple/",
        "https://pkgs.dev.azure.com/contoso/Project/_packaging/feed/pypi/upload/",
        f"https://login.microsoftonline.com/{TENANT}",
        "https://vssps.dev.azure.com/contoso/_apis/Token/SessionTokens",
    ],
)
def test_redact_keeps_urls_readable_in_debug_lines(url: str) -> None:
    """The debug lines exist to show which feed and which service; a URL is not a secret."""
    assert log.redact(f"{url} is Azure Artifacts") == f"{url} is Azure Artifacts"


def test_debug_is_silent_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    log.debug("step %s", "one")
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == ""


@pytest.mark.parametrize("value", ["1", "true", "TRUE", "yes", "on", " 1 "])
def test_debug_on_demand(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    monkeypatch.setenv(log.DEBUG_VAR, value)
    log.debug("step %s", "one")
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "artifacts-keyring-nofuss [debug]: step one\n"


@pytest.mark.parametrize("value", ["0", "", "false", "no", "2"])
def test_debug_stays_off(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    monkeypatch.setenv(log.DEBUG_VAR, value)
    log.debug("step %s", "one")
    assert capsys.readouterr().err == ""


def test_debug_follows_the_variable_within_one_process(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(log.DEBUG_VAR, "1")
    log.debug("first")
    monkeypatch.setenv(log.DEBUG_VAR, "0")
    log.debug("second")
    assert capsys.readouterr().err == "artifacts-keyring-nofuss [debug]: first\n"


def test_warnings_always_show_on_stderr_only(capsys: pytest.CaptureFixture[str]) -> None:
    log.warn("no credential for %s: %s", "contoso/feed", "run `az login`")
    captured = capsys.readouterr()
    assert captured.out == ""
    assert (
        captured.err == "artifacts-keyring-nofuss: no credential for contoso/feed: run `az login`\n"
    )


def test_lines_are_single_lines_and_redacted(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(log.DEBUG_VAR, "1")
    secret = user_jwt()
    log.warn("line one\nline two\r\nBearer %s", secret)
    log.debug("got %s", secret)
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("artifacts-keyring-nofuss: ")  # the warning
    assert lines[1].startswith("artifacts-keyring-nofuss [debug]: ")  # told apart from it
    assert secret not in captured.err
    assert "line one line two" in lines[0]


def test_a_broken_message_never_breaks_the_caller() -> None:
    # In a real process (pytest attaches its own handlers to every logger, so not here).
    code = (
        "from artifacts_keyring_nofuss import log\n"
        "log.warn('%s %s', 'only one argument')\n"
        "log.debug('%d', 'not a number')\n"
        "print('still running')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, log.DEBUG_VAR: "1"},
    )
    assert done.returncode == 0
    assert done.stdout == "still running\n"
    assert "Traceback" not in done.stderr


def test_a_swapped_stderr_is_honoured(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import io

    replacement = io.StringIO()
    monkeypatch.setattr(sys, "stderr", replacement)
    log.warn("to the new stderr")
    assert replacement.getvalue() == "artifacts-keyring-nofuss: to the new stderr\n"
    assert capsys.readouterr().out == ""


class _Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def host_handler() -> Iterator[_Recorder]:
    """A handler on the root logger, as a host application (pip, poetry) would install."""
    root = logging.getLogger()
    recorder = _Recorder()
    level = root.level
    root.addHandler(recorder)
    root.setLevel(logging.DEBUG)
    try:
        yield recorder
    finally:
        root.removeHandler(recorder)
        root.setLevel(level)


def test_our_logger_does_not_reach_the_hosts_handlers(
    host_handler: _Recorder, capsys: pytest.CaptureFixture[str]
) -> None:
    log.warn("only ours")
    assert host_handler.records == []
    assert "only ours" in capsys.readouterr().err


def test_hushed_keeps_library_warnings_off_stderr(
    host_handler: _Recorder, capsys: pytest.CaptureFixture[str]
) -> None:
    with log.hushed("azure", "msal"):
        logging.getLogger("azure.identity._credentials.managed_identity").warning(
            "ManagedIdentityCredential.get_token failed:\nparagraph one\n\nparagraph two"
        )
        logging.getLogger("msal.application").warning("msal says %s", "hello")
    assert host_handler.records == []
    captured = capsys.readouterr()
    assert captured.err == ""
    assert captured.out == ""


def test_without_hushed_the_host_sees_library_warnings(host_handler: _Recorder) -> None:
    logging.getLogger("azure.identity").warning("visible")
    assert [r.getMessage() for r in host_handler.records] == ["visible"]


def test_hushed_turns_library_warnings_into_debug_lines(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(log.DEBUG_VAR, "1")
    with log.hushed("azure"):
        logging.getLogger("azure.identity").warning("first line\nsecond line")
        logging.getLogger("azure.identity").info("not forwarded")
    err = capsys.readouterr().err
    assert err == "artifacts-keyring-nofuss [debug]: azure.identity: first line\n"


def test_hushed_restores_logger_state(host_handler: _Recorder) -> None:
    azure = logging.getLogger("azure")
    msal = logging.getLogger("msal")
    marker = logging.NullHandler()
    azure.addHandler(marker)
    msal.propagate = False
    try:
        before = (list(azure.handlers), azure.propagate, list(msal.handlers), msal.propagate)
        with log.hushed("azure", "msal"):
            assert azure.propagate is False
        after = (list(azure.handlers), azure.propagate, list(msal.handlers), msal.propagate)
        assert after == before
    finally:
        azure.removeHandler(marker)
        msal.propagate = True
    logging.getLogger("azure.identity").warning("after the call, the host's handlers again")
    assert [r.getMessage() for r in host_handler.records] == [
        "after the call, the host's handlers again"
    ]


def test_hushed_restores_logger_state_when_the_call_raises() -> None:
    azure = logging.getLogger("azure")
    before = (list(azure.handlers), azure.propagate)
    with pytest.raises(RuntimeError), log.hushed("azure"):
        raise RuntimeError("boom")
    assert (list(azure.handlers), azure.propagate) == before


@pytest.mark.parametrize(
    "hostile",
    ["\x1b]0;pwned\x07", "\x1b[2J\x1b[31m", "\x00\x08\x7f", "\u202e", "\x9b31m"],
    ids=["osc-title", "csi-clear", "c0-controls", "bidi-override", "c1-csi"],
)
def test_a_servers_words_cannot_drive_the_terminal(
    capsys: pytest.CaptureFixture[str], hostile: str
) -> None:
    log.warn("the token service said: denied%s Password:", hostile)
    err = capsys.readouterr().err
    assert err.startswith("artifacts-keyring-nofuss: the token service said: denied")
    assert err.endswith(" Password:\n")
    assert all(c.isprintable() for c in err.rstrip("\n"))


# ---------------------------------------------------------------- the official log file


def _log_lines(path: Path) -> list[str]:
    """The file's lines without their time stamp and process id."""
    lines = path.read_text(encoding="utf-8").splitlines()
    stamp = f" [{os.getpid()}] "
    assert all(stamp in line for line in lines), lines
    return [line.split(stamp, 1)[1] for line in lines]


def test_the_log_file_gets_debug_lines_that_stderr_does_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "provider.log"
    monkeypatch.setenv(log.LOG_PATH_VAR, str(path))
    log.debug("step %s", "one")
    assert capsys.readouterr() == ("", "")
    assert _log_lines(path) == ["artifacts-keyring-nofuss [debug]: step one"]


def test_warnings_go_to_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "provider.log"
    monkeypatch.setenv(log.LOG_PATH_VAR, str(path))
    log.warn("no credential for %s", "contoso/feed")
    assert capsys.readouterr() == ("", "artifacts-keyring-nofuss: no credential for contoso/feed\n")
    assert _log_lines(path) == ["artifacts-keyring-nofuss: no credential for contoso/feed"]


def test_with_debug_on_too_each_line_is_in_both_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "provider.log"
    monkeypatch.setenv(log.LOG_PATH_VAR, str(path))
    monkeypatch.setenv(log.DEBUG_VAR, "1")
    log.debug("first")
    log.warn("second")
    expected = ["artifacts-keyring-nofuss [debug]: first", "artifacts-keyring-nofuss: second"]
    assert capsys.readouterr().err.splitlines() == expected
    assert _log_lines(path) == expected


def test_the_log_file_is_appended_to(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "provider.log"
    path.write_text("an earlier line\n", encoding="utf-8")
    path.chmod(0o600)
    monkeypatch.setenv(log.LOG_PATH_VAR, str(path))
    log.debug("later")
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "an earlier line"
    assert lines[1].endswith("artifacts-keyring-nofuss [debug]: later")


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")
def test_the_log_file_is_created_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "provider.log"
    monkeypatch.setenv(log.LOG_PATH_VAR, str(path))
    log.debug("x")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_secrets_are_redacted_in_the_log_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "provider.log"
    monkeypatch.setenv(log.LOG_PATH_VAR, str(path))
    secret = user_jwt()
    log.debug("got %s", secret)
    log.warn("Authorization: Bearer %s, password=%s", secret, PAT)
    log.debug("line one\nline two\x1b[2J")
    text = path.read_text(encoding="utf-8")
    assert secret not in text
    assert PAT not in text
    assert "\x1b" not in text
    assert _log_lines(path) == [
        "artifacts-keyring-nofuss [debug]: got <jwt redacted>",
        "artifacts-keyring-nofuss: Authorization: Bearer <jwt redacted>, "
        "password=<secret redacted>",
        "artifacts-keyring-nofuss [debug]: line one line two?[2J",
    ]


@pytest.mark.parametrize("relative", ["provider.log", "logs/provider.log", "./provider.log"])
def test_a_relative_log_path_is_ignored(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    relative: str,
) -> None:
    (tmp_path / "logs").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(log.LOG_PATH_VAR, relative)
    log.debug("step")
    log.warn("warning")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["logs"]
    assert capsys.readouterr().err == (
        f"artifacts-keyring-nofuss: {log.LOG_PATH_VAR}: not logging to {relative}: "
        "not an absolute path\n"
        "artifacts-keyring-nofuss: warning\n"
    )


def test_an_unwritable_log_path_never_breaks_the_caller(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "file").write_text("", encoding="utf-8")
    monkeypatch.setenv(log.LOG_PATH_VAR, str(tmp_path / "file" / "provider.log"))
    log.debug("step")
    log.warn("still said")
    assert capsys.readouterr().err == (
        f"artifacts-keyring-nofuss: {log.LOG_PATH_VAR}: not logging to "
        f"{tmp_path / 'file' / 'provider.log'}: Not a directory\n"
        "artifacts-keyring-nofuss: still said\n"
    )


def test_the_log_file_follows_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = tmp_path / "first.log", tmp_path / "second.log"
    monkeypatch.setenv(log.LOG_PATH_VAR, str(first))
    log.debug("one")
    monkeypatch.setenv(log.LOG_PATH_VAR, str(second))
    log.debug("two")
    monkeypatch.delenv(log.LOG_PATH_VAR)
    log.debug("three")
    assert _log_lines(first) == ["artifacts-keyring-nofuss [debug]: one"]
    assert _log_lines(second) == ["artifacts-keyring-nofuss [debug]: two"]


# ---------------------------------------------------------------- passwords in URLs


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (
            f"ak-nofuss doctor https://VssSessionToken:{PASSWORD}@pkgs.dev.azure.com/contoso/",
            "ak-nofuss doctor https://VssSessionToken:<redacted>@pkgs.dev.azure.com/contoso/",
        ),
        (
            f"proxy HTTPS_PROXY=http://user:{PASSWORD}@proxy.example:8080",
            "proxy HTTPS_PROXY=http://user:<redacted>@proxy.example:8080",
        ),
        (
            f"proxy https_proxy=user:{PASSWORD}@proxy.example:8080, CA from X",
            "proxy https_proxy=user:<redacted>@proxy.example:8080, CA from X",
        ),
        (
            f"ALL_PROXY=socks5h://u:{PASSWORD}@127.0.0.1:1080",
            "ALL_PROXY=socks5h://u:<redacted>@127.0.0.1:1080",
        ),
        (  # a password with an unescaped @: up to the last one, as URL parsers read it
            f"http://user:{PASSWORD}@x@proxy.example:8080/path",
            "http://user:<redacted>@proxy.example:8080/path",
        ),
        (
            f"'https://u:{PASSWORD}%40x@evil.example/' is not an Azure Artifacts feed URL",
            "'https://u:<redacted>@evil.example/' is not an Azure Artifacts feed URL",
        ),
        (
            f"git+https://:{PASSWORD}@host/a and HTTP://a:{PASSWORD}@b/?q=1#f",
            "git+https://:<redacted>@host/a and HTTP://a:<redacted>@b/?q=1#f",
        ),
        (
            f"https://u:{PASSWORD}:more@h:8443/p",
            "https://u:<redacted>@h:8443/p",
        ),
    ],
)
def test_redact_hides_the_password_of_every_url(text: str, shown: str) -> None:
    assert log.redact(text) == shown
    assert log.redact_urls(text) == shown
    assert log.redact(log.redact(text)) == shown


@pytest.mark.parametrize(
    "text",
    [
        "https://VssSessionToken@pkgs.dev.azure.com/contoso/_packaging/feed/pypi/simple/",
        "https://pkgs.dev.azure.com:443/contoso/_packaging/feed/pypi/simple/",
        "https://user:@host/",
        "identity azure_cli:alice@contoso.com, who alice@contoso.com",
        "mailto:alice@contoso.com",
        "NO_PROXY=localhost,.example.com",
        "time 12:30 at noon@home",
    ],
)
def test_redact_leaves_urls_without_a_password_alone(text: str) -> None:
    assert log.redact(text) == text


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            f"https://VssSessionToken:{PASSWORD}@pkgs.dev.azure.com/o/",
            "https://VssSessionToken:<redacted>@pkgs.dev.azure.com/o/",
        ),
        (
            f"VssSessionToken:{PASSWORD}@pkgs.dev.azure.com/o/",
            "VssSessionToken:<redacted>@pkgs.dev.azure.com/o/",
        ),
        (f"user:{PASSWORD}@proxy:8080", "user:<redacted>@proxy:8080"),
        (f"http://user:{PASSWORD}@a@proxy:8080", "http://user:<redacted>@proxy:8080"),
        ("https://user@host/a:b@c", "https://user@host/a:b@c"),
        ("https://host/path?u=a:b@c", "https://host/path?u=a:b@c"),
        ("proxy:8080", "proxy:8080"),
        ("", ""),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert log.redact_url(url) == shown


def test_a_url_password_is_redacted_in_lines_and_the_log_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "provider.log"
    monkeypatch.setenv(log.LOG_PATH_VAR, str(path))
    log.warn("proxy HTTPS_PROXY=http://user:%s@proxy:8080 refused", PASSWORD)
    err = capsys.readouterr().err
    assert PASSWORD not in err
    assert "http://user:<redacted>@proxy:8080" in err
    assert PASSWORD not in path.read_text(encoding="utf-8")


# ---------------------------------------------------------------- what the log file may be


def _off_line(path: Path | str, why: str) -> str:
    return f"artifacts-keyring-nofuss: {log.LOG_PATH_VAR}: not logging to {path}: {why}\n"


@posix_only
def test_a_log_path_that_is_a_link_is_not_followed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "bashrc"
    target.write_text("mine\n", encoding="utf-8")
    target.chmod(0o600)
    link = tmp_path / "provider.log"
    link.symlink_to(target)
    monkeypatch.setenv(log.LOG_PATH_VAR, str(link))
    log.debug("one")
    log.warn("two")
    log.debug("three")
    assert target.read_text(encoding="utf-8") == "mine\n"
    assert link.is_symlink()
    # Said once, ahead of the warning that stderr shows anyway.
    assert capsys.readouterr().err == (
        _off_line(link, "it is a symbolic link (name the file itself)")
        + "artifacts-keyring-nofuss: two\n"
    )


@posix_only
def test_a_log_path_that_is_a_hard_link_to_a_file_of_ours_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """What a symbolic link cannot do, a hard link can: in a shared directory, on a system
    that lets anyone link to a file they do not own (no fs.protected_hardlinks: macOS, the
    BSDs, some containers), another user's second name for a private file of ours (an
    ~/.ssh/authorized_keys, a ~/.netrc) passes every other check."""
    target = tmp_path / "authorized_keys"
    target.write_text("mine\n", encoding="utf-8")
    target.chmod(0o600)
    link = tmp_path / "provider.log"
    os.link(target, link)
    monkeypatch.setenv(log.LOG_PATH_VAR, str(link))
    log.debug("one")
    assert target.read_text(encoding="utf-8") == "mine\n"
    assert capsys.readouterr().err == _off_line(
        link, "it has another name (a hard link), which may be a file of ours it is not"
    )


@posix_only
def test_a_dangling_link_is_not_created_through(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    link = tmp_path / "provider.log"
    link.symlink_to(tmp_path / "planted-target")
    monkeypatch.setenv(log.LOG_PATH_VAR, str(link))
    log.debug("one")
    assert not (tmp_path / "planted-target").exists()
    assert "it is a symbolic link" in capsys.readouterr().err


@posix_only
@pytest.mark.parametrize("mode", [0o666, 0o644, 0o640, 0o620, 0o604, 0o602], ids=oct)
def test_a_log_file_others_can_read_or_write_is_refused(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    mode: int,
) -> None:
    path = tmp_path / "provider.log"
    path.write_text("", encoding="utf-8")
    path.chmod(mode)
    monkeypatch.setenv(log.LOG_PATH_VAR, str(path))
    log.debug("secret-free, but nobody else's business")
    assert path.read_text(encoding="utf-8") == ""
    assert capsys.readouterr().err == _off_line(
        path, "group or others can read or write it (chmod 600 it)"
    )


@posix_only
def test_a_log_file_planted_by_another_user_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A shared log directory: another user created the file first, private to them but
    writable by us through root, or left to us with their ownership."""
    if os.geteuid() != 0:
        pytest.skip("chown to another uid needs root")
    path = tmp_path / "provider.log"
    path.write_text("", encoding="utf-8")
    path.chmod(0o600)
    os.chown(path, OTHER_UID, OTHER_UID)
    monkeypatch.setenv(log.LOG_PATH_VAR, str(path))
    log.debug("step")
    assert path.read_text(encoding="utf-8") == ""
    assert capsys.readouterr().err == _off_line(path, "it belongs to another user")


@posix_only
@pytest.mark.parametrize("device", ["/dev/null", "/dev/tty", "/dev/stdout", "/dev/stderr"])
def test_a_device_or_a_terminal_is_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], device: str
) -> None:
    monkeypatch.setenv(log.LOG_PATH_VAR, device)
    log.debug("step")
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(_off_line(device, "")[:-1])
    assert captured.err.count("\n") == 1


def _python(code: str, env: dict[str, str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # type: ignore[call-overload,no-any-return]
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": SRC, **env},
        text=True,
        check=False,
        **kwargs,
    )


STEPS = (
    "from artifacts_keyring_nofuss import log\n"
    "log.debug('step one')\n"
    "log.debug('step two')\n"
    "print('the credential')\n"
)


@posix_only
def test_a_fifo_never_blocks_the_lookup(tmp_path: Path) -> None:
    fifo = tmp_path / "provider.log"
    os.mkfifo(fifo, 0o600)
    try:
        done = _python(STEPS, {log.LOG_PATH_VAR: str(fifo)}, capture_output=True, timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail("opening a FIFO as the log file blocks the process")
    assert done.returncode == 0
    assert done.stdout == "the credential\n"
    assert done.stderr == _off_line(fifo, "it is not a regular file (a FIFO, a socket or a device)")


@posix_only
def test_a_fifo_with_a_reader_gets_nothing(tmp_path: Path) -> None:
    fifo = tmp_path / "provider.log"
    os.mkfifo(fifo, 0o600)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # another process listening there
    try:
        done = _python(STEPS, {log.LOG_PATH_VAR: str(fifo)}, capture_output=True, timeout=20)
        try:
            heard = os.read(reader, 65536)
        except BlockingIOError:
            heard = b""
    finally:
        os.close(reader)
    assert heard == b""
    assert done.stdout == "the credential\n"
    assert "it is not a regular file" in done.stderr


@posix_only
def test_the_file_that_is_stdout_never_gets_a_log_line(tmp_path: Path) -> None:
    """`keyring get URL > answer.txt` with the log path naming answer.txt: the credential
    must stay the only thing in it."""
    answer = tmp_path / "answer.txt"
    with answer.open("w", encoding="utf-8") as out:
        answer.chmod(0o600)
        done = _python(
            STEPS, {log.LOG_PATH_VAR: str(answer)}, stdout=out, stderr=subprocess.PIPE, timeout=60
        )
    assert answer.read_text(encoding="utf-8") == "the credential\n"
    assert done.stderr == _off_line(
        answer, "it is this process's stdout, which carries the credential"
    )


@posix_only
def test_a_new_log_file_is_private_to_a_second_user(tmp_path: Path) -> None:
    """Another local user (a second uid) cannot read a log file we created, even in a
    directory they can enter."""
    if os.geteuid() != 0:
        pytest.skip("a second uid needs root")
    shared = Path(tempfile.mkdtemp(prefix="akn-shared-"))
    try:
        shared.chmod(0o755)
        path = shared / "provider.log"
        done = _python(STEPS, {log.LOG_PATH_VAR: str(path)}, capture_output=True, timeout=60)
        assert done.returncode == 0 and done.stderr == ""
        assert "step one" in path.read_text(encoding="utf-8")
        assert open_as(OTHER_UID, path) == "EACCES"
    finally:
        shutil.rmtree(shared)
