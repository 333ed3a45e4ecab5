"""Hostile and broken servers: a forged discovery answer, a token service that answers garbage,
drips, stalls, resets. Each case runs the real `keyring get` for a signed-in az user and proves
three things:

- no credential goes where it must not: nothing reaches an attacker host, no credential reaches
  a host other than contoso's own services (https, default port), and when discovery was
  hostile neither az nor the token service is asked for anything;
- the lookup ends inside ARTIFACTS_KEYRING_NOFUSS_TIMEOUT (plus the cost of starting keyring);
- it ends in exactly one printable line of ours on stderr, nothing on stdout, exit 1, no
  traceback; or, where the server is merely flaky, in a token the feed accepts.

The session ends with the figures: `hostile servers: N cases, S faults survived, ...`.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from .scenarios import (
    PREFIX,
    HostileTally,
    feed_accepts,
    keyring,
    one_line_message,
    signed_in,
    spoken,
)
from .sim import world
from .sim.faults import StepSpec
from .sim.server import Record, Simulator
from .sim.world import ATTACKER_HOSTS

TIMEOUT_VAR = "ARTIFACTS_KEYRING_NOFUSS_TIMEOUT"
DEADLINE = 6  # seconds, the deadline every case runs under
STARTUP = 3.0  # what a keyring process may cost beyond the lookup's deadline
HANG_LIMIT = DEADLINE + 10  # a lookup still running then is killed, and the case fails

ORG = world.ORG_CONTOSO
TENANT = world.T_CONTOSO
FEED_PATH = r"^/contoso/_packaging/shared/"
EXCHANGE_PATH = r"/_apis/Token/SessionTokens"
BASIC = 'Basic realm="https://pkgsprodsu3.pkgs.visualstudio.com/"'
JSON_TYPE = "application/json; charset=utf-8"
ALWAYS = 5  # a persistent fault: more steps than any retry policy takes
LOGIN = "login.microsoftonline.com"
LOGIN_URI = f"https://{LOGIN}/{TENANT}"
# Where contoso's lookup may send a credential: https on the default port, these paths.
TRUSTED = {LOGIN: "/", world.VSSPS_HOST: "/contoso/", world.FEED_HOST: "/contoso/"}
NO_SIGN_IN = "without Azure DevOps sign-in headers"
NO_TOKEN = "without a usable token"
# A refusal whose message would retitle the terminal, clear it and fake a password prompt.
ESCAPES = json.dumps({"message": "TF400813: denied\x1b]0;pwned\x07\x1b[2J\x1b[31m\rPassword:"})

Arrange = Callable[[Simulator], None]


@dataclass(frozen=True)
class Case:
    id: str
    arrange: Arrange
    says: tuple[str, ...] = ()  # the line names one of these; empty: any clear line
    survives: bool = False  # merely flaky: the lookup must succeed
    hostile_discovery: bool = False  # neither az nor the token service may be asked
    deadline: bool = False  # only the deadline can end it: the line names it
    # Exchange POSTs the log may show: a POST the server may have acted on is never retried.
    max_exchanges: int | None = None


# --- what the server does ---------------------------------------------------------------------


def challenge(uri: str | bytes) -> Arrange:
    """The 401's Bearer challenge names `uri` (as written, quotes included) as its authority."""
    line = (
        b"Bearer authorization_uri=" + uri
        if isinstance(uri, bytes)
        else f"Bearer authorization_uri={uri}"
    )
    return discovery_headers({"WWW-Authenticate": [line, BASIC, "TFS-Federated"]})


def discovery_headers(
    headers: dict[str, str | bytes | list[str | bytes] | None], *, bare_bearer: bool = False
) -> Arrange:
    return lambda sim: sim.override_discovery(ORG, headers, bare_bearer=bare_bearer)


def endpoint(url: str | bytes) -> Arrange:
    return discovery_headers({"X-VSS-AuthorizationEndpoint": url})


def resource_tenant(value: str | bytes) -> Arrange:
    """A Bearer without authorization_uri, so that the tenant comes from this header alone."""
    return discovery_headers({"X-VSS-ResourceTenant": value}, bare_bearer=True)


