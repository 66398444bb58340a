"""Throughput benchmark: how well the exporter uses a Harvest rate limit, end to end, against a naive baseline.

    .venv/bin/python -m bench.throughput [--quick] [--scenario utilisation,requeues,visible,fairness]
        [--candidates 300] [--windows 10,30] [--limit 50] [--latency-ms 0] [--modes ours,baseline]
        [--workers 2] [--concurrency 8] [--pool POOL] [--worker-arg ARG ...] [--beat]
        [--fairness-a 2000] [--fairness-b 15] [--fairness-window 30] [--json-out FILE] [--log-dir DIR]
    .venv/bin/python -m bench.throughput --scenario customers [--quick] [--customers 50]
        [--customer-minutes 3.5 | --customer-candidates N] [--customer-limits 20,75] [--customer-windows 10,30]
        [--customer-latency-ms 200] [--customer-worker threads:64]
    .venv/bin/python -m bench.throughput --scenario pools [--quick] [--pools prefork:8,threads:32,threads:64]
        [--pools-customers 20] [--pools-minutes 2]

Every run is the real system on real services, started as an operator would: the Harvest sandbox as a
subprocess (``ghexport sandbox --json --port 0 --rate-limit LIMIT --window W [--latency-ms L]``, loopback
HTTP), Redis at 127.0.0.1:6379 database 13 (broker, shared limiter and caches; flushed at the start of every
run), a fresh PostgreSQL database per run (``ghx_bench_<pid>_<n>``, trust auth as ``postgres`` or ``root``,
dropped at the end of the run), and ``--workers`` ``ghexport worker --concurrency C --loglevel INFO``
processes (README, "Workers"). Only what must point at those services is set (``GHX_BROKER_URL``,
``GHX_DATABASE_URL``, ``GHX_HARVEST_URL``, ``GHX_HARVEST_TOKEN_URL``, ``GHX_SECRET_KEY``, ``GHX_EMBEDDED_DIR``);
every other ``GHX_*`` variable is removed from the children's environment, so the project's settings keep
their defaults (no ``GHX_LIMITER__*`` for "ours"). A run: start sandbox and workers, ``ghexport connect`` the
sandbox's seeded credential, wait ``--settle`` seconds (default: the longer of the sandbox's window and the
limiter's default window, so neither remembers connect's ~30 probing requests and the export starts on a full
budget, as it would minutes after connecting), then ``ghexport export --job <open job> --json`` of generated
profiles (``producer.demo.sample_profiles``) and poll the store until no item is ``queued`` or ``sending``.
All processes of a run are stopped (SIGTERM, then SIGKILL to whatever is left of their process group) when it
ends, fails or is interrupted (Ctrl-C, SIGTERM). Logs stay in ``--log-dir`` (a new temporary directory by
default; printed at the end).

Modes, side by side in one invocation:

- ``ours``: the project as shipped: its shared per-credential limiter in Redis, defaults untouched.
- ``baseline``: what a new user would do without our limiter: ``GHX_LIMITER__ENABLED=false`` for every command
  and, once the workers are up, ``celery -A workers.app control rate_limit ghexport.export_item RATE``
  (checked: every worker must log "New rate limit"). RATE is the naive choice: the limit divided by the
  window, divided by the requests one candidate costs (``--baseline-cost``, default computed from the profiles:
  one email lookup + the candidate create + one request per education, employment and tag + the note + the
  resume upload (resumes are on by default: ``POST /v3/attachments``) = 7 for the generated profiles), e.g.
  50 / 10 s / 7 = ``42.86/m``, 50 / 30 s / 7 = ``14.29/m``. Celery applies a task rate limit per worker
  instance (each ``ghexport worker``, whatever its concurrency), so with 2 workers the cluster runs at twice
  that rate: that is the naive user's mistake being measured, not a bench bug.

Figures (scenarios ``utilisation``, ``requeues`` and ``visible`` come from the same export runs, one per mode
and window; ``fairness`` has runs of its own):

1. utilisation = accepted / allowed, where
   accepted = requests of the export the sandbox's rate limiter admitted (every ``/v3`` answer but 429 and 401,
   from ``/_sandbox/stats``, counted from the end of the settle to the end of the batch; ``POST /token`` is not
   rate limited and not counted);
   run = first to last accepted request as the sandbox saw it: the first from a poll of ``/_sandbox/stats``
   every ``--poll`` s (a change is placed midway between the two readings around it), the last from the
   sandbox's own ``credentials.<client id>.last_accepted_at`` when it reports it (else the poll);
   allowed = limit x run / window.
   A client that fills every window exactly also gets the first window's burst, so it reaches
   1 + window / run (e.g. 1.03 for a 300 s run of 10 s windows); 1.0 is "no budget left unused".
   429s: refused requests during the export; "after the first window": those the poll saw later than one
   window after the first accepted request (a limiter may need one window to learn; after that, none should).
2. task deliveries per item = Celery's own ``Task ghexport.export_item[...] received`` lines / items (every
   task message a worker took, countdown retries included: Celery receives an ETA message at once).
   re-queues per item = task deliveries per item - 1. The first delivery of an item is the enqueue itself
   (the pacer's first release); a second is the parts step, released after the core records (the item
   made its record, its credential still had core records parked, so its parts were parked behind them:
   expected by design, at most one per item); any further one is a re-queue proper: a countdown retry
   (``item <id>: retry in``, or an unexpected failure), a park after a 429 or an unexpected throttle, a
   redelivery. Printed as "deliveries - 1 (parts P + further F)": P = items with at least one ``item <id>:
   parked`` line / items (exact when no 429 and no throttle parked an item; otherwise an item parked once
   in its core step whose parts then ran at once counts as a parts step), F = the rest; with the most
   further deliveries of one item and how many items had any (each item's deliveries counted from the one
   outcome line a worker logs per delivery), the countdown retries per item (part of F), and parked per
   item (``item <id>: parked`` lines / items: each is released again by a pacer, one delivery more).
   Harvest requests per item = every ``/v3`` request of the export (429s included) / items, and accepted
   ones / items. Floor = (writes + one email lookup per candidate) / items:
   writes = ``POST /v3/...`` answers with a 2xx (each made a record that had to be made: the candidate with
   its application, educations, employments, applied tags, the note, the resume attachment, and a tag created
   once), and a person is looked up by email once before being created (the duplicate check); anything above
   the floor is overhead (lookup lists, readability checks, retries, repeated lookups).
3. fairness (``ours`` only): customer B's ``--fairness-b`` candidates exported alone, then, in a fresh system,
   right behind customer A's ``--fairness-a`` candidates on the same workers (B's ``ghexport export`` starts
   as soon as A's returns), B with its own credential (``POST /_sandbox/credentials``, connected as a second
   connection; each credential has its own sandbox budget). B's time = from the start of B's ``ghexport
   export`` command to B's batch end (latest ``updated_at`` of its items in the store). Printed: B alone,
   B behind A, and their ratio (1.0 = A's backlog costs B nothing). A is left unfinished: its workers are
   stopped once B ends (or after ``--fairness-timeout``, then B's time is a lower bound, marked ``>=``).
4. time to visible (300-candidate runs): when the batch's last candidate record was created at the sandbox
   (its ``created_at`` in ``/_sandbox/state``), measured from the first accepted request of the export, over
   the physical minimum = core requests / allowed rate = (one lookup per email + one create, per candidate) x
   window / limit: how fast every person could be in Greenhouse if the core requests went first (not given
   when some candidate never appeared). Also the number of candidate records at the sandbox (must equal the
   candidates: no duplicates).

5. many customers (``--scenario customers``, :mod:`bench.customers` has the details): ``--customers`` (50)
   connections, each on a sandbox credential of its own with its own limit and window (customer k of n:
   ``round(20 + 55 k / (n - 1))`` requests per window, window 10 s for even k and 30 s for odd k: summed
   limits 158 req/s for 50), sandbox latency 200 ms, ONE ``ghexport worker`` (``--customer-worker POOL:N``,
   default ``threads:64``). Each customer exports generated profiles sized for ``--customer-minutes`` (3.5)
   of work at its full rate (7 requests per candidate, the resume included), or ``--customer-candidates N``
   each. Connect (in this process, ``shared.connections.service.connect``, all in parallel), record and park
   every batch (``producer.api.export_profiles``), wait ``--settle`` (31 s: no window still holds connect's
   requests), then start the worker: every credential starts within one pacer tick. Wait for every batch.
   Figure = summed accepted rate / summed limits over the steady interval [T0, T1]:
   first_i = credential i's first accepted request of the export (poll of ``/_sandbox/stats`` per
   credential every 0.25 s); T0 = max_i (first_i + window_i): every credential has sent its first request
   and is past its first window (start-up burst, learning); T1 = the first credential to run out of work:
   min, over credentials whose batch finished, of their last accepted request (the sandbox's exact
   ``last_accepted_at``), else the end of the observation ("cut"); figure = sum_i (accepted_i(T1) -
   accepted_i(T0)) / sum_i (limit_i x (T1 - T0) / window_i), goal >= 0.9. Also: the same from max_i first_i,
   per credential (min with its name, median, max; starving: below 0.8 x the median), 429s in the export and in
   [T0, T1] with the credentials that got them, batch ends, the worker's CPU seconds in [T0, T1]
   (``/proc/<pid>/stat`` of its process group) and per 1000 accepted requests, the machine's busy cores
   and load (another engineer's tests count there), deliveries as in 2.
6. pools (``--scenario pools``): scenario 5 with ``--pools-customers`` (20) customers and ``--pools-minutes``
   (2) of work each, once per ``--pools`` entry (default prefork:8, threads:32, threads:64; ``KxPOOL:N`` runs
   K worker processes on the host, e.g. 2xthreads:32), each in a fresh system and observed until its first
   batch finishes (or 1.5x the plan, "cut"): the figures side by side and a one-line verdict (the least
   worker CPU per request among the pools within 0.03 of the best figure, at or above the goal when any is).

A wait for a batch gives up after ``--timeout`` (default: 10x the time the sandbox needs at its full rate, at
least 10 min) or after ``--stall`` s with neither a change in the batch's items nor a request accepted by the
sandbox (default: 4 windows, at least 120 s); the run's figures then cover what happened and it is marked
INCOMPLETE.

``--quick`` checks the harness in a few minutes: 60 candidates, window 10 s only, fairness with A = 300 and a
10 s window; customers and pools with 10 customers and 1.5 minutes of work each. Exit status: 0 when every run
finished its batch, 1 when a run failed or timed out, 130 on Ctrl-C (partial results are still printed and
written).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from sqlalchemy.engine import Engine

from bench import customers as cu
from bench import harness as h
from shared.connections.crypto import generate_key
from shared.harvest.sandbox import seed
from shared.profiles.model import Profile
from shared.queue import names
from shared.settings import LimiterSettings
from shared.store.db import make_engine

MODES = ("ours", "baseline")
SCENARIOS = ("utilisation", "requeues", "visible", "fairness", "customers", "pools")
DEFAULT_SCENARIOS = ("utilisation", "requeues", "visible", "fairness")
EXPORT_SCENARIOS = frozenset({"utilisation", "requeues", "visible"})
B_CLIENT_ID = "bench-customer-b"
B_CLIENT_SECRET = "bench-customer-b-secret"  # a sandbox credential made for this run, not a real secret


@dataclass(frozen=True)
class Config:
    """What one invocation measures (the command line, resolved)."""

    scenarios: tuple[str, ...]
    modes: tuple[str, ...]
    candidates: int
    windows: tuple[float, ...]
    limit: int
    latency_ms: float
    workers: int
    concurrency: int
    pool: str | None
    worker_args: tuple[str, ...]
    beat: bool
    baseline_cost: int | None
    fairness_a: int
    fairness_b: int
    fairness_window: float
    fairness_timeout_s: float
    batch_timeout_s: float | None
    stall_s: float | None
    settle_s: float | None
    poll_s: float
    redis_url: str
    pg_host: str
    pg_port: int
    pg_users: tuple[str, ...]
    log_dir: Path
    json_out: Path | None
    quick: bool
    customers: cu.CustomersConfig
    customer_worker: cu.WorkerSpec
    pools: tuple[cu.WorkerSpec, ...]
    pools_minutes: float
    pools_customers: int

    @property
    def services(self) -> cu.Services:
        return cu.Services(self.redis_url, self.pg_host, self.pg_port, self.pg_users)

    def settle(self, window_s: float) -> float:
        if self.settle_s is not None:
            return self.settle_s
        return max(window_s, LimiterSettings().window_s) + 1.0

    def stall(self, window_s: float) -> float:
        """Give up on a batch after this long with no item change and no request accepted by the sandbox."""
        return self.stall_s if self.stall_s is not None else max(120.0, 4 * window_s)

    def timeout(self, n: int, window_s: float, cost: int) -> float:
        """Per batch: the given timeout, else 10x the time the sandbox needs at its full rate (at least 10 min)."""
        if self.batch_timeout_s is not None:
            return self.batch_timeout_s
        return max(600.0, 10.0 * n * cost * window_s / self.limit)


@dataclass
class ExportRun:
    """The figures of one export run (one mode, one window): see the module docstring for each definition."""

    mode: str
    window_s: float
    limit: int
    candidates: int
    log_dir: str
    celery_rate_limit: str | None = None
    batch_id: str | None = None
    done: bool = False
    error: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    finished: int = 0
    export_command_s: float | None = None
    batch_wall_s: float | None = None
    """From the start of ``ghexport export`` to the batch's end."""
    first_accepted_at: float | None = None
    last_accepted_at: float | None = None
    last_accepted_source: str | None = None
    run_s: float | None = None
    accepted: int | None = None
    allowed: float | None = None
    utilisation: float | None = None
    rate_limited: int | None = None
    rate_limited_after_first_window: int | None = None
    peak_in_window: int | None = None
    requeues: int | None = None
    """Task deliveries beyond each item's first: Celery ``received`` lines - items (``harness.Deliveries``)."""
    requeues_per_item: float | None = None
    """Task deliveries per item - 1: the parts step (expected, at most 1) plus the further re-queues."""
    parts_steps_per_item: float | None = None
    further_per_item: float | None = None
    """Deliveries beyond the enqueue and the parts step, per item: the re-queues proper."""
    requeues_max: int | None = None
    """Most further deliveries of one item."""
    items_requeued: int | None = None
    """Items with at least one further delivery."""
    retries_per_item: float | None = None
    """Countdown retries (``item <id>: retry in``, unexpected failures) per item; part of the further ones."""
    parked: int | None = None
    """``item <id>: parked`` lines of the batch's items (each released again by a pacer: one more delivery)."""
    parked_per_item: float | None = None
    deliveries_per_item: float | None = None
    """Celery's ``Task ghexport.export_item[...] received`` lines / items: task messages taken per item."""
    requests: int | None = None
    requests_per_item: float | None = None
    accepted_per_item: float | None = None
    token_requests: int | None = None
    writes: int | None = None
    floor_per_item: float | None = None
    requests_by_route: dict[str, dict[str, int]] = field(default_factory=dict)
    candidate_records: int | None = None
    last_candidate_at: float | None = None
    time_to_visible_s: float | None = None
    core_requests: int | None = None
    physical_min_s: float | None = None
    visible_ratio: float | None = None


