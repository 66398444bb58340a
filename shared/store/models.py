"""Result store tables (SQLModel; SQLite by default, PostgreSQL in production; schema by Alembic).

These rows are never task messages or API payloads: messages carry ids only (``shared.queue.messages``).

Item status model (grows with the roadmap, see ``docs/design.md``)::

    queued ──claim──> sending ──> exported ──(read back, matches)──> synced
      ^                 │   └──> failed (cause, error)      └──(window closed)──> sync_overdue (what differs)
      └──retry / lease──┘
    skipped   (already exported through this connection; never enqueued)
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    """Timezone-aware now; every stored timestamp is UTC."""
    return datetime.now(UTC)


def aware(ts: datetime) -> datetime:
    """``ts`` as an aware UTC datetime (a database may hand back naive UTC values)."""
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


class ItemStatus(StrEnum):
    """Item statuses of the operator contract.

    The ``status`` column stays a plain string (no database enum), so a new status needs a member here
    and no migration; a member compares and serialises as its value (``ItemStatus.EXPORTED == "exported"``).
    """

    QUEUED = "queued"
    SENDING = "sending"
    EXPORTED = "exported"
    SYNCED = "synced"
    SYNC_OVERDUE = "sync_overdue"
    SKIPPED = "skipped"
    FAILED = "failed"


ACTIVE_STATUSES: tuple[ItemStatus, ...] = (ItemStatus.QUEUED, ItemStatus.SENDING)
"""Statuses of an item some worker will still work on (or works on now)."""
DONE_STATUSES: tuple[ItemStatus, ...] = (ItemStatus.EXPORTED, ItemStatus.SYNCED, ItemStatus.SYNC_OVERDUE)
"""Statuses of an item whose record was written to Greenhouse (finishing with one stamps ``exported_at``)."""


class TargetKind(StrEnum):
    """Where a batch exports to: a job (candidates with an application) or prospects."""

    JOB = "job"
    PROSPECT = "prospect"


class DuplicatePolicy(StrEnum):
    """What to do when a profile's email already belongs to a person in Greenhouse."""

    LINK = "link"  # add the application to that person (default)
    CREATE = "create"  # create a new record anyway
    SKIP = "skip"  # do not export; report the match


class ConnectionKind(StrEnum):
    """How a connection authenticates: a customer's own client-credentials credential, or as a partner
    through the customer's OAuth consent (authorization-code grant)."""

    CUSTOM = "custom"
    PARTNER = "partner"


class GrantState(StrEnum):
    """Whether Greenhouse still honours a partner grant (``connections --json`` field ``state``)."""

    CONNECTED = "connected"
    NEEDS_REAUTH = "needs_reauth"


class Connection(SQLModel, table=True):
    """A Greenhouse connection: credential (secret encrypted at rest), acting user, source, capabilities.

    A partner connection (``kind`` ``partner``) belongs to one customer organization (from introspection);
    its tokens live in :class:`Grant`."""

    __tablename__ = "connections"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True, unique=True, max_length=200)
    client_id: str = Field(max_length=500)
    client_secret_encrypted: str = Field(default="", max_length=4000)
    user_email: str = Field(max_length=320)
    user_id: int = Field(sa_type=BigInteger)
    source_id: int = Field(sa_type=BigInteger)
    source_name: str = Field(max_length=200)
    prospects_only: bool = False
    pools_enabled: bool = False
    duplicate_policy: str = Field(default=DuplicatePolicy.LINK, max_length=20)
    scopes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    fields: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    """Which optional parts the connection sends (:class:`shared.profiles.fields.FieldSettings` as JSON;
    empty: every default)."""
    kind: str = Field(default=ConnectionKind.CUSTOM, max_length=20)
    organization_id: int | None = Field(default=None, sa_type=BigInteger)
    """The customer's Greenhouse organization (partner connections: from introspection). The rate limit,
    the learned window and the circuit breaker are keyed by it, never by the partner's shared client id."""
    organization_name: str | None = Field(default=None, max_length=400)
    tenant_id: str | None = Field(default=None, foreign_key="tenants.id", index=True, max_length=64)
    """The platform customer the connection belongs to (None: an operator's connection, seen by admin keys only)."""
    webhook_secret_encrypted: str = Field(default="", max_length=4000)
    """The secret of the customer's Greenhouse webhook to ``/v1/greenhouse/webhooks/{connection}`` (encrypted)."""
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    removed_at: datetime | None = None

    def __repr__(self) -> str:  # never show the (encrypted) secret
        return f"Connection(id={self.id!r}, name={self.name!r}, user_id={self.user_id!r})"

    __str__ = __repr__


