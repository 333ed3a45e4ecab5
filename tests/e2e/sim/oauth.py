"""OAuth error answers as Entra ID writes them, and scope arithmetic."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from . import jwts
from .httpserver import Request, Response, json_response


class OAuthError(Exception):
    def __init__(
        self, status: int, error: str, code: int, message: str, suberror: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.code = code
        self.message = message
        # What msal reads to tell a consent problem from others (e.g. consent_required).
        self.suberror = suberror


def describe(err: OAuthError) -> tuple[str, str, str, str]:
    """(error_description, trace id, correlation id, timestamp) as Entra writes them."""
    trace, correlation = jwts.new_guid(), jwts.new_guid()
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
    description = (
        f"AADSTS{err.code}: {err.message} Trace ID: {trace} Correlation ID: {correlation} "
        f"Timestamp: {stamp}"
    )
    return description, trace, correlation, stamp


def oauth_error_response(request: Request, err: OAuthError) -> Response:
    description, trace, correlation, stamp = describe(err)
    body: dict[str, Any] = {
        "error": err.error,
        "error_description": description,
        "error_codes": [err.code],
        "timestamp": stamp,
        "trace_id": trace,
        "correlation_id": correlation,
        "error_uri": f"https://{request.host}/error?code={err.code}",
    }
    if err.suberror is not None:
        body["suberror"] = err.suberror
    return json_response(
        err.status, body, [("Cache-Control", "no-store, no-cache"), ("Pragma", "no-cache")]
    )


def resource_of_scope(scope: str) -> str:
    """`499b84ac-.../.default` -> the GUID; `https://management.core.windows.net//.default`
    -> `https://management.core.windows.net/`."""
    if "/" not in scope:
        return scope
    return scope.rsplit("/", 1)[0]
