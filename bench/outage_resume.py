"""How soon a batch goes on after a Greenhouse outage of writes: the same scenario, repeated.

    .venv/bin/python -m bench.outage_resume [--runs 3] [--candidates 40] [--outage 120] [--limit 500]
        [--window 10] [--latency-ms 20] [--visibility-delay 2] [--workers 1] [--concurrency 4] [--log-dir DIR]

Claim measured (docs/design.md, "Greenhouse outages"): an item that waits for Greenhouse goes on when
Greenhouse is back, not at the end of an exponential countdown drawn while it was away. Goal: the batch ends
within 30 s of Greenhouse's return, in every run.

Each run is a fresh system as :mod:`bench.throughput` starts it (:mod:`bench.harness`): the sandbox as a
subprocess (``ghexport sandbox --json --port 0 --rate-limit LIMIT --window W --latency-ms L
--visibility-delay V``), a fresh PostgreSQL database (``ghx_outage_<pid>_<n>``, dropped after), Redis database
5 by default (flushed; not the 13 of ``bench.throughput`` nor the 14 of ``bench.sync_yield``), ``--workers`` x
``ghexport worker --concurrency C``, ``ghexport connect`` and ``ghexport export`` of ``--candidates`` generated
profiles. Once a third of the items have their Greenhouse record (the records are made before any item's
parts, so the outage meets creates and lookups in flight), ``POST /_sandbox/outage {"seconds": OUTAGE,
"writes_only": true}``: every /v3 write answers 503 while reads and token mints work. Greenhouse's return is
the outage's end on the sandbox's clock (the wall clock of this machine); the batch's end is its last item's
``exported_at`` (``updated_at`` for an item that ended otherwise).

Printed per run: seconds from Greenhouse's return to the batch's end, the items still waiting when the outage
began, failed items, duplicates (Greenhouse records per profile, by its unique profile link), and attempts
spent (items with more than one). Exit status 0 when every run ended within 30 s with none failed and no
duplicate, 1 otherwise, 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import FrameType

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import col

from bench import harness as h
from shared.connections.crypto import generate_key
from shared.harvest.sandbox import seed
from shared.store.db import make_engine
from shared.store.models import ACTIVE_STATUSES, Item, ItemStatus, aware

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/2"
RESUME_WITHIN_S = 30.0
"""The goal: the batch ends within this long of Greenhouse's return."""


@dataclass(frozen=True)
class Config:
    runs: int
    candidates: int
    outage_s: float
    limit: int
    window_s: float
    latency_ms: float
    visibility_delay_s: float
    workers: int
    concurrency: int
    redis_url: str
    log_dir: Path


@dataclass
class OutageRun:
    """One run's figures."""

    n: int
    waiting: int = 0
    """Items not finished when the outage began."""
    after_return_s: float | None = None
    """Seconds from Greenhouse's return to the batch's end (None: the batch did not end)."""
    failed: int = 0
    duplicates: int = 0
    spent: int = 0
    """Items that spent more than one attempt."""
    error: str = ""

    def ok(self) -> bool:
        return (
            not self.error
            and self.after_return_s is not None
            and self.after_return_s < RESUME_WITHIN_S
            and self.failed == 0
            and self.duplicates == 0
        )

    def line(self) -> str:
        if self.after_return_s is None:
            return f"run {self.n}: {self.error or 'unfinished'}"
        return (
            f"run {self.n}: batch ended {self.after_return_s:.1f} s after Greenhouse's return "
            f"({self.waiting} items waited; failed {self.failed}, duplicates {self.duplicates}, "
            f"items with attempts spent {self.spent})" + (f"; {self.error}" if self.error else "")
        )


def log(msg: str) -> None:
    """Progress on stderr (the results go to stdout)."""
    sys.stderr.write(f"[{time.strftime('%H:%M:%S')}] {msg}\n")
    sys.stderr.flush()


@dataclass(frozen=True)
class ItemNow:
    """One item of the batch as the store has it."""

    status: ItemStatus
    has_record: bool
    attempts: int
    end: datetime
    """``exported_at``, else ``updated_at``: when a finished item finished."""


def items_now(engine: Engine, batch_id: str) -> list[ItemNow]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                col(Item.status), col(Item.greenhouse_candidate_id), col(Item.attempts), col(Item.exported_at),
                col(Item.updated_at),
            ).where(col(Item.batch_id) == batch_id)
        ).all()  # fmt: skip
    return [ItemNow(ItemStatus(s), cid is not None, n, exported or updated) for s, cid, n, exported, updated in rows]


