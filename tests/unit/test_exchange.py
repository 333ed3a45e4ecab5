from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import pytest

from artifacts_keyring_nofuss.discovery import Discovery
from artifacts_keyring_nofuss.errors import BearerRefused, ExchangeError
from artifacts_keyring_nofuss.exchange import PolicyRefused, policy_refusal, session_token
from artifacts_keyring_nofuss.feeds import Feed
from artifacts_keyring_nofuss.http import Response
from artifacts_keyring_nofuss.tokens import Token

from .helpers import TENANT, USER_OID, feed, make_jwt, response, user_jwt

READ = feed("https://pkgs.dev.azure.com/Contoso/_packaging/feed/pypi/simple/")
WRITE = feed("https://pkgs.dev.azure.com/Contoso/_packaging/feed/pypi/upload/")
FOUND = Discovery(
    tenant=TENANT,
    authority=f"https://login.microsoftonline.com/{TENANT}",
    authorization_endpoint="https://vssps.dev.azure.com/contoso/",
)
BEARER = Token.from_secret(user_jwt(), "azure_cli")
VALID_TO = "2031-05-06T07:08:09.1234567Z"
VALID_TO_EPOCH = datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=timezone.utc).timestamp()


@dataclass
class Call:
    url: str
    body: dict[str, Any]
    bearer: str
    replay_safe: bool = False


@dataclass
class StubHttp:
    """Answers post_json from a script and records what was sent."""

    answers: list[Response]
    calls: list[Call] = field(default_factory=list)

    def post_json(
        self, url: str, body: dict[str, Any], bearer: str, replay_safe: bool = False
    ) -> Response:
        self.calls.append(Call(url, dict(body), bearer, replay_safe))
        return self.answers.pop(0)


def _ok(token: object = "session-token-value", valid_to: object = VALID_TO) -> Response:
    body: dict[str, Any] = {
        "token": token,
        "validFrom": "2031-05-06T03:08:09.1234567Z",
        "scope": "vso.packaging",
        "displayName": "x",
        "targetAccounts": [],
    }
    if valid_to is not None:
        body["validTo"] = valid_to
    return response(200, [("Content-Type", "application/json")], body)


def _exchange(http: StubHttp, which: Feed = READ, lifetime: float = 240) -> Token:
    return session_token(http, which, FOUND, BEARER, lifetime)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("which", "scope"), [(READ, "vso.packaging"), (WRITE, "vso.packaging_write")]
)
def test_asks_for_the_least_scope_the_url_needs(which: Feed, scope: str) -> None:
    http = StubHttp([_ok()])
    _exchange(http, which)
    assert len(http.calls) == 1
    assert http.calls[0].body["scope"] == scope
    assert "vso.drop_write" not in http.calls[0].body["scope"]


def test_request_goes_to_the_discovered_service_with_the_bearer() -> None:
    http = StubHttp([_ok()])
    _exchange(http)
    call = http.calls[0]
    assert call.url.startswith("https://vssps.dev.azure.com/contoso/_apis/Token/SessionTokens?")
    assert "api-version=5.0-preview.1" in call.url
    assert "tokenType=Compact" not in call.url
    assert call.bearer == BEARER.secret
    assert isinstance(call.body["displayName"], str)
    assert call.body["displayName"]


@pytest.mark.parametrize("minutes", [5, 60, 240, 24 * 60])
def test_valid_to_is_requested_from_the_lifetime(minutes: float) -> None:
    http = StubHttp([_ok()])
    _exchange(http, lifetime=minutes)
    text = http.calls[0].body["validTo"]
    assert text.endswith("Z")
    requested = datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    assert abs(requested.timestamp() - (time.time() + minutes * 60)) < 120


def test_400_retries_once_without_valid_to() -> None:
    http = StubHttp([response(400, body={"message": "validTo beyond policy"}), _ok()])
    token = _exchange(http)
    assert token.secret == "session-token-value"
    assert len(http.calls) == 2
    assert "validTo" in http.calls[0].body
    assert "validTo" not in http.calls[1].body
    assert http.calls[1].body["scope"] == http.calls[0].body["scope"]
    assert http.calls[1].url == http.calls[0].url


def test_400_twice_is_an_exchange_error_after_one_retry() -> None:
    http = StubHttp([response(400, body={"message": "no"}), response(400, body={"message": "no"})])
    with pytest.raises(ExchangeError, match="400"):
        _exchange(http)
    assert len(http.calls) == 2


