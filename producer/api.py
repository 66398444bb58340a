"""The producer's Python API, called by the platform's backend and by ``ghexport export``.

``export_profiles`` validates the target against the connection, records the batch and its items in one
transaction, then publishes one task per item carrying only the item id, in bulk on one broker
connection. A crash between commit and publish loses nothing: the items are ``queued`` with no
``enqueued_at`` and the workers' recovery (or :func:`republish_lost`, ``ghexport recover``) sends them again.

Reads return JSON-ready documents (the shapes are the README's operator contract): :func:`batch_status`
(``status BATCH_ID --json``), :func:`batch_progress` (its head, for live views), :func:`profile_status`
(``status --connection NAME --profile ID --json``, behind the platform's "exported to Greenhouse" mark).
:func:`retry_failed` is the operator retry, by batch and by cause, with the classification of
:mod:`shared.errors`. :func:`begin_partner_consent` and :func:`complete_partner_consent` connect a customer's
Greenhouse as a partner in two steps, for a backend that receives the consent redirect itself.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.connections import partner
from shared.connections.checks import find_user, user_name
from shared.connections.partner import PartnerConsent
from shared.connections.service import ConnectResult, get_connection
from shared.connections.targets import check_target
from shared.errors import (
    CONNECTION_REMOVED_CAUSE,
    KNOWN_CAUSES,
    ConflictError,
    PublishFailedError,
    TargetNotAllowedError,
    UserError,
    retry_refusal,
)
from shared.profiles.fields import FieldSettings
from shared.profiles.model import LineError, Profile
from shared.queue import recovery
from shared.resources import Resources
from shared.store import batches, history, people
from shared.store.models import ACTIVE_STATUSES, DONE_STATUSES, Batch, ItemStatus, TargetKind, aware
from shared.store.records import BatchRecord, ItemRecord


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
    replayed: bool = False
    """The batch was recorded earlier under the same ``Idempotency-Key`` and request: nothing new was recorded."""

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
    idempotency: tuple[str, str, str] | None = None,
) -> ExportResult:
    """Record an export batch and enqueue one task per candidate to export.

    Raises :class:`shared.errors.UserError` (unknown connection, target not allowed, no Greenhouse user
    with exactly ``user_email``) before anything is recorded, and :class:`shared.errors.PublishFailedError`
    (carrying the batch id) when the batch is recorded but the broker could not take its tasks.
    ``idempotency``: ``(tenant id or "", Idempotency-Key, hash of the request)``, recorded with the batch; the
    same key and hash again give that batch back (``replayed``, nothing recorded nor enqueued), the same key
    with another hash is a :class:`shared.errors.ConflictError`.
    """
    if idempotency is not None:
        earlier = _replay(res, *idempotency)
        if earlier is not None:
            return earlier
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
    fields = FieldSettings.from_stored(conn.fields)
    acting_name: str | None = None
    if user_email is None or user_email == conn.user_email:
        acting_email, acting_id = conn.user_email, conn.user_id
        if fields.tag_exporting_user:  # the name tags each candidate: read it once per batch
            acting_name = user_name(find_user(reader, acting_email))
    else:  # exactly this email (case sensitive), an active user
        user = find_user(reader, user_email)
        acting_email, acting_id, acting_name = user_email, user.id, user_name(user)
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
        user_name=acting_name,
        include_exported=include_exported,
        new_record=new_record,
        dummy_emails=dummy_emails,
        rejected=[e.as_dict() for e in rejected],
        tenant_id=conn.tenant_id,
    )
    new_items = [batches.NewItem(p.id, p.snapshot()) for p in profiles]
    if idempotency is not None:
        created = batches.create_batch(res.engine, batch, new_items, idempotency=idempotency)
        if created.replayed:  # a concurrent request with the same key recorded it first
            return ExportResult(created.batch_id, 0, 0, list(rejected), replayed=True)
    else:
        created = batches.create_batch(res.engine, batch, new_items)
    try:
        res.publish(created.to_enqueue)
    except Exception as exc:  # the broker is down or refused: the batch stands, recovery publishes it
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise PublishFailedError(created.batch_id, reason) from exc
    return ExportResult(created.batch_id, len(created.to_enqueue), created.skipped, list(rejected))


def _replay(res: Resources, tenant_key: str, key: str, request_hash: str) -> ExportResult | None:
    """The batch recorded earlier under ``key`` for this very request (read before any Greenhouse call, so a
    replay answers even if the target changed since), None for a new key; :class:`ConflictError` when the key
    came with another request."""
    earlier = batches.find_idempotency_key(res.engine, tenant_key, key)
    if earlier is None:
        return None
    earlier_hash, batch_id = earlier
    if earlier_hash != request_hash:
        raise ConflictError(f"Idempotency-Key {key!r} was used for another request (batch {batch_id})")
    batch = _batch(res, batch_id)
    rejected = [LineError(e["line"], e.get("id"), e.get("field"), e.get("error", "")) for e in batch.rejected]
    return ExportResult(batch.id, 0, 0, rejected, replayed=True)


@dataclass(frozen=True)
class RetryResult:
    """What an operator retry did: how many failed items went back to the queue, and how many it left
    alone by cause (permanent causes without ``force``; ``connection_removed`` always)."""

    enqueued: int
    left: dict[str, int] = field(default_factory=dict)
    batch_id: str | None = None
    cause: str | None = None
    force: bool = False

    def as_json(self) -> dict[str, Any]:
        """``{"batch_id", "cause", "force", "enqueued", "left": {cause: n}}`` (``batch_id`` / ``cause``:
        None when not asked for)."""
        return {
            "batch_id": self.batch_id,
            "cause": self.cause,
            "force": self.force,
            "enqueued": self.enqueued,
            "left": dict(sorted(self.left.items())),
        }


def retry_failed(
    res: Resources, batch_id: str | None = None, *, cause: str | None = None, force: bool = False
) -> RetryResult:
    """Re-enqueue failed items: of one batch (or of every batch), only those failed with ``cause`` when given.

    Items failed for a permanent cause (:data:`shared.errors.PERMANENT_CAUSES`) are left alone unless
    ``force``; items failed with ``connection_removed``, or whose connection was removed since, are never
    retried. Each item retried keeps the failed round in its ``history``; its attempts start from 0.
    Raises :class:`UserError` for an unknown batch, or a ``cause`` that is neither a known cause nor one
    recorded on a failed item (the message lists the causes of the failed items).
    """
    if batch_id is not None:
        _batch(res, batch_id)
    groups = history.failed_by_cause(res.engine, batch_id)
    if cause is not None and cause not in KNOWN_CAUSES and all(g.cause != cause for g in groups):
        present = sorted({g.cause for g in groups if g.cause is not None})
        where = f"of batch {batch_id}" if batch_id is not None else "in the store"
        listed = f"the failed items {where} have: {', '.join(present)}" if present else f"no failed items {where}"
        raise UserError(f"unknown cause {cause}; {listed}")
    to_retry: set[str | None] = set()
    left: dict[str, int] = {}
    for g in groups:
        if cause is not None and g.cause != cause:
            continue
        why = CONNECTION_REMOVED_CAUSE if g.connection_removed else retry_refusal(g.cause, force=force)
        if why is None:
            to_retry.add(g.cause)
        else:  # a permanent cause, or connection_removed: counted under the reason the item stays
            key = CONNECTION_REMOVED_CAUSE if why == CONNECTION_REMOVED_CAUSE else str(g.cause)
            left[key] = left.get(key, 0) + g.count
    ids = batches.requeue_failed(res.engine, batch_id, causes=to_retry) if to_retry else []
    enqueued = res.publish(ids) if ids else 0
    return RetryResult(enqueued, left, batch_id=batch_id, cause=cause, force=force)


def republish_lost(res: Resources, older_than_s: float | None = None) -> int:
    """One recovery sweep now (every worker runs them on its own): publish again the items whose message is
    gone (:mod:`shared.queue.recovery`); ``older_than_s`` overrides the grace ``requeue_after_s``."""
    settings = res.settings
    if older_than_s is not None:
        export = settings.export.model_copy(update={"requeue_after_s": older_than_s})
        settings = settings.model_copy(update={"export": export})
    return recovery.sweep(res.celery, res.engine, res.limiter, settings, res.broker_redis).published


def _iso(ts: datetime | None) -> str | None:
    """An ISO 8601 UTC timestamp, or None."""
    return aware(ts).isoformat() if ts is not None else None


def _target(batch: BatchRecord) -> dict[str, Any]:
    return {
        "kind": batch.target_kind.value,
        "job_id": batch.job_id,
        "pool_id": batch.pool_id,
        "stage_id": batch.stage_id,
    }


SYNC_STATE = {
    ItemStatus.EXPORTED: "pending",
    ItemStatus.SYNCED: "synced",
    ItemStatus.SYNC_OVERDUE: "overdue",
}
"""The sync state of an item written to Greenhouse, by its status (``pending``: awaiting the read-back)."""


def _batch(res: Resources, batch_id: str) -> BatchRecord:
    """The batch ``batch_id``; :class:`UserError` when there is none."""
    batch = batches.get_batch(res.engine, batch_id)
    if batch is None:
        raise UserError(f"no batch {batch_id}")
    return batch


def _head(batch: BatchRecord, counts: dict[str, int]) -> dict[str, Any]:
    """What :func:`batch_status` and :func:`batch_progress` both start with: ``batch_id``, ``total``,
    ``counts`` by status, ``sync`` (``pending``, ``synced``, ``overdue``) and ``done``."""
    return {
        "batch_id": batch.id,
        "total": batch.total,
        "counts": counts,
        "sync": {state: counts.get(status.value, 0) for status, state in SYNC_STATE.items()},
        "done": not any(s.value in counts for s in ACTIVE_STATUSES),
    }


def sent_parts(item: ItemRecord) -> dict[str, Any]:
    """What an item put into Greenhouse so far (the field report's ``sent``): where the record came from
    (``created``, ``email_match``, ``exported_before``), whether the application is there, how many
    educations and employments, the tags applied, the note, the resume attachment's id."""
    p = item.progress
    return {
        "record": p.origin.value if item.greenhouse_candidate_id is not None else None,
        "application": item.greenhouse_application_id is not None,
        "educations": sum(1 for gid in p.educations.done.values() if gid is not None),
        "employments": sum(1 for gid in p.employments.done.values() if gid is not None),
        "tags": sorted(name for name, tid in p.tags.items() if tid is not None),
        "note": p.note_id is not None,
        "resume": p.resume_id,
    }


def field_report(items: Sequence[ItemRecord]) -> dict[str, Any]:
    """The batch's field report summary: entries left out by reason and by part, and how many items have
    one (``ghexport status`` prints it; each item's detail is its ``left_out``)."""
    by_reason: Counter[str] = Counter()
    by_part: Counter[str] = Counter()
    with_any = 0
    for it in items:
        with_any += bool(it.left_out)
        for entry in it.left_out:
            by_reason[entry["reason"]] += 1
            by_part[entry["part"]] += 1
    return {"items": with_any, "by_reason": dict(by_reason.most_common()), "by_part": dict(by_part.most_common())}


def batch_status(res: Resources, batch_id: str) -> dict[str, Any]:
    """The contract's status document of a batch (JSON-ready: statuses and kinds are plain strings,
    timestamps ISO 8601 UTC strings)."""
    batch = _batch(res, batch_id)
    items = batches.batch_items(res.engine, batch_id)
    counts: dict[str, int] = {}
    for it in items:
        counts[it.status.value] = counts.get(it.status.value, 0) + 1
    return {
        **_head(batch, counts),
        "target": _target(batch),
        "rejected": batch.rejected,
        "left_out": field_report(items),
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
                "sent": sent_parts(it),
                "left_out": it.left_out,
                "error": it.error,
                "error_cause": it.error_cause,
                "synced_at": _iso(it.synced_at),
                "sync_deadline_at": _iso(it.sync_deadline_at),
                "sync_detail": it.sync_detail,
                "record_deleted_at": _iso(it.record_deleted_at),
            }
            for it in items
        ],
    }


