"""Figures read from the store and the broker for the metrics endpoint, and the endpoint itself.

:class:`ExportCollector` is a Prometheus custom collector: at every scrape it reads, from the result store,
the items by status, the age of the oldest queued item (since it last became ``queued``), the age of the
oldest exported item not yet confirmed (``exported``: its ``exported_at``) and the sync lag of the items
confirmed lately (``synced_at - exported_at`` over the last :data:`SYNC_LAG_WINDOW_S`); from the broker,
the backlog of the export queue; from the limiter's Redis, the items parked for budget. A source that does
not answer leaves its figures out and says so (``ghx_monitoring_source_up``, one log line per outage); the
scrape itself never fails.

:class:`MetricsEndpoint` serves ``/metrics``: in the main process of every ``ghexport worker`` (from
``worker_ready`` to ``worker_shutdown``, on ``GHX_METRICS_PORT``), and as ``ghexport metrics``. In
multiprocess mode (:mod:`shared.metrics`) it adds up the files of every process of the worker, the pool's
children included; otherwise it shows this process's own figures. Either way with the collector's.

This is the top layer of ``shared``: it may import anything in it.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar

from prometheus_client import REGISTRY, CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

from shared import metrics
from shared.connections.service import list_connections
from shared.errors import UserError
from shared.harvest.limiter import RedisRateLimiter
from shared.queue.recovery import broker_backlog
from shared.resources import Resources, translate_error
from shared.settings import Settings
from shared.store import grants
from shared.store.figures import ItemFigures, item_figures
from shared.store.models import GrantState, utcnow

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from prometheus_client.metrics_core import Metric
    from prometheus_client.registry import Collector
    from sqlalchemy.engine import Engine

log = logging.getLogger("ghexport.metrics")

T = TypeVar("T")

SYNC_LAG_WINDOW_S = 3600.0
"""The sync lag gauges describe the items confirmed within this many seconds."""
SYNC_LAG_SAMPLE = 1000
"""At most this many of the most recently confirmed items are read for the sync lag."""


class MetricsEndpointError(UserError):
    """The metrics endpoint cannot listen where it was asked to (the port is taken, the address unknown)."""


@dataclass(frozen=True)
class StoreFigures(ItemFigures):
    """What one scrape read from the store: the items' and callbacks' figures, and the partner connections'."""

    needs_reauth: dict[str, bool] = field(default_factory=dict)
    """Every live partner connection by name: True while its consent is gone (``needs_reauth``)."""


def store_figures(
    engine: Engine, now: datetime, *, window_s: float = SYNC_LAG_WINDOW_S, sample: int = SYNC_LAG_SAMPLE
) -> StoreFigures:
    """Read the store's figures (:func:`shared.store.figures.item_figures`, then the partner connections)."""
    found = item_figures(engine, now, window_s=window_s, sample=sample)
    states = grants.grant_states(engine)
    names = {c.id: c.name for c in list_connections(engine) if c.id in states}
    return StoreFigures(
        **vars(found),
        needs_reauth={names[i]: g.state is GrantState.NEEDS_REAUTH for i, g in states.items() if i in names},
    )


def _age_s(now: datetime, since: datetime | None) -> float:
    return 0.0 if since is None else max(0.0, (now - since).total_seconds())


