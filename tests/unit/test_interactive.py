"""identities/interactive.py: with nobody signed in and no way to ask, it says which command
signs in, at once and without the network."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from artifacts_keyring_nofuss import signin
from artifacts_keyring_nofuss.deadline import Deadline
from artifacts_keyring_nofuss.identities import TokenRequest, Unavailable
from artifacts_keyring_nofuss.identities.interactive import InteractiveSource

from .helpers import TENANT, USER_OID, feed

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


def test_cache_identity_is_who_signed_in() -> None:
    source = InteractiveSource()
    assert source.cache_identity() is None
    signin.save_record(
        signin.Record(
            home_account_id=f"{USER_OID}.{TENANT}",
            username="alice@contoso.com",
            tenant=TENANT,
            authority=f"https://login.microsoftonline.com/{TENANT}",
        )
    )
    assert source.cache_identity() == f"interactive:{USER_OID}.{TENANT}"


def test_it_prompts_and_needs_discovery() -> None:
    source = InteractiveSource()
    assert source.prompts is True
    assert source.needs_discovery is True


@pytest.mark.parametrize("value", ["true", "TRUE", "1", "yes", " on "])
def test_prompts_off_and_nobody_signed_in(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    offline: list[object],
    value: str,
) -> None:
    monkeypatch.setenv("ARTIFACTS_KEYRING_NONINTERACTIVE_MODE", value)
    request = TokenRequest(feed=feed(URL), tenant=TENANT, deadline=Deadline(30))
    result = InteractiveSource().get_token(request)
    assert isinstance(result, Unavailable)
    assert result.reason == (
        "nobody signed in with `ak-nofuss login`; prompts are off "
        f"(ARTIFACTS_KEYRING_NONINTERACTIVE_MODE): run `ak-nofuss login {INDEX}`"
    )
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
request = TokenRequest(feed=parse_feed_url({URL!r}), tenant=None, deadline=Deadline(30))
result = InteractiveSource().get_token(request)
print(type(result).__name__)
print(result.reason)
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
        "nobody signed in with `ak-nofuss login`, and no terminal to sign in on: "
        f"run `ak-nofuss login {INDEX}`",
        "msal imported: False",
    ]
    assert done.stderr == ""
