"""identities/given.py: credentials somebody handed us, used as they are."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from artifacts_keyring_nofuss import devops, identities
from artifacts_keyring_nofuss.errors import SourceError
from artifacts_keyring_nofuss.feeds import Feed
from artifacts_keyring_nofuss.identities import TokenRequest, Unavailable, given
from artifacts_keyring_nofuss.identities.given import (
    AccessTokenSource,
    DevopsPatSource,
    ExternalEndpointsSource,
    GivenTokenExpired,
    GivenTokenSource,
    PipelineSource,
    as_is,
    checked,
    read_token_file,
)
from artifacts_keyring_nofuss.tokens import Token

from .helpers import feed, token_request, user_jwt

PAT = "4xqkz7hvb2mny6wpt3rdc5sjl8fgae9u0oi1qwertyuiopasdfgh"  # 52 characters, like a PAT
OTHER_PAT = "zz9yx8wv7ut6sr5qp4on3ml2kj1ihgfedcba0zyxwvutsrqponmlk"
URL = "https://pkgs.dev.azure.com/Contoso/_packaging/feed/pypi/simple/"
FEED = feed(URL)
EXPIRED_AT = 1_000_000_000  # 2001-09-09 01:46:40 UTC
FRESH_AT = 4_000_000_000


def _request(target: Feed = FEED) -> TokenRequest:
    return token_request(target)


@pytest.fixture(autouse=True)
def secrets_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """/run/secrets of this machine is never read; each test gets an empty one."""
    secrets = tmp_path / "run-secrets"
    secrets.mkdir()
    monkeypatch.setattr(given, "SECRETS_DIR", secrets)
    return secrets


@pytest.fixture(autouse=True)
def _fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Warnings are said once per process: every test is a process of its own here."""
    monkeypatch.setattr(given, "_warned", set())


# ---------------------------------------------------------------- checked


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (PAT, PAT),
        (f"  {PAT}\n", PAT),
        (f"{PAT}\r\n", PAT),
        (user_jwt(), user_jwt()),
        ("a" * given.MAX_TOKEN_LENGTH, "a" * given.MAX_TOKEN_LENGTH),
    ],
)
def test_checked_returns_the_token_as_it_will_be_sent(raw: str, expected: str) -> None:
    assert checked(raw, "SOMEWHERE") == expected


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("", "is empty"),
        ("   \n\t", "is empty"),
        ("abc def", "spaces or control characters"),
        ("abc\tdef", "spaces or control characters"),
        ("abc\ndef", "spaces or control characters"),
        ("abc\x00def", "spaces or control characters"),
        ("abc\x1b[31mdef", "spaces or control characters"),
        ("abc\x7fdef", "spaces or control characters"),
        ("abc\u200bdef", "spaces or control characters"),
        ("t\u00f6ken", "spaces or control characters"),
        ("\u0430bc", "spaces or control characters"),
        ("a" * (given.MAX_TOKEN_LENGTH + 1), "too long"),
    ],
)
def test_checked_refuses_what_cannot_be_a_token(raw: str, problem: str) -> None:
    with pytest.raises(SourceError) as caught:
        checked(raw, "MY_VARIABLE")
    message = str(caught.value)
    assert message.startswith("MY_VARIABLE ")
    assert problem in message
    if raw.strip():
        assert raw.strip() not in message  # never echoes the secret


# ---------------------------------------------------------------- as_is


def test_an_expired_jwt_is_an_error_naming_where_and_when() -> None:
    with pytest.raises(GivenTokenExpired) as caught:
        as_is(user_jwt(exp=EXPIRED_AT), "token", "ARTIFACTS_KEYRING_NOFUSS_TOKEN")
    message = str(caught.value)
    assert "ARTIFACTS_KEYRING_NOFUSS_TOKEN" in message
    assert "2001-09-09 01:46:40Z" in message
    assert "eyJ" not in message
    assert isinstance(caught.value, SourceError)


def test_a_fresh_jwt_keeps_its_expiry_and_who_it_is() -> None:
    token = as_is(user_jwt(exp=FRESH_AT), "token", "ARTIFACTS_KEYRING_NOFUSS_TOKEN")
    assert token.secret == user_jwt(exp=FRESH_AT)
    assert token.expires_on == FRESH_AT
    assert token.as_is is True
    assert token.user is True
    assert token.who == "alice@contoso.com"
    assert token.source == "token"


