"""Self-healing, with real worker processes started as the README starts them, real Redis, PostgreSQL and
the sandbox over HTTP; nobody runs ``recover`` and no worker has ``--beat``. Each test breaks one part of a
production night and prints, at the end, candidates sent, records in Greenhouse, duplicates, lost and
publications per item."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

from shared.store.models import ItemStatus, aware, utcnow
from tests.integration.cluster import batch_items, cluster, exported, profiles, tally, wait_until_done
from tests.integration.private_services import PrivatePostgres, PrivateRedis
from tests.integration.workers_env import broker_db

# Each test runs the sandbox unlike the exporter's first guess (50 requests / 30 s), so wrong assumptions show.


def test_a_killed_worker_host_is_recovered_by_the_workers_alone(
    redis_url: str, postgres_schema_url: str, tmp_path: Path
) -> None:
    """SIGKILL one of two worker hosts a third of the way through 200 candidates and start a new one, with
    the default lease and recovery cycle: its items are back within two minutes, every candidate once."""
    url, client = broker_db(redis_url, 3)
    sent = profiles(200, "kill")
    with cluster(
        url, postgres_schema_url, tmp_path, sandbox={"rate_limit": 300, "window_s": 10, "latency_ms": 20}
    ) as c:
        c.start_worker()
        c.start_worker()
        batch = c.export(sent)
        while exported(c, batch) < len(sent) // 3:
            time.sleep(0.2)
        dead = c.kill_worker(0)
        killed_at = utcnow()
        held = [
            it for it in batch_items(c, batch)
            if it.status is ItemStatus.SENDING and int((it.owner or "0:0").split(":")[1]) in dead
        ]  # fmt: skip
        c.start_worker()
        wait_until_done(c, batch, timeout_s=240)
        result = tally(c, sent, [batch])
        items = {it.id: it for it in batch_items(c, batch)}
    client.flushdb()

    assert held, "the killed host held no item: the test killed it at the wrong moment"
    assert result.lost == [] and result.duplicates == [] and result.records == len(sent)
    assert all(it.status is ItemStatus.EXPORTED for it in items.values())
    for it in held:
        back = items[it.id].exported_at
        assert back is not None and aware(back) - killed_at < timedelta(minutes=2), (it.id, back, killed_at)


def test_redis_lost_without_persistence_mid_batch(
    private_redis: PrivateRedis, postgres_schema_url: str, tmp_path: Path
) -> None:
    """Redis (no persistence) killed and restarted empty a third of the way through 150 candidates: the
    workers see the broker's epoch gone and publish again every queued item at once."""
    sent = profiles(150, "redis")
    with cluster(
        private_redis.url(0), postgres_schema_url, tmp_path,
        sandbox={"rate_limit": 200, "window_s": 10, "latency_ms": 10},
        export={"recovery_interval_s": 5.0},
    ) as c:  # fmt: skip
        c.start_worker()
        c.start_worker()
        started = time.monotonic()
        batch = c.export(sent)
        while exported(c, batch) < len(sent) // 3:
            time.sleep(0.2)
        third_s = time.monotonic() - started
        private_redis.restart()
        restarted = time.monotonic()
        wait_until_done(c, batch, timeout_s=120 + 3 * third_s)
        took = time.monotonic() - restarted
        result = tally(c, sent, [batch])
        logs = c.logs()

    assert result.lost == [] and result.duplicates == [] and result.records == len(sent)
    assert took < 120 + 2 * third_s, f"{took:.0f} s after the restart (a third took {third_s:.0f} s)"
    assert "lost its data" in logs
    assert max(result.publications) <= 2


def test_items_waiting_through_many_recovery_cycles_are_published_once(
    redis_url: str, postgres_schema_url: str, tmp_path: Path
) -> None:
    """A low limit keeps a batch's items waiting for many short recovery cycles: none is published twice."""
    url, client = broker_db(redis_url, 4)
    sent = profiles(40, "wait")
    with cluster(
        url, postgres_schema_url, tmp_path,
        sandbox={"rate_limit": 30, "window_s": 5},
        export={"recovery_interval_s": 1.0, "requeue_after_s": 2.0},
    ) as c:  # fmt: skip
        c.start_worker()
        batch = c.export(sent)
        wait_until_done(c, batch, timeout_s=240)
        result = tally(c, sent, [batch])
        logs = c.logs()
    client.flushdb()

    assert result.lost == [] and result.duplicates == []
    assert result.publications == {1: len(sent)}, result.publications
    assert "published again" not in logs


