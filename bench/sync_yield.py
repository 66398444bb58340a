"""Sync confirmation yields to exports: the same export with and without a read-back backlog due, side by side.

    .venv/bin/python -m bench.sync_yield [--quick] [--candidates 200] [--backlog 300] [--limit 50] [--window 10]
        [--check-every 2] [--workers 2] [--concurrency 8] [--confirm-timeout 120] [--json-out FILE] [--log-dir DIR]

Claim measured (docs/design.md, "Sync confirmation"): read-backs never slow an export down. A confirmation
turn reads nothing for a credential with items ``queued`` or ``sending``, spends at most
``GHX_SYNC__BUDGET_SHARE`` of the learned limit, and takes tickets from the shared limiter without waiting.

Each run is the real system as :mod:`bench.throughput` starts it (:mod:`bench.harness`): the sandbox as a
subprocess (``ghexport sandbox --json --port 0 --rate-limit LIMIT --window W``), a fresh PostgreSQL database
(``ghx_sync_<pid>_<n>``, dropped after), Redis database 14 by default (flushed; not the 13 of
``bench.throughput`` nor the 12 of the integration tests), ``--workers`` x ``ghexport worker --concurrency C``.
Both runs have the same two phases; only what is due for a read-back when the measured export starts differs.

1. Setup (not measured): the sandbox's seeded credential is given a limit of ``--backlog-limit`` (5000) per
   window (``POST /_sandbox/credentials`` replaces it), so the backlog of ``--backlog`` (300) generated
   profiles is exported in seconds; workers run with ``GHX_EXPORT__RECOVERY_INTERVAL_S=2`` so the
   maintenance probe sees every new record quickly (``visible_at``, as it would for a backlog minutes old).
   - A: ``GHX_SYNC__CHECK_EVERY_S=2``; the wait goes on until every backlog item is ``synced``.
   - B: ``GHX_SYNC__ENABLED=false``; the wait goes on until every backlog item is ``exported`` and seen. Then
     the bench schedules the backlog with the project's own ``shared.store.sync.schedule_new`` (the window
     from ``exported_at``) and a check interval of one day, so no read-back is due yet.
   The workers are stopped, Redis is flushed (the limiter forgets the setup's limit: the measured export
   starts from the limiter's first guess in both runs, as in ``bench.throughput``), and the credential gets
   the measured limit back (``--limit`` per ``--window`` s).
2. Measured: workers started with ``GHX_SYNC__CHECK_EVERY_S=--check-every`` (2 s: a turn about every 2 s,
   in both runs), ``--window`` + 1 s of quiet (nothing of the setup left in the sandbox's window), then
   ``ghexport export --json`` of the same ``--candidates`` profiles in A and B. In B, the moment the command
   returns (every item ``queued``), the bench sets ``sync_check_at = now`` on the whole backlog: all of it is
   due for the entire export, and every turn finds it. (Made due after the enqueue, not before: due earlier,
   turns would confirm it, 250 items a turn, before the first export request, and the run would measure a
   race instead of the yield.) In A nothing is due when the export starts; the export's own items become
   due 2 s after each is exported, in both runs, and must wait as well.

Figures, per run:

- wall = from the start of ``ghexport export`` to the last item's finish (latest ``exported_at``, or
  ``updated_at`` of an item that ended otherwise: a later read-back's write must not move it);
- utilisation = accepted / allowed, ``bench.throughput.measure`` as is, with the sandbox's counters read at the
  first ``/_sandbox/stats`` poll (every ``--poll`` s) after the export's end, so read-backs after the export do
  not count (its ``last_accepted_at`` is then the export's last accepted request);
- sync turns taken during the export: each time the turn key ``ghx:sync-turn`` was set anew (polled with
  ``PTTL`` with the stats);
- read-backs during the export, two ways. The sandbox counts by route, not query: ``GET /v3/candidates``
  serves the email lookups (``?email=``), the export's readability checks and the read-backs (``?ids=``),
  ``GET /v3/applications`` the parts step and the read-backs. So those routes are given for A and B and
  their difference B - A (the export does the same requests in both, up to retries). And from the store:
  items read back with ``synced_at`` (or a check) no later than the export's end, and how many distinct
  ``synced_at`` (one per read-back of up to fifty items: two requests);
- after the export: seconds from its end until the whole backlog, and the export's own items, were
  ``synced`` (first and last ``synced_at``), the read-back GETs and 429s in that time.

``--quick``: 60 candidates measured (200 without), the same 300-item backlog; about six minutes. Logs stay in
``--log-dir`` (a new temporary directory by default). Exit status 0 when both runs finished, 1 otherwise,
130 on Ctrl-C.
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
from contextlib import ExitStack, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import redis
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import col

from bench import harness as h
from bench import throughput as tp
from shared.connections.crypto import generate_key
from shared.harvest.sandbox import seed
from shared.profiles.model import Profile
from shared.settings import SyncSettings
from shared.store import sync as store_sync
from shared.store.db import make_engine
from shared.store.models import Item, ItemStatus, aware, utcnow
from workers.sync import TURN_KEY

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/14"
NOT_DUE_S = 86400.0
"""B's backlog is scheduled with this check interval during the setup: not due until the bench says so."""
READ_ROUTES = ("GET /v3/candidates", "GET /v3/applications")
SETTLED = frozenset(
    s.value for s in (ItemStatus.SYNCED, ItemStatus.SYNC_OVERDUE, ItemStatus.SKIPPED, ItemStatus.FAILED)
)
"""Statuses no read-back will change any more."""
RUNS = {"A": "A: no backlog", "B": "B: backlog due"}


