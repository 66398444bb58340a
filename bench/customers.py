"""Scenario 5, many customers (``--scenario customers``), and the concurrency model (``--scenario pools``).

**Many customers.** ``--customers`` connections (50; ``--quick`` 10), each on a sandbox credential of its own
(``POST /_sandbox/credentials`` with its own ``rate_limit`` and ``window_s``), all exported at the same time
through ONE ``ghexport worker --pool P --concurrency C`` (``--customer-worker P:C``, default ``threads:64``),
the sandbox answering every request after ``--customer-latency-ms`` (200 ms, a realistic Harvest round trip).

- Limits: customer k of n (k = 0..n-1) gets ``round(20 + 55 k / (n - 1))`` requests per window (evenly spread over
  ``--customer-limits 20,75``) and a window of 10 s for even k, 30 s for odd k (``--customer-windows 10,30``,
  taken in turn), so both windows see the whole range of limits. 50 customers: summed limits 158 req/s.
- Batches: customer k exports ``ceil(M x 60 x limit_k / window_k / cost)`` generated profiles
  (``producer.demo.sample_profiles``, emails unique per customer), M = ``--customer-minutes`` (3.5; ``--quick``
  1.5) and cost = 7 requests per generated candidate (the naive count: lookup, create, education,
  employment, tag, note): every credential has about M minutes of work at its full rate, so they all run
  out of work at about the same time. ``--customer-candidates N`` gives every customer N instead.
- Start: the connections are made in this process with :func:`shared.connections.service.connect` (50 in
  parallel; each makes ~28 requests on its credential), then the 50 batches are recorded and parked with
  :func:`producer.api.export_profiles` (in parallel; nothing consumes them yet), then the bench waits
  ``--settle`` (default 31 s: longer than every window, so no window still holds connect's requests) and
  only then starts the worker: its pacer finds every customer's backlog parked and every credential starts
  within one pacer tick. Connect uses the run's shared Redis limiter with a long inline wait (120 s instead
  of 3 s): with the default 3 s, ``connect`` of a credential allowing fewer than ~28 requests per window
  fails with ``ThrottledError`` (reported as a finding; Harvest's real limits are 50 or more).

**The figure**: summed accepted rate / summed limits over the steady interval [T0, T1]:

- first_i: when credential i's first request of the export was accepted (a poll of ``/_sandbox/stats``,
  ``credentials.<id>.accepted``, every 0.25 s after the worker starts; a rise is placed between two readings);
- T0 = max over i of (first_i + window_i): every credential has sent its first request and is past its first
  window (its start-up burst, the limiter's learning);
- last_i: credential i's last accepted request (the sandbox's exact ``last_accepted_at``), known once its batch
  is finished: it ran out of work then;
- T1 = min over the finished credentials of last_i: the first credential running out of work. When no batch
  finished before the observation ended, T1 = the end of the observation (marked "cut");
- accepted_i = its accepted count at T1 - at T0 (the poll, linear between readings);
  allowed_i = limit_i x (T1 - T0) / window_i;
- figure = sum accepted_i / sum allowed_i = (summed accepted rate) / (summed limits), goal >= 0.9. Printed
  beside it: the same from max first_i instead of T0 (start-up included), per credential accepted_i /
  allowed_i (min with its name, median, max; "starving" = below 0.8 x the median), and 429s: during the
  whole export and within [T0, T1], with the credentials that got them.

Also: batches finished, when each batch ended (after the worker started), the worker's CPU seconds in
[T0, T1] (its process group, ``/proc/<pid>/stat`` utime + stime of the worker and its pool children) and per
1000 accepted requests, the sandbox's and the whole machine's busy CPU in [T0, T1] (``/proc/stat``; other
engineers' tests count there too), the highest 1-minute load average in [T0, T1] and ``uptime`` before and
after, the task deliveries per item (:class:`bench.harness.Deliveries`), accepted requests per item over the
floor (writes + one email lookup per candidate, as in the export runs: above it, requests repeated), candidate
records at the sandbox (must equal the items exported); per credential: accepted / allowed in [T0, T1], 429s,
batch end, accepted requests, parks and further deliveries per item (a credential doing its work twice shows
there, not in its utilisation); every 30 s on stderr and in the table: the summed accepted rate of the last
30 s over the summed limits and the busy cores of worker, sandbox and machine. A stats poll the sandbox does not
answer within 10 s is counted (and reported) and the poll goes on; the run's figures then come from the poll.

**Pools** (the concurrency model, ``docs/design.md``): the same scenario once per ``--pools`` entry (default
``prefork:8,threads:32,threads:64``; ``KxPOOL:N`` runs K such ``ghexport worker`` processes on the host with
``--hostname w<k>@%h``, e.g. ``2xthreads:32``), each in a fresh system, side by side, with
``--pools-customers`` (20; ``--quick`` 10: a smaller variant of scenario 5, whose 158 req/s a 2-core machine
running the sandbox too cannot serve) and ``--pools-minutes`` of work (2; ``--quick`` 1.5); each observed
until its first batch finishes (or 1.5 x that plan, "cut"): the figure, 429s, worker CPU; then a one-line
verdict: the least worker CPU per request among the pools within 0.03 of the best figure (and at or above the
goal when any is). Requests in flight needed = summed limits x latency (e.g. 63 req/s x 0.2 s = 13 for 20
customers, 32 for 50): one task holds one request at a time, so a pool with fewer slots than that cannot
reach the limits, whatever the limiter does.
"""

from __future__ import annotations

import math
import os
import re
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack, suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from pydantic import SecretStr
from sqlalchemy.engine import Engine
from sqlmodel import col

from bench import harness as h
from producer.api import ExportResult, ExportTarget, export_profiles
from producer.demo import sample_profiles
from shared.connections import service as connections
from shared.connections.crypto import generate_key
from shared.harvest.limiter import RedisRateLimiter
from shared.harvest.sandbox import seed
from shared.profiles.model import Profile
from shared.resources import Resources
from shared.settings import Settings
from shared.store.models import Item, aware