class Batch(SQLModel, table=True):
    """One export request: a set of profiles sent to one target through one connection."""

    __tablename__ = "batches"

    id: str = Field(primary_key=True, max_length=32)
    connection_id: int = Field(foreign_key="connections.id", index=True)
    target_kind: str = Field(max_length=20)
    job_id: int | None = Field(default=None, sa_type=BigInteger)
    pool_id: int | None = Field(default=None, sa_type=BigInteger)
    stage_id: int | None = Field(default=None, sa_type=BigInteger)
    user_email: str = Field(max_length=320)
    user_id: int = Field(sa_type=BigInteger)
    user_name: str | None = Field(default=None, max_length=400)
    """The acting Greenhouse user's name, kept when the connection tags candidates with it."""
    include_exported: bool = False
    new_record: bool = False
    dummy_emails: bool = False
    total: int = 0
    rejected: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    """Input lines that could not be read, each ``{"line": n, "id": ..., "field": ..., "error": ...}``."""
    tenant_id: str | None = Field(default=None, index=True, max_length=64)
    """The connection's tenant when the batch was recorded (ownership checks read it without a join)."""
    completed_at: datetime | None = None
    """When the batch's last active item finished (its ``batch.completed`` event); cleared by a retry."""
    created_at: datetime = Field(default_factory=utcnow)