@dataclass
class FairnessRun:
    """Customer B's time alone and right behind customer A (``ours``)."""

    window_s: float
    limit: int
    a_candidates: int
    b_candidates: int
    log_dir: str
    b_alone_s: float | None = None
    b_alone_done: bool = False
    b_behind_s: float | None = None
    b_behind_done: bool = False
    """False: B did not end within the timeout; ``b_behind_s`` is then a lower bound."""
    ratio: float | None = None
    a_finished_when_b_ended: int | None = None
    a_export_command_s: float | None = None
    error: str | None = None


# --- helpers ------------------------------------------------------------------------------------------


def log(msg: str) -> None:
    """Progress on stderr (the table goes to stdout)."""
    sys.stderr.write(f"[{time.strftime('%H:%M:%S')}] {msg}\n")
    sys.stderr.flush()


def naive_cost(profiles: Sequence[Profile]) -> int:
    """Requests a user would count for one candidate: an email lookup, the create (with its application), one
    per education, employment and tag, the note, and the resume upload (a connection sends one by default;
    the bench connects with the defaults): the mean over ``profiles``, rounded up."""
    total = 0
    for p in profiles:
        total += 1 + 1 + len(p.educations) + len(p.employments) + len(p.tags) + 1 + 1
    return max(1, math.ceil(total / max(1, len(profiles))))


