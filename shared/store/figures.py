"""The store's figures for the metrics endpoint: items by status, the oldest waiting ones, the recent sync lags,
callbacks by delivery state. Reads only, on indexed columns, one short connection per scrape."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import col

from shared.store.models import Item, ItemStatus, OutboxEvent, OutboxState, aware


@dataclass(frozen=True)
class ItemFigures:
    """What one read of the ``items`` table found."""

    counts: dict[str, int]
    """Items by status, every status of :class:`ItemStatus` present (0 when none)."""
    oldest_queued_at: datetime | None
    """The oldest ``queued`` item's ``updated_at`` (when it last became queued)."""
    oldest_unsynced_at: datetime | None
    """The oldest ``exported`` item's ``exported_at``, leaving out records Greenhouse deleted since (never
    read back, so never "unsynced")."""
    sync_lags_s: list[float]
    """``synced_at - exported_at`` of the items confirmed within the window, newest first."""
    callbacks: dict[str, int]
    """Callback events by delivery state, every :class:`OutboxState` present (0 when none)."""


def item_figures(engine: Engine, now: datetime, *, window_s: float, sample: int) -> ItemFigures:
    """Read the figures (four queries on the ``status`` index, one on the outbox's state index)."""
    counts = {s.value: 0 for s in ItemStatus}
    callbacks = {s.value: 0 for s in OutboxState}
    status = col(Item.status)
    with engine.connect() as conn:
        for name, n in conn.execute(sa.select(status, sa.func.count()).group_by(status)):
            counts[str(name)] = int(n)
        queued = conn.scalar(sa.select(sa.func.min(col(Item.updated_at))).where(status == ItemStatus.QUEUED))
        unsynced = conn.scalar(
            sa.select(sa.func.min(col(Item.exported_at))).where(
                status == ItemStatus.EXPORTED, col(Item.record_deleted_at).is_(None)
            )
        )
        recent = conn.execute(
            sa.select(col(Item.exported_at), col(Item.synced_at))
            .where(
                status == ItemStatus.SYNCED,
                col(Item.synced_at) >= now - timedelta(seconds=window_s),
                col(Item.exported_at).is_not(None),
            )
            .order_by(col(Item.synced_at).desc())
            .limit(sample)
        ).all()
        state = col(OutboxEvent.state)
        for name, n in conn.execute(sa.select(state, sa.func.count()).group_by(state)):
            callbacks[str(name)] = int(n)
    return ItemFigures(
        counts=counts,
        oldest_queued_at=aware(queued) if queued is not None else None,
        oldest_unsynced_at=aware(unsynced) if unsynced is not None else None,
        sync_lags_s=[max(0.0, (aware(s) - aware(e)).total_seconds()) for e, s in recent if e and s],
        callbacks=callbacks,
    )
