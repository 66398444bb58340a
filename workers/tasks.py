"""Thin Celery tasks: parse the message, call the plain export function, turn its outcome into ack or
retry. Registered under the stable names of :mod:`shared.queue.names`."""

from __future__ import annotations

import logging

from pydantic import ValidationError

from shared.queue import names
from shared.queue.celery_app import BoundTask, bound_task, safe_countdown, task
from shared.queue.messages import ExportItemMessage
from workers.app import app, runtime
from workers.export import export_item
from workers.outcome import Finished, NotClaimed, Parked, RetryLater

log = logging.getLogger("ghexport.worker")

UNEXPECTED_ERROR_RETRY_S = 30.0


@bound_task(app, name=names.EXPORT_ITEM_TASK, max_retries=None, acks_late=True)
def export_item_task(self: BoundTask, message: object) -> str:
    """Export one item; the message carries only its id (no PII, nothing secret in Flower)."""
    try:
        msg = ExportItemMessage.model_validate(message)
    except ValidationError as exc:
        log.error("dropping an unreadable export message: %s", exc.errors(include_input=False))
        return "invalid-message"
    deps = runtime.deps()
    try:
        outcome = export_item(deps, msg.item_id, msg.credit)
    except Exception:
        # A bug or the store unreachable: the item keeps its lease and `recover` picks it up if this
        # retry message is lost too. Never let one item crash the worker.
        log.exception("export of item %s failed unexpectedly; retrying", msg.item_id)
        raise self.retry(countdown=UNEXPECTED_ERROR_RETRY_S) from None
    if isinstance(outcome, RetryLater):
        log.info("item %s: retry in %.0fs (%s)", msg.item_id, outcome.countdown_s, outcome.cause)
        raise self.retry(countdown=safe_countdown(deps.settings, outcome.countdown_s))
    if isinstance(outcome, NotClaimed):
        log.info("item %s: not claimed (finished, or held by another worker)", msg.item_id)
        return "not-claimed"
    if isinstance(outcome, Parked):
        log.info("item %s: parked until its credential has budget", msg.item_id)
        return "parked"
    assert isinstance(outcome, Finished)
    log.info("item %s: %s", msg.item_id, outcome.status)
    return outcome.status


@task(app, name=names.RECOVER_TASK)
def recover_task() -> int:
    """Re-enqueue items the broker lost (still ``queued`` long after publishing, or stale ``sending``)."""
    res = runtime.resources()
    n = res.publish(res.lost_items(res.settings.export.requeue_after_s))
    if n:
        log.warning("re-enqueued %d lost items", n)
    return n
