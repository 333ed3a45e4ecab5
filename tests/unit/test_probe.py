"""The warm path's one HEAD request, against a real local HTTPS server with a throwaway CA."""

from __future__ import annotations

import base64
import os
import socket
import threading
import time
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
import trustme

from artifacts_keyring_nofuss import __version__, probe
from artifacts_keyring_nofuss.deadline import Deadline
from artifacts_keyring_nofuss.feeds import Feed

from .tls import ConnectProxy, Handler, TLSServer, serving


def still_accepted(feed: Feed, token: str, seconds: float = 10) -> bool | None:
    """The warm path's check, with the environment as it is now."""
    return probe.still_accepted(feed, token, dict(os.environ), Deadline(seconds))


TOKEN = "session.token-value_123"
PATH = "/contoso/_packaging/feed/pypi/simple/"


def _feed(port: int, host: str = "localhost") -> Feed:
    netloc = f"{host}:{port}"
    return Feed(
        url=f"https://{netloc}{PATH}",
        host=netloc,
        org="contoso",
        project=None,
        feed="feed",
        view=None,
        write=False,
        org_in_path=True,
    )


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def _module_server(ca: trustme.CA) -> Iterator[TLSServer]:
    with serving(ca.issue_cert("localhost", "127.0.0.1")) as server:
        yield server


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture
def server(_module_server: TLSServer, ca_file: Path, monkeypatch: pytest.MonkeyPatch) -> TLSServer:
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR"):
        monkeypatch.delenv(name, raising=False)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca_file))
    monkeypatch.setattr(probe, "BUDGET", 2.0)
    _module_server.seen.clear()
    _module_server.status = 200
    _module_server.headers = []
    _module_server.mode = "answer"
    _module_server.handshakes_failed = 0
    return _module_server


# ---------------------------------------------------------------- answers


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (200, True),
        (204, True),
        (403, True),  # not a refusal of the token: a permission on this feed
        (404, True),
        (405, True),  # HEAD not allowed: the token still got through
        (401, False),
        (203, False),  # a sign-in page served as "non-authoritative"
    ],
)
def test_what_an_answer_means(server: TLSServer, status: int, expected: bool) -> None:
    server.status = status
    assert still_accepted(_feed(server.port), TOKEN) is expected
    assert len(server.seen) == 1


@pytest.mark.parametrize("status", [500, 502, 503])
def test_a_server_error_is_not_a_refusal(server: TLSServer, status: int) -> None:
    server.status = status
    assert still_accepted(_feed(server.port), TOKEN) is not False


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_a_refusal_and_is_not_followed(
    server: TLSServer, ca: trustme.CA, status: int
) -> None:
    with serving(ca.issue_cert("localhost", "127.0.0.1")) as elsewhere:
        server.status = status
        server.headers = [
            ("Location", f"https://localhost:{elsewhere.port}/_signin?realm=x"),
        ]
        assert still_accepted(_feed(server.port), TOKEN) is False
        time.sleep(0.05)
        assert elsewhere.seen == []
        assert elsewhere.handshakes_failed == 0
    assert len(server.seen) == 1


def test_a_redirect_to_itself_is_still_not_followed(server: TLSServer) -> None:
    server.status = 302
    server.headers = [("Location", PATH)]
    assert still_accepted(_feed(server.port), TOKEN) is False
    assert len(server.seen) == 1


# ---------------------------------------------------------------- the request


def test_the_request(server: TLSServer) -> None:
    assert still_accepted(_feed(server.port), TOKEN) is True
    [seen] = server.seen
    assert seen.method == "HEAD"
    assert seen.path == PATH
    expected = base64.b64encode(f"VssSessionToken:{TOKEN}".encode()).decode("ascii")
    assert seen.headers["authorization"] == f"Basic {expected}"
    assert seen.headers["x-tfs-fedauthredirect"] == "Suppress"
    assert seen.headers["user-agent"].startswith("artifacts-keyring-nofuss/")
    assert seen.headers["user-agent"] == f"artifacts-keyring-nofuss/{__version__}"
    assert seen.headers["host"] == f"localhost:{server.port}"


def test_the_request_goes_to_the_feed_index(server: TLSServer) -> None:
    feed = Feed(
        url=f"https://localhost:{server.port}/Contoso/My%20Proj/_packaging/f@Release/pypi/upload/",
        host=f"localhost:{server.port}",
        org="contoso",
        project="My Proj",
        feed="f",
        view="Release",
        write=True,
        org_in_path=True,
    )
    assert still_accepted(feed, TOKEN) is True
    assert [s.path for s in server.seen] == ["/contoso/My%20Proj/_packaging/f@Release/pypi/simple/"]


def test_the_token_is_encoded_as_basic_auth_whatever_it_holds(server: TLSServer) -> None:
    token = "a:b:c/+=~"
    still_accepted(_feed(server.port), token)
    value = server.seen[0].headers["authorization"]
    assert value.startswith("Basic ")
    assert base64.b64decode(value[6:]).decode() == "VssSessionToken:a:b:c/+=~"


# ---------------------------------------------------------------- could not tell


def test_connection_refused_is_could_not_tell(server: TLSServer) -> None:
    assert still_accepted(_feed(_closed_port()), TOKEN) is None


