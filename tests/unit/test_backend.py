from __future__ import annotations

import uuid
from typing import ClassVar

import keyring.backend
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from keyring.backends.chainer import ChainerBackend
from keyring.credentials import Credential

from artifacts_keyring_nofuss.backend import AzureArtifactsBackend
from artifacts_keyring_nofuss.feeds import parse_feed_url

FOREIGN = [
    "https://pypi.org/simple/",
    "https://upload.pypi.org/legacy/",
    "pypi.org",
    "https://test.pypi.org/simple",
    "poetry-repository-x",
    "poetry-repository-azure",
    "python-poetry-check",
    "pdm-foo",
    "pdm-pypi",
    "https://evilpkgs.visualstudio.com/_packaging/f/pypi/simple/",
    "https://pkgs.dev.azure.com.evil.com/contoso/_packaging/f/pypi/simple/",
    "http://pkgs.dev.azure.com/contoso/_packaging/f/pypi/simple/",
    "pkgs.dev.azure.com",
    "https://pkgs.dev.azure.com",
    "https://pkgs.dev.azure.com/contoso",
    "https://ads.example.com/tfs/Default/_packaging/f/pypi/simple/",
    "",
    " ",
    "\x00",
    "x" * 1_000_000,
]
USERNAMES: list[object] = [
    None,
    "",
    "__token__",
    "VssSessionToken",
    "a@b.c",
    "\x00",
    "x" * 10_000,
    5,
]


@pytest.fixture
def backend() -> AzureArtifactsBackend:
    return AzureArtifactsBackend()


def test_priority_is_ahead_of_os_keychains_inside_the_chainer() -> None:
    assert AzureArtifactsBackend.priority == 9.9
    assert 5 < AzureArtifactsBackend.priority < 10


@pytest.mark.parametrize("service", FOREIGN, ids=lambda s: repr(s)[:40])
@pytest.mark.parametrize("username", USERNAMES, ids=lambda u: repr(u)[:20])
def test_foreign_services_get_nothing(
    backend: AzureArtifactsBackend,
    capsys: pytest.CaptureFixture[str],
    service: str,
    username: str,
) -> None:
    assert backend.get_credential(service, username) is None
    assert backend.get_password(service, username) is None
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == ""


@pytest.mark.parametrize(
    "service",
    [
        None,
        b"https://pkgs.dev.azure.com/contoso/_packaging/f/pypi/simple/",
        42,
        1.5,
        [],
        {},
        object(),
    ],
    ids=repr,
)
def test_odd_input_never_raises(backend: AzureArtifactsBackend, service: object) -> None:
    assert backend.get_credential(service, None) is None  # type: ignore[arg-type]
    assert backend.get_password(service, "u") is None  # type: ignore[arg-type]


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=200)
@given(service=st.text(), username=st.one_of(st.none(), st.text()))
def test_arbitrary_text_never_raises_and_never_answers(
    backend: AzureArtifactsBackend, service: str, username: str | None
) -> None:
    assume(parse_feed_url(service) is None)  # an Azure URL would go to the network
    assert backend.get_credential(service, username) is None
    assert backend.get_password(service, username or "") is None


@pytest.mark.parametrize("service", ["https://pypi.org/simple/", "poetry-repository-x"])
def test_set_and_delete_are_not_implemented(backend: AzureArtifactsBackend, service: str) -> None:
    with pytest.raises(NotImplementedError):
        backend.set_password(service, "u", "p")
    with pytest.raises(NotImplementedError):
        backend.delete_password(service, "u")


def test_set_for_an_azure_url_is_not_implemented_either(backend: AzureArtifactsBackend) -> None:
    url = "https://pkgs.dev.azure.com/contoso/_packaging/f/pypi/simple/"
    with pytest.raises(NotImplementedError):
        backend.set_password(url, "u", "p")
    with pytest.raises(NotImplementedError):
        backend.delete_password(url, "u")


