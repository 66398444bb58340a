"""Errors raised by :class:`shared.harvest.client.HarvestClient`, split first by what the caller must do.

::

    HarvestError                      status, method, path, request_id (never PII or secrets)
    ├── RetryableError                try again later; the same request may succeed
    │   ├── RateLimitedError          429; retry_after_s from Retry-After / X-RateLimit-Reset
    │   ├── ServerError               5xx
    │   ├── HarvestTimeoutError       no answer in time
    │   └── HarvestConnectionError    connection refused, reset or dropped
    └── PermanentError                the same request will fail again; fix input or configuration
        ├── AuthenticationError       401 after one re-mint, or the token endpoint refused the credential
        ├── PermissionDeniedError     403; missing_scope when the body names it
        ├── NotFoundError             404
        ├── ValidationError           422 (or 400); field_errors
        └── UnexpectedResponseError   2xx whose body carries errors, or a body we cannot parse

For a write, a :class:`RetryableError` other than :class:`RateLimitedError` means the outcome is
*unknown*: the request may have been applied. ``outcome_unknown`` says so; callers reconcile (look the
record up) instead of re-sending a create.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldError:
    """One validation problem reported by Harvest: the field (when named) and the message."""

    field: str | None
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class HarvestError(Exception):
    """Base of every error the Harvest client raises."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        method: str | None = None,
        path: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.method = method
        self.path = path
        self.request_id = request_id

    @property
    def outcome_unknown(self) -> bool:
        """True when a write may have been applied although no success was seen."""
        return False

    @property
    def cause(self) -> str:
        """Short machine-readable cause recorded on failed items (``rate_limited``, ``forbidden``...)."""
        return type(self).__name__

    def __str__(self) -> str:
        where = f"{self.method} {self.path}" if self.method and self.path else ""
        status = f"HTTP {self.status}" if self.status is not None else ""
        prefix = " ".join(p for p in (status, where) if p)
        return f"{prefix}: {self.message}" if prefix else self.message


class RetryableError(HarvestError):
    """Transient: the same request may succeed later."""

    @property
    def outcome_unknown(self) -> bool:
        return self.method not in (None, "GET", "HEAD")


class RateLimitedError(RetryableError):
    """HTTP 429. ``retry_after_s`` is how long Harvest asked us to wait (never None)."""

    def __init__(self, message: str, *, retry_after_s: float, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.retry_after_s = retry_after_s

    @property
    def outcome_unknown(self) -> bool:
        return False  # a 429 is refused before any work

    @property
    def cause(self) -> str:
        return "rate_limited"


class ServerError(RetryableError):
    """HTTP 5xx."""

    @property
    def cause(self) -> str:
        return "server_error"


class HarvestTimeoutError(RetryableError):
    """No response within the timeout."""

    @property
    def cause(self) -> str:
        return "timeout"


class HarvestConnectionError(RetryableError):
    """The connection failed or was dropped before a complete response."""

    @property
    def cause(self) -> str:
        return "connection_error"


class PermanentError(HarvestError):
    """Retrying the same request will not help: the input or the configuration must change."""


class AuthenticationError(PermanentError):
    """HTTP 401 (after one token re-mint), or the token endpoint refused the client id / secret."""

    @property
    def cause(self) -> str:
        return "unauthorized"


class PermissionDeniedError(PermanentError):
    """HTTP 403: a scope is missing on the credential, or the acting user lacks a permission."""

    def __init__(self, message: str, *, missing_scope: str | None = None, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.missing_scope = missing_scope

    @property
    def cause(self) -> str:
        return "forbidden"


class NotFoundError(PermanentError):
    """HTTP 404: unknown route or record (a record created moments ago may not be readable yet)."""

    @property
    def cause(self) -> str:
        return "not_found"


class ValidationError(PermanentError):
    """HTTP 422 (or 400): Harvest rejected the request; ``field_errors`` says which fields and why."""

    def __init__(self, message: str, *, field_errors: list[FieldError] | None = None, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.field_errors = field_errors or []

    @property
    def cause(self) -> str:
        return "invalid"

    def __str__(self) -> str:
        base = super().__str__()
        if self.field_errors:
            return base + " (" + "; ".join(str(e) for e in self.field_errors) + ")"
        return base


class UnexpectedResponseError(PermanentError):
    """A 2xx whose body carries errors, or a body that does not parse as the documented shape."""

    @property
    def cause(self) -> str:
        return "unexpected_response"


class ThrottledError(RateLimitedError):
    """Our own shared limiter refused a call before it was sent: wait ``retry_after_s``, then try again."""

    @property
    def cause(self) -> str:
        return "throttled"