@pytest.mark.parametrize(
    "answer",
    [
        response(401, body={"message": "TF400813: The user is not authorized"}),
        response(401, body=b""),
        response(401, body=b"<html>not json</html>"),
        response(203, body=b"<html>sign in</html>"),
        response(302, [("Location", "https://login.microsoftonline.com/")]),
    ],
)
def test_refused_bearer(answer: Response) -> None:
    http = StubHttp([answer])
    with pytest.raises(BearerRefused):
        _exchange(http)
    assert len(http.calls) == 1


def test_refusal_message_carries_the_service_message_but_not_the_token() -> None:
    http = StubHttp([response(401, body={"message": "TF400813:\n  not\tauthorized"})])
    with pytest.raises(BearerRefused) as caught:
        _exchange(http)
    message = str(caught.value)
    assert "TF400813: not authorized" in message
    assert BEARER.secret not in message
    assert "alice@contoso.com" in message


def test_never_signed_in_names_the_organisation_url() -> None:
    message = (
        "TF401444: Please sign-in at least once as alice@contoso.com in a web browser "
        "to enable access to the service."
    )
    http = StubHttp([response(401, body={"message": message})])
    with pytest.raises(ExchangeError) as caught:
        _exchange(http)
    assert not isinstance(caught.value, BearerRefused)  # no other source would do better
    assert "https://dev.azure.com/contoso" in str(caught.value)


@pytest.mark.parametrize("status", [403, 404, 429, 500, 502, 503])
def test_other_failures_are_exchange_errors(status: int) -> None:
    http = StubHttp([response(status, body={"message": "boom"})])
    with pytest.raises(ExchangeError) as caught:
        _exchange(http)
    assert not isinstance(caught.value, BearerRefused)
    assert str(status) in str(caught.value)
    assert len(http.calls) == 1


def test_a_huge_error_message_is_cut() -> None:
    http = StubHttp([response(500, body={"message": "x" * 10_000})])
    with pytest.raises(ExchangeError) as caught:
        _exchange(http)
    assert len(str(caught.value)) < 500


@pytest.mark.parametrize(
    "body",
    [
        {"validTo": VALID_TO},
        {"token": None},
        {"token": 12345},
        {"token": 1.5},
        {"token": True},
        {"token": ["a"]},
        {"token": {"a": "b"}},
        {"token": ""},
        {"token": "has spaces in it"},
        {"token": "line\nbreak"},
        {"token": "tab\tinside"},
        {"token": "caf\u00e9"},
        {"token": "x" * (16 * 1024 + 1)},
        {"token": "x" * 1_000_000},
        ["token", "value"],
        "token",
        None,
    ],
    ids=lambda b: repr(b)[:40],
)
def test_200_without_a_usable_token(body: object) -> None:
    http = StubHttp([response(200, body=body)])
    with pytest.raises(ExchangeError):
        _exchange(http)


@pytest.mark.parametrize("raw", [b"", b"not json", b"\xff\xfe", b"[" * 100_000])
def test_200_with_a_body_that_is_not_json(raw: bytes) -> None:
    http = StubHttp([response(200, body=raw)])
    with pytest.raises(ExchangeError):
        _exchange(http)


def test_the_session_token_stands_for_the_same_user() -> None:
    token = _exchange(StubHttp([_ok()]))
    assert token.user is True
    assert token.identity == BEARER.identity == f"azure_cli:{TENANT}/{USER_OID}"
    assert token.who == BEARER.who
    assert token.source == BEARER.source


@pytest.mark.parametrize(
    ("valid_to", "expected"),
    [
        ("2031-05-06T07:08:09Z", datetime(2031, 5, 6, 7, 8, 9, tzinfo=timezone.utc)),
        ("2031-05-06T07:08:09+00:00", datetime(2031, 5, 6, 7, 8, 9, tzinfo=timezone.utc)),
        (
            "2031-05-06T07:08:09.1234567Z",
            datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=timezone.utc),
        ),
        ("2031-05-06T07:08:09.123Z", datetime(2031, 5, 6, 7, 8, 9, 123000, tzinfo=timezone.utc)),
        (
            "2031-05-06T07:08:09.1234567+00:00",
            datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=timezone.utc),
        ),
        ("2031-05-06T09:08:09+02:00", datetime(2031, 5, 6, 7, 8, 9, tzinfo=timezone.utc)),
        (
            "2031-05-06T09:08:09.1234567+02:00",
            datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=timezone.utc),
        ),
        (
            "2031-05-06T05:08:09.5-02:00",
            datetime(2031, 5, 6, 7, 8, 9, 500000, tzinfo=timezone.utc),
        ),
    ],
)
def test_expiry_comes_from_valid_to(valid_to: str, expected: datetime) -> None:
    token = _exchange(StubHttp([_ok(valid_to=valid_to)]))
    assert token.expires_on == pytest.approx(expected.timestamp(), abs=1e-3)


