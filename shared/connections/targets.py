"""Is an export target allowed for a connection? Checked by the producer before anything is enqueued.

A job target needs a connection that exports to jobs and a job whose status is ``open``; a pool needs a
connection with pools enabled, a pool Greenhouse knows and, when given, a stage of that pool.
"""

from __future__ import annotations

from shared.connections.lookups import Lookups
from shared.errors import TargetNotAllowedError
from shared.store.models import TargetKind
from shared.store.records import ConnectionRecord


def check_job_open(job_id: int, lookups: Lookups) -> None:
    """Raise :class:`TargetNotAllowedError` unless job ``job_id`` exists and its status is ``open``."""
    if any(job.id == job_id for job in lookups.open_jobs()):
        return
    job = lookups.job(job_id)
    if job is None:
        raise TargetNotAllowedError(
            f"job {job_id} does not exist in Greenhouse or is not visible to the credential; "
            "list open jobs with: ghexport jobs --connection NAME"
        )
    raise TargetNotAllowedError(f"job {job_id} is not open (status {job.status or 'unknown'})")


def check_target(
    conn: ConnectionRecord,
    kind: TargetKind | str,
    job_id: int | None,
    pool_id: int | None,
    stage_id: int | None,
    lookups: Lookups,
) -> None:
    """Raise :class:`TargetNotAllowedError` with the reason when ``conn`` may not export to this target.

    ``kind="job"`` needs ``job_id`` (an open job) on a connection that is not prospects-only.
    ``kind="prospect"`` takes an optional ``job_id`` (must be open), ``pool_id`` (pools enabled, a known
    pool) and ``stage_id`` (needs ``pool_id``; must belong to that pool). Lookups come from ``lookups``
    (cached); Harvest errors propagate.
    """
    name = conn.name
    if kind == TargetKind.JOB:
        if conn.prospects_only:
            raise TargetNotAllowedError(
                f"connection {name} exports prospects only; export with --prospect, or connect again "
                "without --prospects-only"
            )
        if job_id is None:
            raise TargetNotAllowedError("a job export needs a job id (--job JOB_ID)")
        if pool_id is not None or stage_id is not None:
            raise TargetNotAllowedError("a prospect pool or stage applies to prospect exports only (--prospect)")
        check_job_open(job_id, lookups)
        return
    if kind != TargetKind.PROSPECT:
        raise TargetNotAllowedError(f"unknown target kind {kind!r}: use job or prospect")
    if stage_id is not None and pool_id is None:
        raise TargetNotAllowedError(f"stage {stage_id} needs its prospect pool (--pool ID)")
    if pool_id is not None:
        if not conn.pools_enabled:
            raise TargetNotAllowedError(
                f"connection {name} does not have prospect pools enabled; export without --pool, or "
                "connect again with --enable-pools"
            )
        pool = next((p for p in lookups.pools() if p.id == pool_id), None)
        if pool is None:
            raise TargetNotAllowedError(
                f"prospect pool {pool_id} does not exist in Greenhouse; list pools with: "
                f"ghexport pools --connection {name}"
            )
        if stage_id is not None and pool.stage(stage_id) is None:
            stages = ", ".join(f"{s.id} ({s.name})" for s in pool.stages) or "none"
            raise TargetNotAllowedError(
                f"stage {stage_id} does not belong to prospect pool {pool_id} ({pool.name}); its stages: {stages}"
            )
    if job_id is not None:
        check_job_open(job_id, lookups)
