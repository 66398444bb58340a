"""Every error greenhouse-export raises on purpose: one tree, split first by what the caller must do.

::

    ExporterError                         root: catch this to catch every error of ours
    ├── UserError                         the request cannot be carried out as given: change it
    │   ├── ConfigurationError            a missing or invalid setting (GHX_SECRET_KEY outside the demo...)
    │   ├── ConnectionNotFoundError       no connection of that name (or it was removed)
    │   ├── TargetNotAllowedError         target refused by the connection, or invalid (job not open...)
    │   ├── ConnectCheckError             ``connect`` refused the credential (shared.connections.checks)
    │   ├── ConsentError                  a partner consent did not complete (denied, wrong or used state, code refused)
    │   ├── ConflictError                 the request conflicts with what is stored (an Idempotency-Key reused...)
    │   ├── WebhookSignatureError         a Greenhouse webhook not signed with the connection's secret (or none set)
    │   └── WebhookPayloadError           a signed Greenhouse webhook whose body we cannot read
    ├── UnavailableError                  a service we depend on did not answer: try again later
    │   ├── StoreUnavailableError         the result store (SQL)
    │   └── BrokerUnavailableError        the broker or the Redis of the limiter and caches
    │       └── PublishFailedError        the batch IS recorded; its tasks are sent once the broker is back
    ├── LeaseLostError                    internal: another worker took the item over; stop quietly
    └── HarvestError                      status, method, path, request_id (never PII or secrets)
        ├── ReauthRequiredError           a partner connection's consent is gone: the customer must connect again
        ├── RetryableError                try again later; the same request may succeed
        │   ├── RateLimitedError          429; retry_after_s from Retry-After / X-RateLimit-Reset
        │   │   └── ThrottledError        our shared limiter refused before sending
        │   ├── CircuitOpenError          the credential's circuit breaker is open: nothing was sent
        │   ├── ServerError               5xx
        │   ├── HarvestTimeoutError       no answer in time (``sent`` False: could not even connect)
        │   └── HarvestConnectionError    connection refused (``sent`` False), reset or dropped
        └── PermanentError                the same request will fail again; fix input or configuration
            ├── AuthenticationError       401 after one re-mint, or the token endpoint refused the credential
            │   └── GrantRefusedError     the token endpoint's RFC 6749 refusal (invalid_grant...) of a partner grant
            ├── PermissionDeniedError     403; missing_scope when the body names it
            ├── NotFoundError             404
            ├── InvalidRequestError       422 (or 400); field_errors
            ├── UnexpectedResponseError   2xx whose body carries errors, or a body we cannot parse
            └── AmbiguousMatchError       a lost create may have landed and several records match: a human checks

Messages are meant for the operator or the platform: they name the record and field at fault and never
include a secret. Harvest errors carry a short machine-readable :attr:`HarvestError.cause`, recorded on
failed items. For a write, a :class:`RetryableError` other than :class:`RateLimitedError` means the outcome
is *unknown*: the request may have been applied. :attr:`HarvestError.outcome_unknown` says so; callers
reconcile (look the record up) instead of re-sending a create. A request that provably never left
(:class:`CircuitOpenError`; a timeout or connection error with ``sent`` False: the TCP connection was refused
or never established) has a known outcome: nothing happened.

A patient command (:mod:`shared.harvest.transport`) that gave up after retrying sets
:attr:`HarvestError.tries` on the last error, and its message starts with "gave up after N tries".

The causes recorded on failed items are classified once, here, for operator retries (``ghexport retry``):
:data:`PERMANENT_CAUSES` (retried only with ``--force``), :data:`TRANSIENT_CAUSES`, and
:data:`NEVER_RETRIED_CAUSES` (``connection_removed``); :func:`retry_refusal` applies the rule.

This module is the bottom layer of ``shared``: it imports nothing of ours.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict, Unpack


class ExporterError(Exception):
    """Root of every error greenhouse-export raises on purpose."""


# --- the request must change -------------------------------------------------------------------------


class UserError(ExporterError):
    """A request that cannot be carried out as given; the message says what to change."""


class ConfigurationError(UserError):
    """A missing or invalid setting (``GHX_SECRET_KEY`` outside the demo, an unknown connection...)."""


class ConnectionNotFoundError(UserError):
    """No connection of that name (or it was removed)."""


class TargetNotAllowedError(UserError):
    """The export target is not allowed by the connection (prospects only, pools disabled) or is invalid
    (job not open, stage outside its pool)."""


class ConsentError(UserError):
    """A partner consent (``connect --partner``) did not complete: the customer denied it, the answer's
    ``state`` is unknown, expired or used already, or Greenhouse refused the authorization code. Nothing
    was stored; the message names the cause in one line."""


class ConnectCheckError(UserError):
    """``connect`` refused to store a connection; the message says which check failed and how to fix it."""


class ConflictError(UserError):
    """The request conflicts with what is already stored: an ``Idempotency-Key`` reused for another request, a
    tenant id or connection name that belongs to someone else. The HTTP API answers 409."""


class WebhookSignatureError(UserError):
    """A Greenhouse webhook delivery was refused and changed nothing: no ``Signature`` header, one that does not
    match the body under the connection's webhook secret, no secret configured, or no such live connection
    (one message for all, so an unsigned caller learns nothing). The HTTP API answers 401."""


class WebhookPayloadError(UserError):
    """A correctly signed Greenhouse webhook delivery whose body is not what Greenhouse sends (not JSON, no
    ``action``, a ``delete_candidate`` without ``payload.person.id``); nothing changed. The HTTP API answers 400."""


# --- a service we depend on is down --------------------------------------------------------------------


class UnavailableError(ExporterError):
    """A service we depend on (result store, broker, Redis) did not answer; nothing is wrong with the
    request: try again once it is back."""


class StoreUnavailableError(UnavailableError):
    """The result store refused or failed a statement (unreachable, restarting, out of connections)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"result store error: {reason}")
        self.reason = reason


