"""The callback outbox: events for the platform, written with the state change they report, and their delivery.

**Emission** (:func:`emit_item_events`, :func:`emit_batch_completions`, :func:`emit_connection_event`) takes
the caller's open :class:`~sqlalchemy.engine.Connection`: the event row commits or rolls back with the
change it reports, so no change is ever told without having happened, nor happens without being told (the
transactional outbox). Only tenants with a callback URL get events; operators' connections (no tenant) never
do. An event's ``id`` (``msg_`` + a time-sortable random id) is its ``webhook-id`` for every attempt, so a
receiver deduplicates redeliveries by it.

**Delivery** (the workers' :mod:`workers.callbacks`): :func:`due_tenants`, then :func:`claim` takes a tenant's
due events under a lease (PostgreSQL: ``FOR UPDATE SKIP LOCKED``, so two workers never take the same rows;
SQLite: the write lock every transaction takes up front), and :func:`mark_delivered` or :func:`mark_failed`
ends the attempt. A worker that dies mid-attempt leaves a lease that runs out: the event is taken again.
:func:`retry_delay_s` is the schedule (``GHX_CALLBACKS__SCHEDULE_S``): past its end an event is ``dead``
until :func:`redeliver` puts it back.

Payloads carry ids, statuses and error causes only: never a name, an email or a profile's content.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict
from sqlalchemy.engine import Connection as SqlConnection
from sqlalchemy.engine import Engine
from sqlmodel import col

from shared.store.models import (
    ACTIVE_STATUSES,
    Batch,
    Connection,
    Item,
    ItemStatus,
    OutboxEvent,
    OutboxState,
    Tenant,
    aware,
    utcnow,
)
from shared.store.rows import chunks

ITEM_EVENT_STATUSES: tuple[ItemStatus, ...] = (
    ItemStatus.EXPORTED,
    ItemStatus.SYNCED,
    ItemStatus.SYNC_OVERDUE,
    ItemStatus.FAILED,
    ItemStatus.SKIPPED,
)
"""Item statuses told to the platform (``item.<status>``); ``queued`` and ``sending`` are not."""
BATCH_COMPLETED = "batch.completed"
CONNECTION_EVENTS = ("connection.needs_reauth", "connection.reconnected")
"""Connection state changes told to the platform."""

MAX_ERROR = 1000
"""``last_error`` is cut to the column's size."""

_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"


# --- event ids and payloads ----------------------------------------------------------------------------


def new_event_ids(n: int, now_ms: int | None = None) -> list[str]:
    """``n`` new event ids, ascending: ``msg_`` + 26 characters (a ULID in lowercase Crockford base32:
    48 bits of milliseconds, then 80 random bits). Ids sort by creation time across processes (to the
    millisecond), and ids made in one call keep their order."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    values = sorted(int.from_bytes(os.urandom(10), "big") for _ in range(n))
    return ["msg_" + _base32((ms << 80) | v) for v in values]


def _ms(when: datetime) -> int:
    return int(aware(when).timestamp() * 1000)


def _base32(value: int) -> str:
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def local_name(tenant_id: str, stored_name: str) -> str:
    """A tenant's connection name as the tenant knows it: stored as ``T:N`` for tenant ``T``, shown as ``N``."""
    return stored_name.removeprefix(f"{tenant_id}:")


def _body(event_type: str, when: datetime, data: Mapping[str, Any]) -> dict[str, Any]:
    """The Standard Webhooks body of an event."""
    return {"type": event_type, "timestamp": aware(when).isoformat(), "data": dict(data)}


def _row(event_id: str, tenant_id: str, event_type: str, when: datetime, data: Mapping[str, Any]) -> dict[str, Any]:
    """An ``outbox`` row, every column given (a Core insert applies no model defaults)."""
    return {
        "id": event_id,
        "tenant_id": tenant_id,
        "type": event_type,
        "payload": _body(event_type, when, data),
        "created_at": when,
        "state": OutboxState.PENDING.value,
        "attempts": 0,
        "next_attempt_at": when,
        "lease_until": None,
        "last_error": None,
        "delivered_at": None,
    }


def _insert(conn: SqlConnection, rows: Sequence[dict[str, Any]]) -> None:
    for part in chunks(rows):
        conn.execute(sa.insert(OutboxEvent), list(part))


def _has_callback() -> Any:
    return sa.and_(col(Tenant.callback_url).is_not(None), col(Tenant.callback_url) != "")