@dataclass(frozen=True)
class Config:
    candidates: int
    backlog: int
    limit: int
    window_s: float
    backlog_limit: int
    check_every_s: float
    workers: int
    concurrency: int
    confirm_timeout_s: float
    poll_s: float
    redis_url: str
    pg_host: str
    pg_port: int
    pg_users: tuple[str, ...]
    log_dir: Path
    json_out: Path | None
    quick: bool


@dataclass
class YieldRun:
    """One run's figures (``export`` holds those of ``bench.throughput``)."""

    name: str
    export: tp.ExportRun
    backlog: int
    backlog_state: str = ""
    """What the backlog was when the measured export started (``300 synced``, ``300 due``)."""
    setup_s: float | None = None
    quiet_accepted: int | None = None
    """Requests the sandbox accepted during the quiet time before the measured export (should be 0)."""
    export_end_at: float | None = None
    turns_during_export: int | None = None
    reads_during_export: dict[str, int] = field(default_factory=dict)
    """Route -> requests (any status) from the export's start to its end: GET /v3/candidates, /v3/applications."""
    backlog_read_during_export: int | None = None
    backlog_chunks_during_export: int | None = None
    own_read_during_export: int | None = None
    own_chunks_during_export: int | None = None
    backlog_first_synced_s: float | None = None
    """After the export's end (negative: during it)."""
    backlog_all_synced_s: float | None = None
    own_first_synced_s: float | None = None
    own_all_synced_s: float | None = None
    confirmed: bool = False
    reads_after_export: dict[str, int] = field(default_factory=dict)
    rate_limited_after_export: int | None = None
    counts_after: dict[str, int] = field(default_factory=dict)
    error: str | None = None


# --- observation --------------------------------------------------------------------------------------


class Observer(h.StatsPoller):
    """:class:`bench.harness.StatsPoller` that keeps every stats document and sees each sync turn taken."""

    def __init__(self, sandbox: h.SandboxProcess, interval_s: float, redis_url: str) -> None:
        super().__init__(sandbox, interval_s)
        self.docs: list[tuple[float, h.Stats]] = []
        self.turns: list[float] = []
        """When the turn key was seen set anew (its TTL appeared or grew): one confirmation turn each."""
        self._redis = redis.Redis.from_url(redis_url)
        self._last_pttl = -2

    def _read(self) -> h.Sample:
        t0 = time.time()
        stats = self.sandbox.stats()
        t = (t0 + time.time()) / 2
        self.docs.append((t, stats))
        pttl = int(self._redis.pttl(TURN_KEY))
        if pttl > 0 and (self._last_pttl <= 0 or pttl > self._last_pttl + 50):
            self.turns.append(t)
        self._last_pttl = pttl
        return h.Sample(t, h.accepted_requests(stats), int(stats["rate_limited"]))

    def __enter__(self) -> Observer:
        super().__enter__()
        return self

    def stop(self) -> None:
        super().stop()
        self._redis.close()

    def doc_after(self, t: float) -> h.Stats:
        """The first stats document read at or after ``t`` (the last one if none)."""
        return next((doc for ts, doc in self.docs if ts >= t), self.docs[-1][1])

    def turns_between(self, start: float, end: float) -> int:
        return sum(1 for t in self.turns if start <= t <= end)


