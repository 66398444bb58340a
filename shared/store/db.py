"""Engine creation and schema migration for the result store (SQLite or PostgreSQL)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def make_engine(url: str) -> Engine:
    """An engine for ``url``. SQLite gets WAL, a busy timeout and foreign keys, so several worker
    processes can share one file; each process must build its own engine (after fork)."""
    # A database error's message never carries the statement's values (names, profile JSON): its traceback
    # may reach a log or Flower.
    kwargs: dict[str, Any] = {"hide_parameters": True}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
        kwargs["poolclass"] = NullPool
    else:
        # a thread-pool worker runs many tasks in one process: keep a connection for each of them
        kwargs.update(pool_pre_ping=True, pool_size=10, max_overflow=40)
    engine = sa.create_engine(url, **kwargs)
    if url.startswith("sqlite"):

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # Let SQLAlchemy, not pysqlite, decide when transactions begin (BEGIN IMMEDIATE below).
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @sa.event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # Take the write lock up front: no deadlock-prone read-then-upgrade between processes.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision (idempotent)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def open_store(url: str) -> Engine:
    """An engine for ``url`` with its schema migrated: the one call CLI, producer and workers make."""
    engine = make_engine(url)
    migrate(engine)
    return engine


def ping(engine: Engine) -> None:
    """``SELECT 1`` on the store: raises when it does not answer (readiness checks)."""
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))