@pytest.mark.parametrize(
    "valid_to", [None, "", "soon", 1_900_000_000, "9999-99-99T99:99:99Z", "x" * 100]
)
def test_without_a_readable_valid_to_the_jwt_expiry_is_used(valid_to: object) -> None:
    secret = make_jwt({"exp": 1_950_000_000, "scp": "vso.packaging"})
    token = _exchange(StubHttp([_ok(token=secret, valid_to=valid_to)]))
    assert token.expires_on == 1_950_000_000


def test_without_any_expiry_the_token_is_kept_for_a_short_while_only() -> None:
    token = _exchange(StubHttp([_ok(valid_to=None)]))
    assert token.expires_on is None
    assert token.fresh()
    assert not token.fresh(now=time.time() + 3600)


# --- the "Restrict personal access token creation" policy ---------------------------------------

TYPE_NAME = (
    "Microsoft.VisualStudio.Services.DelegatedAuthorization."
    "DisablePatCreationPolicyViolationException, Microsoft.VisualStudio.Services.WebApi"
)


def _error(status: int, **fields: object) -> Response:
    return response(status, [("Content-Type", "application/json")], {"$id": "1", **fields})


@pytest.mark.parametrize("status", [400, 403])
@pytest.mark.parametrize(
    "fields",
    [
        {"typeKey": "DisablePatCreationPolicyViolationException", "message": "x"},
        {"typeName": TYPE_NAME, "message": "x"},
        {"message": "Failed to create PAT: DisablePatCreationPolicyViolation"},
        {"message": "Your organization's policy restricts the creation of personal access tokens."},
        {"message": "Personal access token creation is disabled by an organization policy."},
        {"message": "Creating PATs:\nblocked by\tyour organization's policy."},
    ],
)
def test_the_policy_is_recognised_whatever_the_wording(
    status: int, fields: dict[str, object]
) -> None:
    assert policy_refusal(_error(status, **fields)) is not None


@pytest.mark.parametrize(
    ("status", "fields"),
    [
        (401, {"typeKey": "DisablePatCreationPolicyViolationException"}),  # a refused bearer
        (500, {"typeKey": "DisablePatCreationPolicyViolationException"}),  # a busy service
        (400, {"message": "The validTo exceeds the maximum lifespan allowed by policy."}),
        (400, {"typeKey": "PatLifespanPolicyViolationException"}),
        (403, {"message": "TF400813: The user 'alice' is not authorized to access this resource."}),
        (401, {"message": "TF401444: Please sign-in at least once as alice in a web browser"}),
        (403, {"message": "Access denied: the policy allows you nothing here."}),
        (403, {"message": "A PAT was used."}),
        (400, {"message": 7}),
        (400, {"typeKey": ["DisablePatCreationPolicyViolation"]}),
    ],
)
def test_other_refusals_are_not_the_policy(status: int, fields: dict[str, object]) -> None:
    assert policy_refusal(_error(status, **fields)) is None


@pytest.mark.parametrize("body", [b"", b"not json", b"[]", b'"text"', b"{" * 5000])
def test_a_body_that_is_not_an_error_object_is_not_the_policy(body: bytes) -> None:
    assert policy_refusal(Response(403, (), body)) is None


def test_a_huge_type_key_is_named_within_bounds() -> None:
    name = policy_refusal(_error(403, typeKey="X" * 10_000 + "DisablePatCreationPolicyViolation"))
    assert name is not None and len(name) <= 120


@pytest.mark.parametrize("status", [400, 403])
def test_a_policy_refusal_is_raised_at_once_not_retried_without_validto(status: int) -> None:
    http = StubHttp([_error(status, typeKey="DisablePatCreationPolicyViolationException")])
    with pytest.raises(PolicyRefused) as caught:
        _exchange(http)
    assert caught.value.policy == "DisablePatCreationPolicyViolation"
    assert "'contoso'" in caught.value.what
    assert len(http.calls) == 1


def test_a_lifetime_refusal_is_still_retried_without_validto() -> None:
    http = StubHttp([_error(400, message="validTo is beyond the allowed lifespan"), _ok()])
    assert _exchange(http).secret == "session-token-value"
    assert "validTo" not in http.calls[1].body


def test_the_exchange_may_be_replayed() -> None:
    """Minting is harmless to repeat: a dropped connection is retried like a GET."""
    http = StubHttp([_ok()])
    _exchange(http)
    assert http.calls[0].replay_safe is True
