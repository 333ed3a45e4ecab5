"""`ak-nofuss setup ... --write`: the user's files keep everything that is not ours."""

from __future__ import annotations

import configparser
from pathlib import Path

import pytest

from artifacts_keyring_nofuss import configure
from artifacts_keyring_nofuss.errors import Failed
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
