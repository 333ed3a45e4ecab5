from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from artifacts_keyring_nofuss.challenges import Challenge, parse

AUTHORITY = "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47"
REAL = (
    f"Bearer authorization_uri={AUTHORITY}, "
    'Basic realm="https://pkgsprodsu3.pkgs.visualstudio.com/", TFS-Federated'
)


def _summary(found: list[Challenge]) -> list[tuple[str, dict[str, str], str | None]]:
    return [(c.scheme, c.params, c.token68) for c in found]


def test_the_real_combined_header() -> None:
    assert _summary(parse([REAL])) == [
        ("bearer", {"authorization_uri": AUTHORITY}, None),
        ("basic", {"realm": "https://pkgsprodsu3.pkgs.visualstudio.com/"}, None),
        ("tfs-federated", {}, None),
    ]


def test_separate_header_lines_give_the_same_challenges() -> None:
    lines = [
        f"Bearer authorization_uri={AUTHORITY}",
        'Basic realm="https://pkgsprodsu3.pkgs.visualstudio.com/"',
        "TFS-Federated",
    ]
    assert _summary(parse(lines)) == _summary(parse([REAL]))


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["Bearer"], [("bearer", {}, None)]),
        (["bearer"], [("bearer", {}, None)]),
        (["  Bearer  "], [("bearer", {}, None)]),
        (["Bearer,"], [("bearer", {}, None)]),
        (
            ['BEARER Authorization_URI="https://x/y"'],
            [("bearer", {"authorization_uri": "https://x/y"}, None)],
        ),
        (
            ["bEaReR AUTHORIZATION_uri = https://x/y"],
            [("bearer", {"authorization_uri": "https://x/y"}, None)],
        ),
        (
            ['Basic realm="a \\"quoted\\" b, c", charset="UTF-8"'],
            [("basic", {"realm": 'a "quoted" b, c', "charset": "UTF-8"}, None)],
        ),
        (
            ['Basic realm="back\\\\slash"'],
            [("basic", {"realm": "back\\slash"}, None)],
        ),
        (
            ['Bearer realm="a,b=c, Basic realm=x"'],
            [("bearer", {"realm": "a,b=c, Basic realm=x"}, None)],
        ),
        (["Negotiate abc123=="], [("negotiate", {}, "abc123==")]),
        (["Negotiate abc123"], [("negotiate", {}, "abc123")]),
        (
            ["Negotiate abc=, Basic realm=x"],
            [("negotiate", {}, "abc="), ("basic", {"realm": "x"}, None)],
        ),
        (
            ["Bearer token68abc, Basic realm=r"],
            [("bearer", {}, "token68abc"), ("basic", {"realm": "r"}, None)],
        ),
        (["Bearer a=1, a=2, A=3"], [("bearer", {"a": "1"}, None)]),
        (
            ['Bearer authorization_uri="first", AUTHORIZATION_URI="second"'],
            [("bearer", {"authorization_uri": "first"}, None)],
        ),
        (
            ['Bearer error="invalid_token", error_description="The token expired"'],
            [
                (
                    "bearer",
                    {"error": "invalid_token", "error_description": "The token expired"},
                    None,
                )
            ],
        ),
        (
            ['Newauth realm="apps", type=1, title="Login to \\"apps\\"", Basic realm="simple"'],
            [
                ("newauth", {"realm": "apps", "type": "1", "title": 'Login to "apps"'}, None),
                ("basic", {"realm": "simple"}, None),
            ],
        ),
        (
            ["Basic, Bearer authorization_uri=u"],
            [("basic", {}, None), ("bearer", {"authorization_uri": "u"}, None)],
        ),
        (["Bearer ,, x=y"], [("bearer", {"x": "y"}, None)]),
        (["Basic", "Bearer"], [("basic", {}, None), ("bearer", {}, None)]),
        (['Bearer realm="unterminated'], [("bearer", {"realm": "unterminated"}, None)]),
    ],
)
def test_parse(values: list[str], expected: list[tuple[str, dict[str, str], str | None]]) -> None:
    assert _summary(parse(values)) == expected


@pytest.mark.parametrize(
    "value",
    ["", " ", ",,,,", "====", '"""', '"', "=", ", = , =", '="x"', "\t\t", "=="],
)
def test_garbage_gives_no_challenge(value: str) -> None:
    assert parse([value]) == []


@pytest.mark.parametrize(
    "value",
    [
        'Bearer realm="a\\',
        'Bearer realm="a\\"',
        "Bearer realm=",
        "Bearer realm==",
        "Bearer ==== x",
        "Bearer a=b=c=d",
        "Bearer ,=,=,=",
        '=Bearer "',
        "\x00\x01\x02Bearer\x7f",
        "Bearer \ud800 realm=\udfff",
        "Bearer realm=\u202e\u0000",
        "\\" * 1000,
        '"' * 1001,
        "a=" * 3000,
        "Bearer " + "x=" * 3000,
    ],
)
def test_malformed_input_never_raises(value: str) -> None:
    found = parse([value])
    assert all(isinstance(c, Challenge) for c in found)


def test_a_huge_header_is_ignored_but_other_lines_are_read() -> None:
    huge = "Bearer authorization_uri=https://evil.example/" + "a" * (16 * 1024)
    assert parse([huge]) == []
    assert _summary(parse([huge, "Bearer"])) == [("bearer", {}, None)]


def test_a_header_just_under_the_limit_is_read() -> None:
    value = "Bearer realm=" + "a" * (16 * 1024 - len("Bearer realm="))
    assert len(value) == 16 * 1024
    found = parse([value])
    assert found[0].params["realm"] == "a" * (16 * 1024 - len("Bearer realm="))


@pytest.mark.parametrize("values", [[None], [b"Bearer"], [42], [None, "Bearer"]])
def test_non_strings_are_skipped(values: list[object]) -> None:
    found = parse(values)  # type: ignore[arg-type]
    assert [c.scheme for c in found] == (["bearer"] if "Bearer" in values else [])


def test_empty_list() -> None:
    assert parse([]) == []


@given(st.lists(st.text(), max_size=4))
def test_never_raises_on_arbitrary_text(values: list[str]) -> None:
    found = parse(values)
    for challenge in found:
        assert challenge.scheme == challenge.scheme.lower()
        assert all(name == name.lower() for name in challenge.params)


@given(
    st.lists(
        st.text(alphabet=st.sampled_from(list(' \t,="\\Bearer=basic_uri:/')), max_size=60),
        max_size=3,
    )
)
def test_never_raises_on_punctuation_soup(values: list[str]) -> None:
    parse(values)
