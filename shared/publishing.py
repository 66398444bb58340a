"""Publishing export tasks: one message per item, ids only, in bulk on one broker connection.

Used by the producer (new batches, operator retries) and by the workers' periodic recovery, so it lives
in ``shared``. Items are marked ``enqueued_at`` chunk by chunk after their messages left.
"""

from __future__ import annotations

from collections.abc import Sequence

from celery import Celery

from shared import names
from shared.celery_app import make_celery
from shared.messages import ExportItemMessage
from shared.resources import Resources
from shared.store import repo


def celery_for(res: Resources) -> Celery:
    """The process's sending-side Celery app (sends by task name; imports no task code)."""
    app = res.__dict__.get("_celery")
    if app is None:
        app = make_celery(res.settings, res.broker_url)
        res.__dict__["_celery"] = app
    return app


def publish(res: Resources, item_ids: Sequence[int], app: Celery | None = None) -> int:
    """Send one export task per item on a single broker connection; returns how many were sent."""
    if not item_ids:
        return 0
    app = app or celery_for(res)
    with app.producer_or_acquire() as producer:
        for part in repo.chunks(item_ids, res.settings.export.publish_chunk):
            for item_id in part:
                app.send_task(
                    names.EXPORT_ITEM_TASK,
                    args=[ExportItemMessage(item_id=item_id).to_task_args()],
                    queue=names.EXPORT_QUEUE,
                    producer=producer,
                )
            repo.mark_enqueued(res.engine, part)
    return len(item_ids)
