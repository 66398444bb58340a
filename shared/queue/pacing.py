"""Pacing: items wait in their credential's queue in Redis until it has budget, then go to the broker.

The producer (and recovery, and operator retries) *park* items with the requests their next step will
cost; every worker runs a :class:`Pacer` thread that releases, credential by credential, the items whose
turn has come (:meth:`RedisRateLimiter.release`, atomic, so several pacers never release one item twice)
and publishes them with that cost as *credit*: the item's sends were reserved when it was released, so it
runs without waiting and nothing bounces through the broker. A 10,000-candidate batch waits in Redis, not in
the broker's queue in front of another customer's 15 candidates. Parked items are not "lost": recovery
skips them (:func:`not_parked`); if Redis itself loses them, they are ``queued`` in the store and recovery
publishes them again.

With the limiter disabled there is nothing to pace: items are published at once, as before.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from shared.harvest.breaker import CircuitBreaker
from shared.harvest.holds import Holds
from shared.harvest.limiter import RateGate, RedisRateLimiter, Released
from shared.queue import names
from shared.queue.messages import ExportItemMessage
from shared.queue.periodic import Periodic
from shared.queue.publishing import publish
from shared.store import publication
from shared.store import rows as store_rows

if TYPE_CHECKING:
    from celery import Celery
    from sqlalchemy.engine import Engine

log = logging.getLogger("ghexport.pacer")

RELEASE_AT_ONCE = 100
"""Most items one credential releases per pacer tick."""


def core_cost(profile: Mapping[str, object]) -> int:
    """Requests to find or create a profile's record: one lookup per email (at most 3), one create."""
    emails = profile.get("emails")
    return min(len(emails), 3) + 1 if isinstance(emails, list) else 1


def parts_cost(profile: Mapping[str, object]) -> int:
    """Requests to add a record's parts: one per education, employment and tag, and the note."""
    n = sum(len(v) for k in ("educations", "employments", "tags") if isinstance(v := profile.get(k), list))
    return n + 1


def park(limiter: RedisRateLimiter, engine: Engine, item_ids: Sequence[int], *, chunk: int = store_rows.CHUNK) -> int:
    """Park ``item_ids`` in their credentials' queues with the cost of their next step; returns how many."""
    parked = 0
    for part in store_rows.chunks(item_ids, chunk):
        rows = publication.pacing_facts(engine, part)
        groups: dict[tuple[str, bool], list[tuple[int, int]]] = {}
        for fact in rows:
            cost = parts_cost(fact.profile) if fact.has_record else core_cost(fact.profile)
            groups.setdefault((fact.limit_key, fact.has_record), []).append((fact.item_id, cost))
        for (key, has_record), items in groups.items():
            limiter.park_many(key, items, enrichment=has_record)
        parked += len(rows)
        publication.mark_published(engine, [f.item_id for f in rows])
    return parked


def enqueue(
    app: Celery, engine: Engine, limiter: RateGate, item_ids: Sequence[int], *, chunk: int = store_rows.CHUNK
) -> int:
    """Park the items when the limiter paces (Redis), else publish them at once; returns how many."""
    if isinstance(limiter, RedisRateLimiter):
        return park(limiter, engine, item_ids, chunk=chunk)
    return publish(app, engine, item_ids, chunk=chunk)


def not_parked(limiter: RateGate, item_ids: Sequence[int]) -> list[int]:
    """``item_ids`` without the ones waiting in a credential's queue (those are paced, not lost)."""
    if not isinstance(limiter, RedisRateLimiter):
        return list(item_ids)
    waiting = limiter.parked(item_ids)
    return [i for i in item_ids if i not in waiting]


Probe = Callable[[str], bool]
"""Sends one request that creates nothing through credential ``key`` (``POST /v3/candidates`` with ``{}``,
which Greenhouse refuses with a 422 once it serves writes again) as the circuit's probe; False when it has no
connection for the key (then an item's own request is the probe)."""


def release_due(
    app: Celery,
    engine: Engine,
    limiter: RedisRateLimiter,
    breaker: CircuitBreaker | None = None,
    holds: Holds | None = None,
    probe: Probe | None = None,
) -> int:
    """Publish every parked item whose credential has budget now, with its reserved cost as credit.

    A held credential (its partner consent is gone: :mod:`shared.harvest.holds`) releases nothing until a new
    consent lifts the hold. A credential whose circuit is open (Greenhouse failing) releases nothing; once its
    pause is over, ``probe`` sends a request that creates nothing, and the items go on at once when it is
    answered. An item's create is never the probe: a create failing then would have an unknown outcome, and
    its item would wait for reconciliation long after Greenhouse's return. Without ``probe`` (or for a key no
    connection has), one item at a time is released, whose first request is the probe.
    """
    sent: list[int] = []
    held = holds.held() if holds is not None else {}
    try:
        for key in limiter.parked_keys():
            if key in held:
                continue
            most = RELEASE_AT_ONCE
            if breaker is not None:
                if breaker.blocked(key):
                    continue
                if breaker.state(key).state != "closed":
                    if probe is not None and probe(key):
                        if breaker.state(key).state != "closed":
                            continue  # still failing (or another process's probe is out)
                    else:
                        most = 1
            released = limiter.release(key, most)
            if released:
                sent += _send_released(app, limiter, key, released)
    finally:
        if sent:
            publication.mark_released(engine, sent)
    return len(sent)


def _send_released(app: Celery, limiter: RedisRateLimiter, key: str, released: Sequence[Released]) -> list[int]:
    """Send the released items' messages; when the broker refuses, park the unsent ones again (nothing
    is lost between the credential's queue and the broker) and raise."""
    sent: list[int] = []
    try:
        with app.producer_or_acquire() as producer:
            for r in released:
                app.send_task(
                    names.EXPORT_ITEM_TASK,
                    args=[ExportItemMessage(item_id=r.item_id, credit=r.cost).to_task_args()],
                    queue=names.EXPORT_QUEUE,
                    producer=producer,
                )
                sent.append(r.item_id)
    except Exception:
        limiter.park_many(key, [(r.item_id, r.cost) for r in released[len(sent) :]])
        raise
    return sent


class Pacer(Periodic):
    """A daemon thread that calls :func:`release_due` every ``interval_s`` until :meth:`stop`."""

    failing = "%s cannot release parked items (%s); retrying"
    back = "%s releases parked items again"

    def __init__(
        self,
        app: Celery,
        engine: Engine,
        limiter: RedisRateLimiter,
        interval_s: float,
        breaker: CircuitBreaker | None = None,
        holds: Holds | None = None,
        probe: Probe | None = None,
    ) -> None:
        super().__init__("pacer", interval_s, log)
        self.app = app
        self.engine = engine
        self.limiter = limiter
        self.breaker = breaker
        self.holds = holds
        self.probe = probe

    def tick(self) -> None:
        release_due(self.app, self.engine, self.limiter, self.breaker, self.holds, self.probe)
