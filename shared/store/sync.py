"""The store side of sync confirmation: each exported item's window, the items due for a read-back, and
the outcome of each read-back.

An item ``exported`` is scheduled lazily: the first confirmation turn after its export gives it its window
(:func:`sync_window_s`, from when it was exported) and its first read-back time, so the export path
writes nothing more and items exported by an older version are confirmed too. Each read-back then ends
the item ``synced`` (what was sent is there), ``sync_overdue`` (still missing or different when the window
closed, with what differs) or leaves it ``exported`` until its next read-back: those state changes are
:func:`shared.store.items.mark_synced` and :func:`~shared.store.items.mark_unconfirmed`, with the item's other
state changes, each guarded by status ``exported`` so an item another turn settled is never overwritten.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from shared.settings import SyncSettings
from shared.store.models import ACTIVE_STATUSES, Item, ItemStatus, aware, utcnow
from shared.store.records import ItemRecord

PEAK_ZONE = ZoneInfo("America/New_York")
PEAK_START = time(8, 0)
PEAK_END = time(22, 0)
"""Greenhouse's peak hours, when a new record may take up to four hours to be in sync: 08:00 to 22:00 US
Eastern, daylight saving time included (hence a zone, never a fixed UTC offset)."""


def in_peak_hours(moment: datetime) -> bool:
    """Whether ``moment`` (aware, or naive UTC) falls in 08:00-22:00 America/New_York."""
    local = aware(moment).astimezone(PEAK_ZONE).time()
    return PEAK_START <= local < PEAK_END


def sync_window_s(exported_at: datetime, settings: SyncSettings) -> float:
    """The sync window of an item exported at ``exported_at``: the peak one in peak hours, else the
    off-peak one (never longer than the peak one)."""
    if in_peak_hours(exported_at):
        return settings.peak_window_s
    return min(settings.offpeak_window_s, settings.peak_window_s)


def schedule_new(engine: Engine, settings: SyncSettings, limit: int = 5000) -> int:
    """Give exported items without a window theirs, and their first read-back one interval after their
    export; returns how many were scheduled."""
    with engine.begin() as conn:
        rows = conn.execute(
            sa.select(col(Item.id), col(Item.exported_at), col(Item.updated_at))
            .where(
                col(Item.status) == ItemStatus.EXPORTED,
                col(Item.sync_deadline_at).is_(None),
                col(Item.record_deleted_at).is_(None),  # the record is gone: nothing to confirm
            )
            .order_by(col(Item.id))
            .limit(limit)
        ).all()
        for item_id, exported_at, updated_at in rows:
            at = aware(exported_at or updated_at)
            conn.execute(
                sa.update(Item)
                .where(col(Item.id) == item_id, col(Item.sync_deadline_at).is_(None))
                .values(
                    sync_deadline_at=at + timedelta(seconds=sync_window_s(at, settings)),
                    sync_check_at=at + timedelta(seconds=settings.check_every_s),
                )
            )
    return len(rows)


@dataclass(frozen=True)
class DueItem:
    """An exported item due for a read-back."""

    item_id: int
    batch_id: str
    connection_id: int
    deadline: datetime


def due_items(engine: Engine, now: datetime | None = None, limit: int = 5000) -> list[DueItem]:
    """Exported items whose read-back is due, those whose window closes first first."""
    now = now or utcnow()
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(col(Item.id), col(Item.batch_id), col(Item.connection_id), col(Item.sync_deadline_at))
            .where(
                col(Item.status) == ItemStatus.EXPORTED,
                col(Item.sync_check_at) <= now,
                col(Item.record_deleted_at).is_(None),  # the record is gone: nothing to confirm
            )
            .order_by(col(Item.sync_deadline_at), col(Item.id))
            .limit(limit)
        ).all()
    return [DueItem(int(i), str(b), int(c), aware(d)) for i, b, c, d in rows if i is not None and d is not None]


def load_items(engine: Engine, item_ids: Sequence[int]) -> list[ItemRecord]:
    """The items with these ids (absent ids are left out)."""
    if not item_ids:
        return []
    with Session(engine) as session:
        rows = session.exec(select(Item).where(col(Item.id).in_(list(item_ids)))).all()
        return [ItemRecord.from_row(row) for row in rows]


def exporting_connections(engine: Engine) -> set[int]:
    """Connections with items still to export, or exporting now (``queued`` or ``sending``)."""
    with engine.connect() as conn:
        busy = conn.scalars(sa.select(col(Item.connection_id)).where(col(Item.status).in_(ACTIVE_STATUSES)).distinct())
        return {int(c) for c in busy}
