from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from artifacts_keyring_nofuss.devops import RESOURCE as DEVOPS_RESOURCE
from artifacts_keyring_nofuss.errors import SourceError
from artifacts_keyring_nofuss.identities import Prepared, Unavailable
from artifacts_keyring_nofuss.identities.azure_cli import (
    AzureCliSource,
    config_dir,
    find_az,
    signed_in_account,
)
from artifacts_keyring_nofuss.identities.azure_identity import AzureIdentitySource
from artifacts_keyring_nofuss.tokens import Token

from .helpers import APP_ID, TENANT, USER_OID, app_jwt, feed, token_request, user_jwt

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="fake az is a POSIX shell script")

FEED = feed()
SYSTEM_PATH = os.pathsep.join(["/usr/bin", "/bin"])


def _executable(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def _script(argv_file: Path, body: str) -> str:
    return f'#!/bin/sh\nprintf "%s\\n" "$@" > "{argv_file}"\n{body}\n'


@dataclass
class FakeAz:
    bin_dir: Path
    argv_file: Path

    def install(self, body: str) -> Path:
        return _executable(self.bin_dir / "az", _script(self.argv_file, body))

    def prints(self, data: object, rc: int = 0, stderr: str = "") -> Path:
        payload = data if isinstance(data, str) else json.dumps(data)
        out = self.bin_dir / "stdout.txt"
        out.write_text(payload, encoding="utf-8")
        err = self.bin_dir / "stderr.txt"
        err.write_text(stderr, encoding="utf-8")
        return self.install(f'cat "{out}"\ncat "{err}" >&2\nexit {rc}')

    def argv(self) -> list[str]:
        return self.argv_file.read_text(encoding="utf-8").splitlines()


@pytest.fixture
def fake_az(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeAz:
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", os.pathsep.join([str(bin_dir), SYSTEM_PATH]))
    monkeypatch.chdir(tmp_path)
    return FakeAz(bin_dir, tmp_path / "argv.txt")


def _get(tenant: str | None = TENANT) -> Token | Unavailable:
    return AzureCliSource().get_token(token_request(FEED, tenant))


def _az_json(token: str, **extra: object) -> dict[str, object]:
    data: dict[str, object] = {
        "accessToken": token,
        "expiresOn": "2031-01-01 10:00:00.000000",
        "expires_on": 1_924_992_000,
        "subscription": "x",
        "tenant": TENANT,
        "tokenType": "Bearer",
    }
    data.update(extra)
    return data


# ---------------------------------------------------------------- find_az


def test_find_az_on_an_absolute_path(tmp_path: Path) -> None:
    good = tmp_path / "good"
    good.mkdir()
    az = _executable(good / "az", "#!/bin/sh\n")
    assert find_az(str(good)) == str(az)


def test_find_az_takes_the_first_match(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    _executable(first / "az", "#!/bin/sh\n")
    _executable(second / "az", "#!/bin/sh\n")
    assert find_az(os.pathsep.join([str(first), str(second)])) == str(first / "az")


def test_find_az_uses_path_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    good = tmp_path / "good"
    good.mkdir()
    _executable(good / "az", "#!/bin/sh\n")
    monkeypatch.setenv("PATH", str(good))
    assert find_az() == str(good / "az")


@pytest.mark.parametrize("entry", ["", ".", "./", "bin", "./bin", "bin/../bin", "..", "~"])
def test_find_az_skips_relative_and_empty_entries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, entry: str
) -> None:
    checkout = tmp_path / "repo" / "sub"
    (checkout / "bin").mkdir(parents=True)
    for planted in (checkout / "az", checkout / "bin" / "az", checkout.parent / "az"):
        _executable(planted, "#!/bin/sh\necho planted\n")
    monkeypatch.chdir(checkout)
    assert find_az(entry) is None
    monkeypatch.setenv("PATH", entry)
    assert find_az() is None


def test_find_az_skips_the_current_directory_even_when_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkout = tmp_path / "repo"
    checkout.mkdir()
    _executable(checkout / "az", "#!/bin/sh\necho planted\n")
    monkeypatch.chdir(checkout)
    assert find_az(str(checkout)) is None
    assert find_az(str(checkout) + os.sep) is None
    assert find_az(str(checkout / ".")) is None


def test_find_az_skips_a_link_to_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkout = tmp_path / "repo"
    checkout.mkdir()
    _executable(checkout / "az", "#!/bin/sh\necho planted\n")
    link = tmp_path / "link"
    link.symlink_to(checkout, target_is_directory=True)
    monkeypatch.chdir(checkout)
    assert find_az(str(link)) is None


def test_find_az_moves_past_planted_entries_to_the_real_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkout = tmp_path / "repo"
    checkout.mkdir()
    _executable(checkout / "az", "#!/bin/sh\necho planted\n")
    real = tmp_path / "real"
    real.mkdir()
    _executable(real / "az", "#!/bin/sh\n")
    monkeypatch.chdir(checkout)
    path = os.pathsep.join(["", ".", "bin", str(checkout), str(real)])
    assert find_az(path) == str(real / "az")


def test_find_az_skips_what_cannot_run(tmp_path: Path) -> None:
    not_executable = tmp_path / "a"
    not_executable.mkdir()
    (not_executable / "az").write_text("#!/bin/sh\n", encoding="utf-8")
    (not_executable / "az").chmod(0o644)
    directory = tmp_path / "b"
    (directory / "az").mkdir(parents=True)
    missing = tmp_path / "missing"
    assert find_az(os.pathsep.join([str(not_executable), str(directory), str(missing)])) is None


def test_find_az_nothing_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    assert find_az() is None


def test_no_az_is_unavailable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    result = _get()
    assert isinstance(result, Unavailable)
    assert "az" in result.reason


def test_an_az_planted_in_the_current_directory_is_never_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "ran"
    _executable(tmp_path / "az", f'#!/bin/sh\ntouch "{marker}"\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", os.pathsep.join([".", "", str(tmp_path), SYSTEM_PATH]))
    result = _get()
    assert isinstance(result, Unavailable)
    assert not marker.exists()


# ---------------------------------------------------------------- running az


def test_argv_with_a_tenant(fake_az: FakeAz) -> None:
    fake_az.prints(_az_json(user_jwt()))
    _get(TENANT)
    assert fake_az.argv() == [
        "account",
        "get-access-token",
        "--resource",
        DEVOPS_RESOURCE,
        "--tenant",
        TENANT,
        "--output",
        "json",
    ]


@pytest.mark.parametrize("tenant", [None, ""])
def test_argv_without_a_tenant(fake_az: FakeAz, tenant: str | None) -> None:
    fake_az.prints(_az_json(user_jwt()))
    _get(tenant)
    assert fake_az.argv() == [
        "account",
        "get-access-token",
        "--resource",
        DEVOPS_RESOURCE,
        "--output",
        "json",
    ]


def test_a_user_token(fake_az: FakeAz) -> None:
    secret = user_jwt(exp=1_900_000_000)
    fake_az.prints(_az_json(secret), stderr="WARNING: a newer version of az is available\n")
    token = _get()
    assert isinstance(token, Token)
    assert token.secret == secret
    assert token.user is True
    assert token.expires_on == 1_900_000_000
    assert token.identity == f"azure_cli:{TENANT}/{USER_OID}"  # no profile vouched for it
    assert token.source == "azure_cli"


@pytest.mark.parametrize(
    ("expires_on", "expected"),
    [
        (1_924_992_000, 1_924_992_000.0),
        ("1924992000", 1_924_992_000.0),
        ("not a number", None),
        (None, None),
        (True, None),
        ([1], None),
    ],
)
def test_expiry_of_an_opaque_token_comes_from_expires_on(
    fake_az: FakeAz, expires_on: object, expected: float | None
) -> None:
    fake_az.prints(_az_json("opaque-token-value", expires_on=expires_on))
    token = _get()
    assert isinstance(token, Token)
    assert token.expires_on == expected


def test_missing_expires_on(fake_az: FakeAz) -> None:
    data = _az_json("opaque-token-value")
    del data["expires_on"]
    fake_az.prints(data)
    token = _get()
    assert isinstance(token, Token)
    assert token.expires_on is None


def test_not_logged_in_is_unavailable(fake_az: FakeAz) -> None:
    fake_az.prints("", rc=1, stderr="ERROR: Please run 'az login' to setup account.\n")
    result = _get()
    assert isinstance(result, Unavailable)
    assert result.reason == "not signed in"
    assert result.fix == f"run `az login --tenant {TENANT}`"


def test_aadsts_error_says_how_to_sign_in_to_the_tenant(fake_az: FakeAz) -> None:
    fake_az.prints("", rc=1, stderr="ERROR: AADSTS50173: The provided grant has expired.\n")
    with pytest.raises(SourceError) as caught:
        _get(TENANT)
    assert f"az login --tenant {TENANT}" in str(caught.value)
    assert "AADSTS50173" in str(caught.value)


def test_aadsts_error_as_az_really_prints_it_is_not_mistaken_for_signed_out(
    fake_az: FakeAz,
) -> None:
    """az adds "Interactive authentication is needed. Please run: az login ..." to AADSTS errors."""
    stderr = (
        "ERROR: AADSTS50076: Due to a configuration change made by your administrator, "
        "or because you moved to a new location, you must use multi-factor authentication "
        "to access '499b84ac-1321-427f-aa17-267ca6975798'.\n"
        "Trace ID: 0000\nInteractive authentication is needed. Please run:\n"
        "az login --scope 499b84ac-1321-427f-aa17-267ca6975798/.default\n"
    )
    fake_az.prints("", rc=1, stderr=stderr)
    with pytest.raises(SourceError) as caught:
        _get(TENANT)
    assert f"az login --tenant {TENANT}" in str(caught.value)
    assert "AADSTS50076" in str(caught.value)


def test_aadsts_error_of_azure_cli_2_91_is_shortened_without_its_prefix(fake_az: FakeAz) -> None:
    """What azure-cli 2.91 prints for a user of another tenant (run against the simulator)."""
    stderr = (
        "ERROR: AADSTS50020: User account '{EmailHidden}' from identity provider "
        "'https://sts.windows.net/4092a4cd-fdc0-42b4-9015-7134a956de3e/' does not exist in "
        "tenant 'Fabrikam' and cannot access the application "
        "'04b07795-8ddb-461a-bbee-02f9e1bf7b46' in that tenant. The account needs to be added "
        "as an external user in the tenant first. Trace ID: 3fbe Correlation ID: 4009 "
        "Timestamp: 2026-12-02 19:39:38Z\n"
        "Run the command below to authenticate interactively; additional arguments may be "
        "added as needed:\naz logout\n"
        f'az login --tenant "{TENANT}" --scope "499b84ac-1321-427f-aa17-267ca6975798/.default"\n'
    )
    fake_az.prints("", rc=1, stderr=stderr)
    with pytest.raises(SourceError) as caught:
        _get(TENANT)
    message = str(caught.value)
    assert "tenant (default)" not in message
    assert ": AADSTS50020: User account '{EmailHidden}' from identity provider" in message
    assert "ERROR:" not in message
    assert "Trace ID" not in message
    assert message.endswith(f"...; run `az login --tenant {TENANT}`")


def test_aadsts_error_without_a_tenant(fake_az: FakeAz) -> None:
    fake_az.prints("", rc=1, stderr="ERROR: AADSTS700082: The refresh token has expired.\n")
    with pytest.raises(SourceError) as caught:
        _get(None)
    assert "az login" in str(caught.value)
    assert "--tenant" not in str(caught.value)


def test_a_traceback_is_a_source_error(fake_az: FakeAz) -> None:
    stderr = (
        "Traceback (most recent call last):\n"
        '  File "/opt/az/lib/python3.12/site-packages/azure/cli/__main__.py", line 1\n'
        "ModuleNotFoundError: No module named 'knack'\n"
    )
    fake_az.prints("", rc=1, stderr=stderr)
    with pytest.raises(SourceError, match="az account get-access-token"):
        _get()


def test_an_unknown_failure_shows_the_last_line(fake_az: FakeAz) -> None:
    fake_az.prints("", rc=2, stderr="something odd\nERROR: the real reason\n")
    with pytest.raises(SourceError, match="the real reason"):
        _get()


def test_a_silent_failure(fake_az: FakeAz) -> None:
    fake_az.prints("", rc=3)
    with pytest.raises(SourceError):
        _get()


@pytest.mark.parametrize(
    "stdout",
    [
        "",
        "not json",
        "<html>proxy says no</html>",
        "[1, 2]",
        '"just a string"',
        "null",
        "{}",
        '{"accessToken": ""}',
        '{"accessToken": null}',
        '{"accessToken": 42}',
        '{"accessToken": "has spaces"}',
        '{"accessToken": "line\\nbreak"}',
        '{"access_token": "wrong-name"}',
        '{"accessToken": "tok"',
        '{"accessToken": "caf\\u00e9"}',
    ],
)
def test_unusable_output_is_a_source_error(fake_az: FakeAz, stdout: str) -> None:
    fake_az.prints(stdout)
    with pytest.raises(SourceError):
        _get()


def test_non_utf8_output_is_a_source_error(fake_az: FakeAz) -> None:
    raw = fake_az.bin_dir / "raw.bin"
    raw.write_bytes(b'{"accessToken": "\xff\xfe"}')
    fake_az.install(f'cat "{raw}"')
    with pytest.raises(SourceError):
        _get()


def test_a_timeout_is_a_source_error_naming_the_setting(
    fake_az: FakeAz, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARTIFACTS_KEYRING_NOFUSS_AZ_TIMEOUT", "1")
    fake_az.install("exec sleep 30")
    with pytest.raises(SourceError) as caught:
        _get()
    assert "ARTIFACTS_KEYRING_NOFUSS_AZ_TIMEOUT" in str(caught.value)


def test_an_az_that_leaves_a_child_holding_its_output_still_answers(
    fake_az: FakeAz, monkeypatch: pytest.MonkeyPatch
) -> None:
    # az has answered and exited, but something it started (telemetry, a daemon) inherited its
    # stdout and stderr: no end of file comes until that child exits.
    monkeypatch.setenv("ARTIFACTS_KEYRING_NOFUSS_AZ_TIMEOUT", "10")
    token = user_jwt()
    data = fake_az.bin_dir / "stdout.txt"
    data.write_text(json.dumps(_az_json(token)), encoding="utf-8")
    fake_az.install(f'cat "{data}"\n(sleep 30) &\nexit 0')
    started = time.monotonic()
    got = _get()
    assert time.monotonic() - started < 3
    assert isinstance(got, Token)
    assert got.secret == token


def test_an_az_that_prints_without_end_is_stopped_at_once(
    fake_az: FakeAz, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Read into memory without a bound, `yes` fills gigabytes within the lookup's deadline
    # (a process killed for want of memory: no line at all). Two seconds keep the test small.
    monkeypatch.setenv("ARTIFACTS_KEYRING_NOFUSS_AZ_TIMEOUT", "2")
    fake_az.install("exec yes 0123456789abcdef")
    started = time.monotonic()
    with pytest.raises(SourceError) as caught:
        _get()
    assert time.monotonic() - started < 3
    assert "printed more than" in str(caught.value)


def test_an_az_that_cannot_be_executed(fake_az: FakeAz) -> None:
    _executable(fake_az.bin_dir / "az", "\x7fELF not really a program")
    with pytest.raises(SourceError, match="cannot run"):
        _get()


def test_az_gets_no_stdin_and_prints_nothing_to_ours(
    fake_az: FakeAz, capsys: pytest.CaptureFixture[str]
) -> None:
    seen = fake_az.bin_dir / "stdin.txt"
    data = fake_az.bin_dir / "stdout.txt"
    data.write_text(json.dumps(_az_json(user_jwt())), encoding="utf-8")
    fake_az.install(f'cat > "{seen}"\ncat "{data}"\necho "a warning" >&2')
    token = _get()
    assert isinstance(token, Token)
    assert seen.read_text(encoding="utf-8") == ""
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == ""


# ---------------------------------------------------------------- signed_in_account


def _subscription(
    name: object = "Alice@Contoso.com", kind: object = "user", default: object = True
) -> dict[str, object]:
    return {
        "id": "00000000-0000-0000-0000-000000000001",
        "name": "Visual Studio Enterprise",
        "state": "Enabled",
        "user": {"name": name, "type": kind},
        "isDefault": default,
        "tenantId": TENANT,
        "environmentName": "AzureCloud",
        "homeTenantId": TENANT,
        "managedByTenants": [],
    }


def _profile(*subscriptions: object) -> dict[str, object]:
    return {"installationId": "abc", "subscriptions": list(subscriptions)}


def _write_profile(data: object, bom: bool = True, directory: Path | None = None) -> Path:
    where = _config_dir() if directory is None else directory
    where.mkdir(parents=True, exist_ok=True)
    text = data if isinstance(data, str) else json.dumps(data)
    path = where / "azureProfile.json"
    # az itself writes the file with a UTF-8 byte order mark.
    path.write_bytes(("\ufeff" if bom else "").encode("utf-8") + text.encode("utf-8"))
    return path


@pytest.mark.parametrize("bom", [True, False])
def test_signed_in_account_from_azure_config_dir(bom: bool) -> None:
    _write_profile(_profile(_subscription()), bom=bom)
    assert config_dir() == Path(os.environ["AZURE_CONFIG_DIR"])
    assert signed_in_account() == "alice@contoso.com"


@pytest.mark.parametrize("configured", [None, ""])
def test_signed_in_account_from_home_without_azure_config_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, configured: str | None
) -> None:
    _write_profile(_profile(_subscription(name="Bob@Fabrikam.com")))  # must not be read
    if configured is None:
        monkeypatch.delenv("AZURE_CONFIG_DIR")
    else:
        monkeypatch.setenv("AZURE_CONFIG_DIR", configured)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert config_dir() == tmp_path / ".azure"
    assert signed_in_account() is None
    _write_profile(_profile(_subscription()), directory=tmp_path / ".azure")
    assert signed_in_account() == "alice@contoso.com"


def test_signed_in_account_is_the_default_subscriptions_user() -> None:
    _write_profile(
        _profile(
            "not a subscription",
            _subscription(name="first@contoso.com", default=False),
            _subscription(name="Default@Contoso.com", default=True),
            _subscription(name="second-default@contoso.com", default=True),
        )
    )
    assert signed_in_account() == "default@contoso.com"


def test_signed_in_account_follows_az_login_and_logout() -> None:
    _write_profile(_profile(_subscription(name="alice@contoso.com")))
    assert _identity() == "azure_cli:alice@contoso.com"
    _write_profile(_profile(_subscription(name="bob@contoso.com")))
    assert _identity() == "azure_cli:bob@contoso.com"
    _write_profile(_profile())  # what `az logout` leaves
    assert _identity() is None


def test_a_long_name_at_the_limit_is_kept() -> None:
    name = "a" * 244 + "@contoso.com"
    assert len(name) == 256
    _write_profile(_profile(_subscription(name=name)))
    assert signed_in_account() == name


_GOOD_SUBSCRIPTION = _subscription()
NO_ACCOUNT: list[tuple[str, object]] = [
    ("garbage", "this is not json {"),
    ("empty file", ""),
    ("truncated", json.dumps(_profile(_GOOD_SUBSCRIPTION))[:40]),
    ("a list", json.dumps([_profile(_GOOD_SUBSCRIPTION)])),
    ("null", "null"),
    ("a string", '"alice@contoso.com"'),
    ("no subscriptions key", {"installationId": "abc"}),
    ("subscriptions empty", _profile()),
    ("subscriptions a dict", {"subscriptions": {"0": _GOOD_SUBSCRIPTION}}),
    ("subscriptions null", {"subscriptions": None}),
    ("no default", _profile(_subscription(default=False), _subscription(default=False))),
    ("default as text", _profile(_subscription(default="true"))),
    ("default as 1", _profile(_subscription(default=1))),
    (
        "default missing",
        _profile({k: v for k, v in _GOOD_SUBSCRIPTION.items() if k != "isDefault"}),
    ),
    ("user type capitalised", _profile(_subscription(kind="User"))),
    ("user type missing", _profile({**_GOOD_SUBSCRIPTION, "user": {"name": "alice@contoso.com"}})),
    ("user a string", _profile({**_GOOD_SUBSCRIPTION, "user": "alice@contoso.com"})),
    ("user missing", _profile({k: v for k, v in _GOOD_SUBSCRIPTION.items() if k != "user"})),
    ("name missing", _profile({**_GOOD_SUBSCRIPTION, "user": {"type": "user"}})),
    ("name null", _profile(_subscription(name=None))),
    ("name a number", _profile(_subscription(name=42))),
    ("name a list", _profile(_subscription(name=["alice@contoso.com"]))),
    ("name a dict", _profile(_subscription(name={"name": "alice@contoso.com"}))),
    ("name empty", _profile(_subscription(name=""))),
    ("name huge", _profile(_subscription(name="a" * 245 + "@contoso.com"))),
    ("name very huge", _profile(_subscription(name="a" * 100_000))),
    ("name with newline", _profile(_subscription(name="alice@contoso.com\nbob"))),
    ("name with nul", _profile(_subscription(name="alice\x00@contoso.com"))),
    ("name with escape", _profile(_subscription(name="\x1b[31malice@contoso.com"))),
    ("deep nesting", "[" * 100_000 + "]" * 100_000),
    ("huge integer", '{"subscriptions": ' + "9" * 10_000 + "}"),
]


@pytest.mark.parametrize("content", [c[1] for c in NO_ACCOUNT], ids=[c[0] for c in NO_ACCOUNT])
def test_no_signed_in_account(content: object) -> None:
    _write_profile(content)
    assert signed_in_account() is None
    assert _identity() is None


@pytest.mark.parametrize(
    ("name", "identity"),
    [
        (APP_ID, f"azure_cli:app:{APP_ID}"),
        ("systemAssignedIdentity", "azure_cli:app:systemassignedidentity"),
    ],
    ids=["service principal", "managed identity"],
)
def test_an_application_signed_in_is_named_apart_from_users(name: str, identity: str) -> None:
    """`az login --service-principal` or `--identity`: no user, but an application of its own,
    never mistaken for a user of the same name."""
    _write_profile(_profile(_subscription(name=name, kind="servicePrincipal")))
    assert signed_in_account() is None
    assert _identity() == identity


def test_no_profile_at_all() -> None:
    assert not (_config_dir() / "azureProfile.json").exists()
    assert signed_in_account() is None
    assert _identity() is None


@pytest.mark.parametrize(
    "raw",
    [
        b"\xff\xfe\x00garbage",
        '{"subscriptions": []}'.encode("utf-16"),
        b'{"subscriptions": [{"isDefault": true, "user": {"type": "user", "name": "\xe9"}}]}',
    ],
)
def test_a_profile_that_is_not_utf8(raw: bytes) -> None:
    (_config_dir() / "azureProfile.json").write_bytes(raw)
    assert signed_in_account() is None


def test_a_directory_in_place_of_the_profile() -> None:
    (_config_dir() / "azureProfile.json").mkdir(parents=True)
    assert signed_in_account() is None


def test_a_config_dir_that_is_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x", encoding="utf-8")
    monkeypatch.setenv("AZURE_CONFIG_DIR", str(blocker))
    assert signed_in_account() is None


def test_an_unreadable_profile() -> None:
    path = _write_profile(_profile(_subscription()))
    path.chmod(0)
    if os.access(path, os.R_OK):  # root reads it anyway
        assert signed_in_account() == "alice@contoso.com"
    else:
        assert signed_in_account() is None


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_AS is only enforced on Linux")
def test_a_profile_that_never_ends_is_not_read_whole(tmp_path: Path) -> None:
    """The 4 MiB cap must bound what is read, not what is kept of an unbounded read."""
    _config_dir().mkdir(parents=True, exist_ok=True)
    (_config_dir() / "azureProfile.json").symlink_to("/dev/zero")
    script = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (1 << 28, 1 << 28))\n"
        "from artifacts_keyring_nofuss.identities.azure_cli import signed_in_account\n"
        "print(repr(signed_in_account()))\n"
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("signed_in_account() kept reading /dev/zero for 10 s")
    assert done.returncode == 0, done.stderr[-500:]
    assert done.stdout.strip() == "None"


def test_the_name_is_lower_cased() -> None:
    _write_profile(_profile(_subscription(name="ALICE.Smith@CONTOSO.onmicrosoft.com")))
    assert signed_in_account() == "alice.smith@contoso.onmicrosoft.com"
    assert _identity() == "azure_cli:alice.smith@contoso.onmicrosoft.com"


def test_azure_identity_names_its_application_by_its_settings_without_the_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _write_profile(_profile(_subscription()))
    monkeypatch.setenv("AZURE_CLIENT_ID", APP_ID)
    monkeypatch.setenv("AZURE_TENANT_ID", TENANT)
    monkeypatch.setenv("AZURE_CLIENT_SECRET", "s3cret-value-0001")
    first = AzureIdentitySource().prepare(token_request()).identity
    monkeypatch.setenv("AZURE_CLIENT_SECRET", "s3cret-value-0002")
    second = AzureIdentitySource().prepare(token_request()).identity
    assert first is not None and second is not None
    assert first.startswith("azure_identity:") and second.startswith("azure_identity:")
    assert first != second  # another secret may be another application: never one key
    assert "s3cret" not in first + second and APP_ID not in first + second


def test_without_az_on_path_the_source_does_not_apply(monkeypatch: pytest.MonkeyPatch) -> None:
    _write_profile(_profile(_subscription()))
    monkeypatch.setenv("PATH", SYSTEM_PATH)
    got = AzureCliSource().prepare(token_request())
    assert isinstance(got, Unavailable)
    assert "`az` is not on PATH" in got.reason
    assert got.fix is not None and "az login" in got.fix


def _identity() -> str | None:
    """Who the Azure CLI source says it would answer as, with an `az` on PATH."""
    with tempfile.TemporaryDirectory() as where:
        az = Path(where) / "az"
        az.write_text("#!/bin/sh\nexit 1\n")
        az.chmod(0o755)
        saved = os.environ["PATH"]
        os.environ["PATH"] = where
        try:
            prepared = AzureCliSource().prepare(token_request())
        finally:
            os.environ["PATH"] = saved
    return prepared.identity if isinstance(prepared, Prepared) else None


def _config_dir() -> Path:
    found = config_dir()
    assert found is not None
    return found


# ---------------------------------------------------------------- az's own token cache

AZ_CLIENT = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"
HOME_ID = f"{USER_OID}.{TENANT}"


def _cache(
    username: object = "alice@contoso.com",
    client: object = AZ_CLIENT,
    realm: object = TENANT,
    target: object = f"{DEVOPS_RESOURCE}/user_impersonation {DEVOPS_RESOURCE}/.default",
    expires_in: float = 3600,
    secret: object = None,
    environment: object = "login.microsoftonline.com",
    accounts: int = 1,
) -> dict[str, object]:
    """An MSAL token cache as az 2.91 keeps it: the account, and one access token."""
    expires = str(int(time.time() + expires_in))
    account = {
        "home_account_id": HOME_ID,
        "environment": "login.microsoftonline.com",
        "realm": TENANT,
        "local_account_id": USER_OID,
        "username": username,
        "authority_type": "MSSTS",
    }
    return {
        "Account": {f"{HOME_ID}-login.microsoftonline.com-{n}": account for n in range(accounts)}
        | ({f"other-{n}": dict(account, home_account_id=f"x{n}.y") for n in range(accounts - 1)}),
        "AccessToken": {
            "key": {
                "credential_type": "AccessToken",
                "secret": user_jwt() if secret is None else secret,
                "home_account_id": HOME_ID,
                "environment": environment,
                "client_id": client,
                "target": target,
                "realm": realm,
                "token_type": "Bearer",
                "cached_at": str(int(time.time())),
                "expires_on": expires,
                "extended_expires_on": expires,
            }
        },
        "RefreshToken": {},
        "IdToken": {},
        "AppMetadata": {},
    }


def _write_cache(data: object, mode: int = 0o600) -> Path:
    path = _config_dir() / "msal_token_cache.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    path.chmod(mode)
    return path


def test_a_token_in_azs_own_cache_is_used_without_running_az(fake_az: FakeAz) -> None:
    fake_az.prints(_az_json(user_jwt(upn="someone-else@contoso.com")))
    _write_profile(_profile(_subscription()))
    _write_cache(_cache())
    got = _get()
    assert isinstance(got, Token)
    assert got.secret == user_jwt()
    assert got.identity == "azure_cli:alice@contoso.com"
    assert not fake_az.argv_file.exists()  # az never ran


NOT_USED = {
    "another account": {"username": "bob@contoso.com"},
    "another client": {"client": "872cd9fa-d31f-45e0-9eab-6e460a02d1f1"},
    "another tenant": {"realm": "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"},
    "another resource": {"target": "https://management.core.windows.net//.default"},
    "a resource that only starts alike": {"target": f"{DEVOPS_RESOURCE}0/.default"},
    "expiring within five minutes": {"expires_in": 200},
    "expired": {"expires_in": -10},
    "another cloud": {"environment": "login.evil.example"},
    "a secret with a newline": {"secret": "eyJ.a\nb.c"},
    "a secret that is not text": {"secret": 42},
    "the same name twice": {"accounts": 2},
    "a token of another tenant": {"secret": user_jwt(tid="0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0")},
    "a token for someone else": {"secret": user_jwt(upn="mallory@contoso.com")},
}


@pytest.mark.parametrize("change", list(NOT_USED.values()), ids=list(NOT_USED))
def test_anything_unclear_in_azs_cache_runs_az(fake_az: FakeAz, change: dict[str, Any]) -> None:
    fake_az.prints(_az_json(user_jwt()))
    _write_profile(_profile(_subscription()))
    _write_cache(_cache(**change))
    got = _get()
    assert isinstance(got, Token)
    assert fake_az.argv_file.exists()  # az ran


# JSON values where msal writes text: a list or an object cannot even be looked up in a set.
NOT_TEXT: list[Any] = [["login.microsoftonline.com"], {"a": 1}, None, 7]


@pytest.mark.parametrize("value", NOT_TEXT)
@pytest.mark.parametrize(
    ("section", "field"),
    [
        ("Account", "home_account_id"),
        ("Account", "environment"),
        ("Account", "username"),
        ("AccessToken", "home_account_id"),
        ("AccessToken", "environment"),
        ("AccessToken", "client_id"),
        ("AccessToken", "realm"),
    ],
)
def test_a_field_that_is_not_text_runs_az(
    fake_az: FakeAz, section: str, field: str, value: object
) -> None:
    fake_az.prints(_az_json(user_jwt()))
    _write_profile(_profile(_subscription()))
    data = _cache()
    entries = data[section]
    assert isinstance(entries, dict)
    for entry in entries.values():
        entry[field] = value
    _write_cache(data)
    assert isinstance(_get(), Token)
    assert fake_az.argv_file.exists()


@pytest.mark.parametrize(
    "content", ["", "not json", "[]", '{"AccessToken": []}', "{" * 10_000, '{"Account": {}}']
)
def test_a_cache_that_is_not_one_runs_az(fake_az: FakeAz, content: str) -> None:
    fake_az.prints(_az_json(user_jwt()))
    _write_profile(_profile(_subscription()))
    _write_cache(content)
    assert isinstance(_get(), Token)
    assert fake_az.argv_file.exists()


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX modes")
@pytest.mark.parametrize("mode", [0o620, 0o602, 0o666])
def test_a_cache_others_could_have_written_is_not_read(fake_az: FakeAz, mode: int) -> None:
    fake_az.prints(_az_json(user_jwt()))
    _write_profile(_profile(_subscription()))
    _write_cache(_cache(), mode)
    assert isinstance(_get(), Token)
    assert fake_az.argv_file.exists()


def test_a_service_principal_always_asks_az(fake_az: FakeAz) -> None:
    fake_az.prints(_az_json(app_jwt()))
    _write_profile(_profile(_subscription(name=APP_ID, kind="servicePrincipal")))
    _write_cache(_cache(username=APP_ID))
    assert isinstance(_get(), Token)
    assert fake_az.argv_file.exists()


def test_without_a_guid_tenant_az_is_asked(fake_az: FakeAz) -> None:
    fake_az.prints(_az_json(user_jwt()))
    _write_profile(_profile(_subscription()))
    _write_cache(_cache())
    assert isinstance(_get("contoso.onmicrosoft.com"), Token)
    assert fake_az.argv_file.exists()
