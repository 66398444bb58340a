"""The redirect URI ``connect --partner`` serves itself: a loopback ``http://127.0.0.1:PORT/PATH`` address.

The customer's browser comes back from Greenhouse's consent page to this address with ``code`` and
``state`` (or ``error``) in the query. :class:`LoopbackReceiver` listens on exactly the registered host and
port (bound before the authorization URL is printed, so the redirect cannot arrive first), answers the
first request for the path with a short page saying the window may close, and hands its query parameters
over; other paths (a browser's ``/favicon.ico``) get a 404. It serves a single consent, then closes.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qsl, urlsplit

from shared.errors import UserError

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
PAGE = (
    "<!doctype html><meta charset=utf-8><title>greenhouse-export</title>"
    "<p>{message}</p><p>You can close this window and return to the terminal.</p>"
)


def is_loopback(redirect_uri: str) -> bool:
    """Whether ``redirect_uri`` is a plain-http loopback address with a port (this command can serve it)."""
    parts = urlsplit(redirect_uri)
    return parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS and parts.port is not None


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        """Silent: the query holds the code."""

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if parts.path != self.server.path or self.server.received.is_set():
            self.send_error(404)
            return
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        message = "Consent refused; the terminal says why." if "error" in params else "Consent received."
        body = PAGE.format(message=message).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)
        self.server.params = params
        self.server.received.set()


class _Server(HTTPServer):
    path: str
    params: dict[str, str]
    received: threading.Event


class LoopbackReceiver:
    """Listens on ``redirect_uri`` (a loopback http address) for one consent redirect."""

    def __init__(self, redirect_uri: str) -> None:
        parts = urlsplit(redirect_uri)
        if not is_loopback(redirect_uri) or parts.port is None:
            raise UserError(f"cannot serve {redirect_uri}: only http://127.0.0.1:PORT/... (loopback) addresses")
        host = (parts.hostname or "127.0.0.1").strip("[]")
        try:
            self._server = _Server((host, parts.port), _Handler)
        except OSError as exc:
            raise UserError(f"cannot listen on {host}:{parts.port} for the consent redirect ({exc.strerror})") from None
        self._server.path = parts.path or "/"
        self._server.params = {}
        self._server.received = threading.Event()
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.1,), daemon=True)
        self._thread.start()

    def wait(self, timeout_s: float) -> dict[str, str] | None:
        """The redirect's query parameters, or None when none came within ``timeout_s``."""
        if not self._server.received.wait(timeout_s):
            return None
        return dict(self._server.params)

    def close(self) -> None:
        """Stop listening."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> LoopbackReceiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
