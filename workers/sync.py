"""Sync confirmation: exported items are read back from Greenhouse until they show what was sent.

Greenhouse creates records asynchronously: a record may take minutes to be readable, and up to four hours
in peak hours (08:00-22:00 America/New_York). Every ``ghexport worker`` takes part from its main process,
like recovery: about every ``check_every_s`` each worker asks for the turn, and one worker of the cluster
gets it (a lock in Redis). In its turn it

1. gives each newly exported item its window (:func:`shared.store.sync.sync_window_s`) and its first
   read-back, one interval after the export;
2. reads back the items due, fifty per request (the candidates, then their applications), per connection,
   those whose window closes first first, and compares each with what its export sent
   (:mod:`shared.profiles.readback`): a match is ``synced``; a miss is read again an interval later, or
   is ``sync_overdue`` with what differs once the window has closed.

**It yields to exports.** A credential whose items are still ``queued`` or ``sending`` gets no read-back
at all in that turn (checked again before every request), and a turn spends at most ``budget_share`` of
the credential's learned limit (two requests per fifty items). Its requests go through the same shared
limiter as exports, without waiting more than a moment: when the budget is taken, the turn stops for that
credential. So an export that starts during a turn waits at most for one read-back request in flight.
"""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from pydantic import ValidationError

from shared.connections.service import load_connection
from shared.errors import ConnectionNotFoundError, HarvestError
from shared.harvest.limiter import RedisRateLimiter
from shared.harvest.models import Application, Candidate
from shared.profiles.mapping import OptionIndex, Target, map_profile
from shared.profiles.model import Profile
from shared.profiles.readback import Expected, differences, expected_record
from shared.queue.periodic import Periodic
from shared.settings import SyncSettings
from shared.store import batches, visibility
from shared.store import items as store_items
from shared.store import sync as store_sync
from shared.store.models import TargetKind, utcnow
from shared.store.progress import RecordOrigin
from shared.store.records import BatchRecord, ConnectionRecord, ItemRecord

if TYPE_CHECKING:
    from shared.resources import Resources

log = logging.getLogger("ghexport.sync")

TURN_KEY = "ghx:sync-turn"
READ_CHUNK = 50
"""Items read back per request (Harvest's ``ids`` filter takes fifty)."""
REQUESTS_PER_CHUNK = 2


@dataclass
class SyncReport:
    """What one confirmation turn did."""

    scheduled: int = 0
    checked: int = 0
    synced: int = 0
    overdue: int = 0
    deferred: int = 0
    """Items due but not read in this turn (exports of their credential first, or no budget to spare)."""


