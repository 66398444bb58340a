"""The callback outbox on SQLite: which state changes are written as events (and for whom), batch completion
once, claims under a lease, the retry schedule ending in the dead letters, and redelivery."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
import sqlalchemy as sa
from pydantic import SecretStr
from sqlmodel import col

from shared.connections.crypto import generate_key
from shared.store import outbox
from shared.store.db import open_store
from shared.store.models import Batch, OutboxEvent, OutboxState, utcnow
from tests.outbox_fixtures import World

SCHEDULE = [5.0, 60.0, 300.0]


@pytest.fixture
def world(sqlite_url: str) -> Iterator[World]:
    engine = open_store(sqlite_url)
    yield World(engine, SecretStr(generate_key()))
    engine.dispose()


def events(world: World, **where: str) -> list[outbox.EventRecord]:
    return sorted(outbox.list_events(world.engine, limit=10_000, **where), key=lambda e: e.id)  # type: ignore[arg-type]


# --- emission ------------------------------------------------------------------------------------------


def test_one_event_per_item_state_change_only_for_tenants_with_a_callback_url(world: World) -> None:
    world.tenant("t1", "https://platform.example/hooks")
    world.tenant("t3")  # no callback URL
    acme = world.connection("t1:acme", "t1")
    quiet = world.connection("t3:x", "t3")
    ops = world.connection("ops", None)  # an operator's connection: no tenant
    statuses = ["queued", "sending", "exported", "synced", "sync_overdue", "failed", "skipped"]
    ids = world.batch("b1", acme, statuses, "t1")
    other = world.batch("b3", quiet, ["exported"], "t3") + world.batch("b0", ops, ["exported"])

    with world.engine.begin() as conn:
        written = outbox.emit_item_events(conn, [*ids, *other])

    assert written == 5
    found = events(world)
    assert [e.type for e in found] == [
        "item.exported",
        "item.synced",
        "item.sync_overdue",
        "item.failed",
        "item.skipped",
    ]
    assert {e.tenant_id for e in found} == {"t1"}
    assert all(e.state is OutboxState.PENDING and e.attempts == 0 for e in found)
    failed = next(e for e in found if e.type == "item.failed")
    assert failed.payload["type"] == "item.failed" and failed.payload["timestamp"]
    assert failed.payload["data"] == {
        "batch_id": "b1",
        "item_id": ids[5],
        "profile_id": "p-5",
        "connection": "acme",  # the tenant-local name, not t1:acme
        "status": "failed",
        "greenhouse_candidate_id": 1005,
        "greenhouse_application_id": None,
        "error_cause": "invalid_request",
        "error": "boom",
        "sync_detail": None,
    }
    body = json.dumps([e.payload for e in found])
    assert "ada" not in body and "Ada" not in body, "no personal data in a callback"


def test_no_items_or_no_callback_url_write_nothing(world: World) -> None:
    world.tenant("t3")
    ids = world.batch("b3", world.connection("t3:x", "t3"), ["exported", "failed"], "t3")
    with world.engine.begin() as conn:
        assert outbox.emit_item_events(conn, ids) == 0
        assert outbox.emit_item_events(conn, []) == 0
        assert outbox.emit_batch_completions(conn, ["b3"]) == ["b3"]  # completed all the same, told to no one
    assert events(world) == []


def test_events_roll_back_with_the_change(world: World) -> None:
    world.tenant("t1", "https://platform.example/hooks")
    ids = world.batch("b1", world.connection("t1:acme", "t1"), ["sending"], "t1")
    with pytest.raises(RuntimeError), world.engine.begin() as conn:
        conn.execute(sa.text("UPDATE items SET status = 'exported'"))
        outbox.emit_item_events(conn, ids)
        raise RuntimeError("the state change fails after its event was written")
    assert events(world) == []


def test_hundreds_of_items_at_once(world: World) -> None:
    world.tenant("t1", "https://platform.example/hooks")
    ids = world.batch("b1", world.connection("t1:acme", "t1"), ["sending"] * 1200, "t1")
    world.set_status(ids, "exported")
    found = events(world)
    assert len(found) == 1200 and len({e.id for e in found}) == 1200
    assert sorted(e.payload["data"]["item_id"] for e in found) == ids


def test_batch_completes_once_when_its_last_active_item_ends(world: World) -> None:
    world.tenant("t1", "https://platform.example/hooks")
    ids = world.batch("b1", world.connection("t1:acme", "t1"), ["sending", "sending", "skipped"], "t1")

    def finish(item_id: int, status: str) -> list[str]:
        with world.engine.begin() as conn:
            conn.execute(sa.text("UPDATE items SET status = :s WHERE id = :i"), {"s": status, "i": item_id})
            outbox.emit_item_events(conn, [item_id])
            return outbox.emit_batch_completions(conn, ["b1"])

    assert finish(ids[0], "exported") == []
    assert finish(ids[1], "failed") == ["b1"]
    with world.engine.begin() as conn:
        assert outbox.emit_batch_completions(conn, ["b1"]) == []  # completed already
    completed = [e for e in events(world) if e.type == "batch.completed"]
    assert len(completed) == 1
    data = completed[0].payload["data"]
    assert data["batch_id"] == "b1" and data["connection"] == "acme" and data["total"] == 3
    assert data["counts"] == {
        "queued": 0,
        "sending": 0,
        "exported": 1,
        "synced": 0,
        "sync_overdue": 0,
        "skipped": 1,
        "failed": 1,
    }
    with world.engine.connect() as conn:
        assert conn.scalar(sa.select(col(Batch.completed_at)).where(col(Batch.id) == "b1")) is not None


def test_item_changes_complete_the_batches_they_end(world: World) -> None:
    world.tenant("t1", "https://platform.example/hooks")
    acme = world.connection("t1:acme", "t1")
    done = world.batch("b1", acme, ["sending", "exported"], "t1")
    going = world.batch("b2", acme, ["sending", "queued"], "t1")
    with world.engine.begin() as conn:
        conn.execute(sa.text("UPDATE items SET status = 'failed' WHERE id IN (:a, :b)"), {"a": done[0], "b": going[0]})
        assert outbox.emit_item_changes(conn, [done[0], going[0]]) == (2, ["b1"])
        assert outbox.emit_item_changes(conn, []) == (0, [])
    assert sorted(e.type for e in events(world)) == ["batch.completed", "item.failed", "item.failed"]


def test_two_concurrent_completers_complete_a_batch_once(world: World) -> None:
    world.tenant("t1", "https://platform.example/hooks")
    world.batch("b1", world.connection("t1:acme", "t1"), ["exported", "failed"], "t1")
    start = threading.Barrier(2)
    results: list[list[str]] = []

    def complete() -> None:
        start.wait()
        with world.engine.begin() as conn:
            results.append(outbox.emit_batch_completions(conn, ["b1", "b1"]))

    threads = [threading.Thread(target=complete) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(results) == [[], ["b1"]]
    assert [e.type for e in events(world)] == ["batch.completed"]


def test_connection_events(world: World) -> None:
    world.tenant("t1", "https://platform.example/hooks")
    acme = world.connection("t1:acme", "t1")
    ops = world.connection("ops", None)
    with world.engine.begin() as conn:
        outbox.emit_connection_event(conn, acme, "connection.needs_reauth", {"reason": "refresh token revoked"})
        outbox.emit_connection_event(conn, ops, "connection.needs_reauth", {"reason": "x"})
        outbox.emit_connection_event(conn, acme, "connection.reconnected", {})
        with pytest.raises(ValueError):
            outbox.emit_connection_event(conn, acme, "connection.renamed", {})
    found = events(world)
    assert [(e.type, e.payload["data"]) for e in found] == [
        ("connection.needs_reauth", {"connection": "acme", "reason": "refresh token revoked"}),
        ("connection.reconnected", {"connection": "acme"}),
    ]


def test_event_ids_are_stable_sortable_and_unique() -> None:
    early = outbox.new_event_ids(3, now_ms=1_700_000_000_000)
    late = outbox.new_event_ids(500, now_ms=1_700_000_000_001)
    assert all(re.fullmatch(r"msg_[0-9a-hjkmnp-tv-z]{26}", i) for i in early + late)
    assert early == sorted(early) and late == sorted(late) and max(early) < min(late)
    assert len(set(early + late)) == 503


# --- delivery bookkeeping ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attempts", "delay"),
    [(1, 5.0), (2, 60.0), (3, 300.0), (4, None), (9, None)],
)
def test_the_retry_schedule(attempts: int, delay: float | None) -> None:
    assert outbox.retry_delay_s(SCHEDULE, attempts) == delay


def test_the_default_schedule_lasts_about_fifteen_hours() -> None:
    from shared.settings import CallbackSettings

    total_h = sum(CallbackSettings().schedule_s) / 3600
    assert 14 <= total_h <= 16


def emitted(world: World, n: int, tenant: str = "t1") -> list[int]:
    world.tenant(tenant, f"https://{tenant}.example/hooks")
    ids = world.batch(f"b-{tenant}", world.connection(f"{tenant}:acme", tenant), ["sending"] * n, tenant)
    world.set_status(ids, "exported")
    return ids


def test_claims_take_due_events_under_a_lease(world: World) -> None:
    emitted(world, 5)
    emitted(world, 1, "t2")
    assert outbox.due_tenants(world.engine) == ["t1", "t2"]
    first = outbox.claim(world.engine, "t1", 3, lease_s=60)
    assert first.callback_url == "https://t1.example/hooks" and first.secret_encrypted
    second = outbox.claim(world.engine, "t1", 10, lease_s=60)
    assert len(first.events) == 3 and len(second.events) == 2
    assert not {e.id for e in first.events} & {e.id for e in second.events}
    assert outbox.claim(world.engine, "t1", 10, lease_s=60).events == []  # all leased
    assert outbox.due_tenants(world.engine) == ["t2"]
    # a worker that died mid-attempt: its lease runs out and the events are taken again
    later = utcnow() + timedelta(seconds=61)
    again = outbox.claim(world.engine, "t1", 10, lease_s=60, now=later)
    assert sorted(e.id for e in again.events) == sorted(e.id for e in first.events + second.events)


def test_failed_attempts_follow_the_schedule_then_the_event_is_dead(world: World) -> None:
    emitted(world, 1)
    now = utcnow()
    for n in range(1, len(SCHEDULE) + 2):
        (event,) = outbox.claim(world.engine, "t1", 10, lease_s=60, now=now).events
        assert event.attempts == n - 1
        delay = outbox.retry_delay_s(SCHEDULE, n)
        state = outbox.mark_failed(world.engine, event.id, event.attempts, f"HTTP 500 #{n}", delay, now=now)
        if delay is None:
            assert state is OutboxState.DEAD
            break
        assert state is OutboxState.PENDING
        assert outbox.claim(world.engine, "t1", 10, lease_s=60, now=now).events == []  # not due yet
        now += timedelta(seconds=delay)
    (dead,) = events(world, state="dead")
    assert dead.attempts == len(SCHEDULE) + 1 and dead.last_error == f"HTTP 500 #{len(SCHEDULE) + 1}"
    assert outbox.due_tenants(world.engine, now=now + timedelta(days=30)) == []
    assert outbox.counts_by_state(world.engine) == {"pending": 0, "delivered": 0, "dead": 1}


def test_a_stale_outcome_changes_nothing(world: World) -> None:
    emitted(world, 1)
    (event,) = outbox.claim(world.engine, "t1", 1, lease_s=60).events
    assert outbox.mark_delivered(world.engine, event.id)
    assert outbox.mark_failed(world.engine, event.id, event.attempts, "late", 5.0) is None
    assert not outbox.mark_delivered(world.engine, event.id)
    (delivered,) = events(world)
    assert delivered.state is OutboxState.DELIVERED and delivered.attempts == 1 and delivered.delivered_at


def test_redeliver_dead_or_chosen_events_of_a_tenant(world: World) -> None:
    emitted(world, 2)
    emitted(world, 1, "t2")
    with world.engine.begin() as conn:
        conn.execute(sa.update(OutboxEvent).values(state="dead", attempts=8, last_error="HTTP 500"))
    t1_dead = [e.id for e in events(world, tenant_id="t1")]
    assert outbox.redeliver(world.engine, dead=True, tenant_id="t1") == sorted(t1_dead)
    assert {e.id: e.state.value for e in events(world)} == {
        **dict.fromkeys(t1_dead, "pending"),
        **{e.id: "dead" for e in events(world, tenant_id="t2")},
    }
    back = events(world, tenant_id="t1")
    assert all(e.attempts == 0 and e.next_attempt_at <= utcnow() for e in back)
    # a delivered event, asked for again by id; another tenant's id is not touched
    (one, _) = back
    outbox.mark_delivered(world.engine, one.id)
    (t2,) = events(world, tenant_id="t2")
    assert outbox.redeliver(world.engine, event_ids=[one.id, t2.id], tenant_id="t1") == [one.id]
    assert outbox.get_events(world.engine, [one.id, t2.id], tenant_id="t1")[0].state is OutboxState.PENDING
    assert outbox.redeliver(world.engine) == []


def test_list_newest_first_by_tenant_and_state(world: World) -> None:
    emitted(world, 3)
    emitted(world, 2, "t2")
    newest = outbox.list_events(world.engine, limit=2)
    everything = outbox.list_events(world.engine)
    assert [e.id for e in everything] == sorted((e.id for e in everything), reverse=True)
    assert newest == everything[:2]
    assert {e.tenant_id for e in outbox.list_events(world.engine, tenant_id="t2")} == {"t2"}
    assert outbox.list_events(world.engine, state="dead") == []
    assert outbox.counts_by_state(world.engine, tenant_id="t1")["pending"] == 3


def test_delivered_events_are_purged_after_the_retention(world: World) -> None:
    emitted(world, 2)
    first, second = events(world)
    outbox.mark_delivered(world.engine, first.id, now=utcnow() - timedelta(days=8))
    assert outbox.purge_delivered(world.engine, utcnow() - timedelta(days=7)) == 1
    assert [e.id for e in events(world)] == [second.id]