def on_discovery(*steps: StepSpec) -> Arrange:
    return lambda sim: sim.fail(world.FEED_HOST, FEED_PATH, list(steps))


def on_exchange(*steps: StepSpec) -> Arrange:
    return lambda sim: sim.fail(world.VSSPS_HOST, EXCHANGE_PATH, list(steps))


def exchange_answers(body: object, content_type: str = JSON_TYPE) -> Arrange:
    """The token service answers 200 with this body (bytes or str as they are, else JSON)."""
    raw = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return on_exchange(*[(200, {"Content-Type": content_type}, raw)] * ALWAYS)


def genuine_session_token(sim: Simulator) -> str:
    """A session token contoso's feed accepts, minted the way a client would get one."""
    response = requests.post(
        f"https://{world.VSSPS_HOST}/contoso/_apis/Token/SessionTokens?api-version=5.0-preview.1",
        json={"scope": "vso.packaging", "displayName": "planted by the test"},
        headers={
            "Authorization": f"Bearer {sim.mint_user_token(world.ALICE)}",
            "X-TFS-FedAuthRedirect": "Suppress",
        },
        verify=str(sim.ca_pem),
        timeout=30,
    )
    response.raise_for_status()
    return str(response.json()["token"])


def garbage_valid_to(sim: Simulator) -> None:
    token = genuine_session_token(sim)
    exchange_answers({"token": token, "validTo": "the twelfth of never"})(sim)


# --- the cases --------------------------------------------------------------------------------


def refused(
    case_id: str,
    arrange: Arrange,
    *says: str,
    discovery: bool = False,
    deadline: bool = False,
    max_exchanges: int | None = None,
) -> Case:
    return Case(
        case_id,
        arrange,
        says=(TIMEOUT_VAR,) if deadline else says,
        hostile_discovery=discovery,
        deadline=deadline,
        max_exchanges=max_exchanges,
    )


def untrusted(case_id: str, arrange: Arrange) -> Case:
    """A discovery answer that points a token somewhere it must not go."""
    return refused(case_id, arrange, "not sending any token", discovery=True)


def not_a_token(case_id: str, body: object, content_type: str = JSON_TYPE) -> Case:
    """The token service answers 200 with this body; one POST, and no token handed out."""
    return refused(case_id, exchange_answers(body, content_type), NO_TOKEN, max_exchanges=1)


def survived(case_id: str, arrange: Arrange, max_exchanges: int | None = None) -> Case:
    return Case(case_id, arrange, survives=True, max_exchanges=max_exchanges)


