"""HTTP/1.1 plumbing: threaded listeners, TLS, keep-alive, and the request/response shapes.

The services themselves live elsewhere; this module only turns bytes into `Request`s, asks a
`Dispatcher` what to do, and carries out injected faults that need the socket (reset, stall,
drip), and the simulated network's round trips: a new connection waits one round trip for the
TCP handshake (and one more for TLS) before the server answers its first bytes, and every
request one round trip before its answer, so that a client pays what it would on a real
network with that latency.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import socket
import socketserver
import ssl
import struct
import sys
import threading
import time
import traceback
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from .faults import Drip, Pass, Reset, Respond, Stall, Step
from .log import Note

MAX_BODY = 64 * 1024 * 1024


@dataclass
class Request:
    scheme: str
    host: str  # lower case, without port
    port: int
    method: str
    path: str  # as sent, still percent-encoded
    query: str
    headers: Message
    body: bytes
    note: Note = field(default_factory=Note)

    def header(self, name: str) -> str | None:
        value = self.headers.get(name)
        return None if value is None else str(value)

    def params(self) -> dict[str, str]:
        return dict(urllib.parse.parse_qsl(self.query, keep_blank_values=True))

    def form(self) -> dict[str, str]:
        text = self.body.decode("utf-8", "replace")
        return dict(urllib.parse.parse_qsl(text, keep_blank_values=True))

    def segments(self) -> list[str]:
        """Path segments, percent-decoded, empty ones dropped."""
        return [urllib.parse.unquote(s) for s in self.path.split("/") if s]

    @property
    def url(self) -> str:
        default = 443 if self.scheme == "https" else 80
        port = "" if self.port == default else f":{self.port}"
        query = f"?{self.query}" if self.query else ""
        return f"{self.scheme}://{self.host}{port}{self.path}{query}"


@dataclass
class Response:
    status: int
    # A bytes value goes on the wire as it is: hostile servers send binary headers.
    headers: Sequence[tuple[str, str | bytes]] = field(default_factory=list)
    body: bytes = b""


def header_bytes(value: str | bytes) -> bytes:
    """A header value as sent: bytes as they are, str as Latin-1, else UTF-8 (as some servers
    do, for a hostile header with non-Latin letters in it)."""
    if isinstance(value, bytes):
        return value
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8")


def json_response(
    status: int, payload: Any, headers: list[tuple[str, str]] | None = None
) -> Response:
    body = json.dumps(payload, indent=None).encode()
    return Response(
        status, [("Content-Type", "application/json; charset=utf-8"), *(headers or [])], body
    )


def text_response(
    status: int,
    text: str,
    content_type: str = "text/plain; charset=utf-8",
    headers: list[tuple[str, str]] | None = None,
) -> Response:
    return Response(status, [("Content-Type", content_type), *(headers or [])], text.encode())


def not_found() -> Response:
    return text_response(404, "Not Found")


class Dispatcher(Protocol):
    def fault(self, request: Request) -> Step | None: ...

    def handle(self, request: Request) -> Response: ...

    def record(self, request: Request, status: int) -> None: ...

    def round_trip(self) -> float:
        """Seconds of one network round trip for this listener now (0: loopback as it is)."""
        ...


# Connections are numbered across every listener, so that a request log can tell them apart.
_CONNECTIONS = itertools.count(1)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Idle keep-alive connections give up after this long; clients reconnect.
    timeout = 30
    server: _Server

    def __init__(
        self, request: Any, client_address: Any, server: _Server, *, connection: int = 0,
        connected_at: float = 0.0,
    ) -> None:
        # Set before the base class serves the connection (its __init__ does all the work).
        self.connection_number = connection
        self.connected_at = connected_at
        super().__init__(request, client_address, server)

    def log_message(self, format: str, *args: Any) -> None:
        return  # the request log is the simulator's own

    def version_string(self) -> str:
        return "sim"

    def _serve(self) -> None:
        try:
            body = self._read_body()
        except ValueError:
            self.send_error(400)
            return
        request = self._request(body)
        dispatcher = self.server.dispatcher
        step = dispatcher.fault(request)
        # The request's way there and the answer's way back, before the answer is made: the
        # log's time is then when the client has it.
        self.server.stopping.wait(dispatcher.round_trip())
        if isinstance(step, Stall):
            request.note.fault = "stall"
            self.server.stopping.wait(step.seconds)
            step = None
        drip = None
        if isinstance(step, Drip):
            request.note.fault = "drip"
            drip, step = step, None
        if isinstance(step, Reset):
            request.note.fault = "reset"
            dispatcher.record(request, 0)
            self._reset()
            return
        if isinstance(step, Respond):
            request.note.fault = "status"
            response = Response(step.status, list(step.headers.items()), step.body)
        else:
            assert step is None or isinstance(step, Pass)
            try:
                response = dispatcher.handle(request)
            except Exception:
                traceback.print_exc(file=sys.stderr)
                response = text_response(500, "simulator error")
        dispatcher.record(request, response.status)
        self._send(request, response, drip)

    do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = do_PATCH = do_OPTIONS = _serve

    def _request(self, body: bytes) -> Request:
        raw_host = self.headers.get("Host") or ""
        host = raw_host
        if host.startswith("["):
            host = host[1:].split("]", 1)[0]
        elif host.count(":") == 1:
            host = host.split(":", 1)[0]
        if not host:
            host = str(self.server.server_address[0])
        path, _, query = self.path.partition("?")
        note = Note(
            connection=self.connection_number, connected_at=self.connected_at,
            arrived=time.time(),
        )
        return Request(
            scheme=self.server.scheme,
            host=host.lower().rstrip("."),
            port=self.server.server_address[1],
            method=self.command,
            path=path or "/",
            query=query,
            headers=self.headers,
            body=body,
            note=note,
        )

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0 or length > MAX_BODY:
            raise ValueError("bad Content-Length")
        return self.rfile.read(length) if length else b""

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            size_line = self.rfile.readline(1024)
            size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            total += size
            if total > MAX_BODY:
                raise ValueError("body too large")
            chunks.append(self.rfile.read(size))
            self.rfile.readline(1024)

    def _send(self, request: Request, response: Response, drip: Drip | None = None) -> None:
        head = self._head(response)
        body = response.body if request.method != "HEAD" else b""
        try:
            if drip is None:
                self.wfile.write(head + body)
            elif drip.whole:
                self._trickle(head + body, drip.seconds)
            else:
                self.wfile.write(head)
                self._trickle(body, drip.seconds)
        except OSError:
            self.close_connection = True

    def _head(self, response: Response) -> bytes:
        """Status line and headers, as bytes: values may be binary, so no send_header()."""
        phrase = self.responses.get(response.status, ("",))[0]
        lines = [
            f"{self.protocol_version} {response.status} {phrase}".encode("latin-1"),
            f"Server: {self.version_string()}".encode("latin-1"),
            f"Date: {self.date_time_string()}".encode("latin-1"),
        ]
        lines += [name.encode("latin-1") + b": " + header_bytes(v) for name, v in response.headers]
        lines.append(f"Content-Length: {len(response.body)}".encode("latin-1"))
        return b"\r\n".join(lines) + b"\r\n\r\n"

    def _trickle(self, data: bytes, seconds: float) -> None:
        """One byte every `seconds`, until done, the client hangs up or the simulator stops."""
        for at in range(len(data)):
            self.wfile.write(data[at : at + 1])
            if self.server.stopping.wait(seconds):
                self.close_connection = True
                return

    def _reset(self) -> None:
        # Linger 0 turns close() into a TCP RST: the client sees a reset, not an answer.
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        scheme: str,
        dispatcher: Dispatcher,
        ssl_context: ssl.SSLContext | None,
        stopping: threading.Event,
    ) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.scheme = scheme
        self.dispatcher = dispatcher
        self.ssl_context = ssl_context
        self.stopping = stopping
        super().__init__(address, _Handler, bind_and_activate=False)
        if self.address_family == socket.AF_INET6 and address[0] == "::":
            # One socket for both families: the hosts file maps every name to ::1 as well.
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        try:
            self.server_bind()
            self.server_activate()
        except OSError:
            self.server_close()
            raise

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves our own name; there is no DNS in the namespace.
        socketserver.TCPServer.server_bind(self)
        self.server_name = "sim"
        self.server_port = self.server_address[1]

    def finish_request(self, request: Any, client_address: Any) -> None:
        number, connected_at = next(_CONNECTIONS), time.time()
        # As servers on the internet do: without it, a small write that follows another (the
        # answer after TLS's session tickets) waits for the client's delayed ACK, 40 ms that
        # no real feed adds.
        with contextlib.suppress(OSError):
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # The client's connect() returned at once on the loopback; the round trips of the
        # handshakes are paid here, before the server's first answer: TCP, and TLS (1.3: one).
        handshakes = 1 if self.ssl_context is None else 2
        if self.stopping.wait(handshakes * self.dispatcher.round_trip()):
            return
        if self.ssl_context is None:
            _Handler(request, client_address, self, connection=number, connected_at=connected_at)
            return
        request.settimeout(15)
        try:
            conn = self.ssl_context.wrap_socket(request, server_side=True)
        except (OSError, ValueError):
            return  # handshake refused, e.g. a client that does not trust our CA
        try:
            _Handler(conn, client_address, self, connection=number, connected_at=connected_at)
        except OSError:
            pass
        finally:
            conn.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        return  # clients hanging up mid-request are part of the tests


class Listener:
    """One bound socket served on a background thread."""

    def __init__(
        self,
        address: tuple[str, int],
        scheme: str,
        dispatcher: Dispatcher,
        ssl_context: ssl.SSLContext | None,
        stopping: threading.Event,
    ) -> None:
        self._server = _Server(address, scheme, dispatcher, ssl_context, stopping)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"sim-{scheme}-{address[0]}:{address[1]}",
            daemon=True,
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def ipv6_usable() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True