def core_requests(profiles: Sequence[Profile]) -> int:
    """The requests that put every person in Greenhouse: one lookup per email, one create, per candidate."""
    return sum(len(p.emails) + 1 for p in profiles)


def celery_rate(limit: int, window_s: float, cost: int) -> str:
    """The naive per-task rate limit: limit / window / cost, per minute (Celery accepts decimals)."""
    per_min = limit * 60.0 / window_s / cost
    text = f"{per_min:.2f}".rstrip("0").rstrip(".")
    return f"{text}/m"


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


@contextmanager
def system(
    cfg: Config, run_dir: Path, db_name: str, *, window_s: float, overrides: dict[str, str] | None = None
) -> Iterator[tuple[h.System, h.Workers, Engine]]:
    """A fresh system for one run: Redis flushed, a new database, the sandbox, the workers; all stopped after."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        h.flush_redis(cfg.redis_url)
        db_url = stack.enter_context(fresh_database(cfg, db_name))
        sandbox = stack.enter_context(
            h.sandbox_process(
                run_dir, rate_limit=cfg.limit, window_s=window_s, latency_ms=cfg.latency_ms, env=h.clean_env({})
            )
        )
        sysm = h.System(run_dir, cfg.redis_url, db_url, sandbox, generate_key(), overrides or {})
        workers = stack.enter_context(
            h.running_workers(
                sysm, count=cfg.workers, concurrency=cfg.concurrency, pool=cfg.pool, loglevel="INFO",
                beat=cfg.beat, extra_args=cfg.worker_args,
            )
        )  # fmt: skip
        engine = make_engine(db_url)
        stack.callback(engine.dispose)
        yield sysm, workers, engine


def fresh_database(cfg: Config, name: str) -> AbstractContextManager[str]:
    return h.fresh_database(name, host=cfg.pg_host, port=cfg.pg_port, users=cfg.pg_users)


def progress_logger(label: str, total: int, every_s: float = 30.0) -> Callable[[dict[str, int]], None]:
    last = [time.monotonic()]

    def report(counts: dict[str, int]) -> None:
        if time.monotonic() - last[0] >= every_s:
            last[0] = time.monotonic()
            log(f"{label}: " + ", ".join(f"{s} {n}" for s, n in sorted(counts.items())) + f" (of {total})")

    return report


# --- scenario runs ------------------------------------------------------------------------------------


def export_run(cfg: Config, mode: str, window_s: float, db_name: str) -> ExportRun:
    """One export of ``cfg.candidates`` generated profiles in ``mode``, sandbox window ``window_s``."""
    label = f"{mode} window {window_s:g}s"
    run_dir = cfg.log_dir / f"{mode}-w{window_s:g}"
    result = ExportRun(mode, window_s, cfg.limit, cfg.candidates, str(run_dir))
    run_dir.mkdir(parents=True, exist_ok=True)
    profiles = h.write_profiles(run_dir / "profiles.jsonl", cfg.candidates, prefix=f"bench-{mode}")
    cost = cfg.baseline_cost or naive_cost(profiles)
    overrides = {"GHX_LIMITER__ENABLED": "false"} if mode == "baseline" else {}
    log(f"{label}: starting sandbox, database, {cfg.workers} workers")
    try:
        with system(cfg, run_dir, db_name, window_s=window_s, overrides=overrides) as (sysm, workers, engine):
            sandbox = sysm.sandbox
            sysm.connect("a", sandbox.client_id, sandbox.client_secret, sandbox.user_email)
            if mode == "baseline":
                result.celery_rate_limit = celery_rate(cfg.limit, window_s, cost)
                set_celery_rate_limit(sysm, workers, result.celery_rate_limit)
            settle = cfg.settle(window_s)
            log(f"{label}: connected; settling {settle:.0f}s")
            time.sleep(settle)
            with h.StatsPoller(sandbox, cfg.poll_s) as poller:
                before = sandbox.stats()
                log(f"{label}: exporting {cfg.candidates} candidates")
                started = sysm.export("a", run_dir / "profiles.jsonl", job_id=seed.OPEN_JOB_ID)
                result.batch_id = started.batch_id
                result.export_command_s = started.command_returned - started.command_started
                end = h.wait_for_batch(
                    engine, started.batch_id, timeout_s=cfg.timeout(cfg.candidates, window_s, cost),
                    stall_s=cfg.stall(window_s), activity=lambda: poller.latest.accepted,
                    check=workers.check_alive, progress=progress_logger(label, cfg.candidates),
                )  # fmt: skip
                time.sleep(max(1.0, 5 * cfg.poll_s))  # let the poll see the last answers
            if poller.error is not None:
                raise h.HarnessError(f"the sandbox's stats could not be read: {poller.error!r}")
            after = sandbox.stats()
            state = sandbox.state()
            result.done, result.counts, result.finished = end.done, end.counts, h.finished(end.counts)
            result.batch_wall_s = end.end - started.command_started
            if not end.done:
                result.error = f"batch unfinished, wait gave up ({end.gave_up}): {end.counts}"
            measure(result, poller, before, after, state, workers, end, started, profiles, sandbox)
            log(f"{label}: {'done' if end.done else end.gave_up} after {result.batch_wall_s:.0f}s, {end.counts}")
    except Exception as exc:  # one failed run must not lose the others' figures; Ctrl-C still unwinds
        result.error = f"{type(exc).__name__}: {exc}"
        log(f"{label}: FAILED: {result.error}")
    return result


def set_celery_rate_limit(sysm: h.System, workers: h.Workers, rate: str) -> None:
    """The baseline's pacing: ``celery -A workers.app control rate_limit <task> <rate>``, checked in every log."""
    out = sysm.celery_control("rate_limit", names.EXPORT_ITEM_TASK, rate, "--timeout", "5")
    deadline = time.monotonic() + 15
    while min(workers.log_count(b"New rate limit for tasks of type")) < 1:
        if time.monotonic() > deadline:
            raise h.HarnessError(f"not every worker took the rate limit {rate}: {out.strip()}")
        time.sleep(0.2)
    log(f"baseline: celery rate_limit {names.EXPORT_ITEM_TASK} {rate} set on every worker")


