"""In-memory state of the sandbox tenant, its configuration and the per-request bookkeeping.

Records are plain dicts shaped like Harvest v3 responses; one re-entrant lock guards everything
because :class:`~shared.harvest.sandbox.server.SandboxServer` serves requests from several threads.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

# Any: a record's members differ by record kind and field (ids, strings, nested lists, nulls), just as in
# Harvest's JSON, and the route handlers read them by name.
Record = dict[str, Any]
"""A Harvest record as the sandbox stores it (the JSON object it returns)."""

FIRST_RUNTIME_ID = 100_000_001
"""First id given to a record created at run time; the seeded tenant's ids all lie below it."""

DEFAULT_SLOW_S = 2.0
"""How long a ``slow`` fault (and ``slow_after``, after applying the write) sleeps unless
:attr:`SandboxConfig.slow_s` says otherwise."""

DEFAULT_MAX_ATTACHMENT_BYTES = 20 * 1024 * 1024
"""Largest decoded ``content`` ``POST /v3/attachments`` accepts unless :attr:`SandboxConfig.max_attachment_bytes`
says otherwise. An assumption: Greenhouse publishes no size limit for v3 attachments."""

ALL_ATTACHMENT_TYPES = "*"
"""Key of :attr:`State.blocked_extensions` whose extensions are refused for every attachment type."""

DEFAULT_WEBHOOK_RETRY_DELAYS_S: tuple[float, ...] = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6)
"""Waits before each retry of a failed webhook delivery unless :attr:`SandboxConfig.webhook_retry_delays_s` says
otherwise: Greenhouse's six retries (after 1, 15, 60, 120, 240 and 480 minutes [P HOOKS]) shrunk to seconds."""


@dataclass
class SandboxConfig:
    """Behaviour knobs of one sandbox instance.

    ``fault_rate`` is the probability that a /v3 write (not ``/token``, not a read) gets a random fault,
    drawn from ``fault_kinds`` (``None``: :data:`~shared.harvest.sandbox.faults.RANDOM_KINDS`);
    ``read_fault_rate`` the probability that a /v3 GET or ``POST /token`` gets a random transient fault
    (:data:`~shared.harvest.sandbox.faults.READ_RANDOM_KINDS`); a ``slow`` fault sleeps ``slow_s`` before
    applying the write and answering, ``slow_after`` after applying it;
    ``visibility_delay_s`` hides new candidates from reads for that long (Greenhouse creates
    asynchronously); ``latency_ms`` is added to every API request; ``max_attachment_bytes`` caps the decoded
    ``content`` of ``POST /v3/attachments`` (422 above it; Greenhouse publishes no limit: an assumption);
    ``attachment_content_type`` is how that route treats a ``content_type`` member, unknown on real v3
    (docs/harvest.md section 10): ``refused`` (the v3 page shows none, and unknown members are refused) or
    ``required`` (as v1 did with base64 ``content``: missing or not a known type, 422).
    :class:`~shared.harvest.sandbox.app.Sandbox` checks the fault settings
    (:func:`~shared.harvest.sandbox.faults.check_config`), ``max_attachment_bytes`` and
    ``attachment_content_type``, ``auth_code_ttl_s`` and ``refresh_token_ttl_s``.
    """

    rate_limit: int = 50
    window_s: float = 30.0
    latency_ms: float = 0.0
    fault_rate: float = 0.0
    fault_kinds: tuple[str, ...] | None = None
    read_fault_rate: float = 0.0
    slow_s: float = DEFAULT_SLOW_S
    visibility_delay_s: float = 0.0
    token_ttl_s: float = 3600.0
    max_attachment_bytes: int = DEFAULT_MAX_ATTACHMENT_BYTES
    attachment_content_type: str = "refused"
    seed: int = 0
    auth_code_ttl_s: float = 60.0
    """Lifetime of a partner authorization code (Greenhouse: 1 minute [P POAUTH])."""
    refresh_token_ttl_s: float = 86400.0
    """How long a partner refresh token lives unused (Greenhouse: 24 hours [P POAUTH])."""
    webhook_retry_delays_s: tuple[float, ...] = DEFAULT_WEBHOOK_RETRY_DELAYS_S
    """Waits (real seconds) before each retry of a webhook delivery that failed (an answer other than 200, a
    timeout or a network error); one retry per entry, then the delivery is given up (state ``failed``)."""
    webhook_timeout_s: float = 5.0
    """How long one webhook delivery attempt waits for the receiver's answer."""


