"""The export flow with the pacing limiter (fakeredis): items run on their reserved credit, wait parked when
their credential has work waiting, and an item's parts wait behind every waiting core record; in an outage of
writes they wait parked until a write is answered."""

from __future__ import annotations

import time
from collections.abc import Iterator

import fakeredis
import pytest

from shared.harvest.breaker import BreakerState, RedisCircuitBreaker
from shared.harvest.limiter import RedisRateLimiter
from shared.harvest.sandbox import seed as s
from shared.queue import names
from shared.queue.messages import ExportItemMessage
from shared.queue.pacing import release_due
from shared.settings import BreakerSettings, LimiterSettings
from shared.store.models import ItemStatus
from tests.unit.export_fixtures import Env, make_env, profile
from workers.export import export_item
from workers.outcome import Finished, Parked, RetryLater

KEY = s.CLIENT_ID


@pytest.fixture
def env(sqlite_url: str) -> Iterator[Env]:
    made = make_env(sqlite_url)
    limiter = RedisRateLimiter(
        fakeredis.FakeRedis(), LimiterSettings(requests=10_000, window_s=10.0, max_inline_wait_s=3.0)
    )
    made.res.__dict__["limiter"] = limiter  # what Resources builds when GHX_LIMITER__ENABLED (the default)
    yield made
    made.res.close()


def limiter_of(env: Env) -> RedisRateLimiter:
    limiter = env.res.limiter
    assert isinstance(limiter, RedisRateLimiter)
    return limiter


def test_an_item_runs_whole_when_nothing_of_its_credential_waits(env: Env) -> None:
    (item_id,) = env.batch([profile()]).to_enqueue
    assert export_item(env.deps, item_id) == Finished(ItemStatus.EXPORTED)
    assert len(env.candidates()) == 1


def test_an_item_waits_parked_behind_its_credentials_waiting_work(env: Env) -> None:
    first, second = env.batch([profile("p-1"), profile("p-2")]).to_enqueue
    limiter_of(env).park(KEY, first, cost=2)
    writes = env.writes()  # the connect checks' probes

    outcome = export_item(env.deps, second)  # no credit: it asks, and item 1 is waiting

    assert isinstance(outcome, Parked)
    item = env.item(second)
    assert item.status is ItemStatus.QUEUED and item.attempts == 0  # waiting is not an attempt
    assert env.candidates() == [] and env.writes() == writes
    assert [r.item_id for r in limiter_of(env).release(KEY)] == [first, second]  # in their order


def test_parts_wait_behind_every_waiting_core_record(env: Env) -> None:
    first, second = env.batch([profile("p-1"), profile("p-2")]).to_enqueue
    limiter = limiter_of(env)
    limiter.park(KEY, second, cost=2)  # item 2's core record waits

    outcome = export_item(env.deps, first, credit=2)  # released with its core reserved

    assert isinstance(outcome, Parked)
    item = env.item(first)
    assert item.greenhouse_candidate_id is not None and item.greenhouse_application_id is not None
    created = env.candidates()
    assert len(created) == 1 and created[0]["educations"] == [] and created[0]["notes"] == []
    released = limiter.release(KEY)
    assert [r.item_id for r in released] == [second, first]  # the waiting core first, then item 1's parts
    assert released[1].cost == 6  # its education, employment, two tags, note, resume: as its parts step counted

    assert export_item(env.deps, second, credit=released[0].cost) == Finished(ItemStatus.EXPORTED)
    assert export_item(env.deps, first, credit=released[1].cost) == Finished(ItemStatus.EXPORTED)
    assert all(c["educations"] and c["notes"] for c in env.candidates())


# --- waiting out an outage of writes ----------------------------------------------------------------------


def released(env: Env) -> list[ExportItemMessage]:
    """The messages the pacer published (taken off the in-memory broker, which the whole process shares)."""
    out = []
    with env.res.celery.connection_for_read() as conn:
        queue = conn.SimpleQueue(names.EXPORT_QUEUE)
        while True:
            try:
                message = queue.get(block=False)
            except queue.Empty:
                break
            message.ack()
            args, _kwargs, _embed = message.payload
            out.append(ExportItemMessage.model_validate(args[0]))
        queue.close()
    return out