class Item(SQLModel, table=True):
    """One candidate of one batch: what was sent, the Greenhouse ids, status, attempts and errors."""

    __tablename__ = "items"
    __table_args__ = (
        UniqueConstraint("batch_id", "profile_id", name="uq_items_batch_profile"),
        Index("ix_items_connection_profile", "connection_id", "profile_id"),
        Index("ix_items_status", "status"),
        Index("ix_items_connection_visible", "connection_id", "visible_at"),
        Index("ix_items_create_sent_at", "create_sent_at"),
        Index("ix_items_status_sync_check", "status", "sync_check_at"),
        Index("ix_items_batch_status", "batch_id", "status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    batch_id: str = Field(foreign_key="batches.id", index=True, max_length=32)
    connection_id: int = Field(foreign_key="connections.id")
    profile_id: str = Field(max_length=200)
    profile: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    status: str = Field(default=ItemStatus.QUEUED, max_length=20)
    owner: str | None = Field(default=None, max_length=200)
    lease_until: datetime | None = None
    attempts: int = 0
    greenhouse_candidate_id: int | None = Field(default=None, sa_type=BigInteger)
    greenhouse_application_id: int | None = Field(default=None, sa_type=BigInteger)
    linked_existing: bool = False
    """The application went onto a person already in Greenhouse (found by email, or exported before)."""
    create_sent_at: datetime | None = None
    """Set before a create is sent; with no candidate id afterwards, the outcome is unknown: reconcile."""
    parts: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    """The item's export progress as JSON: read and written only through
    :class:`shared.store.progress.ItemProgress` (``from_stored`` / ``to_stored``), never by key."""
    warnings: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    left_out: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    """The field report: what the export left out and why, each :class:`shared.profiles.report.LeftOut`
    as a dict (``{"part", "reason", "n"?, "field"?, "detail"?}``). Its lines are also in ``warnings``."""
    history: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    """Earlier rounds of the item, oldest first: each ``{"at", "status", "attempts", "cause", "error"}``,
    written when an operator retry puts a failed item back (its attempts start again from 0)."""
    error: str | None = Field(default=None, max_length=2000)
    error_cause: str | None = Field(default=None, max_length=100)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    enqueued_at: datetime | None = None
    """When the item last went to the broker (published, or released by its credential's pacer)."""
    due_at: datetime | None = None
    """When the item's message should run: its publication, or the end of the countdown of its retry.
    Recovery publishes again only an item overdue by ``requeue_after_s`` while no broker queue holds work."""
    publications: int = 0
    """Times the item was handed to the queue by the producer, an operator retry or recovery (a pacer's
    release and the item's own retries are not counted): 1 unless recovery found it lost."""
    exported_at: datetime | None = None
    synced_at: datetime | None = None
    """When the read-back first found in Greenhouse what this item sent (status ``synced``)."""
    sync_deadline_at: datetime | None = None
    """When the item's sync window closes: still unreadable or different then, it becomes ``sync_overdue``."""
    sync_check_at: datetime | None = None
    """When the item is next due for a read-back (``exported`` items only)."""
    sync_checks: int = 0
    """Read-backs made so far."""
    sync_detail: str | None = Field(default=None, max_length=2000)
    """What the last read-back found missing or different (no values: field names and ids only)."""
    record_deleted_at: datetime | None = None
    """When Greenhouse said (``delete_candidate`` webhook) that the record this item wrote to was deleted or merged
    away: the ledger forgot it, and a later export links to the survivor found by email or creates it again."""
    visible_at: datetime | None = None
    """When Greenhouse was first seen showing the record this item created (the read-back delay since
    ``create_sent_at`` is measured per connection: it sizes the wait for an unknown create outcome)."""


class Marker(SQLModel, table=True):
    """A named value the cluster keeps in the store, e.g. the epoch of the broker's Redis: when Redis comes
    back without it, Redis lost its data (and every message queued in it)."""

    __tablename__ = "markers"

    name: str = Field(primary_key=True, max_length=100)
    value: str = Field(max_length=200)
    updated_at: datetime = Field(default_factory=utcnow)


class Person(SQLModel, table=True):
    """The Greenhouse record we created for a platform profile through a connection (one per pair).

    A worker inserts this row (``ON CONFLICT DO NOTHING``) before it sends a create: whoever holds it is
    the only one allowed to create, so two batches never create two records for one profile.
    """

    __tablename__ = "people"
    __table_args__ = (UniqueConstraint("connection_id", "profile_id", name="uq_people_connection_profile"),)

    id: int | None = Field(default=None, primary_key=True)
    connection_id: int = Field(foreign_key="connections.id")
    profile_id: str = Field(max_length=200)
    greenhouse_candidate_id: int | None = Field(default=None, sa_type=BigInteger)
    owner_item_id: int | None = None
    created_at: datetime = Field(default_factory=utcnow)


class Grant(SQLModel, table=True):
    """A partner connection's OAuth authorization: its tokens (encrypted), who consented, and its state.

    ``user_id`` None is the connection's own consent (a service account or the consenting user); a
    recruiter's own authorization under the same connection would be a row with their user id. Tokens are
    written only under the grant's cluster-wide refresh lock, and every refresh bumps ``generation``: a
    write based on an older generation is refused, so a rotated refresh token is never overwritten.
    """

    __tablename__ = "grants"
    __table_args__ = (UniqueConstraint("connection_id", "user_id", name="uq_grants_connection_user"),)

    id: int | None = Field(default=None, primary_key=True)
    connection_id: int = Field(foreign_key="connections.id", index=True)
    user_id: int | None = Field(default=None, sa_type=BigInteger)
    sub: int | None = Field(default=None, sa_type=BigInteger)
    """The Greenhouse user the tokens act as (introspection's ``sub``): the service account or the consenting user."""
    user_role: str | None = Field(default=None, max_length=100)
    granted_scopes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    refresh_token_encrypted: str = Field(default="", max_length=4000)
    access_token_encrypted: str = Field(default="", max_length=8000)
    access_expires_at: datetime | None = None
    refreshed_at: datetime | None = None
    """When the current tokens were issued (consent or the last refresh)."""
    generation: int = 0
    state: str = Field(default=GrantState.CONNECTED, max_length=20)
    reason: str | None = Field(default=None, max_length=500)
    """Why the grant needs a new consent (no secret, no candidate data)."""
    since: datetime | None = None
    """When the grant entered its current state."""
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)

    def __repr__(self) -> str:  # never show the (encrypted) tokens
        return f"Grant(id={self.id!r}, connection_id={self.connection_id!r}, state={self.state!r})"

    __str__ = __repr__


class ConsentRequest(SQLModel, table=True):
    """A partner consent begun and not yet completed: what the connect asked for, found again by its
    ``state`` (stored as a SHA-256 hash only), usable once and until ``expires_at``."""

    __tablename__ = "consent_requests"

    state_hash: str = Field(primary_key=True, max_length=64)
    connection_name: str = Field(max_length=200)
    client_id: str = Field(max_length=500)
    client_secret_encrypted: str = Field(max_length=4000)
    redirect_uri: str = Field(max_length=2000)
    options: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    """The connect's other options (user email, source, capabilities, field settings, verification)."""
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    used_at: datetime | None = None

    def __repr__(self) -> str:
        return f"ConsentRequest(connection_name={self.connection_name!r}, expires_at={self.expires_at!r})"

    __str__ = __repr__


class Tenant(SQLModel, table=True):
    """One customer organization of the platform: its connections and batches belong to it, and its API keys
    see nothing else. ``id`` is the platform's own identifier for the customer (a slug).

    A tenant that registered a callback URL gets every state change of its items, batches and connections
    as a signed event (:class:`OutboxEvent`); its signing secret is encrypted with ``GHX_SECRET_KEY``.
    """

    __tablename__ = "tenants"

    id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200)
    callback_url: str | None = Field(default=None, max_length=2000)
    callback_secret_encrypted: str = Field(default="", max_length=4000)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)

    def __repr__(self) -> str:  # never show the (encrypted) signing secret
        return f"Tenant(id={self.id!r}, name={self.name!r})"

    __str__ = __repr__


