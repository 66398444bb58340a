"""The Alembic migrations build exactly the models' schema on the real PostgreSQL too."""

from __future__ import annotations

from tests.unit.test_store_schema import schema_diff


def test_migrations_match_the_models_on_postgresql(postgres_schema_url: str) -> None:
    assert schema_diff(postgres_schema_url) == []