class BrokerUnavailableError(UnavailableError):
    """The broker, or the Redis of the shared limiter and caches, cannot be reached."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"cannot reach Redis/the broker: {reason}")
        self.reason = reason


class PublishFailedError(BrokerUnavailableError):
    """The batch is recorded but its tasks could not all be handed to the broker. Nothing is lost: the
    unpublished items stay ``queued`` and the workers' recovery sends them (``ghexport recover``: now)."""

    def __init__(self, batch_id: str, reason: str) -> None:
        UnavailableError.__init__(
            self,
            f"batch {batch_id} is recorded, but its tasks could not be published ({reason}); the workers send "
            "them once the broker is reachable (or run `ghexport recover`)",
        )
        self.reason = reason
        self.batch_id = batch_id


# --- internal signals ---------------------------------------------------------------------------------


class LeaseLostError(ExporterError):
    """A worker's write was refused: its lease on the item expired and another worker took it over (or
    the item was finished meanwhile). The run stops without touching the item; never shown to a user."""


# --- Harvest ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldError:
    """One validation problem reported by Harvest: the field (when named) and the message."""

    field: str | None
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class Where(TypedDict, total=False):
    """Where a Harvest error happened: what every :class:`HarvestError` carries besides its message."""

    status: int | None
    method: str | None
    path: str | None
    request_id: str | None


class HarvestError(ExporterError):
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
        self.tries: int | None = None
        """Set when a patient command retried this call and gave up: how many times it was sent."""

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
        text = f"{prefix}: {self.message}" if prefix else self.message
        return f"gave up after {self.tries} tries: {text}" if self.tries is not None else text


class ReauthRequiredError(HarvestError):
    """Greenhouse no longer honours a partner connection's authorization (``invalid_grant`` on refresh, a
    401 with a fresh token, or the connection already marked ``needs_reauth``): only the customer can restore
    it, by consenting again (``ghexport connect --partner --name SAME``). Items wait, they do not fail."""

    @property
    def cause(self) -> str:
        return NEEDS_REAUTH_CAUSE


class RetryableError(HarvestError):
    """Transient: the same request may succeed later."""

    @property
    def outcome_unknown(self) -> bool:
        return self.method not in (None, "GET", "HEAD")


class RateLimitedError(RetryableError):
    """HTTP 429. ``retry_after_s`` is how long Harvest asked us to wait (never None)."""

    def __init__(self, message: str, *, retry_after_s: float, **where: Unpack[Where]) -> None:
        super().__init__(message, **where)
        self.retry_after_s = retry_after_s

    @property
    def outcome_unknown(self) -> bool:
        return False  # a 429 is refused before any work

    @property
    def cause(self) -> str:
        return "rate_limited"


class ThrottledError(RateLimitedError):
    """Our own shared limiter refused a call before it was sent: wait ``retry_after_s``, then try again."""

    @property
    def cause(self) -> str:
        return "throttled"


class CircuitOpenError(RetryableError):
    """The credential's circuit breaker is open (Greenhouse kept failing): the request was NOT sent.

    ``retry_after_s`` is how long until the next request may go (the pause left, or about a second while
    another process's probe request finds out whether Greenhouse answers again).
    """

    def __init__(self, message: str, *, retry_after_s: float, failures: int = 0, **where: Unpack[Where]) -> None:
        super().__init__(message, **where)
        self.retry_after_s = retry_after_s
        self.failures = failures

    @property
    def outcome_unknown(self) -> bool:
        return False  # nothing was sent

    @property
    def cause(self) -> str:
        return "greenhouse_unavailable"


class ServerError(RetryableError):
    """HTTP 5xx."""

    @property
    def cause(self) -> str:
        return "server_error"


