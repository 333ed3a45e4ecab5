"""What this process has already learnt, so repeated lookups (twine asks twice, poetry three
times) cost one discovery, one token and one exchange. Nothing here touches the disk.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TypeVar

from .discovery import Discovery
from .tokens import Token

NEGATIVE_TTL = 60.0
K = TypeVar("K")


@dataclass
class MemoryCache:
    # (feed host, org) -> discovery; the answer is the same for every feed of an organisation.
    discoveries: dict[tuple[str, str], Discovery] = field(default_factory=dict)
    # (source, tenant) -> the bearer that source gave.
    bearers: dict[tuple[str, str | None], Token] = field(default_factory=dict)
    # (token service, scope, identity) -> session token; identities never share an entry.
    sessions: dict[tuple[str, str, str], Token] = field(default_factory=dict)
    # (feed host, org, scope) -> (message, until): a failure is reported once, not per call.
    failures: dict[tuple[str, str, str], tuple[str, float]] = field(default_factory=dict)

    def fresh_bearer(self, key: tuple[str, str | None]) -> Token | None:
        return _fresh(self.bearers, key)

    def fresh_session(self, key: tuple[str, str, str]) -> Token | None:
        return _fresh(self.sessions, key)

    def recent_failure(self, key: tuple[str, str, str]) -> str | None:
        entry = self.failures.get(key)
        if entry is None or entry[1] < time.monotonic():
            self.failures.pop(key, None)
            return None
        return entry[0]

    def remember_failure(self, key: tuple[str, str, str], message: str) -> None:
        self.failures[key] = (message, time.monotonic() + NEGATIVE_TTL)

    def clear(self) -> None:
        self.discoveries.clear()
        self.bearers.clear()
        self.sessions.clear()
        self.failures.clear()


def _fresh(table: dict[K, Token], key: K) -> Token | None:
    token = table.get(key)
    if token is None:
        return None
    if token.fresh():
        return token
    del table[key]
    return None
