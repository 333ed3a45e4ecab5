"""`ak-nofuss`, in this process: argument handling, the token formats, setup and status. Nothing
here reaches the network: the tokens are handed to it (ARTIFACTS_KEYRING_NOFUSS_TOKEN)."""

from __future__ import annotations

import base64
import json
import os
import sys
from pathlib import Path

import pytest

from artifacts_keyring_nofuss import __version__, cli, local

from .helpers import user_jwt

URL = "https://pkgs.dev.azure.com/Contoso/_packaging/feed/pypi/simple/"
PAT = "4xqkz7hvb2mny6wpt3rdc5sjl8fgae9u0oi1qwertyuiopasdfgh"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    (tmp_path / "home").mkdir()
    return tmp_path


def _one_line(err: str) -> str:
    assert err.endswith("\n")
    assert err.count("\n") == 1, err
    return err


# ---------------------------------------------------------------- arguments


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr() == (f"ak-nofuss {__version__}\n", "")


def test_no_command_is_usage_with_help_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("usage: ak-nofuss ")
    for command in ("doctor", "token", "exec", "login", "logout", "status", "setup"):
        assert command in err


def test_an_unknown_command_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["frobnicate"])
    assert exited.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert _one_line(err).startswith("ak-nofuss: argument COMMAND: invalid choice: 'frobnicate'")
    assert err.endswith("(see `ak-nofuss --help`)\n")


@pytest.mark.parametrize(
    "argv",
    [
        ["token"],
        ["token", URL, "--format", "xml"],
        ["setup", "maven", URL],
        ["status", "--bogus"],
    ],
)
def test_wrong_usage_is_exit_2_and_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    assert exited.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert _one_line(err).startswith("ak-nofuss: ")