def test_a_pat_has_no_expiry_and_is_used_as_it_is() -> None:
    token = as_is(f" {PAT}\n", "devops_pat", "AZURE_DEVOPS_EXT_PAT")
    assert token.secret == PAT
    assert token.expires_on is None
    assert token.as_is is True
    assert token.user is False
    assert token.who == "the token in AZURE_DEVOPS_EXT_PAT"
    assert token.source == "devops_pat"
    assert not token.expired()


def test_as_is_checks_the_token_first() -> None:
    with pytest.raises(SourceError, match=r"^WHERE does not look like a token"):
        as_is("two words", "token", "WHERE")


# ---------------------------------------------------------------- read_token_file


def test_read_token_file(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(PAT + "\n", encoding="utf-8")
    assert read_token_file(path, "the file") == PAT + "\n"


def test_a_missing_token_file_is_none(tmp_path: Path) -> None:
    assert read_token_file(tmp_path / "missing", "the file") is None


def test_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"^the file is not a regular file; write the token"):
        read_token_file(tmp_path, "the file")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    outcome: list[BaseException | str | None] = []

    def read() -> None:
        try:
            outcome.append(read_token_file(fifo, "the fifo"))
        except SourceError as exc:
            outcome.append(exc)

    worker = threading.Thread(target=read, daemon=True)
    worker.start()
    worker.join(5)
    if worker.is_alive():
        # Unblock the reader so that the test run can end, then fail.
        with fifo.open("w") as writer:
            writer.write("x")
        pytest.fail("read_token_file blocked on a FIFO with no writer")
    assert len(outcome) == 1
    assert isinstance(outcome[0], SourceError)
    assert "not a regular file" in str(outcome[0])


def test_a_file_that_is_not_text_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(SourceError, match="not text"):
        read_token_file(path, "the file")


