"""The request log: what every simulated host saw, without a single secret in it."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field


@dataclass
class Note:
    """What a handler learnt about a request, filled in while it is being answered."""

    kind: str = "other"
    auth_scheme: str = "none"
    credential_kind: str | None = None
    credential_fingerprint: str | None = None
    principal: str | None = None
    scope: str | None = None
    valid_to: str | None = None
    token_type: str | None = None
    grant_type: str | None = None
    client_id: str | None = None
    fault: str | None = None
    extra: dict[str, str] = field(default_factory=dict)
    # SimState.generation when the request arrived: a request held back past a reset() (a
    # stall longer than its client waited) belongs to a test that is over.
    generation: int = 0
    # The connection it came on (numbered from 1 across every listener) and when that was
    # accepted, before any handshake; `arrived`: when the request itself had been read.
    connection: int = 0
    connected_at: float = 0.0
    arrived: float = 0.0


@dataclass(frozen=True)
class Record:
    """One request as the simulator saw it.

    kind: discovery (anonymous 401 on a feed host), index, download, upload, exchange,
    token (Entra token endpoint or IMDS), devicecode, authorize (Entra's authorize endpoint, as
    a browser asks it; extra["outcome"] is "code", "sign-in page", "error AADSTS<n>" (sent back
    to the redirect URI) or "error page AADSTS<n>"), github_oidc (GitHub Actions' ID token
    service), metadata (OpenID/instance discovery, keys, user realm), plain-index, other.
    auth_scheme: none, basic, bearer, or the scheme as sent (lower case).
    credential_kind: session, pat, pipeline (System.AccessToken), github-request
    (ACTIONS_ID_TOKEN_REQUEST_TOKEN), entra-user, entra-app, unknown, or None without one.
    credential_fingerprint: sha256 prefix of the secret (`jwts.fingerprint`).
    fault: None, or the injected step ("status", "reset", "stall") that answered.
    time: when the answer went out (after any simulated round trip); connection: which
    connection it came on (numbered from 1 across all listeners; requests on one kept-alive
    connection share it); connected_at: when that connection was accepted, before its
    handshakes; arrived: when the request had been read. On a new connection, time -
    connected_at is what the client waited from connect() to the answer.
    """

    time: float
    scheme: str
    host: str
    port: int
    method: str
    path: str
    query: str
    status: int
    kind: str
    auth_scheme: str
    credential_kind: str | None
    credential_fingerprint: str | None
    principal: str | None
    scope: str | None
    valid_to: str | None
    token_type: str | None
    grant_type: str | None
    client_id: str | None
    fault: str | None
    user_agent: str | None
    extra: dict[str, str]
    connection: int = 0
    connected_at: float = 0.0
    arrived: float = 0.0


class RequestLog:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[Record] = []

    def add(self, record: Record) -> None:
        with self._lock:
            self._records.append(record)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()

    def select(
        self, host: str | None = None, path_contains: str | None = None, kind: str | None = None
    ) -> list[Record]:
        with self._lock:
            records = list(self._records)
        return [
            r
            for r in records
            if (host is None or r.host == host.lower())
            and (path_contains is None or path_contains.lower() in r.path.lower())
            and (kind is None or r.kind == kind)
        ]
