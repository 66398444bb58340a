"""Named values the cluster keeps in the store, set by compare and set (e.g. the broker's epoch)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import col

from shared.store.models import Marker, utcnow


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
