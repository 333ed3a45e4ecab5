"""Is a cached session token still accepted by its feed? One authenticated HEAD, before the token
is handed out again, so that a revoked token or a changed policy costs one cold lookup instead
of a failing install. The standard library does it: `requests` would cost more than the whole
warm lookup is allowed to take.
"""

from __future__ import annotations

import base64
import os
import ssl
import urllib.error
import urllib.request
from http.client import HTTPException

from . import __version__
from . import log as _log
from .feeds import Feed

TIMEOUT = 5.0


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None  # a 3xx surfaces as an HTTPError: a sign-in redirect means "refused"


def _context() -> ssl.SSLContext:
    # The trust the cold path has through requests: REQUESTS_CA_BUNDLE when set, else the
    # system's store (which honours SSL_CERT_FILE).
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    return ssl.create_default_context(cafile=bundle or None)


def still_accepted(feed: Feed, token: str) -> bool | None:
    """True: the feed took it. False: refused (401, or a sign-in page). None: could not tell."""
    status = answer(feed, token)
    if status is None:
        return None
    return not refused(status)


def refused(status: int) -> bool:
    return status in (401, 203) or 300 <= status < 400


def answer(feed: Feed, token: str) -> int | None:
    """The feed index's status for this token, or None when the feed could not be reached."""
    basic = base64.b64encode(f"VssSessionToken:{token}".encode()).decode("ascii")
    request = urllib.request.Request(  # noqa: S310 - feed.index_url is https on a feed host
        feed.index_url,
        method="HEAD",
        headers={
            "Authorization": f"Basic {basic}",
            "User-Agent": f"artifacts-keyring-nofuss/{__version__}",
            "X-TFS-FedAuthRedirect": "Suppress",
        },
    )
    proxies = urllib.request.getproxies()
    if "https" not in proxies and "all" in proxies:
        proxies["https"] = proxies["all"]  # as requests does on the cold path
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler(proxies),
        _NoRedirect(),
        urllib.request.HTTPSHandler(context=_context()),
    )
    try:
        with opener.open(request, timeout=TIMEOUT) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (urllib.error.URLError, HTTPException, OSError, ValueError) as exc:
        _log.debug("probe: could not check the token with %s (%s)", feed.host, exc)
        return None
    _log.debug("probe: %s answered %s for the token", feed.host, status)
    return int(status)
