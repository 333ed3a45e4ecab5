"""Failures inside the package. The keyring boundary turns each into None plus one line."""

from __future__ import annotations


class NofussError(Exception):
    """Something applied and failed; the message says what to do, and holds no secret."""


class ConfigError(NofussError):
    """The user's configuration names something that does not exist."""


class DiscoveryError(NofussError):
    """The feed's anonymous answer could not be used, or pointed somewhere untrusted."""


class SourceError(NofussError):
    """An identity source applied but produced no token."""


class ExchangeError(NofussError):
    """The session-token service did not give a token."""


class FinalSourceError(SourceError):
    """A source applied and failed in a way no later source may paper over (a token the user
    handed us has expired): the lookup stops and says so."""


class Failed(NofussError):
    """An `ak-nofuss` command failed; the message is the one line for stderr."""


class BearerRefused(ExchangeError):
    """The exchange refused this bearer (401): another identity source may do better."""


class AlreadySaid(NofussError):
    """The same failure, asked again within a minute in this process (twine and pdm ask with
    get_credential, then get_password): the user has read the line once already."""
