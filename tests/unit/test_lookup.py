"""lookup.credential, exercised without any network: every path here fails before or at the
first connection (a bad setting, or a proxy on a closed local port)."""

from __future__ import annotations

import socket
import uuid

import pytest

from artifacts_keyring_nofuss import lookup
from artifacts_keyring_nofuss.errors import NofussError
from artifacts_keyring_nofuss.feeds import Feed

from .helpers import feed


def _fresh_feed(kind: str = "simple") -> Feed:
    # lookup keeps a per-process memory of failures: every test gets an organisation of its own.
    org = "org" + uuid.uuid4().hex[:12]
    return feed(f"https://pkgs.dev.azure.com/{org}/_packaging/feed/pypi/{kind}/")


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def dead_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every request goes to a local proxy port where nothing listens: refused at once."""
    proxy = f"http://127.0.0.1:{_closed_port()}"
    for name in ("HTTPS_PROXY", "https_proxy"):
        monkeypatch.setenv(name, proxy)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)


def test_an_unknown_provider_is_reported_with_the_feed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARTIFACTS_KEYRING_NOFUSS_PROVIDER", "nope")
    target = _fresh_feed()
    with pytest.raises(NofussError) as caught:
        lookup.credential(target)
    message = str(caught.value)
    assert message.startswith(f"no credential for {target.label}: ")
    assert "'nope'" in message
    assert "ARTIFACTS_KEYRING_NOFUSS_PROVIDER" in message
    assert "azure_cli" in message


def test_a_failure_is_remembered_for_the_same_feed_and_scope(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ARTIFACTS_KEYRING_NOFUSS_PROVIDER", "nope")
    target = _fresh_feed()
    with pytest.raises(NofussError) as first:
        lookup.credential(target)
    monkeypatch.setenv("ARTIFACTS_KEYRING_NOFUSS_PROVIDER", "still-wrong")
    with pytest.raises(NofussError) as second:
        lookup.credential(target)
    assert str(second.value) == str(first.value)  # one failure, not one per call
    assert "still-wrong" not in str(second.value)


def test_a_remembered_failure_is_not_wrapped_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARTIFACTS_KEYRING_NOFUSS_PROVIDER", "nope")
    target = _fresh_feed()
    for _ in range(3):
        with pytest.raises(NofussError) as caught:
            lookup.credential(target)
        assert str(caught.value).count("no credential for") == 1


def test_a_failure_for_reading_does_not_block_publishing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARTIFACTS_KEYRING_NOFUSS_PROVIDER", "nope")
    read = _fresh_feed("simple")
    with pytest.raises(NofussError):
        lookup.credential(read)
    upload = Feed(
        url=read.url.replace("/simple/", "/upload/"),
        host=read.host,
        org=read.org,
        project=None,
        feed=read.feed,
        view=None,
        write=True,
    )
    monkeypatch.setenv("ARTIFACTS_KEYRING_NOFUSS_PROVIDER", "other")
    with pytest.raises(NofussError, match="'other'"):
        lookup.credential(upload)


@pytest.mark.usefixtures("dead_proxy")
def test_an_unreachable_network_is_a_clear_message() -> None:
    target = _fresh_feed()
    with pytest.raises(NofussError) as caught:
        lookup.credential(target)
    message = str(caught.value)
    assert message.startswith(f"no credential for {target.label}: ")
    assert "pkgs.dev.azure.com" in message
    assert "HTTPS_PROXY" in message