class Confirmation:
    """One confirmation turn over the items due (see the module docstring)."""

    def __init__(self, res: Resources, cfg: SyncSettings | None = None, clock: Callable[[], datetime] = utcnow) -> None:
        self.res = res
        self.cfg = cfg or res.settings.sync
        self.clock = clock
        self.report = SyncReport()
        self._batches: dict[str, BatchRecord] = {}

    def run(self) -> SyncReport:
        engine = self.res.engine
        self.report.scheduled = store_sync.schedule_new(engine, self.cfg)
        by_connection: dict[int, list[store_sync.DueItem]] = defaultdict(list)
        for due in store_sync.due_items(engine, self.clock()):
            by_connection[due.connection_id].append(due)
        if not by_connection:
            return self.report
        connections = self._connections(set(by_connection))  # more are loaded as exports show up
        for connection_id, items in by_connection.items():
            conn = connections.get(connection_id)
            if conn is None:  # removed: nothing can be read through it any more
                for due in items:
                    self._unconfirmed(due, "connection removed before the record was read back", final=True)
                continue
            self._confirm(conn, items[: self.cfg.max_per_turn], connections)
            self.report.deferred += max(0, len(items) - self.cfg.max_per_turn)
        return self.report

    def _connections(self, ids: set[int]) -> dict[int, ConnectionRecord]:
        found: dict[int, ConnectionRecord] = {}
        for connection_id in ids:
            try:
                found[connection_id] = load_connection(self.res.engine, connection_id)
            except ConnectionNotFoundError:
                continue
        return found

    def _credential_busy(self, key: str, connections: dict[int, ConnectionRecord]) -> bool:
        """Whether exports of the credential (its limit key) wait or run now (they come first)."""
        busy = store_sync.exporting_connections(self.res.engine)
        connections.update(self._connections(busy - set(connections)))
        return any(connections[i].limit_key == key for i in busy if i in connections)

    def _budget(self, key: str) -> int:
        limiter = self.res.limiter
        if isinstance(limiter, RedisRateLimiter):
            limit = limiter.learned(key).limit
        else:
            limit = self.res.settings.limiter.requests
        return max(REQUESTS_PER_CHUNK, int(limit * self.cfg.budget_share))

    def _confirm(
        self, conn: ConnectionRecord, items: Sequence[store_sync.DueItem], connections: dict[int, ConnectionRecord]
    ) -> None:
        reader = self.res.harvest_for(conn)
        budget = self._budget(conn.limit_key)
        for start in range(0, len(items), READ_CHUNK):
            chunk = items[start : start + READ_CHUNK]
            if budget < REQUESTS_PER_CHUNK or self._credential_busy(conn.limit_key, connections):
                self.report.deferred += len(items) - start
                return
            records = {r.id: r for r in store_sync.load_items(self.res.engine, [d.item_id for d in chunk])}
            ids = sorted({r.greenhouse_candidate_id for r in records.values() if r.greenhouse_candidate_id})
            try:
                candidates = {c.id: c for c in reader.get_candidates(ids)} if ids else {}
                applications = reader.list_applications(candidate_ids=ids) if ids else []
            except HarvestError as exc:  # no budget to spare, or Greenhouse failing: later, or overdue now
                log.debug("read-back through connection %s stopped: %s", conn.name, exc)
                now = self.clock()
                for due in items[start:]:
                    if due.deadline <= now:
                        detail = f"could not be read back before the window closed: {exc.cause}"
                        self._unconfirmed(due, detail, final=True)
                    else:
                        self.report.deferred += 1
                return
            budget -= REQUESTS_PER_CHUNK
            self._settle(conn, chunk, records, candidates, applications)

    def _settle(
        self,
        conn: ConnectionRecord,
        chunk: Sequence[store_sync.DueItem],
        records: dict[int, ItemRecord],
        candidates: dict[int, Candidate],
        applications: list[Application],
    ) -> None:
        now = self.clock()
        by_candidate: dict[int, list[Application]] = defaultdict(list)
        for app in applications:
            if app.candidate_id is not None:
                by_candidate[app.candidate_id].append(app)
        matched: list[int] = []
        for due in chunk:
            item = records.get(due.item_id)
            if item is None or item.greenhouse_candidate_id is None:
                self._unconfirmed(due, "no Greenhouse candidate id was recorded", final=True)
                continue
            self.report.checked += 1
            expected = self._expected(conn, item)
            cid = item.greenhouse_candidate_id
            found = differences(expected, candidates.get(cid), by_candidate.get(cid, []))
            if not found:
                matched.append(item.id)
            else:
                self._unconfirmed(due, "; ".join(found), final=due.deadline <= now)
        self.report.synced += store_items.mark_synced(self.res.engine, matched, now)
        seen = [r.id for r in records.values() if r.greenhouse_candidate_id in candidates and r.visible_at is None]
        visibility.mark_visible(self.res.engine, seen, now)

    def _expected(self, conn: ConnectionRecord, item: ItemRecord) -> Expected:
        batch = self._batch(item.batch_id)
        target = Target(
            kind="job" if batch.target_kind == TargetKind.JOB else "prospect",
            job_id=batch.job_id,
            pool_id=batch.pool_id,
            stage_id=batch.stage_id,
            source_id=conn.source_id,
            user_id=batch.user_id,
        )
        assert item.greenhouse_candidate_id is not None
        created_here = item.progress.origin is RecordOrigin.CREATED and not item.linked_existing
        export = self.res.settings.export
        try:
            mapped = map_profile(
                Profile.from_snapshot(item.profile),
                target,
                OptionIndex(),
                dummy_emails=batch.dummy_emails,
                dummy_email_domain=export.dummy_email_domain,
                skills_custom_field=export.skills_custom_field,
            )
        except ValidationError:  # a stored profile this version cannot read: the application alone
            return Expected(item.greenhouse_candidate_id, item.greenhouse_application_id, target)
        return expected_record(
            mapped,
            target,
            candidate_id=item.greenhouse_candidate_id,
            application_id=item.greenhouse_application_id,
            created_here=created_here,
        )

    def _batch(self, batch_id: str) -> BatchRecord:
        if batch_id not in self._batches:
            batch = batches.get_batch(self.res.engine, batch_id)
            assert batch is not None, "an item always has its batch"
            self._batches[batch_id] = batch
        return self._batches[batch_id]

    def _unconfirmed(self, due: store_sync.DueItem, detail: str, *, final: bool) -> None:
        now = self.clock()
        next_check = min(self.cfg.check_every_s, max(1.0, (due.deadline - now).total_seconds()))
        changed = store_items.mark_unconfirmed(
            self.res.engine, due.item_id, detail, overdue=final, next_check_s=next_check, when=now
        )
        if changed and final:
            self.report.overdue += 1
            log.warning("item %s is sync_overdue: %s", due.item_id, detail)


def confirm_due(res: Resources, cfg: SyncSettings | None = None, clock: Callable[[], datetime] = utcnow) -> SyncReport:
    """One confirmation turn now, whoever holds the turn (``cfg``: other settings than ``res``'s; ``clock``:
    the time the turn takes as now)."""
    return Confirmation(res, cfg, clock).run()


def take_turn(res: Resources, owner: str, interval_s: float) -> bool:
    """True when it is this worker's turn to confirm: one turn per interval across the cluster."""
    return bool(res.redis.set(TURN_KEY, owner, nx=True, px=max(1, int(interval_s * 900))))


class SyncConfirmation(Periodic):
    """A daemon thread of the worker's main process taking its turn at confirmation every ``check_every_s``."""

    def __init__(self, res: Resources, owner: str) -> None:
        super().__init__("sync confirmation", res.settings.sync.check_every_s, log)
        self.res = res
        self.owner = owner
        self._started = False

    def turn(self) -> SyncReport | None:
        """Confirm what is due if it is this worker's turn; None when another worker has it."""
        if not take_turn(self.res, self.owner, self.interval_s):
            return None
        report = confirm_due(self.res)
        if report.synced or report.overdue:
            log.info(
                "sync confirmation: %d synced, %d overdue, %d deferred", report.synced, report.overdue, report.deferred
            )
        return report

    def tick(self) -> None:
        self.turn()

    def next_wait(self) -> float:
        if not self._started:  # workers of a cluster started together do not all ask at once
            self._started = True
            return random.uniform(0.1, 1.0) * min(self.interval_s, 5.0)
        return self.interval_s * random.uniform(0.9, 1.1)