def test_an_unreadable_file_is_a_source_error(tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("x", encoding="utf-8")
    with pytest.raises(SourceError, match=r"^cannot read the file: "):
        read_token_file(tmp_path / "plain" / "token", "the file")


def test_only_the_first_bytes_of_a_huge_file_are_read(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_bytes(b"a" * (10 * given.MAX_TOKEN_LENGTH))
    text = read_token_file(path, "the file")
    assert text is not None
    assert len(text) == given.MAX_TOKEN_LENGTH + 1


# ---------------------------------------------------------------- GivenTokenSource


def test_nothing_given_is_unavailable() -> None:
    result = GivenTokenSource().get_token(_request())
    assert isinstance(result, Unavailable)
    assert result.present is False
    assert "ARTIFACTS_KEYRING_NOFUSS_TOKEN" in result.reason
    assert "ARTIFACTS_KEYRING_NOFUSS_TOKEN_FILE" in result.reason
    assert "artifacts_keyring_nofuss_token" in result.reason


def test_the_token_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARTIFACTS_KEYRING_NOFUSS_TOKEN", f"  {PAT}\n")
    token = GivenTokenSource().get_token(_request())
    assert isinstance(token, Token)
    assert (token.secret, token.source, token.as_is) == (PAT, "token", True)


def test_a_blank_token_variable_is_not_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARTIFACTS_KEYRING_NOFUSS_TOKEN", "   ")
    assert isinstance(GivenTokenSource().get_token(_request()), Unavailable)


def test_an_expired_token_in_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARTIFACTS_KEYRING_NOFUSS_TOKEN", user_jwt(exp=EXPIRED_AT))
    with pytest.raises(GivenTokenExpired, match="ARTIFACTS_KEYRING_NOFUSS_TOKEN expired at"):
        GivenTokenSource().get_token(_request())


def test_the_token_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "token"
    path.write_text(user_jwt(exp=FRESH_AT) + "\n", encoding="utf-8")
    monkeypatch.setenv("ARTIFACTS_KEYRING_NOFUSS_TOKEN_FILE", f" {path} ")
    token = GivenTokenSource().get_token(_request())
    assert isinstance(token, Token)
    assert token.secret == user_jwt(exp=FRESH_AT)
    assert token.expires_on == FRESH_AT


def test_the_variable_wins_over_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "token"
    path.write_text(OTHER_PAT, encoding="utf-8")
    monkeypatch.setenv("ARTIFACTS_KEYRING_NOFUSS_TOKEN_FILE", str(path))
    monkeypatch.setenv("ARTIFACTS_KEYRING_NOFUSS_TOKEN", PAT)
    token = GivenTokenSource().get_token(_request())
    assert isinstance(token, Token)
    assert token.secret == PAT


def test_a_relative_token_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "token").write_text(PAT, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ARTIFACTS_KEYRING_NOFUSS_TOKEN_FILE", "token")
    with pytest.raises(SourceError, match="must be an absolute path"):
        GivenTokenSource().get_token(_request())


def test_a_missing_token_file_is_an_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "missing"
    monkeypatch.setenv("ARTIFACTS_KEYRING_NOFUSS_TOKEN_FILE", str(missing))
    with pytest.raises(SourceError) as caught:
        GivenTokenSource().get_token(_request())
    assert str(missing) in str(caught.value)
    assert "does not exist" in str(caught.value)


def test_an_empty_token_file_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "token"
    path.write_text("\n", encoding="utf-8")
    monkeypatch.setenv("ARTIFACTS_KEYRING_NOFUSS_TOKEN_FILE", str(path))
    with pytest.raises(SourceError, match="is empty"):
        GivenTokenSource().get_token(_request())


def test_a_token_file_that_is_a_directory_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARTIFACTS_KEYRING_NOFUSS_TOKEN_FILE", str(tmp_path))
    with pytest.raises(SourceError, match="not a regular file"):
        GivenTokenSource().get_token(_request())


@pytest.mark.parametrize(
    "secret_id", ["artifacts_keyring_nofuss_token", "ARTIFACTS_KEYRING_NOFUSS_TOKEN"]
)
def test_a_docker_build_secret(secrets_dir: Path, secret_id: str) -> None:
    (secrets_dir / secret_id).write_text(PAT + "\n", encoding="utf-8")
    token = GivenTokenSource().get_token(_request())
    assert isinstance(token, Token)
    assert token.secret == PAT
    assert str(secrets_dir / secret_id) in token.who


def test_the_file_wins_over_a_docker_secret(
    secrets_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (secrets_dir / "artifacts_keyring_nofuss_token").write_text(OTHER_PAT, encoding="utf-8")
    path = tmp_path / "token"
    path.write_text(PAT, encoding="utf-8")
    monkeypatch.setenv("ARTIFACTS_KEYRING_NOFUSS_TOKEN_FILE", str(path))
    token = GivenTokenSource().get_token(_request())
    assert isinstance(token, Token)
    assert token.secret == PAT


def test_an_expired_docker_secret_names_its_path(secrets_dir: Path) -> None:
    path = secrets_dir / "artifacts_keyring_nofuss_token"
    path.write_text(user_jwt(exp=EXPIRED_AT), encoding="utf-8")
    with pytest.raises(GivenTokenExpired) as caught:
        GivenTokenSource().get_token(_request())
    assert str(path) in str(caught.value)


# ---------------------------------------------------------------- ExternalEndpointsSource

ENDPOINTS_VAR = "ARTIFACTS_CREDENTIALPROVIDER_EXTERNAL_FEED_ENDPOINTS"


def _endpoints(*entries: object) -> str:
    return json.dumps({"endpointCredentials": list(entries)})


def _warnings(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("artifacts-keyring-nofuss: ")]


def test_external_endpoints_unset() -> None:
    result = ExternalEndpointsSource().get_token(_request())
    assert isinstance(result, Unavailable)
    assert result.present is False
    assert ENDPOINTS_VAR in result.reason


@pytest.mark.parametrize("var", [ENDPOINTS_VAR, "VSS_NUGET_EXTERNAL_FEED_ENDPOINTS"])
def test_an_entry_for_the_feed(monkeypatch: pytest.MonkeyPatch, var: str) -> None:
    monkeypatch.setenv(
        var,
        _endpoints(
            {
                "endpoint": "https://pkgs.dev.azure.com/contoso/_packaging/other/pypi/simple/",
                "password": OTHER_PAT,
            },
            {"endpoint": URL, "username": "me", "password": PAT},
        ),
    )
    token = ExternalEndpointsSource().get_token(_request())
    assert isinstance(token, Token)
    assert (token.secret, token.source, token.as_is) == (PAT, "external_endpoints", True)
    assert f"{var} entry 2" in token.who


@pytest.mark.parametrize(
    "endpoint",
    [
        "https://pkgs.dev.azure.com/contoso/_packaging/feed/nuget/v3/index.json",
        "https://VssSessionToken@pkgs.dev.azure.com/contoso/_packaging/Feed/pypi/simple",
        "https://pkgs.dev.azure.com/contoso/_packaging/feed@Release/pypi/simple/",
    ],
)
def test_an_entry_matches_by_feed(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> None:
    monkeypatch.setenv(ENDPOINTS_VAR, _endpoints({"endpoint": endpoint, "password": PAT}))
    token = ExternalEndpointsSource().get_token(_request())
    assert isinstance(token, Token)
    assert token.secret == PAT


def test_our_spelling_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "VSS_NUGET_EXTERNAL_FEED_ENDPOINTS", _endpoints({"endpoint": URL, "password": OTHER_PAT})
    )
    monkeypatch.setenv(ENDPOINTS_VAR, _endpoints({"endpoint": URL, "password": PAT}))
    token = ExternalEndpointsSource().get_token(_request())
    assert isinstance(token, Token)
    assert token.secret == PAT


def test_no_entry_for_the_feed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(
        ENDPOINTS_VAR,
        _endpoints(
            {
                "endpoint": "https://pkgs.dev.azure.com/fabrikam/_packaging/feed/pypi/simple/",
                "password": PAT,
            }
        ),
    )
    result = ExternalEndpointsSource().get_token(_request())
    assert isinstance(result, Unavailable)
    assert result.reason == f"{ENDPOINTS_VAR} has no entry for contoso/feed"
    assert result.present is True  # set up here, worth the user's attention
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    ("document", "said"),
    [
        ("not json", "is not valid JSON"),
        ("{", "is not valid JSON"),
        ("[" * 100_000, "is not valid JSON"),
        ("[]", 'has no "endpointCredentials" list'),
        ('"text"', 'has no "endpointCredentials" list'),
        ("{}", 'has no "endpointCredentials" list'),
        ('{"endpointCredentials": {}}', 'has no "endpointCredentials" list'),
        ('{"endpointCredentials": "x"}', 'has no "endpointCredentials" list'),
        ('{"EndpointCredentials": []}', 'has no "endpointCredentials" list'),
        (" " * (given.MAX_ENDPOINTS_LENGTH + 1) + "{}", "is too large"),
    ],
)
def test_a_malformed_document_is_one_warning_and_unavailable(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    document: str,
    said: str,
) -> None:
    monkeypatch.setenv(ENDPOINTS_VAR, document)
    for _ in range(3):
        result = ExternalEndpointsSource().get_token(_request())
        assert isinstance(result, Unavailable)
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"artifacts-keyring-nofuss: {ENDPOINTS_VAR} {said}")


def test_each_malformed_entry_is_skipped_with_one_warning(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(
        ENDPOINTS_VAR,
        _endpoints(
            42,  # 1
            {"password": OTHER_PAT},  # 2: no endpoint
            {"endpoint": "  ", "password": OTHER_PAT},  # 3
            {"endpoint": 7, "password": OTHER_PAT},  # 4
            {"endpoint": URL},  # 5: no password
            {"endpoint": URL, "password": "   "},  # 6
            {"endpoint": URL, "password": 12345},  # 7
            {"endpoint": URL, "username": ["me"], "password": OTHER_PAT},  # 8
            {"endpoint": URL, "username": "me", "password": PAT},  # 9: the one that works
        ),
    )
    for _ in range(2):
        token = ExternalEndpointsSource().get_token(_request())
        assert isinstance(token, Token)
        assert token.secret == PAT
    captured = capsys.readouterr()
    assert captured.out == ""
    assert _warnings(captured.err) == [
        f"artifacts-keyring-nofuss: {ENDPOINTS_VAR} entry 1 is not an object; skipping it",
        f'artifacts-keyring-nofuss: {ENDPOINTS_VAR} entry 2 has no "endpoint" URL; skipping it',
        f'artifacts-keyring-nofuss: {ENDPOINTS_VAR} entry 3 has no "endpoint" URL; skipping it',
        f'artifacts-keyring-nofuss: {ENDPOINTS_VAR} entry 4 has no "endpoint" URL; skipping it',
        f'artifacts-keyring-nofuss: {ENDPOINTS_VAR} entry 5 has no "password"; skipping it',
        f'artifacts-keyring-nofuss: {ENDPOINTS_VAR} entry 6 has no "password"; skipping it',
        f'artifacts-keyring-nofuss: {ENDPOINTS_VAR} entry 7 has no "password"; skipping it',
        f'artifacts-keyring-nofuss: {ENDPOINTS_VAR} entry 8 has a "username" that is not text; '
        "skipping it",
    ]
    assert OTHER_PAT not in captured.err
    assert PAT not in captured.err


def test_an_expired_password_names_the_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        ENDPOINTS_VAR, _endpoints({"endpoint": URL, "password": user_jwt(exp=EXPIRED_AT)})
    )
    with pytest.raises(GivenTokenExpired) as caught:
        ExternalEndpointsSource().get_token(_request())
    assert f"{ENDPOINTS_VAR} entry 1 ({URL})" in str(caught.value)
    assert "2001-09-09 01:46:40Z" in str(caught.value)


def test_a_password_with_spaces_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENDPOINTS_VAR, _endpoints({"endpoint": URL, "password": "pass word"}))
    with pytest.raises(SourceError, match=r"entry 1 .* does not look like a token"):
        ExternalEndpointsSource().get_token(_request())


