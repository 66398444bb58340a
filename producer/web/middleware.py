"""Two pure ASGI middlewares: request body size limits, and an access log without personal data.

:class:`BodyLimit` refuses a body larger than its limit with a 413 problem: at once when ``Content-Length``
says so, else as soon as the bytes read pass it (a chunked upload is counted while it streams, never buffered
here). NDJSON bodies (``application/x-ndjson``) get ``GHX_API__MAX_BODY_BYTES``, every other body
``GHX_API__MAX_JSON_BYTES``.

:class:`AccessLog` writes one line per request: method, path, status, duration. The path only: query strings
carry the partner consent's ``code`` and ``state`` and the NDJSON export's options (a user's email); neither
the client's address nor any header (the API key) is logged. uvicorn's own access log is off
(``ghexport api``).
"""

from __future__ import annotations

import logging
import time

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from producer.web.problems import Problem

access_log = logging.getLogger("ghexport.api.access")

NDJSON = "application/x-ndjson"


def _too_large(limit: int) -> Problem:
    return Problem(413, f"the request body is larger than {limit} bytes", slug="too-large", limit_bytes=limit)


class BodyLimit:
    """Refuse request bodies above ``max_body_bytes`` (NDJSON) or ``max_json_bytes`` (any other) with 413."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, max_json_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_json_bytes = max_json_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        ndjson = headers.get("content-type", "").split(";")[0].strip().lower() == NDJSON
        limit = self.max_body_bytes if ndjson else self.max_json_bytes
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            await _too_large(limit).response()(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _too_large(limit)  # raised inside the route's read: its handler answers 413
            return message

        await self.app(scope, counted, send)


class AccessLog:
    """One log line per HTTP request: method, path (no query string), status, milliseconds."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            ms = (time.perf_counter() - started) * 1000
            access_log.info(
                "%s %s %d %.0fms",
                scope.get("method", "?"),
                scope.get("path", "?"),
                status,
                ms,
                extra={"method": scope.get("method"), "path": scope.get("path"), "status": status, "ms": round(ms)},
            )