GOAL = 0.9
STARVING = 0.8
"""A credential is starving when its accepted / allowed in [T0, T1] is below this fraction of the median one's
(relative: when the whole host is short of CPU every credential is below the goal, none starves)."""
CONNECT_INLINE_WAIT_S = 120.0
"""Connect's limiter waits this long inline (see the module docstring): a low-limit credential's ~28 checks."""
POOL_SPEC = re.compile(r"^(?:([1-9][0-9]*)x)?(prefork|threads|solo):([1-9][0-9]*)$")
DEFAULT_POOLS = ("prefork:8", "threads:32", "threads:64")
CUT_FACTOR = 1.5
"""Pools: the observation ends at the first finished batch, else after this many times the planned minutes."""


@dataclass(frozen=True)
class WorkerSpec:
    """``ghexport worker --pool POOL --concurrency N``, written ``POOL:N``; ``KxPOOL:N``: K such workers on the
    one host (``--hostname w<k>@%h``), e.g. ``2xthreads:32`` (prefork processes each with threads is not a
    Celery pool, several worker processes are)."""

    pool: str
    concurrency: int
    processes: int = 1

    @property
    def label(self) -> str:
        return (f"{self.processes}x" if self.processes > 1 else "") + f"{self.pool}:{self.concurrency}"

    @property
    def slug(self) -> str:
        return (f"{self.processes}x" if self.processes > 1 else "") + f"{self.pool}{self.concurrency}"

    @classmethod
    def parse(cls, text: str) -> WorkerSpec:
        m = POOL_SPEC.match(text.strip())
        if m is None:
            raise ValueError(f"not a worker spec [Kx]POOL:N (pool prefork|threads|solo): {text!r}")
        return cls(m.group(2), int(m.group(3)), int(m.group(1) or 1))


@dataclass(frozen=True)
class Customer:
    """One customer: a connection on a sandbox credential of its own, with its own limit and window."""

    index: int
    limit: int
    window_s: float
    candidates: int

    @property
    def name(self) -> str:
        return f"c{self.index + 1:02d}"

    @property
    def client_id(self) -> str:
        return f"bench-customer-{self.index + 1:02d}"

    @property
    def client_secret(self) -> str:
        return f"bench-customer-{self.index + 1:02d}-secret"  # a sandbox credential of this run, not a secret

    @property
    def rate(self) -> float:
        return self.limit / self.window_s


@dataclass(frozen=True)
class Services:
    """Where a run's Redis database and PostgreSQL server are (the bench's own)."""

    redis_url: str
    pg_host: str
    pg_port: int
    pg_users: tuple[str, ...]

    def fresh_database(self, name: str) -> AbstractContextManager[str]:
        return h.fresh_database(name, host=self.pg_host, port=self.pg_port, users=self.pg_users)


@dataclass(frozen=True)
class CustomersConfig:
    """The scenario's knobs (the command line, resolved)."""

    customers: int
    minutes: float
    candidates: int | None
    limits: tuple[int, int]
    windows: tuple[float, ...]
    latency_ms: float
    settle_s: float
    poll_s: float
    stall_s: float
    cost: int


def plan(cc: CustomersConfig, minutes: float) -> list[Customer]:
    """The customers: limits evenly spread, windows taken in turn, batches sized for ``minutes`` at full rate."""
    n = cc.customers
    lo, hi = cc.limits
    out = []
    for k in range(n):
        limit = round(lo + (hi - lo) * k / (n - 1)) if n > 1 else hi
        window = cc.windows[k % len(cc.windows)]
        size = cc.candidates or max(2, math.ceil(minutes * 60.0 * limit / window / cc.cost))
        out.append(Customer(k, limit, window, size))
    return out


@dataclass
class CredentialFigures:
    """One customer's credential over the run."""

    name: str
    client_id: str
    limit: int
    window_s: float
    candidates: int
    batch_id: str | None = None
    done: bool = False
    finished: int = 0
    batch_end_s: float | None = None
    """When its batch ended (latest ``updated_at`` of its items), seconds after the worker was started."""
    first_at: float | None = None
    last_at: float | None = None
    accepted_steady: float | None = None
    allowed_steady: float | None = None
    utilisation: float | None = None
    rate_limited: int = 0
    """429s during the export."""
    accepted_export: int | None = None
    """Requests of the credential the sandbox accepted from the worker's start to the end (exact)."""
    accepted_per_item: float | None = None
    """``accepted_export`` / candidates, once its batch finished."""
    parked_per_item: float | None = None
    further_per_item: float | None = None
    """Deliveries beyond the enqueue and the parts step, per item, from its items' outcome lines."""