class ExportCollector:
    """The store's and the broker's figures, read at each scrape (see the module docstring).

    ``engine``, ``backlog`` (messages in the broker's export queue) and ``parked`` (items parked in the
    limiter) are called at each scrape; ``None`` leaves that source out. ``role`` (``worker`` or
    ``standalone``) labels ``ghx_exporter_info``.
    """

    def __init__(
        self,
        engine: Callable[[], Engine] | None,
        backlog: Callable[[], int] | None = None,
        parked: Callable[[], int] | None = None,
        *,
        role: str = "standalone",
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self._engine = engine
        self._backlog = backlog
        self._parked = parked
        self.role = role
        self._now = now
        self._lock = threading.Lock()
        self._down: set[str] = set()

    @classmethod
    def for_resources(cls, res: Resources, *, role: str) -> ExportCollector:
        """A collector on ``res``'s store, broker and limiter (each built on the first scrape)."""

        def parked() -> int:
            limiter = res.limiter
            return limiter.parked_count() if isinstance(limiter, RedisRateLimiter) else 0

        return cls(lambda: res.engine, lambda: broker_backlog(res.celery), parked, role=role)

    def describe(self) -> list[Metric]:
        """Nothing: registering the collector must not read the store."""
        return []

    def _read(self, source: str, read: Callable[[], T]) -> T | None:
        """``read()``, or None when it failed (said once per outage of ``source``, without the details a
        driver's message may hold)."""
        try:
            value = read()
        except Exception as exc:
            if source not in self._down:
                known = translate_error(exc)
                log.warning("metrics: the %s did not answer (%s)", source, known or type(exc).__name__)
                self._down.add(source)
            return None
        if source in self._down:
            log.info("metrics: the %s answers again", source)
            self._down.discard(source)
        return value

    def collect(self) -> list[Metric]:
        """Every figure, read now (one scrape at a time)."""
        with self._lock:
            started = time.perf_counter()
            up = GaugeMetricFamily(
                "ghx_monitoring_source_up", "1 when the source answered this scrape, else 0.", labels=["source"]
            )
            out: list[Metric] = []
            if self._engine is not None:
                engine, now = self._engine, self._now()
                figures = self._read("store", lambda: store_figures(engine(), now))
                up.add_metric(["store"], 0 if figures is None else 1)
                if figures is not None:
                    out += self._store_metrics(figures, now)
            depth = GaugeMetricFamily(
                "ghx_queue_depth",
                "Items waiting: messages in the broker's export queue (broker), items parked for their "
                "credential's budget (parked).",
                labels=["queue"],
            )
            for source, queue, read in (("broker", "broker", self._backlog), ("limiter", "parked", self._parked)):
                if read is None:
                    continue
                value = self._read(source, read)
                up.add_metric([source], 0 if value is None else 1)
                if value is not None:
                    depth.add_metric([queue], float(value))
            info = GaugeMetricFamily("ghx_exporter_info", "1: this endpoint serves (role).", labels=["role"])
            info.add_metric([self.role], 1.0)
            took = GaugeMetricFamily(
                "ghx_monitoring_scrape_duration_seconds",
                "Time this scrape took to read the store and the broker.",
                value=time.perf_counter() - started,
            )
            return [*out, depth, up, info, took]

    @staticmethod
    def _store_metrics(figures: StoreFigures, now: datetime) -> list[Metric]:
        items = GaugeMetricFamily("ghx_items", "Items in the result store by status.", labels=["status"])
        for status, n in sorted(figures.counts.items()):
            items.add_metric([status], float(n))
        reauth = GaugeMetricFamily(
            "ghx_connection_needs_reauth",
            "Partner connections: 1 while Greenhouse no longer honours the consent (its items wait), else 0.",
            labels=["connection"],
        )
        for name, gone in sorted(figures.needs_reauth.items()):
            reauth.add_metric([name], 1.0 if gone else 0.0)
        callbacks = GaugeMetricFamily(
            "ghx_callbacks",
            "Callback events to the platform by delivery state (pending: waiting for a first or next attempt; "
            "dead: the retry schedule ran out, redeliver by command).",
            labels=["state"],
        )
        for state, n in sorted(figures.callbacks.items()):
            callbacks.add_metric([state], float(n))
        out: list[Metric] = [
            items,
            callbacks,
            GaugeMetricFamily(
                "ghx_oldest_queued_age_seconds",
                "Age of the oldest queued item, since it last became queued (0: none queued).",
                value=_age_s(now, figures.oldest_queued_at),
            ),
            GaugeMetricFamily(
                "ghx_oldest_unsynced_age_seconds",
                "Age of the oldest exported item not confirmed yet, since its export (0: none).",
                value=_age_s(now, figures.oldest_unsynced_at),
            ),
            reauth,
            GaugeMetricFamily(
                "ghx_sync_lag_items",
                f"Items confirmed (synced) within the last {SYNC_LAG_WINDOW_S:.0f} s: the sample of the sync lag.",
                value=float(len(figures.sync_lags_s)),
            ),
        ]
        if figures.sync_lags_s:
            lags = figures.sync_lags_s
            out.append(
                GaugeMetricFamily(
                    "ghx_sync_lag_max_seconds",
                    "Longest synced_at - exported_at among the items confirmed lately (absent: none).",
                    value=max(lags),
                )
            )
            out.append(
                GaugeMetricFamily(
                    "ghx_sync_lag_avg_seconds",
                    "Mean synced_at - exported_at among the items confirmed lately (absent: none).",
                    value=sum(lags) / len(lags),
                )
            )
        return out


class _LiveProcesses:
    """Every process's figures from the multiprocess directory, after dropping the live gauges of
    processes that died without saying so (a pool child killed)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._files = MultiProcessCollector(None, path)  # type: ignore[no-untyped-call]  # untyped library

    def collect(self) -> Iterable[Metric]:
        metrics.sweep_dead_processes(self.path)
        found: Iterable[Metric] = self._files.collect()  # type: ignore[no-untyped-call]  # untyped library
        return found


def metrics_registry(collector: Collector, multiprocess_dir: str | None) -> CollectorRegistry:
    """What ``/metrics`` shows: every process of the worker (``multiprocess_dir``) or this process's own
    figures, and ``collector``'s."""
    registry = CollectorRegistry()
    registry.register(_LiveProcesses(multiprocess_dir) if multiprocess_dir else REGISTRY)
    registry.register(collector)
    return registry


def _listen_error(host: str, port: int, exc: OSError) -> MetricsEndpointError:
    if exc.errno == errno.EADDRINUSE:
        return MetricsEndpointError(
            f"metrics port {port} on {host} is already in use: stop what listens there or choose another port "
            "(--port, GHX_METRICS_PORT)"
        )
    return MetricsEndpointError(f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}")


def ensure_port_free(host: str, port: int) -> None:
    """Raise :class:`MetricsEndpointError` when nothing could listen on ``host:port`` now (checked by
    binding it as the endpoint will, then letting it go)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
    except OSError as exc:
        raise _listen_error(host, port, exc) from None


class MetricsEndpoint:
    """``/metrics`` over HTTP in a daemon thread, from :meth:`start` to :meth:`stop`.

    ``resources``: the store, broker and limiter to read (left open); by default its own, built from
    ``settings`` as a worker's (closed by :meth:`stop`).
    """

    def __init__(self, settings: Settings, *, role: str, resources: Resources | None = None) -> None:
        self.settings = settings
        self.role = role
        self._given = resources
        self._res: Resources | None = None
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.port: int | None = None
        """The port served on (known once started: ``0`` asks for any free port)."""

    def start(self, host: str | None = None, port: int | None = None) -> int:
        """Serve on ``host:port`` (default: ``GHX_METRICS_HOST`` / ``GHX_METRICS_PORT``); returns the port.

        Raises :class:`MetricsEndpointError` when it cannot listen there (the port is taken...)."""
        host = host or self.settings.metrics_host
        port = self.settings.metrics_port if port is None else port
        if port is None:
            raise MetricsEndpointError("no metrics port: pass --port or set GHX_METRICS_PORT")
        if self._server is not None:
            return self.port or port
        res = self._given or Resources(self.settings, patient=False)
        registry = metrics_registry(ExportCollector.for_resources(res, role=self.role), metrics.multiprocess_dir())
        try:
            server, thread = start_http_server(port, addr=host, registry=registry)
        except OSError as exc:
            if self._given is None:
                res.close()
            raise _listen_error(host, port, exc) from None
        self._res, self._server, self._thread = res, server, thread
        self.port = int(server.server_port)
        return self.port

    def start_in_worker(self) -> None:
        """A worker's :meth:`start`: nothing without ``GHX_METRICS_PORT``; a failure is logged, not raised
        (the worker exports without its endpoint rather than not at all)."""
        if self.settings.metrics_port is None:
            return
        try:
            port = self.start()
        except MetricsEndpointError as exc:
            log.error("no metrics endpoint: %s", exc)
            return
        mode = "every process of this worker" if metrics.multiprocess_dir() else "this process only"
        log.info("serving Prometheus metrics on http://%s:%d/metrics (%s)", self.settings.metrics_host, port, mode)

    def stop(self) -> None:
        """Stop serving and close what :meth:`start` built (safe twice, or before :meth:`start`)."""
        server, thread, res = self._server, self._thread, self._res
        self._server = self._thread = self._res = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        if res is not None and self._given is None:
            res.close()


def process_exits(pid: int | None = None) -> None:
    """This process (or ``pid``) ends: its live gauges stop counting (multiprocess mode only)."""
    metrics.mark_dead(os.getpid() if pid is None else pid)
