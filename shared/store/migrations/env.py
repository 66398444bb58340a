"""Alembic environment: runs on the connection handed over by ``shared.store.db.migrate``."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import shared.store.models  # noqa: F401  (registers the tables on SQLModel.metadata)

config = context.config
target_metadata = SQLModel.metadata

connection = config.attributes.get("connection")
if connection is None:
    from shared.store.db import make_engine

    url = config.get_main_option("sqlalchemy.url") or "sqlite:///ghexport.db"
    with make_engine(url).connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
else:
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