@dataclass
class CustomersRun:
    """The figures of one many-customers run (see the module docstring for each definition)."""

    label: str
    worker: str
    customers: int
    latency_ms: float
    minutes: float
    stop_rule: str
    log_dir: str
    candidates: int = 0
    summed_limit_rate: float = 0.0
    """Sum of the credentials' limit / window, requests per second."""
    in_flight_needed: float = 0.0
    """Summed limit rate x latency: requests in flight needed to reach the limits."""
    connect_s: float | None = None
    export_s: float | None = None
    done: bool = False
    gave_up: str | None = None
    error: str | None = None
    batches_done: int = 0
    items_finished: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    t_first: float | None = None
    """max first_i, seconds after the worker was started (as t0, t1 below)."""
    t0: float | None = None
    t1: float | None = None
    t1_source: str | None = None
    steady_s: float | None = None
    accepted_steady: float | None = None
    allowed_steady: float | None = None
    figure: float | None = None
    figure_from_first: float | None = None
    util_min: float | None = None
    util_min_name: str | None = None
    util_median: float | None = None
    util_max: float | None = None
    starving: list[str] = field(default_factory=list)
    never_started: list[str] = field(default_factory=list)
    rate_limited: int | None = None
    rate_limited_steady: float | None = None
    credentials_with_429: dict[str, int] = field(default_factory=dict)
    batch_end_min_s: float | None = None
    batch_end_median_s: float | None = None
    batch_end_max_s: float | None = None
    worker_cpu_steady_s: float | None = None
    worker_cores_steady: float | None = None
    worker_cpu_per_1000: float | None = None
    worker_cpu_total_s: float | None = None
    sandbox_cores_steady: float | None = None
    machine_busy_cores_steady: float | None = None
    machine_cores: int = 0
    load1_max_steady: float | None = None
    uptime_before: str | None = None
    uptime_after: str | None = None
    deliveries_basis: str | None = None
    """Which items the deliveries are counted over: every item once every batch finished, else finished ones."""
    deliveries_per_item: float | None = None
    requeues_per_item: float | None = None
    parts_steps_per_item: float | None = None
    further_per_item: float | None = None
    further_max: int | None = None
    items_further: int | None = None
    parked_per_item: float | None = None
    retries_per_item: float | None = None
    accepted_per_item: float | None = None
    floor_per_item: float | None = None
    """(writes + one email lookup per candidate) / items, as in the export runs: requests that had to be made."""
    candidate_records: int | None = None
    items_exported: int | None = None
    requests_by_route: dict[str, dict[str, int]] = field(default_factory=dict)
    """Route -> status -> requests from the worker's start to the end, every credential."""
    sandbox_failed_reads: int = 0
    """Stats requests of the poll that failed (timed out): the sandbox did not answer in time."""
    sandbox_first_failure_s: float | None = None
    timeline: list[dict[str, float]] = field(default_factory=list)
    """Every 30 s after the worker started: summed accepted rate / summed limits over the last 30 s, items
    finished, the worker's, the sandbox's and the machine's busy cores, the 1-minute load."""
    notes: list[str] = field(default_factory=list)
    per_credential: list[CredentialFigures] = field(default_factory=list)


# --- the system, in this process where it is faster -----------------------------------------------------


def settings_for(sysm: h.System) -> Settings:
    """This process's :class:`Settings` for ``sysm``: exactly the ``GHX_*`` the workers get, nothing read from the
    environment or a ``.env`` file (a stray ``GHX_LIMITER__*`` must not change what is measured)."""
    g = sysm.ghx
    build: Any = Settings  # pydantic-settings' init-only options (_env_file, _env_prefix) are not in its signature
    settings: Settings = build(
        _env_file=None,
        _env_prefix="GHX_BENCH_IGNORED_",
        broker_url=g["GHX_BROKER_URL"],
        database_url=g["GHX_DATABASE_URL"],
        harvest_url=g["GHX_HARVEST_URL"],
        harvest_token_url=g["GHX_HARVEST_TOKEN_URL"],
        secret_key=SecretStr(g["GHX_SECRET_KEY"]),
        embedded_dir=g["GHX_EMBEDDED_DIR"],
    )
    return settings


def _in_parallel(jobs: Sequence[Callable[[], object]], threads: int) -> list[object]:
    """Run ``jobs`` on ``threads`` threads; the first error is raised once the others were cancelled or ended."""
    pool = ThreadPoolExecutor(max_workers=max(1, min(threads, len(jobs))))
    try:
        futures: list[Future[object]] = [pool.submit(job) for job in jobs]
        results = [f.result() for f in futures]
    except BaseException:  # an error or Ctrl-C: do not wait here; the sandbox stopped next ends their requests
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return results


def connect_all(res: Resources, customers: Sequence[Customer], user_email: str) -> None:
    """``connect`` every customer (in parallel), on the shared limiter with a long inline wait."""
    patient = RedisRateLimiter(
        res.redis, res.settings.limiter.model_copy(update={"max_inline_wait_s": CONNECT_INLINE_WAIT_S})
    )

    def one(c: Customer) -> Callable[[], object]:
        return lambda: connections.connect(
            res.settings, res.engine, name=c.name, client_id=c.client_id, client_secret=SecretStr(c.client_secret),
            user_email=user_email, http_client=res.http, limiter=patient, token_cache=res.token_cache,
        )  # fmt: skip

    _in_parallel([one(c) for c in customers], threads=len(customers))


def export_all(res: Resources, customers: Sequence[Customer], profiles: dict[str, list[Profile]]) -> dict[str, str]:
    """Record and park every customer's batch (in parallel); customer name -> batch id."""

    def one(c: Customer) -> Callable[[], object]:
        target = ExportTarget.job(seed.OPEN_JOB_ID)
        return lambda: export_profiles(res, connection_name=c.name, target=target, profiles=profiles[c.name])

    results = _in_parallel([one(c) for c in customers], threads=8)
    out = {}
    for c, r in zip(customers, results, strict=True):
        assert isinstance(r, ExportResult)
        out[c.name] = r.batch_id
    return out


def batches_progress(
    engine: Engine, batch_ids: Sequence[str]
) -> tuple[dict[str, tuple[Counter[str], float | None]], int]:
    """Batch id -> (counts by status, latest item ``updated_at`` as epoch seconds), and how many of the items
    have their Greenhouse record (progress while the core records go first and no item finishes yet)."""
    stmt = (
        sa.select(
            col(Item.batch_id), col(Item.status), sa.func.count(), sa.func.max(col(Item.updated_at)),
            sa.func.count(col(Item.greenhouse_candidate_id)),
        )
        .where(col(Item.batch_id).in_(list(batch_ids)))
        .group_by(col(Item.batch_id), col(Item.status))
    )  # fmt: skip
    out: dict[str, tuple[Counter[str], float | None]] = {b: (Counter(), None) for b in batch_ids}
    records = 0
    with engine.connect() as conn:
        for batch_id, status, n, last, with_record in conn.execute(stmt).all():
            counts, latest = out[str(batch_id)]
            counts[str(status)] += int(n or 0)
            records += int(with_record or 0)
            ts = aware(last).timestamp() if last is not None else None
            if ts is not None and (latest is None or ts > latest):
                latest = ts
            out[str(batch_id)] = (counts, latest)
    return out, records


