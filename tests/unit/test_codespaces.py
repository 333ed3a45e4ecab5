"""identities/codespaces.py: ~/ado-auth-helper, run for real from a temporary home."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from artifacts_keyring_nofuss.errors import SourceError
from artifacts_keyring_nofuss.identities import TokenRequest, Unavailable
from artifacts_keyring_nofuss.identities.codespaces import CodespacesSource, helper_path
from artifacts_keyring_nofuss.tokens import Token

from .helpers import token_request, user_jwt

pytestmark = pytest.mark.skipif(os.name == "nt", reason="the helper is a POSIX script")

OTHER_UID = 12345


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


def _helper(home: Path, body: str, mode: int = 0o700) -> Path:
    path = home / "ado-auth-helper"
    path.write_text(f"#!/bin/sh\n{body}\n", encoding="utf-8")
    path.chmod(mode)
    return path


def _request(seconds: float = 30) -> TokenRequest:
    return token_request(seconds=seconds)


# ---------------------------------------------------------------- helper_path


def test_no_helper(home: Path) -> None:
    assert helper_path() is None
    result = CodespacesSource().get_token(_request())
    assert isinstance(result, Unavailable)
    assert "~/ado-auth-helper" in result.reason


def test_an_executable_helper_of_ours(home: Path) -> None:
    path = _helper(home, "exit 0")
    assert helper_path() == path


def test_a_helper_that_is_not_executable(home: Path) -> None:
    _helper(home, "exit 0", mode=0o644)
    assert helper_path() is None


def test_a_directory_named_like_the_helper(home: Path) -> None:
    (home / "ado-auth-helper").mkdir(mode=0o700)
    assert helper_path() is None
    assert isinstance(CodespacesSource().get_token(_request()), Unavailable)


def test_a_helper_owned_by_another_user(home: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("chown to another uid needs root")
    path = _helper(home, f"echo {user_jwt()}", mode=0o755)
    os.chown(path, OTHER_UID, OTHER_UID)
    assert helper_path() is None
    assert isinstance(CodespacesSource().get_token(_request()), Unavailable)


@pytest.mark.parametrize("mode", [0o777, 0o757, 0o703], ids=oct)
def test_a_helper_others_can_write_is_never_run(home: Path, mode: int) -> None:
    """Ours, but anyone may rewrite it: whatever they put there would run as us and hand its
    output to pip as the token. (A group-writable one is left alone: with a umask of 002 and
    a group of one's own, as many distributions set up users, `chmod +x` makes it so.)"""
    _helper(home, f"echo {user_jwt()}", mode=mode)
    assert helper_path() is None
    assert isinstance(CodespacesSource().get_token(_request()), Unavailable)


def test_a_link_to_a_helper_of_ours_is_followed(home: Path, tmp_path: Path) -> None:
    real = tmp_path / "real-helper"
    real.write_text("#!/bin/sh\nexit 0\n", encoding="utf-8")
    real.chmod(0o700)
    (home / "ado-auth-helper").symlink_to(real)
    assert helper_path() == home / "ado-auth-helper"


# ---------------------------------------------------------------- running it


def test_the_helpers_token(home: Path) -> None:
    token = user_jwt()
    _helper(home, f'test "$1" = get-access-token || exit 9\necho "{token}"')
    got = CodespacesSource().get_token(_request())
    assert isinstance(got, Token)
    assert got.secret == token
    assert got.source == "codespaces"
    assert got.user is True
    assert got.who == "alice@contoso.com"
    assert got.as_is is False


def test_only_the_last_line_is_the_token(home: Path) -> None:
    token = user_jwt()
    _helper(home, f'echo "Refreshing the token..."\necho\necho "{token}"\necho')
    got = CodespacesSource().get_token(_request())
    assert isinstance(got, Token)
    assert got.secret == token


def test_a_failing_helper_says_why(home: Path) -> None:
    _helper(home, "echo 'not signed in to Azure DevOps' >&2\necho 'second line' >&2\nexit 1")
    with pytest.raises(SourceError) as caught:
        CodespacesSource().get_token(_request())
    message = str(caught.value)
    assert message.startswith("~/ado-auth-helper failed (not signed in to Azure DevOps")
    assert "sign in to Azure DevOps in the Codespace's ADO extension" in message
    assert "\n" not in message


def test_a_failing_helper_that_says_nothing(home: Path) -> None:
    _helper(home, "exit 3")
    with pytest.raises(SourceError, match=r"~/ado-auth-helper failed \(exit 3\)"):
        CodespacesSource().get_token(_request())


def test_a_helpers_hostile_stderr_cannot_drive_the_terminal(home: Path) -> None:
    _helper(home, "printf 'denied\\033]0;pwned\\007\\033[2J' >&2\nexit 1")
    with pytest.raises(SourceError) as caught:
        CodespacesSource().get_token(_request())
    assert "\x1b" not in str(caught.value)
    assert "\x07" not in str(caught.value)


@pytest.mark.parametrize(
    "output", ["", "\\n\\n", "two words", "t\\303\\266ken"], ids=["empty", "blank", "words", "utf8"]
)
def test_an_answer_that_is_not_a_token(home: Path, output: str) -> None:
    _helper(home, f"printf '{output}'")
    with pytest.raises(SourceError, match="~/ado-auth-helper's answer"):
        CodespacesSource().get_token(_request())


def test_a_hung_helper_is_bounded_by_the_az_timeout(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARTIFACTS_KEYRING_NOFUSS_AZ_TIMEOUT", "1")
    _helper(home, "exec sleep 30")
    started = time.monotonic()
    with pytest.raises(SourceError) as caught:
        CodespacesSource().get_token(_request(30))
    assert time.monotonic() - started < 5
    assert str(caught.value) == (
        "~/ado-auth-helper did not answer in 1 s; reload the Codespace window"
    )


def test_a_hung_helper_is_bounded_by_the_lookups_deadline(home: Path) -> None:
    _helper(home, "exec sleep 30")
    started = time.monotonic()
    with pytest.raises(SourceError, match=r"did not answer in \d+ s"):
        CodespacesSource().get_token(_request(0.6))
    assert time.monotonic() - started < 5


def test_a_helper_that_leaves_a_child_holding_its_output_still_answers(home: Path) -> None:
    token = user_jwt()
    _helper(home, f'echo "{token}"\n(sleep 30) &\nexit 0')
    started = time.monotonic()
    got = CodespacesSource().get_token(_request())
    assert time.monotonic() - started < 3
    assert isinstance(got, Token)
    assert got.secret == token


def test_a_helper_that_prints_without_end_is_stopped_at_once(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARTIFACTS_KEYRING_NOFUSS_AZ_TIMEOUT", "2")  # keeps the test small
    _helper(home, "exec yes 0123456789abcdef")
    started = time.monotonic()
    with pytest.raises(SourceError, match="printed more than"):
        CodespacesSource().get_token(_request())
    assert time.monotonic() - started < 3


def test_the_helper_gets_no_stdin(home: Path) -> None:
    # A helper that reads stdin would hang a pip install waiting for a person; it gets EOF.
    token = user_jwt()
    _helper(home, f'read line\necho "{token}"')
    got = CodespacesSource().get_token(_request())
    assert isinstance(got, Token)
    assert got.secret == token
