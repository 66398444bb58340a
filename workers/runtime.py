"""Per-process state of a worker: the process's :class:`Resources`, export collaborators and heartbeat;
and the duties of the worker's main process (the pacer, recovery and read-back).

Built once per worker process after fork (``worker_process_init``, or on first use in the solo and thread
pools, which fire no process init) and closed at shutdown. Holds no module-level settings: the Celery
app (:mod:`workers.app`) passes its settings in.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading

from shared.harvest.limiter import RedisRateLimiter
from shared.queue.pacing import Pacer
from shared.resources import Resources
from shared.settings import Settings
from workers.callbacks import CallbackDelivery
from workers.consent import ConsentTurn
from workers.export import ExportDeps
from workers.liveness import Heartbeat
from workers.maintenance import CircuitProbe, Maintenance
from workers.sync import SyncConfirmation


def worker_owner() -> str:
    """The lease owner of this process: ``host:pid:nonce`` (a restarted container may reuse host and pid)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class WorkerRuntime:
    """Builds this process's resources and export collaborators on first use; :meth:`stop` closes them."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._deps: ExportDeps | None = None
        self._heartbeat: Heartbeat | None = None

    def start(self) -> ExportDeps:
        """Build the process's resources and collaborators and start its heartbeat (idempotent)."""
        with self._lock:
            if self._deps is None:
                deps = ExportDeps(res=Resources(self.settings, patient=False), owner=worker_owner())
                cfg = self.settings.export
                self._heartbeat = Heartbeat(
                    lambda: deps.res.engine,
                    deps.owner,
                    deps.inflight,
                    lease_s=cfg.lease_s,
                    interval_s=cfg.heartbeat_s,
                    health=deps.store,
                )
                self._heartbeat.start()
                self._deps = deps
            return self._deps

    def stop(self) -> None:
        """Stop the heartbeat and close the process's resources (safe to call twice, or before :meth:`start`)."""
        with self._lock:
            if self._heartbeat is not None:
                self._heartbeat.stop()
            if self._deps is not None:
                self._deps.res.close()
            self._deps, self._heartbeat = None, None

    def deps(self) -> ExportDeps:
        """This process's export collaborators, built on first use."""
        return self._deps or self.start()

    def resources(self) -> Resources:
        """This process's resources, built on first use."""
        return self.deps().res


class MaintenanceRuntime:
    """The main process of one ``ghexport worker``: its pacer releases parked items to the broker, and it
    takes its turn at recovery and read-back (:mod:`workers.maintenance`), at sync confirmation
    (:mod:`workers.sync`) and at looking after partner consents (:mod:`workers.consent`), and delivers the
    tenants' callbacks (:mod:`workers.callbacks`).

    The pacer has nothing to do when the shared limiter is disabled (items are published at once, never
    parked); recovery always runs.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._res: Resources | None = None
        self._pacer: Pacer | None = None
        self._maintenance: Maintenance | None = None
        self._sync: SyncConfirmation | None = None
        self._consent: ConsentTurn | None = None
        self._callbacks: CallbackDelivery | None = None

    def start(self) -> None:
        """Start the pacer (with the shared limiter) and the maintenance thread (idempotent)."""
        if self._res is not None:
            return
        res = self._res = Resources(self.settings, patient=False)
        limiter = res.limiter
        if isinstance(limiter, RedisRateLimiter):
            self._pacer = Pacer(
                res.celery,
                res.engine,
                limiter,
                self.settings.limiter.pacer_interval_s,
                res.breaker,
                res.holds,
                CircuitProbe(res),
            )
            self._pacer.start()
        owner = worker_owner()
        self._maintenance = Maintenance(res, owner, res.broker_redis)
        self._maintenance.start()
        if self.settings.sync.enabled:
            self._sync = SyncConfirmation(res, owner)
            self._sync.start()
        self._consent = ConsentTurn(res, owner)
        self._consent.start()
        if self.settings.callbacks.enabled:  # its own thread, client and pool: never an export slot
            self._callbacks = CallbackDelivery(res)
            self._callbacks.start()

    def stop(self) -> None:
        """Stop the threads and close their resources (safe before :meth:`start` and twice)."""
        for thread in (self._pacer, self._maintenance, self._sync, self._consent, self._callbacks):
            if thread is not None:
                thread.stop()
        if self._res is not None:
            self._res.close()
        self._pacer, self._maintenance, self._sync, self._consent, self._res = None, None, None, None, None
        self._callbacks = None
