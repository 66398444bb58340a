"""Recovery publishes again exactly the items whose message is gone: after the broker lost its data (epoch
marker), of dead workers (expired leases), never published, or overdue while no queue holds work; items
waiting their turn are never published twice. And the liveness of a worker: leases kept by heartbeats."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import fakeredis
import pytest
import sqlalchemy as sa
from sqlmodel import col

from shared.queue import recovery
from shared.queue.publishing import publish
from shared.store import items as store_items
from shared.store.models import Item, ItemStatus, utcnow
from tests.unit.export_fixtures import Env, drain_broker, make_env, profile
from workers.liveness import Heartbeat, InFlight, StoreHealth
from workers.outcome import Finished

GRACE_S = 120.0


@pytest.fixture
def env(sqlite_url: str) -> Iterator[Env]:
    env = make_env(sqlite_url, requeue_after_s=GRACE_S)
    yield env
    env.res.close()


@pytest.fixture
def broker() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis()


def backdate(env: Env, ids: list[int], seconds: float, **columns: str) -> None:
    """Move the items' timestamps ``seconds`` into the past (``updated_at``, and each column named)."""
    then = utcnow() - timedelta(seconds=seconds)
    values: dict[str, Any] = {"updated_at": then, **dict.fromkeys(columns.values(), then)}
    with env.engine.begin() as conn:
        conn.execute(sa.update(Item).where(col(Item.id).in_(ids)).values(**values))


def publications(env: Env, ids: list[int]) -> list[int]:
    return [env.item(i).publications for i in ids]


def sweep(env: Env, broker: fakeredis.FakeRedis | None) -> recovery.SweepReport:
    return recovery.sweep(env.res.celery, env.engine, env.res.limiter, env.settings, broker)


def published_batch(env: Env, n: int) -> list[int]:
    ids = env.batch([profile(id=f"p-{i}") for i in range(n)]).to_enqueue
    publish(env.res.celery, env.engine, ids)
    return ids


# --- the broker's epoch -----------------------------------------------------------------------------


def test_the_first_sweep_adopts_the_epoch_and_a_restart_without_data_is_seen_once(
    env: Env, broker: fakeredis.FakeRedis
) -> None:
    assert recovery.ensure_epoch(broker, env.engine) is False  # first start: nothing was lost
    assert recovery.ensure_epoch(broker, env.engine) is False  # same epoch
    broker.flushall()  # Redis restarted without persistence
    assert recovery.ensure_epoch(broker, env.engine) is True
    assert recovery.ensure_epoch(broker, env.engine) is False  # seen once


def test_of_two_workers_seeing_the_loss_at_once_only_one_publishes_again(env: Env, broker: fakeredis.FakeRedis) -> None:
    recovery.ensure_epoch(broker, env.engine)
    broker.flushall()
    broker.set(recovery.EPOCH_KEY, "set-by-the-producer-in-the-new-redis")
    results = [recovery.ensure_epoch(broker, env.engine) for _ in range(2)]
    assert results == [True, False]


def test_a_broker_that_keeps_its_queues_is_never_suspected(env: Env) -> None:
    ids = published_batch(env, 3)
    assert not sweep(env, None).broker_lost
    assert publications(env, ids) == [1, 1, 1]


def test_after_the_broker_lost_its_data_every_queued_item_is_published_again_at_once(
    env: Env, broker: fakeredis.FakeRedis
) -> None:
    sweep(env, broker)
    ids = published_batch(env, 4)
    done = ids[0]
    claimed = store_items.claim_item(env.engine, done, "w:1", 60)
    assert claimed is not None
    store_items.finish_item(env.engine, done, "w:1", ItemStatus.EXPORTED)
    drain_broker(env)
    broker.flushall()

    report = sweep(env, broker)

    assert report.broker_lost and report.after_loss == ids[1:]  # young items too: loss is seen, not aged
    assert drain_broker(env) == 3
    assert publications(env, ids) == [1, 2, 2, 2]


# --- dead workers, never published, overdue -------------------------------------------------------------


def test_items_of_a_dead_worker_come_back_once_their_lease_expired(env: Env, broker: fakeredis.FakeRedis) -> None:
    ids = published_batch(env, 2)
    drain_broker(env)
    for i in ids:
        assert store_items.claim_item(env.engine, i, "dead:1", lease_s=60) is not None
    assert sweep(env, broker).published == 0  # leases still running
    backdate(env, ids[:1], 61, lease="lease_until")

    report = sweep(env, broker)

    assert report.expired == ids[:1] and drain_broker(env) == 1
    assert store_items.claim_item(env.engine, ids[0], "alive:2", lease_s=60) is not None


def test_items_never_published_are_published_after_the_grace(env: Env, broker: fakeredis.FakeRedis) -> None:
    ids = env.batch([profile(id=f"p-{i}") for i in range(2)]).to_enqueue  # the producer died before publishing
    assert sweep(env, broker).published == 0  # maybe publishing right now
    backdate(env, ids, GRACE_S + 1)

    assert sweep(env, broker).unpublished == ids
    assert publications(env, ids) == [1, 1]


