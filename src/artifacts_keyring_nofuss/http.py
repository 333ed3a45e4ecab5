"""The one way we talk HTTP. Every request we make, whoever makes it (discovery, the exchange,
the warm-path check, GitHub's OIDC service, msal and azure-identity), gets from here:

- TLS trust as pip has it: the operating system's store (truststore), plus REQUESTS_CA_BUNDLE
  (or CURL_CA_BUNDLE) when set, so that a TLS-inspecting corporate proxy works;
- proxies from HTTPS_PROXY / ALL_PROXY, minus NO_PROXY, and nothing else from the environment:
  no ~/.netrc, so a request carries exactly the credential we chose, or none;
- our User-Agent, no redirects, bounded bodies, and the lookup's deadline.

`requests` is imported only by the classes that use it (a cold lookup); the warm path's one
check uses the standard library, with the same trust and proxies.
"""

from __future__ import annotations

import functools
import json
import ssl
import time
from base64 import b64encode
from collections.abc import Callable, Mapping
from http.client import HTTPException
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol
from urllib.parse import unquote, urlsplit

from . import __version__
from . import log as _log
from .deadline import Deadline, DeadlineExceeded
from .endpoints import is_github_oidc_url, is_token_url
from .errors import NofussError

if TYPE_CHECKING:
    import requests

USER_AGENT = f"artifacts-keyring-nofuss/{__version__}"
CA_BUNDLE_VARS = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 20.0
MAX_BODY = 1024 * 1024
ATTEMPTS = 3
BACKOFF = 0.5
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# A POST is replayed only when the server said it did not act on it, unless the caller says a
# replay is harmless.
POST_RETRY_STATUSES = frozenset({429, 503})


class NetworkError(NofussError):
    """A request could not be completed; `what` names the host, `fix` what to check."""


class Response(NamedTuple):
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


class Network(Protocol):
    """What the lookup asks of the network: Http below, or a fake in tests."""

    def get(self, url: str, bearer: str | None = None) -> Response: ...

    def post_json(
        self, url: str, body: dict[str, Any], bearer: str, replay_safe: bool = False
    ) -> Response: ...

    def close(self) -> None: ...


# --- trust and proxies: the same for every caller ----------------------------------------------


def ca_bundle(env: Mapping[str, str]) -> str | None:
    for name in CA_BUNDLE_VARS:
        value = env.get(name, "").strip()
        if value:
            return value
    return None


def tls_context(env: Mapping[str, str]) -> ssl.SSLContext:
    """The operating system's trust store, plus the CA bundle the user pointed us at."""
    import truststore

    context = truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    bundle = ca_bundle(env)
    if bundle is not None:
        try:
            context.load_verify_locations(cafile=bundle)
        except (OSError, ssl.SSLError) as exc:
            name = next(n for n in CA_BUNDLE_VARS if env.get(n, "").strip())
            raise NetworkError(
                f"cannot load the CA certificates in {name}={bundle} "
                f"({getattr(exc, 'strerror', None) or type(exc).__name__})",
                f"point {name} at a PEM file of CA certificates, or unset it",
            ) from None
    return context


# In the order requests and curl read them.
PROXY_VARS = ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY")
NO_PROXY_VARS = ("no_proxy", "NO_PROXY")


def first_set(env: Mapping[str, str], names: tuple[str, ...]) -> tuple[str, str] | None:
    """The first of `names` set to something other than blanks, and its value, stripped."""
    for name in names:
        value = env.get(name, "").strip()
        if value:
            return name, value
    return None


def proxy_for(url: str, env: Mapping[str, str]) -> str | None:
    """The proxy for an https URL, as requests and curl choose it: https_proxy, else
    all_proxy, unless NO_PROXY names the host."""
    parts = urlsplit(url)
    found = first_set(env, PROXY_VARS)
    if found is None:
        return None
    proxy = found[1]
    no_proxy = first_set(env, NO_PROXY_VARS)
    if no_proxy and bypassed(parts.hostname or "", parts.port, no_proxy[1]):
        return None
    # `user:pass@proxy:3128`, as curl takes it: an http proxy.
    return proxy if "://" in proxy else f"http://{proxy}"


def bypassed(host: str, port: int | None, no_proxy: str) -> bool:
    """Does NO_PROXY name this host, as curl and requests read it: comma-separated names,
    each matching itself and its subdomains (a leading dot or not), `*` for all, an optional
    `:port`."""
    host = host.lower().rstrip(".")
    for raw in no_proxy.replace(" ", ",").split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        name, _, wanted_port = entry.rpartition(":") if entry.count(":") == 1 else (entry, "", "")
        if wanted_port and (not wanted_port.isdigit() or int(wanted_port) != (port or 443)):
            continue
        name = name.strip(".")
        if name and (host == name or host.endswith("." + name)):
            return True
    return False