def batch_progress(res: Resources, batch_id: str) -> dict[str, Any]:
    """The head of :func:`batch_status` without the items (``batch_id``, ``total``, ``counts``, ``sync``,
    ``done``): one grouped read, cheap enough to poll for a batch of any size."""
    batch = _batch(res, batch_id)
    return _head(batch, history.status_counts(res.engine, batch_id))


def _profile_export(item: ItemRecord, batch: BatchRecord) -> dict[str, Any]:
    """One export of a profile in the per-profile status document."""
    return {
        "batch_id": batch.id,
        "item_id": item.id,
        "created_at": _iso(item.created_at),
        "exported_at": _iso(item.exported_at),
        "synced_at": _iso(item.synced_at),
        "user_email": batch.user_email,
        "target": _target(batch),
        "status": item.status.value,
        "greenhouse_candidate_id": item.greenhouse_candidate_id,
        "greenhouse_application_id": item.greenhouse_application_id,
        "linked_existing": item.linked_existing,
        "sync_deadline_at": _iso(item.sync_deadline_at),
        "sync_detail": item.sync_detail,
        "sync_checks": item.sync_checks,
        "record_deleted_at": _iso(item.record_deleted_at),
        "attempts": item.attempts,
        "error": item.error,
        "error_cause": item.error_cause,
        "sent": sent_parts(item),
        "left_out": item.left_out,
        "history": item.history,
    }


