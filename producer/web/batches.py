"""A batch of the calling tenant: its status (``ghexport status BATCH_ID --json``), its progress (the status's
head, cheap to poll), and the operator retry of its failed items (``ghexport retry``). Another tenant's batch
is 404."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from producer import api
from producer.web.deps import ResDep, ScopeDep
from producer.web.problems import problem_responses
from shared.connections import tenancy

router = APIRouter(tags=["batches"], responses=problem_responses(401, 404))


class RetryIn(BaseModel):
    """Which failed items go back to the queue."""

    model_config = ConfigDict(extra="forbid")

    cause: str | None = Field(default=None, max_length=100, description="Only items failed with this cause.")
    force: bool = Field(default=False, description="Also items failed for a permanent cause.")


class RetryOut(BaseModel):
    """What the retry did: items enqueued, and those left alone by cause."""

    batch_id: str | None
    cause: str | None
    force: bool
    enqueued: int
    left: dict[str, int]


@router.get("/batches/{batch_id}", summary="Batch status (every item)")
def batch_status(batch_id: str, res: ResDep, scope: ScopeDep) -> dict[str, Any]:
    """The operator contract's status document: counts by status, sync, done, and every item."""
    batch = tenancy.tenant_batch(res.engine, scope, batch_id)
    return api.batch_status(res, batch.id)


@router.get("/batches/{batch_id}/progress", summary="Batch progress (counts only)")
def batch_progress(batch_id: str, res: ResDep, scope: ScopeDep) -> dict[str, Any]:
    """The status document's head (``batch_id``, ``total``, ``counts``, ``sync``, ``done``): poll this one."""
    batch = tenancy.tenant_batch(res.engine, scope, batch_id)
    return api.batch_progress(res, batch.id)


@router.post("/batches/{batch_id}/retry", summary="Retry failed items", responses=problem_responses(400, 503))
def retry(batch_id: str, res: ResDep, scope: ScopeDep, body: RetryIn | None = None) -> RetryOut:
    """Put the batch's failed items back to the queue (only ``cause``'s; permanent causes with ``force``)."""
    batch = tenancy.tenant_batch(res.engine, scope, batch_id)
    options = body or RetryIn()
    result = api.retry_failed(res, batch.id, cause=options.cause, force=options.force)
    return RetryOut(**result.as_json())