def unfinished_items(engine: Engine, batch_ids: Sequence[str], limit: int = 10) -> list[str]:
    """The first ``limit`` items still ``queued`` or ``sending``: id, status, error (why a run did not end)."""
    stmt = (
        sa.select(col(Item.id), col(Item.status), col(Item.error_cause), col(Item.error))
        .where(col(Item.batch_id).in_(list(batch_ids)), col(Item.status).in_(["queued", "sending"]))
        .order_by(col(Item.id))
        .limit(limit)
    )
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    return [f"item {i} {status} ({cause}: {error})" for i, status, cause, error in rows]


def items_of(engine: Engine, batch_ids: Sequence[str]) -> tuple[dict[str, list[int]], set[int], int]:
    """Batch id -> its item ids; the finished ones (neither ``queued`` nor ``sending``); how many are ``exported``."""
    stmt = sa.select(col(Item.id), col(Item.batch_id), col(Item.status)).where(col(Item.batch_id).in_(list(batch_ids)))
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    out: dict[str, list[int]] = {b: [] for b in batch_ids}
    done: set[int] = set()
    for item_id, batch_id, status in rows:
        if item_id is not None:
            out[str(batch_id)].append(int(item_id))
            if str(status) not in ("queued", "sending"):
                done.add(int(item_id))
    return out, done, sum(1 for _, _, status in rows if str(status) == "exported")


# --- one run --------------------------------------------------------------------------------------------


def customers_run(
    cc: CustomersConfig,
    services: Services,
    spec: WorkerSpec,
    customers: Sequence[Customer],
    *,
    run_dir: Path,
    db_name: str,
    label: str,
    minutes: float,
    stop_at_first: bool,
    log: Callable[[str], None],
) -> CustomersRun:
    """Connect, record and park every customer's batch, then one worker; the figures (module docstring)."""
    run = CustomersRun(
        label, spec.label, len(customers), cc.latency_ms, minutes,
        "first batch finished" if stop_at_first else "every batch finished", str(run_dir),
    )  # fmt: skip
    run.candidates = sum(c.candidates for c in customers)
    run.summed_limit_rate = sum(c.rate for c in customers)
    run.in_flight_needed = run.summed_limit_rate * cc.latency_ms / 1000.0
    run.machine_cores = os.cpu_count() or 0
    run.per_credential = [CredentialFigures(c.name, c.client_id, c.limit, c.window_s, c.candidates) for c in customers]
    run_dir.mkdir(parents=True, exist_ok=True)
    profiles = {c.name: sample_profiles(c.candidates, prefix=f"bench-{c.name}") for c in customers}
    try:
        with ExitStack() as stack:
            h.flush_redis(services.redis_url)
            db_url = stack.enter_context(services.fresh_database(db_name))
            sandbox = stack.enter_context(
                h.sandbox_process(run_dir, rate_limit=50, window_s=30.0, latency_ms=cc.latency_ms, env=h.clean_env({}))
            )
            for c in customers:
                sandbox.add_credential(
                    c.client_id, c.client_secret, seed.ALL_SCOPES, rate_limit=c.limit, window_s=c.window_s
                )
            sysm = h.System(run_dir, services.redis_url, db_url, sandbox, generate_key())
            res = stack.enter_context(Resources(settings_for(sysm)))
            run.uptime_before = h.uptime_line()
            log(f"{label}: connecting {len(customers)} customers ({run.summed_limit_rate:.1f} req/s in all)")
            t = time.monotonic()
            connect_all(res, customers, sandbox.user_email)
            run.connect_s = time.monotonic() - t
            log(f"{label}: connected in {run.connect_s:.0f}s; recording and parking {run.candidates} candidates")
            t = time.monotonic()
            batches = export_all(res, customers, profiles)
            run.export_s = time.monotonic() - t
            for f in run.per_credential:
                f.batch_id = batches[f.name]
            log(f"{label}: parked in {run.export_s:.0f}s; settling {cc.settle_s:.0f}s before starting the worker")
            time.sleep(cc.settle_s)
            poller = stack.enter_context(h.CredentialPoller(sandbox, cc.poll_s))
            poller.watch("sandbox", sandbox.process.pgid)
            before = sandbox.stats()
            started = time.time()
            times = f"{spec.processes} x " if spec.processes > 1 else ""
            log(f"{label}: starting {times}ghexport worker --pool {spec.pool} --concurrency {spec.concurrency}")
            with h.running_workers(
                sysm, count=spec.processes, concurrency=spec.concurrency, pool=spec.pool,
                hostname="w{n}@%h" if spec.processes > 1 else None,
            ) as workers:  # fmt: skip
                poller.watch("worker", *(p.pgid for p in workers.processes))
                observed_until = _observe(
                    run, cc, res.engine, batches, workers, poller, started, minutes, stop_at_first, label, log
                )
                time.sleep(max(1.0, 4 * cc.poll_s))  # let the poll see the last answers
                final = poller.latest
            after: h.Stats | None = None
            try:
                after = sandbox.stats()
            except httpx.HTTPError as exc:
                run.notes.append(f"final /_sandbox/stats failed ({type(exc).__name__}): figures from the poll only")
            poller.stop()
            if poller.error is not None:
                raise h.HarnessError(f"the sandbox's stats could not be read: {poller.error!r}")
            run.sandbox_failed_reads = poller.failed_reads
            if poller.first_failure_at is not None:
                run.sandbox_first_failure_s = poller.first_failure_at - started
                run.notes.append(
                    f"the sandbox did not answer {poller.failed_reads} stats polls within {poller.timeout_s:g} s,"
                    f" the first {run.sandbox_first_failure_s:.0f} s after the worker started"
                )
            run.uptime_after = h.uptime_line()
            _figures(run, customers, poller, before, after, started, observed_until, final)
            by_batch, finished, exported = items_of(res.engine, list(batches.values()))
            _deliveries(run, by_batch, finished, h.LogCounts.read(workers), before, after, poller.latest)
            run.items_exported = exported
            if after is not None:
                run.requests_by_route = h.requests_delta(after, before)
            if run.done and after is not None:
                n = sum(len(ids) for ids in by_batch.values())
                run.accepted_per_item = ratio(h.accepted_requests(after) - h.accepted_requests(before), n)
                writes = sum(
                    c
                    for route, by in run.requests_by_route.items()
                    if route.startswith("POST /v3/")
                    for status, c in by.items()
                    if status.startswith("2")
                )
                run.floor_per_item = ratio(writes + n, n)
                with suppress(Exception):  # a heavy read; the figures stand without it
                    run.candidate_records = len(h.candidates_created_since(sandbox.state(), started - 3600))
    except Exception as exc:  # one failed run must not lose the others' figures; Ctrl-C still unwinds
        run.error = f"{type(exc).__name__}: {exc}"
        log(f"{label}: FAILED: {run.error}")
    return run


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def _observe(
    run: CustomersRun,
    cc: CustomersConfig,
    engine: Engine,
    batches: dict[str, str],
    workers: h.Workers,
    poller: h.CredentialPoller,
    started: float,
    minutes: float,
    stop_at_first: bool,
    label: str,
    log: Callable[[str], None],
) -> float:
    """Poll the store until every batch finished (or the first one, ``stop_at_first``), the time limit, or a
    stall; fill the batch figures; returns when the observation ended (wall time)."""
    limit_s = minutes * 60.0 * (CUT_FACTOR if stop_at_first else 4.0) + (0 if stop_at_first else 300.0)
    by_batch = {b: name for name, b in batches.items()}
    figures = {f.name: f for f in run.per_credential}
    last_change, last_seen, last_log = time.monotonic(), None, time.monotonic()
    while True:
        progress, records = batches_progress(engine, list(batches.values()))
        total_counts: Counter[str] = Counter()
        for batch_id, (counts, latest) in progress.items():
            f = figures[by_batch[batch_id]]
            f.finished = h.finished(counts)
            f.done = f.finished == f.candidates
            f.batch_end_s = latest - started if (f.done and latest is not None) else None
            total_counts.update(counts)
        run.counts = dict(total_counts)
        run.items_finished = sum(f.finished for f in figures.values())
        run.batches_done = sum(1 for f in figures.values() if f.done)
        now = time.monotonic()
        seen = (run.items_finished, records)  # requests alone are no progress: reconcile lookups go on for hours
        if seen != last_seen:
            last_change, last_seen = now, seen
        if run.batches_done == len(figures):
            run.done = True
            return time.time()
        if stop_at_first and run.batches_done:
            return time.time()
        if time.time() - started > limit_s:
            run.gave_up = "cut" if stop_at_first else "timeout"
            if not stop_at_first:
                run.notes.append(
                    f"timeout after {limit_s:.0f} s: " + "; ".join(unfinished_items(engine, list(batches.values())))
                )
            return time.time()
        if now - last_change > cc.stall_s:
            run.gave_up = "stalled"
            stuck = unfinished_items(engine, list(batches.values()))
            run.notes.append(f"no item finished and no record was made for {cc.stall_s:.0f} s; " + "; ".join(stuck))
            return time.time()
        if now - last_log >= 30:
            last_log = now
            point = _timeline_point(run, poller, started)
            if point is not None:
                run.timeline.append(point)
            log(
                f"{label}: {run.items_finished}/{run.candidates} items, {run.batches_done} batches finished"
                + (_timeline_text(point) if point is not None else "")
            )
        workers.check_alive()
        time.sleep(1.0)