def profile_status(res: Resources, connection_name: str, profile_id: str) -> dict[str, Any]:
    """Every export of one profile through the connection, newest first, and a summary for the platform's
    "exported to Greenhouse" mark (JSON-ready; the shape is in the README's operator contract).

    ``exported``: Greenhouse holds a record of the profile written or linked through this connection (the
    person ledger knows it, or an export reached ``exported``/``synced``/``sync_overdue``);
    ``greenhouse_candidate_id``: that record (the ledger's, else the newest export's); ``status``: the
    newest export's status; ``sync_state``: ``pending``/``synced``/``overdue`` of the newest export written
    to Greenhouse; ``in_progress``: an export is still ``queued`` or ``sending``. A profile never exported
    has ``exports: []``. Raises :class:`shared.errors.ConnectionNotFoundError` for an unknown connection.
    An export whose record Greenhouse deleted since (or merged into another: its ``delete_candidate`` webhook)
    has ``record_deleted_at`` and counts as written no more; ``record_deleted``: the profile was exported, but
    no record of it is left (the next export links to a person found by email, or creates it again).
    """
    conn = get_connection(res.engine, connection_name)
    exports = history.profile_exports(res.engine, conn.id, profile_id)
    person = people.find_person(res.engine, conn.id, profile_id)
    written = [e.item for e in exports if e.item.status in DONE_STATUSES and e.item.record_deleted_at is None]
    candidate_id = person.greenhouse_candidate_id if person is not None else None
    if candidate_id is None and written:
        candidate_id = written[0].greenhouse_candidate_id
    return {
        "connection": conn.name,
        "profile_id": profile_id,
        "exported": candidate_id is not None or bool(written),
        "greenhouse_candidate_id": candidate_id,
        "status": exports[0].item.status.value if exports else None,
        "sync_state": SYNC_STATE[written[0].status] if written else None,
        "in_progress": any(e.item.status in ACTIVE_STATUSES for e in exports),
        "record_deleted": candidate_id is None
        and not written
        and any(e.item.record_deleted_at is not None for e in exports),
        "exports": [_profile_export(e.item, e.batch) for e in exports],
    }