def test_a_silent_server_is_could_not_tell(
    server: TLSServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(probe, "BUDGET", 0.3)
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never answers
        start = time.monotonic()
        assert still_accepted(_feed(silent.getsockname()[1]), TOKEN) is None
        assert time.monotonic() - start < 3


@pytest.mark.parametrize("mode", ["garbage", "hang up"])
def test_a_broken_answer_is_could_not_tell(server: TLSServer, mode: str) -> None:
    server.mode = mode
    assert still_accepted(_feed(server.port), TOKEN) is None


def test_a_ca_that_is_not_trusted_is_could_not_tell(
    server: TLSServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stranger = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(stranger))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(stranger))
    assert still_accepted(_feed(server.port), TOKEN) is None
    assert server.seen == []  # the token never left


def test_the_system_store_does_not_trust_a_throwaway_ca(
    server: TLSServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    assert still_accepted(_feed(server.port), TOKEN) is None
    assert server.seen == []


def test_a_certificate_for_another_host_is_could_not_tell(
    ca: trustme.CA, ca_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca_file))
    with serving(ca.issue_cert("pkgs.dev.azure.com")) as wrong:
        assert still_accepted(_feed(wrong.port), TOKEN) is None
        assert wrong.seen == []


def test_a_plain_http_server_is_could_not_tell(server: TLSServer) -> None:
    plain = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    plain.seen = []  # type: ignore[attr-defined]
    plain.status, plain.headers, plain.mode = 200, [], "answer"  # type: ignore[attr-defined]
    thread = threading.Thread(target=plain.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        assert still_accepted(_feed(plain.server_address[1]), TOKEN) is None
        assert plain.seen == []  # type: ignore[attr-defined]
    finally:
        plain.shutdown()
        plain.server_close()


@pytest.mark.parametrize("variable", ["CURL_CA_BUNDLE", "SSL_CERT_FILE"])
def test_other_ways_to_name_the_ca_are_honoured(
    server: TLSServer, ca_file: Path, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    monkeypatch.setenv(variable, str(ca_file))
    assert still_accepted(_feed(server.port), TOKEN) is True


# ---------------------------------------------------------------- proxies


@pytest.fixture
def proxy() -> Iterator[ConnectProxy]:
    running = ConnectProxy()
    yield running
    running.close()


@pytest.mark.parametrize("variable", ["HTTPS_PROXY", "https_proxy"])
def test_a_proxy_is_used(
    server: TLSServer,
    proxy: ConnectProxy,
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
) -> None:
    monkeypatch.setenv(variable, f"http://127.0.0.1:{proxy.port}")
    assert still_accepted(_feed(server.port), TOKEN) is True
    assert len(proxy.heads) == 1
    first_line = proxy.heads[0].split(b"\r\n")[0]
    assert first_line.startswith(f"CONNECT localhost:{server.port} HTTP/1.".encode())
    assert TOKEN.encode() not in proxy.heads[0]
    assert b"authorization:" not in proxy.heads[0].lower()  # only inside the tunnel
    assert len(server.seen) == 1


@pytest.mark.parametrize("variable", ["HTTPS_PROXY", "https_proxy"])
def test_a_proxy_that_is_not_there_is_could_not_tell(
    server: TLSServer, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, f"http://127.0.0.1:{_closed_port()}")
    assert still_accepted(_feed(server.port), TOKEN) is None
    assert server.seen == []


@pytest.mark.parametrize("variable", ["ALL_PROXY", "all_proxy"])
def test_all_proxy_is_honoured_as_the_cold_path_honours_it(
    server: TLSServer, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    """requests (the cold path: discovery, exchange) sends https through ALL_PROXY; the warm
    path's probe must not go round the proxy the user configured."""
    closed = f"http://127.0.0.1:{_closed_port()}"
    monkeypatch.setenv(variable, closed)
    url = _feed(server.port).index_url
    assert requests.utils.select_proxy(url, requests.utils.get_environ_proxies(url)) == closed
    assert still_accepted(_feed(server.port), TOKEN) is None
    assert server.seen == []


@pytest.mark.parametrize("no_proxy", ["localhost", "*", "127.0.0.1,localhost"])
def test_no_proxy_is_honoured(
    server: TLSServer, monkeypatch: pytest.MonkeyPatch, no_proxy: str
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.setenv("NO_PROXY", no_proxy)
    assert still_accepted(_feed(server.port), TOKEN) is True


def test_a_plain_http_proxy_variable_is_not_used_for_https(
    server: TLSServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{_closed_port()}")
    assert still_accepted(_feed(server.port), TOKEN) is True


# ---------------------------------------------------------------- every wait inside the deadline


def test_a_dripping_server_holds_the_check_no_longer_than_its_budget(
    server: TLSServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(probe, "BUDGET", 1.0)
    server.mode = "drip"
    start = time.monotonic()
    assert still_accepted(_feed(server.port), TOKEN) is None
    assert time.monotonic() - start < 2.5


def test_a_dripping_server_holds_the_check_no_longer_than_the_lookup_has_left(
    server: TLSServer,
) -> None:
    server.mode = "drip"
    start = time.monotonic()
    assert still_accepted(_feed(server.port), TOKEN, seconds=1.0) is None
    assert time.monotonic() - start < 2.5


def test_a_declared_host_is_never_sent_a_session_token(server: TLSServer) -> None:
    declared = _feed(server.port)._replace(extra=True)
    assert still_accepted(declared, TOKEN) is None
    assert server.seen == []


def test_netrc_adds_nothing(
    server: TLSServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    netrc = home / ".netrc"
    netrc.write_text("default login intruder password netrc-secret\n", encoding="utf-8")
    netrc.chmod(0o600)
    monkeypatch.setenv("HOME", str(home))
    assert still_accepted(_feed(server.port), TOKEN) is True
    (seen,) = server.seen
    assert (
        base64.b64decode(seen.headers["authorization"][6:]) == f"VssSessionToken:{TOKEN}".encode()
    )