def _timeline_point(run: CustomersRun, poller: h.CredentialPoller, started: float) -> dict[str, float] | None:
    """The last 30 s: summed accepted rate / summed limits, busy cores of the worker, sandbox and machine."""
    span = poller.window(30.0)
    if span is None:
        return None
    a, b = span
    dt = b.t - a.t
    if dt <= 0:
        return None

    def cores(name: str) -> float:
        x, y = a.cpu.get(name), b.cpu.get(name)
        return (y - x) / dt if x is not None and y is not None else math.nan

    machine = (b.machine[0] - a.machine[0]) / dt if a.machine is not None and b.machine is not None else math.nan
    rate = (sum(b.accepted.values()) - sum(a.accepted.values())) / dt
    return {
        "t": b.t - started,
        "items_finished": float(run.items_finished),
        "accepted_per_s": rate,
        "of_limits": rate / run.summed_limit_rate if run.summed_limit_rate else math.nan,
        "worker_cores": cores("worker"),
        "sandbox_cores": cores("sandbox"),
        "machine_cores": machine,
        "load1": b.load1,
        "stale": float(b.stale),
    }


def _timeline_text(p: dict[str, float]) -> str:
    return (
        f"; last 30 s: {p['accepted_per_s']:.0f} req/s = {p['of_limits']:.2f} of the limits, cores: worker"
        f" {p['worker_cores']:.2f}, sandbox {p['sandbox_cores']:.2f}, machine {p['machine_cores']:.2f}, load"
        f" {p['load1']:.2f}" + (" (sandbox stats STALE)" if p["stale"] else "")
    )


def _accepted_of(client_id: str) -> Callable[[h.CredentialSample], int]:
    return lambda s: s.accepted.get(client_id, 0)


