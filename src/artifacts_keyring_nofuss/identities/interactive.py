"""The user who signed in with `ak-nofuss login` (no az needed): silent from msal's cache.

With no usable sign-in, and only when a terminal is attached and prompts are allowed, a device
code sign-in is offered on the controlling terminal (pip and uv hide or hold back stderr); it is
bounded by ARTIFACTS_CREDENTIALPROVIDER_DEVICEFLOWTIMEOUTSECONDS. Otherwise this fails at once
with the command that signs the user in.
"""

from __future__ import annotations

from artifacts_keyring_nofuss import config, signin
from artifacts_keyring_nofuss import log as _log
from artifacts_keyring_nofuss.errors import SourceError
from artifacts_keyring_nofuss.identities import TokenRequest, Unavailable
from artifacts_keyring_nofuss.tokens import Token


def login_command(request: TokenRequest) -> str:
    return f"`ak-nofuss login {request.feed.index_url}`"


class InteractiveSource:
    name = "interactive"
    needs_discovery = True
    prompts = True

    def cache_identity(self) -> str | None:
        record = signin.load_record()
        return record.identity if record else None

    def get_token(self, request: TokenRequest) -> Token | Unavailable:
        record = signin.load_record()
        authority = signin.authority_for(request.tenant)
        session: signin.SignIn | None = None
        if record is not None:
            with _log.hushed("msal"):
                session = signin.SignIn(authority)
                result = session.silent(record)
            if result is not None:
                _log.debug("interactive: signed in as %s (from msal's cache)", record.username)
                return signin.token_from(result, self.name)
            problem = f"the sign-in of {record.username} has expired or was revoked"
        else:
            problem = "nobody signed in with `ak-nofuss login`"
        present = record is not None
        if config.noninteractive():
            return Unavailable(
                f"{problem}; prompts are off ({config.NONINTERACTIVE_VAR}): run "
                f"{login_command(request)}",
                present=present,
            )
        terminal = signin.open_terminal()
        if terminal is None:
            return Unavailable(
                f"{problem}, and no terminal to sign in on: run {login_command(request)}",
                present=present,
            )
        timeout = config.device_flow_timeout()
        with terminal, _log.hushed("msal"):
            if session is None:
                session = signin.SignIn(authority)

            def say(message: str) -> None:
                terminal.write(f"{_log.PREFIX}sign in to read {request.feed.label}: {message}\n")
                terminal.flush()

            try:
                result = session.device_code(say, timeout)
            except SourceError:
                terminal.write(f"{_log.PREFIX}no sign-in; run {login_command(request)}\n")
                raise
            signin.save_record(session.record(result, authority))
            terminal.write(f"{_log.PREFIX}signed in.\n")
        return signin.token_from(result, self.name)
