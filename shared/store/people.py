"""The person ledger: which Greenhouse record a platform profile has through a connection.

One row per (connection, profile id). An item inserts it (``ON CONFLICT DO NOTHING``) before it sends a
create; the row's owner is the only item allowed to create, so two batches never create two records for
one profile. The candidate id is stored the moment it is known, and later exports reuse it.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from shared.store.models import Person, utcnow
from shared.store.records import PersonRecord


def claim_person(engine: Engine, connection_id: int, profile_id: str, item_id: int) -> PersonRecord:
    """The ledger row of (connection, profile), inserted with ``item_id`` as owner if absent.

    Whoever owns the row (and it has no candidate id yet) is the only item allowed to create a record.
    """
    insert = _insert_ignore(engine)
    with engine.begin() as conn:
        conn.execute(
            insert.values(
                connection_id=connection_id, profile_id=profile_id, owner_item_id=item_id, created_at=utcnow()
            )
        )
    person = find_person(engine, connection_id, profile_id)
    assert person is not None, "the row was just inserted, or already there"
    return person


def take_over_person(engine: Engine, person_id: int, old_owner: int | None, new_owner: int) -> bool:
    """Move the create right from an item that no longer works on it; False if someone else did."""
    stmt = (
        sa.update(Person)
        .where(
            col(Person.id) == person_id,
            col(Person.greenhouse_candidate_id).is_(None),
            col(Person.owner_item_id).is_(None) if old_owner is None else col(Person.owner_item_id) == old_owner,
        )
        .values(owner_item_id=new_owner)
    )
    with engine.begin() as conn:
        return bool(conn.execute(stmt).rowcount == 1)


def set_person_candidate(engine: Engine, connection_id: int, profile_id: str, candidate_id: int) -> None:
    """Remember the Greenhouse record of (connection, profile); inserts the row if needed."""
    insert = _insert_ignore(engine)
    with engine.begin() as conn:
        conn.execute(
            insert.values(
                connection_id=connection_id,
                profile_id=profile_id,
                greenhouse_candidate_id=candidate_id,
                created_at=utcnow(),
            )
        )
        conn.execute(
            sa.update(Person)
            .where(
                col(Person.connection_id) == connection_id,
                col(Person.profile_id) == profile_id,
                col(Person.greenhouse_candidate_id).is_(None),
            )
            .values(greenhouse_candidate_id=candidate_id)
        )


def release_person(engine: Engine, person_id: int, owner: int) -> None:
    """Give up the create right (the create failed for good, so nothing exists at Greenhouse)."""
    with engine.begin() as conn:
        conn.execute(
            sa.update(Person)
            .where(
                col(Person.id) == person_id,
                col(Person.owner_item_id) == owner,
                col(Person.greenhouse_candidate_id).is_(None),
            )
            .values(owner_item_id=None)
        )


def find_person(engine: Engine, connection_id: int, profile_id: str) -> PersonRecord | None:
    """The ledger's row of (connection, profile): the Greenhouse record we made for it, if any."""
    with Session(engine) as session:
        row = session.exec(
            select(Person).where(Person.connection_id == connection_id, Person.profile_id == profile_id)
        ).first()
        return PersonRecord.from_row(row) if row is not None else None


def _insert_ignore(engine: Engine) -> Any:
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(Person).on_conflict_do_nothing()
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(Person).on_conflict_do_nothing()
