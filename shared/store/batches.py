"""Batches: recording one with its items (one transaction), reading it, and the operator retry.

Every function takes the engine and opens its own short transaction. Reads return records
(:mod:`shared.store.records`), never table rows. An item's lifecycle after recording is :mod:`shared.store.items`.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import uuid4

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from shared.errors import CONNECTION_REMOVED_CAUSE, ConflictError
from shared.store.items import told
from shared.store.models import Batch, Connection, IdempotencyKey, Item, ItemStatus, Person, aware, utcnow
from shared.store.progress import ItemProgress
from shared.store.records import BatchRecord, ItemRecord
from shared.store.rows import chunks, stored_ids


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
    replayed: bool = False
    """The same ``Idempotency-Key`` and request had recorded ``batch_id`` already: nothing new was recorded."""


def create_batch(
    engine: Engine, batch: Batch, items: Sequence[NewItem], *, idempotency: tuple[str, str, str] | None = None
) -> BatchCreated:
    """Record ``batch`` and its items in ONE transaction.

    A profile already exported through the batch's connection (the person ledger knows its Greenhouse
    record) is recorded as ``skipped`` unless ``batch.include_exported``; every other item is ``queued``.
    Skipped items are told to the platform (outbox) in the same transaction, and a batch of skipped items only
    is complete at once.

    ``idempotency``: ``(tenant id or "", key, request hash)``, inserted in the same transaction. When another
    transaction recorded the key first (PostgreSQL makes this one wait for it), nothing is recorded: the same
    hash gives its batch back (``replayed``), another hash raises :class:`shared.errors.ConflictError`.
    """
    batch.id = batch.id or uuid4().hex
    batch.total = len(items)
    now = utcnow()
    with Session(engine) as session:
        session.add(batch)
        session.flush()
        if idempotency is not None:
            tenant_key, key, request_hash = idempotency
            try:
                with session.begin_nested():
                    session.add(
                        IdempotencyKey(tenant_id=tenant_key, key=key, request_hash=request_hash, batch_id=batch.id)
                    )
            except sa.exc.IntegrityError:
                session.rollback()
                return _replayed(engine, tenant_key, key, request_hash)
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
        result = BatchCreated(batch_id=batch.id, to_enqueue=stored_ids(queued), skipped=len(known))
        if known:
            skipped = conn.scalars(
                sa.select(col(Item.id)).where(col(Item.batch_id) == batch.id, col(Item.status) == ItemStatus.SKIPPED)
            )
            told(conn, stored_ids(skipped), ended=True)
        session.commit()
    return result


def _replayed(engine: Engine, tenant_key: str, key: str, request_hash: str) -> BatchCreated:
    """The batch another transaction recorded under ``key``: given back for the same request, else a conflict."""
    with engine.connect() as conn:
        earlier = conn.execute(
            sa.select(col(IdempotencyKey.request_hash), col(IdempotencyKey.batch_id)).where(
                col(IdempotencyKey.tenant_id) == tenant_key, col(IdempotencyKey.key) == key
            )
        ).first()
    if earlier is None:  # pragma: no cover - the key's row exists: its insert just conflicted
        raise ConflictError(f"Idempotency-Key {key!r} could not be recorded; send the request again")
    if earlier[0] != request_hash:
        raise ConflictError(f"Idempotency-Key {key!r} was used for another request (batch {earlier[1]})")
    return BatchCreated(batch_id=str(earlier[1]), replayed=True)


def find_idempotency_key(engine: Engine, tenant_key: str, key: str) -> tuple[str, str] | None:
    """``(request hash, batch id)`` recorded under ``key`` for the tenant (``""``: an admin key), or None."""
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(col(IdempotencyKey.request_hash), col(IdempotencyKey.batch_id)).where(
                col(IdempotencyKey.tenant_id) == tenant_key, col(IdempotencyKey.key) == key
            )
        ).first()
    return (str(row[0]), str(row[1])) if row is not None else None


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


def get_batch(engine: Engine, batch_id: str) -> BatchRecord | None:
    """The batch, or None when there is no such batch."""
    with Session(engine) as session:
        row = session.get(Batch, batch_id)
        return BatchRecord.from_row(row) if row is not None else None


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
            col(Item.batch_id),
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
            for item_id, attempts, cause, error, history, failed_at, _batch in rows
        ]
        for part in chunks(params):
            conn.execute(requeue, list(part))
        reopened = sorted({str(r[6]) for r in rows})
        for part in chunks(reopened):  # active again: each completes (and is told) once more when it ends
            conn.execute(sa.update(Batch).where(col(Batch.id).in_(part)).values(completed_at=None))
    return [int(p["item_id"]) for p in params]