@pytest.mark.parametrize(
    "argv",
    [
        ["status", "https://VssSessionToken:urlPw-quokka@pkgs.dev.azure.com/contoso/"],
        ["logout", "https://u:urlPw-quokka@pkgs.dev.azure.com/contoso/"],
        ["doctor", URL, "u:urlPw-quokka@pkgs.dev.azure.com/contoso/"],
        ["token", URL, "--format", "https://u:urlPw-quokka@x.example/"],
    ],
    ids=["status", "logout", "doctor (no scheme)", "an invalid choice"],
)
def test_a_usage_error_never_prints_a_url_password(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    """The URL pasted in the wrong place is echoed by argparse: its password is redacted
    there as in every other line."""
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    assert exited.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "urlPw-quokka" not in err
    assert ":<redacted>@" in _one_line(err)


@pytest.mark.parametrize(
    "url",
    [
        "https://pypi.org/simple/",
        "http://pkgs.dev.azure.com/contoso/_packaging/feed/pypi/simple/",
        "https://evil.com\\@pkgs.dev.azure.com/contoso/_packaging/feed/pypi/simple/",
        "not a url",
    ],
)
def test_token_for_something_that_is_not_a_feed(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.setenv("ARTIFACTS_KEYRING_NOFUSS_TOKEN", PAT)
    assert cli.main(["token", url]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert "is not an Azure Artifacts feed URL" in _one_line(err)
    assert PAT not in err


@pytest.mark.parametrize("rest", [[], ["--"]])
def test_exec_without_a_command(capsys: pytest.CaptureFixture[str], rest: list[str]) -> None:
    assert cli.main(["exec", URL, *rest]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert _one_line(err).startswith("ak-nofuss: exec needs a command after `--`")


def test_exec_with_a_command_that_does_not_exist(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARTIFACTS_KEYRING_NOFUSS_TOKEN", PAT)
    assert cli.main(["exec", URL, "--", "no-such-command-here"]) == 1
    assert capsys.readouterr() == ("", "ak-nofuss: command not found: 'no-such-command-here'\n")


# ---------------------------------------------------------------- token and exec


@pytest.mark.skipif(sys.platform == "win32", reason="runs sh")
def test_exec_runs_the_command_with_the_token_and_returns_its_status(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARTIFACTS_KEYRING_NOFUSS_TOKEN", f" {PAT}\n")
    script = f'test "$ARTIFACTS_KEYRING_NOFUSS_TOKEN" = "{PAT}" || exit 3; exit 7'
    assert cli.main(["exec", URL, "--", "sh", "-c", script]) == 7
    assert capsys.readouterr() == ("", "")


@pytest.mark.skipif(sys.platform == "win32", reason="runs sh")
def test_exec_reports_a_signal_like_a_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARTIFACTS_KEYRING_NOFUSS_TOKEN", PAT)
    assert cli.main(["exec", URL, "--", "sh", "-c", "kill -TERM $$"]) == 128 + 15


def test_token_prints_the_password(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARTIFACTS_KEYRING_NOFUSS_TOKEN", PAT)
    assert cli.main(["token", URL]) == 0
    assert capsys.readouterr() == (PAT + "\n", "")


def test_token_as_a_basic_authorization_value(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARTIFACTS_KEYRING_NOFUSS_TOKEN", PAT)
    assert cli.main(["token", URL, "--format", "basic"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert out.startswith("Basic ")
    assert base64.b64decode(out[len("Basic ") :].strip()).decode() == f"VssSessionToken:{PAT}"


def test_token_as_an_environment_assignment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARTIFACTS_KEYRING_NOFUSS_TOKEN", PAT)
    assert cli.main(["token", URL, "--format", "env"]) == 0
    assert capsys.readouterr() == (f"ARTIFACTS_KEYRING_NOFUSS_TOKEN={PAT}\n", "")


def test_token_as_json_for_a_pat(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARTIFACTS_KEYRING_NOFUSS_TOKEN", PAT)
    assert cli.main(["token", URL, "--write", "--format", "json"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert json.loads(out) == {
        "username": "VssSessionToken",
        "password": PAT,
        "expires_on": None,
        "scope": None,  # a given token is whatever it is: no scope we asked for
        "kind": "given",
        "source": "token",
    }


def test_token_as_json_for_a_jwt_states_its_expiry(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = user_jwt(exp=4_000_000_000)
    monkeypatch.setenv("ARTIFACTS_KEYRING_NOFUSS_TOKEN", secret)
    assert cli.main(["token", URL, "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["password"] == secret
    assert report["expires_on"] == "2096-10-02 07:06:40Z"


def test_an_expired_given_token_is_one_line_and_nothing_on_stdout(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = user_jwt(exp=1_000_000_000)
    monkeypatch.setenv("ARTIFACTS_KEYRING_NOFUSS_TOKEN", secret)
    assert cli.main(["token", URL]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert _one_line(err).startswith("ak-nofuss: no credential for contoso/feed: token: ")
    assert "expired at 2001-09-09 01:46:40Z" in err
    assert secret not in err


# ---------------------------------------------------------------- setup

PIP_LINES = [
    "[global]",
    "index-url = https://VssSessionToken@pkgs.dev.azure.com/contoso/_packaging/feed/pypi/simple/",
    "keyring-provider = subprocess",
]


def _setup(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert cli.main(["setup", *argv]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    return out


def test_setup_pip_writes_then_leaves_it_unchanged(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = home / "config" / "pip" / "pip.conf"
    out = _setup(capsys, "pip", URL, "--write")
    assert f"# wrote {path}\n" in out
    written = path.read_text(encoding="utf-8")
    assert written.strip().splitlines() == PIP_LINES
    out = _setup(capsys, "pip", URL, "--write")
    assert f"# already there, unchanged: {path}\n" in out
    assert path.read_text(encoding="utf-8") == written


def test_setup_pip_keeps_other_settings(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = home / "config" / "pip" / "pip.conf"
    path.parent.mkdir(parents=True)
    path.write_text(
        "[global]\ntimeout = 60\nindex-url = https://pypi.org/simple/\n\n"
        "[install]\nno-compile = yes\n",
        encoding="utf-8",
    )
    path.chmod(0o640)
    _setup(capsys, "pip", URL, "--write")
    text = path.read_text(encoding="utf-8")
    assert "timeout = 60" in text
    assert "[install]\nno-compile = yes" in text
    assert PIP_LINES[1] in text
    assert "pypi.org" not in text  # the one index pip has is the feed now
    if os.name != "nt":
        assert path.stat().st_mode & 0o777 == 0o640
    assert not list(path.parent.glob("*.tmp"))


def test_setup_pip_with_an_unreadable_pip_conf_says_which_file(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = home / "config" / "pip" / "pip.conf"
    path.parent.mkdir(parents=True)
    path.write_text("index-url = https://pypi.org/simple/\n", encoding="utf-8")  # no [global]
    assert cli.main(["setup", "pip", URL, "--write"]) == 1
    err = capsys.readouterr().err
    assert str(path) in _one_line(err)
    assert "unexpected" not in err
    assert path.read_text(encoding="utf-8") == "index-url = https://pypi.org/simple/\n"


UV_INDEX = (
    '[[index]]\nname = "contoso-feed"\n'
    'url = "https://VssSessionToken@pkgs.dev.azure.com/contoso/_packaging/feed/pypi/simple/"\n'
)


def test_setup_uv_writes_then_leaves_it_unchanged(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = home / "config" / "uv" / "uv.toml"
    out = _setup(capsys, "uv", URL, "--write")
    assert f"# wrote {path}\n" in out
    assert path.read_text(encoding="utf-8") == 'keyring-provider = "subprocess"\n\n' + UV_INDEX
    out = _setup(capsys, "uv", URL, "--write")
    assert f"# already there, unchanged: {path}\n" in out
    assert path.read_text(encoding="utf-8") == 'keyring-provider = "subprocess"\n\n' + UV_INDEX


def test_setup_uv_keeps_other_settings(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = home / "config" / "uv" / "uv.toml"
    path.parent.mkdir(parents=True)
    before = 'native-tls = true\n\n[[index]]\nname = "internal"\nurl = "https://x.example/simple"\n'
    path.write_text(before, encoding="utf-8")
    _setup(capsys, "uv", URL, "--write", "--name", "contoso-feed")
    text = path.read_text(encoding="utf-8")
    # The top-level key comes first: after a table it would belong to that table.
    assert text == 'keyring-provider = "subprocess"\n\n' + before + "\n" + UV_INDEX
    assert tomllib_loads(text)["keyring-provider"] == "subprocess"
    indexes = tomllib_loads(text)["index"]
    assert isinstance(indexes, list)
    assert [i["name"] for i in indexes] == ["internal", "contoso-feed"]


def test_setup_uv_keeps_an_existing_keyring_provider(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = home / "config" / "uv" / "uv.toml"
    path.parent.mkdir(parents=True)
    path.write_text('keyring-provider = "subprocess"\n', encoding="utf-8")
    _setup(capsys, "uv", URL, "--write")
    assert path.read_text(encoding="utf-8").count("keyring-provider") == 1


def tomllib_loads(text: str) -> dict[str, object]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        tomllib = pytest.importorskip("tomli")
    loaded: dict[str, object] = tomllib.loads(text)
    return loaded


def test_setup_twine_writes_then_leaves_it_unchanged(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = home / "home" / ".pypirc"
    out = _setup(capsys, "twine", URL, "--write")
    assert f"# wrote {path}\n" in out
    first = path.read_text(encoding="utf-8")
    assert "[contoso-feed]\nrepository = " in first
    assert "https://pkgs.dev.azure.com/contoso/_packaging/feed/pypi/upload/" in first
    out = _setup(capsys, "twine", URL, "--write")
    assert f"# already there, unchanged: {path}\n" in out
    assert path.read_text(encoding="utf-8") == first


def test_setup_twine_keeps_the_other_repositories(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import configparser

    path = home / "home" / ".pypirc"
    path.write_text(
        "[distutils]\nindex-servers =\n    pypi\n\n[pypi]\nusername = __token__\n",
        encoding="utf-8",
    )
    _setup(capsys, "twine", URL, "--write", "--name", "work")
    parsed = configparser.ConfigParser(interpolation=None)
    parsed.read_string(path.read_text(encoding="utf-8"))
    assert parsed.get("distutils", "index-servers").split() == ["pypi", "work"]
    assert parsed.get("pypi", "username") == "__token__"
    assert parsed.get("work", "repository") == (
        "https://pkgs.dev.azure.com/contoso/_packaging/feed/pypi/upload/"
    )


def test_setup_never_writes_a_secret(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARTIFACTS_KEYRING_NOFUSS_TOKEN", PAT)
    for tool in ("pip", "uv", "twine"):
        _setup(capsys, tool, URL, "--write")
    for path in (home / "config").rglob("*"):
        if path.is_file():
            assert PAT not in path.read_text(encoding="utf-8")
    assert PAT not in (home / "home" / ".pypirc").read_text(encoding="utf-8")


def test_setup_without_write_changes_nothing(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _setup(capsys, "pip", URL)
    assert out.endswith("# (ak-nofuss setup ... --write makes this change)\n")
    assert not (home / "config" / "pip").exists()


def test_setup_poetry_prints_the_commands(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = _setup(capsys, "poetry", URL)
    lines = out.splitlines()
    assert "poetry self add artifacts-keyring-nofuss" in lines
    assert (
        "poetry source add --priority=primary contoso-feed "
        "https://pkgs.dev.azure.com/contoso/_packaging/feed/pypi/simple"
    ) in lines
    assert lines[-1] == "# (ak-nofuss setup ... --write makes this change)"


def test_setup_pdm_prints_the_command(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = _setup(capsys, "pdm", URL, "--name", "work")
    lines = out.splitlines()
    # The feed replaces PyPI, as the pip and poetry plans do; keeping PyPI is the comment.
    assert (
        "pdm config pypi.url https://pkgs.dev.azure.com/contoso/_packaging/feed/pypi/simple/"
    ) in lines
    assert (
        "# to keep PyPI and search the feed as well: pdm config pypi.work.url "
        "https://pkgs.dev.azure.com/contoso/_packaging/feed/pypi/simple/"
    ) in lines
    assert out.endswith("# (ak-nofuss setup ... --write makes this change)\n")


def test_setup_for_something_that_is_not_a_feed(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["setup", "pip", "https://pypi.org/simple/"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert "is not an Azure Artifacts feed URL" in _one_line(err)


# ---------------------------------------------------------------- status and logout


def test_status_with_nothing_cached(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["status"]) == 0
    assert capsys.readouterr() == (
        "sign-in: none (`ak-nofuss login` signs in without az)\n"
        f"cache: {local.cache_dir()}\n"
        "session tokens: none cached\n",
        "",
    )


def test_status_as_json_with_nothing_cached(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["status", "--json"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert json.loads(out) == {
        "signed_in": None,
        "cache": str(local.cache_dir()),
        "sessions": [],
        "session_tokens_refused": [],
    }


def test_status_with_the_cache_off(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARTIFACTS_KEYRING_NOFUSS_CACHE", "0")
    assert cli.main(["status"]) == 0
    assert "cache: off\n" in capsys.readouterr().out


def test_logout_with_nothing_to_forget(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["logout"]) == 0
    assert capsys.readouterr() == ("forgot no sign-in and 0 cached session tokens\n", "")


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX links")
def test_logout_through_a_planted_link_clears_the_cache_and_says_what_to_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "account.json").write_text("theirs", encoding="utf-8")
    data = tmp_path / "data"
    data.mkdir()
    (data / "artifacts-keyring-nofuss").symlink_to(theirs, target_is_directory=True)
    monkeypatch.setenv("XDG_DATA_HOME", str(data))
    assert cli.main(["logout"]) == 1
    assert capsys.readouterr() == (
        "",
        f"ak-nofuss: not removing the sign-in in {data / 'artifacts-keyring-nofuss'}: it is a "
        "symbolic link; remove it yourself\n",
    )
    assert (theirs / "account.json").read_text(encoding="utf-8") == "theirs"