@dataclass(frozen=True)
class ItemTimes:
    status: str
    finished_at: float
    """``exported_at`` when the item was exported, else its ``updated_at``."""
    synced_at: float | None
    checked_at: float | None
    """``updated_at`` of an item read back without a match yet (still ``exported`` or ``sync_overdue``)."""
    visible: bool


def item_times(engine: Engine, batch_id: str) -> list[ItemTimes]:
    """Every item of a batch, with the moments the figures need (epoch seconds)."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                col(Item.status), col(Item.exported_at), col(Item.updated_at), col(Item.synced_at),
                col(Item.sync_checks), col(Item.visible_at),
            ).where(col(Item.batch_id) == batch_id)
        ).all()  # fmt: skip
    out = []
    for status, exported_at, updated_at, synced_at, checks, visible_at in rows:
        finished = aware(exported_at or updated_at).timestamp()
        synced = aware(synced_at).timestamp() if synced_at is not None else None
        checked = aware(updated_at).timestamp() if synced is None and checks else None
        out.append(ItemTimes(str(status), finished, synced, checked, visible_at is not None))
    return out


def read_during(items: Sequence[ItemTimes], start: float, end: float) -> tuple[int, int]:
    """Items read back between ``start`` and ``end``, and the distinct ``synced_at`` among them (one per
    read-back request pair of up to fifty items that matched)."""
    read = [i for i in items if start <= (i.synced_at or i.checked_at or math.inf) <= end]
    return len(read), len({i.synced_at for i in read if i.synced_at is not None})


def synced_span(items: Sequence[ItemTimes], since: float) -> tuple[float | None, float | None]:
    """First and last ``synced_at`` after ``since``; the last is ``None`` unless every item is synced."""
    times = [i.synced_at for i in items if i.synced_at is not None]
    if not times:
        return None, None
    last = max(times) - since if len(times) == len(items) else None
    return min(times) - since, last


def wait_until(what: str, done: Callable[[], bool], timeout_s: float, check: Callable[[], None]) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        check()
        if time.monotonic() > deadline:
            raise h.HarnessError(f"not within {timeout_s:.0f} s: {what}")
        time.sleep(0.5)


def make_due(engine: Engine, batch_id: str) -> int:
    """Every ``exported`` item of the batch due for a read-back now."""
    with engine.begin() as conn:
        done = conn.execute(
            sa.update(Item)
            .where(col(Item.batch_id) == batch_id, col(Item.status) == ItemStatus.EXPORTED)
            .values(sync_check_at=utcnow())
        )
        return int(done.rowcount)


def route_counts(after: h.Stats, before: h.Stats) -> dict[str, int]:
    delta = h.requests_delta(after, before)
    return {route: sum(delta.get(route, {}).values()) for route in READ_ROUTES}


# --- one run ------------------------------------------------------------------------------------------


def setup_env(name: str) -> dict[str, str]:
    env = {"GHX_EXPORT__RECOVERY_INTERVAL_S": "2"}
    if name == "A":
        env["GHX_SYNC__CHECK_EVERY_S"] = "2"
    else:
        env["GHX_SYNC__ENABLED"] = "false"
    return env


def export_timeout(cfg: Config, n: int) -> float:
    return max(600.0, 10.0 * n * 7 * cfg.window_s / cfg.limit)


@dataclass(frozen=True)
class Inputs:
    """The profiles files, written once: the measured export (the same in both runs) and the backlog."""

    profiles_file: Path
    profiles: list[Profile]
    backlog_file: Path


def run(cfg: Config, name: str, db_name: str, inputs: Inputs) -> YieldRun:
    label = RUNS[name]
    run_dir = cfg.log_dir / name
    result = YieldRun(name, tp.ExportRun(label, cfg.window_s, cfg.limit, cfg.candidates, str(run_dir)), cfg.backlog)
    try:
        with ExitStack() as stack:
            _run(cfg, name, db_name, inputs, result, stack)
    except Exception as exc:  # one failed run must not lose the other's figures; Ctrl-C still unwinds
        result.error = result.export.error = f"{type(exc).__name__}: {exc}"
        tp.log(f"{label}: FAILED: {result.error}")
    return result


def _run(cfg: Config, name: str, db_name: str, inputs: Inputs, r: YieldRun, stack: ExitStack) -> None:
    label = RUNS[name]
    run_dir = cfg.log_dir / name
    for sub in ("setup", "export"):
        (run_dir / sub).mkdir(parents=True, exist_ok=True)
    h.flush_redis(cfg.redis_url)
    db_url = stack.enter_context(h.fresh_database(db_name, host=cfg.pg_host, port=cfg.pg_port, users=cfg.pg_users))
    sandbox = stack.enter_context(
        h.sandbox_process(run_dir, rate_limit=cfg.limit, window_s=cfg.window_s, env=h.clean_env({}))
    )
    engine = make_engine(db_url)
    stack.callback(engine.dispose)
    key = generate_key()
    cred = (sandbox.client_id, sandbox.client_secret, seed.ALL_SCOPES)

    # 1. setup: the backlog, exported fast, then confirmed (A) or left exported and not yet due (B)
    t_setup = time.monotonic()
    sandbox.add_credential(*cred, rate_limit=cfg.backlog_limit, window_s=cfg.window_s)
    setup = h.System(run_dir / "setup", cfg.redis_url, db_url, sandbox, key, setup_env(name))
    setup.connect("a", sandbox.client_id, sandbox.client_secret, sandbox.user_email)
    tp.log(f"{label}: setup: exporting the backlog of {cfg.backlog} at {cfg.backlog_limit} per {cfg.window_s:g} s")
    with h.running_workers(setup, count=cfg.workers, concurrency=cfg.concurrency) as workers:
        b = setup.export("a", inputs.backlog_file, job_id=seed.OPEN_JOB_ID)
        end = h.wait_for_batch(
            engine, b.batch_id, timeout_s=600, stall_s=120, activity=sandbox.accepted, check=workers.check_alive,
            progress=tp.progress_logger(f"{label} setup", cfg.backlog),
        )  # fmt: skip
        if not end.done or end.counts.get(ItemStatus.EXPORTED.value, 0) + end.counts.get("synced", 0) != cfg.backlog:
            raise h.HarnessError(f"the backlog did not export cleanly: {end.counts}")
        if name == "A":
            wait_until(
                "every backlog item synced",
                lambda: all(i.status == ItemStatus.SYNCED.value for i in item_times(engine, b.batch_id)),
                180, workers.check_alive,
            )  # fmt: skip
        else:
            wait_until(
                "every backlog record seen by the maintenance probe",
                lambda: all(i.visible for i in item_times(engine, b.batch_id)),
                180, workers.check_alive,
            )  # fmt: skip
    h.flush_redis(cfg.redis_url)
    sandbox.add_credential(*cred, rate_limit=cfg.limit, window_s=cfg.window_s)
    if name == "B":
        scheduled = store_sync.schedule_new(engine, SyncSettings(check_every_s=NOT_DUE_S))
        if scheduled != cfg.backlog:
            raise h.HarnessError(f"scheduled {scheduled} backlog items, expected {cfg.backlog}")
    r.setup_s = time.monotonic() - t_setup

    # 2. measured: the same export in both runs, sync turns every check_every_s
    measured = h.System(
        run_dir / "export", cfg.redis_url, db_url, sandbox, key, {"GHX_SYNC__CHECK_EVERY_S": f"{cfg.check_every_s:g}"}
    )
    with h.running_workers(measured, count=cfg.workers, concurrency=cfg.concurrency) as workers:
        quiet_from = sandbox.accepted()
        tp.log(f"{label}: setup done in {r.setup_s:.0f}s; workers up, quiet for {cfg.window_s + 1:g}s")
        time.sleep(cfg.window_s + 1.0)
        with Observer(sandbox, cfg.poll_s, cfg.redis_url) as obs:
            before = sandbox.stats()
            r.quiet_accepted = h.accepted_requests(before) - quiet_from
            tp.log(f"{label}: exporting {cfg.candidates} candidates")
            started = measured.export("a", inputs.profiles_file, job_id=seed.OPEN_JOB_ID)
            if name == "B":
                due = make_due(engine, b.batch_id)
                r.backlog_state = f"{due} due (exported)"
            else:
                synced = sum(1 for i in item_times(engine, b.batch_id) if i.status == ItemStatus.SYNCED.value)
                r.backlog_state = f"{synced} synced"
            r.export.batch_id = started.batch_id
            r.export.export_command_s = started.command_returned - started.command_started
            end = h.wait_for_batch(
                engine, started.batch_id, timeout_s=export_timeout(cfg, cfg.candidates),
                stall_s=max(120.0, 4 * cfg.window_s), activity=lambda: obs.latest.accepted,
                check=workers.check_alive, progress=tp.progress_logger(label, cfg.candidates),
            )  # fmt: skip
            own = item_times(engine, started.batch_id)
            export_end = max(i.finished_at for i in own) if end.done else end.detected_at
            r.export_end_at = export_end
            wall = export_end - started.command_started
            tp.log(f"{label}: export {'done' if end.done else end.gave_up} after {wall:.0f}s; waiting for confirmation")
            batches = (b.batch_id, started.batch_id)
            if end.done:
                with suppress(h.HarnessError):
                    wait_until(
                        "backlog and export confirmed",
                        lambda: all(i.status in SETTLED for batch in batches for i in item_times(engine, batch)),
                        cfg.confirm_timeout_s, workers.check_alive,
                    )  # fmt: skip
            time.sleep(max(1.0, 5 * cfg.poll_s))
        if obs.error is not None:
            raise h.HarnessError(f"the sandbox's stats could not be read: {obs.error!r}")
        at_end = obs.doc_after(export_end)
        final = obs.docs[-1][1]
        state = sandbox.state()

    e = r.export
    e.done, e.counts, e.finished = end.done, end.counts, h.finished(end.counts)
    e.batch_wall_s = export_end - started.command_started
    if not end.done:
        e.error = r.error = f"batch unfinished, wait gave up ({end.gave_up}): {end.counts}"
    tp.measure(e, obs, before, at_end, state, workers, end, started, inputs.profiles, sandbox)
    r.turns_during_export = obs.turns_between(started.command_started, export_end)
    r.reads_during_export = route_counts(at_end, before)
    r.reads_after_export = route_counts(final, at_end)
    r.rate_limited_after_export = int(final["rate_limited"]) - int(at_end["rate_limited"])
    backlog_items, own_items = item_times(engine, b.batch_id), item_times(engine, started.batch_id)
    r.backlog_read_during_export, r.backlog_chunks_during_export = read_during(
        backlog_items, started.command_started, export_end
    )
    r.own_read_during_export, r.own_chunks_during_export = read_during(own_items, started.command_started, export_end)
    r.backlog_first_synced_s, r.backlog_all_synced_s = synced_span(backlog_items, export_end)
    r.own_first_synced_s, r.own_all_synced_s = synced_span(own_items, export_end)
    r.confirmed = all(i.status in SETTLED for i in backlog_items + own_items)
    counts: dict[str, int] = {}
    for i in backlog_items + own_items:
        counts[i.status] = counts.get(i.status, 0) + 1
    r.counts_after = counts


# --- output -------------------------------------------------------------------------------------------


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1f}"


def _reads(counts: dict[str, int]) -> str:
    return " + ".join(str(counts.get(route, 0)) for route in READ_ROUTES) if counts else "-"


def table(cfg: Config, runs: Sequence[YieldRun]) -> str:
    """The runs side by side, then B / A."""
    fmt, ratio = tp.fmt, tp.ratio
    by = {r.name: r for r in runs}
    a, b = by.get("A"), by.get("B")
    rows: list[tuple[str, list[str]]] = []

    def row(name: str, cell: Callable[[YieldRun], str], vs: str = "") -> None:
        rows.append((name, [cell(r) for r in runs] + [vs]))

    def vs(get: Callable[[YieldRun], float | None]) -> str:
        if a is None or b is None:
            return "-"
        return fmt(ratio(get(b), get(a)))

    def diff(route: str) -> str:
        if a is None or b is None or not a.reads_during_export or not b.reads_during_export:
            return "-"
        return f"{b.reads_during_export[route] - a.reads_during_export[route]:+d}"

    rows.append(("", [RUNS[r.name] for r in runs] + ["B / A"]))
    row("backlog when the export starts", lambda r: r.backlog_state or "-")
    row("export: finished / total, wall s", lambda r: (
        f"{r.export.finished}/{r.export.candidates}, {fmt(r.export.batch_wall_s, '.1f')}"
        + ("" if r.export.done else " INCOMPLETE")
    ), vs(lambda r: r.export.batch_wall_s))  # fmt: skip
    row("utilisation: accepted / allowed", lambda r: fmt(r.export.utilisation), vs(lambda r: r.export.utilisation))
    row("  accepted / allowed requests", lambda r: f"{fmt(r.export.accepted, 'd')} / {fmt(r.export.allowed, '.0f')}")
    row("  run: first..last accepted, s", lambda r: fmt(r.export.run_s, ".1f"), vs(lambda r: r.export.run_s))
    row("  429s (after the first window)", lambda r: (
        f"{fmt(r.export.rate_limited, 'd')} ({fmt(r.export.rate_limited_after_first_window, 'd')})"
    ))  # fmt: skip
    row(
        "  Harvest requests per item",
        lambda r: fmt(r.export.requests_per_item),
        vs(lambda r: r.export.requests_per_item),
    )
    row("sync turns taken during the export", lambda r: fmt(r.turns_during_export, "d"))
    row("GET /v3/candidates during the export", lambda r: str(r.reads_during_export.get(READ_ROUTES[0], "-")),
        "B-A " + diff(READ_ROUTES[0]))  # fmt: skip
    row("GET /v3/applications during the export", lambda r: str(r.reads_during_export.get(READ_ROUTES[1], "-")),
        "B-A " + diff(READ_ROUTES[1]))  # fmt: skip
    row("items read back during the export", lambda r: (
        f"backlog {fmt(r.backlog_read_during_export, 'd')}, own {fmt(r.own_read_during_export, 'd')}"
    ))  # fmt: skip
    row("  read-backs (x 2 requests)", lambda r: (
        f"{fmt(r.backlog_chunks_during_export, 'd')} + {fmt(r.own_chunks_during_export, 'd')}"
    ))  # fmt: skip
    row("backlog synced after the export: first..all, s", lambda r: (
        "- (synced before)" if r.name == "A" else f"{_secs(r.backlog_first_synced_s)}..{_secs(r.backlog_all_synced_s)}"
    ))  # fmt: skip
    row("own items synced after the export: first..all, s", lambda r: (
        f"{_secs(r.own_first_synced_s)}..{_secs(r.own_all_synced_s)}"
    ))  # fmt: skip
    row("GETs cand. + appl. until all synced", lambda r: _reads(r.reads_after_export))
    row("429s until all synced", lambda r: fmt(r.rate_limited_after_export, "d"))
    row("statuses after", lambda r: ", ".join(f"{s} {n}" for s, n in sorted(r.counts_after.items())) or "-")

    width = max(len(name) for name, _ in rows) + 4
    ncols = len(rows[0][1])
    colw = [max(12, *(len(cells[i]) + 2 for _, cells in rows)) for i in range(ncols)]
    out = [
        f"sync yield: sandbox limit {cfg.limit} per {cfg.window_s:g} s window, {cfg.candidates} candidates measured, "
        f"backlog {cfg.backlog}, {cfg.workers} workers x concurrency {cfg.concurrency}, "
        f"GHX_SYNC__CHECK_EVERY_S={cfg.check_every_s:g} in both runs",
        "",
    ]
    for i, (name, cells) in enumerate(rows):
        out.append(("  " if i else "") + name.ljust(width - (2 if i else 0)) + "".join(
            c.ljust(colw[j]) for j, c in enumerate(cells)
        ))  # fmt: skip
    out += [
        "",
        f"{READ_ROUTES[0]} also serves the export's email lookups (one per candidate) and readability checks,",
        f"{READ_ROUTES[1]} its parts step: B - A is what the backlog added. Read-backs from the store: items",
        "whose read-back was written during the export, and distinct synced_at (one read-back = 2 requests).",
    ]
    for r in runs:
        if r.quiet_accepted:
            out.append(f"  {r.name}: {r.quiet_accepted} requests accepted during the quiet time before the export")
        if r.error:
            out.append(f"  {r.name}: {r.error}")
    return "\n".join(line.rstrip() for line in out)


# --- command line -------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> Config:
    p = argparse.ArgumentParser(
        prog="python -m bench.sync_yield", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="60 candidates measured (about six minutes)")
    p.add_argument("--candidates", type=int, default=None, help="profiles of the measured export (200; --quick 60)")
    p.add_argument("--backlog", type=int, default=300, help="profiles exported before, then confirmed (A) or due (B)")
    p.add_argument("--limit", type=int, default=50, help="sandbox requests per window during the measured export")
    p.add_argument("--window", type=float, default=10.0, help="sandbox window, s")
    p.add_argument("--backlog-limit", type=int, default=5000, help="sandbox limit per window while the backlog exports")
    p.add_argument("--check-every", type=float, default=2.0, help="GHX_SYNC__CHECK_EVERY_S of the measured export")
    p.add_argument("--workers", type=int, default=2, help="ghexport worker processes")
    p.add_argument("--concurrency", type=int, default=8, help="--concurrency of each worker")
    p.add_argument("--confirm-timeout", type=float, default=120.0, help="max wait for confirmation after, s")
    p.add_argument("--poll", type=float, default=0.1, help="sandbox stats poll interval, s")
    p.add_argument("--redis-url", default=DEFAULT_REDIS_URL, help="Redis database the bench owns (flushed)")
    p.add_argument("--pg-host", default="127.0.0.1")
    p.add_argument("--pg-port", type=int, default=5432)
    p.add_argument("--pg-user", default=None, help="PostgreSQL user (default: postgres, else root)")
    p.add_argument("--log-dir", type=Path, default=None, help="where runs keep their logs (default: a temp dir)")
    p.add_argument("--json-out", type=Path, default=None, help="also write every figure as JSON here")
    a = p.parse_args(argv)
    if a.backlog < 1 or (a.candidates is not None and a.candidates < 1) or a.check_every <= 0:
        p.error("--backlog and --candidates take at least 1, --check-every a positive number of seconds")
    log_dir = a.log_dir or Path(tempfile.mkdtemp(prefix="ghx-sync-yield-"))
    return Config(
        candidates=a.candidates or (60 if a.quick else 200),
        backlog=a.backlog,
        limit=a.limit,
        window_s=a.window,
        backlog_limit=a.backlog_limit,
        check_every_s=a.check_every,
        workers=a.workers,
        concurrency=a.concurrency,
        confirm_timeout_s=a.confirm_timeout,
        poll_s=a.poll,
        redis_url=a.redis_url,
        pg_host=a.pg_host,
        pg_port=a.pg_port,
        pg_users=(a.pg_user,) if a.pg_user else ("postgres", "root"),
        log_dir=log_dir.resolve(),
        json_out=a.json_out,
        quick=a.quick,
    )


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM: unwind like Ctrl-C, so every run stops what it started


def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    cfg.log_dir.mkdir(parents=True, exist_ok=True)
    tp.log(f"logs in {cfg.log_dir}")
    inputs = Inputs(
        cfg.log_dir / "profiles.jsonl",
        h.write_profiles(cfg.log_dir / "profiles.jsonl", cfg.candidates, prefix="bench-export"),
        cfg.log_dir / "backlog.jsonl",
    )
    h.write_profiles(inputs.backlog_file, cfg.backlog, prefix="bench-backlog")
    db_names: Iterator[str] = (f"ghx_sync_{os.getpid()}_{n}" for n in range(1_000_000))
    runs: list[YieldRun] = []
    interrupted = False
    started = time.monotonic()
    try:
        for name in RUNS:
            runs.append(run(cfg, name, next(db_names), inputs))
    except KeyboardInterrupt:
        interrupted = True
        tp.log("interrupted: every process started was stopped; partial results follow")
    print(table(cfg, runs))
    print(f"\n(logs: {cfg.log_dir}; {time.monotonic() - started:.0f}s in all; load: {h.uptime_line()})")
    if cfg.json_out is not None:
        doc: dict[str, Any] = {
            "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()},
            "runs": [asdict(r) for r in runs],
            "interrupted": interrupted,
        }
        cfg.json_out.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    if interrupted:
        return 130
    return 1 if len(runs) < len(RUNS) or any(r.error or not r.export.done for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
