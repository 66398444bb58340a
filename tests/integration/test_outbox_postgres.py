"""The callback outbox on PostgreSQL, where transactions really overlap: a batch whose last two items end in two
concurrent transactions is completed exactly once (never by neither), and a claim skips the rows another
worker holds instead of waiting for them."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from pydantic import SecretStr
from sqlalchemy.engine import Engine
from sqlmodel import col

from shared.connections.crypto import generate_key
from shared.store import outbox
from shared.store.db import open_store
from shared.store.models import Item, OutboxEvent
from tests.outbox_fixtures import World


@pytest.fixture
def world(postgres_schema_url: str) -> Iterator[World]:
    engine = open_store(postgres_schema_url)
    yield World(engine, SecretStr(generate_key()))
    engine.dispose()


def finish(conn: sa.Connection, item_id: int, status: str) -> None:
    conn.execute(sa.update(Item).where(col(Item.id) == item_id).values(status=status))
    outbox.emit_item_events(conn, [item_id])


def waits_for_a_lock(engine: Engine, pid: int) -> bool:
    with engine.connect() as conn:
        return bool(
            conn.scalar(
                sa.text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid AND wait_event_type = 'Lock'"),
                {"pid": pid},
            )
        )


def test_the_last_two_items_ending_together_complete_the_batch_once(world: World) -> None:
    world.tenant("t1", "https://platform.example/hooks")
    a, b = world.batch("b1", world.connection("t1:acme", "t1"), ["sending", "sending"], "t1")
    first = world.engine.connect()
    tx = first.begin()
    finish(first, a, "exported")
    assert outbox.emit_batch_completions(first, ["b1"]) == []  # b is still sending, as far as it can see

    pid: list[int] = []
    second_result: list[list[str]] = []

    def second() -> None:
        with world.engine.begin() as conn:
            pid.append(int(conn.scalar(sa.text("SELECT pg_backend_pid()")) or 0))
            finish(conn, b, "failed")
            second_result.append(outbox.emit_batch_completions(conn, ["b1"]))

    thread = threading.Thread(target=second)
    thread.start()
    deadline = time.monotonic() + 10
    while not (pid and waits_for_a_lock(world.engine, pid[0])):
        assert time.monotonic() < deadline and thread.is_alive(), "the second completer did not wait for the first"
        time.sleep(0.02)
    tx.commit()
    first.close()
    thread.join(10)

    assert second_result == [["b1"]], "the second sees the first's item done once the first committed"
    types = sorted(e.type for e in outbox.list_events(world.engine))
    assert types == ["batch.completed", "item.exported", "item.failed"]


def test_a_claim_skips_the_events_another_worker_holds(world: World) -> None:
    world.tenant("t1", "https://platform.example/hooks")
    items = world.batch("b1", world.connection("t1:acme", "t1"), ["sending"] * 4, "t1")
    world.set_status(items, "exported")
    ids = sorted(e.id for e in outbox.list_events(world.engine))
    with world.engine.connect() as other:
        held = other.begin()
        other.execute(sa.select(col(OutboxEvent.id)).where(col(OutboxEvent.id).in_(ids[:2])).with_for_update()).all()
        started = time.monotonic()
        claimed = outbox.claim(world.engine, "t1", 10, lease_s=60)
        assert time.monotonic() - started < 5, "a claim never waits for another worker's rows"
        assert sorted(e.id for e in claimed.events) == ids[2:]
        held.rollback()
    assert sorted(e.id for e in outbox.claim(world.engine, "t1", 10, lease_s=60).events) == ids[:2]
