"""Read models: rows known to exist, as the store's read functions return them.

The SQLModel tables (:mod:`shared.store.models`) are for writes and queries. Their ``id`` is optional
because a new row has none until it is inserted. A record comes from a stored row, so its ``id`` is an
``int``. Statuses, target kinds and duplicate policies are enums, and an item's progress is typed
(:class:`~shared.store.progress.ItemProgress`). Records are immutable: the worker keeps its copy of an
item current by replacing it (``model_copy``) after each write. Only attribute assignment is blocked;
list and dict values are the caller's copy and must be treated as read-only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.store.models import (
    Batch,
    Connection,
    ConnectionKind,
    DuplicatePolicy,
    Grant,
    GrantState,
    Item,
    ItemStatus,
    Person,
    TargetKind,
)
from shared.store.progress import ItemProgress


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, from_attributes=True, extra="forbid")


class ConnectionRecord(_Record):
    """A stored Greenhouse connection (live, or removed when ``removed_at`` is set). Its repr hides the secret."""

    id: int
    name: str
    client_id: str
    client_secret_encrypted: str = Field(repr=False)
    """The client secret, encrypted with ``GHX_SECRET_KEY``. Empty once the connection is removed."""
    user_email: str
    user_id: int
    source_id: int
    source_name: str
    prospects_only: bool
    pools_enabled: bool
    duplicate_policy: DuplicatePolicy
    scopes: list[str]
    fields: dict[str, Any] = Field(default_factory=dict)
    """Which optional parts the connection sends, as stored (read it with ``FieldSettings.from_stored``)."""
    kind: ConnectionKind = ConnectionKind.CUSTOM
    organization_id: int | None = None
    organization_name: str | None = None
    tenant_id: str | None = None
    """The platform customer the connection belongs to (None: an operator's connection)."""
    created_at: datetime
    updated_at: datetime
    removed_at: datetime | None

    @classmethod
    def from_row(cls, row: Connection) -> ConnectionRecord:
        """The record of a stored ``row``. Raises :class:`pydantic.ValidationError` when the row has no id."""
        return cls.model_validate(row)

    @property
    def is_partner(self) -> bool:
        """Whether the connection authenticates through a partner consent."""
        return self.kind is ConnectionKind.PARTNER

    @property
    def limit_key(self) -> str:
        """The key of the connection's rate limit, learned window, circuit and parked items: the customer
        account Greenhouse counts requests for. A custom credential is its customer's own (its client id);
        a partner's client id serves every customer, so a partner connection is keyed by its organization."""
        return limit_key(self.client_id, self.organization_id if self.is_partner else None)

    def __repr__(self) -> str:  # never show the (encrypted) secret
        return f"ConnectionRecord(id={self.id!r}, name={self.name!r}, user_id={self.user_id!r})"

    __str__ = __repr__


def limit_key(client_id: str, organization_id: int | None) -> str:
    """``client_id`` for a custom credential; ``client_id@organization_id`` for a partner connection."""
    return client_id if organization_id is None else f"{client_id}@{organization_id}"


class GrantRecord(_Record):
    """A stored partner grant, without its tokens (read them through :mod:`shared.store.grants`)."""

    id: int
    connection_id: int
    user_id: int | None
    sub: int | None
    user_role: str | None
    granted_scopes: list[str]
    access_expires_at: datetime | None
    refreshed_at: datetime | None
    generation: int
    state: GrantState
    reason: str | None
    since: datetime | None

    @classmethod
    def from_row(cls, row: Grant) -> GrantRecord:
        """The record of a stored ``row``."""
        return cls.model_validate(row, from_attributes=True)


class BatchRecord(_Record):
    """A stored export request: a set of profiles sent to one target through one connection."""

    id: str
    connection_id: int
    target_kind: TargetKind
    job_id: int | None
    pool_id: int | None
    stage_id: int | None
    user_email: str
    user_id: int
    user_name: str | None = None
    include_exported: bool
    new_record: bool
    dummy_emails: bool
    total: int
    rejected: list[dict[str, Any]]
    """Input lines that could not be read, each ``{"line": n, "id": ..., "field": ..., "error": ...}``."""
    tenant_id: str | None = None
    """The connection's tenant when the batch was recorded (None: an operator's batch)."""
    created_at: datetime

    @classmethod
    def from_row(cls, row: Batch) -> BatchRecord:
        """The record of a stored ``row``."""
        return cls.model_validate(row)


class ItemRecord(_Record):
    """A stored item: one candidate of one batch, with its status, Greenhouse ids and typed progress.

    The columns of :class:`~shared.store.models.Item`, except ``parts``: the JSON in that column
    arrives here as ``progress``.
    """

    id: int
    batch_id: str
    connection_id: int
    profile_id: str
    profile: dict[str, Any]
    status: ItemStatus
    owner: str | None
    lease_until: datetime | None
    attempts: int
    greenhouse_candidate_id: int | None
    greenhouse_application_id: int | None
    linked_existing: bool
    """The application went onto a person already in Greenhouse (found by email, or exported before)."""
    create_sent_at: datetime | None
    """Set before a create is sent. With no candidate id afterwards, the outcome is unknown: reconcile."""
    progress: ItemProgress
    """The parts sent so far and their Greenhouse ids (stored as JSON in the column ``parts``)."""
    warnings: list[str]
    left_out: list[dict[str, Any]] = Field(default_factory=list)
    history: list[dict[str, Any]]
    error: str | None
    error_cause: str | None
    created_at: datetime
    updated_at: datetime
    enqueued_at: datetime | None
    due_at: datetime | None
    publications: int
    exported_at: datetime | None
    synced_at: datetime | None
    visible_at: datetime | None
    sync_deadline_at: datetime | None
    sync_check_at: datetime | None
    sync_checks: int
    sync_detail: str | None
    record_deleted_at: datetime | None = None
    """When Greenhouse said (its ``delete_candidate`` webhook) that the record this item wrote to is gone."""

    @classmethod
    def from_row(cls, row: Item) -> ItemRecord:
        """The record of a stored ``row``. Its ``parts`` JSON is validated by :meth:`ItemProgress.from_stored`."""
        columns = {name: getattr(row, name) for name in cls.model_fields if name != "progress"}
        return cls.model_validate({**columns, "progress": ItemProgress.from_stored(row.parts)})


class PersonRecord(_Record):
    """A stored ledger row: the Greenhouse record of one platform profile through one connection."""

    id: int
    connection_id: int
    profile_id: str
    greenhouse_candidate_id: int | None
    """The record's Greenhouse id. None until the owner's create succeeds."""
    owner_item_id: int | None
    """The item that may create the record while it has no candidate id. None once that item gave up."""
    created_at: datetime

    @classmethod
    def from_row(cls, row: Person) -> PersonRecord:
        """The record of a stored ``row``."""
        return cls.model_validate(row)