# ---------------------------------------------------------------- AccessTokenSource


@pytest.mark.parametrize(
    ("token_var", "prefixes_var"),
    [
        ("ARTIFACTS_CREDENTIALPROVIDER_ACCESSTOKEN", "ARTIFACTS_CREDENTIALPROVIDER_URI_PREFIXES"),
        ("VSS_NUGET_ACCESSTOKEN", "VSS_NUGET_URI_PREFIXES"),
        ("ARTIFACTS_CREDENTIALPROVIDER_ACCESSTOKEN", "VSS_NUGET_URI_PREFIXES"),
        ("VSS_NUGET_ACCESSTOKEN", "ARTIFACTS_CREDENTIALPROVIDER_URI_PREFIXES"),
    ],
)
def test_access_token_for_a_prefix(
    monkeypatch: pytest.MonkeyPatch, token_var: str, prefixes_var: str
) -> None:
    monkeypatch.setenv(token_var, PAT)
    monkeypatch.setenv(prefixes_var, "https://pkgs.dev.azure.com/contoso/")
    token = AccessTokenSource().get_token(_request())
    assert isinstance(token, Token)
    assert (token.secret, token.source, token.as_is) == (PAT, "access_token", True)


@pytest.mark.parametrize(
    "prefixes",
    [
        "HTTPS://PKGS.DEV.AZURE.COM/CONTOSO/",
        "https://pkgs.dev.azure.com/fabrikam/;https://pkgs.dev.azure.com/contoso/",
        " https://pkgs.dev.azure.com/fabrikam/ ; https://pkgs.dev.azure.com/Contoso/_packaging/ ",
        ";;https://pkgs.dev.azure.com/contoso/_packaging/feed/pypi/simple/;",
        "https://pkgs.dev.azure.com/contoso/_packaging/feed/nuget/v3/index.json",
    ],
)
def test_access_token_prefixes(monkeypatch: pytest.MonkeyPatch, prefixes: str) -> None:
    monkeypatch.setenv("ARTIFACTS_CREDENTIALPROVIDER_ACCESSTOKEN", PAT)
    monkeypatch.setenv("ARTIFACTS_CREDENTIALPROVIDER_URI_PREFIXES", prefixes)
    assert isinstance(AccessTokenSource().get_token(_request()), Token)


