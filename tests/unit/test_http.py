"""The one network layer, without a namespace: retries, Retry-After and the no-replay rule with a
scripted transport; trust, proxies, redirects and ~/.netrc against a real local TLS server."""

from __future__ import annotations

import base64
import email.utils
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trustme

from artifacts_keyring_nofuss import http
from artifacts_keyring_nofuss.deadline import Deadline, DeadlineExceeded
from artifacts_keyring_nofuss.http import Attempt, Http, NetworkError, Response

from .tls import ConnectProxy, TLSServer, serving

TOKEN_URL = "https://vssps.dev.azure.com/contoso/_apis/Token/SessionTokens"
FEED_URL = "https://pkgs.dev.azure.com/contoso/_packaging/feed/pypi/simple/"

Step = Response | Attempt | NetworkError


@dataclass
class Script:
    """A transport that answers from a list and records every attempt."""

    steps: list[Step]
    sent: list[tuple[str, str, dict[str, str], bytes | None]] = field(default_factory=list)
    delay: float = 0.0

    def __call__(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        data: bytes | None,
        deadline: Deadline,
    ) -> Response:
        self.sent.append((method, url, headers, data))
        if self.delay:
            time.sleep(self.delay)
        step = self.steps.pop(0)
        if isinstance(step, Exception):
            raise step
        return step


