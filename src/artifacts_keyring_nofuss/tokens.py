"""A credential and when it expires: expiry is data, never a guess when the token states it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

from . import claims as _claims
from . import devops

# Refresh this long before the stated expiry, so a token never expires mid-install.
REFRESH_MARGIN = 5 * 60
# When nothing states an expiry, keep a token no longer than this (Entra tokens live 60-90 min).
UNKNOWN_EXPIRY_TTL = 50 * 60


@dataclass(frozen=True)
class Token:
    secret: str = field(repr=False)
    expires_on: float | None  # epoch seconds, from the token or the service's answer
    user: bool  # a delegated user token (its claims say so) rather than an application's
    # Who it stands for, as the cache keys it: the source's name and an identity that the
    # token itself (its claims) or the source that minted it vouches for. Never shown in full.
    identity: str
    who: str  # what a person recognises in debug output
    source: str
    kind: str = devops.USER  # devops.GIVEN, USER, APPLICATION or SESSION
    obtained: float = field(default_factory=time.time)
    scope: str | None = None  # a session token's scope

    @classmethod
    def from_secret(
        cls,
        secret: str,
        source: str,
        expires_on: float | None = None,
        identity: str | None = None,
    ) -> Token:
        """A token an identity source obtained: its kind from its claims, its identity the one
        the source vouches for, else the claims' own (tenant and object id)."""
        claims = _claims.read_claims(secret)
        user = _claims.is_user(claims)
        return cls(
            secret=secret,
            expires_on=_claims.expiry(claims) or expires_on,
            user=user,
            identity=identity or f"{source}:{_claims.identity(claims) or 'opaque'}",
            who=_claims.display_name(claims) or "an opaque token",
            source=source,
            kind=devops.USER if user else devops.APPLICATION,
        )

    @property
    def as_is(self) -> bool:
        """A token somebody handed over: used unchanged whatever it is (a PAT is never a
        bearer for the exchange)."""
        return self.kind == devops.GIVEN

    def keep_until(self) -> float:
        """The moment after which this token must not be handed out again."""
        limit = self.obtained + UNKNOWN_EXPIRY_TTL
        if self.expires_on is None:
            return limit
        return self.expires_on - REFRESH_MARGIN

    def fresh(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) < self.keep_until()

    def expired(self, now: float | None = None) -> bool:
        return self.expires_on is not None and (time.time() if now is None else now) >= (
            self.expires_on
        )


def describe_time(stamp: float | None) -> str:
    """An expiry for a message; total, for stated times come from outside (1e300, year 9999)."""
    if stamp is None:
        return "(not stated)"
    try:
        return datetime.fromtimestamp(stamp, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
    except (ValueError, OverflowError, OSError):
        return "(unreadable)"
