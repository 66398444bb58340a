"""Pure decisions about Harvest responses: rate-limit headers, retry waits, status -> error, quick retries.

No I/O, no clock: ``now`` (epoch seconds) is passed in, so every function is a table test.
Header names [3P AIRBYTE, OGMCP; P for v1]: ``X-RateLimit-Limit``, ``X-RateLimit-Remaining``,
``X-RateLimit-Reset`` (epoch seconds), ``Retry-After`` (delta-seconds or HTTP-date). Error body shape
``{"message": ..., "errors": [{"field": ..., "message": ...}]}`` [3P BATON; P V1DOC for v1].
"""

from __future__ import annotations

import email.utils
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from shared.errors import (
    AuthenticationError,
    FieldError,
    HarvestConnectionError,
    HarvestError,
    HarvestTimeoutError,
    InvalidRequestError,
    NotFoundError,
    PermanentError,
    PermissionDeniedError,
    RateLimitedError,
    ServerError,
    UnexpectedResponseError,
    Where,
)

LIMIT_HEADER = "X-RateLimit-Limit"
REMAINING_HEADER = "X-RateLimit-Remaining"
RESET_HEADER = "X-RateLimit-Reset"
RETRY_AFTER_HEADER = "Retry-After"
REQUEST_ID_HEADER = "X-Request-Id"

MAX_RETRY_AFTER_S = 300.0
"""A longer announced wait is capped: a bogus header must not park an item for hours."""
DEFAULT_RATE_LIMIT_WAIT_S = 30.0
"""Wait on a 429 that names no wait: one Harvest window [3P AIRBYTE/OGMCP 30 s]."""
MAX_MESSAGE_CHARS = 500
"""Harvest's own error text is kept, but bounded."""
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
QUICK_RETRY_ERRORS: tuple[type[HarvestError], ...] = (
    ServerError,
    HarvestTimeoutError,
    HarvestConnectionError,
)

_SCOPE_RE = re.compile(r"harvest:[a-z_]+:[a-z_]+")


@dataclass(frozen=True)
class RateLimitInfo:
    """The budget Harvest announced on one response; any member may be absent."""

    limit: int | None
    remaining: int | None
    reset_at: float | None
    """Epoch seconds when the window resets."""


def _int(value: str | None) -> int | None:
    try:
        return int(float(value)) if value is not None else None
    except ValueError:
        return None


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def parse_rate_limit(headers: Mapping[str, str], now: float) -> RateLimitInfo | None:
    """Budget headers of a response, or None when it carries none (429 answers usually lack them).

    ``X-RateLimit-Reset`` is read as epoch seconds; a small value (< 10^9) is taken as seconds from
    ``now``, since some servers send a delta.
    """
    h = httpx.Headers(headers)
    limit, remaining, reset = (
        _int(h.get(LIMIT_HEADER)),
        _int(h.get(REMAINING_HEADER)),
        _float(h.get(RESET_HEADER)),
    )
    if limit is None and remaining is None and reset is None:
        return None
    if reset is not None and reset < 1e9:
        reset = now + reset
    return RateLimitInfo(limit=limit, remaining=remaining, reset_at=reset)


def retry_after_seconds(headers: Mapping[str, str], now: float, default: float) -> float:
    """Seconds to wait: ``Retry-After`` (delta or HTTP-date), else reset epoch - now, else ``default``.

    Never negative, never above :data:`MAX_RETRY_AFTER_S`.
    """
    h = httpx.Headers(headers)
    wait: float | None = None
    raw = h.get(RETRY_AFTER_HEADER)
    if raw is not None:
        wait = _float(raw.strip())
        if wait is None:
            try:
                wait = email.utils.parsedate_to_datetime(raw).timestamp() - now
            except (TypeError, ValueError, IndexError):
                wait = None
    if wait is None:
        info = parse_rate_limit(h, now)
        if info is not None and info.reset_at is not None:
            wait = info.reset_at - now
    if wait is None:
        wait = default
    return min(max(wait, 0.0), MAX_RETRY_AFTER_S)


def _body(response: httpx.Response) -> object:
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
        return None


def _field_errors(body: object) -> list[FieldError]:
    if not isinstance(body, dict):
        return []
    errors = body.get("errors")
    if isinstance(errors, str):
        return [FieldError(None, errors[:MAX_MESSAGE_CHARS])]
    out: list[FieldError] = []
    for item in errors if isinstance(errors, list) else []:
        if isinstance(item, dict):
            field = item.get("field")
            msg = item.get("message")
            out.append(FieldError(str(field) if field else None, str(msg or item)[:MAX_MESSAGE_CHARS]))
        elif isinstance(item, str):
            out.append(FieldError(None, item[:MAX_MESSAGE_CHARS]))
    return out


def _message(body: object, response: httpx.Response, field_errors: list[FieldError]) -> str:
    if isinstance(body, dict) and isinstance(body.get("message"), str) and body["message"]:
        return str(body["message"])[:MAX_MESSAGE_CHARS]
    if field_errors:
        return field_errors[0].message
    return response.reason_phrase or f"HTTP {response.status_code}"


def error_for_response(
    response: httpx.Response, method: str, path: str, *, now: float | None = None
) -> HarvestError | None:
    """The error a response means, or None for a usable 2xx/3xx (``now``: epoch, for 429 waits).

    Messages are Harvest's own words (``message`` / ``errors``), never our request body.
    """
    status = response.status_code
    body = _body(response)
    field_errors = _field_errors(body)
    kw = Where(status=status, method=method.upper(), path=path, request_id=response.headers.get(REQUEST_ID_HEADER))
    if status < 400:
        if isinstance(body, dict) and body.get("errors"):
            msg = "; ".join(str(e) for e in field_errors) or "response body carries errors"
            return UnexpectedResponseError(msg, **kw)
        return None
    message = _message(body, response, field_errors)
    if status in (400, 422):
        return InvalidRequestError(message, field_errors=field_errors, **kw)
    if status == 401:
        return AuthenticationError(message, **kw)
    if status == 403:
        text = response.text if body is None else json.dumps(body)
        match = _SCOPE_RE.search(text)
        return PermissionDeniedError(message, missing_scope=match.group(0) if match else None, **kw)
    if status == 404:
        return NotFoundError(message, **kw)
    if status == 429:
        at = time.time() if now is None else now
        wait = retry_after_seconds(response.headers, at, DEFAULT_RATE_LIMIT_WAIT_S)
        return RateLimitedError(message, retry_after_s=wait, **kw)
    if status == 408 or status >= 500:
        return ServerError(message, **kw)
    return PermanentError(message, **kw)


def should_retry_quickly(exc: BaseException, method: str) -> bool:
    """True only for a safe method (GET) that failed with a 5xx/408, a timeout or a dropped connection.

    Never for writes (a create whose outcome is unknown must be reconciled, not re-sent) and never for
    429 (that wait belongs to the limiter and the queue).
    """
    if method.upper() not in SAFE_METHODS:
        return False
    return isinstance(exc, QUICK_RETRY_ERRORS) and not isinstance(exc, RateLimitedError)