# --- partner connections (OAuth consent) ----------------------------------------------------------------


def begin_partner_consent(res: Resources, **options: Any) -> PartnerConsent:
    """Begin a partner connect: record it under a single-use ``state`` and return Greenhouse's authorization
    URL for the customer's browser. ``options``: those of
    :func:`shared.connections.partner.begin_partner_consent` (``name``, ``client_id``, ``client_secret``,
    ``user_email``, ``redirect_uri`` and the connect options)."""
    return partner.begin_partner_consent(res.settings, res.engine, **options)


def complete_partner_consent(res: Resources, params: Mapping[str, str]) -> ConnectResult:
    """Finish a partner connect from the consent redirect's query parameters (``code`` and ``state``, or
    ``error``): exchange, introspect, check and store; the connection's waiting items go on. Raises
    :class:`~shared.errors.ConsentError` (one line, nothing stored) or the connect checks' errors."""
    result = partner.complete_partner_consent(
        res.settings, res.engine, params, holds=res.holds, **res.harvest_options()
    )
    res.grants.forget(result.connection.id)
    return result


# --- what a connection can export to ----------------------------------------------------------------------


def open_jobs(res: Resources, connection_name: str) -> list[dict[str, Any]]:
    """The open jobs of the connection's Greenhouse (``jobs --json``'s ``jobs``; cached lookups)."""
    conn = get_connection(res.engine, connection_name)
    reader = res.harvest_for(conn)
    with reader:
        return [j.model_dump(mode="json") for j in res.lookups_for(conn, reader).open_jobs()]


def prospect_pools(res: Resources, connection_name: str) -> list[dict[str, Any]]:
    """The prospect pools of the connection's Greenhouse with their stages (``pools --json``'s ``pools``)."""
    conn = get_connection(res.engine, connection_name)
    reader = res.harvest_for(conn)
    with reader:
        pools = res.lookups_for(conn, reader).pools()
    return [{**p.pool.model_dump(mode="json"), "stages": [s.model_dump(mode="json") for s in p.stages]} for p in pools]