class _NoAnswerError(RetryableError):
    """No complete answer. ``sent`` is False when the request provably never left (the TCP connection was
    refused or could not be established in time): then the outcome is known, nothing happened."""

    def __init__(self, message: str, *, sent: bool = True, **where: Unpack[Where]) -> None:
        super().__init__(message, **where)
        self.sent = sent

    @property
    def outcome_unknown(self) -> bool:
        return self.sent and super().outcome_unknown


class HarvestTimeoutError(_NoAnswerError):
    """No response within the timeout (``sent`` False: the connection itself timed out)."""

    @property
    def cause(self) -> str:
        return "timeout"


class HarvestConnectionError(_NoAnswerError):
    """The connection failed or was dropped before a complete response (``sent`` False: refused)."""

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


class GrantRefusedError(AuthenticationError):
    """The token endpoint refused a partner grant with an RFC 6749 ``error`` (``invalid_grant``: the code or
    refresh token is used, expired or revoked; ``invalid_client``...). ``error`` and ``description`` are
    Greenhouse's words (never a token)."""

    def __init__(self, error: str, description: str = "", **where: Unpack[Where]) -> None:
        text = f"Greenhouse's token endpoint refused the grant ({error}{': ' + description if description else ''})"
        super().__init__(text, **where)
        self.error = error
        self.description = description


class PermissionDeniedError(PermanentError):
    """HTTP 403: a scope is missing on the credential, or the acting user lacks a permission."""

    def __init__(self, message: str, *, missing_scope: str | None = None, **where: Unpack[Where]) -> None:
        super().__init__(message, **where)
        self.missing_scope = missing_scope

    @property
    def cause(self) -> str:
        return "forbidden"


class NotFoundError(PermanentError):
    """HTTP 404: unknown route or record (a record created moments ago may not be readable yet)."""

    @property
    def cause(self) -> str:
        return "not_found"


class InvalidRequestError(PermanentError):
    """HTTP 422 (or 400): Harvest rejected the request; ``field_errors`` says which fields and why."""

    def __init__(self, message: str, *, field_errors: list[FieldError] | None = None, **where: Unpack[Where]) -> None:
        super().__init__(message, **where)
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


class AmbiguousMatchError(PermanentError):
    """A create whose answer was lost may have landed, and several records created then match the profile
    equally well: a human must check them (the message names every candidate id)."""

    @property
    def cause(self) -> str:
        return "ambiguous_match"


# --- what an operator retry does with a failed item's cause -------------------------------------------

PERMANENT_CAUSES: frozenset[str] = frozenset(
    {
        "unauthorized",
        "forbidden",
        "not_found",
        "invalid",
        "unexpected_response",
        "ambiguous_match",
        "invalid_profile",  # the worker's: the stored profile does not validate
    }
)
"""Causes of a failure that the same request would meet again: the input or the configuration must change
first. ``ghexport retry`` leaves such items alone unless asked with ``--force``."""

TRANSIENT_CAUSES: frozenset[str] = frozenset(
    {
        "rate_limited",
        "throttled",
        "greenhouse_unavailable",
        "server_error",
        "timeout",
        "connection_error",
        "waiting",  # the worker's: a wait (for a record to show, for budget) that ran out of attempts
        "internal_error",  # the worker's: an unexpected exception in our own code
        "reauth_expired",  # the worker's: the consent stayed gone longer than the grace period
        "needs_reauth",  # a partner consent is gone: such items wait; a retry sends them to wait again
    }
)
"""Causes of a failure that may pass on its own: an operator retry sends such items again."""

NEEDS_REAUTH_CAUSE = "needs_reauth"
"""Cause of an item waiting for its partner connection's consent to be given again (it has not failed)."""
REAUTH_EXPIRED_CAUSE = "reauth_expired"
"""Cause of an item failed because its connection's consent stayed gone beyond ``GHX_PARTNER__REAUTH_GRACE_S``."""

CONNECTION_REMOVED_CAUSE = "connection_removed"
"""The item's connection was removed: there is no credential to send it with, so it is never retried."""

NEVER_RETRIED_CAUSES: frozenset[str] = frozenset({CONNECTION_REMOVED_CAUSE})
"""Causes no operator retry sends again, not even with ``--force``."""

KNOWN_CAUSES: frozenset[str] = PERMANENT_CAUSES | TRANSIENT_CAUSES | NEVER_RETRIED_CAUSES
"""Every cause a failed item may carry (a cause outside it, from an older release, counts as transient)."""


def retry_refusal(cause: str | None, *, force: bool = False) -> str | None:
    """Why an operator retry leaves a failed item with ``cause`` alone, or None when it retries it.

    ``"connection_removed"`` for :data:`NEVER_RETRIED_CAUSES` (even with ``force``), ``"permanent"`` for
    :data:`PERMANENT_CAUSES` unless ``force``; every other cause (transient, unknown, none) is retried.
    """
    if cause in NEVER_RETRIED_CAUSES:
        return CONNECTION_REMOVED_CAUSE
    if cause in PERMANENT_CAUSES and not force:
        return "permanent"
    return None
