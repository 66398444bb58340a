"""The Celery app of the workers: ``celery -A workers.app worker`` (or ``ghexport worker``).

Celery loads this module by name, so the app exists at import; it is built from :class:`Settings` read
once here, and nothing else happens at import (no environment is written, no connection is opened). The
embedded broker is resolved into this module's own settings copy when ``GHX_BROKER_URL`` says
``embedded`` (``ghexport worker`` resolves it before starting Celery; plain ``celery -A workers.app``
lands here). Resources (HTTP client, Redis, limiter, database engine) are built once per worker process
after fork (``worker_process_init``) by :class:`~workers.runtime.WorkerRuntime` and closed at shutdown.
The worker's main process runs the pacer (:class:`~workers.runtime.PacerRuntime`, from ``worker_ready``
to ``worker_shutdown``), which releases items parked for their credential's budget.
"""

from __future__ import annotations

import logging

from celery import Celery, signals

from shared.queue import names
from shared.queue.celery_app import make_celery
from shared.settings import EMBEDDED, Settings
from workers.runtime import PacerRuntime, WorkerRuntime

log = logging.getLogger("ghexport.worker")


def worker_settings() -> Settings:
    """Settings from the environment, with an ``embedded`` broker resolved to its socket URL."""
    settings = Settings()
    if settings.broker_url == EMBEDDED:
        from shared.queue.embedded import embedded_redis_url

        settings = settings.model_copy(update={"broker_url": embedded_redis_url(settings.embedded_dir)})
    return settings


def create_app(settings: Settings) -> Celery:
    """The workers' Celery app: the shared configuration, the periodic recovery and the task modules."""
    celery_app = make_celery(settings, settings.broker_url)
    celery_app.conf.beat_schedule = {
        "recover-lost-items": {"task": names.RECOVER_TASK, "schedule": settings.export.requeue_after_s / 3},
    }
    celery_app.conf.include = ["workers.tasks"]
    return celery_app


settings = worker_settings()
app = create_app(settings)
runtime = WorkerRuntime(settings)
pacer = PacerRuntime(settings)

# httpx logs every request URL at INFO; lookup URLs carry candidates' emails, which never reach a log.
logging.getLogger("httpx").setLevel(logging.WARNING)
logging.getLogger("httpcore").setLevel(logging.WARNING)


def _init_process(**_: object) -> None:
    runtime.start()


def _close_process(**_: object) -> None:
    runtime.stop()


def _start_pacer(**_: object) -> None:
    pacer.start()


def _stop_pacer(**_: object) -> None:
    pacer.stop()


# Connected by a plain call rather than as decorators: celery is untyped, and its decorator would erase
# these functions' types. Same registration (weak references to module-level functions, which live on).
signals.worker_process_init.connect(_init_process)
signals.worker_process_shutdown.connect(_close_process)
# The pacer runs in the worker's main process (once per `ghexport worker`, whatever the pool), started
# once the pool is up, so no child inherits its thread or its connections.
signals.worker_ready.connect(_start_pacer)
signals.worker_shutdown.connect(_stop_pacer)