# --- the warm path: one HEAD, standard library ------------------------------------------------


def head(
    url: str, headers: dict[str, str], env: Mapping[str, str], deadline: Deadline, budget: float
) -> int | None:
    """The status of one HEAD request (never following a redirect), or None when there was no
    answer within `budget` seconds (and the lookup's deadline): a dripping server holds us no
    longer than that. http.client alone: urllib.request would cost the warm path its imports."""
    import http.client

    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or 443
    proxy = proxy_for(url, env)
    context = tls_context(env)
    target = parts.path or "/"
    timeout = min(budget, CONNECT_TIMEOUT)

    def ask() -> int:
        if proxy is None:
            connection = http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
        else:
            via = urlsplit(proxy)
            connection = http.client.HTTPSConnection(
                via.hostname or "",
                via.port or (443 if via.scheme == "https" else 80),
                timeout=timeout,
                context=context,
            )
            tunnel: dict[str, str] = {}
            if via.username:
                pair = f"{unquote(via.username)}:{unquote(via.password or '')}"
                tunnel["Proxy-Authorization"] = "Basic " + b64encode(pair.encode()).decode()
            connection.set_tunnel(host, port, headers=tunnel)
        try:
            connection.request(
                "HEAD", target, headers={**headers, "User-Agent": USER_AGENT, "Host": parts.netloc}
            )
            return int(connection.getresponse().status)
        finally:
            connection.close()

    bounded = Deadline(min(budget, deadline.remaining()))
    try:
        return bounded.run(f"HEAD {parts.netloc}", ask)
    except DeadlineExceeded:
        _log.debug("http: HEAD %s did not finish within %.1f s", parts.netloc, bounded.seconds)
    except (HTTPException, OSError, ValueError) as exc:
        _log.debug("http: HEAD %s failed (%s)", parts.netloc, type(exc).__name__)
    return None


# --- requests, for everything else ---------------------------------------------------------


class Attempt(Exception):
    """One try failed in a way that may be retried; `sent` says whether the server may have
    seen the request."""

    def __init__(self, message: str, sent: bool) -> None:
        super().__init__(message)
        self.sent = sent


