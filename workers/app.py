"""The Celery app of the workers: ``celery -A workers.app worker`` (or ``ghexport worker``).

Resources (HTTP client, Redis, limiter, database engine) are built once per worker process after fork
(``worker_process_init``) and closed at shutdown; never per task, never at import.
"""

from __future__ import annotations

import logging
import os

from celery import signals

from shared import names
from shared.celery_app import make_celery
from shared.settings import EMBEDDED, Settings

settings = Settings()
if settings.broker_url == EMBEDDED:
    # `ghexport worker` resolves this before starting Celery; plain `celery -A workers.app` lands here.
    from shared.embedded import embedded_redis_url

    os.environ["GHX_BROKER_URL"] = embedded_redis_url(settings.embedded_dir)
    settings = Settings()

app = make_celery(settings, settings.broker_url)
app.conf.beat_schedule = {
    "recover-lost-items": {"task": names.RECOVER_TASK, "schedule": settings.export.requeue_after_s / 3},
}
app.conf.include = ["workers.tasks"]

log = logging.getLogger("ghexport.worker")
# httpx logs every request URL at INFO; lookup URLs carry candidates' emails, which never reach a log.
logging.getLogger("httpx").setLevel(logging.WARNING)
logging.getLogger("httpcore").setLevel(logging.WARNING)


@signals.worker_process_init.connect
def _init_process(**_: object) -> None:
    from workers import runtime

    runtime.start(settings)


@signals.worker_process_shutdown.connect
def _close_process(**_: object) -> None:
    from workers import runtime

    runtime.stop()
