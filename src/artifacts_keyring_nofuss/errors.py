"""Failures inside the package. The keyring boundary turns each into None plus one line.

A failure carries what went wrong and, apart, what to do about it: the one line, the debug
output and `ak-nofuss doctor` each render those two fields their own way, and nothing ever has
to search a sentence for where the advice begins.
"""

from __future__ import annotations


class NofussError(Exception):
    """Something applied and failed; `what` says what, `fix` (when known) what to do. Neither
    holds a secret."""

    def __init__(self, what: str, fix: str | None = None) -> None:
        super().__init__(what)
        self.what = what
        self.fix = fix

    def __str__(self) -> str:
        return self.what if not self.fix else f"{self.what}; {self.fix}"


class ConfigError(NofussError):
    """The user's configuration names something that does not exist or cannot be."""


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
