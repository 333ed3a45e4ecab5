"""A real local HTTPS server with a throwaway CA, and a CONNECT proxy: what the network layer's
tests talk to (no namespace needed: loopback, ports of our own)."""

from __future__ import annotations

import contextlib
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import trustme


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: TLSServer

    def _answer(self) -> None:
        self.server.seen.append(
            Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()})
        )
        mode = self.server.mode
        if mode == "garbage":
            self.wfile.write(b"this is not HTTP at all\r\n\r\n")
            self.close_connection = True
            return
        if mode == "hang up":
            self.close_connection = True
            return
        if mode == "drip":
            # One byte of the status line at a time, never finishing: a per-read timeout
            # never fires, only a deadline on the whole answer does.
            for byte in b"HTTP/1.1 200 OK\r\nX-Drip: " + b"x" * 10_000:
                if self.server.stopping.is_set():
                    return
                try:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                except OSError:
                    return
                time.sleep(0.2)
            return
        self.send_response(self.server.status)
        for name, value in self.server.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", "0")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    do_HEAD = do_GET = do_POST = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


class TLSServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, cert: trustme.LeafCert) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert.configure_cert(self.context)
        self.seen: list[Seen] = []
        self.status = 200
        self.headers: list[tuple[str, str]] = []
        self.mode = "answer"
        self.handshakes_failed = 0
        self.stopping = threading.Event()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The TLS handshake in the request's own thread: a client that balks blocks nobody.
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except OSError:
            self.handshakes_failed += 1
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)  # type: ignore[arg-type]
        finally:
            with contextlib.suppress(OSError):
                tls.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


@contextlib.contextmanager
def serving(cert: trustme.LeafCert) -> Iterator[TLSServer]:
    server = TLSServer(cert)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield server
    finally:
        server.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


class ConnectProxy:
    """Just enough of an HTTP proxy for CONNECT tunnels; remembers what it was asked."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)
        self.port = self.listener.getsockname()[1]
        self.heads: list[bytes] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._tunnel, args=(conn,), daemon=True).start()

    def _tunnel(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                data += chunk
            head, _, rest = data.partition(b"\r\n\r\n")
            self.heads.append(head)
            method, target, _ = head.split(b"\r\n")[0].decode("latin-1").split(" ", 2)
            if method != "CONNECT":
                conn.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
                return
            host, _, port = target.rpartition(":")
            with socket.create_connection((host, int(port)), timeout=5) as upstream:
                conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                if rest:
                    upstream.sendall(rest)
                self._pipe(conn, upstream)

    @staticmethod
    def _pipe(one: socket.socket, two: socket.socket) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(one, selectors.EVENT_READ, two)
            selector.register(two, selectors.EVENT_READ, one)
            while True:
                for key, _ in selector.select(timeout=5):
                    source: socket.socket = key.fileobj  # type: ignore[assignment]
                    try:
                        chunk = source.recv(65536)
                    except OSError:
                        return
                    if not chunk:
                        return
                    key.data.sendall(chunk)

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(5)
        self.listener.close()
