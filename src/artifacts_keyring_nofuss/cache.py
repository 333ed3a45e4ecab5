"""What a lookup may reuse: one small interface over what this process already knows (memory)
and what outlives it (the disk store), so that twine asking twice or poetry three times costs
one discovery, one token and one exchange, and a new `keyring` process costs none.

Every token goes in and comes out under a `Key`; only session tokens reach the disk.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import NamedTuple

from . import devops, endpoints, local
from . import log as _log
from .deadline import Deadline
from .discovery import Discovery
from .feeds import Feed
from .keys import Key
from .store import REFUSAL_TTL, Entry, Store
from .tokens import REFRESH_MARGIN, Token

# A failure is said once, not once per call: twine asks twice, pdm and poetry more.
NEGATIVE_TTL = 60.0


class Memory:
    """The per-process state a backend instance owns."""

    def __init__(self) -> None:
        self.tokens: dict[Key, Token] = {}
        # (feed host, org) -> discovery; the answer is the same for every feed of an
        # organisation.
        self.discoveries: dict[tuple[str, str], Discovery] = {}
        # (feed host, org, scope) -> (message, until)
        self.failures: dict[tuple[str, str, str], tuple[str, float]] = {}
        # Key.refusal -> (the policy that refused to mint session tokens, until when: epoch
        # seconds, as on disk; a process that outlives it must ask again, like the next one)
        self.refusals: dict[Key, tuple[str, float]] = {}

    def recent_failure(self, feed: Feed) -> str | None:
        key = (feed.host, feed.org, feed.scope)
        entry = self.failures.get(key)
        if entry is None or entry[1] < time.monotonic():
            self.failures.pop(key, None)
            return None
        return entry[0]

    def remember_failure(self, feed: Feed, message: str) -> None:
        self.failures[(feed.host, feed.org, feed.scope)] = (
            message,
            time.monotonic() + NEGATIVE_TTL,
        )

    def clear(self) -> None:
        self.tokens.clear()
        self.discoveries.clear()
        self.failures.clear()
        self.refusals.clear()


class Found(NamedTuple):
    token: Token
    from_disk: bool  # from another process: worth one check that the feed still takes it


class Cache:
    def __init__(self, memory: Memory, disk: Store | None) -> None:
        self.memory = memory
        self.disk = disk

    @classmethod
    def open(cls, memory: Memory, enabled: bool, deadline: Deadline) -> Cache:
        """Memory, plus the disk store unless it is switched off or there is nowhere safe."""
        if not enabled:
            return cls(memory, None)
        directory = local.cache_dir()
        if directory is None:
            _log.debug("cache: no absolute cache directory (no home?); not caching")
            return cls(memory, None)
        return cls(memory, Store(directory, deadline))

    # --- tokens ----------------------------------------------------------------------------

    def token(self, key: Key) -> Found | None:
        held = self.memory.tokens.get(key)
        if held is not None:
            if held.fresh():
                return Found(held, from_disk=False)
            del self.memory.tokens[key]
        if self.disk is None or key.kind != devops.SESSION:
            return None
        entry = self.disk.session(key, margin=REFRESH_MARGIN)
        if entry is None or entry.identity != key.identity or entry.scope != key.scope:
            return None
        token = Token(
            secret=entry.token,
            expires_on=entry.expires_on,
            user=True,
            identity=key.identity,
            who=entry.who,
            source=key.identity.split(":", 1)[0],
            kind=devops.SESSION,
            scope=key.scope,
        )
        return Found(token, from_disk=True)

    def keep(self, token: Token, found: Discovery, feed: Feed) -> Key | None:
        """Keep `token` under the key built from it; a session token also on disk. Tokens
        handed over are never kept: they are already where the user put them."""
        if token.kind == devops.GIVEN:
            return None
        key = Key.of(token, found)
        self.memory.tokens[key] = token
        if key.kind == devops.SESSION and self.disk is not None and token.expires_on is not None:
            self.disk.put_session(
                key,
                Entry(
                    token=token.secret,
                    expires_on=token.expires_on,
                    org=feed.org,
                    scope=key.scope,
                    identity=key.identity,
                    who=token.who,
                ),
            )
        return key

    def remember(self, key: Key, token: Token) -> None:
        """A token read from disk (and checked), for this process's next lookups."""
        if key == Key(key.service, token.scope or key.scope, token.identity, token.kind):
            self.memory.tokens[key] = token

    def drop(self, key: Key) -> None:
        self.memory.tokens.pop(key, None)
        if self.disk is not None and key.kind == devops.SESSION:
            self.disk.drop_session(key)

    @contextlib.contextmanager
    def locked(self, key: Key, wait: float) -> Iterator[bool]:
        """Across processes, one minting per key at a time (or none held, after `wait`)."""
        if self.disk is None:
            yield False
            return
        with self.disk.locked(key.digest(), wait) as held:
            yield held

    # --- refusals: an organisation that mints no session token for an identity -------------

    def refusal(self, found: Discovery, identity: str) -> str | None:
        key = Key.refusal(found, identity)
        held = self.memory.refusals.get(key)
        if held is not None and held[1] <= time.time():
            del self.memory.refusals[key]
            held = None
        if held is None and self.disk is not None:
            held = self.disk.refusal(key)
            if held is not None:
                self.memory.refusals[key] = held
        return None if held is None else held[0]

    def remember_refusal(self, found: Discovery, identity: str, policy: str, feed: Feed) -> None:
        key = Key.refusal(found, identity)
        self.memory.refusals[key] = (policy, time.time() + REFUSAL_TTL)
        if self.disk is not None:
            self.disk.put_refusal(key, policy, feed.org)

    # --- discovery -------------------------------------------------------------------------

    def discovery(self, feed: Feed) -> Discovery | None:
        key = (feed.host, feed.org)
        found = self.memory.discoveries.get(key)
        if found is not None or self.disk is None:
            return found
        values = self.disk.discovery(*key)
        if values is None:
            return None
        try:
            # Validated when it was stored; validated again, since it comes from a file.
            token_service = endpoints.authorization_endpoint(values["token_service"], feed.org)
            authority, tenant = endpoints.login_authority(values["authority"])
        except endpoints.UntrustedEndpoint as exc:
            _log.debug("cache: ignoring the stored discovery for %s: %s", feed.org, exc)
            return None
        found = Discovery(
            tenant=values["tenant"] if tenant is None else tenant,
            authority=authority,
            authorization_endpoint=token_service,
        )
        if found.tenant is not None and not endpoints.valid_tenant(found.tenant):
            return None
        self.memory.discoveries[key] = found
        return found

    def keep_discovery(self, feed: Feed, found: Discovery) -> None:
        self.memory.discoveries[(feed.host, feed.org)] = found
        if self.disk is not None:
            self.disk.put_discovery(
                feed.host,
                feed.org,
                {
                    "tenant": found.tenant,
                    "authority": found.authority,
                    "token_service": found.authorization_endpoint,
                },
            )

    def drop_discovery(self, feed: Feed) -> None:
        self.memory.discoveries.pop((feed.host, feed.org), None)
        if self.disk is not None:
            self.disk.drop_discovery(feed.host, feed.org)