def one_run(cfg: Config, n: int, db_name: str) -> OutageRun:
    """One export with a write outage mid-batch, on a fresh system."""
    result = OutageRun(n)
    run_dir = cfg.log_dir / f"run-{n}"
    run_dir.mkdir(parents=True, exist_ok=True)
    profiles = h.write_profiles(run_dir / "profiles.jsonl", cfg.candidates, prefix=f"outage-{n}")
    with ExitStack() as stack:
        h.flush_redis(cfg.redis_url)
        db_url = stack.enter_context(h.fresh_database(db_name))
        sandbox = stack.enter_context(
            h.sandbox_process(
                run_dir, rate_limit=cfg.limit, window_s=cfg.window_s, latency_ms=cfg.latency_ms,
                extra_args=["--visibility-delay", str(cfg.visibility_delay_s)], env=h.clean_env({}),
            )
        )  # fmt: skip
        system = h.System(run_dir, cfg.redis_url, db_url, sandbox, generate_key())
        workers = stack.enter_context(h.running_workers(system, count=cfg.workers, concurrency=cfg.concurrency))
        engine = make_engine(db_url)
        stack.callback(engine.dispose)
        system.connect("a", sandbox.client_id, sandbox.client_secret, sandbox.user_email)
        started = system.export("a", run_dir / "profiles.jsonl", job_id=seed.OPEN_JOB_ID)
        log(f"run {n}: exporting {cfg.candidates} candidates (batch {started.batch_id})")
        deadline = time.monotonic() + 300
        while sum(i.has_record for i in items_now(engine, started.batch_id)) < cfg.candidates // 3:
            workers.check_alive()
            if time.monotonic() > deadline:
                raise h.HarnessError("a third of the records were not made in 300 s")
            time.sleep(0.05)
        answer = sandbox.http.post(
            f"{sandbox.harvest_url}/_sandbox/outage", json={"seconds": cfg.outage_s, "writes_only": True}
        )
        back_at = time.time() + cfg.outage_s  # the sandbox set its end a moment before it answered
        answer.raise_for_status()
        result.waiting = sum(i.status in ACTIVE_STATUSES for i in items_now(engine, started.batch_id))
        log(f"run {n}: writes answer 503 for {cfg.outage_s:g} s; {result.waiting} items not finished")
        end = h.wait_for_batch(
            engine, started.batch_id, timeout_s=cfg.outage_s + 600, check=workers.check_alive, poll_s=0.5
        )
        items = items_now(engine, started.batch_id)
        records: Counter[str] = Counter()
        for cand in sandbox.state()["candidates"]:
            for link in cand.get("social_media_addresses", []):
                records[link["value"]] += 1
    if not end.done:
        result.error = f"batch unfinished ({end.gave_up}): {end.counts}"
        return result
    result.after_return_s = max(aware(i.end).timestamp() for i in items) - back_at
    result.failed = sum(i.status is ItemStatus.FAILED for i in items)
    result.duplicates = sum(records[p.social_media[0]] > 1 for p in profiles)
    result.spent = sum(i.attempts > 1 for i in items)
    return result


def parse_args(argv: Sequence[str] | None = None) -> Config:
    p = argparse.ArgumentParser(
        prog="python -m bench.outage_resume", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--runs", type=int, default=3, help="how many times the scenario runs")
    p.add_argument("--candidates", type=int, default=40, help="profiles in each run's batch")
    p.add_argument("--outage", type=float, default=120.0, help="seconds every write answers 503")
    p.add_argument("--limit", type=int, default=500, help="sandbox requests per window")
    p.add_argument("--window", type=float, default=10.0, help="sandbox window, s")
    p.add_argument("--latency-ms", type=float, default=20.0, help="latency the sandbox adds to every request")
    p.add_argument("--visibility-delay", type=float, default=2.0, help="seconds before a new record is readable")
    p.add_argument("--workers", type=int, default=1, help="ghexport worker processes")
    p.add_argument("--concurrency", type=int, default=4, help="--concurrency of each worker")
    p.add_argument("--redis-url", default=DEFAULT_REDIS_URL, help="Redis database the bench owns (flushed)")
    p.add_argument("--log-dir", type=Path, default=None, help="where runs keep their logs (default: a temp dir)")
    a = p.parse_args(argv)
    if a.runs < 1 or a.candidates < 3 or a.outage <= 0:
        p.error("--runs takes at least 1, --candidates at least 3, --outage a positive number of seconds")
    log_dir = a.log_dir or Path(tempfile.mkdtemp(prefix="ghx-outage-resume-"))
    return Config(
        runs=a.runs,
        candidates=a.candidates,
        outage_s=a.outage,
        limit=a.limit,
        window_s=a.window,
        latency_ms=a.latency_ms,
        visibility_delay_s=a.visibility_delay,
        workers=a.workers,
        concurrency=a.concurrency,
        redis_url=a.redis_url,
        log_dir=log_dir.resolve(),
    )


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM: unwind like Ctrl-C, so every run stops what it started


def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    cfg.log_dir.mkdir(parents=True, exist_ok=True)
    log(f"logs in {cfg.log_dir}")
    runs: list[OutageRun] = []
    try:
        for n in range(1, cfg.runs + 1):
            try:
                runs.append(one_run(cfg, n, f"ghx_outage_{os.getpid()}_{n}"))
            except h.HarnessError as exc:
                runs.append(OutageRun(n, error=str(exc)))
            print(runs[-1].line(), flush=True)
    except KeyboardInterrupt:
        log("interrupted: every process started was stopped")
        return 130
    print(
        f"\n{cfg.candidates} candidates, writes down {cfg.outage_s:g} s mid-batch, sandbox {cfg.limit} per "
        f"{cfg.window_s:g} s, {cfg.workers} x worker --concurrency {cfg.concurrency}; goal: < {RESUME_WITHIN_S:g} s "
        f"after the return in every run (logs: {cfg.log_dir}; load: {h.uptime_line()})"
    )
    return 0 if all(r.ok() for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