CASES: list[Case] = [
    # The authority a Bearer challenge names.
    untrusted("uri-http", challenge(f"http://{LOGIN}/{TENANT}")),
    untrusted("uri-port", challenge(f"https://{LOGIN}:8443/{TENANT}")),
    untrusted("uri-userinfo", challenge(f"https://{LOGIN}@evil.example.com/{TENANT}")),
    untrusted("uri-query", challenge(f'"{LOGIN_URI}?domain_hint=evil.example.com"')),
    untrusted("uri-fragment", challenge(f"{LOGIN_URI}#evil")),
    untrusted("uri-deep-path", challenge(f"{LOGIN_URI}/oauth2/v2.0/authorize")),
    untrusted("uri-backslash", challenge(f"https://{LOGIN}\\@evil.example.com/{TENANT}")),
    untrusted("uri-untrusted-host", challenge(f"https://evil.example.com/{TENANT}")),
    untrusted("uri-lookalike-suffix", challenge(f"https://{LOGIN}.evil.example/{TENANT}")),
    untrusted("uri-lookalike-prefix", challenge(f"https://evil-{LOGIN}/{TENANT}")),
    untrusted("uri-punycode", challenge(f"https://xn--lgin-55d.microsoftonline.com/{TENANT}")),
    # A Cyrillic o (U+043E) in "login", sent as UTF-8 bytes.
    untrusted("uri-cyrillic", challenge(f"https://l\u043egin.microsoftonline.com/{TENANT}")),
    # Tenants that are neither a GUID nor a domain: they would reach az's command line.
    untrusted("tenant-option", challenge(f"https://{LOGIN}/-rf")),
    untrusted("tenant-dotdot", challenge(f"https://{LOGIN}/../x")),
    untrusted("tenant-space", challenge(f'"https://{LOGIN}/a b"')),
    untrusted("tenant-header-option", resource_tenant("-rf")),
    untrusted("tenant-header-binary", resource_tenant(b"\xc0\xaf\xff\xfe-rf")),
    untrusted(
        "tenant-mismatch",
        discovery_headers({"X-VSS-ResourceTenant": world.T_FABRIKAM}),
    ),
    # The token service (X-VSS-AuthorizationEndpoint).
    untrusted("endpoint-http", endpoint("http://vssps.dev.azure.com/contoso/")),
    untrusted("endpoint-port", endpoint("https://vssps.dev.azure.com:8443/contoso/")),
    untrusted(
        "endpoint-userinfo", endpoint("https://vssps.dev.azure.com@evil.example.com/contoso/")
    ),
    untrusted("endpoint-query", endpoint("https://vssps.dev.azure.com/contoso/?redirect=evil")),
    untrusted("endpoint-deep-path", endpoint("https://vssps.dev.azure.com/contoso/_apis/x/")),
    untrusted("endpoint-other-org", endpoint("https://vssps.dev.azure.com/fabrikam/")),
    untrusted("endpoint-other-org-legacy", endpoint("https://fabrikam.vssps.visualstudio.com/")),
    untrusted("endpoint-attacker-org", endpoint("https://attacker.vssps.visualstudio.com/")),
    untrusted("endpoint-lookalike-suffix", endpoint("https://vssps.dev.azure.com.evil.example/")),
    untrusted("endpoint-lookalike-prefix", endpoint("https://evilvssps.visualstudio.com/")),
    untrusted("endpoint-cyrillic", endpoint("https://vssps.dev.azure.c\u043em/contoso/")),
    untrusted("endpoint-binary", endpoint(b"https://vssps.dev.azure.com/contoso/\xff\xfe\x80")),
    # Answers that are not a sign-in challenge at all.
    refused(
        "discovery-401-bare",
        discovery_headers(
            {
                "WWW-Authenticate": None,
                "X-VSS-ResourceTenant": None,
                "X-VSS-AuthorizationEndpoint": None,
            }
        ),
        NO_SIGN_IN,
        discovery=True,
    ),
    refused(
        "discovery-200-page",
        on_discovery(*[(200, {"Content-Type": "text/html"}, "<html>Welcome</html>")] * ALWAYS),
        NO_SIGN_IN,
        discovery=True,
    ),
    refused("discovery-404", on_discovery(*[404] * ALWAYS), NO_SIGN_IN, discovery=True),
    refused(
        "discovery-302-attacker",
        on_discovery(
            *[(302, {"Location": "https://evil.example.com/contoso/_packaging/shared/"})] * ALWAYS
        ),
        "redirected",
        discovery=True,
    ),
    # Headers no HTTP client should have to swallow.
    refused(
        "discovery-huge-header",
        discovery_headers(
            {"WWW-Authenticate": f"Bearer authorization_uri={LOGIN_URI}, " + "x" * 100_000}
        ),
        world.FEED_HOST,
        discovery=True,
    ),
    refused(
        "discovery-many-headers",
        discovery_headers({"X-Padding": [f"padding {n}" for n in range(1000)]}),
        world.FEED_HOST,
        discovery=True,
    ),
    # A discovery that does not end, or only says "later".
    refused(
        "discovery-stall", on_discovery(*[("stall", 30)] * ALWAYS), discovery=True, deadline=True
    ),
    refused(
        "discovery-drip-headers",
        on_discovery(*[("drip", 1, "all")] * ALWAYS),
        discovery=True,
        deadline=True,
    ),
    refused(
        "discovery-429-retry-after-hour",
        on_discovery(*[(429, {"Retry-After": "3600"})] * ALWAYS),
        "429",
        TIMEOUT_VAR,
        discovery=True,
    ),
    refused("discovery-503-always", on_discovery(*[503] * ALWAYS), "503", discovery=True),
    # A Retry-After byte that Python calls a digit (superscript two) but cannot read as one.
    refused(
        "discovery-503-retry-after-superscript",
        on_discovery(*[(503, {"Retry-After": b"\xb2"})] * ALWAYS),
        "503",
        discovery=True,
    ),
    refused(
        "discovery-reset-always",
        on_discovery(*["reset"] * ALWAYS),
        world.FEED_HOST,
        discovery=True,
    ),
    # The token service answers 200, but not with a token.
    not_a_token("exchange-no-token", {"validTo": "2030-01-01T00:00:00Z"}),
    not_a_token("exchange-token-number", {"token": 12345}),
    not_a_token("exchange-token-list", {"token": ["a", "b"]}),
    not_a_token("exchange-token-null", {"token": None}),
    not_a_token("exchange-token-spaces", {"token": "abc def ghi"}),
    not_a_token("exchange-token-newline", {"token": "abc\ndef"}),
    not_a_token("exchange-token-1mb", {"token": "a" * 1_000_000}),
    not_a_token("exchange-not-json", "<html>Sign in</html>", "text/html"),
    not_a_token("exchange-nested-json", "[" * 100_000),
    not_a_token("exchange-10mb-body", b'{"pad": "' + b"x" * (10 << 20) + b'", "token": "abc"}'),
    # The token service refuses, in ways a browser would follow or a terminal would obey.
    refused(
        "exchange-302-attacker",
        on_exchange(*[(302, {"Location": "https://evil.example.com/_signin"})] * ALWAYS),
        "interactive sign-in",
        max_exchanges=1,
    ),
    refused(
        "exchange-401-terminal-escapes",
        on_exchange(*[(401, {"Content-Type": JSON_TYPE}, ESCAPES)] * ALWAYS),
        "refused the token",
        max_exchanges=1,
    ),
    refused(
        "exchange-500-terminal-escapes",
        on_exchange(*[(500, {"Content-Type": JSON_TYPE}, ESCAPES)] * ALWAYS),
        "500",
        max_exchanges=1,
    ),
    # The token service fails, slowly or at once; what may have been acted on is not re-sent.
    refused("exchange-500-always", on_exchange(*[500] * ALWAYS), "500", max_exchanges=1),
    refused(
        "exchange-503-retry-after-superscript",
        on_exchange(*[(503, {"Retry-After": b"\xb2"})] * ALWAYS),
        "503",
        max_exchanges=3,
    ),
    # Minting is harmless to repeat: a connection that drops is retried, within the deadline.
    refused(
        "exchange-reset-always",
        on_exchange(*["reset"] * ALWAYS),
        world.VSSPS_HOST,
        max_exchanges=3,
    ),
    refused(
        "exchange-429-retry-after-hour",
        on_exchange(*[(429, {"Retry-After": "3600"})] * ALWAYS),
        "429",
        TIMEOUT_VAR,
    ),
    # A stalled POST outlives its case and is never logged: any exchange seen is a retry.
    refused("exchange-stall", on_exchange(("stall", 30)), deadline=True, max_exchanges=0),
    refused("exchange-drip", on_exchange(("drip", 1)), deadline=True, max_exchanges=1),
    # Merely flaky: the lookup must get through.
    survived("discovery-503-then-ok", on_discovery(503)),
    survived("discovery-429-then-ok", on_discovery((429, {"Retry-After": "1"}))),
    survived("discovery-reset-then-ok", on_discovery("reset")),
    survived("discovery-slow-then-ok", on_discovery(("stall", 2))),
    survived("exchange-503-then-ok", on_exchange(503), max_exchanges=2),
    survived("exchange-429-then-ok", on_exchange((429, {"Retry-After": "1"})), max_exchanges=2),
    survived("exchange-valid-to-garbage", garbage_valid_to, max_exchanges=1),
]