def _figures(
    run: CustomersRun,
    customers: Sequence[Customer],
    poller: h.CredentialPoller,
    before: h.Stats,
    after: h.Stats | None,
    started: float,
    observed_until: float,
    final: h.CredentialSample,
) -> None:
    """The steady interval and everything measured over it (module docstring). Without the sandbox's final
    stats (``after`` None), a credential's last request is when the poll saw its count reach its final value."""
    figures = {f.name: f for f in run.per_credential}
    last = poller.latest
    for c in customers:
        f = figures[c.name]
        f.first_at = poller.first_rise(_accepted_of(c.client_id), after=started)
        if f.done:
            exact = h.credential_stat(after, c.client_id, "last_accepted_at") if after is not None else None
            f.last_at = exact if exact is not None else poller.settled_at(_accepted_of(c.client_id))
        rl1 = h.credential_stat(after, c.client_id, "rate_limited") if after is not None else None
        if rl1 is None:
            rl1 = float(last.rate_limited.get(c.client_id, 0))
        f.rate_limited = int(rl1 - (h.credential_stat(before, c.client_id, "rate_limited") or 0))
    started_ok = [(c, figures[c.name]) for c in customers if figures[c.name].first_at is not None]
    run.never_started = [f.name for f in figures.values() if f.first_at is None]
    run.rate_limited = sum(f.rate_limited for f in figures.values())
    run.credentials_with_429 = {f.name: f.rate_limited for f in figures.values() if f.rate_limited}
    ends = sorted(f.batch_end_s for f in figures.values() if f.batch_end_s is not None)
    if ends:
        run.batch_end_min_s, run.batch_end_median_s, run.batch_end_max_s = ends[0], statistics.median(ends), ends[-1]
    if not started_ok:
        run.error = run.error or "no credential sent a request of the export"
        return
    t_first = max(f.first_at for _, f in started_ok if f.first_at is not None)
    t0 = max(f.first_at + c.window_s for c, f in started_ok if f.first_at is not None)
    out_of_work = [(f.last_at, f.name) for f in figures.values() if f.last_at is not None and f.done]
    if out_of_work:
        t1, who = min(out_of_work)
        run.t1_source = f"{who}'s last request (first out of work)"
    else:
        t1, run.t1_source = min(observed_until, final.t), "observation cut (no batch finished)"
    run.t_first, run.t0, run.t1 = t_first - started, t0 - started, t1 - started
    if t1 <= t0:
        run.error = run.error or f"empty steady interval: T0 {t0 - started:.1f}s >= T1 {t1 - started:.1f}s"
        return
    run.steady_s = t1 - t0

    def accepted(cid: str, t: float) -> float:
        return poller.at(lambda s: s.accepted.get(cid, 0), t) or 0.0

    def rate_limited(cid: str, t: float) -> float:
        return poller.at(lambda s: s.rate_limited.get(cid, 0), t) or 0.0

    acc = allowed = acc_first = allowed_first = rl = 0.0
    utils: list[tuple[float, str]] = []
    for c in customers:
        f = figures[c.name]
        f.accepted_steady = accepted(c.client_id, t1) - accepted(c.client_id, t0)
        f.allowed_steady = c.limit * (t1 - t0) / c.window_s
        f.utilisation = ratio(f.accepted_steady, f.allowed_steady)
        acc += f.accepted_steady
        allowed += f.allowed_steady
        acc_first += accepted(c.client_id, t1) - accepted(c.client_id, t_first)
        allowed_first += c.limit * (t1 - t_first) / c.window_s
        rl += rate_limited(c.client_id, t1) - rate_limited(c.client_id, t0)
        if f.utilisation is not None:
            utils.append((f.utilisation, c.name))
    run.accepted_steady, run.allowed_steady = acc, allowed
    run.figure = ratio(acc, allowed)
    run.figure_from_first = ratio(acc_first, allowed_first)
    run.rate_limited_steady = rl
    if utils:
        utils.sort()
        run.util_min, run.util_min_name = utils[0]
        run.util_median, run.util_max = statistics.median(u for u, _ in utils), utils[-1][0]
        run.starving = [name for u, name in utils if u < STARVING * (run.util_median or 0.0)]

    def cpu(name: str) -> Callable[[h.CredentialSample], float | None]:
        return lambda s: s.cpu.get(name)

    def busy(s: h.CredentialSample) -> float | None:
        return s.machine[0] if s.machine is not None else None

    w0, w1 = poller.at(cpu("worker"), t0), poller.at(cpu("worker"), t1)
    if w0 is not None and w1 is not None:
        run.worker_cpu_steady_s = w1 - w0
        run.worker_cores_steady = (w1 - w0) / (t1 - t0)
        run.worker_cpu_per_1000 = ratio(1000.0 * (w1 - w0), acc)
    run.worker_cpu_total_s = final.cpu.get("worker")
    s0, s1 = poller.at(cpu("sandbox"), t0), poller.at(cpu("sandbox"), t1)
    if s0 is not None and s1 is not None:
        run.sandbox_cores_steady = (s1 - s0) / (t1 - t0)
    m0, m1 = poller.at(busy, t0), poller.at(busy, t1)
    if m0 is not None and m1 is not None:
        run.machine_busy_cores_steady = (m1 - m0) / (t1 - t0)
    loads = [s.load1 for s in poller.samples if t0 <= s.t <= t1]
    run.load1_max_steady = max(loads) if loads else None


