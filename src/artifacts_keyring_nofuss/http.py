"""The one way we talk HTTP: one deadline, retries with jittered backoff, no redirects, bounded
bodies, bearers only to allowlisted URLs, proxies from the environment, and the trust pip has:
the operating system's store (truststore), plus REQUESTS_CA_BUNDLE when it is set.

Loaded only when an Azure URL is asked for and nothing is cached: `requests` is imported here
and nowhere earlier.
"""

from __future__ import annotations

import email.utils
import json
import random
import ssl
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
import truststore
from requests.adapters import HTTPAdapter
from urllib3.exceptions import NewConnectionError

from . import __version__
from . import log as _log
from .deadline import Deadline
from .endpoints import is_github_oidc_url, is_token_url
from .errors import NofussError

USER_AGENT = f"artifacts-keyring-nofuss/{__version__}"
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 20.0
MAX_BODY = 1024 * 1024
ATTEMPTS = 3
BACKOFF = 0.5
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# A POST is replayed only when the server said it did not act on it.
POST_RETRY_STATUSES = frozenset({429, 503})


class NetworkError(NofussError):
    """A request could not be completed; the message names the host and what to check."""


@dataclass(frozen=True)
class Response:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header_values(self, name: str) -> list[str]:
        lowered = name.lower()
        return [v for k, v in self.headers if k.lower() == lowered]

    def header(self, name: str) -> str | None:
        values = self.header_values(name)
        return values[0] if values else None

    def json(self) -> Any:
        try:
            return json.loads(self.body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError, RecursionError):
            return None


class _Attempt(Exception):
    """One try failed in a way that may be retried; `sent` says whether the server may have
    seen the request."""

    def __init__(self, message: str, sent: bool) -> None:
        super().__init__(message)
        self.sent = sent


class _TrustStoreAdapter(HTTPAdapter):
    """requests' adapter with the system trust store; REQUESTS_CA_BUNDLE, when set, is loaded
    into the same context by requests itself (as pip does it)."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self._context = context
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["ssl_context"] = self._context
        super().init_poolmanager(*args, **kwargs)

    def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
        kwargs["ssl_context"] = self._context
        return super().proxy_manager_for(proxy, **kwargs)


def _tls_context() -> ssl.SSLContext:
    return truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


def trusted_session() -> requests.Session:
    """A requests session with our trust and User-Agent, for libraries that take one (msal)."""
    session = requests.Session()
    session.headers["User-Agent"] = USER_AGENT
    session.mount("https://", _TrustStoreAdapter(_tls_context()))
    return session


class Http:
    def __init__(self, deadline: Deadline) -> None:
        self.deadline = deadline
        self._session = trusted_session()

    def close(self) -> None:
        self._session.close()

    def get(self, url: str, bearer: str | None = None) -> Response:
        headers: dict[str, str] = {}
        if bearer is not None:
            # Only GitHub's OIDC service is ever sent a bearer in a GET.
            if not is_github_oidc_url(url):
                raise NetworkError(f"refusing to send a token to {urlsplit(url).netloc!r}")
            headers = {"Authorization": f"Bearer {bearer}", "Accept": "application/json"}
        return self._with_retries("GET", url, headers, None)

    def post_json(self, url: str, body: dict[str, Any], bearer: str) -> Response:
        if not is_token_url(url):
            # Discovery validated this URL already; this is the last line of defence.
            raise NetworkError(f"refusing to send a token to {urlsplit(url).netloc!r}")
        headers = {
            "Authorization": f"Bearer {bearer}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "X-TFS-FedAuthRedirect": "Suppress",
        }
        return self._with_retries("POST", url, headers, json.dumps(body).encode("utf-8"))

    def _with_retries(
        self, method: str, url: str, headers: dict[str, str], data: bytes | None
    ) -> Response:
        host = urlsplit(url).netloc
        retry_statuses = POST_RETRY_STATUSES if method == "POST" else RETRY_STATUSES
        for attempt in range(1, ATTEMPTS + 1):
            last = attempt == ATTEMPTS
            try:
                response = self.deadline.run(
                    f"{method} {host}", lambda: self._send(method, url, headers, data)
                )
            except _Attempt as failed:
                if last or (failed.sent and method == "POST"):
                    raise NetworkError(str(failed)) from None
                if not self._pause(attempt, None, str(failed)):
                    raise NetworkError(str(failed)) from None
                continue
            if response.status not in retry_statuses or last:
                return response
            if not self._pause(attempt, response.header("Retry-After"), str(response.status)):
                return response
        raise NetworkError(f"no answer from {host}")  # the loop always returns or raises

    def _pause(self, attempt: int, retry_after: str | None, why: str) -> bool:
        """Sleep before the next attempt; False when the deadline leaves no room for it."""
        delay = _retry_after(retry_after)
        if delay is None:
            delay = BACKOFF * (2 ** (attempt - 1)) * random.uniform(0.5, 1.5)  # noqa: S311 - jitter, not crypto
        if delay >= self.deadline.remaining():
            _log.debug("http: %s; no time left to retry", why)
            return False
        _log.debug("http: %s; retrying in %.1f s", why, delay)
        time.sleep(delay)
        return True

    def _send(self, method: str, url: str, headers: dict[str, str], data: bytes | None) -> Response:
        host = urlsplit(url).netloc
        remaining = max(0.1, self.deadline.remaining())
        timeout = (min(CONNECT_TIMEOUT, remaining), min(READ_TIMEOUT, remaining))
        try:
            with self._session.request(
                method,
                url,
                headers=headers,
                data=data,
                allow_redirects=False,
                timeout=timeout,
                stream=True,
            ) as raw:
                body = raw.raw.read(MAX_BODY + 1, decode_content=True) or b""
                pairs = tuple((k, v) for k in raw.raw.headers for v in raw.raw.headers.getlist(k))
                return Response(raw.status_code, pairs, body[:MAX_BODY])
        except requests.exceptions.SSLError:
            raise NetworkError(
                f"TLS verification failed for {host}: if a proxy inspects TLS, point "
                "REQUESTS_CA_BUNDLE at its CA certificate"
            ) from None
        except requests.exceptions.ProxyError:
            raise _Attempt(
                f"the proxy refused the connection to {host}: check HTTPS_PROXY", sent=False
            ) from None
        except requests.exceptions.ConnectTimeout:
            raise _Attempt(f"cannot connect to {host} in time: check the network", False) from None
        except requests.exceptions.Timeout:
            raise _Attempt(f"{host} did not answer in time", sent=True) from None
        except requests.exceptions.ConnectionError as exc:
            never_sent = _never_sent(exc)
            message = (
                f"cannot connect to {host}: check the network, DNS and HTTPS_PROXY"
                if never_sent
                else f"the connection to {host} broke"
            )
            raise _Attempt(message, sent=not never_sent) from None
        except (requests.exceptions.RequestException, ValueError, OSError) as exc:
            raise _Attempt(f"request to {host} failed: {type(exc).__name__}", sent=True) from None


def _never_sent(exc: requests.exceptions.ConnectionError) -> bool:
    """True when the connection was never made, so the server cannot have seen the request."""
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, NewConnectionError)


def _retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: a number, or an HTTP date. Garbage means 'not stated'."""
    if value is None or len(value) > 64:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - time.time())
