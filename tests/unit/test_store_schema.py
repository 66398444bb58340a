"""The Alembic migrations build exactly the schema the SQLModel tables describe, and re-running is a no-op."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

import shared.store.models  # noqa: F401  (registers the tables)
from shared.store.db import make_engine, migrate, open_store


def schema_diff(url: str) -> list[object]:
    """What differs between the migrated database at ``url`` and the models (empty: nothing)."""
    engine = open_store(url)
    migrate(engine)  # idempotent
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, SQLModel.metadata)
    engine.dispose()
    return list(diff)


def test_migrations_match_the_models_on_sqlite(sqlite_url: str) -> None:
    assert schema_diff(sqlite_url) == []


def test_sqlite_engine_waits_for_locks_and_uses_wal(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()