def _deliveries(
    run: CustomersRun,
    by_batch: dict[str, list[int]],
    finished: set[int],
    counts: h.LogCounts,
    before: h.Stats,
    after: h.Stats | None,
    last: h.CredentialSample,
) -> None:
    """Deliveries of every item (Celery's received lines) once every batch finished, else of the finished items
    (their outcome lines: an item not delivered yet would count as a negative re-queue); per credential, of its
    finished items (their outcome lines); accepted requests per item of a finished batch."""
    for f in run.per_credential:
        ids = [i for i in by_batch.get(f.batch_id or "", []) if i in finished]
        mine = counts.deliveries(ids, received=sum(counts.outcomes.get(i, 0) for i in ids))
        f.parked_per_item = mine.per_item(mine.parked)
        f.further_per_item = mine.per_item(mine.further)
        a1 = h.credential_stat(after, f.client_id, "accepted") if after is not None else last.accepted.get(f.client_id)
        a0 = h.credential_stat(before, f.client_id, "accepted")
        f.accepted_export = int(a1 - a0) if a1 is not None and a0 is not None else None
        f.accepted_per_item = ratio(f.accepted_export, f.candidates) if f.done else None
    if run.done:
        d = counts.deliveries([i for ids in by_batch.values() for i in ids])
        run.deliveries_basis = "every item, Celery's received lines"
    else:
        ids = [i for b in by_batch.values() for i in b if i in finished]
        d = counts.deliveries(ids, received=sum(counts.outcomes.get(i, 0) for i in ids))
        run.deliveries_basis = f"the {len(ids)} finished items, their outcome lines"
    run.deliveries_per_item = d.per_item(d.received)
    run.requeues_per_item = d.per_item(d.requeues)
    run.parts_steps_per_item = d.per_item(d.parts_steps)
    run.further_per_item = d.per_item(d.further)
    run.further_max, run.items_further = d.further_max, d.items_further
    run.parked_per_item = d.per_item(d.parked)
    run.retries_per_item = d.per_item(d.retries)


# --- scenarios ------------------------------------------------------------------------------------------


def customers_scenario(
    cc: CustomersConfig,
    services: Services,
    spec: WorkerSpec,
    *,
    log_dir: Path,
    db_names: Iterator[str],
    log: Callable[[str], None],
) -> CustomersRun:
    """Scenario 5: every batch to the end, one worker ``spec``."""
    return customers_run(
        cc, services, spec, plan(cc, cc.minutes), run_dir=log_dir / f"customers-{spec.slug}",
        db_name=next(db_names), label=f"customers {spec.label}", minutes=cc.minutes, stop_at_first=False, log=log,
    )  # fmt: skip


def pools_scenario(
    cc: CustomersConfig,
    services: Services,
    specs: Sequence[WorkerSpec],
    *,
    customers: int,
    minutes: float,
    log_dir: Path,
    db_names: Iterator[str],
    log: Callable[[str], None],
) -> list[CustomersRun]:
    """The same ``customers`` once per worker spec, each run observed until its first batch finished."""
    cc = replace(cc, customers=customers)
    plan_ = plan(cc, minutes)
    runs = []
    for spec in specs:
        run = customers_run(
            cc, services, spec, plan_, run_dir=log_dir / f"pools-{spec.slug}",
            db_name=next(db_names), label=f"pools {spec.label}", minutes=minutes, stop_at_first=True, log=log,
        )  # fmt: skip
        runs.append(run)
    return runs


# --- output ---------------------------------------------------------------------------------------------


