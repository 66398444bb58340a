"""Reads across batches: every export of one profile, and the failed items by cause.

What the platform's "exported to Greenhouse" mark and the operator's ``ghexport status --connection NAME
--profile ID`` and ``ghexport retry --cause`` read. Each function opens one short read; putting failed
items back (with their history) is :func:`shared.store.batches.requeue_failed`.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from shared.store.models import Batch, Connection, Item, ItemStatus
from shared.store.records import BatchRecord, ItemRecord


@dataclass(frozen=True)
class ProfileExport:
    """One export of a profile: the item and the batch it belongs to."""

    item: ItemRecord
    batch: BatchRecord


def profile_exports(engine: Engine, connection_id: int, profile_id: str) -> list[ProfileExport]:
    """Every item of ``profile_id`` through the connection, with its batch, newest first."""
    with Session(engine) as session:
        rows = session.exec(
            select(Item, Batch)
            .join(Batch, col(Batch.id) == col(Item.batch_id))
            .where(col(Item.connection_id) == connection_id, col(Item.profile_id) == profile_id)
            .order_by(col(Item.created_at).desc(), col(Item.id).desc())
        ).all()
        return [ProfileExport(ItemRecord.from_row(item), BatchRecord.from_row(batch)) for item, batch in rows]


@dataclass(frozen=True)
class FailedGroup:
    """Failed items sharing a cause (None: none recorded) and whether their connection was removed since."""

    cause: str | None
    connection_removed: bool
    count: int


def failed_by_cause(engine: Engine, batch_id: str | None = None) -> list[FailedGroup]:
    """How many items failed (of one batch, or all), by cause and by whether their connection is gone."""
    removed = col(Connection.removed_at).is_not(None)
    stmt = (
        sa.select(removed, col(Item.error_cause), sa.func.count())
        .select_from(Item)
        .join(Connection, col(Connection.id) == col(Item.connection_id))
        .where(col(Item.status) == ItemStatus.FAILED)
        .group_by(removed, col(Item.error_cause))
    )
    if batch_id is not None:
        stmt = stmt.where(col(Item.batch_id) == batch_id)
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    return [FailedGroup(cause, bool(gone), int(n)) for gone, cause, n in rows]


def status_counts(engine: Engine, batch_id: str) -> dict[str, int]:
    """How many items of the batch are in each status (statuses with none are absent): one grouped read,
    no item loaded, for views that poll."""
    stmt = sa.select(col(Item.status), sa.func.count()).where(col(Item.batch_id) == batch_id).group_by(col(Item.status))
    with engine.connect() as conn:
        return {str(status): int(n) for status, n in conn.execute(stmt).all()}
