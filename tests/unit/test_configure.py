"""`ak-nofuss setup ... --write`: the user's files keep everything that is not ours."""

from __future__ import annotations

import configparser
from pathlib import Path

import pytest

from artifacts_keyring_nofuss import configure
from artifacts_keyring_nofuss.cli import Failed
from artifacts_keyring_nofuss.feeds import parse_feed_url

URL = "https://pkgs.dev.azure.com/contoso/_packaging/shared/pypi/simple/"
FEED = parse_feed_url(URL)
assert FEED is not None
PIP = configure.PLANS["pip"](FEED, "contoso-shared").text
TWINE = configure.PLANS["twine"](FEED, "contoso-shared").text
WHERE = Path("/home/someone/.config/pip/pip.conf")


def _read(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(text)
    return parser


def test_an_empty_pip_conf_gets_the_snippet() -> None:
    after = configure._merge_ini("", PIP, WHERE)
    parsed = _read(after)
    assert parsed.get("global", "index-url") == (
        "https://VssSessionToken@pkgs.dev.azure.com/contoso/_packaging/shared/pypi/simple/"
    )
    assert parsed.get("global", "keyring-provider") == "subprocess"


def test_comments_other_keys_their_case_and_other_sections_are_kept() -> None:
    before = (
        "# my pip settings, keep me\n"
        "[global]\n"
        "Timeout = 60\n"
        "; the old index\n"
        "index-url = https://pypi.org/simple/\n"
        "\n"
        "[install]\n"
        "user = false\n"
    )
    after = configure._merge_ini(before, PIP, WHERE)
    assert after.startswith("# my pip settings, keep me\n[global]\nTimeout = 60\n; the old index\n")
    assert "https://pypi.org/simple/" not in after  # replaced where it stood
    assert after.index("index-url = https://VssSessionToken@") < after.index("[install]")
    assert "keyring-provider = subprocess" in after.split("[install]")[0]
    assert after.endswith("[install]\nuser = false\n")


def test_a_second_run_changes_nothing() -> None:
    once = configure._merge_ini("[global]\ntimeout = 60\n", PIP, WHERE)
    assert configure._merge_ini(once, PIP, WHERE) == once


def test_a_multi_line_value_is_replaced_whole() -> None:
    before = "[global]\nindex-url =\n    https://a.example/simple/\n    \n[other]\nk = v\n"
    after = configure._merge_ini(before, PIP, WHERE)
    assert "https://a.example" not in after
    assert _read(after).get("other", "k") == "v"


def test_pypirc_index_servers_are_appended_to_not_replaced() -> None:
    before = "[distutils]\nindex-servers =\n    pypi\n\n[pypi]\nusername = __token__\n"
    after = configure._merge_ini(before, TWINE, Path("/home/someone/.pypirc"))
    parsed = _read(after)
    assert parsed.get("distutils", "index-servers").split() == ["pypi", "contoso-shared"]
    assert parsed.get("pypi", "username") == "__token__"
    assert parsed.get("contoso-shared", "repository") == (
        "https://pkgs.dev.azure.com/contoso/_packaging/shared/pypi/upload/"
    )
    assert configure._merge_ini(after, TWINE, Path("/home/someone/.pypirc")) == after


@pytest.mark.parametrize(
    "broken",
    ["index-url = https://pypi.org/simple/\n", "[global\nx = 1\n", "[a]\n[a]\n"],
    ids=["no section", "bad header", "duplicate section"],
)
def test_a_file_configparser_cannot_read_is_one_message_naming_it(broken: str) -> None:
    with pytest.raises(Failed) as caught:
        configure._merge_ini(broken, PIP, WHERE)
    assert str(WHERE) in str(caught.value)
    assert "merge the lines above by hand" in str(caught.value)


def test_uv_toml_puts_the_provider_first_and_keeps_the_rest() -> None:
    assert FEED is not None
    before = '# mine\n[[index]]\nname = "other"\nurl = "https://other.example/simple/"\n'
    after = configure._merge_uv(before, FEED, "contoso-shared")
    assert after.startswith('keyring-provider = "subprocess"\n\n# mine\n[[index]]\nname = "other"')
    assert after.rstrip().endswith(
        'url = "https://VssSessionToken@pkgs.dev.azure.com/contoso/_packaging/shared/pypi/simple/"'
    )
    assert configure._merge_uv(after, FEED, "contoso-shared") == after


# --- uv: the form we write, and what doctor says of the others ---------------------------------


def test_the_uv_plan_puts_the_username_in_every_index_url_it_prints() -> None:
    text = configure.PLANS["uv"](FEED, "contoso-shared").text
    urls = [line.split("=", 1)[1].strip().strip('"') for line in text.splitlines()
            if line.lstrip("# ").startswith("url =")]
    assert urls == [configure._with_user(URL)] * 2  # uv.toml, and the pyproject.toml lines
    assert configure.uv_index_advice(urls[0]) is None
    # `authenticate = "always"` is named only to say why it is not the form to use.
    assert not [line for line in text.splitlines() if line.startswith("authenticate")]
    assert not [line for line in text.splitlines() if line.startswith("# authenticate")]


@pytest.mark.parametrize(
    "url",
    [
        "https://VssSessionToken@pkgs.dev.azure.com/contoso/_packaging/shared/pypi/simple/",
        "https://__token__@pkgs.dev.azure.com/contoso/_packaging/shared/pypi/simple",
        "https://u:p@pkgs.dev.azure.com/contoso/_packaging/shared/pypi/simple/",
        "http://pkgs.dev.azure.com/contoso/_packaging/shared/pypi/simple/",
        "https://[::1/simple/",
        "",
    ],
    ids=["VssSessionToken", "__token__", "password in the URL", "not https", "unparsable",
         "empty"],
)
def test_no_advice_for_the_form_we_write_or_for_what_is_not_an_index_url(url: str) -> None:
    assert configure.uv_index_advice(url, authenticate="always") is None


def test_advice_for_authenticate_always_without_a_username() -> None:
    advice = configure.uv_index_advice(URL, authenticate=" Always ")
    assert advice is not None
    assert "`uv sync` from a uv.lock" in advice.what and "401" in advice.what
    assert advice.fix == f"put the username in the index URL: {configure._with_user(URL)}"


def test_advice_for_a_username_from_the_environment() -> None:
    advice = configure.uv_index_advice(URL, username_variable="UV_INDEX_AZURE_USERNAME")
    assert advice is not None
    assert advice.what.startswith("UV_INDEX_AZURE_USERNAME gives uv the username")
    assert "after their 401" in advice.what
    assert advice.fix == (
        f"put the username in the index URL: {configure._with_user(URL)} "
        "(and unset UV_INDEX_AZURE_USERNAME)"
    )


@pytest.mark.parametrize("authenticate", [None, "auto", "never"])
def test_advice_for_no_username_at_all(authenticate: str | None) -> None:
    advice = configure.uv_index_advice(URL, authenticate=authenticate)
    assert advice == configure.UvAdvice(
        "no username in the index URL: uv never asks keyring for it",
        f"put the username in the index URL: {configure._with_user(URL)}",
    )