class MemoryKeyring(keyring.backend.KeyringBackend):
    """A keyring that stores things, standing in for the OS keychain."""

    priority = 5

    def __init__(self) -> None:
        super().__init__()
        self.store: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.store.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.store[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        del self.store[(service, username)]


def _chainer(memory: MemoryKeyring) -> ChainerBackend:
    class Chain(ChainerBackend):
        # The real chainer's methods over a fixed list instead of every installed keyring.
        backends: ClassVar[list[keyring.backend.KeyringBackend]] = [
            AzureArtifactsBackend(),
            memory,
        ]

    return Chain()


def test_the_chainer_moves_on_to_a_keyring_that_stores() -> None:
    memory = MemoryKeyring()
    chain = _chainer(memory)
    chain.set_password("https://pypi.org/simple/", "alice", "pw")
    assert memory.store == {("https://pypi.org/simple/", "alice"): "pw"}
    assert chain.get_password("https://pypi.org/simple/", "alice") == "pw"
    credential = chain.get_credential("https://pypi.org/simple/", "alice")
    assert isinstance(credential, Credential)
    assert (credential.username, credential.password) == ("alice", "pw")
    chain.delete_password("https://pypi.org/simple/", "alice")
    assert memory.store == {}


def test_the_chainer_moves_on_for_foreign_services() -> None:
    memory = MemoryKeyring()
    memory.store[("poetry-repository-x", "bob")] = "secret"
    chain = _chainer(memory)
    assert chain.get_password("poetry-repository-x", "bob") == "secret"
    assert chain.get_password("python-poetry-check", "bob") is None


def test_keyring_discovers_this_backend_through_its_entry_point() -> None:
    found = [b for b in keyring.backend.get_all_keyring() if isinstance(b, AzureArtifactsBackend)]
    assert len(found) == 1
    chained = ChainerBackend.backends
    assert any(isinstance(b, AzureArtifactsBackend) for b in chained)
    ours = next(i for i, b in enumerate(chained) if isinstance(b, AzureArtifactsBackend))
    assert all(b.priority >= AzureArtifactsBackend.priority for b in chained[:ours])


def _unique_feed_url() -> str:
    return f"https://pkgs.dev.azure.com/org{uuid.uuid4().hex[:12]}/_packaging/f/pypi/simple/"


def test_a_failure_is_one_line_on_stderr_and_none(
    backend: AzureArtifactsBackend,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ARTIFACTS_KEYRING_NOFUSS_PROVIDER", "nope")
    url = _unique_feed_url()
    assert backend.get_credential(url, "__token__") is None
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("artifacts-keyring-nofuss: no credential for ")
    assert "'nope'" in lines[0]


def test_get_password_fails_the_same_way(
    backend: AzureArtifactsBackend,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ARTIFACTS_KEYRING_NOFUSS_PROVIDER", "nope")
    assert backend.get_password(_unique_feed_url(), "u") is None
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "unknown provider" in captured.err


def test_asked_twice_like_twine_and_pdm_do_the_line_is_said_once(
    backend: AzureArtifactsBackend,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # twine and pdm ask get_credential(url, None), then get_password(url, "__token__").
    monkeypatch.setenv("ARTIFACTS_KEYRING_NOFUSS_PROVIDER", "nope")
    url = _unique_feed_url()
    assert backend.get_credential(url, None) is None
    assert backend.get_password(url, "__token__") is None
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.splitlines()) == 1
    # Another feed is another failure, and says so.
    assert backend.get_password(_unique_feed_url(), "__token__") is None
    assert len(capsys.readouterr().err.splitlines()) == 1


def test_a_broken_keyringrc_does_not_escape(
    backend: AzureArtifactsBackend, capsys: pytest.CaptureFixture[str]
) -> None:
    from pathlib import Path

    from keyring.util import platform_

    path = Path(platform_.config_root()) / "keyringrc.cfg"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"[artifacts_keyring_nofuss\n\xff")
    assert backend.get_password(_unique_feed_url(), "u") is None
    captured = capsys.readouterr()
    assert captured.out == ""
    assert str(path) in captured.err
