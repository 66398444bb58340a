"""Helpers for the status and retry tests: record batches through the API, write item states directly."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlmodel import col

from producer import api
from shared.harvest.sandbox import seed as s
from shared.store import batches as store_batches
from shared.store.models import Batch, Item
from tests.unit.export_fixtures import Env, profile


def export(env: Env, pids: list[str], target: api.ExportTarget | None = None, **kw: Any) -> str:
    """Record a batch of ``pids`` through ``acme`` (to the open job by default); its batch id."""
    return api.export_profiles(
        env.res,
        connection_name="acme",
        profiles=[profile(p) for p in pids],
        target=target or api.ExportTarget.job(s.OPEN_JOB_ID),
        **kw,
    ).batch_id


def set_items(env: Env, item_ids: list[int], **values: Any) -> None:
    """Write columns of stored items directly (what a worker's failure or read-back would have written)."""
    with env.engine.begin() as conn:
        conn.execute(sa.update(Item).where(col(Item.id).in_(item_ids)).values(**values))


def fail(env: Env, item_ids: list[int], cause: str, attempts: int = 3) -> None:
    set_items(env, item_ids, status="failed", error_cause=cause, error=f"it went wrong: {cause}", attempts=attempts)


def ids(env: Env, batch_id: str) -> list[int]:
    return [it.id for it in store_batches.batch_items(env.engine, batch_id)]


def batch_ids(env: Env) -> list[str]:
    """Every batch in the store."""
    with env.engine.connect() as conn:
        return [str(b) for b in conn.scalars(sa.select(col(Batch.id)))]