class ApiKey(SQLModel, table=True):
    """An HTTP API key: shown once when created, stored as its SHA-256 only, found by its public prefix.

    ``tenant_id`` None is a platform-admin key (every tenant's resources, tenant administration)."""

    __tablename__ = "api_keys"

    id: int | None = Field(default=None, primary_key=True)
    prefix: str = Field(index=True, unique=True, max_length=32)
    key_hash: str = Field(max_length=64)
    tenant_id: str | None = Field(default=None, foreign_key="tenants.id", index=True, max_length=64)
    name: str = Field(default="", max_length=200)
    created_at: datetime = Field(default_factory=utcnow)
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None

    def __repr__(self) -> str:  # never show the hash
        return f"ApiKey(prefix={self.prefix!r}, tenant_id={self.tenant_id!r})"

    __str__ = __repr__


class IdempotencyKey(SQLModel, table=True):
    """An ``Idempotency-Key`` of ``POST /v1/exports``, inserted in the transaction that records its batch: the
    same key and the same request (``request_hash``) give that batch again; another request under it is refused."""

    __tablename__ = "idempotency_keys"

    tenant_id: str = Field(primary_key=True, max_length=64)
    """The key's tenant (``""`` for a platform-admin key): keys of two tenants never meet."""
    key: str = Field(primary_key=True, max_length=255)
    request_hash: str = Field(max_length=64)
    batch_id: str = Field(foreign_key="batches.id", max_length=32)
    created_at: datetime = Field(default_factory=utcnow)


class OutboxState(StrEnum):
    """Where a callback event is in its delivery."""

    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"


class OutboxEvent(SQLModel, table=True):
    """A callback to a tenant, written in the transaction of the state change it reports and delivered at
    least once by the workers (signed per Standard Webhooks; ``id`` is the stable ``webhook-id``)."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_state_next", "state", "next_attempt_at"),)

    id: str = Field(primary_key=True, max_length=40)
    tenant_id: str = Field(foreign_key="tenants.id", index=True, max_length=64)
    type: str = Field(max_length=60)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)
    state: str = Field(default=OutboxState.PENDING, max_length=20)
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow)
    lease_until: datetime | None = None
    last_error: str | None = Field(default=None, max_length=1000)
    delivered_at: datetime | None = None


class GreenhouseEvent(SQLModel, table=True):
    """A Greenhouse webhook delivery applied once: its ``Greenhouse-Event-ID`` per connection."""

    __tablename__ = "greenhouse_events"

    connection_id: int = Field(foreign_key="connections.id", primary_key=True)
    event_id: str = Field(primary_key=True, max_length=200)
    action: str = Field(max_length=100)
    received_at: datetime = Field(default_factory=utcnow)
