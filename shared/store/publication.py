"""When items went to the queue, and the recovery queries that find the ones the queue lost: a lease that
ran out, an item never published, a message overdue."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import col

from shared.store.models import Connection, ConnectionKind, Item, ItemStatus, utcnow
from shared.store.records import limit_key
from shared.store.rows import chunks, stored_ids


def mark_published(engine: Engine, item_ids: Sequence[int], when: datetime | None = None) -> None:
    """Record that the items were handed to the queue (broker, or their credential's pacer) by the producer,
    an operator retry or recovery: ``enqueued_at`` and ``due_at`` now, one more publication."""
    when = when or utcnow()
    with engine.begin() as conn:
        for part in chunks(item_ids):
            conn.execute(
                sa.update(Item)
                .where(col(Item.id).in_(part))
                .values(enqueued_at=when, due_at=when, publications=col(Item.publications) + 1)
            )


def mark_released(engine: Engine, item_ids: Sequence[int], when: datetime | None = None) -> None:
    """Record that a pacer sent the items' messages to the broker (their turn came; not a publication)."""
    when = when or utcnow()
    with engine.begin() as conn:
        for part in chunks(item_ids):
            conn.execute(sa.update(Item).where(col(Item.id).in_(part)).values(enqueued_at=when, due_at=when))


def _item_ids(engine: Engine, *where: Any, limit: int) -> list[int]:
    """Ids of the items matching every condition of ``where``, in id order, at most ``limit``."""
    with engine.connect() as conn:
        ids = conn.scalars(sa.select(col(Item.id)).where(*where).order_by(col(Item.id)).limit(limit))
        return stored_ids(ids)


def expired_leases(engine: Engine, limit: int = 10_000) -> list[int]:
    """Items ``sending`` whose lease expired: their worker died (or froze) mid-task."""
    return _item_ids(engine, col(Item.status) == ItemStatus.SENDING, col(Item.lease_until) < utcnow(), limit=limit)


def unpublished_items(engine: Engine, older_than_s: float, limit: int = 10_000) -> list[int]:
    """Items ``queued`` for ``older_than_s`` and never handed to the queue (the producer stopped, or the
    broker refused, between the batch's commit and its publication)."""
    cutoff = utcnow() - timedelta(seconds=older_than_s)
    return _item_ids(
        engine,
        col(Item.status) == ItemStatus.QUEUED,
        col(Item.enqueued_at).is_(None),
        col(Item.updated_at) < cutoff,
        limit=limit,
    )


def overdue_items(engine: Engine, older_than_s: float, limit: int = 10_000) -> list[int]:
    """Items ``queued`` whose message was due more than ``older_than_s`` ago (whether it still waits in a
    queue is for the caller to tell)."""
    cutoff = utcnow() - timedelta(seconds=older_than_s)
    return _item_ids(
        engine,
        col(Item.status) == ItemStatus.QUEUED,
        col(Item.enqueued_at).is_not(None),
        sa.func.coalesce(col(Item.due_at), col(Item.enqueued_at)) < cutoff,
        col(Item.updated_at) < cutoff,
        limit=limit,
    )


def queued_before(engine: Engine, when: datetime, limit: int = 100_000) -> list[int]:
    """Items ``queued`` and handed to the queue before ``when`` (their messages were in the broker then)."""
    return _item_ids(engine, col(Item.status) == ItemStatus.QUEUED, col(Item.enqueued_at) < when, limit=limit)


@dataclass(frozen=True)
class PacingFact:
    """What a pacer needs to park an item: its credential's limit key, its profile (the cost of its next step)
    and whether its record exists already (its parts come next, after every parked core record)."""

    item_id: int
    limit_key: str
    profile: dict[str, Any]
    has_record: bool


def pacing_facts(engine: Engine, item_ids: Sequence[int]) -> list[PacingFact]:
    """:class:`PacingFact` of each of ``item_ids`` (in id order; missing ids left out)."""
    stmt = (
        sa.select(
            col(Item.id),
            col(Connection.client_id),
            col(Connection.kind),
            col(Connection.organization_id),
            col(Item.profile),
            col(Item.greenhouse_candidate_id),
        )
        .join(Connection, col(Connection.id) == col(Item.connection_id))
        .where(col(Item.id).in_(list(item_ids)))
        .order_by(col(Item.id))
    )
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    return [
        PacingFact(
            item_id=int(item_id),
            limit_key=limit_key(client_id, organization_id if kind == ConnectionKind.PARTNER else None),
            profile=dict(profile or {}),
            has_record=candidate_id is not None,
        )
        for item_id, client_id, kind, organization_id, profile, candidate_id in rows
    ]
