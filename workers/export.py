"""Export one item: the plain business flow behind the Celery task (testable without Celery).

Never a duplicate record at Greenhouse, with at-least-once delivery:

1. the item is claimed with a lease (a redelivered message for a held or finished item does nothing);
2. the person ledger gives one item per (connection, profile) the right to create a record;
3. before a create, the person is looked up by every email (a match is linked, per the connection's
   duplicate policy); ``create_sent_at`` is written *before* the create is sent, so a create whose
   outcome is unknown (timeout, dropped connection, 5xx after sending) is reconciled on the next run by
   looking the person up again, for as long as Greenhouse may take to show a new record, and only then
   created again;
4. every Greenhouse id and every part (educations, employments, tags, note) is stored the moment it is
   known, so a second run continues where the first stopped.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from pydantic import ValidationError
from sqlalchemy.engine import Engine

from shared.connections.service import load_connection
from shared.errors import (
    NEEDS_REAUTH_CAUSE,
    REAUTH_EXPIRED_CAUSE,
    AmbiguousMatchError,
    CircuitOpenError,
    ConnectionNotFoundError,
    HarvestError,
    LeaseLostError,
    PermanentError,
    RateLimitedError,
    ReauthRequiredError,
    RetryableError,
    UnavailableError,
)
from shared.harvest.client import HarvestClient
from shared.profiles.fields import FieldSettings, apply_fields
from shared.profiles.mapping import MappedCandidate, Target, map_profile
from shared.profiles.matching import match_created
from shared.profiles.model import Profile, describe_errors
from shared.profiles.report import LeftOut, Reason
from shared.resources import Resources, translate_error
from shared.settings import Settings
from shared.store import batches, grants, people, visibility
from shared.store import items as store_items
from shared.store.models import ACTIVE_STATUSES, DuplicatePolicy, ItemStatus, TargetKind, aware, utcnow
from shared.store.progress import RecordOrigin
from shared.store.records import BatchRecord, ConnectionRecord, ItemRecord
from workers.item_run import ItemRun
from workers.liveness import InFlight, StoreHealth
from workers.outcome import MustWaitError, NotClaimed, Outcome
from workers.parts import PartsWriter, find_application

log = logging.getLogger("ghexport.worker")

CREATED_AT_MARGIN = timedelta(minutes=1)
"""Records created this long before a lost create's send (clock skew) or after its timeout are considered."""
READBACK_MEMORY = timedelta(hours=6)
"""Read-back delays measured longer ago no longer size the wait for an unknown create."""
CONSENT_POLL_S = 60.0
"""Without the pacer (no shared limiter), how often an item waiting for a new consent looks again."""


@dataclass
class ExportDeps:
    """Collaborators of :func:`export_item`: the process's resources, who we are, the clock and jitter."""

    res: Resources
    """Store engine, Harvest clients and the shared lookups of this process (:mod:`shared.resources`)."""
    owner: str
    """Lease owner written on claimed items (``host:pid:nonce``)."""
    jitter: Callable[[float, float], float] = field(default=random.uniform)
    now: Callable[[], datetime] = field(default=utcnow)
    inflight: InFlight = field(default_factory=InFlight)
    """The items this process's runs work on now; the process's heartbeat keeps their leases."""
    store: StoreHealth = field(default_factory=StoreHealth)

    @property
    def settings(self) -> Settings:
        return self.res.settings

    @property
    def engine(self) -> Engine:
        return self.res.engine

    def start_run(self, item: ItemRecord) -> ItemRun:
        """A run on ``item``, which this worker (``owner``) has just claimed."""
        return ItemRun(self.engine, self.owner, self.settings.export, item, jitter=self.jitter, now=self.now)