class RateLimit(NamedTuple):
    """A rolling-window budget: at most ``requests`` in any ``window_s`` seconds."""

    requests: int
    window_s: float


@dataclass(frozen=True)
class Credential:
    """An API credential: its secret, its scopes, and optionally its own rate limit and window.

    ``rate_limit`` / ``window_s`` left ``None`` fall back to :attr:`SandboxConfig.rate_limit` /
    :attr:`SandboxConfig.window_s` (see :meth:`State.rate_limit`).
    """

    secret: str
    scopes: frozenset[str]
    rate_limit: int | None = None
    window_s: float | None = None


@dataclass
class Token:
    """An access token minted by ``POST /token``: scopes are fixed at mint time, like Greenhouse.

    ``org_id`` is ``None`` for a custom credential's token (it acts in the default organization) and the
    consenting organization for a partner's token (whose scopes are also cut to the client's current ones).
    """

    client_id: str
    sub: int | None
    scopes: frozenset[str]
    expires_ts: float
    org_id: int | None = None


@dataclass(frozen=True)
class PartnerClient:
    """A partner OAuth client: its secret, the scopes Greenhouse approved, its registered redirect URIs."""

    secret: str
    scopes: frozenset[str]
    redirect_uris: frozenset[str]


@dataclass(frozen=True)
class Grant:
    """What one consent granted: which client acts in which organization, as whom, with which scopes."""

    client_id: str
    org_id: int
    sub: int
    scopes: frozenset[str]


@dataclass
class AuthCode:
    """An authorization code: single use, bound to its client and redirect URI, short-lived."""

    grant: Grant
    redirect_uri: str
    expires_ts: float
    used: bool = False


@dataclass
class RefreshToken:
    """A partner refresh token: ``live`` until used once (``used``: it rotated) or revoked (``revoked``).

    Spent ones are kept so that a second use is told apart from an unknown token.
    """

    grant: Grant
    issued_ts: float
    status: str = "live"


@dataclass
class Fault:
    """A fault waiting for ``count`` matching requests (``path`` is a literal path or route template)."""

    kind: str
    method: str
    path: str
    count: int


@dataclass
class Outage:
    """Every /v3 request and ``POST /token`` answers ``status`` until ``until_ts`` (sandbox clock); with
    ``writes_only``, only /v3 writes (POST, PUT, PATCH, DELETE) do, while reads and token mints are served."""

    until_ts: float
    status: int
    writes_only: bool = False

    def hits(self, method: str, path: str) -> bool:
        """Whether the request ``method path`` answers the outage's status."""
        return not self.writes_only or (path.startswith("/v3/") and method in ("POST", "PUT", "PATCH", "DELETE"))


@dataclass(frozen=True)
class WebhookEndpoint:
    """A webhook the organization configured (Greenhouse: Dev Center, one per event type): which ``action`` it
    fires for, the endpoint ``url`` and the ``secret_key`` the ``Signature`` header is computed with."""

    id: int
    action: str
    url: str
    secret_key: str = field(repr=False)


WebhookSink = Callable[["State", WebhookEndpoint, str, Record], None]
"""Takes one webhook event (the organization, the endpoint, the action, the payload) for delivery: it only queues
it, since it is called by a route handler holding the sandbox lock
(:meth:`~shared.harvest.sandbox.webhooks.Dispatcher.submit`)."""


class AttachmentFile(NamedTuple):
    """An attachment's stored file: its name, the MIME type Harvest reports, and the decoded bytes."""

    filename: str
    content_type: str
    content: bytes


@dataclass
class CursorEntry:
    """Server-side meaning of one opaque cursor handed out in a ``Link`` header."""

    route: str
    params: dict[str, str]
    offset: int
    per_page: int


