"""The user who signed in with `ak-nofuss login` (no az needed): silent from msal's cache.

With no usable sign-in, and only when a terminal is attached and prompts are allowed, a device
code sign-in is offered on the controlling terminal (pip and uv hide or hold back stderr); it is
bounded by ARTIFACTS_CREDENTIALPROVIDER_DEVICEFLOWTIMEOUTSECONDS. Otherwise this fails at once
with the command that signs the user in.
"""

from __future__ import annotations

from artifacts_keyring_nofuss import log as _log
from artifacts_keyring_nofuss import signin
from artifacts_keyring_nofuss.devops import DEFAULT_SCOPE
from artifacts_keyring_nofuss.errors import SourceError
from artifacts_keyring_nofuss.identities import Prepared, TokenRequest, Unavailable
from artifacts_keyring_nofuss.settings import NONINTERACTIVE_VAR
from artifacts_keyring_nofuss.tokens import Token

SOURCE = "interactive"


def login_command(request: TokenRequest) -> str:
    return f"run `ak-nofuss login {request.feed.index_url}`"


def _cannot_prompt(request: TokenRequest, problem: str, present: bool) -> Unavailable | None:
    """Why no sign-in prompt can be shown here, or None when one can."""
    if request.settings.noninteractive:
        return Unavailable(
            f"{problem}; prompts are off ({NONINTERACTIVE_VAR})",
            present=present,
            fix=login_command(request),
        )
    terminal = signin.open_terminal()
    if terminal is None:
        return Unavailable(
            f"{problem}, and no terminal to sign in on", present=present, fix=login_command(request)
        )
    terminal.close()
    return None


def _record(request: TokenRequest) -> signin.Record | None:
    """The sign-in to use: one made with the public client the settings name."""
    record = signin.load_record()
    if record is None or record.client_id != signin.client_for(request.settings):
        return None
    return record


def _nobody(request: TokenRequest) -> str:
    if request.settings.client_id is None:
        return "nobody signed in with `ak-nofuss login`"
    return f"nobody signed in with `ak-nofuss login` as client {request.settings.client_id}"


class InteractiveSource:
    def prepare(self, request: TokenRequest) -> Prepared | Unavailable:
        scope = " ".join(signin.scopes_for(request.settings, request.feed.write))
        record = _record(request)
        if record is not None:
            return Prepared(record.identity, scope)
        return _cannot_prompt(request, _nobody(request), False) or Prepared(scope=scope)

    def get_token(self, request: TokenRequest) -> Token | Unavailable:
        record = _record(request)
        scopes = signin.scopes_for(request.settings, request.feed.write)
        authority = signin.authority_for(request.tenant, request.settings)
        session: signin.SignIn | None = None
        if record is not None:
            with _log.hushed("msal"):
                session = signin.SignIn(authority, request.settings)
                result = session.silent(record, scopes)
            if result is not None:
                _log.debug("interactive: signed in as %s (from msal's cache)", record.username)
                return signin.token_from(result, SOURCE, record.identity, scopes)
            problem = f"the sign-in of {record.username} has expired or was revoked"
            if scopes != [DEFAULT_SCOPE]:
                problem += f", or was not granted {' '.join(scopes)}"
        else:
            problem = _nobody(request)
        cannot = _cannot_prompt(request, problem, present=record is not None)
        if cannot is not None:
            return cannot
        terminal = signin.open_terminal()
        if terminal is None:  # gone since the check above
            return Unavailable(f"{problem}, and no terminal to sign in on", present=True)
        timeout = request.settings.device_flow_timeout
        with terminal, _log.hushed("msal"):
            if session is None:
                session = signin.SignIn(authority, request.settings)

            def say(message: str) -> None:
                terminal.write(f"{_log.PREFIX}sign in to read {request.feed.label}: {message}\n")
                terminal.flush()

            # A person at a sign-in prompt is not a hung network: the lookup waits for them,
            # and only now that a prompt is shown (a silent sign-in keeps the lookup's deadline).
            request.deadline.extend(timeout + request.deadline.seconds)
            try:
                result = session.device_code(say, timeout, scopes)
            except SourceError:
                terminal.write(f"{_log.PREFIX}no sign-in; {login_command(request)}\n")
                raise
            record = session.record(result, authority)
            signin.save_record(record)
            terminal.write(f"{_log.PREFIX}signed in.\n")
        request.deadline.extend(request.deadline.seconds)  # the exchange gets its own budget
        return signin.token_from(result, SOURCE, record.identity, scopes)