def export_item(deps: ExportDeps, item_id: int, credit: int = 0) -> Outcome:
    """Export the store's item ``item_id`` once; the outcome says whether to send the message again.

    ``credit``: Harvest requests its credential's pacer reserved for the item's next step (0: none, the
    item asks for admission itself and is parked when its credential has no budget to spare).
    """
    with deps.inflight.hold(item_id) as held:
        if not held:
            return NotClaimed(f"item {item_id} is being exported by this worker already")
        # no run of this process holds it: an item still ``sending`` under our own name is an earlier run's
        # that lost the store mid-way, and is taken back at once instead of after its lease
        item = store_items.claim_item(deps.engine, item_id, deps.owner, deps.settings.export.lease_s, reclaim_own=True)
        if item is None:
            return NotClaimed(f"item {item_id} is finished or held by another worker")
        return _run(deps, deps.start_run(item), credit)


def _run(deps: ExportDeps, run: ItemRun, credit: int) -> Outcome:
    item_id = run.item_id
    try:
        return _Export(deps, run, credit).execute()
    except LeaseLostError as exc:
        return NotClaimed(str(exc))
    except Exception as exc:
        if isinstance(translate_error(exc), UnavailableError):
            raise  # the store (or Redis) is away: the task retries the message; the run's lease expires
        # A bug, or an answer we cannot handle: count the attempt, so the item ends failed after
        # max_attempts instead of looping. If the store itself is down, this raises and the task retries.
        log.exception("item %s: unexpected error", item_id)
        return run.retry(run.backoff_s(), "internal_error", f"internal error: {type(exc).__name__}", counts=True)


class _SkipError(Exception):
    """Stop this run: the item ends ``skipped`` with ``reason``."""


@dataclass(frozen=True)
class _Step:
    """One step of the export (the core record, or its parts) and the requests reserved for it."""

    key: str
    """The credential (client id) whose budget the step spends."""
    cost: int
    enrichment: bool


class _ParkError(Exception):
    """Stop this run: the credential has no budget to spare for ``step``; park the item until it has."""

    def __init__(self, step: _Step, reason: str) -> None:
        super().__init__(reason)
        self.step = step