def requests_session(env: Mapping[str, str]) -> requests.Session:
    """A requests session with our trust, proxies and User-Agent, no redirects and nothing from
    ~/.netrc: for us, and for the libraries that take one (msal, azure-core)."""
    import requests
    from requests.adapters import HTTPAdapter

    context = tls_context(env)

    class Adapter(HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            kwargs["ssl_context"] = context
            super().init_poolmanager(*args, **kwargs)

        def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
            kwargs["ssl_context"] = context
            return super().proxy_manager_for(proxy, **kwargs)

    class Session(requests.Session):
        def merge_environment_settings(
            self, url: str | bytes | None, proxies: Any, stream: Any, verify: Any, cert: Any
        ) -> Any:
            # trust_env is off (no netrc, no CA or proxy variables read behind our back); the
            # proxy comes from the one rule every request follows.
            text = url.decode() if isinstance(url, bytes) else url or ""
            chosen = dict(proxies or {})
            proxy = proxy_for(text, env) if text.startswith("https:") else None
            if proxy and not chosen:
                chosen = {"https": proxy}
            return {"proxies": chosen, "stream": stream, "verify": True, "cert": cert}

        def get_redirect_target(self, resp: Any) -> None:
            return None  # never followed: a 3xx reaches the caller as it is

    session = Session()
    session.trust_env = False
    session.headers["User-Agent"] = USER_AGENT
    session.mount("https://", Adapter(max_retries=0))
    return session


def azure_transport(env: Mapping[str, str], **options: Any) -> Any:
    """azure-core's transport on our session, for azure-identity's credentials; `options` are
    the transport's own (connection_timeout: a credential given a transport no longer builds
    its own, so they must be said here)."""
    from azure.core.pipeline.transport import RequestsTransport

    return RequestsTransport(session=requests_session(env), session_owner=True, **options)


Send = Callable[[str, str, dict[str, str], "bytes | None", Deadline], Response]


class Http:
    """Requests with retries inside the deadline. `send` makes one attempt (the requests-based
    one by default): it returns the answer, raises Attempt for a failure worth retrying (saying
    whether the server may have seen the request), or NetworkError for one that is not."""

    def __init__(
        self, deadline: Deadline, env: Mapping[str, str], send: Send | None = None
    ) -> None:
        self.deadline = deadline
        self._session: requests.Session | None = None
        if send is None:
            session = requests_session(env)
            self._session = session
            send = functools.partial(_requests_send, session)
        self.send = send

    def close(self) -> None:
        if self._session is not None:
            self._session.close()

    def get(self, url: str, bearer: str | None = None) -> Response:
        headers: dict[str, str] = {}
        if bearer is not None:
            # Only GitHub's OIDC service is ever sent a bearer in a GET.
            if not is_github_oidc_url(url):
                raise NetworkError(f"refusing to send a token to {urlsplit(url).netloc!r}")
            headers = {"Authorization": f"Bearer {bearer}", "Accept": "application/json"}
        return self._with_retries("GET", url, headers, None, replay_safe=True)

    def post_json(
        self, url: str, body: dict[str, Any], bearer: str, replay_safe: bool = False
    ) -> Response:
        """POST with a bearer, only to the token service. `replay_safe`: sending it twice
        does no harm, so a connection that broke after sending may be retried."""
        if not is_token_url(url):
            # Discovery validated this URL already; this is the last line of defence.
            raise NetworkError(f"refusing to send a token to {urlsplit(url).netloc!r}")
        headers = {
            "Authorization": f"Bearer {bearer}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "X-TFS-FedAuthRedirect": "Suppress",
        }
        data = json.dumps(body).encode("utf-8")
        return self._with_retries("POST", url, headers, data, replay_safe=replay_safe)

    def _with_retries(
        self, method: str, url: str, headers: dict[str, str], data: bytes | None, replay_safe: bool
    ) -> Response:
        host = urlsplit(url).netloc
        # A busy answer is retried as the method allows; a request that may have reached the
        # server before its connection broke, only when repeating it does no harm.
        retry_statuses = RETRY_STATUSES if method == "GET" else POST_RETRY_STATUSES
        for attempt in range(1, ATTEMPTS + 1):
            last = attempt == ATTEMPTS
            try:
                response = self.deadline.run(
                    f"{method} {host}", lambda: self.send(method, url, headers, data, self.deadline)
                )
            except Attempt as failed:
                if last or (failed.sent and not replay_safe):
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
        import random  # a retry is rare: not every process pays for the import

        delay = retry_after_seconds(retry_after)
        if delay is None:
            delay = BACKOFF * (2 ** (attempt - 1)) * random.uniform(0.5, 1.5)  # noqa: S311 - jitter, not crypto
        if delay >= self.deadline.remaining():
            _log.debug("http: %s; no time left to retry", why)
            return False
        _log.debug("http: %s; retrying in %.1f s", why, delay)
        time.sleep(delay)
        return True


def _requests_send(
    session: requests.Session,
    method: str,
    url: str,
    headers: dict[str, str],
    data: bytes | None,
    deadline: Deadline,
) -> Response:
    import requests

    host = urlsplit(url).netloc
    remaining = max(0.1, deadline.remaining())
    timeout = (min(CONNECT_TIMEOUT, remaining), min(READ_TIMEOUT, remaining))
    try:
        with session.request(
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
            f"TLS verification failed for {host}",
            "if a proxy inspects TLS, point REQUESTS_CA_BUNDLE at its CA certificate",
        ) from None
    except requests.exceptions.ProxyError:
        raise Attempt(
            f"the proxy refused the connection to {host}: check HTTPS_PROXY", sent=False
        ) from None
    except requests.exceptions.ConnectTimeout:
        raise Attempt(f"cannot connect to {host} in time: check the network", False) from None
    except requests.exceptions.Timeout:
        raise Attempt(f"{host} did not answer in time", sent=True) from None
    except requests.exceptions.ConnectionError as exc:
        never_sent = _never_sent(exc)
        message = (
            f"cannot connect to {host}: check the network, DNS and HTTPS_PROXY"
            if never_sent
            else f"the connection to {host} broke"
        )
        raise Attempt(message, sent=not never_sent) from None
    except (requests.exceptions.RequestException, ValueError, OSError) as exc:
        raise Attempt(f"request to {host} failed: {type(exc).__name__}", sent=True) from None


def _never_sent(exc: Exception) -> bool:
    """True when the connection was never made, so the server cannot have seen the request."""
    from urllib3.exceptions import NewConnectionError

    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, NewConnectionError)


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds: a number, or an HTTP date. Garbage means 'not stated'."""
    if value is None or len(value) > 64:
        return None
    import email.utils

    text = value.strip()
    # ASCII digits only: str.isdigit() also takes a superscript two (Latin-1 byte 0xB2, as
    # http.client decodes headers), which float() then refuses.
    if text.isascii() and text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - time.time())
