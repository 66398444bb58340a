"""Thin Celery tasks: parse the message, call the plain export function, turn its outcome into ack or
retry. Registered under the stable names of :mod:`shared.queue.names`."""

from __future__ import annotations

import logging
import random

from pydantic import ValidationError

from shared.errors import UnavailableError
from shared.queue import names, recovery
from shared.queue.celery_app import BoundTask, bound_task, safe_countdown, task
from shared.queue.messages import ExportItemMessage
from shared.resources import translate_error
from workers.app import app, runtime
from workers.export import export_item
from workers.outcome import Finished, NotClaimed, Parked, RetryLater

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
        if isinstance(error, UnavailableError):
            deps.store.down(str(error))
            raise self.retry(countdown=UNAVAILABLE_RETRY_S + random.uniform(0.0, UNAVAILABLE_RETRY_S)) from None
        log.exception("export of item %s failed unexpectedly; retrying", msg.item_id)
        raise self.retry(countdown=UNEXPECTED_ERROR_RETRY_S) from None
    deps.store.up()
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
    """One recovery sweep now (:mod:`shared.queue.recovery`); every worker's main process also runs them
    on its own, so no schedule is needed."""
    res = runtime.resources()
    return recovery.sweep(res.celery, res.engine, res.limiter, res.settings, res.broker_redis).published
