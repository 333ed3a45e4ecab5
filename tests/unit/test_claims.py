from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from artifacts_keyring_nofuss.claims import (
    display_name,
    expiry,
    identity,
    is_user,
    read_claims,
    tenant,
)

from .helpers import APP_ID, TENANT, USER_OID, app_jwt, b64url, make_jwt, user_jwt

HEAD = b64url(b'{"alg":"RS256","typ":"JWT"}')


def _raw(payload: bytes) -> str:
    return f"{HEAD}.{b64url(payload)}.c2ln"


def test_reads_a_user_token() -> None:
    claims = read_claims(user_jwt(exp=1_800_000_000))
    assert claims is not None
    assert claims["upn"] == "alice@contoso.com"
    assert claims["exp"] == 1_800_000_000


def test_padding_is_optional() -> None:
    payload = base64.urlsafe_b64encode(b'{"exp": 1800000000, "x": "a"}').decode()
    assert payload.endswith("=")
    assert read_claims(f"{HEAD}.{payload}.sig") == {"exp": 1800000000, "x": "a"}
    assert read_claims(f"{HEAD}.{payload.rstrip('=')}.sig") == {"exp": 1800000000, "x": "a"}


def test_empty_signature_is_still_a_jwt() -> None:
    assert read_claims(f"{HEAD}.{b64url(b'{}')}.") == {}


@pytest.mark.parametrize(
    "token",
    [
        "",
        "opaque-pat-like-token",
        "a.b",
        f"{HEAD}.{b64url(b'{}')}",
        f"{HEAD}.{b64url(b'{}')}.sig.extra",
        f"{HEAD}..sig",
        "...",
        f"{HEAD}.!!!!.sig",
        f"{HEAD}.%%%%.sig",
        f"{HEAD}.a.sig",
        _raw(b"[1, 2, 3]"),
        _raw(b'["exp", 1800000000]'),
        _raw(b"1800000000"),
        _raw(b'"a string"'),
        _raw(b"null"),
        _raw(b"true"),
        _raw(b"{not json}"),
        _raw(b'{"exp": 1800000000'),
        _raw(b'{"upn": "\xff\xfe"}'),
        _raw(b"\xff\xfe\xfd"),
        _raw(b"[" * 20_000),
        _raw(b'{"a":' * 5_000 + b"1" + b"}" * 5_000),
        _raw(json.dumps({"pad": "x" * 40_000}).encode()),
        "x" * 100_000,
    ],
    ids=lambda t: repr(t)[:40],
)
def test_not_a_jwt(token: str) -> None:
    assert read_claims(token) is None


@pytest.mark.parametrize("token", [None, b"a.b.c", 123, ["a", "b", "c"]])
def test_non_strings_are_not_jwts(token: object) -> None:
    assert read_claims(token) is None  # type: ignore[arg-type]


@given(st.text(max_size=300))
def test_read_claims_never_raises(token: str) -> None:
    result = read_claims(token)
    assert result is None or isinstance(result, dict)


@given(st.binary(max_size=300))
def test_read_claims_never_raises_on_any_payload(payload: bytes) -> None:
    result = read_claims(_raw(payload))
    assert result is None or isinstance(result, dict)


@pytest.mark.parametrize(
    ("exp", "expected"),
    [
        (1_800_000_000, 1_800_000_000.0),
        (1_800_000_000.5, 1_800_000_000.5),
        (1, 1.0),
        (4_102_444_799, 4_102_444_799.0),
        (True, None),
        (False, None),
        ("1800000000", None),
        ("", None),
        (None, None),
        ([1_800_000_000], None),
        ({"v": 1}, None),
        (0, None),
        (-1, None),
        (-1_800_000_000, None),
        (4_102_444_800, None),
        (10**20, None),
        (1e300, None),
        (float("inf"), None),
        (float("-inf"), None),
        (float("nan"), None),
    ],
)
def test_expiry(exp: Any, expected: float | None) -> None:
    assert expiry({"exp": exp}) == expected


def test_expiry_from_json_numbers() -> None:
    assert expiry(read_claims(_raw(b'{"exp": NaN}'))) is None
    assert expiry(read_claims(_raw(b'{"exp": Infinity}'))) is None
    assert expiry(read_claims(_raw(b'{"exp": 1.8e9}'))) == 1.8e9


@pytest.mark.parametrize("claims", [None, {}, {"iat": 1}])
def test_no_expiry(claims: dict[str, Any] | None) -> None:
    assert expiry(claims) is None


