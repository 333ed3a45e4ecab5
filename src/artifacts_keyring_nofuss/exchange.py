"""User bearer -> Azure DevOps session token, scoped to what the URL needs and no more."""

from __future__ import annotations

import re
import socket
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from . import claims as _claims
from . import devops
from . import log as _log
from .discovery import Discovery
from .errors import BearerRefused, ExchangeError
from .feeds import Feed
from .tokens import Token, describe_time

if TYPE_CHECKING:
    from .http import Network, Response

API = "_apis/Token/SessionTokens?api-version=5.0-preview.1&tokenType=SelfDescribing"
_MAX_TOKEN = 16 * 1024
_ISO_TIME = re.compile(
    r"(?P<base>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(?P<fraction>\d+))?"
    r"(?P<offset>Z|[+-]\d{2}:\d{2})?"
)


class PolicyRefused(ExchangeError):
    """The organisation's policy forbids minting tokens of this kind for users ("Restrict
    personal access token creation"): the user's Entra token is what Azure DevOps still takes."""

    def __init__(self, what: str, policy: str) -> None:
        super().__init__(what)
        self.policy = policy


# How Azure DevOps names the policy that refuses session tokens: the error's type (typeKey or
# typeName) when it has one, else its words. Seen as 400 and as 403, worded several ways.
_POLICY_TYPES = re.compile(r"(?i)(\w{0,60}PatCreationPolicy\w{0,40})")
_POLICY_WORDS = re.compile(
    r"(?i)(?:polic(?:y|ies)\b.{0,80}\b(?:restrict|disabl|block|prohibit|not allow|forbid)\w*.{0,80}"
    r"\b(?:personal access tokens?|PATs?)\b"
    r"|\b(?:personal access tokens?|PATs?)\b.{0,80}\b(?:restricted|disabled|blocked|not allowed|"
    r"forbidden)\b.{0,80}\bpolic(?:y|ies)\b)"
)


def policy_refusal(response: Response) -> str | None:
    """The name of the organisation policy that refused the exchange, or None when the refusal
    was something else (a bad token, a lifetime too long, TF401444, a busy service)."""
    if response.status not in (400, 403):
        return None
    data = response.json()
    if not isinstance(data, dict):
        return None
    for field in ("typeKey", "typeName", "errorCode"):
        value = data.get(field)
        if isinstance(value, str):
            found = _POLICY_TYPES.search(value)
            if found is not None:
                name = found.group(1)
                return name.removesuffix("Exception") or name
    message = data.get("message")
    if isinstance(message, str) and len(message) < 4096:
        named = _POLICY_TYPES.search(message)
        if named is not None:
            return named.group(1).removesuffix("Exception")
        if _POLICY_WORDS.search(" ".join(message.split())):
            return "restrict personal access token creation"
    return None


def session_token(
    http: Network, feed: Feed, found: Discovery, bearer: Token, lifetime_minutes: float
) -> Token:
    """A session token for the feed's scope, minted from `bearer`; BearerRefused (another
    source may do better), PolicyRefused (the organisation mints none for users), or
    ExchangeError."""
    url = found.authorization_endpoint + API
    valid_to = datetime.fromtimestamp(time.time() + lifetime_minutes * 60, tz=timezone.utc)
    body: dict[str, str] = {
        "displayName": f"artifacts-keyring-nofuss on {_hostname()}",
        "scope": feed.scope,
        "validTo": valid_to.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    _log.debug("exchange: asking %s for scope %s until %s", url, feed.scope, body["validTo"])
    # Minting is harmless to repeat (at most one more short-lived token): a connection that
    # drops after sending is retried like a GET, within the deadline.
    response = http.post_json(url, body, bearer.secret, replay_safe=True)
    if response.status == 400 and policy_refusal(response) is None:
        # The organisation's policy caps session lifetimes; ask for its default instead.
        _log.debug("exchange: 400 for that lifetime, retrying with the service's default")
        del body["validTo"]
        response = http.post_json(url, body, bearer.secret, replay_safe=True)
    return _read_answer(response, feed, bearer)


def _read_answer(response: Response, feed: Feed, bearer: Token) -> Token:
    policy = policy_refusal(response)
    if policy is not None:
        raise PolicyRefused(
            f"the organisation {feed.org!r} does not let users mint session tokens (policy "
            f"{policy!r}, HTTP {response.status})",
            policy,
        )
    if response.status == 401:
        message = _message(response)
        if "TF401444" in message:
            raise ExchangeError(
                f"{bearer.who} has never signed in to organisation {feed.org!r}",
                f"open https://dev.azure.com/{feed.org} in a browser once, then retry",
            )
        raise BearerRefused(
            f"the token service of {feed.org!r} refused the token of {bearer.who}"
            + (f" ({message[:200]})" if message else ""),
            f"ask an administrator of organisation {feed.org!r} to add {bearer.who} (or sign "
            "in as an account that has access)",
        )
    if response.status == 203 or 300 <= response.status < 400:
        raise BearerRefused(f"the token service of {feed.org!r} asked for an interactive sign-in")
    if response.status != 200:
        raise ExchangeError(
            f"the token service of {feed.org!r} answered HTTP {response.status}"
            + (f" ({_message(response)[:200]})" if _message(response) else ""),
            "try again later" if response.status >= 500 else None,
        )
    data = response.json()
    secret = data.get("token") if isinstance(data, dict) else None
    if (
        not isinstance(secret, str)
        or not 0 < len(secret) <= _MAX_TOKEN
        or not secret.isascii()
        or not secret.isprintable()
        or " " in secret
    ):
        raise ExchangeError(f"the token service of {feed.org!r} answered without a usable token")
    expires_on = _parse_time(data.get("validTo")) or _claims.expiry(_claims.read_claims(secret))
    token = Token(
        secret=secret,
        expires_on=expires_on,
        user=True,
        identity=bearer.identity,  # minted from this bearer: kept under its identity
        who=bearer.who,
        source=bearer.source,
        kind=devops.SESSION,
        scope=feed.scope,
    )
    _log.debug(
        "exchange: got a %s session token for %s, valid until %s",
        feed.scope,
        bearer.who,
        describe_time(expires_on),
    )
    return token


def _message(response: Response) -> str:
    data = response.json()
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return " ".join(_log.printable(data["message"]).split())
    return ""


def _parse_time(value: object) -> float | None:
    if not isinstance(value, str) or not 10 <= len(value) <= 40:
        return None
    match = _ISO_TIME.fullmatch(value.strip())
    if match is None:
        return None
    # Python 3.10 parses at most six fractional digits; the service sends seven.
    fraction = (match["fraction"] or "")[:6]
    offset = match["offset"] or "+00:00"
    text = match["base"] + (f".{fraction}" if fraction else "") + offset.replace("Z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    stamp = parsed.timestamp()
    return stamp if stamp > 0 else None


def _hostname() -> str:
    name = socket.gethostname().split(".")[0]
    return "".join(c for c in name if c.isalnum() or c in "-_")[:40] or "unknown host"
