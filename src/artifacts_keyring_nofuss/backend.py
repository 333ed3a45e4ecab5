"""keyring's contract, and nothing else. keyring imports this module in every process, for
every service, so it imports only keyring and the pure URL parser; the rest loads on demand.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from keyring.backend import KeyringBackend
from keyring.credentials import Credential, SimpleCredential

from .feeds import extra_hosts, parse_feed_url

if TYPE_CHECKING:
    from .lookup import Engine

DEFAULT_USERNAME = "VssSessionToken"


class AzureArtifactsBackend(KeyringBackend):
    """Azure DevOps Artifacts credentials from the identity this machine already has."""

    priority = 9.9  # ahead of the OS keychains (5), inside the chainer (10)

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        # What this process has learnt (discoveries, tokens, failures already said) belongs to
        # the backend instance keyring holds, and to no module.
        self._engine: Engine | None = None

    def get_credential(self, service: str, username: str | None) -> Credential | None:
        secret = self._lookup(service)
        if secret is None:
            return None
        name = username if isinstance(username, str) and username else DEFAULT_USERNAME
        return SimpleCredential(name, secret)

    def get_password(self, service: str, username: str) -> str | None:
        return self._lookup(service)

    def set_password(self, service: str, username: str, password: str) -> None:
        # Let keyring's chainer move on to a backend that stores things.
        raise NotImplementedError

    def delete_password(self, service: str, username: str) -> None:
        raise NotImplementedError

    def _lookup(self, service: object) -> str | None:
        """The token for an Azure Artifacts service string; None for anything else or on
        failure, with one line on stderr that says what to do."""
        try:
            feed = parse_feed_url(service, extra_hosts(os.environ))
            if feed is None:
                return None
            from . import log as _log
            from .errors import AlreadySaid, NofussError
            from .lookup import Engine

            if self._engine is None:
                self._engine = Engine()
            engine = self._engine
        except Exception:  # noqa: BLE001 - nothing may escape into the client
            return None
        try:
            return engine.credential(feed).secret
        except AlreadySaid as exc:
            _log.debug("%s (said above)", exc)
        except NofussError as exc:
            _log.warn("%s", exc)
        except Exception as exc:  # noqa: BLE001 - nothing may escape into the client
            _log.warn(
                "unexpected %s while looking up %s; please report it with %s=1 output",
                type(exc).__name__,
                feed.label,
                _log.DEBUG_VAR,
            )
        return None