@pytest.mark.parametrize(
    ("claims", "user"),
    [
        ({"idtyp": "user"}, True),
        ({"idtyp": "user", "roles": ["x"]}, True),
        ({"idtyp": "app"}, False),
        ({"idtyp": "app", "scp": "user_impersonation"}, False),
        ({"scp": "user_impersonation"}, True),
        ({"scp": "vso.packaging vso.code"}, True),
        ({"roles": ["Packaging.Read"]}, False),
        ({"roles": ["x"], "scp": ""}, False),
        ({"scp": ""}, False),
        ({"scp": None}, False),
        ({"idtyp": "device", "scp": "x"}, True),
        ({"idtyp": "device"}, False),
        ({"idtyp": 1, "roles": ["x"]}, False),
        ({}, False),
        (None, False),
    ],
)
def test_is_user(claims: dict[str, Any] | None, user: bool) -> None:
    assert is_user(claims) is user


def test_is_user_for_real_shapes() -> None:
    assert is_user(read_claims(user_jwt())) is True
    assert is_user(read_claims(app_jwt())) is False


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        ({"tid": TENANT, "oid": USER_OID, "upn": "a@b.c"}, f"{TENANT}/{USER_OID}"),
        ({"oid": USER_OID}, USER_OID),
        ({"tid": TENANT, "upn": "a@b.c"}, f"{TENANT}/a@b.c"),
        ({"tid": TENANT, "unique_name": "live.com#a@b.c"}, f"{TENANT}/live.com#a@b.c"),
        ({"tid": TENANT, "preferred_username": "p@b.c"}, f"{TENANT}/p@b.c"),
        ({"tid": TENANT, "appid": APP_ID}, f"{TENANT}/{APP_ID}"),
        ({"tid": TENANT, "azp": APP_ID}, f"{TENANT}/{APP_ID}"),
        ({"tid": TENANT, "sub": "subject"}, f"{TENANT}/subject"),
        ({"tid": TENANT, "oid": "", "upn": "a@b.c"}, f"{TENANT}/a@b.c"),
        ({"tid": TENANT, "oid": 12, "upn": "a@b.c"}, f"{TENANT}/a@b.c"),
        ({"tid": TENANT, "oid": "x\ny", "upn": "a@b.c"}, f"{TENANT}/a@b.c"),
        ({"tid": TENANT, "oid": "o" * 300, "upn": "a@b.c"}, f"{TENANT}/a@b.c"),
        ({"tid": "", "oid": USER_OID}, USER_OID),
        ({"tid": TENANT}, None),
        ({}, None),
        (None, None),
    ],
)
def test_identity(claims: dict[str, Any] | None, expected: str | None) -> None:
    assert identity(claims) == expected


def test_two_users_of_one_tenant_have_different_identities() -> None:
    first = identity(read_claims(user_jwt(oid="a")))
    second = identity(read_claims(user_jwt(oid="b")))
    assert first != second


def test_one_oid_in_two_tenants_has_different_identities() -> None:
    assert identity({"tid": "t1.com", "oid": "x"}) != identity({"tid": "t2.com", "oid": "x"})


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        ({"upn": "alice@contoso.com", "oid": USER_OID}, "alice@contoso.com"),
        ({"unique_name": "live.com#bob@x.com", "oid": USER_OID}, "live.com#bob@x.com"),
        ({"preferred_username": "carol@x.com", "oid": USER_OID}, "carol@x.com"),
        ({"appid": APP_ID, "oid": USER_OID}, APP_ID),
        ({"azp": APP_ID}, APP_ID),
        ({"oid": USER_OID}, USER_OID),
        ({"upn": "\x1b[31mred", "oid": USER_OID}, USER_OID),
        ({"sub": "only-sub"}, None),
        ({}, None),
        (None, None),
    ],
)
def test_display_name(claims: dict[str, Any] | None, expected: str | None) -> None:
    assert display_name(claims) == expected


@pytest.mark.parametrize(
    ("claims", "expected"),
    [({"tid": TENANT}, TENANT), ({"tid": 5}, None), ({}, None), (None, None)],
)
def test_tenant(claims: dict[str, Any] | None, expected: str | None) -> None:
    assert tenant(claims) == expected


def test_claims_of_a_token_made_by_the_helper_round_trip() -> None:
    token = make_jwt({"a": [1, 2], "b": {"c": None}})
    assert read_claims(token) == {"a": [1, 2], "b": {"c": None}}