def _answer(status: int, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    return Response(status, headers, b"")


@pytest.fixture
def slept(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The backoff the layer asked for, recorded instead of slept."""
    pauses: list[float] = []
    monkeypatch.setattr(time, "sleep", pauses.append)
    return pauses


def _http(script: Script, seconds: float = 30) -> Http:
    return Http(Deadline(seconds), {}, send=script)


# --- retries ----------------------------------------------------------------------------------


def test_a_get_is_retried_on_busy_answers_then_answered(slept: list[float]) -> None:
    script = Script([_answer(503), _answer(502), _answer(401)])
    assert _http(script).get(FEED_URL).status == 401
    assert len(script.sent) == 3
    assert len(slept) == 2
    assert 0.25 <= slept[0] <= 0.75 and 0.5 <= slept[1] <= 1.5  # jittered, doubling


def test_the_last_busy_answer_is_returned_as_it_is(slept: list[float]) -> None:
    script = Script([_answer(503), _answer(503), _answer(503)])
    assert _http(script).get(FEED_URL).status == 503
    assert len(script.sent) == http.ATTEMPTS


@pytest.mark.parametrize("form", ["seconds", "date"])
def test_retry_after_is_honoured(slept: list[float], form: str) -> None:
    value = "2" if form == "seconds" else email.utils.formatdate(time.time() + 2, usegmt=True)
    script = Script([_answer(429, (("Retry-After", value),)), _answer(200)])
    assert _http(script).get(FEED_URL).status == 200
    assert len(slept) == 1
    assert 0.5 <= slept[0] <= 2.0


def test_a_retry_after_that_is_not_a_number_means_the_usual_backoff(slept: list[float]) -> None:
    script = Script([_answer(503, (("Retry-After", "\xb2"),)), _answer(200)])
    assert _http(script).get(FEED_URL).status == 200
    assert len(slept) == 1
    assert slept[0] <= http.BACKOFF * 1.5


def test_a_retry_after_beyond_the_deadline_returns_the_answer_now(slept: list[float]) -> None:
    script = Script([_answer(503, (("Retry-After", "120"),)), _answer(200)])
    assert _http(script, seconds=5).get(FEED_URL).status == 503
    assert slept == []
    assert len(script.sent) == 1


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("0", 0.0),
        ("7", 7.0),
        (" 3 ", 3.0),
        ("-1", None),
        ("1.5", None),
        ("soon", None),
        ("x" * 100, None),
        ("\xb2", None),  # a Latin-1 byte that str.isdigit() calls a digit; float() does not
        ("\u0661\u0662", None),  # digits, but not HTTP's
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # in the past: at once
        (None, None),
    ],
)
def test_retry_after_values(value: str | None, seconds: float | None) -> None:
    assert http.retry_after_seconds(value) == seconds


def test_a_connection_that_was_never_made_is_retried(slept: list[float]) -> None:
    script = Script([Attempt("cannot connect", sent=False), _answer(200)])
    assert _http(script).get(FEED_URL).status == 200
    assert len(script.sent) == 2


def test_a_failure_that_is_not_worth_retrying_is_raised_at_once(slept: list[float]) -> None:
    script = Script(
        [NetworkError("TLS verification failed", "point REQUESTS_CA_BUNDLE"), _answer(200)]
    )
    with pytest.raises(NetworkError, match="TLS verification failed"):
        _http(script).get(FEED_URL)
    assert len(script.sent) == 1


# --- the no-replay rule --------------------------------------------------------------------------


def test_a_post_the_server_may_have_seen_is_not_replayed(slept: list[float]) -> None:
    script = Script([Attempt("the connection broke", sent=True), _answer(200)])
    with pytest.raises(NetworkError, match="the connection broke"):
        _http(script).post_json(TOKEN_URL, {"scope": "vso.packaging"}, "bearer")
    assert len(script.sent) == 1


def test_a_post_that_was_never_sent_is_retried(slept: list[float]) -> None:
    script = Script([Attempt("cannot connect", sent=False), _answer(200)])
    assert _http(script).post_json(TOKEN_URL, {}, "bearer").status == 200
    assert len(script.sent) == 2


@pytest.mark.parametrize(
    ("status", "retried"), [(429, True), (503, True), (500, False), (502, False)]
)
def test_a_post_is_retried_only_when_the_server_said_it_did_nothing(
    slept: list[float], status: int, retried: bool
) -> None:
    script = Script([_answer(status), _answer(200)])
    got = _http(script).post_json(TOKEN_URL, {}, "bearer")
    assert (got.status == 200) is retried
    assert len(script.sent) == (2 if retried else 1)


def test_a_replay_safe_post_is_retried_after_a_dropped_connection(slept: list[float]) -> None:
    script = Script([Attempt("the connection broke", sent=True), _answer(503), _answer(200)])
    got = _http(script).post_json(TOKEN_URL, {}, "bearer", replay_safe=True)
    assert got.status == 200
    assert len(script.sent) == 3


def test_a_replay_safe_post_still_takes_a_server_error_as_an_answer(slept: list[float]) -> None:
    script = Script([_answer(500), _answer(200)])
    assert _http(script).post_json(TOKEN_URL, {}, "bearer", replay_safe=True).status == 500
    assert len(script.sent) == 1


# --- where a token may go ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example.com/_apis/Token/SessionTokens",
        "http://vssps.dev.azure.com/contoso/_apis/Token/SessionTokens",
        "https://vssps.dev.azure.com:8443/contoso/_apis/Token/SessionTokens",
        "https://user@vssps.dev.azure.com/contoso/_apis/Token/SessionTokens",
        "https://vssps.dev.azure.com.evil.example/contoso/",
    ],
)
def test_a_bearer_goes_only_to_the_token_service(url: str) -> None:
    script = Script([_answer(200)])
    with pytest.raises(NetworkError, match="refusing to send a token"):
        _http(script).post_json(url, {}, "bearer")
    assert script.sent == []


def test_a_bearer_in_a_get_goes_only_to_githubs_oidc_service() -> None:
    script = Script([_answer(200)])
    with pytest.raises(NetworkError, match="refusing to send a token"):
        _http(script).get(FEED_URL, bearer="request-token")
    assert script.sent == []


# --- the deadline --------------------------------------------------------------------------------


def test_a_slow_attempt_ends_with_the_deadline() -> None:
    script = Script([_answer(200)], delay=5)
    start = time.monotonic()
    with pytest.raises(DeadlineExceeded) as caught:
        _http(script, seconds=1).get(FEED_URL)
    assert time.monotonic() - start < 2
    assert caught.value.fix is not None and "ARTIFACTS_KEYRING_NOFUSS_TIMEOUT" in caught.value.fix


# --- NO_PROXY --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "port", "no_proxy", "bypassed"),
    [
        ("pkgs.dev.azure.com", None, "pkgs.dev.azure.com", True),
        ("pkgs.dev.azure.com", None, ".dev.azure.com", True),
        ("pkgs.dev.azure.com", None, "dev.azure.com", True),
        ("pkgs.dev.azure.com", None, "*", True),
        ("pkgs.dev.azure.com", None, "other.com, dev.azure.com", True),
        ("pkgs.dev.azure.com", None, "PKGS.DEV.AZURE.COM", True),
        ("pkgs.dev.azure.com", None, "pkgs.dev.azure.com:443", True),
        ("pkgs.dev.azure.com", None, "pkgs.dev.azure.com:8443", False),
        ("pkgs.dev.azure.com", None, "azure.com.evil", False),
        ("pkgs.dev.azure.com", None, "s.dev.azure.com", False),  # not on a dot boundary
        ("evilpkgs.dev.azure.com", None, "pkgs.dev.azure.com", False),
        ("pkgs.dev.azure.com", None, "", False),
        ("pkgs.dev.azure.com", None, ",,", False),
        ("pkgs.dev.azure.com", None, ".", False),
        ("localhost", 8443, "localhost:8443", True),
    ],
)
def test_no_proxy(host: str, port: int | None, no_proxy: str, bypassed: bool) -> None:
    assert http.bypassed(host, port, no_proxy) is bypassed


@pytest.mark.parametrize(
    ("env", "proxy"),
    [
        ({}, None),
        ({"HTTPS_PROXY": "http://p:3128"}, "http://p:3128"),
        ({"https_proxy": "http://lower:1", "HTTPS_PROXY": "http://upper:2"}, "http://lower:1"),
        ({"ALL_PROXY": "http://all:3"}, "http://all:3"),
        ({"HTTP_PROXY": "http://plain:4"}, None),  # not for https, as requests and curl do
        ({"HTTPS_PROXY": "http://p:3128", "NO_PROXY": "dev.azure.com"}, None),
        ({"HTTPS_PROXY": "  "}, None),
        ({"https_proxy": "user:pass@proxy:3128"}, "http://user:pass@proxy:3128"),
    ],
)
def test_the_proxy_for_an_https_url(env: dict[str, str], proxy: str | None) -> None:
    assert http.proxy_for(FEED_URL, env) == proxy


# --- requests, against a real server ----------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_env(ca: trustme.CA, tmp_path: Path) -> dict[str, str]:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return {"REQUESTS_CA_BUNDLE": str(path)}


@pytest.fixture
def server(ca: trustme.CA) -> Iterator[TLSServer]:
    with serving(ca.issue_cert("localhost", "127.0.0.1")) as running:
        yield running


def _get(env: dict[str, str], url: str) -> int:
    session = http.requests_session(env)
    try:
        return session.get(url, timeout=5).status_code
    finally:
        session.close()


def test_the_ca_bundle_is_trusted_and_nothing_else_is_needed(
    server: TLSServer, ca_env: dict[str, str]
) -> None:
    assert _get(ca_env, f"https://localhost:{server.port}/x") == 200


def test_without_the_bundle_a_private_ca_is_not_trusted(server: TLSServer) -> None:
    import requests

    with pytest.raises(requests.exceptions.SSLError):
        _get({}, f"https://localhost:{server.port}/x")
    assert server.seen == []


def test_a_missing_bundle_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(NetworkError) as caught:
        http.tls_context({"REQUESTS_CA_BUNDLE": str(tmp_path / "nope.pem")})
    assert "REQUESTS_CA_BUNDLE" in caught.value.what
    assert caught.value.fix is not None and "PEM" in caught.value.fix


def test_netrc_never_adds_credentials(
    server: TLSServer, ca_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    netrc = home / ".netrc"
    netrc.write_text(
        "machine localhost login intruder password netrc-secret\n"
        "default login other password other-secret\n",
        encoding="utf-8",
    )
    netrc.chmod(0o600)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("NETRC", str(netrc))
    assert _get(ca_env, f"https://localhost:{server.port}/x") == 200
    (seen,) = server.seen
    assert "authorization" not in seen.headers


def test_the_chosen_credential_is_the_only_one(
    server: TLSServer, ca_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / ".netrc").write_text("default login other password other-secret\n", encoding="utf-8")
    (home / ".netrc").chmod(0o600)
    monkeypatch.setenv("HOME", str(home))
    session = http.requests_session(ca_env)
    try:
        session.get(
            f"https://localhost:{server.port}/x",
            headers={"Authorization": "Bearer ours"},
            timeout=5,
        )
    finally:
        session.close()
    (seen,) = server.seen
    assert seen.headers["authorization"] == "Bearer ours"
    assert base64.b64encode(b"other:other-secret").decode() not in str(seen.headers)


def test_a_redirect_is_handed_back_not_followed(
    server: TLSServer, ca: trustme.CA, ca_env: dict[str, str]
) -> None:
    with serving(ca.issue_cert("localhost", "127.0.0.1")) as elsewhere:
        server.status = 302
        server.headers = [("Location", f"https://localhost:{elsewhere.port}/steal")]
        assert _get(ca_env, f"https://localhost:{server.port}/x") == 302
        assert elsewhere.seen == []


def test_the_proxy_is_used_and_no_proxy_respected(
    server: TLSServer, ca_env: dict[str, str]
) -> None:
    proxy = ConnectProxy()
    try:
        env = {**ca_env, "HTTPS_PROXY": f"http://127.0.0.1:{proxy.port}"}
        assert _get(env, f"https://localhost:{server.port}/x") == 200
        assert len(proxy.heads) == 1
        assert _get({**env, "NO_PROXY": "localhost"}, f"https://localhost:{server.port}/y") == 200
        assert len(proxy.heads) == 1  # the second went straight there
    finally:
        proxy.close()


def test_the_environment_read_is_the_one_given_not_os_environ(
    server: TLSServer, ca_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Settings are read once: a proxy set in os.environ later does not change a session made
    from the settings."""
    session = http.requests_session(ca_env)
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")  # closed: would fail if used
    try:
        assert session.get(f"https://localhost:{server.port}/x", timeout=5).status_code == 200
    finally:
        session.close()
    assert "HTTPS_PROXY" in os.environ
