"""check_target and Lookups against the sandbox: capabilities, open jobs, pools and stages, caching."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import fakeredis
import httpx
import pytest

from shared.connections.lookups import Lookups, OptionLists, PoolWithStages
from shared.connections.targets import check_target
from shared.errors import TargetNotAllowedError
from shared.harvest.client import HarvestClient
from shared.harvest.sandbox.seed import (
    BACKEND_TAG_ID,
    CLOSED_JOB_ID,
    DEGREE_OPTIONS,
    DRAFT_JOB_ID,
    OPEN_JOB_2_ID,
    OPEN_JOB_ID,
    POOL_2_ID,
    POOL_2_STAGE_ID,
    POOL_ID,
    STAGE_2_ID,
    STAGE_ID,
)
from shared.store.models import DuplicatePolicy, utcnow
from shared.store.records import ConnectionRecord
from tests.connections_helpers import http_for, make_sandbox, make_settings, seeded_reader


class CountingReader:
    """Wraps a HarvestClient and counts the calls of each method."""

    def __init__(self, inner: HarvestClient) -> None:
        self.inner = inner
        self.calls: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        target = getattr(self.inner, name)

        def call(*args: Any, **kw: Any) -> Any:
            self.calls[name] = self.calls.get(name, 0) + 1
            return target(*args, **kw)

        return call


@pytest.fixture
def reader(sqlite_url: str) -> Iterator[CountingReader]:
    sandbox = make_sandbox(rate_limit=10_000)
    http: httpx.Client = http_for(sandbox)
    yield CountingReader(seeded_reader(make_settings(sqlite_url), http))
    http.close()


def lookups(reader: CountingReader, cache: Any = None, ttl_s: float = 60.0, **kw: Any) -> Lookups:
    # CountingReader forwards every attribute to its HarvestClient: it is one, for Lookups, by duck typing
    return Lookups(cast(HarvestClient, reader), 1, cache, ttl_s, **kw)


def conn(*, prospects_only: bool = False, pools: bool = False) -> ConnectionRecord:
    now = utcnow()
    return ConnectionRecord(
        id=1,
        name="acme",
        client_id="c",
        client_secret_encrypted="",
        user_email="u@x",
        user_id=1,
        source_id=2,
        source_name="SeekOut",
        prospects_only=prospects_only,
        pools_enabled=pools,
        duplicate_policy=DuplicatePolicy.LINK,
        scopes=[],
        created_at=now,
        updated_at=now,
        removed_at=None,
    )


def test_open_job_is_allowed(reader: CountingReader) -> None:
    check_target(conn(), "job", OPEN_JOB_ID, None, None, lookups(reader))


@pytest.mark.parametrize(("job_id", "status"), [(CLOSED_JOB_ID, "closed"), (DRAFT_JOB_ID, "draft")])
def test_job_that_is_not_open_is_refused_with_its_status(reader: CountingReader, job_id: int, status: str) -> None:
    with pytest.raises(TargetNotAllowedError) as err:
        check_target(conn(), "job", job_id, None, None, lookups(reader))
    assert str(err.value) == f"job {job_id} is not open (status {status})"


def test_unknown_job_is_refused(reader: CountingReader) -> None:
    with pytest.raises(TargetNotAllowedError, match="job 999 does not exist"):
        check_target(conn(), "job", 999, None, None, lookups(reader))


def test_prospects_only_connection_refuses_a_job_target_but_takes_prospects(reader: CountingReader) -> None:
    with pytest.raises(TargetNotAllowedError, match="connection acme exports prospects only"):
        check_target(conn(prospects_only=True), "job", OPEN_JOB_ID, None, None, lookups(reader))
    check_target(conn(prospects_only=True), "prospect", None, None, None, lookups(reader))
    check_target(conn(prospects_only=True), "prospect", OPEN_JOB_ID, None, None, lookups(reader))


def test_prospect_for_a_closed_job_is_refused(reader: CountingReader) -> None:
    with pytest.raises(TargetNotAllowedError, match=f"job {CLOSED_JOB_ID} is not open"):
        check_target(conn(), "prospect", CLOSED_JOB_ID, None, None, lookups(reader))


def test_pool_needs_pools_enabled(reader: CountingReader) -> None:
    with pytest.raises(TargetNotAllowedError, match="does not have prospect pools enabled"):
        check_target(conn(), "prospect", None, POOL_ID, None, lookups(reader))
    check_target(conn(pools=True), "prospect", None, POOL_ID, STAGE_2_ID, lookups(reader))
    check_target(conn(pools=True), "prospect", None, POOL_2_ID, POOL_2_STAGE_ID, lookups(reader))


def test_unknown_pool_is_refused(reader: CountingReader) -> None:
    with pytest.raises(TargetNotAllowedError, match="prospect pool 404404 does not exist"):
        check_target(conn(pools=True), "prospect", None, 404404, None, lookups(reader))


def test_stage_outside_its_pool_is_refused_naming_the_pool_stages(reader: CountingReader) -> None:
    with pytest.raises(TargetNotAllowedError) as err:
        check_target(conn(pools=True), "prospect", None, POOL_ID, POOL_2_STAGE_ID, lookups(reader))
    message = str(err.value)
    assert message.startswith(f"stage {POOL_2_STAGE_ID} does not belong to prospect pool {POOL_ID}")
    assert f"{STAGE_ID} (New)" in message and f"{STAGE_2_ID} (Contacted)" in message


def test_stage_without_pool_and_pool_on_a_job_target_are_refused(reader: CountingReader) -> None:
    with pytest.raises(TargetNotAllowedError, match="needs its prospect pool"):
        check_target(conn(pools=True), "prospect", None, None, STAGE_ID, lookups(reader))
    with pytest.raises(TargetNotAllowedError, match="prospect exports only"):
        check_target(conn(pools=True), "job", OPEN_JOB_ID, POOL_ID, None, lookups(reader))
    with pytest.raises(TargetNotAllowedError, match="needs a job id"):
        check_target(conn(), "job", None, None, None, lookups(reader))


def test_lookups_read_open_jobs_pools_options_and_tags(reader: CountingReader) -> None:
    lk = lookups(reader)
    assert [j.id for j in lk.open_jobs()] == [OPEN_JOB_ID, OPEN_JOB_2_ID]
    pools = {p.id: p for p in lk.pools()}
    assert [s.id for s in pools[POOL_ID].stages] == [STAGE_ID, STAGE_2_ID]
    assert [s.id for s in pools[POOL_2_ID].stages] == [POOL_2_STAGE_ID]
    options = lk.options()
    assert {o.name for o in options.degree} == set(DEGREE_OPTIONS)
    assert options.index().resolve("degree", "bachelor's degree") == DEGREE_OPTIONS["Bachelor's Degree"]
    assert BACKEND_TAG_ID in {t.id for t in lk.tags()}


def test_redis_cache_is_shared_between_processes_and_expires(reader: CountingReader) -> None:
    cache = fakeredis.FakeRedis()
    first = lookups(reader, cache, ttl_s=60.0)
    jobs = first.open_jobs()
    pools = first.pools()
    first.options()
    first.tags()
    calls_after_first = dict(reader.calls)

    other = lookups(reader, cache, ttl_s=60.0)  # another process, same Redis
    assert other.open_jobs() == jobs
    assert other.pools() == pools
    assert isinstance(other.pools()[0], PoolWithStages)
    assert isinstance(other.options(), OptionLists)
    other.tags()
    assert reader.calls == calls_after_first
    ttl_ms = int(cache.pttl("ghx:lookups:1:open_jobs"))
    assert 0 < ttl_ms <= 60_000

    other.invalidate()
    assert cache.keys("ghx:lookups:1:*") == []
    other.open_jobs()
    assert reader.calls["list_jobs"] == calls_after_first["list_jobs"] + 1


def test_invalidating_tags_keeps_the_other_lookups_cached(reader: CountingReader) -> None:
    cache = fakeredis.FakeRedis()
    lk = lookups(reader, cache, ttl_s=60.0)
    lk.open_jobs()
    lk.tags()
    lk.invalidate("tags")
    lk.open_jobs()
    lk.tags()
    assert (reader.calls["list_jobs"], reader.calls["list_tags"]) == (1, 2)
    assert cache.exists("ghx:lookups:1:open_jobs")


def test_in_process_cache_without_redis_honours_the_ttl(reader: CountingReader) -> None:
    now = [0.0]
    lk = lookups(reader, None, ttl_s=10.0, clock=lambda: now[0])
    lk.open_jobs()
    lk.open_jobs()
    assert reader.calls["list_jobs"] == 1
    now[0] = 11.0
    lk.open_jobs()
    assert reader.calls["list_jobs"] == 2
    lk.invalidate()
    lk.open_jobs()
    assert reader.calls["list_jobs"] == 3


def test_zero_ttl_reads_every_time(reader: CountingReader) -> None:
    lk = lookups(reader, fakeredis.FakeRedis(), ttl_s=0)
    lk.tags()
    lk.tags()
    assert reader.calls["list_tags"] == 2


def test_a_redis_outage_falls_back_to_reading_greenhouse(reader: CountingReader) -> None:
    import redis

    class Down:
        def get(self, key: str) -> None:
            raise redis.ConnectionError("down")

        def set(self, *a: Any, **kw: Any) -> None:
            raise redis.ConnectionError("down")

    assert [j.id for j in lookups(reader, Down()).open_jobs()] == [OPEN_JOB_ID, OPEN_JOB_2_ID]