# --- emission (inside the caller's transaction) ---------------------------------------------------------


def emit_item_events(conn: SqlConnection, item_ids: Sequence[int]) -> int:
    """Write one ``item.<status>`` event per item whose status is one of :data:`ITEM_EVENT_STATUSES` and
    whose connection's tenant has a callback URL; returns how many were written.

    Call it in the transaction that changed the items, after the change: each event reports the item as
    that transaction leaves it. One read and one bulk insert per 500 items."""
    if not item_ids:
        return 0
    now = utcnow()
    written = 0
    query = (
        sa.select(
            col(Item.id),
            col(Item.batch_id),
            col(Item.profile_id),
            col(Item.status),
            col(Item.greenhouse_candidate_id),
            col(Item.greenhouse_application_id),
            col(Item.error_cause),
            col(Item.error),
            col(Item.sync_detail),
            col(Connection.name),
            col(Tenant.id),
        )
        .join(Connection, col(Connection.id) == col(Item.connection_id))
        .join(Tenant, col(Tenant.id) == col(Connection.tenant_id))
        .where(col(Item.status).in_([s.value for s in ITEM_EVENT_STATUSES]), _has_callback())
    )
    for part in chunks(sorted(set(item_ids))):
        found = conn.execute(query.where(col(Item.id).in_(list(part))).order_by(col(Item.id))).all()
        ids = new_event_ids(len(found), _ms(now))
        rows = []
        for event_id, (item_id, batch_id, profile_id, status, cid, aid, cause, error, detail, name, tenant) in zip(
            ids, found, strict=True
        ):
            data = {
                "batch_id": batch_id,
                "item_id": item_id,
                "profile_id": profile_id,
                "connection": local_name(tenant, name),
                "status": status,
                "greenhouse_candidate_id": cid,
                "greenhouse_application_id": aid,
                "error_cause": cause,
                "error": error,
                "sync_detail": detail,
            }
            rows.append(_row(event_id, tenant, f"item.{status}", now, data))
        _insert(conn, rows)
        written += len(rows)
    return written


def emit_batch_completions(conn: SqlConnection, batch_ids: Sequence[str]) -> list[str]:
    """Stamp ``completed_at`` on each of ``batch_ids`` that has no ``queued`` or ``sending`` item left and was
    not completed yet, and write one ``batch.completed`` event for each (its tenant having a callback URL);
    returns the batches completed now.

    Call it in the transaction that finished the items, after the change. Exactly one caller completes a
    batch: the batches' rows are locked first, in id order (PostgreSQL; SQLite's write lock is already
    held), so of two transactions finishing a batch's last two items concurrently the second waits, then
    its next statement sees the first's items done. Without that lock each could see the other's item
    still ``sending`` and neither would complete it. The stamp itself is ``UPDATE ... WHERE completed_at IS
    NULL AND NOT EXISTS (active item) RETURNING``: completing twice is impossible."""
    wanted = sorted(set(batch_ids))
    if not wanted:
        return []
    now = utcnow()
    active = [s.value for s in ACTIVE_STATUSES]
    completed: list[str] = []
    for part in chunks(wanted):
        conn.execute(
            sa.select(col(Batch.id))
            .where(col(Batch.id).in_(list(part)))
            .order_by(col(Batch.id))
            .with_for_update(key_share=True)  # FOR NO KEY UPDATE: inserts of items (FK) are not blocked
        ).all()
        still_active = (
            sa.select(sa.literal(1))
            .select_from(Item)
            .where(col(Item.batch_id) == col(Batch.id), col(Item.status).in_(active))
            .exists()
        )
        stamp = (
            sa.update(Batch)
            .where(col(Batch.id).in_(list(part)), col(Batch.completed_at).is_(None), ~still_active)
            .values(completed_at=now)
            .returning(col(Batch.id))
        )
        completed += [str(i) for i in conn.execute(stamp).scalars()]
    if completed:
        _emit_completions(conn, sorted(completed), now)
    return sorted(completed)