def test_an_outage_of_two_minutes_is_waited_out(redis_url: str, postgres_schema_url: str, tmp_path: Path) -> None:
    """Greenhouse answers 503 to everything for two minutes mid-batch: items wait (attempts not spent) while
    the credential's circuit is open, probes find it back, and every item is exported afterwards."""
    url, client = broker_db(redis_url, 8)
    sent = profiles(60, "outage")
    with cluster(
        url, postgres_schema_url, tmp_path, sandbox={"rate_limit": 120, "window_s": 10, "latency_ms": 20}
    ) as c:
        c.start_worker()
        batch = c.export(sent)
        while exported(c, batch) < len(sent) // 3:
            time.sleep(0.2)
        c.sandbox.outage(120)
        time.sleep(120)
        doc = wait_until_done(c, batch, timeout_s=180)
        result = tally(c, sent, [batch])
        logs = c.logs()
    client.flushdb()

    assert doc["counts"] == {"exported": len(sent)}, doc["counts"]
    assert result.lost == [] and result.duplicates == []
    assert "circuit open" in logs and "answers again" in logs


def test_write_faults_of_every_kind_with_a_third_of_the_profiles_without_email(
    redis_url: str, postgres_schema_url: str, tmp_path: Path
) -> None:
    """20% of writes fail (500 before and after writing, dropped connections before and after, slow answers
    past the client's timeout), records take a moment to be readable, a third of the profiles have no email:
    unknown outcomes are resolved by measured read-back delays, without email by name and details."""
    url, client = broker_db(redis_url, 6)
    sent = profiles(90, "fault", without_email_every=3)
    with cluster(
        url, postgres_schema_url, tmp_path,
        sandbox={
            "rate_limit": 400, "window_s": 10, "visibility_delay_s": 1.5, "fault_rate": 0.2, "slow_s": 3.0,
            "fault_kinds": ("error_before", "error_after", "drop_before", "drop_after", "slow"), "seed": 11,
        },
        harvest={"timeout_s": 2.0},
        export={
            "reconcile_floor_s": 5.0, "reconcile_interval_s": 2.0, "recovery_interval_s": 3.0,
            "retry_backoff_s": 0.5, "retry_backoff_max_s": 3.0,
            # exactly once is the property here, not the attempt budget: on a CI machine running three pytest
            # processes, 2 s timeouts of unfaulted requests add to the 20 % faults
            "max_attempts": 20,
        },
    ) as c:  # fmt: skip
        c.start_worker()
        c.start_worker()
        batch = c.export(sent)
        doc = wait_until_done(c, batch, timeout_s=300)
        result = tally(c, sent, [batch])
        stats = c.sandbox.stats()
    client.flushdb()

    assert sum(stats["faults"].values()) > 20, stats["faults"]
    failed = [(i["candidate_id"], i["attempts"], i["error"]) for i in doc["items"] if i["status"] != "exported"]
    assert doc["counts"] == {"exported": len(sent)}, failed  # the items that did not make it, with why
    assert result.lost == [] and result.duplicates == [] and result.records == len(sent)


def test_postgresql_restarted_mid_batch(private_postgres: PrivatePostgres, redis_url: str, tmp_path: Path) -> None:
    """The result store restarts mid-batch: tasks are retried, nothing is acknowledged before its result is
    saved, every candidate lands once, and each worker says it once."""
    url, client = broker_db(redis_url, 7)
    sent = profiles(80, "pg")
    with cluster(url, private_postgres.url, tmp_path, sandbox={"rate_limit": 200, "window_s": 10}) as c:
        c.start_worker()
        batch = c.export(sent)
        while exported(c, batch) < len(sent) // 3:
            time.sleep(0.2)
        private_postgres.restart(mode="immediate", down_s=5.0)
        wait_until_done(c, batch, timeout_s=180)
        result = tally(c, sent, [batch])
        logs = c.logs()
    client.flushdb()

    assert result.lost == [] and result.duplicates == [] and result.records == len(sent)
    # one line per worker process that met the outage, never one per task
    assert 1 <= logs.count("result store unreachable") <= 6, logs.count("result store unreachable")
    assert "result store reachable again" in logs