# --- the checks -------------------------------------------------------------------------------


def leaks_in(records: Iterable[Record], case: Case) -> list[str]:
    """Every request that took a credential where it must not go, or went to an attacker."""
    found = []
    for r in records:
        where = f"{r.method} {r.scheme}://{r.host}:{r.port}{r.path}"
        prefix = TRUSTED.get(r.host)
        trusted = (
            prefix is not None
            and (r.scheme, r.port) == ("https", 443)
            and r.path.lower().startswith(prefix)
        )
        token_service = r.host == world.VSSPS_HOST or r.host.endswith(".vssps.visualstudio.com")
        if r.host in ATTACKER_HOSTS:
            found.append(f"{where} reached an attacker host (credential: {r.auth_scheme})")
        elif r.auth_scheme != "none" and not trusted:
            found.append(f"{where} carried a {r.auth_scheme} credential")
        elif case.hostile_discovery and token_service and r.auth_scheme != "none":
            found.append(f"{where} got a {r.auth_scheme} credential after a hostile discovery")
        if "secret_in_url" in r.extra:
            found.append(f"{where} carried a secret in its URL")
    return found


def secrets_in(sim: Simulator, texts: Iterable[str]) -> list[str]:
    known = [s for s in sim.issued_secrets() if len(s) >= 8]
    return [
        f"a secret ({Simulator.fingerprint(s)}) in what the user sees"
        for text in texts
        for s in known
        if s in text
    ]