def _emit_completions(conn: SqlConnection, batch_ids: Sequence[str], now: datetime) -> None:
    """The ``batch.completed`` events of ``batch_ids`` (completed at ``now``), with their items' counts."""
    for part in chunks(batch_ids):
        owners = conn.execute(
            sa.select(col(Batch.id), col(Batch.total), col(Batch.rejected), col(Connection.name), col(Tenant.id))
            .join(Connection, col(Connection.id) == col(Batch.connection_id))
            .join(Tenant, col(Tenant.id) == col(Connection.tenant_id))
            .where(col(Batch.id).in_(list(part)), _has_callback())
            .order_by(col(Batch.id))
        ).all()
        if not owners:
            continue
        counts: dict[str, dict[str, int]] = {str(b): {s.value: 0 for s in ItemStatus} for b, *_ in owners}
        for batch_id, status, n in conn.execute(
            sa.select(col(Item.batch_id), col(Item.status), sa.func.count())
            .where(col(Item.batch_id).in_(list(counts)))
            .group_by(col(Item.batch_id), col(Item.status))
        ):
            counts[str(batch_id)][str(status)] = int(n)
        rows = []
        for event_id, (batch_id, total, rejected, name, tenant) in zip(
            new_event_ids(len(owners), _ms(now)), owners, strict=True
        ):
            data = {
                "batch_id": batch_id,
                "connection": local_name(tenant, name),
                "total": total,
                "rejected": len(rejected or []),
                "counts": counts[str(batch_id)],
                "completed_at": aware(now).isoformat(),
            }
            rows.append(_row(event_id, tenant, BATCH_COMPLETED, now, data))
        _insert(conn, rows)


def emit_item_changes(conn: SqlConnection, item_ids: Sequence[int]) -> tuple[int, list[str]]:
    """:func:`emit_item_events` for the items, then :func:`emit_batch_completions` for their batches: the one
    call after any change of items' statuses. Returns the events written for the items and the batches
    completed now."""
    if not item_ids:
        return 0, []
    written = emit_item_events(conn, item_ids)
    batch_ids: set[str] = set()
    for part in chunks(sorted(set(item_ids))):
        batch_ids.update(
            str(b) for b in conn.execute(sa.select(col(Item.batch_id)).where(col(Item.id).in_(list(part)))).scalars()
        )
    return written, emit_batch_completions(conn, sorted(batch_ids))


def emit_connection_event(conn: SqlConnection, connection_id: int, type: str, data: Mapping[str, Any]) -> None:
    """Write a ``connection.*`` event (``type``: one of :data:`CONNECTION_EVENTS`) for the connection's tenant,
    if it has a callback URL. ``data`` (ids, states, reasons: no secret) goes into the event's data beside
    ``connection``, the tenant-local name."""
    if type not in CONNECTION_EVENTS:
        raise ValueError(f"not a connection event: {type}")
    found = conn.execute(
        sa.select(col(Connection.name), col(Tenant.id))
        .join(Tenant, col(Tenant.id) == col(Connection.tenant_id))
        .where(col(Connection.id) == connection_id, _has_callback())
    ).first()
    if found is None:
        return
    name, tenant = found
    now = utcnow()
    _insert(
        conn, [_row(new_event_ids(1, _ms(now))[0], tenant, type, now, {"connection": local_name(tenant, name), **data})]
    )


# --- delivery -------------------------------------------------------------------------------------------


class EventRecord(BaseModel):
    """A stored callback event, as the store's reads return it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    tenant_id: str
    type: str
    payload: dict[str, Any]
    created_at: datetime
    state: OutboxState
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    delivered_at: datetime | None

    def as_json(self) -> dict[str, Any]:
        """The event as ``callbacks list --json`` and the API show it."""
        return self.model_dump(mode="json")


class Claimed(BaseModel):
    """Events of one tenant taken for delivery, with where to send them (as the tenant says now)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tenant_id: str
    callback_url: str | None
    secret_encrypted: str
    events: list[EventRecord]


_EVENT_COLUMNS = (
    col(OutboxEvent.id),
    col(OutboxEvent.tenant_id),
    col(OutboxEvent.type),
    col(OutboxEvent.payload),
    col(OutboxEvent.created_at),
    col(OutboxEvent.state),
    col(OutboxEvent.attempts),
    col(OutboxEvent.next_attempt_at),
    col(OutboxEvent.last_error),
    col(OutboxEvent.delivered_at),
)


def _record(row: Sequence[Any]) -> EventRecord:
    eid, tenant, etype, payload, created, state, attempts, next_at, error, delivered = row
    return EventRecord(
        id=eid,
        tenant_id=tenant,
        type=etype,
        payload=payload or {},
        created_at=aware(created),
        state=OutboxState(state),
        attempts=attempts,
        next_attempt_at=aware(next_at),
        last_error=error,
        delivered_at=aware(delivered) if delivered is not None else None,
    )


