"""Prometheus metrics of greenhouse-export (prometheus-client; multiprocess mode for prefork workers).

The figures recorded where things happen, one module-level object each (``docs/metrics.md`` lists every
metric, its labels and its meaning): Harvest requests by route *template* and status code, their duration,
the requests in flight and the 429s (:mod:`shared.harvest.transport`); the limiter's waits, throttles,
parks and releases (:mod:`shared.harvest.limiter`); the export tasks' outcomes (``workers/tasks.py``).
What is read from the store and the broker at scrape time, and the endpoint itself, live in
:mod:`shared.monitoring`.

**Multiprocess mode.** Celery's prefork pool runs tasks in child processes, each with its own memory.
prometheus-client then keeps every process's values in memory-mapped files of one directory, named by the
environment variable :data:`MULTIPROC_ENV` (prometheus-client's own, hence read here and nowhere else),
and the serving process adds them up (``MultiProcessCollector``). The variable must be set before
prometheus-client is imported by a process that records: ``ghexport worker`` creates a directory and sets
it for its Celery child (:func:`multiprocess_env`); a gauge says how to combine processes
(``multiprocess_mode``); a child that exits is marked dead (:func:`mark_dead`) so its live gauges stop
counting, and the endpoint drops the live gauges of processes that died without saying so
(:func:`sweep_dead_processes`). Without the variable (tests, commands) every figure is kept in the process,
as prometheus-client does by default.

Labels are bounded: a route is a template (``/v3/candidates/{id}``: ids, emails and query values never
reach a label) and at most :data:`MAX_ROUTES` of them are told apart; no item, batch or credential id is a
label. This is the bottom layer of ``shared``: it imports only prometheus-client.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.multiprocess import mark_process_dead

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
"""prometheus-client's variable: the directory of the per-process files (multiprocess mode when set)."""

MAX_ROUTES = 100
"""Distinct route templates told apart per process; later ones are counted under :data:`OTHER_ROUTE`."""
MAX_SEGMENTS = 6
OTHER_ROUTE = "other"
ID = "{id}"

EXPORT_OUTCOMES = ("exported", "skipped", "failed", "retry_later", "parked", "not_claimed", "unavailable", "error")
"""Every ``outcome`` label of :data:`EXPORT_RUNS`: a final status, or what the task did instead."""
PARK_STEPS = ("core", "parts")

# --- Harvest requests (shared/harvest/transport.py) ------------------------------------------------------

