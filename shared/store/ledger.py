"""What Greenhouse's webhooks tell the person ledger: each event applied once, a deleted record forgotten.

Harvest v3 has no deletion feed; Greenhouse says that a record is gone only through its ``delete_candidate``
webhook, which also fires for the record merged away into another (docs/harvest.md section 9). Without it the
ledger (:mod:`~shared.store.people`) would keep linking new applications to a record that no longer exists.

:func:`apply_greenhouse_event` records the delivery's ``Greenhouse-Event-ID`` (per connection) and applies its
change in the same transaction, so a delivery repeated by Greenhouse (at least once, retried for hours) changes
nothing the second time, and a crash between the two leaves neither. :func:`forget_record` is the change of a
``delete_candidate``: the connection's ledger rows naming the record go (the profile's next export looks the
person up by email again: it links to the surviving record of a merge, or creates the person again, and it is
no longer "already exported"), and the items that wrote to it are stamped ``record_deleted_at``: per-profile
status says so and the sync read-back stops checking them (what it would find missing is not ours to fix).

The connection's webhook secret (encrypted by the caller, :mod:`shared.connections.crypto`) is read and
written here too, since the store is the only writer of its tables.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection as SqlConnection
from sqlalchemy.engine import Engine
from sqlmodel import col

from shared.store.models import Connection, GreenhouseEvent, Item, Person, utcnow


@dataclass(frozen=True)
class WebhookTarget:
    """A live connection a Greenhouse webhook may be addressed to, and its webhook secret (encrypted; empty
    when none is configured)."""

    connection_id: int
    secret_encrypted: str


def webhook_target(engine: Engine, connection_name: str) -> WebhookTarget | None:
    """The live connection called ``connection_name`` and its encrypted webhook secret; None when there is
    no such connection or it was removed."""
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(col(Connection.id), col(Connection.webhook_secret_encrypted)).where(
                col(Connection.name) == connection_name, col(Connection.removed_at).is_(None)
            )
        ).first()
    if row is None or row[0] is None:
        return None
    return WebhookTarget(int(row[0]), str(row[1] or ""))


def set_webhook_secret(engine: Engine, connection_name: str, secret_encrypted: str) -> bool:
    """Store the (encrypted) webhook secret of a live connection (``""``: none, every delivery refused);
    False when there is no such live connection."""
    stmt = (
        sa.update(Connection)
        .where(col(Connection.name) == connection_name, col(Connection.removed_at).is_(None))
        .values(webhook_secret_encrypted=secret_encrypted, updated_at=utcnow())
    )
    with engine.begin() as conn:
        return bool(conn.execute(stmt).rowcount == 1)


def apply_greenhouse_event(
    engine: Engine,
    connection_id: int,
    event_id: str,
    action: str,
    apply: Callable[[SqlConnection], object] | None = None,
) -> bool:
    """Record the Greenhouse event ``event_id`` of the connection and run ``apply`` (its change) in the same
    transaction; False, with nothing run, when the event was applied before.

    The insert comes first: on PostgreSQL a concurrent delivery of the same event waits on the primary key
    until this transaction ends, then finds it there and applies nothing.
    """
    values = {"connection_id": connection_id, "event_id": event_id, "action": action[:100], "received_at": utcnow()}
    with engine.begin() as conn:
        inserted = conn.execute(_insert_ignore(engine).values(**values)).rowcount
        if inserted != 1:
            return False
        if apply is not None:
            apply(conn)
    return True


@dataclass(frozen=True)
class Forgotten:
    """What :func:`forget_record` changed: ledger rows removed and items stamped."""

    people: int
    items: int


def forget_record(
    conn_or_engine: SqlConnection | Engine, connection_id: int, candidate_id: int, when: datetime | None = None
) -> Forgotten:
    """Forget the Greenhouse record ``candidate_id`` for the connection (it was deleted or merged away).

    Removes the connection's ledger rows pointing to it, so the next export of those profiles finds the person
    by email (the survivor of a merge) or creates it again, and stamps ``record_deleted_at`` (``when``) on the
    connection's items that wrote to it and were not stamped yet. Given a connection, runs in its transaction
    (the caller's, e.g. :func:`apply_greenhouse_event`'s); given an engine, in a transaction of its own.
    """
    if isinstance(conn_or_engine, Engine):
        with conn_or_engine.begin() as conn:
            return forget_record(conn, connection_id, candidate_id, when)
    when = when or utcnow()
    conn = conn_or_engine
    people = conn.execute(
        sa.delete(Person).where(
            col(Person.connection_id) == connection_id, col(Person.greenhouse_candidate_id) == candidate_id
        )
    ).rowcount
    items = conn.execute(
        sa.update(Item)
        .where(
            col(Item.connection_id) == connection_id,
            col(Item.greenhouse_candidate_id) == candidate_id,
            col(Item.record_deleted_at).is_(None),
        )
        .values(record_deleted_at=when)
    ).rowcount
    return Forgotten(int(people or 0), int(items or 0))


def _insert_ignore(engine: Engine) -> Any:
    """``INSERT ... ON CONFLICT DO NOTHING`` into ``greenhouse_events`` for the engine's dialect."""
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(GreenhouseEvent).on_conflict_do_nothing()
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(GreenhouseEvent).on_conflict_do_nothing()
