"""doctor.py: how a report reads, and what it says about a token, without the network."""

from __future__ import annotations

import pytest

from artifacts_keyring_nofuss.doctor import FAIL, INFO, OK, WARN, Report, _show, render
from artifacts_keyring_nofuss.trace import (
    APPLIED,
    FAILED,
    NOT_HERE,
    REFUSED,
    STOPPED,
    UNAVAILABLE,
    Step,
)

from .helpers import user_jwt

URL = "https://pkgs.dev.azure.com/contoso/_packaging/feed/pypi/simple/"


def _report() -> Report:
    report = Report(URL)
    report.add("url", OK, "organisation contoso, feed feed")
    report.add("uv", WARN, "UV_KEYRING_PROVIDER is unset", "ak-nofuss setup uv URL")
    report.add("source azure_cli", INFO, "does not apply: az is not installed")
    report.add("identity", FAIL, "no identity source produced a token", "run `az login`")
    return report


# ---------------------------------------------------------------- render


def test_render_without_colour() -> None:
    text = render(_report(), colour=False)
    assert "\033" not in text
    assert text.splitlines() == [
        f"ak-nofuss doctor {URL}",
        "  ok    url               organisation contoso, feed feed",
        "  warn  uv                UV_KEYRING_PROVIDER is unset",
        "                          -> ak-nofuss setup uv URL",
        "        source azure_cli  does not apply: az is not installed",
        "  FAIL  identity          no identity source produced a token",
        "                          -> run `az login`",
        "the feed did not accept a credential: fix the first FAIL above",
    ]


def test_render_with_colour_marks_each_status() -> None:
    text = render(_report(), colour=True)
    assert "\033[32mok  \033[0m" in text
    assert "\033[33mwarn\033[0m" in text
    assert "\033[31mFAIL\033[0m" in text
    assert "\033[2m    \033[0m" in text
    assert "-> run `az login`" in text


def test_render_an_accepted_report() -> None:
    report = Report(URL)
    report.add("feed", OK, f"{URL} accepted the credential (200)")
    report.accepted = True
    text = render(report, colour=False)
    assert "->" not in text
    assert text.endswith("the feed accepted the credential: pip, uv and twine will get it\n")


def test_render_an_empty_report() -> None:
    assert render(Report(URL), colour=False).splitlines() == [
        f"ak-nofuss doctor {URL}",
        "the feed did not accept a credential: fix the first FAIL above",
    ]


def test_a_detail_never_shows_a_token_or_drives_the_terminal() -> None:
    report = Report(URL)
    secret = user_jwt()
    report.add("exchange", FAIL, f"refused {secret}\n\x1b[2Jfake prompt:")
    text = render(report, colour=False)
    assert secret not in text
    assert "\x1b" not in text
    assert len(text.splitlines()) == 3


# ---------------------------------------------------------------- the trace, as report lines


def _shown(step: Step, failed: bool) -> list[tuple[str, str, str, str | None]]:
    report = Report(URL)
    _show(report, step, failed)
    return [(s.name, s.status, s.detail, s.fix) for s in report.steps]


def test_a_source_that_answered_is_ok() -> None:
    step = Step("source", "azure_cli", APPLIED, "a user token for alice, expires soon")
    assert _shown(step, failed=False) == [
        ("source azure_cli", OK, "a user token for alice, expires soon", None)
    ]


@pytest.mark.parametrize(("outcome", "word"), [(FAILED, "failed"), (REFUSED, "refused")])
def test_a_failure_is_a_fail_only_when_nothing_answered(outcome: str, word: str) -> None:
    step = Step("source", "azure_cli", outcome, "az refused", "run `az login`")
    assert _shown(step, failed=True) == [
        ("source azure_cli", FAIL, f"{word}: az refused", "run `az login`")
    ]
    assert _shown(step, failed=False)[0][1] == WARN


def test_a_source_that_is_not_here_is_information() -> None:
    step = Step("source", "codespaces", NOT_HERE, "no ~/ado-auth-helper")
    assert _shown(step, failed=True) == [
        ("source codespaces", INFO, "does not apply: no ~/ado-auth-helper", None)
    ]
    hinted = Step("source", "interactive", NOT_HERE, "nobody signed in", "run `ak-nofuss login`")
    assert _shown(hinted, failed=True)[0][2] == (
        "does not apply: nobody signed in; run `ak-nofuss login`"
    )


def test_a_source_set_up_here_that_cannot_serve_warns_when_nothing_answered() -> None:
    step = Step("source", "azure_cli", UNAVAILABLE, "not signed in", "run `az login`")
    assert _shown(step, failed=True)[0][1:] == (
        WARN,
        "does not apply: not signed in",
        "run `az login`",
    )
    assert _shown(step, failed=False)[0][1] == INFO


def test_a_stop_and_a_failed_discovery_fail_with_their_fix() -> None:
    stop = Step("source", "token", STOPPED, "the token expired", "put a fresh one there")
    assert _shown(stop, failed=True) == [
        ("source token", FAIL, "failed: the token expired", "put a fresh one there")
    ]
    discovery = Step("discovery", "discovery", FAILED, "no sign-in headers", None)
    assert _shown(discovery, failed=True) == [
        ("discovery", FAIL, "no sign-in headers", "check the URL, the network and the proxy")
    ]


def test_cache_and_exchange_steps_keep_their_names() -> None:
    assert _shown(Step("cache", "azure_cli", APPLIED, "session token"), False)[0][:2] == (
        "cache",
        OK,
    )
    assert _shown(Step("exchange", "azure_cli", APPLIED, "session token"), False)[0][:2] == (
        "exchange",
        OK,
    )


# --- the network line: the proxy the lookup uses, never its password ----------------------------


@pytest.mark.parametrize(
    ("env", "shown"),
    [
        # A password with `;` or `,` (both valid in a URL's userinfo), no scheme: requests and
        # curl take it as it is, and the rule for `..._PROXY=` in text stops at those.
        (
            {"https_proxy": "proxyuser:pw;rd,x@proxy.example:8080"},
            "proxy https_proxy=proxyuser:<redacted>@proxy.example:8080",
        ),
        (
            {"ALL_PROXY": "socks5h://u:pw'x@proxy.example:1080"},
            "proxy ALL_PROXY=socks5h://u:<redacted>@proxy.example:1080",
        ),
        # Both spellings: the lower-case one is what the lookup uses (as requests and curl do).
        (
            {"HTTPS_PROXY": "http://upper.example:3128", "https_proxy": "http://lower.example:3128"},
            "proxy https_proxy=http://lower.example:3128",
        ),
        (
            {"HTTPS_PROXY": "http://u:pw@proxy.example:3128", "NO_PROXY": ".dev.azure.com"},
            "no proxy (NO_PROXY names pkgs.dev.azure.com)",
        ),
    ],
    ids=["semicolon and comma", "quote", "lower case first", "no_proxy"],
)
def test_the_network_line_names_the_proxy_in_use_without_its_password(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], shown: str
) -> None:
    from artifacts_keyring_nofuss import doctor
    from artifacts_keyring_nofuss.feeds import parse_feed_url

    for name in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    feed = parse_feed_url(URL)
    assert feed is not None
    report = Report(URL)
    doctor._network_settings(report, feed)
    assert report.steps[-1].detail == f"{shown}, the system's trust store"
    assert not [s for s in ("pw;rd", "pw'x", "pw@") if s in render(report, colour=False)]
