"""The producer's Python API, called by the platform's backend and by ``ghexport export``.

``export_profiles`` validates the target against the connection, records the batch and its items in one
transaction, then publishes one task per item carrying only the item id, in bulk on one broker
connection. A crash between commit and publish loses nothing: the items are ``queued`` with no
``enqueued_at`` and the workers' recovery (or :func:`republish_lost`, ``ghexport recover``) sends them again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from shared.connections.checks import find_user
from shared.connections.service import get_connection
from shared.connections.targets import check_target
from shared.errors import PublishFailedError, TargetNotAllowedError, UserError
from shared.profiles.model import LineError, Profile
from shared.queue import recovery
from shared.resources import Resources
from shared.store import repo
from shared.store.models import ACTIVE_STATUSES, Batch, TargetKind


@dataclass(frozen=True)
class ExportTarget:
    """Where the batch goes: a job (candidates) or prospects (optionally a pool and stage)."""

    kind: TargetKind
    job_id: int | None = None
    pool_id: int | None = None
    stage_id: int | None = None

    @classmethod
    def job(cls, job_id: int) -> ExportTarget:
        """Candidates with an application on the open job ``job_id``."""
        return cls(TargetKind.JOB, job_id=job_id)

    @classmethod
    def prospect(cls, pool_id: int | None = None, stage_id: int | None = None) -> ExportTarget:
        """Prospects, optionally in prospect pool ``pool_id`` at its stage ``stage_id`` (a stage needs its pool)."""
        if stage_id is not None and pool_id is None:
            raise TargetNotAllowedError("--stage needs --pool: a prospect stage belongs to a pool")
        return cls(TargetKind.PROSPECT, pool_id=pool_id, stage_id=stage_id)


@dataclass
class ExportResult:
    """What was recorded: the batch id, how many tasks were enqueued, skipped, and rejected lines."""

    batch_id: str
    enqueued: int
    skipped: int
    rejected: list[LineError] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "batch_id": self.batch_id,
            "enqueued": self.enqueued,
            "skipped": self.skipped,
            "rejected": [e.as_dict() for e in self.rejected],
        }


def export_profiles(
    res: Resources,
    *,
    connection_name: str,
    profiles: Sequence[Profile],
    target: ExportTarget,
    rejected: Sequence[LineError] = (),
    user_email: str | None = None,
    include_exported: bool = False,
    new_record: bool = False,
    dummy_emails: bool = False,
) -> ExportResult:
    """Record an export batch and enqueue one task per candidate to export.

    Raises :class:`shared.errors.UserError` (unknown connection, target not allowed, no Greenhouse user
    with exactly ``user_email``) before anything is recorded, and :class:`shared.errors.PublishFailedError`
    (carrying the batch id) when the batch is recorded but the broker could not take its tasks.
    """
    conn = get_connection(res.engine, connection_name)
    reader = res.harvest_for(conn)
    check_target(
        conn,
        kind=target.kind,
        job_id=target.job_id,
        pool_id=target.pool_id,
        stage_id=target.stage_id,
        lookups=res.lookups_for(conn, reader),
    )
    if user_email is None or user_email == conn.user_email:
        acting_email, acting_id = conn.user_email, conn.user_id
    else:  # exactly this email (case sensitive), an active user
        acting_email, acting_id = user_email, find_user(reader, user_email).id
    if not profiles:
        raise UserError("nothing to export: no valid profile in the input")

    batch = Batch(
        id="",
        connection_id=conn.id,
        target_kind=target.kind,
        job_id=target.job_id,
        pool_id=target.pool_id,
        stage_id=target.stage_id,
        user_email=acting_email,
        user_id=acting_id,
        include_exported=include_exported,
        new_record=new_record,
        dummy_emails=dummy_emails,
        rejected=[e.as_dict() for e in rejected],
    )
    created = repo.create_batch(res.engine, batch, [repo.NewItem(p.id, p.snapshot()) for p in profiles])
    try:
        res.publish(created.to_enqueue)
    except Exception as exc:  # the broker is down or refused: the batch stands, recovery publishes it
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise PublishFailedError(created.batch_id, reason) from exc
    return ExportResult(created.batch_id, len(created.to_enqueue), created.skipped, list(rejected))


def retry_failed(res: Resources, batch_id: str | None = None) -> int:
    """Re-enqueue the failed items of one batch (or of every batch); returns how many."""
    if batch_id is not None and repo.get_batch(res.engine, batch_id) is None:
        raise UserError(f"no batch {batch_id}")
    return res.publish(repo.requeue_failed(res.engine, batch_id))


def republish_lost(res: Resources, older_than_s: float | None = None) -> int:
    """One recovery sweep now (every worker runs them on its own): publish again the items whose message is
    gone (:mod:`shared.queue.recovery`); ``older_than_s`` overrides the grace ``requeue_after_s``."""
    settings = res.settings
    if older_than_s is not None:
        export = settings.export.model_copy(update={"requeue_after_s": older_than_s})
        settings = settings.model_copy(update={"export": export})
    return recovery.sweep(res.celery, res.engine, res.limiter, settings, res.broker_redis).published


def batch_status(res: Resources, batch_id: str) -> dict[str, Any]:
    """The contract's status document of a batch (JSON-ready: statuses and kinds are plain strings)."""
    batch = repo.get_batch(res.engine, batch_id)
    if batch is None:
        raise UserError(f"no batch {batch_id}")
    items = repo.batch_items(res.engine, batch_id)
    counts: dict[str, int] = {}
    for it in items:
        counts[it.status.value] = counts.get(it.status.value, 0) + 1
    return {
        "batch_id": batch.id,
        "total": batch.total,
        "target": {
            "kind": batch.target_kind.value,
            "job_id": batch.job_id,
            "pool_id": batch.pool_id,
            "stage_id": batch.stage_id,
        },
        "counts": counts,
        "done": not any(s.value in counts for s in ACTIVE_STATUSES),
        "rejected": batch.rejected,
        "items": [
            {
                "candidate_id": it.profile_id,
                "status": it.status.value,
                "greenhouse_candidate_id": it.greenhouse_candidate_id,
                "greenhouse_application_id": it.greenhouse_application_id,
                "linked_existing": it.linked_existing,
                "attempts": it.attempts,
                "publications": it.publications,
                "warnings": it.warnings,
                "error": it.error,
                "error_cause": it.error_cause,
            }
            for it in items
        ],
    }