def measure(
    r: ExportRun,
    poller: h.StatsPoller,
    before: h.Stats,
    after: h.Stats,
    state: dict[str, Any],
    workers: h.Workers,
    end: h.BatchEnd,
    started: h.ExportStarted,
    profiles: Sequence[Profile],
    sandbox: h.SandboxProcess,
) -> None:
    """Fill ``r``'s figures from the sandbox's counters and state, the worker logs and the store."""
    n = len(profiles)
    acc0 = h.accepted_requests(before)
    r.accepted = h.accepted_requests(after) - acc0
    r.rate_limited = int(after["rate_limited"]) - int(before["rate_limited"])
    r.first_accepted_at = poller.first_change(lambda s: s.accepted, acc0)
    exact_last = h.credential_stat(after, sandbox.client_id, "last_accepted_at")
    if exact_last is not None and r.first_accepted_at is not None and exact_last >= r.first_accepted_at:
        r.last_accepted_at, r.last_accepted_source = exact_last, "sandbox"
    else:
        r.last_accepted_at = poller.reached(lambda s: s.accepted, acc0 + r.accepted)
        r.last_accepted_source = "poll"
    if r.first_accepted_at is not None and r.last_accepted_at is not None:
        r.run_s = r.last_accepted_at - r.first_accepted_at
        r.allowed = r.limit * r.run_s / r.window_s
        r.utilisation = ratio(r.accepted, r.allowed)
        first_window_end = r.first_accepted_at + r.window_s
        r.rate_limited_after_first_window = int(after["rate_limited"]) - poller.value_at(
            lambda s: s.rate_limited, first_window_end
        )
    peak = (after.get("max_in_window") or {}).get(sandbox.client_id)
    r.peak_in_window = int(peak) if isinstance(peak, int) else None

    d = h.deliveries(workers, end.item_ids)
    r.requeues = d.requeues
    r.requeues_per_item = d.requeues / n
    r.parts_steps_per_item = d.parts_steps / n
    r.further_per_item = d.further / n
    r.requeues_max = d.further_max
    r.items_requeued = d.items_further
    r.retries_per_item = d.retries / n
    r.parked = d.parked
    r.parked_per_item = d.parked / n
    r.deliveries_per_item = d.received / n

    delta = h.requests_delta(after, before)
    r.requests_by_route = delta
    r.token_requests = sum(delta.get(h.TOKEN_ROUTE, {}).values())
    r.requests = sum(sum(by.values()) for route, by in delta.items() if route != h.TOKEN_ROUTE)
    r.requests_per_item = r.requests / n
    r.accepted_per_item = r.accepted / n
    r.writes = sum(
        c for route, by in delta.items() if route.startswith("POST /v3/") for s, c in by.items() if s.startswith("2")
    )
    r.floor_per_item = (r.writes + n) / n

    created = h.candidates_created_since(state, started.command_started)
    r.candidate_records = len(created)
    r.core_requests = core_requests(profiles)
    r.physical_min_s = r.core_requests * r.window_s / r.limit
    if created and len(created) >= n and r.first_accepted_at is not None:  # else the last one never appeared
        r.last_candidate_at = max(created)
        r.time_to_visible_s = r.last_candidate_at - r.first_accepted_at
        r.visible_ratio = ratio(r.time_to_visible_s, r.physical_min_s)