def test_items_waiting_in_a_long_queue_are_never_published_twice(env: Env, broker: fakeredis.FakeRedis) -> None:
    ids = published_batch(env, 3)
    backdate(env, ids, 10 * GRACE_S, enq="enqueued_at", due="due_at")  # a long batch: waiting for hours

    for _ in range(3):
        assert sweep(env, broker).published == 0  # the broker's queue holds work: they wait their turn
    assert publications(env, ids) == [1, 1, 1]


def test_an_overdue_item_no_queue_holds_is_published_again(env: Env, broker: fakeredis.FakeRedis) -> None:
    ids = published_batch(env, 2)
    drain_broker(env)  # a dead worker had reserved these messages for a later retry
    backdate(env, ids, GRACE_S + 1, enq="enqueued_at", due="due_at")

    assert sweep(env, broker).overdue == ids
    assert publications(env, ids) == [2, 2]


def test_workers_publish_an_overdue_item_only_when_two_turns_in_a_row_found_it(
    env: Env, broker: fakeredis.FakeRedis
) -> None:
    memory = fakeredis.FakeRedis()
    ids = published_batch(env, 2)
    drain_broker(env)  # both messages gone from the queue: one a live worker just took, one a dead worker held
    backdate(env, ids, GRACE_S + 1, enq="enqueued_at", due="due_at")

    def turn() -> list[int]:
        return recovery.sweep(env.res.celery, env.engine, env.res.limiter, env.settings, broker, memory).overdue

    assert turn() == []  # suspected only
    assert store_items.claim_item(env.engine, ids[0], "live:1", 60) is not None  # the live worker claims its message
    assert turn() == ids[1:]
    assert publications(env, ids) == [1, 2]


def test_a_retry_due_later_is_not_overdue(env: Env, broker: fakeredis.FakeRedis) -> None:
    (item_id,) = published_batch(env, 1)
    drain_broker(env)
    assert store_items.claim_item(env.engine, item_id, "w:1", 60) is not None
    store_items.release_item(env.engine, item_id, "w:1", countdown_s=600)  # waiting for Greenhouse, 10 min
    backdate(env, [item_id], GRACE_S + 1, enq="enqueued_at")

    assert sweep(env, broker).published == 0


def test_one_sweep_per_interval_across_the_cluster() -> None:
    lock = fakeredis.FakeRedis()
    assert recovery.take_turn(lock, "w1", 20.0)
    assert not recovery.take_turn(lock, "w2", 20.0)


# --- liveness: in-flight items and their heartbeat ---------------------------------------------------------


def test_a_second_run_of_one_item_in_one_process_is_refused() -> None:
    inflight = InFlight()
    with inflight.hold(7) as first, inflight.hold(7) as second:
        assert first and not second
        assert inflight.snapshot() == [7]
    assert inflight.snapshot() == []


def test_the_heartbeat_renews_only_the_items_a_run_holds(env: Env) -> None:
    a, b = env.batch([profile(id="a"), profile(id="b")]).to_enqueue
    for i in (a, b):
        assert store_items.claim_item(env.engine, i, "me:1", lease_s=5) is not None
    inflight = InFlight()
    beat = Heartbeat(lambda: env.engine, "me:1", inflight, lease_s=60, interval_s=1, health=StoreHealth())
    with inflight.hold(a):
        assert beat.beat() == 1
    lease_a, lease_b = env.item(a).lease_until, env.item(b).lease_until
    assert lease_a is not None and lease_b is not None
    assert (lease_a - lease_b).total_seconds() > 50  # b's run stopped: its lease runs out


def test_an_item_left_sending_by_this_process_is_taken_back_at_once(env: Env) -> None:
    (item_id,) = env.batch([profile()]).to_enqueue
    assert store_items.claim_item(env.engine, item_id, "me:1", lease_s=60) is not None
    assert store_items.claim_item(env.engine, item_id, "other:2", lease_s=60) is None
    assert store_items.claim_item(env.engine, item_id, "other:2", lease_s=60, reclaim_own=True) is None
    assert store_items.claim_item(env.engine, item_id, "me:1", lease_s=60, reclaim_own=True) is not None


def test_store_health_says_it_once(caplog: pytest.LogCaptureFixture) -> None:
    health = StoreHealth()
    with caplog.at_level("WARNING", logger="ghexport.worker"):
        for _ in range(5):
            health.down("connection refused")
        health.up()
        health.up()
    assert [r.getMessage().split(";")[0] for r in caplog.records] == [
        "result store unreachable (connection refused)",
        "result store reachable again after 0 s",
    ]


# --- read-back delays ------------------------------------------------------------------------------------


def test_new_records_are_read_back_until_greenhouse_shows_them(sqlite_url: str) -> None:
    from workers.maintenance import probe_readback

    env = make_env(sqlite_url, sandbox_config={"visibility_delay_s": 30.0})
    try:
        (created,) = env.batch([profile("p-new")]).to_enqueue
        assert env.export(created) == Finished(ItemStatus.EXPORTED)

        def reads() -> int:
            return sum(env.sandbox.stats()["requests"].get("GET /v3/candidates", {}).values())

        before = reads()

        assert probe_readback(env.res) == 0  # Greenhouse does not show it yet
        assert env.item(created).visible_at is None
        env.clock.advance(31)
        assert probe_readback(env.res) == 1
        assert env.item(created).visible_at is not None
        assert probe_readback(env.res) == 0  # seen once: no more reads for it
        assert reads() == before + 2
    finally:
        env.res.close()