HARVEST_REQUESTS = Counter(
    "ghx_harvest_requests",
    "Harvest API requests sent, by method, route template and HTTP status code (timeout / connection_error "
    "when no answer came).",
    ["method", "route", "code"],
)
HARVEST_REQUEST_SECONDS = Histogram(
    "ghx_harvest_request_duration_seconds",
    "Time from sending a Harvest API request to its answer (or its transport failure).",
    ["method", "route"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
HARVEST_RATE_LIMITED = Counter("ghx_harvest_rate_limited", "Harvest API answers with HTTP 429 (rate limited).")
HARVEST_IN_FLIGHT = Gauge(
    "ghx_harvest_requests_in_flight",
    "Harvest API requests sent and not answered yet, summed over the live processes.",
    multiprocess_mode="livesum",
)

# --- the shared limiter (shared/harvest/limiter.py) ------------------------------------------------------

LIMITER_WAIT_SECONDS = Histogram(
    "ghx_limiter_wait_seconds",
    "Time a send waited for its credential's rate-limit budget before it went (0: none).",
    buckets=(0.0, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0),
)
LIMITER_THROTTLED = Counter(
    "ghx_limiter_throttled",
    "Sends refused by the limiter because the budget wait would be too long (a worker parks the item).",
)
ITEMS_PARKED = Counter(
    "ghx_items_parked",
    "Items parked in their credential's queue to wait for budget, by step (core record or parts).",
    ["step"],
)
ITEMS_RELEASED = Counter("ghx_items_released", "Parked items a pacer released to the broker (their turn came).")

# --- export tasks (workers/tasks.py) ---------------------------------------------------------------------

EXPORT_RUNS = Counter(
    "ghx_export_outcomes",
    "Export task runs by outcome: a final status (exported, skipped, failed) or what happened instead.",
    ["outcome"],
)

# --- callbacks to the platform (workers/callbacks.py) -----------------------------------------------------

CALLBACK_FAILURE_REASONS = ("http_4xx", "http_5xx", "http_other", "timeout", "connection_error", "not_configured")
"""Every ``reason`` label of :data:`CALLBACK_FAILURES`: the receiver's answer by class, or why none came."""

CALLBACKS_DELIVERED = Counter("ghx_callbacks_delivered", "Callback events a tenant's receiver took (a 2xx answer).")
CALLBACK_FAILURES = Counter(
    "ghx_callback_failures",
    "Callback delivery attempts that failed, by reason (the event is tried again later, or dead).",
    ["reason"],
)
CALLBACKS_DEAD = Counter("ghx_callbacks_dead", "Callback events dead-lettered: every attempt of the schedule failed.")
CALLBACK_SECONDS = Histogram(
    "ghx_callback_duration_seconds",
    "Time from sending a callback to its answer (or its failure).",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0),
)

# Children made at once: each series shows (at 0) before its first event, in every mode.
for _reason in CALLBACK_FAILURE_REASONS:
    CALLBACK_FAILURES.labels(reason=_reason)
for _outcome in EXPORT_OUTCOMES:
    EXPORT_RUNS.labels(outcome=_outcome)
for _step in PARK_STEPS:
    ITEMS_PARKED.labels(step=_step)

_WORD = re.compile(r"[a-z][a-z_]{0,63}")
_VERSION = re.compile(r"v[0-9]{1,2}")
_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")
_routes: set[str] = set()
_routes_lock = threading.Lock()


def route_template(path: str) -> str:
    """The route of a request path: lowercase words (and a leading ``v3``) kept, every other segment (an
    id, an email, anything with a digit or a dot) replaced by ``{id}``; the query is dropped.

    ``/v3/candidates/123/merge?x=1`` -> ``/v3/candidates/{id}/merge``.
    """
    path = path.split("?", 1)[0].split("#", 1)[0]
    parts: list[str] = []
    for segment in (s for s in path.split("/") if s):
        if (not parts and _VERSION.fullmatch(segment)) or _WORD.fullmatch(segment):
            parts.append(segment)
        else:
            parts.append(ID)
    if len(parts) > MAX_SEGMENTS:
        parts = [*parts[:MAX_SEGMENTS], "..."]
    return "/" + "/".join(parts)


def route_label(path: str) -> str:
    """:func:`route_template`, or :data:`OTHER_ROUTE` once this process has seen :data:`MAX_ROUTES`."""
    route = route_template(path)
    with _routes_lock:
        if route in _routes:
            return route
        if len(_routes) >= MAX_ROUTES:
            return OTHER_ROUTE
        _routes.add(route)
        return route


def observe_request(method: str, path: str, code: int | str, seconds: float) -> None:
    """Count one Harvest API request to ``path`` answered ``code`` after ``seconds``."""
    route = route_label(path)
    method = method.upper()
    HARVEST_REQUESTS.labels(method=method, route=route, code=str(code)).inc()
    HARVEST_REQUEST_SECONDS.labels(method=method, route=route).observe(max(0.0, seconds))
    if code == 429:
        HARVEST_RATE_LIMITED.inc()


@contextmanager
def in_flight() -> Iterator[None]:
    """Count a request in flight for the duration of the block."""
    HARVEST_IN_FLIGHT.inc()
    try:
        yield
    finally:
        HARVEST_IN_FLIGHT.dec()


def count_export(outcome: str) -> None:
    """Count one export task run: ``outcome`` is a final status or an outcome's class name
    (``RetryLater`` -> ``retry_later``); anything unknown counts as ``error``."""
    label = _CAMEL.sub("_", outcome).lower()
    EXPORT_RUNS.labels(outcome=label if label in EXPORT_OUTCOMES else "error").inc()


def count_parked(count: int, *, enrichment: bool) -> None:
    """Count ``count`` items parked for their credential's budget (``enrichment``: for their parts)."""
    if count > 0:
        ITEMS_PARKED.labels(step=PARK_STEPS[1] if enrichment else PARK_STEPS[0]).inc(count)


def observe_callback(seconds: float, failure: str | None = None, *, dead: bool = False) -> None:
    """Count one callback attempt that took ``seconds``: delivered when ``failure`` is None, else failed for that
    reason (one of :data:`CALLBACK_FAILURE_REASONS`; anything else counts as ``http_other``), and ``dead``
    when it was the event's last attempt."""
    CALLBACK_SECONDS.observe(max(0.0, seconds))
    if failure is None:
        CALLBACKS_DELIVERED.inc()
        return
    CALLBACK_FAILURES.labels(reason=failure if failure in CALLBACK_FAILURE_REASONS else "http_other").inc()
    if dead:
        CALLBACKS_DEAD.inc()


# --- multiprocess mode -----------------------------------------------------------------------------------


def multiprocess_dir() -> str | None:
    """The directory of the per-process files when this process runs in multiprocess mode, else None."""
    return os.environ.get(MULTIPROC_ENV) or None


@contextmanager
def multiprocess_env(enabled: bool) -> Iterator[str | None]:
    """For the block, :data:`MULTIPROC_ENV` names a directory that the child processes started within
    inherit (``ghexport worker`` around its Celery child); yields it, or None when not ``enabled``.

    A directory the operator set already is used as is (created if missing, never emptied). Otherwise a
    fresh temporary one is made, and removed with the variable when the block ends.
    """
    given = multiprocess_dir()
    if given is not None:
        os.makedirs(given, exist_ok=True)
        yield given
        return
    if not enabled:
        yield None
        return
    path = tempfile.mkdtemp(prefix="ghexport-metrics-")
    os.environ[MULTIPROC_ENV] = path
    try:
        yield path
    finally:
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(path, ignore_errors=True)


def mark_dead(pid: int) -> None:
    """Process ``pid`` exits: its live gauges stop counting (its counters and histograms are kept)."""
    path = multiprocess_dir()
    if path is not None:
        mark_process_dead(pid, path)  # type: ignore[no-untyped-call]  # untyped library function


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def sweep_dead_processes(path: str) -> list[int]:
    """Mark dead every process with live-gauge files in ``path`` that no longer runs (a pool child killed
    without its shutdown signal); returns their pids."""
    dead: set[int] = set()
    for name in glob.glob(os.path.join(path, "gauge_live*_*.db")):
        tail = os.path.basename(name).rsplit("_", 1)[-1].removesuffix(".db")
        if tail.isdigit() and int(tail) != os.getpid() and not _alive(int(tail)):
            dead.add(int(tail))
    for pid in dead:
        mark_process_dead(pid, path)  # type: ignore[no-untyped-call]  # untyped library function
    return sorted(dead)
