"""Small builders shared by the unit tests: unsigned JWTs, feeds, HTTP responses."""

from __future__ import annotations

import base64
import contextlib
import errno
import io
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from artifacts_keyring_nofuss.deadline import Deadline
from artifacts_keyring_nofuss.feeds import Feed, parse_feed_url
from artifacts_keyring_nofuss.http import Response
from artifacts_keyring_nofuss.identities import TokenRequest
from artifacts_keyring_nofuss.settings import Settings

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
OTHER_TENANT = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
NULL_TENANT = "00000000-0000-0000-0000-000000000000"
USER_OID = "11111111-2222-3333-4444-555555555555"
APP_ID = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def make_jwt(claims: Any, header: dict[str, Any] | None = None) -> str:
    """An unsigned JWT-shaped string: claims are only ever read, never verified, here."""
    head = b64url(json.dumps(header or {"alg": "RS256", "typ": "JWT"}).encode())
    body = b64url(json.dumps(claims).encode())
    return f"{head}.{body}.c2lnbmF0dXJl"


def user_jwt(exp: float = 4_000_000_000, **extra: Any) -> str:
    claims: dict[str, Any] = {
        "idtyp": "user",
        "scp": "user_impersonation",
        "oid": USER_OID,
        "tid": TENANT,
        "upn": "alice@contoso.com",
        "exp": exp,
    }
    claims.update(extra)
    return make_jwt(claims)


def app_jwt(exp: float = 4_000_000_000, **extra: Any) -> str:
    claims: dict[str, Any] = {
        "idtyp": "app",
        "roles": ["default"],
        "oid": APP_ID,
        "appid": APP_ID,
        "tid": TENANT,
        "exp": exp,
    }
    claims.update(extra)
    return make_jwt(claims)


def feed(url: str = "https://pkgs.dev.azure.com/Contoso/_packaging/feed/pypi/simple/") -> Feed:
    parsed = parse_feed_url(url)
    assert parsed is not None, url
    return parsed


def response(
    status: int = 401, headers: list[tuple[str, str]] | None = None, body: Any = b""
) -> Response:
    if not isinstance(body, bytes):
        body = json.dumps(body).encode("utf-8")
    return Response(status=status, headers=tuple(headers or ()), body=body)


def token_request(
    target: Feed | None = None, tenant: str | None = None, seconds: float = 30
) -> TokenRequest:
    """A source's request, with the settings of the environment as it is now (a test's
    monkeypatched variables included)."""
    return TokenRequest(
        feed=target if target is not None else feed(),
        tenant=tenant,
        deadline=Deadline(seconds),
        settings=Settings.load(),
    )


def as_user(uid: int, action: Callable[[], object]) -> str:
    """Run `action` in a forked child that drops to `uid` (another local user; the tests run
    as root outside the namespace): "ok", or "<exception>: <message>"."""
    readable, writable = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child
        try:
            os.setgid(uid)
            os.setuid(uid)
            try:
                with contextlib.redirect_stdout(io.StringIO()):
                    action()
                outcome = "ok"
            except OSError as exc:
                outcome = errno.errorcode.get(exc.errno or 0, "OSError")
            except Exception as exc:
                outcome = f"{type(exc).__name__}: {exc}"
            os.write(writable, outcome.encode())
        finally:
            os._exit(0)
    os.close(writable)
    os.waitpid(child, 0)
    with os.fdopen(readable, "rb") as result:
        return result.read().decode()


def open_as(uid: int, path: Path) -> str:
    """What another user gets opening `path`: "ok", or the errno's name ("EACCES")."""
    return as_user(uid, lambda: os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK)))