def test_in_a_write_outage_items_wait_parked_and_go_on_when_a_write_answers(env: Env) -> None:
    """Writes fail while reads answer (each answered lookup reset the count: the circuit never opened, and
    items drew exponential countdowns). Once the write circuit opens, items wait parked behind their
    credential (no attempt spent, no write sent) and the pacer holds them; once the pause is over it sends one,
    whose write is the probe; when that write is answered, it sends the rest at once."""
    breaker = RedisCircuitBreaker(fakeredis.FakeRedis(), BreakerSettings(failures=2, open_s=0.2, max_open_s=1.0))
    env.res.__dict__["breaker"] = breaker  # before any Harvest client is built
    limiter = limiter_of(env)
    ids = env.batch([profile(f"p-{n}") for n in range(4)]).to_enqueue
    released(env)
    env.sandbox.outage(3600, writes_only=True)
    writes = env.writes()

    first = export_item(env.deps, ids[0])  # one failed create may be the item's own: it counts
    assert isinstance(first, RetryLater) and first.cause == "server_error" and env.item(ids[0]).attempts == 1
    assert all(isinstance(export_item(env.deps, i), Parked) for i in ids[1:])  # the second opened the write circuit
    assert [env.item(i).attempts for i in ids[1:]] == [0, 0, 0]
    assert env.writes() == writes + 2  # the last two creates were not sent
    assert breaker.state(KEY).state == "open" and breaker.state(KEY).writes_only
    assert release_due(env.res.celery, env.engine, limiter, breaker) == 0  # held while it is open

    env.sandbox.outage(0)  # Greenhouse takes writes again
    time.sleep(0.25)  # the pause is over: one item at a time until a write answers
    assert release_due(env.res.celery, env.engine, limiter, breaker) == 1
    (msg,) = released(env)
    assert msg.item_id == ids[1]  # its create's outcome is unknown: it looks the record up (a read), no write
    assert isinstance(export_item(env.deps, msg.item_id, msg.credit), RetryLater)
    assert release_due(env.res.celery, env.engine, limiter, breaker) == 1
    (msg,) = released(env)
    assert msg.item_id == ids[2]  # its create is the probe, and is answered
    assert isinstance(export_item(env.deps, msg.item_id, msg.credit), Parked)  # its parts wait behind ids[3]
    assert env.item(ids[2]).greenhouse_candidate_id is not None
    assert breaker.state(KEY) == BreakerState("closed", 0)
    assert release_due(env.res.celery, env.engine, limiter, breaker) == 2  # the rest at once
    assert [(m.item_id, export_item(env.deps, m.item_id, m.credit)) for m in released(env)] == [
        (ids[3], Finished(ItemStatus.EXPORTED)),
        (ids[2], Finished(ItemStatus.EXPORTED)),
    ]
    assert [env.item(i).attempts for i in ids[2:]] == [1, 1]  # this run's only


def test_the_pacers_probe_creates_nothing_and_lets_every_waiting_item_go_when_writes_answer(env: Env) -> None:
    """The probe is ``POST /v3/candidates {}``, which Greenhouse refuses with a 422 once it serves writes: no
    item's create is sent into the outage as a probe (its outcome would be unknown, and its item would wait for
    reconciliation long after Greenhouse's return). While writes fail the probe reopens the circuit and nothing
    is released; once it is answered, every waiting item goes at once."""
    from workers.maintenance import CircuitProbe

    breaker = RedisCircuitBreaker(fakeredis.FakeRedis(), BreakerSettings(failures=2, open_s=0.2, max_open_s=0.2))
    env.res.__dict__["breaker"] = breaker
    limiter = limiter_of(env)
    probe = CircuitProbe(env.res)
    ids = env.batch([profile(f"q-{n}") for n in range(4)]).to_enqueue
    released(env)
    env.sandbox.outage(3600, writes_only=True)
    export_item(env.deps, ids[0])
    assert all(isinstance(export_item(env.deps, i), Parked) for i in ids[1:])
    records = len(env.candidates())

    time.sleep(0.25)  # the pause is over, Greenhouse still fails writes: the probe fails, nothing goes
    assert release_due(env.res.celery, env.engine, limiter, breaker, probe=probe) == 0
    assert breaker.state(KEY).state == "open" and released(env) == []

    env.sandbox.outage(0)
    time.sleep(0.25)
    assert release_due(env.res.celery, env.engine, limiter, breaker, probe=probe) == 3  # all at once
    assert breaker.state(KEY) == BreakerState("closed", 0)
    assert len(env.candidates()) == records  # the probes created nothing (refused with a 422)
    assert sorted(m.item_id for m in released(env)) == sorted(ids[1:])
    assert [env.item(i).attempts for i in ids[1:]] == [0, 0, 0]
