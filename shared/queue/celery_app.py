"""The Celery application shared by the producer (which sends by task name) and the workers.

Delivery is at least once: ``acks_late`` with ``task_reject_on_worker_lost`` re-delivers the message of a
worker killed mid-task, and the result store's claim with a lease makes a second run harmless. Every
countdown we ask for stays well below the broker's visibility timeout (:func:`safe_countdown`).

Celery ships no type information, so tasks are declared through :func:`task` and :func:`bound_task`, which
call ``app.task`` unchanged and keep each task's own signature visible to mypy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Concatenate, ParamSpec, Protocol, TypeVar

from celery import Celery
from kombu.entity import Queue  # where Queue is defined: the package re-exports it lazily, out of mypy's sight

from shared.queue import names
from shared.settings import Settings

COUNTDOWN_FRACTION_OF_VISIBILITY = 0.5
"""A retry countdown never exceeds this fraction of the visibility timeout (else Redis redelivers it)."""

P = ParamSpec("P")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)


class RegisteredTask(Protocol[P, R_co]):
    """A function registered as a Celery task: still callable with its own signature, and sendable.

    Celery ships no type information, so its ``app.task`` decorator would turn every task into ``Any``;
    :func:`task` and :func:`bound_task` give the result this type instead.
    """

    name: str

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R_co:
        """Run the task in this process (no broker)."""
        ...

    def delay(self, *args: P.args, **kwargs: P.kwargs) -> object:
        """Send the task with these arguments (the result handle is unused: results are ignored)."""
        ...


class TaskRequest(Protocol):
    """What a task reads of the message it runs for (``self.request``)."""

    id: str | None
    retries: int
    """How many times this task was retried before this run (0 on the first delivery)."""


class BoundTask(Protocol):
    """What a ``bind=True`` task uses of its first argument, the Celery ``Task`` it runs as."""

    request: TaskRequest

    def retry(
        self, *, countdown: float | None = None, exc: BaseException | None = None, throw: bool = True
    ) -> Exception:
        """Schedule a new attempt in ``countdown`` seconds. Celery raises the ``Retry`` itself unless
        ``throw=False``; raised inside an ``except`` block it then chains the exception being handled, whose
        text Flower would show: pass ``throw=False`` there and ``raise ... from None``. ``exc`` is what
        Flower and the worker's retry line show as the reason (``Retry in 5s: RetryCause('rate_limited')``)."""
        ...


def task(app: Celery, *, name: str, **options: object) -> Callable[[Callable[P, R]], RegisteredTask[P, R]]:
    """``@app.task(name=name, **options)``, typed: the task keeps the decorated function's signature."""
    register: Callable[[Callable[P, R]], RegisteredTask[P, R]] = app.task(name=name, **options)
    return register


def bound_task(
    app: Celery, *, name: str, **options: object
) -> Callable[[Callable[Concatenate[BoundTask, P], R]], RegisteredTask[P, R]]:
    """``@app.task(name=name, bind=True, **options)``, typed: the function gets its :class:`BoundTask` first."""
    register: Callable[[Callable[Concatenate[BoundTask, P], R]], RegisteredTask[P, R]] = app.task(
        name=name, bind=True, **options
    )
    return register


def make_celery(settings: Settings, broker_url: str) -> Celery:
    """A Celery app on ``broker_url`` configured for exports (dedicated queue, late acks, prefetch 1).

    Task events are on (sent by the producer's and the pacer's ``send_task``, and by every worker), so
    Flower (``ghexport flower``) sees each task from sent to done without enabling them at runtime. What
    it shows carries ids only: the ids-only message as arguments, the final status as result, a retry's
    machine-readable cause as its exception. Events are small fire-and-forget publishes (Redis ``PUBLISH``,
    dropped when nobody listens): docs/operations.md has the measured cost.
    """
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
        worker_send_task_events=True,
        task_send_sent_event=True,
        enable_utc=True,
    )
    return app


def safe_countdown(settings: Settings, seconds: float) -> float:
    """``seconds`` capped below the visibility timeout, never negative."""
    cap = settings.visibility_timeout_s * COUNTDOWN_FRACTION_OF_VISIBILITY
    return max(0.0, min(seconds, cap))
