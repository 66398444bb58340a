"""Read-back delays: when Greenhouse first showed the records items created, measured per connection (it
sizes the wait for an unknown create outcome)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import col

from shared.store.models import Item, aware, utcnow
from shared.store.rows import chunks


def _unseen_creates(since: datetime) -> tuple[Any, ...]:
    """Records items created since ``since`` (not linked to a person already there) nobody has seen yet."""
    return (
        col(Item.create_sent_at) >= since,
        col(Item.greenhouse_candidate_id).is_not(None),
        col(Item.visible_at).is_(None),
        col(Item.linked_existing).is_(False),
        col(Item.record_deleted_at).is_(None),  # deleted in Greenhouse since: it will never be seen
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