def fairness_run(cfg: Config, db_names: Iterator[str]) -> FairnessRun:
    """B alone, then B right behind A, each in a fresh system (``ours``)."""
    w = cfg.fairness_window
    base = cfg.log_dir / f"fairness-w{w:g}"
    result = FairnessRun(w, cfg.limit, cfg.fairness_a, cfg.fairness_b, str(base))
    base.mkdir(parents=True, exist_ok=True)
    h.write_profiles(base / "a.jsonl", cfg.fairness_a, prefix="bench-a")
    b_profiles = h.write_profiles(base / "b.jsonl", cfg.fairness_b, prefix="bench-b")
    cost = naive_cost(b_profiles)
    try:
        for phase in ("alone", "behind"):
            label = f"fairness {phase}"
            run_dir = base / phase
            log(f"{label}: starting sandbox, database, {cfg.workers} workers")
            with system(cfg, run_dir, next(db_names), window_s=w) as (sysm, workers, engine):
                sandbox = sysm.sandbox
                sandbox.add_credential(B_CLIENT_ID, B_CLIENT_SECRET, seed.ALL_SCOPES)
                sysm.connect("a", sandbox.client_id, sandbox.client_secret, sandbox.user_email)
                sysm.connect("b", B_CLIENT_ID, B_CLIENT_SECRET, sandbox.user_email)
                settle = cfg.settle(w)
                log(f"{label}: connected A and B; settling {settle:.0f}s")
                time.sleep(settle)
                a: h.ExportStarted | None = None
                if phase == "behind":
                    log(f"{label}: exporting A's {cfg.fairness_a} candidates")
                    a = sysm.export("a", base / "a.jsonl", job_id=seed.OPEN_JOB_ID)
                    result.a_export_command_s = a.command_returned - a.command_started
                b = sysm.export("b", base / "b.jsonl", job_id=seed.OPEN_JOB_ID)
                log(f"{label}: B's {cfg.fairness_b} candidates enqueued")
                timeout = cfg.fairness_timeout_s if phase == "behind" else cfg.timeout(cfg.fairness_b, w, cost)
                end = h.wait_for_batch(
                    engine, b.batch_id, timeout_s=timeout, stall_s=cfg.stall(w),
                    activity=sandbox.accepted,  # A's progress counts as activity too
                    check=workers.check_alive, progress=progress_logger(f"{label} (B)", cfg.fairness_b),
                )  # fmt: skip
                b_s = end.end - b.command_started
                if a is None:
                    result.b_alone_s, result.b_alone_done = b_s, end.done
                else:
                    result.b_behind_s, result.b_behind_done = b_s, end.done
                    counts, _, _ = h.batch_progress(engine, a.batch_id)
                    result.a_finished_when_b_ended = h.finished(counts)
                log(f"{label}: B {'ended' if end.done else 'NOT ended: ' + str(end.gave_up)} after {b_s:.1f}s")
                if not end.done and a is None:
                    raise h.HarnessError(f"B alone did not end ({end.gave_up}): {end.counts}")
        result.ratio = ratio(result.b_behind_s, result.b_alone_s)
    except Exception as exc:  # reported with the figures; Ctrl-C still unwinds
        result.error = f"{type(exc).__name__}: {exc}"
        log(f"fairness: FAILED: {result.error}")
    return result