def _due(now: datetime) -> Any:
    return sa.and_(
        col(OutboxEvent.state) == OutboxState.PENDING.value,
        col(OutboxEvent.next_attempt_at) <= now,
        sa.or_(col(OutboxEvent.lease_until).is_(None), col(OutboxEvent.lease_until) < now),
    )


def due_tenants(engine: Engine, *, limit: int = 100, now: datetime | None = None) -> list[str]:
    """Tenants with events due now, the longest waiting first (a range of the ``(state, next_attempt_at)``
    index)."""
    now = now or utcnow()
    oldest = sa.func.min(col(OutboxEvent.next_attempt_at))
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(col(OutboxEvent.tenant_id), oldest)
            .where(_due(now))
            .group_by(col(OutboxEvent.tenant_id))
            .order_by(oldest, col(OutboxEvent.tenant_id))
            .limit(limit)
        ).all()
    return [str(t) for t, _ in rows]


def claim(engine: Engine, tenant_id: str, limit: int, lease_s: float, *, now: datetime | None = None) -> Claimed:
    """Take up to ``limit`` of the tenant's due events, oldest due first, under a lease of ``lease_s``.

    PostgreSQL locks the chosen rows ``FOR UPDATE SKIP LOCKED`` (a concurrent claimer takes other rows,
    never waits); SQLite holds its write lock for the transaction. The lease keeps another worker off the
    events until this one ends the attempt or dies."""
    now = now or utcnow()
    picked = (
        sa.select(col(OutboxEvent.id))
        .where(col(OutboxEvent.tenant_id) == tenant_id, _due(now))
        .order_by(col(OutboxEvent.next_attempt_at), col(OutboxEvent.id))
        .limit(max(0, limit))
        .with_for_update(skip_locked=True)
        .cte("picked")
    )
    take = (
        sa.update(OutboxEvent)
        .where(col(OutboxEvent.id).in_(sa.select(picked.c.id)), _due(now))
        .values(lease_until=now + timedelta(seconds=lease_s))
        .returning(*_EVENT_COLUMNS)
    )
    with engine.begin() as conn:
        events = sorted((_record(r) for r in conn.execute(take).all()), key=lambda e: (e.next_attempt_at, e.id))
        where = conn.execute(
            sa.select(col(Tenant.callback_url), col(Tenant.callback_secret_encrypted)).where(
                col(Tenant.id) == tenant_id
            )
        ).first()
    url, secret = where if where is not None else (None, "")
    return Claimed(tenant_id=tenant_id, callback_url=url or None, secret_encrypted=secret or "", events=events)


def retry_delay_s(schedule: Sequence[float], attempts: int) -> float | None:
    """Seconds before the next attempt of an event that has failed ``attempts`` times (this one included),
    or None once the schedule is spent: the event is dead. ``schedule[k]`` follows the ``k+1``-th failure."""
    if attempts < 1:
        raise ValueError("attempts counts the failed attempt: at least 1")
    return float(schedule[attempts - 1]) if attempts <= len(schedule) else None


def mark_delivered(engine: Engine, event_id: str, *, now: datetime | None = None) -> bool:
    """The receiver took the event (a 2xx): ``delivered``. False when it was not pending any more."""
    now = now or utcnow()
    with engine.begin() as conn:
        done = conn.execute(
            sa.update(OutboxEvent)
            .where(col(OutboxEvent.id) == event_id, col(OutboxEvent.state) == OutboxState.PENDING.value)
            .values(
                state=OutboxState.DELIVERED.value,
                attempts=col(OutboxEvent.attempts) + 1,
                delivered_at=now,
                next_attempt_at=now,
                lease_until=None,
            )
        ).rowcount
    return bool(done == 1)


def mark_failed(
    engine: Engine, event_id: str, attempts: int, error: str, retry_in_s: float | None, *, now: datetime | None = None
) -> OutboxState | None:
    """The attempt failed with ``error``: try again in ``retry_in_s``, or ``dead`` when it is None.

    ``attempts`` is the count the attempt started from (as claimed): if the event moved on since (another
    worker took it after this one's lease ran out, or an operator redelivered it), nothing changes and None
    is returned; else the new state."""
    now = now or utcnow()
    state = OutboxState.DEAD if retry_in_s is None else OutboxState.PENDING
    with engine.begin() as conn:
        done = conn.execute(
            sa.update(OutboxEvent)
            .where(
                col(OutboxEvent.id) == event_id,
                col(OutboxEvent.state) == OutboxState.PENDING.value,
                col(OutboxEvent.attempts) == attempts,
            )
            .values(
                state=state.value,
                attempts=attempts + 1,
                next_attempt_at=now + timedelta(seconds=retry_in_s or 0.0),
                lease_until=None,
                last_error=error[:MAX_ERROR],
            )
        ).rowcount
    return state if done == 1 else None


