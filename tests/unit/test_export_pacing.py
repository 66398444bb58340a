"""The export flow with the pacing limiter (fakeredis): items run on their reserved credit, wait parked when
their credential has work waiting, and an item's parts wait behind every waiting core record."""

from __future__ import annotations

from collections.abc import Iterator

import fakeredis
import pytest

from shared.harvest.limiter import RedisRateLimiter
from shared.harvest.sandbox import seed as s
from shared.settings import LimiterSettings
from shared.store.models import ItemStatus
from tests.unit.export_fixtures import Env, make_env, profile
from workers.export import export_item
from workers.outcome import Finished, Parked

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
