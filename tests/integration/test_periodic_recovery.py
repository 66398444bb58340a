"""Recovery with no scheduler and no flag: a plain ``ghexport worker`` publishes again items whose messages
were deleted from Redis and items never published, with nobody calling ``recover`` by hand. Real Redis (its
own database), real PostgreSQL, the Harvest sandbox over HTTP, the console script as operators run it."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
import redis

from producer import api
from producer.demo import sample_profiles
from shared.errors import PublishFailedError
from shared.harvest.sandbox import Sandbox, SandboxConfig, SandboxServer, seed
from shared.queue import names
from shared.resources import Resources
from shared.store import batches as store_batches
from shared.store import publication
from tests.integration.workers_env import broker_db, connect_sandbox, running, worker_settings

GHEXPORT = str(Path(sys.executable).with_name("ghexport"))
BROKER_DB = 12
"""This file's Redis database (test_export_e2e.py uses 9, test_worker_outcomes.py 11): flushed before and after."""
REQUEUE_AFTER_S = 3.0
"""Grace before an item never published, or overdue with no queue holding it, is published again."""


def test_workers_recover_items_the_broker_lost_without_beat(
    redis_url: str, postgres_schema_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db_url, broker = broker_db(redis_url, BROKER_DB)
    sandbox = Sandbox(SandboxConfig(rate_limit=10_000, window_s=10.0))
    with SandboxServer(sandbox) as server:
        settings = worker_settings(db_url, postgres_schema_url, server,
                                   export={"requeue_after_s": REQUEUE_AFTER_S, "recovery_interval_s": 1.0})  # fmt: skip
        res = Resources(settings)
        connect_sandbox(res, "r")
        target = api.ExportTarget.job(seed.OPEN_JOB_ID)
        profiles = sample_profiles(6, prefix="lost")

        # enqueued (parked for the credential's pacer), then Redis loses everything: queues and parked items
        lost = api.export_profiles(res, connection_name="r", profiles=profiles[:3], target=target)
        assert lost.enqueued == 3
        assert broker.exists("ghx:rl:parked")
        broker.delete(*broker.scan_iter(f"{names.EXPORT_QUEUE}*"), *broker.scan_iter("ghx:rl:*"))
        # recorded, but Redis was down when enqueueing (a crash between commit and enqueue looks the same)
        down = Resources(settings, engine=res.engine, http_client=res.http, redis_client=res.redis)

        def redis_gone(item_ids: list[int]) -> int:
            raise redis.ConnectionError("Error 111 connecting to the broker")

        monkeypatch.setattr(down, "publish", redis_gone)
        with pytest.raises(PublishFailedError) as failed:
            api.export_profiles(down, connection_name="r", profiles=profiles[3:], target=target)
        down.close()
        batches = [lost.batch_id, failed.value.batch_id]
        assert [api.batch_status(res, b)["counts"] for b in batches] == [{"queued": 3}, {"queued": 3}]
        assert sum(int(broker.llen(k)) for k in broker.scan_iter(f"{names.EXPORT_QUEUE}*")) == 0

        command = [GHEXPORT, "worker", "--concurrency", "1", "--loglevel", "INFO"]
        with running(command, settings, tmp_path) as (worker, log):
            deadline = time.monotonic() + 40
            while not all(api.batch_status(res, b)["done"] for b in batches):
                assert worker.poll() is None, f"the worker exited\n{log.read_text(errors='replace')}"
                assert time.monotonic() < deadline, (
                    f"not recovered: {[api.batch_status(res, b)['counts'] for b in batches]}\n"
                    f"{log.read_text(errors='replace')}"
                )
                time.sleep(0.25)

        assert [api.batch_status(res, b)["counts"] for b in batches] == [{"exported": 3}, {"exported": 3}]
        assert publication.expired_leases(res.engine) == [] and publication.unpublished_items(res.engine, 0) == []
        assert [it.publications for b in batches for it in store_batches.batch_items(res.engine, b)] == [
            2,
            2,
            2,
            1,
            1,
            1,
        ]
        emails = [e["value"] for c in sandbox.state_snapshot()["candidates"] for e in c["email_addresses"]]
        assert all(emails.count(p.emails[0]) == 1 for p in profiles), emails  # each exactly once
        res.close()
    broker.flushdb()
    broker.close()