def az_token_calls(calls: Path) -> list[str]:
    if not calls.exists():
        return []
    return [line for line in calls.read_text().splitlines() if "get-access-token" in line]


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES])
def test_hostile_server(
    case: Case,
    sim: Simulator,
    client_env: dict[str, str],
    tmp_path: Path,
    hostile_tally: HostileTally,
) -> None:
    hostile_tally.begin(case.id)
    env = signed_in(client_env)
    env[TIMEOUT_VAR] = str(DEADLINE)
    env["FAKE_AZ_CALLS"] = str(tmp_path / "az-calls")
    case.arrange(sim)
    first = len(sim.requests())
    started = time.monotonic()
    try:
        done: subprocess.CompletedProcess[str] | None = keyring(
            env, "get", world.SHARED_INDEX, "VssSessionToken", timeout=HANG_LIMIT
        )
    except subprocess.TimeoutExpired:
        done = None
    elapsed = time.monotonic() - started
    records = sim.requests()[first:]

    leaks = leaks_in(records, case)
    if done is not None:
        leaks += secrets_in(sim, [done.stderr] if case.survives else [done.stdout, done.stderr])
    hostile_tally.leaked(case.id, leaks)
    assert not leaks, f"a credential went where it must not: {leaks}"

    assert done is not None, f"the lookup was still running after {HANG_LIMIT} s"
    assert elapsed < DEADLINE + STARTUP, (
        f"took {elapsed:.1f} s with a {DEADLINE} s deadline: {done.stderr}"
    )
    if case.hostile_discovery:
        assert not az_token_calls(tmp_path / "az-calls"), "az ran on a hostile discovery"
    garbled = [line for line in done.stderr.splitlines() if not line.isprintable()]
    assert not garbled, f"the server's control characters reached stderr: {garbled}"
    exchanges = [r for r in records if r.kind == "exchange"]
    if case.max_exchanges is not None:
        assert len(exchanges) <= case.max_exchanges, (
            f"{len(exchanges)} exchange POSTs: {[r.fault for r in exchanges]}"
        )

    if case.survives:
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr
        assert not spoken(done.stderr), done.stderr
        token = done.stdout.strip()
        assert done.stdout == token + "\n"
        assert feed_accepts(sim, world.SHARED_INDEX, token) == 200
    else:
        assert (done.returncode, done.stdout) == (1, ""), done.stderr
        line = one_line_message(done.stderr)
        assert spoken(done.stderr) == [line], "more than our one line on stderr"
        assert line.startswith(PREFIX)
        if case.says:
            assert any(s in line for s in case.says), f"expected one of {case.says}: {line}"
        if case.deadline:
            assert re.search(rf"\b{DEADLINE}(\.0+)?\b", line), f"the deadline is not named: {line}"
    hostile_tally.ended(case.id, case.survives)
