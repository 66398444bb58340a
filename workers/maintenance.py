"""The cluster duties every ``ghexport worker`` takes part in, from its main process: no flag to remember.

- **Recovery** (:mod:`shared.queue.recovery`): every ``recovery_interval_s`` each worker asks for the turn;
  one worker of the cluster gets it per interval (a lock in Redis) and publishes again what the broker lost.
- **Read-back delays**: in the same turn, records our items created and nobody has seen yet are read back,
  fifty per request, per connection; the first time Greenhouse shows one is stored on its item
  (``visible_at``). How long Greenhouse needed lately sizes the wait for a create whose answer was lost
  (:mod:`workers.export`). It costs one request per connection per turn, only while new records are unseen.
"""

from __future__ import annotations

import logging
import random
from datetime import timedelta
from typing import TYPE_CHECKING

from shared.connections.service import list_connections, load_connection
from shared.errors import ConnectionNotFoundError, HarvestError
from shared.harvest.client import CANDIDATES
from shared.queue import recovery
from shared.queue.periodic import Periodic
from shared.store import visibility
from shared.store.models import utcnow

if TYPE_CHECKING:
    import redis

    from shared.resources import Resources
    from shared.store.records import ConnectionRecord

log = logging.getLogger("ghexport.recovery")

READBACK_HORIZON = timedelta(hours=1)
"""Records created longer ago and still unseen are left to the sync confirmation."""


def probe_readback(res: Resources) -> int:
    """Read back the records created lately and not seen yet; returns how many were seen now."""
    engine, since = res.engine, utcnow() - READBACK_HORIZON
    seen_now = 0
    for connection_id in visibility.recent_creators(engine, since):
        try:
            conn = load_connection(engine, connection_id)
        except ConnectionNotFoundError:
            continue
        pending = visibility.unconfirmed_creates(engine, connection_id, since)
        if not pending:
            continue
        try:
            shown = {c.id for c in res.harvest_for(conn).get_candidates([cid for _, cid in pending])}
        except HarvestError as exc:  # no budget to spare, or Greenhouse failing: next turn
            log.debug("read-back of connection %s skipped: %s", conn.name, exc)
            continue
        items = [item_id for item_id, cid in pending if cid in shown]
        visibility.mark_visible(engine, items)
        seen_now += len(items)
    return seen_now


class CircuitProbe:
    """The pacer's probe of a paused credential (:data:`shared.queue.pacing.Probe`): ``POST /v3/candidates`` with
    an empty body through one of the credential's connections. Greenhouse refuses it with a 422 (the connect
    checks' scope probe, free of side effects) once it serves writes again; the answer, or the failure, is the
    circuit's probe outcome. No item's create is ever sent into a failing Greenhouse as a probe."""

    def __init__(self, res: Resources) -> None:
        self.res = res
        self._by_key: dict[str, ConnectionRecord] = {}

    def _connection(self, key: str) -> ConnectionRecord | None:
        if key not in self._by_key:
            self._by_key = {c.limit_key: c for c in list_connections(self.res.engine)}
        return self._by_key.get(key)

    def __call__(self, key: str) -> bool:
        conn = self._connection(key)
        if conn is None:
            return False
        try:
            status = self.res.harvest_for(conn).probe("POST", CANDIDATES)
            log.debug("circuit probe of %s answered %s", key, status)
        except HarvestError as exc:  # still failing, paused, or another process's probe is out
            log.debug("circuit probe of %s: %s", key, exc)
        return True


class Maintenance(Periodic):
    """A daemon thread running :meth:`turn` about every ``recovery_interval_s``, until :meth:`stop`."""

    def __init__(self, res: Resources, owner: str, broker: redis.Redis | None) -> None:
        super().__init__("recovery", res.settings.export.recovery_interval_s, log)
        self.res = res
        self.owner = owner
        self.broker = broker
        self._started = False

    def turn(self) -> recovery.SweepReport | None:
        """Sweep and read back if it is this worker's turn; None when another worker has it."""
        res = self.res
        if not recovery.take_turn(res.redis, self.owner, self.interval_s):
            return None
        report = recovery.sweep(res.celery, res.engine, res.limiter, res.settings, self.broker, res.redis)
        probe_readback(res)
        return report

    def tick(self) -> None:
        self.turn()

    def next_wait(self) -> float:
        if not self._started:  # a random first delay: workers of a cluster started together do not all ask at once
            self._started = True
            return random.uniform(0.1, 1.0) * min(self.interval_s, 5.0)
        return self.interval_s * random.uniform(0.9, 1.1)
