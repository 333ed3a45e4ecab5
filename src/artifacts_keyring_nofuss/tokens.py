"""A credential and when it expires: expiry is data, never a guess when the token states it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

from . import claims as _claims

# Refresh this long before the stated expiry, so a token never expires mid-install.
REFRESH_MARGIN = 5 * 60
# When nothing states an expiry, keep a token no longer than this (Entra tokens live 60-90 min).
UNKNOWN_EXPIRY_TTL = 50 * 60


@dataclass(frozen=True)
class Token:
    secret: str = field(repr=False)
    expires_on: float | None  # epoch seconds, from the token or the service's answer
    user: bool  # a delegated user token (exchanged) rather than an application's
    identity: str  # who it stands for: a cache key part, never shown in full
    who: str  # what a person recognises in debug output
    source: str
    obtained: float = field(default_factory=time.time)
    # Handed out unchanged whatever its kind: a token somebody minted and gave us (a PAT is
    # never a bearer for the exchange).
    as_is: bool = False

    @classmethod
    def from_secret(cls, secret: str, source: str, expires_on: float | None = None) -> Token:
        claims = _claims.read_claims(secret)
        return cls(
            secret=secret,
            expires_on=_claims.expiry(claims) or expires_on,
            user=_claims.is_user(claims),
            identity=_claims.identity(claims) or f"{source}:opaque",
            who=_claims.display_name(claims) or "an opaque token",
            source=source,
        )

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
