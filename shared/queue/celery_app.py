"""The Celery application shared by the producer (which sends by task name) and the workers.

Delivery is at least once: ``acks_late`` with ``task_reject_on_worker_lost`` re-delivers the message of a
worker killed mid-task, and the result store's claim with a lease makes a second run harmless. Every
countdown we ask for stays well below the broker's visibility timeout (:func:`safe_countdown`).
"""

from __future__ import annotations

from celery import Celery
from kombu import Queue

from shared.queue import names
from shared.settings import Settings

COUNTDOWN_FRACTION_OF_VISIBILITY = 0.5
"""A retry countdown never exceeds this fraction of the visibility timeout (else Redis redelivers it)."""


def make_celery(settings: Settings, broker_url: str) -> Celery:
    """A Celery app on ``broker_url`` configured for exports (dedicated queue, late acks, prefetch 1)."""
    app = Celery("ghexport", broker=broker_url, set_as_current=False)
    transport_options = {"visibility_timeout": settings.visibility_timeout_s}
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_backend=None,
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        broker_connection_retry_on_startup=True,
        broker_transport_options=transport_options,
        task_default_queue=names.EXPORT_QUEUE,
        task_queues=[Queue(names.EXPORT_QUEUE)],
        task_routes={names.EXPORT_ITEM_TASK: {"queue": names.EXPORT_QUEUE}},
        worker_hijack_root_logger=False,
        enable_utc=True,
    )
    return app


def safe_countdown(settings: Settings, seconds: float) -> float:
    """``seconds`` capped below the visibility timeout, never negative."""
    cap = settings.visibility_timeout_s * COUNTDOWN_FRACTION_OF_VISIBILITY
    return max(0.0, min(seconds, cap))
