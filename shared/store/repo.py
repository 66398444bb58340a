"""Result store operations on batches and items: recording, the claim with a lease, status, retries.

Every function takes the engine and opens its own short transaction, so a worker never holds a database
transaction across a Harvest call. Writes by a worker are guarded by ``owner`` and status ``sending``:
a worker whose lease was taken over cannot overwrite the new owner's progress. Reads return records
(:mod:`shared.store.records`), never table rows. The person ledger is :mod:`shared.store.people`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import uuid4

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from shared.errors import CONNECTION_REMOVED_CAUSE, LeaseLostError
from shared.store.models import DONE_STATUSES, Batch, Connection, Item, ItemStatus, Marker, Person, aware, utcnow
from shared.store.progress import ItemProgress
from shared.store.records import BatchRecord, ItemRecord

CHUNK = 500
"""Rows per IN (...) list and per bulk statement (well under SQLite's parameter limit)."""


def chunks(seq: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    """Consecutive slices of ``seq`` of at most ``size`` elements."""
    for i in range(0, len(seq), size):
        yield seq[i : i + size]


@dataclass(frozen=True)
class NewItem:
    """A profile to record in a batch: its platform id and JSON snapshot."""

    profile_id: str
    snapshot: dict[str, Any]


@dataclass
class BatchCreated:
    """What :func:`create_batch` recorded: the items to enqueue and how many were skipped."""

    batch_id: str
    to_enqueue: list[int] = field(default_factory=list)
    skipped: int = 0


def create_batch(engine: Engine, batch: Batch, items: Sequence[NewItem]) -> BatchCreated:
    """Record ``batch`` and its items in ONE transaction.

    A profile already exported through the batch's connection (the person ledger knows its Greenhouse
    record) is recorded as ``skipped`` unless ``batch.include_exported``; every other item is ``queued``.
    """
    batch.id = batch.id or uuid4().hex
    batch.total = len(items)
    now = utcnow()
    with Session(engine) as session:
        session.add(batch)
        session.flush()
        known: dict[str, int] = {}
        if not batch.include_exported and not batch.new_record:
            ids = [i.profile_id for i in items]
            for part in chunks(ids):
                rows = session.exec(
                    select(Person.profile_id, Person.greenhouse_candidate_id).where(
                        Person.connection_id == batch.connection_id,
                        col(Person.profile_id).in_(part),
                        col(Person.greenhouse_candidate_id).is_not(None),
                    )
                ).all()
                known.update({pid: int(cid) for pid, cid in rows if cid is not None})
        parts = ItemProgress().to_stored()  # nothing sent yet: the same for every item, built once
        new_rows = [_new_item_row(batch, it, known.get(it.profile_id), parts, now) for it in items]
        # Core executemany, no RETURNING: one prepared INSERT for all rows, no per-row ORM work (a multi-row
        # INSERT ... RETURNING is parsed anew by psycopg for every chunk), then the ids in one indexed read.
        conn = session.connection()
        for part in chunks(new_rows):
            conn.execute(sa.insert(Item), list(part))
        queued = conn.scalars(
            sa.select(col(Item.id))
            .where(col(Item.batch_id) == batch.id, col(Item.status) == ItemStatus.QUEUED)
            .order_by(col(Item.id))
        )
        result = BatchCreated(batch_id=batch.id, to_enqueue=_stored_ids(queued), skipped=len(known))
        session.commit()
    return result


def _new_item_row(
    batch: Batch, item: NewItem, exported_as: int | None, parts: dict[str, Any], now: datetime
) -> dict[str, Any]:
    """The ``items`` row recording ``item`` in ``batch``: ``skipped`` when the profile was exported before
    through the connection (``exported_as``: its Greenhouse candidate id), else ``queued``."""
    skipped = exported_as is not None
    return {
        "batch_id": batch.id,
        "connection_id": batch.connection_id,
        "profile_id": item.profile_id,
        "profile": item.snapshot,
        "status": ItemStatus.SKIPPED if skipped else ItemStatus.QUEUED,
        "greenhouse_candidate_id": exported_as,
        "error": "already exported through this connection" if skipped else None,
        "error_cause": "already_exported" if skipped else None,
        "attempts": 0,
        "linked_existing": False,
        "parts": parts,
        "warnings": [],
        "left_out": [],
        "history": [],
        "created_at": now,
        "updated_at": now,
    }


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


def get_item(engine: Engine, item_id: int) -> ItemRecord | None:
    """The item, or None when there is no such item."""
    with Session(engine) as session:
        row = session.get(Item, item_id)
        return ItemRecord.from_row(row) if row is not None else None


def get_batch(engine: Engine, batch_id: str) -> BatchRecord | None:
    """The batch, or None when there is no such batch."""
    with Session(engine) as session:
        row = session.get(Batch, batch_id)
        return BatchRecord.from_row(row) if row is not None else None


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
    return ids


# --- status and operator actions -----------------------------------------------------------------


def batch_items(engine: Engine, batch_id: str) -> list[ItemRecord]:
    """Every item of a batch, in id order."""
    with Session(engine) as session:
        rows = session.exec(select(Item).where(Item.batch_id == batch_id).order_by(col(Item.id))).all()
        return [ItemRecord.from_row(row) for row in rows]


def requeue_failed(
    engine: Engine, batch_id: str | None = None, *, causes: Collection[str | None] | None = None
) -> list[int]:
    """Put failed items (of one batch, or all) back to ``queued`` and return their ids to enqueue.

    ``causes``: only items failed with one of these causes (None in it: items with no cause); default
    every cause. Never an item failed with ``connection_removed`` or whose connection was removed since:
    there is nothing to send it with. Each item keeps its history: the round that failed is appended to
    ``history`` as ``{"at", "status", "attempts", "cause", "error"}`` (``at``: when it failed), then its
    attempts start again from 0 and its error is cleared. The caller publishes the ids (one more
    publication each); until it does, recovery sees them as never published.
    """
    where: list[Any] = [
        col(Item.status) == ItemStatus.FAILED,
        sa.or_(col(Item.error_cause).is_(None), col(Item.error_cause) != CONNECTION_REMOVED_CAUSE),
        col(Connection.removed_at).is_(None),
    ]
    if batch_id is not None:
        where.append(col(Item.batch_id) == batch_id)
    if causes is not None:
        named = sorted({c for c in causes if c is not None})
        wanted = [col(Item.error_cause).in_(named)] if named else []
        if None in causes:
            wanted.append(col(Item.error_cause).is_(None))
        if not wanted:
            return []
        where.append(sa.or_(*wanted))
    now = utcnow()
    select_failed = (
        sa.select(
            col(Item.id),
            col(Item.attempts),
            col(Item.error_cause),
            col(Item.error),
            col(Item.history),
            col(Item.updated_at),
        )
        .join(Connection, col(Connection.id) == col(Item.connection_id))
        .where(*where)
        .order_by(col(Item.id))
        .with_for_update(of=Item)  # PostgreSQL: a concurrent retry waits, then finds them queued
    )
    requeue = (
        sa.update(Item)
        .where(col(Item.id) == sa.bindparam("item_id"), col(Item.status) == ItemStatus.FAILED)
        .values(
            status=ItemStatus.QUEUED,
            attempts=0,
            error=None,
            error_cause=None,
            history=sa.bindparam("new_history"),
            enqueued_at=None,
            due_at=None,
            updated_at=now,
        )
    )
    with engine.begin() as conn:
        rows = conn.execute(select_failed).all()
        params = [
            {
                "item_id": item_id,
                "new_history": [
                    *(history or []),
                    {
                        "at": aware(failed_at).isoformat(),
                        "status": ItemStatus.FAILED.value,
                        "attempts": attempts,
                        "cause": cause,
                        "error": error,
                    },
                ],
            }
            for item_id, attempts, cause, error, history, failed_at in rows
        ]
        for part in chunks(params):
            conn.execute(requeue, list(part))
    return [int(p["item_id"]) for p in params]


# --- sync confirmation (the read-back's outcome; the schedule and queries are in shared.store.sync) -----


def mark_synced(engine: Engine, item_ids: Sequence[int], when: datetime | None = None) -> int:
    """The read-back found what these items sent: ``synced``."""
    when = when or utcnow()
    if not item_ids:
        return 0
    with engine.begin() as conn:
        return int(
            conn.execute(
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
            ).rowcount
        )


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
    return bool(updated == 1)


# --- recovery ------------------------------------------------------------------------------------------


def _item_ids(engine: Engine, *where: Any, limit: int) -> list[int]:
    """Ids of the items matching every condition of ``where``, in id order, at most ``limit``."""
    with engine.connect() as conn:
        ids = conn.scalars(sa.select(col(Item.id)).where(*where).order_by(col(Item.id)).limit(limit))
        return _stored_ids(ids)


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


def get_marker(engine: Engine, name: str) -> str | None:
    """The value of the marker ``name``, or None."""
    with engine.connect() as conn:
        value = conn.scalar(sa.select(col(Marker.value)).where(col(Marker.name) == name))
        return str(value) if value is not None else None


def set_marker_if(engine: Engine, name: str, value: str, *, expected: str | None) -> bool:
    """Set the marker ``name`` to ``value`` if it still holds ``expected`` (None: if it does not exist);
    True when this call changed it (compare and set: of two callers, one wins)."""
    with engine.begin() as conn:
        if expected is None:
            exists = conn.scalar(sa.select(sa.func.count()).where(col(Marker.name) == name))
            if exists:
                return False
            try:
                with conn.begin_nested():
                    conn.execute(sa.insert(Marker).values(name=name, value=value, updated_at=utcnow()))
            except sa.exc.IntegrityError:
                return False
            return True
        updated = conn.execute(
            sa.update(Marker)
            .where(col(Marker.name) == name, col(Marker.value) == expected)
            .values(value=value, updated_at=utcnow())
        ).rowcount
        return bool(updated == 1)


# --- read-back delays ----------------------------------------------------------------------------------


def _unseen_creates(since: datetime) -> tuple[Any, ...]:
    """Records items created since ``since`` (not linked to a person already there) nobody has seen yet."""
    return (
        col(Item.create_sent_at) >= since,
        col(Item.greenhouse_candidate_id).is_not(None),
        col(Item.visible_at).is_(None),
        col(Item.linked_existing).is_(False),
    )


def unconfirmed_creates(engine: Engine, connection_id: int, since: datetime, limit: int = 50) -> list[tuple[int, int]]:
    """``(item id, Greenhouse candidate id)`` of records items of the connection created since ``since``
    that nobody has seen readable yet, oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(col(Item.id), col(Item.greenhouse_candidate_id))
            .where(col(Item.connection_id) == connection_id, *_unseen_creates(since))
            .order_by(col(Item.create_sent_at))
            .limit(limit)
        ).all()
    return [(int(i), int(c)) for i, c in rows if i is not None and c is not None]


def recent_creators(engine: Engine, since: datetime) -> list[int]:
    """Connections whose items created records since ``since`` still unseen at Greenhouse."""
    with engine.connect() as conn:
        ids = conn.scalars(sa.select(col(Item.connection_id)).where(*_unseen_creates(since)).distinct())
        return sorted(int(i) for i in ids)


def mark_visible(engine: Engine, item_ids: Sequence[int], when: datetime | None = None) -> None:
    """Record that Greenhouse shows the records these items created (first seen at ``when``)."""
    when = when or utcnow()
    with engine.begin() as conn:
        for part in chunks(item_ids):
            conn.execute(
                sa.update(Item).where(col(Item.id).in_(part), col(Item.visible_at).is_(None)).values(visible_at=when)
            )


def readback_delays(engine: Engine, connection_id: int, since: datetime, limit: int = 20) -> list[float]:
    """Seconds from send to first seen readable, for the connection's most recent measured creates."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(col(Item.create_sent_at), col(Item.visible_at))
            .where(
                col(Item.connection_id) == connection_id,
                col(Item.visible_at) >= since,
                col(Item.create_sent_at).is_not(None),
            )
            .order_by(col(Item.visible_at).desc())
            .limit(limit)
        ).all()
    return [
        max(0.0, (aware(seen) - aware(sent)).total_seconds())
        for sent, seen in rows
        if sent is not None and seen is not None
    ]


def _stored_ids(ids: Iterable[int | None]) -> list[int]:
    """Primary keys read from stored rows. The table types ``id`` as optional for inserts, but a stored
    row always has one."""
    return [i for i in ids if i is not None]