def iso(ts: float) -> str:
    """Harvest timestamp form: ISO-8601 UTC with milliseconds and ``Z``."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class State:
    """Everything one organization holds. Mutate only while holding :attr:`lock`.

    The sandbox's default organization's State also holds what the auth server and the sandbox as a whole
    keep: credentials, partner clients, tokens, codes, refresh tokens, rate-limit windows, faults and the
    outage; another organization's State (``org_id`` set, sharing the default one's clock and lock) holds only
    its records, and its attachments' download URLs name it.

    ``attachments`` records keep private members (names starting with ``_``: the decoded ``_content``, the
    ``_source_url`` of a url upload) that no API answer shows. ``blocked_extensions`` is the org's blocklist
    of attachment file extensions (lower case, with the dot), per attachment type; the
    :data:`ALL_ATTACHMENT_TYPES` key applies to every type (the seeded tenant's:
    :data:`~shared.harvest.sandbox.seed.BLOCKED_EXTENSIONS`).
    """

    clock: Callable[[], float] = time.time
    lock: threading.RLock = field(default_factory=threading.RLock)
    rng: random.Random = field(default_factory=random.Random)
    credentials: dict[str, Credential] = field(default_factory=dict)
    partners: dict[str, PartnerClient] = field(default_factory=dict)
    tokens: dict[str, Token] = field(default_factory=dict)
    codes: dict[str, AuthCode] = field(default_factory=dict)
    refresh_tokens: dict[str, RefreshToken] = field(default_factory=dict)
    users: dict[int, Record] = field(default_factory=dict)
    sources: dict[int, Record] = field(default_factory=dict)
    jobs: dict[int, Record] = field(default_factory=dict)
    openings: dict[int, Record] = field(default_factory=dict)
    close_reasons: dict[int, Record] = field(default_factory=dict)
    pools: dict[int, Record] = field(default_factory=dict)
    stages: dict[int, Record] = field(default_factory=dict)
    custom_fields: dict[str, Record] = field(default_factory=dict)
    options: dict[int, Record] = field(default_factory=dict)
    tags: dict[int, Record] = field(default_factory=dict)
    candidates: dict[int, Record] = field(default_factory=dict)
    created_ts: dict[int, float] = field(default_factory=dict)
    applications: dict[int, Record] = field(default_factory=dict)
    educations: dict[int, Record] = field(default_factory=dict)
    employments: dict[int, Record] = field(default_factory=dict)
    applied_tags: dict[int, Record] = field(default_factory=dict)
    attachments: dict[int, Record] = field(default_factory=dict)
    blocked_extensions: dict[str, frozenset[str]] = field(default_factory=dict)
    notes: dict[int, Record] = field(default_factory=dict)
    cursors: dict[str, CursorEntry] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    outage: Outage | None = None
    windows: dict[str, deque[float]] = field(default_factory=dict)
    org_id: int | None = None
    webhooks: list[WebhookEndpoint] = field(default_factory=list)
    """The organization's configured webhooks (:meth:`~shared.harvest.sandbox.app.Sandbox.add_webhook`)."""
    webhook_sink: WebhookSink | None = None
    """Where the organization's webhook events go (the sandbox's dispatcher); None: nowhere."""
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(FIRST_RUNTIME_ID))

    def next_id(self) -> int:
        """A fresh record id, unique across all record kinds."""
        return next(self._ids)

    def now(self) -> float:
        """Current time from the injected clock."""
        return self.clock()

    def rate_limit(self, config: SandboxConfig, client_id: str) -> RateLimit:
        """The credential's own limit and window where set, else the configuration's."""
        cred = self.credentials.get(client_id)
        own_limit = cred.rate_limit if cred is not None else None
        own_window = cred.window_s if cred is not None else None
        return RateLimit(
            config.rate_limit if own_limit is None else own_limit,
            config.window_s if own_window is None else own_window,
        )

    def outage_status(self, method: str, path: str) -> int | None:
        """The status the request ``method path`` answers now, while an outage that hits it lasts; ``None``
        otherwise."""
        if self.outage is None:
            return None
        if self.now() >= self.outage.until_ts:
            self.outage = None
            return None
        return self.outage.status if self.outage.hits(method, path) else None

    def visible(self, candidate_id: int, delay_s: float) -> bool:
        """Whether reads may see the candidate yet (asynchronous creation)."""
        created = self.created_ts.get(candidate_id)
        return created is not None and self.now() - created >= delay_s

    def active_user(self, user_id: object) -> Record | None:
        """The user with this id if it exists and is not deactivated."""
        user = self.users.get(user_id) if isinstance(user_id, int) else None
        return user if user is not None and not user["deactivated"] else None