# --- operators and tenants ------------------------------------------------------------------------------


def list_events(
    engine: Engine,
    *,
    tenant_id: str | None = None,
    state: OutboxState | str | None = None,
    limit: int = 100,
) -> list[EventRecord]:
    """Events newest first (by id: ids sort by creation time, to the millisecond), of one tenant, in one
    state, at most ``limit``."""
    where: list[Any] = []
    if tenant_id is not None:
        where.append(col(OutboxEvent.tenant_id) == tenant_id)
    if state is not None:
        where.append(col(OutboxEvent.state) == OutboxState(state).value)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(*_EVENT_COLUMNS).where(*where).order_by(col(OutboxEvent.id).desc()).limit(max(0, limit))
        ).all()
    return [_record(r) for r in rows]


def get_events(engine: Engine, event_ids: Iterable[str], *, tenant_id: str | None = None) -> list[EventRecord]:
    """The events of ``event_ids`` that exist (and belong to ``tenant_id`` when given), in id order."""
    wanted = sorted(set(event_ids))
    found: list[EventRecord] = []
    with engine.connect() as conn:
        for part in chunks(wanted):
            query = sa.select(*_EVENT_COLUMNS).where(col(OutboxEvent.id).in_(list(part)))
            if tenant_id is not None:
                query = query.where(col(OutboxEvent.tenant_id) == tenant_id)
            found += [_record(r) for r in conn.execute(query.order_by(col(OutboxEvent.id))).all()]
    return found


def redeliver(
    engine: Engine,
    *,
    event_ids: Sequence[str] | None = None,
    dead: bool = False,
    tenant_id: str | None = None,
    now: datetime | None = None,
) -> list[str]:
    """Put events back to ``pending``, due now with their attempts at 0 (a new schedule): those of
    ``event_ids`` whatever their state, and with ``dead`` every dead one; only ``tenant_id``'s when given.
    Returns the ids put back. The ids stay: a receiver that took an event before sees its id again."""
    if not event_ids and not dead:
        return []
    now = now or utcnow()
    chosen: list[Any] = []
    if event_ids:
        chosen.append(col(OutboxEvent.id).in_(sorted(set(event_ids))))
    if dead:
        chosen.append(col(OutboxEvent.state) == OutboxState.DEAD.value)
    where: list[Any] = [sa.or_(*chosen)]
    if tenant_id is not None:
        where.append(col(OutboxEvent.tenant_id) == tenant_id)
    with engine.begin() as conn:
        ids = [
            str(i)
            for i in conn.execute(
                sa.select(col(OutboxEvent.id)).where(*where).order_by(col(OutboxEvent.id)).with_for_update()
            ).scalars()
        ]
        for part in chunks(ids):
            conn.execute(
                sa.update(OutboxEvent)
                .where(col(OutboxEvent.id).in_(list(part)))
                .values(
                    state=OutboxState.PENDING.value,
                    attempts=0,
                    next_attempt_at=now,
                    lease_until=None,
                    delivered_at=None,
                )
            )
    return ids


def counts_by_state(engine: Engine, *, tenant_id: str | None = None) -> dict[str, int]:
    """How many events are in each state (every state present, 0 when none)."""
    counts = {s.value: 0 for s in OutboxState}
    state = col(OutboxEvent.state)
    query = sa.select(state, sa.func.count()).group_by(state)
    if tenant_id is not None:
        query = query.where(col(OutboxEvent.tenant_id) == tenant_id)
    with engine.connect() as conn:
        for name, n in conn.execute(query):
            counts[str(name)] = int(n)
    return counts


def purge_delivered(engine: Engine, older_than: datetime) -> int:
    """Delete the events delivered before ``older_than`` (the retention of ``GHX_CALLBACKS__RETENTION_S``);
    returns how many. Dead and pending events are kept."""
    with engine.begin() as conn:
        return int(
            conn.execute(
                sa.delete(OutboxEvent).where(
                    col(OutboxEvent.state) == OutboxState.DELIVERED.value,
                    col(OutboxEvent.next_attempt_at) < older_than,
                )
            ).rowcount
            or 0
        )
