"""The one key: built from the token, or from what a lookup expects; never for handed-over
tokens; its digest names no part of it."""

from __future__ import annotations

import itertools

import pytest

from artifacts_keyring_nofuss import devops
from artifacts_keyring_nofuss.discovery import Discovery
from artifacts_keyring_nofuss.keys import Key
from artifacts_keyring_nofuss.tokens import Token

from .helpers import TENANT

FOUND = Discovery(
    tenant=TENANT,
    authority=f"https://login.microsoftonline.com/{TENANT}",
    authorization_endpoint="https://vssps.dev.azure.com/contoso/",
)


def _token(
    kind: str, identity: str = "azure_cli:alice@contoso.com", scope: str | None = None
) -> Token:
    return Token(
        secret="x",
        expires_on=None,
        user=True,
        identity=identity,
        who="alice",
        source="azure_cli",
        kind=kind,
        scope=scope,
    )


def test_a_session_is_keyed_by_the_token_service_and_tenant_a_bearer_by_the_authority() -> None:
    session = Key.of(_token(devops.SESSION, scope="vso.packaging"), FOUND)
    bearer = Key.of(_token(devops.USER), FOUND)
    assert session.service == f"{FOUND.authorization_endpoint} {FOUND.authority}"
    assert bearer.service == FOUND.authority
    assert bearer.scope == devops.DEFAULT_SCOPE


def test_a_token_service_of_no_organisation_keeps_each_tenants_own() -> None:
    """app.vssps mints from whichever tenant's bearer it is given: neither a session nor a
    refusal of one tenant is another's."""
    other = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
    one = FOUND._replace(authorization_endpoint="https://app.vssps.visualstudio.com/")
    two = one._replace(tenant=other, authority=f"https://login.microsoftonline.com/{other}")
    alice = "azure_cli:alice@contoso.com"
    assert Key.expect(one, devops.SESSION, "vso.packaging", alice) != Key.expect(
        two, devops.SESSION, "vso.packaging", alice
    )
    assert Key.refusal(one, alice).digest() != Key.refusal(two, alice).digest()


def test_of_and_expect_agree() -> None:
    token = _token(devops.SESSION, scope="vso.packaging_write")
    expected = Key.expect(FOUND, devops.SESSION, "vso.packaging_write", token.identity)
    assert Key.of(token, FOUND) == expected
    assert Key.of(token, FOUND).digest() == expected.digest()


@pytest.mark.parametrize("kind", [devops.GIVEN, "", "pat", "session "])
def test_nothing_but_the_cacheable_kinds_has_a_key(kind: str) -> None:
    with pytest.raises(ValueError, match="never cached"):
        Key.expect(FOUND, kind, "vso.packaging", "x")


PARTS = {
    "service": ["https://vssps.dev.azure.com/contoso/", "https://vssps.dev.azure.com/fabrikam/"],
    "scope": ["vso.packaging", "vso.packaging_write"],
    "identity": ["azure_cli:alice@contoso.com", "azure_cli:bob@contoso.com"],
    "kind": [devops.SESSION, devops.USER],
}


def test_every_part_changes_the_digest() -> None:
    keys = [Key(*combo) for combo in itertools.product(*PARTS.values())]
    assert len({k.digest() for k in keys}) == len(keys)


@pytest.mark.parametrize(
    ("one", "two"),
    [
        # Joining the parts must not let one part's text slide into another's.
        (
            Key("https://a/", "vso.packaging", "x\nsession", devops.SESSION),
            Key("https://a/", "vso.packaging\nx", "session", devops.SESSION),
        ),
        (Key("s", "p", "i", devops.SESSION), Key("s", "p", "i", devops.USER)),
    ],
)
def test_digests_of_different_keys_differ(one: Key, two: Key) -> None:
    assert one != two
    assert one.digest() != two.digest()


def test_the_digest_names_nobody() -> None:
    digest = Key.expect(
        FOUND, devops.SESSION, "vso.packaging", "azure_cli:alice@contoso.com"
    ).digest()
    assert len(digest) == 64
    assert "alice" not in digest and "contoso" not in digest