# --- output -------------------------------------------------------------------------------------------


def fmt(value: float | int | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def _appender(rows: list[tuple[str, list[str]]]) -> Callable[[str, list[str]], None]:
    def add(name: str, cells: list[str]) -> None:
        rows.append((name, cells))

    return add


def table(cfg: Config, runs: Sequence[ExportRun], fair: FairnessRun | None) -> str:
    """The compact table of figures and ratios, modes side by side per window."""
    if not runs and fair is None:
        return ""
    out = [
        f"Harvest sandbox limit {cfg.limit} per window, {cfg.candidates} candidates, {cfg.workers} workers x "
        f"concurrency {cfg.concurrency}" + (f" (pool {cfg.pool})" if cfg.pool else "")
        + (f", latency {cfg.latency_ms:g} ms" if cfg.latency_ms else ""),
        "baseline = GHX_LIMITER__ENABLED=false + celery control rate_limit (per worker node), see --help",
    ]  # fmt: skip
    show = set(cfg.scenarios)
    for window in cfg.windows:
        cols = [r for r in runs if r.window_s == window]
        if not cols:
            continue
        rows: list[tuple[str, list[str]]] = []
        row = _appender(rows)
        row("", [r.mode + (f" ({r.celery_rate_limit})" if r.celery_rate_limit else "") for r in cols])
        row("batch: finished / total, wall s", [
            f"{r.finished}/{r.candidates}, "
            f"{fmt(r.batch_wall_s, '.0f')}" + ("" if r.done else " INCOMPLETE") for r in cols
        ])  # fmt: skip
        if "utilisation" in show:
            row("utilisation: accepted / allowed", [fmt(r.utilisation) for r in cols])
            row("  accepted / allowed requests", [f"{fmt(r.accepted, 'd')} / {fmt(r.allowed, '.0f')}" for r in cols])
            row("  run: first..last accepted, s", [fmt(r.run_s, ".1f") for r in cols])
            row("  429s (after the first window)", [
                f"{fmt(r.rate_limited, 'd')} ({fmt(r.rate_limited_after_first_window, 'd')})" for r in cols
            ])  # fmt: skip
            row("  peak in one window / limit", [f"{fmt(r.peak_in_window, 'd')} / {r.limit}" for r in cols])
        if "requeues" in show:
            row("re-queues per item: deliveries - 1", [
                f"{fmt(r.requeues_per_item)} (parts {fmt(r.parts_steps_per_item)} + further {fmt(r.further_per_item)})"
                for r in cols
            ])  # fmt: skip
            row("  further: most for one item; items", [
                f"{fmt(r.requeues_max, 'd')}; {fmt(r.items_requeued, 'd')}" for r in cols
            ])  # fmt: skip
            row("  countdown retries per item", [fmt(r.retries_per_item) for r in cols])
            row("  parked per item", [fmt(r.parked_per_item) for r in cols])
            row("  task deliveries per item", [fmt(r.deliveries_per_item) for r in cols])
            row("Harvest requests per item (accepted)", [
                f"{fmt(r.requests_per_item)} ({fmt(r.accepted_per_item)})" for r in cols
            ])  # fmt: skip
            row("  floor: (writes + 1 lookup) / item", [fmt(r.floor_per_item) for r in cols])
            row("  requests / floor", [fmt(ratio(r.requests_per_item, r.floor_per_item)) for r in cols])
        if "visible" in show:
            row("time to visible / physical min", [
                f"{fmt(r.visible_ratio)} ({fmt(r.time_to_visible_s, '.0f')}s / {fmt(r.physical_min_s, '.0f')}s)"
                for r in cols
            ])  # fmt: skip
            row("  candidate records at sandbox", [f"{fmt(r.candidate_records, 'd')}/{r.candidates}" for r in cols])
        errors = [f"  {r.mode}: {r.error}" for r in cols if r.error]
        width = max(len(name) for name, _ in rows) + 4
        colw = max(18, *(len(c) + 2 for _, cells in rows for c in cells))
        out.append("")
        out.append(f"window {window:g} s".ljust(width) + "".join(c.ljust(colw) for c in rows[0][1]))
        for name, cells in rows[1:]:
            out.append(("  " + name).ljust(width) + "".join(c.ljust(colw) for c in cells))
        out.extend(errors)
    if fair is not None:
        behind = ("" if fair.b_behind_done else ">=") + fmt(fair.b_behind_s, ".1f")
        ratio_txt = ("" if fair.b_behind_done else ">=") + fmt(fair.ratio)
        out += [
            "",
            f"fairness (ours, window {fair.window_s:g} s): B {fair.b_candidates} alone {fmt(fair.b_alone_s, '.1f')}s;"
            f" B right behind A's {fair.a_candidates}: {behind}s; ratio {ratio_txt}"
            f" (A finished {fmt(fair.a_finished_when_b_ended, 'd')}/{fair.a_candidates} when B ended)",
        ]
        if fair.error:
            out.append(f"  fairness: {fair.error}")
    return "\n".join(out)


# --- command line -------------------------------------------------------------------------------------


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def parse_args(argv: Sequence[str] | None = None) -> Config:
    p = argparse.ArgumentParser(
        prog="python -m bench.throughput", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--scenario",
        default=",".join(DEFAULT_SCENARIOS),
        help=f"comma list of: {', '.join(SCENARIOS)} (default: {','.join(DEFAULT_SCENARIOS)})",
    )
    p.add_argument("--modes", default=",".join(MODES), help="export runs' modes: ours, baseline")
    p.add_argument("--candidates", type=int, default=None, help="profiles per export run (300; --quick 60)")
    p.add_argument("--windows", default=None, help="sandbox windows, seconds, comma list (10,30; --quick 10)")
    p.add_argument("--limit", type=int, default=50, help="sandbox requests per window per credential")
    p.add_argument("--latency-ms", type=float, default=0.0, help="sandbox latency added to every request")
    p.add_argument("--workers", type=int, default=2, help="ghexport worker processes")
    p.add_argument("--concurrency", type=int, default=8, help="--concurrency of each worker")
    p.add_argument("--pool", default=None, help="--pool of each worker (needs ghexport worker to have it)")
    p.add_argument("--worker-arg", action="append", default=[], help="extra argument to ghexport worker (repeat)")
    p.add_argument("--beat", action="store_true", help="first worker also runs Celery beat (recovery needs no flag)")
    p.add_argument("--baseline-cost", type=int, default=None, help="requests per candidate for the naive rate")
    p.add_argument("--fairness-a", type=int, default=None, help="customer A's candidates (2000; --quick 300)")
    p.add_argument("--fairness-b", type=int, default=15, help="customer B's candidates")
    p.add_argument("--fairness-window", type=float, default=None, help="fairness sandbox window (30; --quick 10)")
    p.add_argument("--fairness-timeout", type=float, default=None, help="max wait for B behind A, s (1800; 600)")
    p.add_argument("--timeout", type=float, default=None, help="max wait per export batch, s (default: auto)")
    p.add_argument("--stall", type=float, default=None, help="give up after this long without progress, s")
    p.add_argument("--settle", type=float, default=None, help="wait after connect, s (default: see above)")
    p.add_argument("--poll", type=float, default=0.1, help="sandbox stats poll interval, s")
    p.add_argument("--redis-url", default=h.DEFAULT_REDIS_URL, help="Redis database the bench owns (flushed)")
    p.add_argument("--pg-host", default="127.0.0.1")
    p.add_argument("--pg-port", type=int, default=5432)
    p.add_argument("--pg-user", default=None, help="PostgreSQL user (default: postgres, else root)")
    p.add_argument("--log-dir", type=Path, default=None, help="where runs keep their logs (default: a temp dir)")
    p.add_argument("--json-out", type=Path, default=None, help="also write every figure as JSON here")
    p.add_argument("--quick", action="store_true", help="60 candidates, window 10 s, A = 300, 10 customers for 1.5 min")
    p.add_argument("--customers", type=int, default=None, help="customers, each its own credential (50; --quick 10)")
    p.add_argument("--customer-minutes", type=float, default=None, help="work per customer at its full rate (3.5; 1.5)")
    p.add_argument("--customer-candidates", type=int, default=None, help="the same batch for every customer")
    p.add_argument("--customer-limits", default="20,75", help="lowest,highest limit per window, spread evenly")
    p.add_argument("--customer-windows", default="10,30", help="windows, seconds, given to the customers in turn")
    p.add_argument("--customer-latency-ms", type=float, default=200.0, help="sandbox latency (customers, pools)")
    p.add_argument("--customer-worker", default="threads:64", help="the one worker of --scenario customers, POOL:N")
    p.add_argument("--pools", default=",".join(cu.DEFAULT_POOLS), help="workers compared by --scenario pools")
    p.add_argument("--pools-minutes", type=float, default=None, help="work per customer in each pools run (2; 1.5)")
    p.add_argument("--pools-customers", type=int, default=None, help="customers in each pools run (20; --quick 10)")
    a = p.parse_args(argv)
    scenarios = tuple(_csv(a.scenario))
    modes = tuple(_csv(a.modes))
    bad = [s for s in scenarios if s not in SCENARIOS] + [m for m in modes if m not in MODES]
    if bad or not scenarios or not modes:
        p.error(f"unknown or empty scenario / mode: {', '.join(bad) or '(empty)'}")
    if a.pool is not None and not h.worker_has_option("--pool"):
        p.error("ghexport worker has no --pool option yet; pass worker options it has with --worker-arg")
    windows = tuple(float(w) for w in _csv(a.windows)) if a.windows else ((10.0,) if a.quick else (10.0, 30.0))
    try:
        worker = cu.WorkerSpec.parse(a.customer_worker)
        pools = tuple(cu.WorkerSpec.parse(x) for x in _csv(a.pools))
        limits = tuple(int(x) for x in _csv(a.customer_limits))
        customer_windows = tuple(float(x) for x in _csv(a.customer_windows))
    except ValueError as exc:
        p.error(str(exc))
    if len(limits) != 2 or not 0 < limits[0] <= limits[1] or not customer_windows or min(customer_windows) <= 0:
        p.error("--customer-limits takes LOW,HIGH (0 < LOW <= HIGH); --customer-windows positive seconds")
    if ("pools" in scenarios and not pools) or (a.customers is not None and a.customers < 1):
        p.error("--pools needs at least one POOL:N; --customers at least 1")
    log_dir = a.log_dir or Path(tempfile.mkdtemp(prefix="ghx-throughput-"))
    customers = cu.CustomersConfig(
        customers=a.customers or (10 if a.quick else 50),
        minutes=a.customer_minutes or (1.5 if a.quick else 3.5),
        candidates=a.customer_candidates,
        limits=(limits[0], limits[1]),
        windows=customer_windows,
        latency_ms=a.customer_latency_ms,
        settle_s=a.settle if a.settle is not None else max(*customer_windows, LimiterSettings().window_s) + 1.0,
        poll_s=max(0.25, a.poll),
        stall_s=a.stall if a.stall is not None else max(120.0, 4 * max(customer_windows)),
        cost=7,  # naive_cost of the generated profiles: lookup, create, education, employment, tag, note, resume
    )
    return Config(
        scenarios=scenarios,
        modes=modes,
        candidates=a.candidates or (60 if a.quick else 300),
        windows=windows,
        limit=a.limit,
        latency_ms=a.latency_ms,
        workers=a.workers,
        concurrency=a.concurrency,
        pool=a.pool,
        worker_args=tuple(a.worker_arg),
        beat=a.beat,
        baseline_cost=a.baseline_cost,
        fairness_a=a.fairness_a or (300 if a.quick else 2000),
        fairness_b=a.fairness_b,
        fairness_window=a.fairness_window or (10.0 if a.quick else 30.0),
        fairness_timeout_s=a.fairness_timeout or (600.0 if a.quick else 1800.0),
        batch_timeout_s=a.timeout,
        stall_s=a.stall,
        settle_s=a.settle,
        poll_s=a.poll,
        redis_url=a.redis_url,
        pg_host=a.pg_host,
        pg_port=a.pg_port,
        pg_users=(a.pg_user,) if a.pg_user else ("postgres", "root"),
        log_dir=log_dir.resolve(),
        json_out=a.json_out,
        quick=a.quick,
        customers=customers,
        customer_worker=worker,
        pools=pools,
        pools_minutes=a.pools_minutes or (1.5 if a.quick else 2.0),
        pools_customers=a.pools_customers or (10 if a.quick else 20),
    )


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM: unwind like Ctrl-C, so every run stops what it started


def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    cfg.log_dir.mkdir(parents=True, exist_ok=True)
    log(f"logs in {cfg.log_dir}")
    db_names = (f"ghx_bench_{os.getpid()}_{n}" for n in range(1_000_000))
    runs: list[ExportRun] = []
    fair: FairnessRun | None = None
    many: list[cu.CustomersRun] = []
    pools: list[cu.CustomersRun] = []
    interrupted = False
    started = time.monotonic()
    try:
        if EXPORT_SCENARIOS & set(cfg.scenarios):
            for window in cfg.windows:
                for mode in cfg.modes:
                    runs.append(export_run(cfg, mode, window, next(db_names)))
        if "fairness" in cfg.scenarios:
            fair = fairness_run(cfg, db_names)
        if "customers" in cfg.scenarios:
            many.append(
                cu.customers_scenario(
                    cfg.customers, cfg.services, cfg.customer_worker, log_dir=cfg.log_dir, db_names=db_names, log=log
                )
            )
        if "pools" in cfg.scenarios:
            pools = cu.pools_scenario(
                cfg.customers, cfg.services, cfg.pools, customers=cfg.pools_customers, minutes=cfg.pools_minutes,
                log_dir=cfg.log_dir, db_names=db_names, log=log,
            )  # fmt: skip
    except KeyboardInterrupt:
        interrupted = True
        log("interrupted: every process started was stopped; partial results follow")
    print(table(cfg, runs, fair))
    if many:
        print(cu.table(many, "customers (scenario 5)", with_verdict=False))
        print(cu.per_credential_table(many[0]))
    if pools:
        print(cu.table(pools, "pools (concurrency model)", with_verdict=True))
    print(f"\n(logs: {cfg.log_dir}; {time.monotonic() - started:.0f}s in all)")
    if cfg.json_out is not None:
        doc = {
            "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()},
            "runs": [asdict(r) for r in runs],
            "fairness": asdict(fair) if fair is not None else None,
            "customers": [asdict(r) for r in many],
            "pools": [asdict(r) for r in pools],
            "interrupted": interrupted,
        }
        cfg.json_out.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    if interrupted:
        return 130
    failed = any(r.error or not r.done for r in runs) or (fair is not None and (fair.error is not None))
    failed = failed or any(r.error or not r.done for r in many) or any(r.error or r.figure is None for r in pools)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
