"""The one key under which a token is cached, locked and probed.

A token is kept only under the key built from the token itself (its kind, the identity that
minted it, the scope it was asked for) and the discovery it was minted against: the same
function builds the key a lookup looks for, so a token cannot land under another identity's,
another organisation's or another kind's name.
"""

from __future__ import annotations

import hashlib
import json
from typing import NamedTuple

from . import devops
from .discovery import Discovery
from .feeds import Feed
from .tokens import Token

REFUSAL = "refusal"  # not a token: a remembered "this organisation mints none for you"


def minted_at(found: Discovery) -> str:
    """Where a session token is minted, and from which tenant's bearer. A token service that
    names no organisation (`app.vssps.visualstudio.com`) mints for whichever tenant the bearer
    is of: keyed by the service alone, one tenant's session token (or its policy's refusal)
    would be handed to the feeds of an organisation in another tenant."""
    # Both are validated URLs, which hold no space: the two cannot run into each other.
    return f"{found.authorization_endpoint} {found.authority}"


class Key(NamedTuple):
    # Where the token is good: the token service and the tenant (session, refusal; minted_at)
    # or the Entra authority (a bearer).
    service: str
    scope: str  # a session's vso.packaging[_write], or the Entra scope a bearer was asked for
    identity: str  # "{source}:{who}", as the source or the token's claims vouch for it
    kind: str  # devops.SESSION, USER or APPLICATION (handed-over tokens are never cached)

    def digest(self) -> str:
        """A stable name for files (the disk entry, the lock) that reveals none of the parts."""
        # JSON, not a joined string: no part's text can slide into another's.
        text = json.dumps([self.kind, self.service, self.scope, self.identity])
        return hashlib.sha256(text.encode()).hexdigest()

    @classmethod
    def expect(cls, found: Discovery, kind: str, scope: str, identity: str) -> Key:
        """The key a token of this kind, for this identity and scope, would be kept under."""
        if kind not in (devops.SESSION, devops.USER, devops.APPLICATION):
            raise ValueError(f"tokens of kind {kind!r} are never cached")
        service = minted_at(found) if kind == devops.SESSION else found.authority
        return cls(service=service, scope=scope, identity=identity, kind=kind)

    @classmethod
    def refusal(cls, found: Discovery, identity: str) -> Key:
        """Where an organisation's refusal to mint session tokens for an identity is kept (its
        policy's name; no token): the token service, the tenant and the identity, whatever the
        scope."""
        return cls(minted_at(found), "*", identity, REFUSAL)

    @classmethod
    def minting(cls, feed: Feed, identity: str) -> Key:
        """What parallel lookups lock while one of them mints this identity's session token
        for the feed's organisation: known before discovery, so they discover once too."""
        return cls(f"{feed.host}/{feed.org}", feed.scope, identity, devops.SESSION)

    @classmethod
    def of(cls, token: Token, found: Discovery) -> Key:
        """The key for a token we hold: everything in it comes from the token."""
        scope = token.scope or devops.DEFAULT_SCOPE
        return cls.expect(found, token.kind, scope, token.identity)
