"""A small HTTPS forward proxy (CONNECT only) on loopback, for the proxy scenarios: it records
which host:port each tunnel was asked for, and never sees inside the TLS it carries."""

from __future__ import annotations

import contextlib
import select
import socket
import socketserver
import threading
from collections.abc import Iterator


class _Handler(socketserver.StreamRequestHandler):
    server: _ProxyServer

    def handle(self) -> None:
        line = self.rfile.readline(4096).decode("latin-1").strip()
        while self.rfile.readline(4096).strip():
            pass  # the rest of the CONNECT request's headers
        method, _, rest = line.partition(" ")
        target = rest.partition(" ")[0]
        with self.server.lock:
            self.server.tunnels.append(target)
        host, _, port = target.rpartition(":")
        if method != "CONNECT" or not host or not port.isdigit():
            self.wfile.write(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            return
        try:
            upstream = socket.create_connection((host, int(port)), timeout=10)
        except OSError:
            self.wfile.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            return
        self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        self.wfile.flush()
        with upstream:
            self._pipe(self.connection, upstream)

    @staticmethod
    def _pipe(client: socket.socket, upstream: socket.socket) -> None:
        sockets = [client, upstream]
        while True:
            readable, _, _ = select.select(sockets, [], [], 30)
            if not readable:
                return
            for source in readable:
                data = source.recv(65536)
                if not data:
                    return
                (upstream if source is client else client).sendall(data)


class _ProxyServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.tunnels: list[str] = []


@contextlib.contextmanager
def connect_proxy() -> Iterator[_ProxyServer]:
    server = _ProxyServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def proxy_url(server: _ProxyServer) -> str:
    host, port = server.server_address[:2]
    return f"http://{host!s}:{port}"