def fmt(value: float | int | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def verdict(runs: Sequence[CustomersRun]) -> str:
    """One line: the pool to use, with its numbers and the others'."""
    ok = [r for r in runs if r.figure is not None and not r.error]
    if not ok:
        return "verdict: none (no run produced the figure)"
    best = max(r.figure or 0.0 for r in ok)
    pool = [r for r in ok if (r.figure or 0.0) >= best - 0.03]
    if best >= GOAL:
        pool = [r for r in pool if (r.figure or 0.0) >= GOAL]
    choice = min(pool, key=lambda r: r.worker_cpu_per_1000 if r.worker_cpu_per_1000 is not None else math.inf)

    def brief(r: CustomersRun) -> str:
        cpu = fmt(r.worker_cpu_per_1000, ".1f")
        return f"{r.worker} {fmt(r.figure)} ({cpu} CPU s/1000 req, {fmt(r.rate_limited, 'd')} 429s)"

    others = "; ".join(brief(r) for r in runs if r is not choice)
    need = ok[0].in_flight_needed
    goal = "meets" if (choice.figure or 0.0) >= GOAL else "MISSES"
    return (
        f"verdict: {brief(choice)} {goal} the goal {GOAL}; others: {others or 'none'}. "
        f"In flight needed ~ summed limits x latency = {need:.0f} requests"
    )


def table(runs: Sequence[CustomersRun], title: str, *, with_verdict: bool) -> str:
    """The runs side by side (one column each)."""
    if not runs:
        return ""
    r0 = runs[0]
    per = r0.per_credential
    limits = f"{min(f.limit for f in per)}..{max(f.limit for f in per)}" if per else "-"
    windows = "/".join(f"{w:g}" for w in sorted({f.window_s for f in per}))
    out = [
        "",
        f"{title}: {r0.customers} customers, each its own credential (limits {limits} per {windows} s window, "
        f"summed {r0.summed_limit_rate:.1f} req/s), latency {r0.latency_ms:g} ms, ONE worker; "
        f"{r0.minutes:g} min of work each; observed until {r0.stop_rule}",
    ]
    rows: list[tuple[str, list[str]]] = []

    def row(name: str, cells: list[str]) -> None:
        rows.append((name, cells))

    def cands(r: CustomersRun) -> str:
        sizes = [f.candidates for f in r.per_credential]
        return f"{min(sizes)}..{max(sizes)}; {r.candidates}" if sizes else "-"

    row("", [r.worker for r in runs])
    row("candidates per customer; total", [cands(r) for r in runs])
    row("connect all / record + park all, s", [f"{fmt(r.connect_s, '.0f')} / {fmt(r.export_s, '.0f')}" for r in runs])
    row("batches finished; items finished", [
        f"{r.batches_done}/{r.customers}; {r.items_finished}/{r.candidates}"
        + ("" if r.done or r.gave_up is None or r.gave_up == "cut" else f" INCOMPLETE ({r.gave_up})") for r in runs
    ])  # fmt: skip
    row("steady T0..T1 s after worker start", [
        f"{fmt(r.t0, '.1f')}..{fmt(r.t1, '.1f')} ({fmt(r.steady_s, '.0f')} s)" for r in runs
    ])  # fmt: skip
    row("  T1 is", [r.t1_source or "-" for r in runs])
    row(f"SUMMED ACCEPTED / SUMMED LIMITS (>= {GOAL})", [fmt(r.figure) for r in runs])
    row("  accepted / allowed requests in [T0,T1]", [
        f"{fmt(r.accepted_steady, '.0f')} / {fmt(r.allowed_steady, '.0f')}" for r in runs
    ])  # fmt: skip
    row(
        "  from every first request instead",
        [f"{fmt(r.figure_from_first)} (from {fmt(r.t_first, '.1f')} s)" for r in runs],
    )
    row("  per credential min (who) / median / max", [
        f"{fmt(r.util_min)} ({r.util_min_name or '-'}) / {fmt(r.util_median)} / {fmt(r.util_max)}" for r in runs
    ])  # fmt: skip
    row(f"  starving (< {STARVING} x median); never started", [
        f"{','.join(r.starving) or 'none'}; {','.join(r.never_started) or 'none'}" for r in runs
    ])  # fmt: skip
    row(
        "429s in the export (in [T0,T1])",
        [f"{fmt(r.rate_limited, 'd')} ({fmt(r.rate_limited_steady, '.0f')})" for r in runs],
    )
    row("  credentials with 429s", [
        ", ".join(f"{k}:{v}" for k, v in sorted(r.credentials_with_429.items())) or "none" for r in runs
    ])  # fmt: skip
    row("batch end after worker start min/med/max s", [
        f"{fmt(r.batch_end_min_s, '.0f')}/{fmt(r.batch_end_median_s, '.0f')}/{fmt(r.batch_end_max_s, '.0f')}"
        for r in runs
    ])  # fmt: skip
    row("worker CPU s in [T0,T1] (cores)", [
        f"{fmt(r.worker_cpu_steady_s, '.1f')} ({fmt(r.worker_cores_steady)})" for r in runs
    ])  # fmt: skip
    row("  worker CPU s per 1000 accepted req", [fmt(r.worker_cpu_per_1000, ".1f") for r in runs])
    row("  worker CPU s in all (start to stop)", [fmt(r.worker_cpu_total_s, ".1f") for r in runs])
    row("machine busy cores in [T0,T1] (sandbox)", [
        f"{fmt(r.machine_busy_cores_steady)} of {r.machine_cores} ({fmt(r.sandbox_cores_steady)})" for r in runs
    ])  # fmt: skip
    row("  1-min load max in [T0,T1]", [fmt(r.load1_max_steady) for r in runs])
    row("re-queues per item: deliveries - 1", [
        f"{fmt(r.requeues_per_item)} (parts {fmt(r.parts_steps_per_item)} + further {fmt(r.further_per_item)})"
        for r in runs
    ])  # fmt: skip
    row(
        "  further: most for one item; items", [f"{fmt(r.further_max, 'd')}; {fmt(r.items_further, 'd')}" for r in runs]
    )
    row("  countdown retries / parked per item", [
        f"{fmt(r.retries_per_item)} / {fmt(r.parked_per_item)}" for r in runs
    ])  # fmt: skip
    row("  task deliveries per item", [fmt(r.deliveries_per_item) for r in runs])
    row("    counted over", [r.deliveries_basis or "-" for r in runs])
    row("accepted requests per item (/ floor)", [
        f"{fmt(r.accepted_per_item)} ({fmt(ratio(r.accepted_per_item, r.floor_per_item))})" for r in runs
    ])  # fmt: skip
    row("candidate records at sandbox / exported", [
        f"{fmt(r.candidate_records, 'd')} / {fmt(r.items_exported, 'd')}" for r in runs
    ])  # fmt: skip
    width = max(len(name) for name, _ in rows) + 4
    colw = max(18, *(len(c) + 2 for _, cells in rows for c in cells))
    for name, cells in rows:
        out.append(("  " + name).ljust(width) + "".join(c.ljust(colw) for c in cells))
    for r in runs:
        out.append(f"  {r.worker}: uptime before: {r.uptime_before or '-'}")
        out.append(f"  {r.worker}: uptime after:  {r.uptime_after or '-'}")
        if r.timeline:
            out.append(f"  {r.worker}: every 30 s after the worker started:")
            for p in r.timeline:
                out.append(f"    {p['t']:5.0f} s, {p['items_finished']:.0f} items{_timeline_text(p)}")
        for note in r.notes:
            out.append(f"  {r.worker}: NOTE {note}")
        if r.error:
            out.append(f"  {r.worker}: ERROR {r.error}")
    if with_verdict:
        out.append(verdict(runs))
    return "\n".join(out)


def per_credential_table(run: CustomersRun) -> str:
    """Each credential of a run, two per line: limit, window, batch, accepted / allowed in [T0, T1], 429s, batch
    end, accepted requests and parks per item, further deliveries per item."""
    head = ("name", "limit/window", "items", "util", "429s", "end s", "acc/item", "parked/item", "further/item")
    rows = [head]
    for f in run.per_credential:
        end = fmt(f.batch_end_s, ".0f")
        rows.append(
            (f.name, f"{f.limit}/{f.window_s:g}", str(f.candidates), fmt(f.utilisation), str(f.rate_limited), end,
             fmt(f.accepted_per_item), fmt(f.parked_per_item), fmt(f.further_per_item))
        )  # fmt: skip
    widths = [max(len(r[i]) for r in rows) + 2 for i in range(len(head))]

    def line(r: tuple[str, ...]) -> str:
        return "".join(c.rjust(w) for c, w in zip(r, widths, strict=True))

    body = rows[1:]
    half = (len(body) + 1) // 2
    left, right = body[:half], body[half:]
    out = [
        f"  {run.worker} per credential (util = accepted / allowed in [T0, T1]; end = batch end after worker start):"
    ]
    out.append("  " + line(head) + "  |" + line(head))
    for i, r in enumerate(left):
        out.append("  " + line(r) + ("  |" + line(right[i]) if i < len(right) else ""))
    return "\n".join(out)


def as_json(run: CustomersRun) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(run)
