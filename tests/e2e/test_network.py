"""The network as users have it: trust from the system store or a CA bundle, corporate proxies,
flaky services that retries ride out, and requests that must not be replayed."""

from __future__ import annotations

import pytest

from .connect_proxy import connect_proxy, proxy_url
from .scenarios import feed_accepts, keyring, one_line_message, signed_in
from .sim import world
from .sim.server import Simulator


def get(env: dict[str, str]) -> tuple[int, str, str]:
    done = keyring(env, "get", world.SHARED_INDEX, "VssSessionToken")
    return done.returncode, done.stdout.strip(), done.stderr


@pytest.mark.parametrize(
    "keep",
    ["SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"],
    ids=["system-store-via-SSL_CERT_FILE", "REQUESTS_CA_BUNDLE-only"],
)
def test_trust_comes_from_the_system_store_or_the_bundle_variable(
    sim: Simulator, client_env: dict[str, str], keep: str
) -> None:
    """What a TLS-inspecting corporate proxy needs: either its CA in the system's store (which
    OpenSSL finds through SSL_CERT_FILE here), or REQUESTS_CA_BUNDLE."""
    env = signed_in(client_env)
    for name in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"):
        if name != keep:
            env.pop(name)
    status, token, stderr = get(env)
    assert status == 0, stderr
    assert feed_accepts(sim, world.SHARED_INDEX, token) == 200


def test_an_untrusted_certificate_is_one_line_naming_the_fix(
    sim: Simulator, client_env: dict[str, str]
) -> None:
    env = signed_in(client_env)
    env.pop("SSL_CERT_FILE")
    env.pop("REQUESTS_CA_BUNDLE")
    status, token, stderr = get(env)
    assert (status, token) == (1, "")
    line = one_line_message(stderr)
    assert "TLS verification failed for pkgs.dev.azure.com" in line
    assert "REQUESTS_CA_BUNDLE" in line
    assert sim.count("exchange") == 0


def test_requests_go_through_the_https_proxy(sim: Simulator, client_env: dict[str, str]) -> None:
    env = signed_in(client_env)
    with connect_proxy() as proxy:
        env["HTTPS_PROXY"] = proxy_url(proxy)
        status, token, stderr = get(env)  # cold: discovery and exchange
        assert status == 0, stderr
        status, token_again, stderr = get(env)  # warm: the cached token's check
        assert status == 0, stderr
    assert token_again == token
    # (az's own tunnels to login.microsoftonline.com are az's business.)
    assert [t for t in proxy.tunnels if not t.startswith("login.")] == [
        "pkgs.dev.azure.com:443",
        "vssps.dev.azure.com:443",
        "pkgs.dev.azure.com:443",
    ]


def test_no_proxy_is_honoured(sim: Simulator, client_env: dict[str, str]) -> None:
    env = signed_in(client_env)
    with connect_proxy() as proxy:
        env["HTTPS_PROXY"] = proxy_url(proxy)
        env["NO_PROXY"] = ".azure.com"
        status, _, stderr = get(env)
        status_warm, _, stderr_warm = get(env)
    assert (status, status_warm) == (0, 0), stderr + stderr_warm
    assert [t for t in proxy.tunnels if "azure.com" in t] == []


def test_a_dead_proxy_fails_within_the_deadline_with_one_line(
    sim: Simulator, client_env: dict[str, str]
) -> None:
    env = signed_in(client_env)
    env["HTTPS_PROXY"] = "http://127.0.0.1:9"
    env["ARTIFACTS_KEYRING_NOFUSS_TIMEOUT"] = "8"
    status, token, stderr = get(env)
    assert (status, token) == (1, "")
    assert "HTTPS_PROXY" in one_line_message(stderr)


def test_a_flaky_exchange_that_says_503_is_retried(
    sim: Simulator, client_env: dict[str, str]
) -> None:
    env = signed_in(client_env)
    sim.fail("vssps.dev.azure.com", "SessionTokens", [(503, {"Retry-After": "1"})])
    status, token, stderr = get(env)
    assert status == 0, stderr
    assert [r.status for r in sim.requests(kind="exchange")] == [503, 200]
    assert feed_accepts(sim, world.SHARED_INDEX, token) == 200


def test_an_exchange_that_may_have_acted_is_not_replayed(
    sim: Simulator, client_env: dict[str, str]
) -> None:
    env = signed_in(client_env)
    sim.fail("vssps.dev.azure.com", "SessionTokens", [500, 500, 500])
    status, _, stderr = get(env)
    assert status == 1
    assert "500" in one_line_message(stderr)
    assert [r.status for r in sim.requests(kind="exchange")] == [500]


def test_the_user_agent_names_the_project(sim: Simulator, client_env: dict[str, str]) -> None:
    env = signed_in(client_env)
    status, _, stderr = get(env)
    assert status == 0, stderr
    ours = [r for r in sim.requests() if r.host in ("pkgs.dev.azure.com", "vssps.dev.azure.com")]
    assert ours
    assert all((r.user_agent or "").startswith("artifacts-keyring-nofuss/") for r in ours)
