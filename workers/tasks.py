"""Thin Celery tasks: parse the message, call the plain export function, turn its outcome into ack or
retry. Registered under the stable names of :mod:`shared.queue.names`."""

from __future__ import annotations

import logging
import random

from pydantic import ValidationError

from shared import metrics
from shared.errors import UnavailableError
from shared.queue import names, recovery
from shared.queue.celery_app import BoundTask, bound_task, safe_countdown, task
from shared.queue.messages import ExportItemMessage
from shared.resources import translate_error
from workers.app import app, runtime
from workers.export import export_item
from workers.outcome import Finished, NotClaimed, Outcome, Parked, RetryCause, RetryLater, attempt_fields, describe

log = logging.getLogger("ghexport.worker")

UNEXPECTED_ERROR_RETRY_S = 30.0
UNAVAILABLE_RETRY_S = 5.0
"""Wait before a task whose store (or Redis) was unreachable runs again (with up to as much jitter)."""


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
    except Exception as exc:
        # Never let one item crash the worker, and never ack a message before its result is saved: the
        # task is sent again. The store (or Redis) unreachable is said once per outage, not per task.
        error = translate_error(exc)
        metrics.count_export("unavailable" if isinstance(error, UnavailableError) else "error")
        if isinstance(error, UnavailableError):
            deps.store.down(str(error))
            later = RetryLater(UNAVAILABLE_RETRY_S + random.uniform(0.0, UNAVAILABLE_RETRY_S), "", "unavailable")
            log.debug("item %s: %s", msg.item_id, describe(later), extra=_fields(self, msg.item_id, later))
        else:
            later = RetryLater(UNEXPECTED_ERROR_RETRY_S, "", f"internal_error: {type(exc).__name__}")
            log.exception("item %s: %s", msg.item_id, describe(later), extra=_fields(self, msg.item_id, later))
        # throw=False, then raise from None: Flower shows the cause, never the text of the error being handled
        raise self.retry(countdown=later.countdown_s, exc=RetryCause(later.cause), throw=False) from None
    deps.store.up()
    metrics.count_export(outcome.status if isinstance(outcome, Finished) else type(outcome).__name__)
    # one line per attempt: ids and the outcome as JSON fields (docs/operations.md, "Logs")
    log.info("item %s: %s", msg.item_id, describe(outcome), extra=_fields(self, msg.item_id, outcome))
    if isinstance(outcome, RetryLater):
        countdown = safe_countdown(deps.settings, outcome.countdown_s)
        raise self.retry(countdown=countdown, exc=RetryCause(outcome.cause))
    if isinstance(outcome, NotClaimed):
        return "not-claimed"
    if isinstance(outcome, Parked):
        return "parked"
    assert isinstance(outcome, Finished)
    return outcome.status


def _fields(task: BoundTask, item_id: int, outcome: Outcome) -> dict[str, object]:
    """The per-attempt line's JSON fields (:func:`workers.outcome.attempt_fields`), with the Celery task id
    and retry count Flower shows for the same attempt."""
    return {**attempt_fields(item_id, outcome), "task_id": task.request.id, "task_retries": task.request.retries}


@task(app, name=names.RECOVER_TASK)
def recover_task() -> int:
    """One recovery sweep now (:mod:`shared.queue.recovery`); every worker's main process also runs them
    on its own, so no schedule is needed."""
    res = runtime.resources()
    return recovery.sweep(res.celery, res.engine, res.limiter, res.settings, res.broker_redis).published
