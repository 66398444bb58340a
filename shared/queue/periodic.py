"""The background threads of a worker (the pacer, the heartbeat, recovery): one loop for all of them.

Each calls :meth:`Periodic.tick` after every :meth:`Periodic.next_wait` seconds until :meth:`Periodic.stop`;
a failing tick (Redis, the broker or the store away) never ends the thread. By default a failure is said
once per kind and its end once (``failing`` / ``back``), not once per tick.
"""

from __future__ import annotations

import logging
import threading


class Periodic:
    """A daemon thread named ``name`` ticking every ``interval_s``; subclasses implement :meth:`tick`."""

    failing = "%s cannot run (%s); retrying"
    """Logged once when ticks start failing (arguments: the thread's name, the error)."""
    back = "%s runs again"
    """Logged once when a tick succeeds after failures (argument: the thread's name)."""

    def __init__(self, name: str, interval_s: float, log: logging.Logger) -> None:
        self.name = name
        self.interval_s = interval_s
        self.log = log
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"ghexport-{name}", daemon=True)
        self._failing: str | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def tick(self) -> None:
        """One round of the thread's work."""
        raise NotImplementedError

    def next_wait(self) -> float:
        """Seconds until the next tick."""
        return self.interval_s

    def failed(self, exc: Exception) -> None:
        """A tick raised ``exc``: say so once per kind of error."""
        first = str(exc).splitlines()[0] if str(exc) else ""
        kind = type(exc).__name__
        if self._failing != kind:
            self.log.warning(self.failing, self.name, f"{kind}: {first}" if first else kind)
        self._failing = kind

    def succeeded(self) -> None:
        """A tick went through: say so once if ticks were failing."""
        if self._failing is not None:
            self.log.warning(self.back, self.name)
        self._failing = None

    def _run(self) -> None:
        while not self._stop.wait(self.next_wait()):
            try:
                self.tick()
            except Exception as exc:  # never end the thread: the next tick tries again
                self.failed(exc)
            else:
                self.succeeded()
