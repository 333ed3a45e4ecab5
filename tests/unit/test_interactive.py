"""identities/interactive.py: with nobody signed in and no way to ask, it says which command
signs in, at once and without the network."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from artifacts_keyring_nofuss import identities, signin
from artifacts_keyring_nofuss.identities import Prepared, Unavailable
from artifacts_keyring_nofuss.identities.interactive import InteractiveSource

from .helpers import TENANT, USER_OID, feed, token_request

URL = "https://pkgs.dev.azure.com/Contoso/_packaging/feed/pypi/upload/"
INDEX = "https://pkgs.dev.azure.com/contoso/_packaging/feed/pypi/simple/"
SRC = str(Path(signin.__file__).resolve().parents[1])


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every connection attempt and name lookup is recorded, and fails."""
    reached: list[object] = []

    def connect(self: socket.socket, address: object) -> None:
        reached.append(address)
        raise OSError("no network in this test")

    def getaddrinfo(host: object, *args: object, **kwargs: object) -> list[object]:
        reached.append(host)
        raise socket.gaierror("no network in this test")

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return reached


def _identity() -> str | None:
    prepared = InteractiveSource().prepare(token_request(feed(URL), TENANT))
    return prepared.identity if isinstance(prepared, Prepared) else None


def test_the_identity_is_who_signed_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARTIFACTS_KEYRING_NONINTERACTIVE_MODE", "true")
    assert _identity() is None
    signin.save_record(
        signin.Record(
            home_account_id=f"{USER_OID}.{TENANT}",
            username="alice@contoso.com",
            tenant=TENANT,
            authority=f"https://login.microsoftonline.com/{TENANT}",
        )
    )
    assert _identity() == f"interactive:{USER_OID}.{TENANT}"


def test_it_prompts_and_needs_discovery() -> None:
    spec = identities.SPECS["interactive"]
    assert spec.prompts is True
    assert spec.needs_discovery is True
    assert spec.knows_identity is True


@pytest.mark.parametrize("value", ["true", "TRUE", "1", "yes", " on "])
def test_prompts_off_and_nobody_signed_in(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    offline: list[object],
    value: str,
) -> None:
    monkeypatch.setenv("ARTIFACTS_KEYRING_NONINTERACTIVE_MODE", value)
    request = token_request(feed(URL), TENANT)
    result = InteractiveSource().get_token(request)
    assert isinstance(result, Unavailable)
    assert result.reason == (
        "nobody signed in with `ak-nofuss login`; prompts are off "
        "(ARTIFACTS_KEYRING_NONINTERACTIVE_MODE)"
    )
    assert result.fix == f"run `ak-nofuss login {INDEX}`"
    assert InteractiveSource().prepare(request) == result  # known before any discovery
    assert result.present is False  # nobody set it up: counted, not listed, in a failure
    assert offline == []
    assert capsys.readouterr() == ("", "")


@pytest.mark.skipif(sys.platform == "win32", reason="controlling terminals are POSIX")
def test_no_terminal_and_nobody_signed_in() -> None:
    code = f"""
import socket, sys
def refuse(*args, **kwargs):
    print("network:", args[1:2], flush=True)
    raise OSError("no network in this test")
socket.socket.connect = refuse
socket.getaddrinfo = refuse
from artifacts_keyring_nofuss.deadline import Deadline
from artifacts_keyring_nofuss.feeds import parse_feed_url
from artifacts_keyring_nofuss.identities import TokenRequest
from artifacts_keyring_nofuss.identities.interactive import InteractiveSource
from artifacts_keyring_nofuss.settings import Settings
request = TokenRequest(parse_feed_url({URL!r}), None, Deadline(30), Settings.load())
result = InteractiveSource().get_token(request)
print(type(result).__name__)
print(result.reason)
print(result.fix)
print("msal imported:", "msal" in sys.modules)
"""
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONPATH": SRC},
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "Unavailable",
        "nobody signed in with `ak-nofuss login`, and no terminal to sign in on",
        f"run `ak-nofuss login {INDEX}`",
        "msal imported: False",
    ]
    assert done.stderr == ""
