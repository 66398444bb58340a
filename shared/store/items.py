"""An item's lifecycle: the claim with a lease, progress, finish or release, and the changes of status made
for a whole connection or by the read-back.

Every function takes the engine and opens its own short transaction, so a worker never holds a database
transaction across a Harvest call. Writes by a worker are guarded by ``owner`` and status ``sending``: a worker
whose lease was taken over cannot overwrite the new owner's progress.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from shared.errors import LeaseLostError
from shared.store import outbox
from shared.store.models import ACTIVE_STATUSES, DONE_STATUSES, Item, ItemStatus, utcnow
from shared.store.progress import ItemProgress
from shared.store.records import ItemRecord
from shared.store.rows import chunks, stored_ids


def get_item(engine: Engine, item_id: int) -> ItemRecord | None:
    """The item, or None when there is no such item."""
    with Session(engine) as session:
        row = session.get(Item, item_id)
        return ItemRecord.from_row(row) if row is not None else None


def claim_item(
    engine: Engine, item_id: int, owner: str, lease_s: float, *, reclaim_own: bool = False
) -> ItemRecord | None:
    """Take the item for ``owner``: ``queued`` (or ``sending`` whose lease ran out) -> ``sending``.

    Returns the claimed item, or None when it is done, failed, skipped or held by a live lease: a
    redelivered message for such an item does nothing. ``reclaim_own``: also take it back from ``owner``
    itself (the caller knows no run of this process works on it: an earlier run lost the store mid-way).
    """
    now = utcnow()
    held = sa.and_(col(Item.status) == ItemStatus.SENDING, col(Item.lease_until) < now)
    if reclaim_own:
        held = sa.or_(held, sa.and_(col(Item.status) == ItemStatus.SENDING, col(Item.owner) == owner))
    stmt = (
        sa.update(Item)
        .where(col(Item.id) == item_id, sa.or_(col(Item.status) == ItemStatus.QUEUED, held))
        .values(
            status=ItemStatus.SENDING,
            owner=owner,
            lease_until=now + timedelta(seconds=lease_s),
            attempts=Item.attempts + 1,
            updated_at=now,
        )
    )
    with engine.begin() as conn:
        if conn.execute(stmt).rowcount != 1:
            return None
    return get_item(engine, item_id)


def update_item(engine: Engine, item_id: int, owner: str, /, **values: Any) -> None:
    """Write progress on an item this worker holds; raises :class:`LeaseLostError` otherwise.

    ``values`` are named as the fields of :class:`ItemRecord`: columns, and ``progress`` (an
    :class:`ItemProgress`), which is stored as JSON in the column ``parts``. ``owner`` is positional-only
    so ``values`` may set the column ``owner`` (finish and release clear it).
    """
    if "progress" in values:
        progress: ItemProgress = values.pop("progress")
        values["parts"] = progress.to_stored()
    values["updated_at"] = utcnow()
    stmt = (
        sa.update(Item)
        .where(col(Item.id) == item_id, col(Item.owner) == owner, col(Item.status) == ItemStatus.SENDING)
        .values(**values)
    )
    with engine.begin() as conn:
        if conn.execute(stmt).rowcount != 1:
            raise LeaseLostError(f"item {item_id} is no longer held by {owner}")
        if values.get("status") in outbox.ITEM_EVENT_STATUSES:  # exported, failed, skipped...: not queued again
            told(conn, [item_id], ended=True)


def told(conn: sa.Connection, item_ids: Sequence[int], *, ended: bool) -> None:
    """Write the outbox rows of items whose status the caller just changed, in the caller's transaction: each
    item's ``item.<status>`` event and, when they ``ended`` (left ``queued``/``sending``), the completion of
    every batch they leave with no active item. Every change of an item's status in the store calls it: the
    one seam through which the platform hears of a change (:mod:`shared.store.outbox`)."""
    if ended:
        outbox.emit_item_changes(conn, item_ids)
    else:
        outbox.emit_item_events(conn, item_ids)


def finish_item(engine: Engine, item_id: int, owner: str, status: ItemStatus, **values: Any) -> None:
    """End the work of this owner on the item with ``status`` (exported, skipped, failed)."""
    now = utcnow()
    if status in DONE_STATUSES:
        values.setdefault("exported_at", now)
    update_item(engine, item_id, owner, status=status, owner=None, lease_until=None, **values)


def release_item(
    engine: Engine, item_id: int, owner: str, *, counts: bool = True, countdown_s: float = 0.0, **values: Any
) -> None:
    """Give the item back (``queued``) for a later attempt, due in ``countdown_s``; ``counts=False`` refunds
    the attempt (waiting for a rate limit or for Greenhouse to show a record is not a failed attempt)."""
    if not counts:
        values["attempts"] = Item.attempts - 1
    values["due_at"] = utcnow() + timedelta(seconds=max(0.0, countdown_s))
    update_item(engine, item_id, owner, status=ItemStatus.QUEUED, owner=None, lease_until=None, **values)


def renew_leases(engine: Engine, owner: str, item_ids: Sequence[int], lease_s: float) -> int:
    """Extend the lease of the items ``owner`` is working on (its heartbeat); returns how many it holds."""
    if not item_ids:
        return 0
    until = utcnow() + timedelta(seconds=lease_s)
    n = 0
    with engine.begin() as conn:
        for part in chunks(item_ids):
            n += conn.execute(
                sa.update(Item)
                .where(col(Item.id).in_(part), col(Item.owner) == owner, col(Item.status) == ItemStatus.SENDING)
                .values(lease_until=until)
            ).rowcount
    return n


def mark_queued_waiting(engine: Engine, connection_id: int, cause: str, error: str) -> int:
    """Say why the ``queued`` items of a connection wait (``cause``, ``error``) on those not saying it yet,
    attempts untouched; returns how many changed. For a partner connection whose consent is gone: its items
    wait, parked behind the held credential, and status shows why."""
    stmt = (
        sa.update(Item)
        .where(
            col(Item.connection_id) == connection_id,
            col(Item.status) == ItemStatus.QUEUED,
            sa.or_(col(Item.error_cause).is_(None), col(Item.error_cause) != cause),
        )
        .values(error=error[:2000], error_cause=cause, updated_at=utcnow())
    )
    with engine.begin() as conn:
        return int(conn.execute(stmt).rowcount or 0)


def fail_queued_items(engine: Engine, connection_id: int, cause: str, error: str) -> list[int]:
    """Fail every ``queued`` item of a connection (none is held by a worker) with ``cause``; their ids.

    For the workers' periodic turn: the items of a connection whose consent stayed gone beyond the grace
    period. An item a worker holds now fails by itself when its run meets the same condition."""
    now = utcnow()
    with engine.begin() as conn:
        ids = [
            int(i or 0)
            for i in conn.execute(
                sa.select(col(Item.id)).where(
                    col(Item.connection_id) == connection_id, col(Item.status) == ItemStatus.QUEUED
                )
            ).scalars()
        ]
        for part in chunks(ids):
            conn.execute(
                sa.update(Item)
                .where(col(Item.id).in_(part), col(Item.status) == ItemStatus.QUEUED)
                .values(status=ItemStatus.FAILED, error=error[:2000], error_cause=cause, updated_at=now)
            )
        told(conn, ids, ended=True)
    return ids


def fail_active_items(conn: sa.Connection, connection_id: int, cause: str, error: str) -> list[int]:
    """Fail every ``queued`` or ``sending`` item of a connection with ``cause``, in the caller's transaction
    (the connection's removal: its worker's next write finds the lease gone); their ids."""
    now = utcnow()
    where = (col(Item.connection_id) == connection_id, col(Item.status).in_(ACTIVE_STATUSES))
    ids = sorted(stored_ids(conn.scalars(sa.select(col(Item.id)).where(*where))))
    for part in chunks(ids):
        conn.execute(
            sa.update(Item)
            .where(col(Item.id).in_(part), *where)
            .values(
                status=ItemStatus.FAILED, error=error[:2000], error_cause=cause, owner=None, lease_until=None,
                updated_at=now,
            )
        )  # fmt: skip
    told(conn, ids, ended=True)
    return ids


def mark_synced(engine: Engine, item_ids: Sequence[int], when: datetime | None = None) -> int:
    """The read-back found what these items sent: ``synced``."""
    when = when or utcnow()
    if not item_ids:
        return 0
    with engine.begin() as conn:
        synced = stored_ids(
            conn.scalars(
                sa.update(Item)
                .where(col(Item.id).in_(list(item_ids)), col(Item.status) == ItemStatus.EXPORTED)
                .values(
                    status=ItemStatus.SYNCED,
                    synced_at=when,
                    sync_check_at=None,
                    sync_detail=None,
                    sync_checks=col(Item.sync_checks) + 1,
                    updated_at=when,
                )
                .returning(col(Item.id))
            )
        )
        told(conn, synced, ended=False)
    return len(synced)


def mark_unconfirmed(
    engine: Engine, item_id: int, detail: str, *, overdue: bool, next_check_s: float, when: datetime | None = None
) -> bool:
    """The read-back did not find what the item sent (``detail`` says what): ``sync_overdue`` when its
    window has closed, else read back again in ``next_check_s``."""
    when = when or utcnow()
    values: dict[str, object] = {
        "sync_detail": detail[:2000],
        "sync_checks": col(Item.sync_checks) + 1,
        "updated_at": when,
    }
    if overdue:
        values.update(status=ItemStatus.SYNC_OVERDUE, sync_check_at=None)
    else:
        values["sync_check_at"] = when + timedelta(seconds=next_check_s)
    with engine.begin() as conn:
        updated = conn.execute(
            sa.update(Item).where(col(Item.id) == item_id, col(Item.status) == ItemStatus.EXPORTED).values(**values)
        ).rowcount
        if updated == 1 and overdue:
            told(conn, [item_id], ended=False)
    return bool(updated == 1)
