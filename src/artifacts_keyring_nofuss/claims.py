"""Reading a JWT's claims without trusting them.

Claims decide only two things: is this a user or an application, and when does it expire.
Anything that is not a well-formed JWT with a JSON object payload is simply "not a JWT".
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

_MAX_TOKEN_LENGTH = 32 * 1024
# Expiries outside these bounds (1970-2100) are garbage, not times.
_MIN_EPOCH = 0
_MAX_EPOCH = 4_102_444_800


def read_claims(token: str) -> dict[str, Any] | None:
    if not isinstance(token, str) or len(token) > _MAX_TOKEN_LENGTH:
        return None
    parts = token.split(".")
    if len(parts) != 3 or not parts[1]:
        return None
    payload = parts[1]
    try:
        raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        claims = json.loads(raw.decode("utf-8"))
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError):
        return None
    return claims if isinstance(claims, dict) else None


def _text(claims: dict[str, Any], *names: str) -> str | None:
    for name in names:
        value = claims.get(name)
        if isinstance(value, str) and value and value.isprintable() and len(value) <= 256:
            return value
    return None


def expiry(claims: dict[str, Any] | None) -> float | None:
    """`exp` as epoch seconds, or None when absent or not a sane number."""
    if not claims:
        return None
    value = claims.get("exp")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if not _MIN_EPOCH < value < _MAX_EPOCH:
        return None
    return float(value)


def is_user(claims: dict[str, Any] | None) -> bool:
    """A delegated (user) token, which is exchanged; anything else is used as it is."""
    if not claims:
        return False
    idtyp = claims.get("idtyp")
    if idtyp in ("user", "app"):
        return bool(idtyp == "user")
    return bool(claims.get("scp"))


def identity(claims: dict[str, Any] | None) -> str | None:
    """A stable name for who the token stands for: tenant plus user or application."""
    if not claims:
        return None
    who = _text(claims, "oid", "upn", "unique_name", "preferred_username", "appid", "azp", "sub")
    if who is None:
        return None
    tenant = _text(claims, "tid")
    return f"{tenant}/{who}" if tenant else who


def display_name(claims: dict[str, Any] | None) -> str | None:
    """What a person recognises in debug output: an e-mail, else an application id."""
    if not claims:
        return None
    return _text(claims, "upn", "unique_name", "preferred_username", "appid", "azp", "oid")


def tenant(claims: dict[str, Any] | None) -> str | None:
    return _text(claims, "tid") if claims else None