@pytest.mark.parametrize(
    "prefixes",
    [
        "https://pkgs.dev.azure.com/fabrikam/",
        "https://pkgs.dev.azure.com/contoso/_packaging/other/",
        "http://pkgs.dev.azure.com/contoso/",
        "pkgs.dev.azure.com/contoso/",
        ";;",
        " ",
    ],
)
def test_access_token_for_other_prefixes_is_unavailable(
    monkeypatch: pytest.MonkeyPatch, prefixes: str
) -> None:
    monkeypatch.setenv("ARTIFACTS_CREDENTIALPROVIDER_ACCESSTOKEN", PAT)
    monkeypatch.setenv("ARTIFACTS_CREDENTIALPROVIDER_URI_PREFIXES", prefixes)
    result = AccessTokenSource().get_token(_request())
    assert isinstance(result, Unavailable)
    assert result.present is True
    assert PAT not in result.reason


@pytest.mark.parametrize(
    "url",
    [
        "https://pkgs.dev.azure.com/contosoevil/_packaging/feed/pypi/simple/",
        "https://pkgs.dev.azure.com/contoso-evil/_packaging/feed/pypi/simple/",
        "https://pkgs.dev.azure.com/contoso.evil/_packaging/feed/pypi/upload/",
    ],
)
def test_an_org_prefix_is_not_handed_to_an_org_whose_name_starts_with_it(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.setenv("ARTIFACTS_CREDENTIALPROVIDER_ACCESSTOKEN", PAT)
    monkeypatch.setenv(
        "ARTIFACTS_CREDENTIALPROVIDER_URI_PREFIXES", "https://pkgs.dev.azure.com/contoso"
    )
    assert isinstance(AccessTokenSource().get_token(_request()), Token)  # its own org: yes
    result = AccessTokenSource().get_token(_request(feed(url)))
    assert isinstance(result, Unavailable)
    assert PAT not in result.reason


def test_access_token_without_prefixes_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VSS_NUGET_ACCESSTOKEN", PAT)
    result = AccessTokenSource().get_token(_request())
    assert isinstance(result, Unavailable)
    assert result.reason == (
        "VSS_NUGET_ACCESSTOKEN is set but ARTIFACTS_CREDENTIALPROVIDER_URI_PREFIXES is not"
    )
    assert result.present is True


def test_no_access_token_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARTIFACTS_CREDENTIALPROVIDER_URI_PREFIXES", "https://pkgs.dev.azure.com/")
    result = AccessTokenSource().get_token(_request())
    assert isinstance(result, Unavailable)
    assert result.present is False
    assert "ARTIFACTS_CREDENTIALPROVIDER_ACCESSTOKEN" in result.reason


def test_an_expired_access_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARTIFACTS_CREDENTIALPROVIDER_ACCESSTOKEN", user_jwt(exp=EXPIRED_AT))
    monkeypatch.setenv("ARTIFACTS_CREDENTIALPROVIDER_URI_PREFIXES", "https://pkgs.dev.azure.com/")
    with pytest.raises(GivenTokenExpired, match="ARTIFACTS_CREDENTIALPROVIDER_ACCESSTOKEN"):
        AccessTokenSource().get_token(_request())


# ---------------------------------------------------------------- PipelineSource

ADS_FEED_URL = "https://ads.example.com/tfs/DefaultCollection/Project1/_packaging/feed/pypi/simple/"


@pytest.mark.parametrize(
    ("collection", "url"),
    [
        ("https://dev.azure.com/contoso/", URL),
        ("https://dev.azure.com/Contoso", URL),
        ("  https://dev.azure.com/contoso/  ", URL),
        ("https://contoso.visualstudio.com/", URL),
        ("https://Contoso.VisualStudio.com", URL),
        (
            "https://dev.azure.com/contoso/",
            "https://contoso.pkgs.visualstudio.com/_packaging/f/pypi/simple/",
        ),
        (
            "https://dev.azure.com/contoso/",
            "https://pkgs.dev.azure.com/contoso/Proj/_packaging/f/pypi/upload/",
        ),
        ("https://ads.example.com/tfs/DefaultCollection/", ADS_FEED_URL),
        ("https://ads.example.com/tfs/defaultcollection", ADS_FEED_URL),
    ],
)
def test_the_pipeline_token_for_its_own_organisation(
    monkeypatch: pytest.MonkeyPatch, collection: str, url: str
) -> None:
    monkeypatch.setenv("ARTIFACTS_CREDENTIALPROVIDER_VSTS_HOSTS", "ads.example.com")
    monkeypatch.setenv("SYSTEM_ACCESSTOKEN", PAT)
    monkeypatch.setenv("SYSTEM_TEAMFOUNDATIONCOLLECTIONURI", collection)
    token = PipelineSource().get_token(_request(feed(url)))
    assert isinstance(token, Token)
    assert (token.secret, token.source, token.as_is) == (PAT, "pipeline", True)


@pytest.mark.parametrize(
    ("collection", "url"),
    [
        ("https://dev.azure.com/fabrikam/", URL),
        ("https://dev.azure.com/contosox/", URL),
        ("https://dev.azure.com/", URL),
        ("https://fabrikam.visualstudio.com/", URL),
        ("https://contoso.evil.visualstudio.com/", URL),
        ("https://contoso.visualstudio.com.evil.com/", URL),
        ("https://evil.com/contoso/", URL),
        ("http://dev.azure.com/contoso/", URL),
        ("dev.azure.com/contoso", URL),
        ("https://[dev.azure.com/contoso", URL),
        ("https://ads.example.com/tfs/DefaultCollection/", URL),
        ("https://dev.azure.com/tfs/", ADS_FEED_URL),
        ("https://ads.example.com/tfs/OtherCollection/", ADS_FEED_URL),
        ("https://ads.example.com/tfs/", ADS_FEED_URL),
        ("https://other.example.com/tfs/DefaultCollection/", ADS_FEED_URL),
    ],
)
def test_the_pipeline_token_is_not_for_other_organisations(
    monkeypatch: pytest.MonkeyPatch, collection: str, url: str
) -> None:
    monkeypatch.setenv("ARTIFACTS_CREDENTIALPROVIDER_VSTS_HOSTS", "ads.example.com")
    monkeypatch.setenv("SYSTEM_ACCESSTOKEN", PAT)
    monkeypatch.setenv("SYSTEM_TEAMFOUNDATIONCOLLECTIONURI", collection)
    result = PipelineSource().get_token(_request(feed(url)))
    assert isinstance(result, Unavailable)
    assert "the pipeline's token is for" in result.reason
    assert result.present is True
    assert PAT not in result.reason


def test_no_pipeline_token_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYSTEM_TEAMFOUNDATIONCOLLECTIONURI", "https://dev.azure.com/contoso/")
    monkeypatch.setenv("SYSTEM_ACCESSTOKEN", "  ")
    result = PipelineSource().get_token(_request())
    assert isinstance(result, Unavailable)
    assert "SYSTEM_ACCESSTOKEN is not set" in result.reason
    assert result.present is False


def test_a_pipeline_token_without_its_collection_is_unavailable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SYSTEM_ACCESSTOKEN", PAT)
    result = PipelineSource().get_token(_request())
    assert isinstance(result, Unavailable)
    assert "SYSTEM_TEAMFOUNDATIONCOLLECTIONURI is not" in result.reason
    assert result.present is True


# ---------------------------------------------------------------- DevopsPatSource


def test_the_devops_pat(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_DEVOPS_EXT_PAT", PAT)
    token = DevopsPatSource().get_token(_request())
    assert isinstance(token, Token)
    assert (token.secret, token.source, token.as_is, token.expires_on) == (
        PAT,
        "devops_pat",
        True,
        None,
    )


@pytest.mark.parametrize("value", [None, "", "  \n"])
def test_no_devops_pat(monkeypatch: pytest.MonkeyPatch, value: str | None) -> None:
    if value is not None:
        monkeypatch.setenv("AZURE_DEVOPS_EXT_PAT", value)
    result = DevopsPatSource().get_token(_request())
    assert isinstance(result, Unavailable)
    assert result.reason == "AZURE_DEVOPS_EXT_PAT is not set"
    assert result.present is False


# ---------------------------------------------------------------- all of them


GIVEN_SOURCES = [
    GivenTokenSource,
    ExternalEndpointsSource,
    AccessTokenSource,
    PipelineSource,
    DevopsPatSource,
]


@pytest.mark.parametrize("source", GIVEN_SOURCES, ids=lambda s: s.__name__)
def test_given_sources_need_no_discovery_and_are_never_cached(source: type) -> None:
    instance = source()
    spec = identities.SPECS[instance.name]
    assert spec.needs_discovery is False
    assert spec.knows_identity is False
    assert instance.prepare(token_request()) == identities.Prepared()
    token = as_is(user_jwt(), instance.name, "somewhere")
    assert token.kind == devops.GIVEN and token.as_is