class _Export:
    """The export flow of one run: find or create the Greenhouse record, then add its parts.

    Each step runs with its requests reserved on the credential's pacing clock: the ``credit`` the pacer
    released the item with, else an admission asked here. With no budget to spare, the item is parked, and
    its parts wait behind every core record its credential still has to create (records before enrichment).
    """

    def __init__(self, deps: ExportDeps, run: ItemRun, credit: int = 0) -> None:
        self.d = deps
        self.run = run
        self.cfg = deps.settings.export
        self.credit = credit
        self.step: _Step | None = None

    @property
    def item(self) -> ItemRecord:
        return self.run.item

    def execute(self) -> Outcome:
        """Export the claimed item; the run ends finished, failed, skipped or released for a retry."""
        run = self.run
        batch = batches.get_batch(self.d.engine, self.item.batch_id)
        assert batch is not None, "an item always has its batch"
        try:
            conn = load_connection(self.d.engine, self.item.connection_id)
        except ConnectionNotFoundError:
            return run.fail("connection_removed", "connection removed")
        try:
            profile = Profile.from_snapshot(self.item.profile)
        except ValidationError as exc:
            return run.fail(
                "invalid_profile", f"stored profile {self.item.profile_id} is invalid: {describe_errors(exc)}"
            )
        reader = self.d.res.harvest_for(conn)
        writer = reader.with_sub(batch.user_id)
        try:
            self.export(batch, conn, profile, reader, writer)
        except MustWaitError as exc:
            return run.retry(exc.countdown_s, "waiting", exc.reason, counts=False)
        except _SkipError as exc:
            return run.finish(ItemStatus.SKIPPED, error=str(exc), error_cause="duplicate_in_greenhouse")
        except _ParkError as exc:
            return self.park(exc.step, str(exc))
        except ReauthRequiredError as exc:  # the customer must consent again: wait, neither fail nor spend
            return self.wait_for_consent(conn, str(exc))
        except RateLimitedError as exc:
            return self.wait_for_credential(conn.limit_key, exc.cause, str(exc), exc.retry_after_s)
        except CircuitOpenError as exc:  # Greenhouse fails for this credential: nothing was sent
            return self.wait_for_credential(conn.limit_key, exc.cause, str(exc), exc.retry_after_s)
        except RetryableError as exc:
            if self.d.res.breaker.state(conn.limit_key).state != "closed":
                # an outage (the credential's circuit, or its write circuit): not this item's fault, no attempt spent
                return self.wait_for_credential(conn.limit_key, exc.cause, str(exc), self.cfg.retry_backoff_s)
            return run.retry(run.backoff_s(), exc.cause, str(exc), counts=True)
        except PermanentError as exc:
            return run.fail(exc.cause, str(exc))
        return run.finish(ItemStatus.EXPORTED)

    def export(
        self,
        batch: BatchRecord,
        conn: ConnectionRecord,
        profile: Profile,
        reader: HarvestClient,
        writer: HarvestClient,
    ) -> None:
        target = Target(
            kind=_target_kind(batch.target_kind),
            job_id=batch.job_id,
            pool_id=batch.pool_id,
            stage_id=batch.stage_id,
            source_id=conn.source_id,
            user_id=batch.user_id,
        )
        mapped = map_profile(
            profile,
            target,
            self.d.res.lookups_for(conn, reader).options().index(),
            dummy_emails=batch.dummy_emails,
            dummy_email_domain=self.cfg.dummy_email_domain,
            skills_custom_field=self.cfg.skills_custom_field,
        )
        fields = FieldSettings.from_stored(conn.fields)
        mapped, switched_off = apply_fields(mapped, fields, user_name=batch.user_name)
        if not fields.resume:
            switched_off.append(
                LeftOut("resume", Reason.DISABLED, "resume not sent: off in the connection's field settings")
            )
        for entry in [*mapped.left_out, *switched_off]:
            self.run.leave_out(entry)
        limiter = self.d.res.limiter
        if self.item.greenhouse_candidate_id is None or self.item.greenhouse_application_id is None:
            core = len(mapped.emails) + 1 + (self.item.greenhouse_candidate_id is not None)  # lookups, create, app
            step = self.admitted(_Step(conn.limit_key, core, enrichment=False))
            with limiter.credit(step.key, step.cost):
                if self.item.greenhouse_candidate_id is None:
                    self.resolve_candidate(batch, conn, mapped, reader, writer)
                if self.item.greenhouse_application_id is None:
                    self.writer_for(reader, writer, batch).application(mapped.application, batch.target_kind)
        cost = self.parts_cost(mapped, fields)
        if cost == 0:  # nothing left to send: no budget to wait for
            self.add_parts(conn, batch, profile, mapped, fields, reader, writer)
            return
        step = self.admitted(_Step(conn.limit_key, cost, enrichment=True))
        with limiter.credit(step.key, step.cost):
            self.add_parts(conn, batch, profile, mapped, fields, reader, writer)

    def wait_for_credential(self, key: str, cause: str, message: str, wait_s: float) -> Outcome:
        """The credential cannot take this item's requests now (rate limit, or Greenhouse failing): park the
        item for its pacer, else retry after ``wait_s``; the attempt is not spent either way."""
        if self.d.res.limiter.paces:  # the pacer sends it again in its turn
            step = self.step or _Step(key, 1, enrichment=self.item.greenhouse_candidate_id is not None)
            return self.park(step, f"{cause}: {message}")
        return self.run.retry(wait_s + self.d.jitter(0.0, 1.0), cause, message, counts=False)

    def wait_for_consent(self, conn: ConnectionRecord, message: str) -> Outcome:
        """The connection's consent is gone: the item waits (attempt refunded, cause ``needs_reauth``), parked
        behind its held credential, until ``connect --partner`` restores it; past the grace period it fails."""
        stored = grants.load_tokens(self.d.engine, conn.id)
        since = stored.grant.since if stored is not None else None
        grace_s = self.d.settings.partner.reauth_grace_s
        if since is not None and (utcnow() - aware(since)).total_seconds() > grace_s:
            days = grace_s / 86400
            return self.run.fail(
                REAUTH_EXPIRED_CAUSE, f"{message}; the consent stayed gone longer than the grace period ({days:g} days)"
            )
        if self.d.res.limiter.paces:  # held: the pacer releases it once the consent is back
            self.d.res.holds.hold(conn.limit_key, f"needs_reauth: {message}")
            step = self.step or _Step(conn.limit_key, 1, enrichment=self.item.greenhouse_candidate_id is not None)
            outcome = self.run.park(message, cause=NEEDS_REAUTH_CAUSE)
            self.d.res.limiter.park(step.key, self.run.item_id, step.cost, enrichment=step.enrichment)
            return outcome
        return self.run.retry(CONSENT_POLL_S, NEEDS_REAUTH_CAUSE, message, counts=False)

    def admitted(self, step: _Step) -> _Step:
        """``step`` with its requests reserved: the pacer's credit, else an admission now; else park."""
        if self.credit > 0:
            step, self.credit = _Step(step.key, self.credit, step.enrichment), 0
        elif not self.d.res.limiter.admit(step.key, self.run.item_id, step.cost, enrichment=step.enrichment):
            raise _ParkError(step, "waiting for the credential's rate-limit budget")
        self.step = step
        return step

    def park(self, step: _Step, reason: str) -> Outcome:
        """Release the item, then queue it behind its credential's earlier work."""
        outcome = self.run.park(reason)
        self.d.res.limiter.park(step.key, self.run.item_id, step.cost, enrichment=step.enrichment)
        return outcome

    def parts_cost(self, mapped: MappedCandidate, fields: FieldSettings) -> int:
        """Requests the parts step will send: educations and employments of a record we created, each tag
        not yet applied, the note, the resume (and its look-up when one may be there already)."""
        progress = self.item.progress
        n = sum(1 for name in mapped.tags if name not in progress.tags)
        if progress.origin is RecordOrigin.CREATED:
            n += len(mapped.educations) + len(mapped.employments)
        if mapped.note and not progress.note_sent and progress.origin is not RecordOrigin.EXPORTED_BEFORE:
            n += 1
        if fields.resume and not progress.resume_done:
            n += 1 + (progress.resume_sent or progress.origin is not RecordOrigin.CREATED)
        return n

    def writer_for(self, reader: HarvestClient, writer: HarvestClient, batch: BatchRecord) -> PartsWriter:
        cid = self.item.greenhouse_candidate_id
        assert cid is not None
        return PartsWriter(self.run, reader, writer, cid, batch.user_id)

    def add_parts(
        self,
        conn: ConnectionRecord,
        batch: BatchRecord,
        profile: Profile,
        mapped: MappedCandidate,
        fields: FieldSettings,
        reader: HarvestClient,
        writer: HarvestClient,
    ) -> None:
        """Educations and employments (of a record we created), tags, the note of a first export, and the
        resume on the application (as the connection's field settings say)."""
        origin = self.item.progress.origin
        parts = self.writer_for(reader, writer, batch)
        if origin is RecordOrigin.CREATED:
            parts.educations(mapped)
            parts.employments(mapped)
        elif origin is RecordOrigin.EMAIL_MATCH and (mapped.educations or mapped.employments):
            self.run.warn("educations and employments not added: the person already had a Greenhouse record")
        lookups = self.d.res.lookups_for(conn, reader)
        parts.tags(mapped, lookups.tag_ids, lambda: lookups.invalidate("tags"))
        if origin is not RecordOrigin.EXPORTED_BEFORE:  # the first export added the note
            parts.note(mapped)
        if fields.resume:
            resume = self.d.settings.resume
            parts.resume(profile, paper=fields.paper, max_bytes=resume.max_bytes, font_dirs=resume.font_dirs)

    def set_record(self, candidate_id: int, origin: RecordOrigin, **values: object) -> None:
        """Store the Greenhouse record this item exports to, and where it came from (which decides its parts)."""
        self.run.save(greenhouse_candidate_id=candidate_id, progress=self.item.progress.with_record(origin), **values)

    def resolve_candidate(
        self,
        batch: BatchRecord,
        conn: ConnectionRecord,
        mapped: MappedCandidate,
        reader: HarvestClient,
        writer: HarvestClient,
    ) -> None:
        """Find or create the Greenhouse record; sets ``greenhouse_candidate_id`` (and maybe the app id)."""
        engine, item_id = self.d.engine, self.run.item_id
        person = None
        if not batch.new_record:
            person = people.claim_person(engine, conn.id, self.item.profile_id, item_id)
            if person.greenhouse_candidate_id is not None:
                self.set_record(person.greenhouse_candidate_id, RecordOrigin.EXPORTED_BEFORE, linked_existing=True)
                return
            if person.owner_item_id != item_id:
                self.take_over(person.id, person.owner_item_id)

        if self.item.create_sent_at is not None:
            if self.adopt_after_unknown_outcome(conn, mapped, reader, batch):
                return
        elif not batch.new_record and conn.duplicate_policy is not DuplicatePolicy.CREATE:
            match = lookup_person(reader, mapped.emails)
            if match is not None:
                if conn.duplicate_policy is DuplicatePolicy.SKIP:
                    if person is not None:
                        people.release_person(engine, person.id, item_id)
                    raise _SkipError(f"a person with this email is already in Greenhouse (candidate {match})")
                self.run.warn(f"linked to the existing Greenhouse candidate {match} (same email)")
                self.set_record(match, RecordOrigin.EMAIL_MATCH, linked_existing=True)
                people.set_person_candidate(engine, conn.id, self.item.profile_id, match)
                return

        self.run.save(create_sent_at=self.run.now())
        try:
            created = writer.create_candidate(mapped.create.model_copy(update={"application": mapped.application}))
        except HarvestError as exc:
            if not exc.outcome_unknown:
                self.run.save(create_sent_at=None)
                if person is not None and isinstance(exc, PermanentError):
                    people.release_person(engine, person.id, item_id)
            raise
        app_id = created.application.id if created.application is not None else None
        self.set_record(created.candidate.id, RecordOrigin.CREATED, greenhouse_application_id=app_id)
        if not batch.new_record:
            people.set_person_candidate(engine, conn.id, self.item.profile_id, created.candidate.id)

    def take_over(self, person_id: int, holder_id: int | None) -> None:
        """Another item holds the create right: wait while it works, take over once it stopped."""
        holder = store_items.get_item(self.d.engine, holder_id) if holder_id is not None else None
        if holder is not None and holder.status in ACTIVE_STATUSES:
            raise MustWaitError(self.cfg.in_progress_retry_s, "another export of this profile is in progress")
        if not people.take_over_person(self.d.engine, person_id, holder_id, self.run.item_id):
            raise MustWaitError(self.cfg.in_progress_retry_s, "another export of this profile took the create right")
        if holder is not None and holder.create_sent_at is not None and self.item.create_sent_at is None:
            self.run.save(create_sent_at=holder.create_sent_at)  # its create may have landed: reconcile

    def adopt_after_unknown_outcome(
        self, conn: ConnectionRecord, mapped: MappedCandidate, reader: HarvestClient, batch: BatchRecord
    ) -> bool:
        """An earlier create may have succeeded: look for its record instead of creating again.

        The person is looked up by email; a profile without one, among the records created around the send
        (matched by name plus what else was sent). True when the record was found and adopted; raises
        :class:`MustWaitError` while Greenhouse may still be making it readable (:meth:`reconcile_window`);
        False once that window passed with no record (safe to create).
        """
        sent_at = self.item.create_sent_at
        assert sent_at is not None
        match = lookup_person(reader, mapped.emails) if mapped.emails else self.find_created(reader, mapped, sent_at)
        if match is not None:
            self.set_record(match, RecordOrigin.CREATED, visible_at=self.run.now())
            app = find_application(reader, match, batch.target_kind, batch.job_id, batch.pool_id)
            if app is not None:
                self.run.save(greenhouse_application_id=app)
            if not batch.new_record:
                people.set_person_candidate(self.d.engine, conn.id, self.item.profile_id, match)
            return True
        window_s, basis = self.reconcile_window(conn)
        age_s = (self.run.now() - aware(sent_at)).total_seconds()
        if age_s < window_s:
            until = aware(sent_at) + timedelta(seconds=window_s)
            raise MustWaitError(
                min(self.cfg.reconcile_interval_s, max(1.0, window_s - age_s)),
                f"create outcome unknown; looking for the record until {until:%Y-%m-%d %H:%M:%S} UTC ({basis}) "
                "before creating it again",
            )
        self.run.warn(f"an earlier create was not found after {window_s:.0f} s ({basis}); created again")
        self.run.save(create_sent_at=None)
        return False

    def find_created(self, reader: HarvestClient, mapped: MappedCandidate, sent_at: datetime) -> int | None:
        """The record a lost create made for a profile without email: among the records created around the
        send, the one with the name and the other details we sent. Two equally good matches go to a human."""
        sent = aware(sent_at)
        created = reader.list_candidates_created(
            sent - CREATED_AT_MARGIN,
            sent + timedelta(seconds=self.d.settings.harvest.timeout_s) + CREATED_AT_MARGIN,
        )
        found = match_created(mapped.create, created)
        if found.ambiguous:
            ids = ", ".join(str(i) for i in found.ambiguous)
            raise AmbiguousMatchError(
                f"the create may have reached Greenhouse, and several records created then match this profile "
                f"(candidates {ids}): check them in Greenhouse, then re-export with --include-exported"
            )
        return found.candidate_id

    def reconcile_window(self, conn: ConnectionRecord) -> tuple[float, str]:
        """How long an unknown create is looked for, and why: a few times the read-back delay Greenhouse
        needed lately for this connection's records (``reconcile_factor``), at least ``reconcile_floor_s``;
        ``reconcile_window_s`` (the worst case of the sync window) while nothing has been measured."""
        cfg = self.cfg
        delays = visibility.readback_delays(self.d.engine, conn.id, since=self.run.now() - READBACK_MEMORY)
        if not delays:
            return cfg.reconcile_window_s, "no read-back delay measured for this connection yet: the full sync window"
        slowest = max(delays)
        window = min(cfg.reconcile_window_s, max(cfg.reconcile_floor_s, cfg.reconcile_factor * slowest))
        return window, f"{cfg.reconcile_factor:g} x the {slowest:.0f} s Greenhouse needed lately to show a new record"


def _target_kind(kind: TargetKind) -> Literal["job", "prospect"]:
    """``kind`` as the mapping's literal (:mod:`shared.profiles` does not know the store's enum)."""
    return "job" if kind is TargetKind.JOB else "prospect"


def lookup_person(reader: HarvestClient, emails: list[str]) -> int | None:
    """The Greenhouse candidate id of the person with any of ``emails`` (Greenhouse compares emails without
    regard to case); with several matches, the most recently updated record."""
    found: dict[int, str] = {}
    for email in emails:
        for cand in reader.find_candidates_by_email(email):
            found[cand.id] = cand.updated_at or ""
    if not found:
        return None
    return max(found, key=lambda cid: (found[cid], cid))
