"""Loopback HTTP server around one :class:`~shared.harvest.sandbox.app.Sandbox` (integration tests, demo, benchmarks).

Stdlib ``ThreadingHTTPServer``: each raw request becomes an ``httpx.Request`` for ``Sandbox.handle``;
on :class:`~shared.harvest.sandbox.faults.DropConnectionError` the socket is closed without any response bytes.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

import httpx

from shared.harvest.sandbox.app import Sandbox
from shared.harvest.sandbox.faults import DropConnectionError

_HOP_HEADERS = frozenset({"content-length", "transfer-encoding", "connection", "content-encoding"})


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else every keep-alive response waits ~40 ms for a delayed ACK
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        """Silence per-request logging."""

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        host = self.headers.get("Host") or "{}:{}".format(*self.server.server_address[:2])
        request = httpx.Request(
            self.command, f"http://{host}{self.path}", headers=list(self.headers.items()), content=body
        )
        try:
            response = self.server.sandbox.handle(request)
        except DropConnectionError:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        content = response.content
        self.send_response(response.status_code)
        for name, value in response.headers.multi_items():
            if name.lower() not in _HOP_HEADERS:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        if content:
            self.wfile.write(content)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    sandbox: Sandbox

    def handle_error(self, request: object, client_address: object) -> None:
        """Client disconnects are normal here; keep stderr quiet."""


class SandboxServer:
    """Serve a :class:`Sandbox` over HTTP on ``host:port`` (``port=0`` picks a free port).

    Use as a context manager, or call :meth:`start` / :meth:`stop`. Clients use :attr:`harvest_url`
    as the Harvest base URL (they append ``/v3/...``) and :attr:`token_url` for OAuth; partner clients also
    :attr:`authorize_url` and :attr:`introspect_url`.
    """

    def __init__(self, sandbox: Sandbox, host: str = "127.0.0.1", port: int = 0) -> None:
        self.sandbox = sandbox
        self._server = _Server((host, port), _Handler)
        self._server.sandbox = sandbox
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """``http://host:port`` of the listening socket."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def harvest_url(self) -> str:
        """Harvest base URL (same as :attr:`url`)."""
        return self.url

    @property
    def token_url(self) -> str:
        """OAuth token endpoint."""
        return self.url + "/token"

    @property
    def authorize_url(self) -> str:
        """OAuth authorization endpoint (the partner consent page)."""
        return self.url + "/authorize"

    @property
    def introspect_url(self) -> str:
        """OAuth token introspection endpoint."""
        return self.url + "/introspect"

    def start(self) -> SandboxServer:
        """Serve in a daemon thread; returns ``self``."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever, args=(0.05,), name="harvest-sandbox", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
