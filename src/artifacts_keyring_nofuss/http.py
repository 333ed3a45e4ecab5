"""The one way we talk HTTP: timeouts, no redirects, bounded bodies, bearers only to allowlisted
URLs.

Loaded only when an Azure URL is asked for; `requests` is imported here and nowhere earlier.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests

from . import __version__
from .endpoints import is_token_url
from .errors import NofussError

USER_AGENT = f"artifacts-keyring-nofuss/{__version__}"
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 20.0
MAX_BODY = 1024 * 1024


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


class Http:
    def __init__(self) -> None:
        self._session = requests.Session()
        self._session.headers["User-Agent"] = USER_AGENT

    def close(self) -> None:
        self._session.close()

    def get(self, url: str) -> Response:
        return self._send("GET", url, {}, None)

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
        return self._send("POST", url, headers, json.dumps(body).encode("utf-8"))

    def _send(self, method: str, url: str, headers: dict[str, str], data: bytes | None) -> Response:
        host = urlsplit(url).netloc
        try:
            with self._session.request(
                method,
                url,
                headers=headers,
                data=data,
                allow_redirects=False,
                timeout=(CONNECT_TIMEOUT, READ_TIMEOUT),
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
            raise NetworkError(
                f"the proxy refused the connection to {host}: check HTTPS_PROXY"
            ) from None
        except requests.exceptions.Timeout:
            raise NetworkError(f"{host} did not answer in time: check the network") from None
        except requests.exceptions.ConnectionError:
            raise NetworkError(
                f"cannot connect to {host}: check the network, DNS and HTTPS_PROXY"
            ) from None
        except (requests.exceptions.RequestException, ValueError) as exc:
            raise NetworkError(f"request to {host} failed: {type(exc).__name__}") from None
