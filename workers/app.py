"""The Celery app of the workers: ``celery -A workers.app worker`` (or ``ghexport worker``).

Celery loads this module by name, so the app exists at import; it is built from :class:`Settings` read
once here, and nothing else happens at import (no environment is written, no connection is opened). The
embedded broker is resolved into this module's own settings copy when ``GHX_BROKER_URL`` says
``embedded`` (``ghexport worker`` resolves it before starting Celery; plain ``celery -A workers.app``
lands here). Resources (HTTP client, Redis, limiter, database engine) are built once per worker process
after fork (``worker_process_init``) by :class:`~workers.runtime.WorkerRuntime` and closed at shutdown.
The worker's main process runs the pacer, which releases items parked for their credential's budget, and
takes its turn at recovery (:class:`~workers.runtime.MaintenanceRuntime`, from ``worker_ready`` to
``worker_shutdown``): every worker takes part, so no deployment can forget it.
"""

from __future__ import annotations

import logging

from celery import Celery, signals

from shared.logs import configure_logging
from shared.monitoring import MetricsEndpoint, process_exits
from shared.queue.celery_app import make_celery
from shared.settings import EMBEDDED, Settings
from workers.runtime import MaintenanceRuntime, WorkerRuntime

log = logging.getLogger("ghexport.worker")


def worker_settings() -> Settings:
    """Settings from the environment, with an ``embedded`` broker resolved to its socket URL."""
    settings = Settings()
    if settings.broker_url == EMBEDDED:
        from shared.queue.embedded import embedded_redis_url

        settings = settings.model_copy(update={"broker_url": embedded_redis_url(settings.embedded_dir)})
    return settings


def create_app(settings: Settings) -> Celery:
    """The workers' Celery app: the shared configuration and the task modules. Recovery needs no beat
    schedule: every worker's main process takes its turn (``--beat`` stays for other periodic work)."""
    celery_app = make_celery(settings, settings.broker_url)
    celery_app.conf.include = ["workers.tasks"]
    return celery_app


settings = worker_settings()
app = create_app(settings)
runtime = WorkerRuntime(settings)
main_process = MaintenanceRuntime(settings)

# httpx logs every request URL at INFO; lookup URLs carry candidates' emails, which never reach a log.
logging.getLogger("httpx").setLevel(logging.WARNING)
logging.getLogger("httpcore").setLevel(logging.WARNING)


def _setup_logging(loglevel: object = None, **_: object) -> None:
    # Connected, Celery configures no logging of its own: its lines, ours and the tasks' go through one
    # redacted handler on stderr, JSON lines unless stderr is a terminal (shared.logs, GHX_LOG__*), at the
    # more verbose of --loglevel and GHX_LOG__LEVEL.
    configure_logging(settings, default_level=loglevel if isinstance(loglevel, int) else logging.INFO)


signals.setup_logging.connect(_setup_logging)


def _init_process(**_: object) -> None:
    runtime.start()


def _close_process(**_: object) -> None:
    runtime.stop()


def _start_main(**_: object) -> None:
    main_process.start()


def _stop_main(**_: object) -> None:
    main_process.stop()


# Connected by a plain call rather than as decorators: celery is untyped, and its decorator would erase
# these functions' types. Same registration (weak references to module-level functions, which live on).
signals.worker_process_init.connect(_init_process)
signals.worker_process_shutdown.connect(_close_process)
# The pacer and recovery run in the worker's main process (once per `ghexport worker`, whatever the pool),
# started once the pool is up, so no child inherits their threads or their connections.
signals.worker_ready.connect(_start_main)
signals.worker_shutdown.connect(_stop_main)


# Prometheus /metrics (shared.monitoring) on GHX_METRICS_PORT, served by the main process: every process of
# this worker added up when `ghexport worker` set PROMETHEUS_MULTIPROC_DIR, and the store's and broker's
# figures. A pool child that exits is marked dead, so its live gauges stop counting.
metrics_endpoint = MetricsEndpoint(settings, role="worker")


def _start_metrics(**_: object) -> None:
    metrics_endpoint.start_in_worker()


def _stop_metrics(**_: object) -> None:
    metrics_endpoint.stop()
    process_exits()


def _child_exits(**_: object) -> None:
    process_exits()


signals.worker_ready.connect(_start_metrics)
signals.worker_shutdown.connect(_stop_metrics)
signals.worker_process_shutdown.connect(_child_exits)
