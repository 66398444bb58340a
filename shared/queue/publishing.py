"""Publishing export tasks: one message per item, ids only, in bulk on one broker connection.

Used by the producer (new batches, operator retries) and by the workers' periodic recovery, so it lives
in ``shared``. Items are marked ``enqueued_at`` chunk by chunk after their messages left.
"""

from __future__ import annotations

from collections.abc import Sequence

from celery import Celery
from sqlalchemy.engine import Engine

from shared.queue import names
from shared.queue.messages import ExportItemMessage
from shared.store import publication as store_publication
from shared.store import rows


def publish(app: Celery, engine: Engine, item_ids: Sequence[int], *, chunk: int = rows.CHUNK) -> int:
    """Send one export task per item on a single broker connection; returns how many were sent.

    ``app`` is a sending-side Celery app (it sends by task name and imports no task code); each chunk of
    ``chunk`` items is stamped in the store (``enqueued_at``, one more publication) once its messages left.
    """
    if not item_ids:
        return 0
    with app.producer_or_acquire() as producer:
        for part in rows.chunks(item_ids, chunk):
            for item_id in part:
                app.send_task(
                    names.EXPORT_ITEM_TASK,
                    args=[ExportItemMessage(item_id=item_id).to_task_args()],
                    queue=names.EXPORT_QUEUE,
                    producer=producer,
                )
            store_publication.mark_published(engine, part)
    return len(item_ids)
