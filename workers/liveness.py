"""A worker process's liveness: the items it works on, the heartbeat that keeps their leases, and the
state of its result store, said once when it changes.

A claimed item carries a short lease (``lease_s``). While a run works on it, the process's
:class:`Heartbeat` renews the lease of every item in :class:`InFlight` every ``heartbeat_s``, so a slow but
live export is never taken over, and a dead worker's items are free again ``lease_s`` after its last beat.
Only items a run holds *now* are renewed: an item whose run stopped abnormally (its store went away
mid-run) expires and comes back through recovery.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy.engine import Engine

from shared.queue.periodic import Periodic
from shared.resources import translate_error
from shared.store import items as store_items

log = logging.getLogger("ghexport.worker")


class InFlight:
    """The ids of the items this process's runs work on now (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids: set[int] = set()

    @contextmanager
    def hold(self, item_id: int) -> Iterator[bool]:
        """Mark ``item_id`` as worked on for the block; yields False (and marks nothing) when another run
        of this process already works on it."""
        with self._lock:
            if item_id in self._ids:
                taken = False
            else:
                self._ids.add(item_id)
                taken = True
        try:
            yield taken
        finally:
            if taken:
                with self._lock:
                    self._ids.discard(item_id)

    def snapshot(self) -> list[int]:
        """The ids worked on now."""
        with self._lock:
            return sorted(self._ids)


class StoreHealth:
    """Whether this process reaches its result store; logs once when it is lost and once when it is back,
    not once per task."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._down_since: float | None = None

    def down(self, reason: str) -> None:
        """A statement failed because the store is unreachable."""
        with self._lock:
            if self._down_since is not None:
                return
            self._down_since = time.monotonic()
        log.warning("result store unreachable (%s); tasks wait and are retried until it is back", reason)

    def up(self) -> None:
        """A statement went through."""
        with self._lock:
            since, self._down_since = self._down_since, None
        if since is not None:
            log.warning("result store reachable again after %.0f s; tasks resume", time.monotonic() - since)

    @property
    def is_down(self) -> bool:
        return self._down_since is not None


class Heartbeat(Periodic):
    """A daemon thread renewing the leases of the items in ``inflight`` every ``interval_s``."""

    def __init__(
        self,
        engine: Callable[[], Engine],
        owner: str,
        inflight: InFlight,
        *,
        lease_s: float,
        interval_s: float,
        health: StoreHealth,
    ) -> None:
        super().__init__("heartbeat", interval_s, log)
        self.engine = engine
        """The process's store engine, built on first use (the store may be down when the worker starts)."""
        self.owner = owner
        self.inflight = inflight
        self.lease_s = lease_s
        self.health = health

    def beat(self) -> int:
        """Renew the leases now; returns how many items this process holds."""
        held = self.inflight.snapshot()
        return store_items.renew_leases(self.engine(), self.owner, held, self.lease_s) if held else 0

    def tick(self) -> None:
        if self.beat():  # a statement went through
            self.health.up()

    def failed(self, exc: Exception) -> None:
        """The store away: the process's runs say so too, through the same :class:`StoreHealth`; keep beating."""
        error = translate_error(exc)
        self.health.down(str(error or type(exc).__name__))

    def succeeded(self) -> None:
        """Said by :meth:`tick` (only when it reached the store)."""
