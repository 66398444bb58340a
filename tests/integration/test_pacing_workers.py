"""Pacing through real workers: `ghexport worker` processes as the README starts them, real Redis (this
file's own database), real PostgreSQL, the sandbox over HTTP with a window unlike the defaults' guess.

- every core record of a batch exists before the batch spends budget on enrichment;
- the server's limit holds in every window, and items wait parked, not bouncing through the broker;
- a credential blocked by a 429 leaves another credential's export running.
"""

from __future__ import annotations

import re
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
from pydantic import SecretStr

from producer import api
from producer.demo import sample_profiles
from shared.connections import service as connections
from shared.harvest.limiter import RedisRateLimiter
from shared.harvest.sandbox import Sandbox, SandboxConfig, SandboxServer, seed
from shared.resources import Resources
from tests.integration.workers_env import broker_db, connect_sandbox, running, worker_settings

GHEXPORT = str(Path(sys.executable).with_name("ghexport"))
BROKER_DB = 10
"""This file's Redis database (9: e2e, 11: worker outcomes, 12: periodic recovery): flushed before and after."""
LIMIT, WINDOW_S = 40, 4.0
"""The sandbox's rolling window: 10 requests a second, against the defaults' guess of 50 per 30 s."""
CANDIDATES = 24


def _ts(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _wait_done(res: Resources, batch_ids: list[str], log: Path, worker_alive: object, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not all(api.batch_status(res, b)["done"] for b in batch_ids):
        assert time.monotonic() < deadline, (
            f"not done: {[api.batch_status(res, b)['counts'] for b in batch_ids]}\n{log.read_text(errors='replace')}"
        )
        time.sleep(0.25)


@pytest.mark.parametrize("pool", ["prefork", "threads"])
def test_core_records_first_under_the_limit_and_no_requeue_churn(
    redis_url: str, postgres_schema_url: str, tmp_path: Path, pool: str
) -> None:
    db_url, broker = broker_db(redis_url, BROKER_DB)
    sandbox = Sandbox(SandboxConfig(rate_limit=LIMIT, window_s=WINDOW_S))
    with SandboxServer(sandbox) as server:
        settings = worker_settings(db_url, postgres_schema_url, server)
        res = Resources(settings)
        connect_sandbox(res, "paced")
        # 24 core records (an email lookup and a create each: 48 requests) are more than one window holds, so
        # the cores take seconds whatever budget connect's probes left in the window
        profiles = sample_profiles(CANDIDATES, prefix="paced")
        batch = api.export_profiles(
            res, connection_name="paced", profiles=profiles, target=api.ExportTarget.job(seed.OPEN_JOB_ID)
        )
        command = [GHEXPORT, "worker", "--pool", pool, "--concurrency", "4", "--loglevel", "INFO"]
        with running(command, settings, tmp_path) as (worker, log):
            _wait_done(res, [batch.batch_id], log, worker, timeout_s=150)
            text = log.read_text(errors="replace")
        assert api.batch_status(res, batch.batch_id)["counts"] == {"exported": CANDIDATES}
        snapshot = sandbox.state_snapshot()
        stats = sandbox.stats()
        res.close()
    broker.flushdb()
    broker.close()

    created = [c for c in snapshot["candidates"] if c["id"] >= 100_000_001]
    assert len(created) == CANDIDATES
    last_core = max(_ts(c["created_at"]) for c in created)
    parts = [_ts(p["created_at"]) for c in created for kind in ("educations", "employments", "notes") for p in c[kind]]
    assert parts, "the sample profiles carry parts"
    # records before enrichment: parts start only as the last records are sent (work is released at most
    # half the longest inline wait ahead, 1.5 s by default: the tail of the cores overlaps that much)
    first_core = min(_ts(c["created_at"]) for c in created)
    assert last_core - first_core > 3.0  # the cores alone took seconds at this limit...
    assert min(parts) > last_core - 2.0, (last_core, sorted(parts)[:5])  # ...and no part went before them
    # the server's limit held in every rolling window, with no 429 at all
    assert stats["credentials"][seed.CLIENT_ID]["max_in_window"] <= LIMIT
    assert stats["rate_limited"] == 0
    # no churn: an item goes back at most once per step it waited for (core, then parts)
    requeues = re.findall(r"item (\d+): (?:retry in|parked)", text)
    per_item: dict[str, int] = {}
    for item in requeues:
        per_item[item] = per_item.get(item, 0) + 1
    assert max(per_item.values(), default=0) <= 2, per_item


def test_a_throttled_credential_leaves_another_credentials_export_running(
    redis_url: str, postgres_schema_url: str, tmp_path: Path
) -> None:
    db_url, broker = broker_db(redis_url, BROKER_DB)
    sandbox = Sandbox(SandboxConfig(rate_limit=1000, window_s=10.0))
    other_id, other_secret = "ghx-other-customer", "other-secret"
    sandbox.add_credential(other_id, other_secret, sandbox.state.credentials[seed.CLIENT_ID].scopes)
    with SandboxServer(sandbox) as server:
        settings = worker_settings(db_url, postgres_schema_url, server)
        res = Resources(settings)
        connect_sandbox(res, "blocked")
        connections.connect(
            res.settings, res.engine, name="free", client_id=other_id, client_secret=SecretStr(other_secret),
            user_email=seed.RECRUITER_EMAIL, http_client=res.http,
        )  # fmt: skip
        limiter = res.limiter
        assert isinstance(limiter, RedisRateLimiter)
        target = api.ExportTarget.job(seed.OPEN_JOB_ID)
        held = api.export_profiles(res, connection_name="blocked", profiles=sample_profiles(5, prefix="held"),
                                   target=target)  # fmt: skip
        free = api.export_profiles(res, connection_name="free", profiles=sample_profiles(5, prefix="free"),
                                   target=target)  # fmt: skip
        # customer 1's credential got a 429 asking for a minute: every worker must leave it alone
        limiter.throttled(seed.CLIENT_ID, limiter.acquire(seed.CLIENT_ID), retry_after_s=60.0)
        command = [GHEXPORT, "worker", "--concurrency", "2", "--loglevel", "INFO"]
        with running(command, settings, tmp_path) as (worker, log):
            _wait_done(res, [free.batch_id], log, worker, timeout_s=60)
            assert api.batch_status(res, held.batch_id)["counts"] == {"queued": 5}  # parked, not failed
            assert limiter.parked_keys() == [seed.CLIENT_ID]
        assert api.batch_status(res, free.batch_id)["counts"] == {"exported": 5}
        res.close()
    broker.flushdb()
    broker.close()
