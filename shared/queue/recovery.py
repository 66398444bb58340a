"""Recovery: work the broker lost comes back through the workers alone, and nothing else is sent twice.

Every ``ghexport worker`` runs a sweep every ``recovery_interval_s``; a lock in Redis lets one worker of the
cluster sweep per interval (:func:`take_turn`), and ``ghexport recover`` runs one by hand. A sweep publishes
again exactly the items whose message is gone:

- **the broker lost its data**: the producer and the workers keep an *epoch* marker in the broker's Redis
  (:data:`EPOCH_KEY`) and its value in the store (:data:`EPOCH_MARKER`). A Redis restarted without
  persistence comes back without it: every item queued before that moment is published again at once,
  whatever its age. A broker that keeps its queues (RabbitMQ, durable) has no epoch and is never suspected;
- **a worker died mid-task**: items ``sending`` whose lease expired (a live worker renews the lease of every
  item it works on, so a slow export is never taken over);
- **never published**: the producer stopped (or the broker refused) between the batch's commit and its
  publication;
- **overdue with nothing queued**: an item whose message should have run ``requeue_after_s`` ago while the
  broker's export queue is empty and its credential's pacer does not hold it (a message a dead worker had
  reserved for a later retry), at two turns in a row: a message a live worker has just taken from the
  queue is claimed long before the next turn. Items waiting their turn in a long batch are never touched:
  they are parked in their credential's queue, or the broker's queue is not empty.

Each publication is counted on the item (``publications``, shown by ``ghexport status --json``).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kombu.exceptions import ChannelError

from shared.queue import names
from shared.queue.pacing import enqueue, not_parked
from shared.store import markers as store_markers
from shared.store import publication as store_publication
from shared.store.models import utcnow

if TYPE_CHECKING:
    import redis
    from celery import Celery
    from sqlalchemy.engine import Engine

    from shared.harvest.limiter import RateGate
    from shared.settings import Settings

log = logging.getLogger("ghexport.recovery")

EPOCH_KEY = "ghx:broker-epoch"
"""In the broker's Redis: a random value set once; gone or changed means Redis lost its data."""
EPOCH_MARKER = "broker_epoch"
"""In the store (``markers``): the epoch the cluster last saw in the broker's Redis."""
LOCK_KEY = "ghx:recovery:turn"
"""In the limiter's Redis: held by the worker whose turn it is to sweep (expires before the next turn)."""
SUSPECTS_KEY = "ghx:recovery:overdue"
"""In the limiter's Redis: the items the last turn found overdue with nothing queued (confirmed next turn)."""


@dataclass
class SweepReport:
    """What one sweep found and published again."""

    broker_lost: bool = False
    """The broker's Redis lost its data since the last sweep."""
    after_loss: list[int] = field(default_factory=list)
    expired: list[int] = field(default_factory=list)
    unpublished: list[int] = field(default_factory=list)
    overdue: list[int] = field(default_factory=list)
    published: int = 0

    def summary(self) -> str:
        """One line for the log (empty when nothing was published)."""
        parts = [
            f"{len(ids)} {what}"
            for ids, what in (
                (self.after_loss, "queued before the broker lost its data"),
                (self.expired, "of workers that died mid-task"),
                (self.unpublished, "never published"),
                (self.overdue, "overdue with no queue holding them"),
            )
            if ids
        ]
        return f"published again {self.published} items: " + ", ".join(parts) if self.published else ""


def ensure_epoch(broker: redis.Redis | None, engine: Engine) -> bool:
    """Check the broker's epoch against the store's; True when the broker lost its data since.

    Sets the epoch when the broker has none; a first start (the store knows no epoch yet) adopts the
    broker's. Only the caller that moved the store's marker from the old epoch to the new one returns True,
    so two workers sweeping at once never both publish everything again.
    """
    if broker is None:  # not a Redis broker: its queues survive a restart (RabbitMQ's durable queues)
        return False
    current = broker.get(EPOCH_KEY)
    if current is None:
        proposed = uuid.uuid4().hex
        current = proposed if broker.set(EPOCH_KEY, proposed, nx=True) else broker.get(EPOCH_KEY)
        if current is None:  # lost again in between: next sweep
            return False
    epoch = current.decode() if isinstance(current, bytes) else str(current)
    known = store_markers.get_marker(engine, EPOCH_MARKER)
    if known == epoch:
        return False
    if known is None:  # the cluster's first sweep: nothing was queued in an earlier broker
        store_markers.set_marker_if(engine, EPOCH_MARKER, epoch, expected=None)
        return False
    return store_markers.set_marker_if(engine, EPOCH_MARKER, epoch, expected=known)


def broker_backlog(app: Celery) -> int:
    """Messages waiting in the broker's export queue (0 when the queue does not exist)."""
    with app.connection_for_write() as conn:
        try:
            return int(conn.default_channel.queue_declare(queue=names.EXPORT_QUEUE, passive=True).message_count)
        except ChannelError:  # no such queue: nothing waits
            return 0


def sweep(
    app: Celery,
    engine: Engine,
    limiter: RateGate,
    settings: Settings,
    broker: redis.Redis | None,
    memory: redis.Redis | None = None,
) -> SweepReport:
    """Find the items whose message is gone and publish them again (see the module docstring).

    ``memory``: where turns remember the overdue items they suspect, so only those overdue at two turns in a
    row are published again; None (an operator's ``recover``): at once.
    """
    report = SweepReport()
    started = utcnow()
    grace = settings.export.requeue_after_s
    if ensure_epoch(broker, engine):
        report.broker_lost = True
        report.after_loss = not_parked(limiter, store_publication.queued_before(engine, started))
        log.warning(
            "the broker's Redis lost its data (its epoch marker is gone); publishing again the %d items queued before",
            len(report.after_loss),
        )
    report.expired = store_publication.expired_leases(engine)
    report.unpublished = store_publication.unpublished_items(engine, grace)
    overdue = not_parked(limiter, store_publication.overdue_items(engine, grace))
    if overdue and broker_backlog(app) > 0:
        overdue = []  # a queue holds work: they may be waiting in it
    report.overdue = overdue if memory is None else _confirmed(memory, overdue, settings.export.recovery_interval_s)
    ids = _unique(report.after_loss, report.expired, report.unpublished, report.overdue)
    report.published = enqueue(app, engine, limiter, ids, chunk=settings.export.publish_chunk) if ids else 0
    if report.published:
        log.warning("recovery: %s", report.summary())
    return report


def take_turn(lock: redis.Redis, owner: str, interval_s: float) -> bool:
    """True when it is this worker's turn to sweep: one sweep per interval across the cluster."""
    return bool(lock.set(LOCK_KEY, owner, nx=True, px=max(1, int(interval_s * 900))))


def _confirmed(memory: redis.Redis, suspects: list[int], interval_s: float) -> list[int]:
    """The ``suspects`` the previous turn suspected too; remembers this turn's for the next."""
    previous = {int(m) for m in memory.smembers(SUSPECTS_KEY)}
    pipe = memory.pipeline()
    pipe.delete(SUSPECTS_KEY)
    if suspects:
        pipe.sadd(SUSPECTS_KEY, *suspects)
        pipe.pexpire(SUSPECTS_KEY, max(1, int(interval_s * 10_000)))
    pipe.execute()
    return [i for i in suspects if i in previous]


def _unique(*groups: Sequence[int]) -> list[int]:
    return list(dict.fromkeys(i for group in groups for i in group))
