"""Per-process state of a worker: the process's :class:`Resources` and export collaborators.

Built once per worker process after fork (``worker_process_init``, or on first use in the solo and thread
pools, which fire no process init) and closed at shutdown. Holds no module-level settings: the Celery
app (:mod:`workers.app`) passes its settings in.
"""

from __future__ import annotations

import os
import socket
import threading

from shared.harvest.limiter import RedisRateLimiter
from shared.queue.pacing import Pacer
from shared.resources import Resources
from shared.settings import Settings
from workers.export import ExportDeps


def worker_owner() -> str:
    """The lease owner of this process: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


class WorkerRuntime:
    """Builds this process's resources and export collaborators on first use; :meth:`stop` closes them."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._deps: ExportDeps | None = None

    def start(self) -> ExportDeps:
        """Build the process's resources and collaborators (idempotent)."""
        with self._lock:
            if self._deps is None:
                self._deps = ExportDeps(res=Resources(self.settings), owner=worker_owner())
            return self._deps

    def stop(self) -> None:
        """Close the process's resources (safe to call twice, or before :meth:`start`)."""
        with self._lock:
            if self._deps is not None:
                self._deps.res.close()
            self._deps = None

    def deps(self) -> ExportDeps:
        """This process's export collaborators, built on first use."""
        return self._deps or self.start()

    def resources(self) -> Resources:
        """This process's resources, built on first use."""
        return self.deps().res


class PacerRuntime:
    """The pacer of one ``ghexport worker`` (its main process): releases parked items to the broker.

    Nothing to do when the shared limiter is disabled (items are published at once, never parked).
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._res: Resources | None = None
        self._pacer: Pacer | None = None

    def start(self) -> None:
        """Start releasing parked items (idempotent; a no-op without the shared limiter)."""
        if self._pacer is not None:
            return
        res = Resources(self.settings)
        limiter = res.limiter
        if not isinstance(limiter, RedisRateLimiter):
            res.close()
            return
        self._res = res
        self._pacer = Pacer(res.celery, res.engine, limiter, self.settings.limiter.pacer_interval_s)
        self._pacer.start()

    def stop(self) -> None:
        """Stop the pacer and close its resources (safe before :meth:`start` and twice)."""
        if self._pacer is not None:
            self._pacer.stop()
        if self._res is not None:
            self._res.close()
        self._pacer, self._res = None, None
