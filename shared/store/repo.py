"""Result store operations on batches and items: recording, the claim with a lease, status, retries.

Every function takes the engine and opens its own short transaction, so a worker never holds a database
transaction across a Harvest call. Writes by a worker are guarded by ``owner`` and status ``sending``:
a worker whose lease was taken over cannot overwrite the new owner's progress. Reads return records
(:mod:`shared.store.records`), never table rows. The person ledger is :mod:`shared.store.people`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import uuid4

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from shared.errors import LeaseLostError
from shared.store.models import DONE_STATUSES, Batch, Item, ItemStatus, Person, utcnow
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
        "created_at": now,
        "updated_at": now,
    }


def mark_enqueued(engine: Engine, item_ids: Sequence[int], when: datetime | None = None) -> None:
    """Record that the items' messages were handed to the broker."""
    when = when or utcnow()
    with engine.begin() as conn:
        for part in chunks(item_ids):
            conn.execute(sa.update(Item).where(col(Item.id).in_(part)).values(enqueued_at=when))


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


def claim_item(engine: Engine, item_id: int, owner: str, lease_s: float) -> ItemRecord | None:
    """Take the item for ``owner``: ``queued`` (or ``sending`` whose lease ran out) -> ``sending``.

    Returns the claimed item, or None when it is done, failed, skipped or held by a live lease: a
    redelivered message for such an item does nothing.
    """
    now = utcnow()
    stmt = (
        sa.update(Item)
        .where(
            col(Item.id) == item_id,
            sa.or_(
                col(Item.status) == ItemStatus.QUEUED,
                sa.and_(col(Item.status) == ItemStatus.SENDING, col(Item.lease_until) < now),
            ),
        )
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


def release_item(engine: Engine, item_id: int, owner: str, *, counts: bool = True, **values: Any) -> None:
    """Give the item back (``queued``) for a later attempt; ``counts=False`` refunds the attempt
    (waiting for a rate limit or for Greenhouse to show a record is not a failed attempt)."""
    if not counts:
        values["attempts"] = Item.attempts - 1
    update_item(engine, item_id, owner, status=ItemStatus.QUEUED, owner=None, lease_until=None, **values)


# --- status and operator actions -----------------------------------------------------------------


def batch_items(engine: Engine, batch_id: str) -> list[ItemRecord]:
    """Every item of a batch, in id order."""
    with Session(engine) as session:
        rows = session.exec(select(Item).where(Item.batch_id == batch_id).order_by(col(Item.id))).all()
        return [ItemRecord.from_row(row) for row in rows]


def requeue_failed(engine: Engine, batch_id: str | None = None) -> list[int]:
    """Put failed items (of one batch, or all) back to ``queued`` and return their ids to enqueue."""
    with engine.begin() as conn:
        where = [col(Item.status) == ItemStatus.FAILED, col(Item.error_cause) != "connection_removed"]
        if batch_id is not None:
            where.append(col(Item.batch_id) == batch_id)
        ids = _stored_ids(conn.scalars(sa.select(col(Item.id)).where(*where).order_by(col(Item.id))))
        for part in chunks(ids):
            conn.execute(
                sa.update(Item)
                .where(col(Item.id).in_(part), col(Item.status) == ItemStatus.FAILED)
                .values(status=ItemStatus.QUEUED, attempts=0, enqueued_at=None, updated_at=utcnow())
            )
    return ids


def lost_items(engine: Engine, older_than_s: float, limit: int = 10_000) -> list[int]:
    """Items the broker may have lost: ``queued`` and never published or published long ago, or
    ``sending`` with an expired lease."""
    cutoff = utcnow() - timedelta(seconds=older_than_s)
    with engine.connect() as conn:
        ids = conn.scalars(
            sa.select(col(Item.id))
            .where(
                sa.or_(
                    sa.and_(
                        col(Item.status) == ItemStatus.QUEUED,
                        sa.or_(col(Item.enqueued_at).is_(None), col(Item.enqueued_at) < cutoff),
                        col(Item.updated_at) < cutoff,
                    ),
                    # a worker died (or lost its database) mid-task and its message was acked
                    sa.and_(col(Item.status) == ItemStatus.SENDING, col(Item.lease_until) < utcnow()),
                )
            )
            .order_by(col(Item.id))
            .limit(limit)
        )
        return _stored_ids(ids)


def _stored_ids(ids: Iterable[int | None]) -> list[int]:
    """Primary keys read from stored rows. The table types ``id`` as optional for inserts, but a stored
    row always has one."""
    return [i for i in ids if i is not None]
