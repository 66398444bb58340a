"""Pure decisions about Harvest responses: rate-limit headers, retry waits, status -> error, retries.

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
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import httpx

from shared.errors import (
    AuthenticationError,
    CircuitOpenError,
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
    ThrottledError,
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

PATIENT_FIRST_WAIT_S = 1.0
"""A patient command's first wait after a transient failure; doubled after each, up to its maximum."""
REPORT_WAIT_S = 1.0
"""Waits longer than this are announced through ``on_wait`` before they start."""

OnWait = Callable[[float, str], None]
"""``on_wait(seconds, reason)``: a patient call is about to wait ``seconds``; ``reason`` is one sentence for
an operator that says why and for how long ("waiting 13 s for the credential's rate-limit budget")."""

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


def should_retry_patiently(exc: BaseException, *, safe: bool) -> bool:
    """A patient command's retry decision. An open circuit (nothing sent) and a failed token mint (Harvest
    not called) are waited out for every call; a call that creates nothing (``safe``) is also retried on a
    5xx/408, a timeout, a dropped connection and a 429. Never our own limiter's throttle (it waited its
    longest already) and never a write that reached Greenhouse."""
    if isinstance(exc, CircuitOpenError):
        return True
    if not isinstance(exc, HarvestError) or isinstance(exc, ThrottledError):
        return False
    if not isinstance(exc, (*QUICK_RETRY_ERRORS, RateLimitedError)):
        return False
    return safe or exc.method is None


def patient_backoff_s(failures: int, max_wait_s: float, jitter: float) -> float:
    """The wait after a patient call's ``failures``-th transient failure: :data:`PATIENT_FIRST_WAIT_S`
    doubled each time, up to ``max_wait_s``, plus up to a quarter more (``jitter`` in [0, 1))."""
    base = min(max_wait_s, PATIENT_FIRST_WAIT_S * 2.0 ** max(0, failures - 1))
    return min(max_wait_s, base * (1 + jitter / 4))


def is_outage(exc: BaseException) -> bool:
    """True for what counts against a credential's circuit: a 5xx, a timeout, a failed connection."""
    if isinstance(exc, HarvestTimeoutError | HarvestConnectionError):
        return True
    return isinstance(exc, ServerError) and (exc.status is None or exc.status >= 500)


def _seconds(wait_s: float) -> str:
    return f"{wait_s:.0f} s" if wait_s >= 9.5 else f"{wait_s:.1f}".removesuffix(".0") + " s"


def describe_retry(exc: BaseException, wait_s: float, failures: int, retries: int) -> str:
    """The sentence a patient command shows before waiting ``wait_s`` to try again after ``exc``
    (``failures`` of at most ``retries`` so far). Names the method and path, never the query."""
    if isinstance(exc, CircuitOpenError):
        return f"{exc.message}; waiting {_seconds(wait_s)}"
    if not isinstance(exc, HarvestError):
        return f"{type(exc).__name__}; retrying in {_seconds(wait_s)}"
    what = f"{exc.method} {exc.path}" if exc.method and exc.path else "the token request"
    count = f"({failures} of {retries})"
    if isinstance(exc, RateLimitedError):
        return f"Greenhouse's rate limit refused {what} (HTTP 429); waiting {_seconds(wait_s)} {count}"
    if isinstance(exc, HarvestTimeoutError):
        return f"Greenhouse did not answer {what} in time; retrying in {_seconds(wait_s)} {count}"
    if isinstance(exc, HarvestConnectionError):
        return f"the connection to Greenhouse failed ({what}); retrying in {_seconds(wait_s)} {count}"
    status = f"HTTP {exc.status}" if exc.status is not None else "an error"
    return f"Greenhouse answered {status} to {what}; retrying in {_seconds(wait_s)} {count}"
