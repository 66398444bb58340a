"""RedisRateLimiter on fakeredis (the same Lua script runs on real Redis in tests/integration)."""

from __future__ import annotations

import time

import fakeredis
import pytest

from shared.errors import ThrottledError
from shared.harvest.limiter import MAX_BLOCK_S, NullRateLimiter, RedisRateLimiter, make_rate_gate
from shared.harvest.ratelimit import RateLimitInfo
from shared.settings import LimiterSettings


def limiter_settings(**kw: object) -> LimiterSettings:
    base: dict[str, object] = {"requests": 5, "window_s": 30.0, "headroom": 1.0, "max_inline_wait_s": 0.0}
    return LimiterSettings(**{**base, **kw})  # type: ignore[arg-type]


@pytest.fixture
def server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


def make(server: fakeredis.FakeServer, **kw: object) -> tuple[RedisRateLimiter, list[float]]:
    sleeps: list[float] = []
    client = fakeredis.FakeRedis(server=server)
    return RedisRateLimiter(client, limiter_settings(**kw), sleep=sleeps.append), sleeps


def taken(limiter: RedisRateLimiter, key: str = "cid", tries: int = 100) -> int:
    n = 0
    for _ in range(tries):
        try:
            limiter.acquire(key)
        except ThrottledError:
            return n
        n += 1
    return n


def test_budget_respected_then_throttled_with_wait(server: fakeredis.FakeServer) -> None:
    limiter, sleeps = make(server)
    assert taken(limiter) == 5
    with pytest.raises(ThrottledError) as info:
        limiter.acquire("cid")
    assert 29.0 < info.value.retry_after_s <= 30.0
    assert sleeps == []


@pytest.mark.parametrize(("requests", "headroom", "budget"), [(10, 0.5, 5), (10, 0.9, 9), (3, 0.1, 1)])
def test_headroom_floor_and_minimum_of_one(
    server: fakeredis.FakeServer, requests: int, headroom: float, budget: int
) -> None:
    limiter, _ = make(server, requests=requests, headroom=headroom)
    assert taken(limiter) == budget


def test_budget_shared_between_instances_and_keys_independent(server: fakeredis.FakeServer) -> None:
    a, _ = make(server)
    b, _ = make(server)
    assert taken(a) + taken(b) == 5
    assert taken(b, key="other") == 5


def test_announced_limit_replaces_the_configured_budget_for_everyone(server: fakeredis.FakeServer) -> None:
    a, _ = make(server, requests=10, headroom=0.5)
    b, _ = make(server, requests=10, headroom=0.5)
    a.observe("cid", RateLimitInfo(limit=4, remaining=3, reset_at=None))
    assert taken(b) == 2  # floor(4 * 0.5): a smaller announcement lowers the budget
    a.observe("cid", RateLimitInfo(limit=100, remaining=90, reset_at=None))
    assert taken(b) == 48  # floor(100 * 0.5) in all: Harvest's own figure beats the configured guess


def test_remaining_zero_blocks_until_reset(server: fakeredis.FakeServer) -> None:
    a, _ = make(server)
    b, _ = make(server)
    a.observe("cid", RateLimitInfo(limit=75, remaining=0, reset_at=time.time() + 20))
    with pytest.raises(ThrottledError) as info:
        b.acquire("cid")
    assert 18.0 < info.value.retry_after_s <= 20.5
    b.acquire("other")  # another credential is not blocked


def test_remaining_zero_without_reset_blocks_one_window_and_is_capped(server: fakeredis.FakeServer) -> None:
    a, _ = make(server, window_s=12.0)
    a.observe("cid", RateLimitInfo(limit=None, remaining=0, reset_at=None))
    with pytest.raises(ThrottledError) as info:
        a.acquire("cid")
    assert 11.0 < info.value.retry_after_s <= 12.0
    a.observe("cid", RateLimitInfo(limit=None, remaining=0, reset_at=time.time() + 10_000))
    with pytest.raises(ThrottledError) as info:
        a.acquire("cid")
    assert info.value.retry_after_s <= MAX_BLOCK_S


def test_past_reset_or_remaining_left_does_not_block(server: fakeredis.FakeServer) -> None:
    a, _ = make(server)
    a.observe("cid", RateLimitInfo(limit=None, remaining=0, reset_at=time.time() - 5))
    a.observe("cid", RateLimitInfo(limit=None, remaining=2, reset_at=time.time() + 50))
    assert taken(a) == 5


def test_short_wait_sleeps_inline_then_takes_the_call(server: fakeredis.FakeServer) -> None:
    sleeps: list[float] = []

    def sleep(s: float) -> None:
        sleeps.append(s)
        time.sleep(s)

    limiter = RedisRateLimiter(
        fakeredis.FakeRedis(server=server),
        limiter_settings(requests=1, window_s=0.15, max_inline_wait_s=1.0),
        sleep=sleep,
    )
    limiter.acquire("cid")
    limiter.acquire("cid")
    assert len(sleeps) >= 1 and 0 < sleeps[0] <= 0.15


def test_inline_wait_is_bounded_in_total(server: fakeredis.FakeServer) -> None:
    limiter, sleeps = make(server, requests=1, window_s=2.0, max_inline_wait_s=1.0)
    limiter.acquire("cid")
    with pytest.raises(ThrottledError):
        limiter.acquire("cid")
    assert sleeps == []  # 2 s needed > 1 s allowed: re-queue rather than hold the slot


def test_reset_forgets_the_key(server: fakeredis.FakeServer) -> None:
    limiter, _ = make(server, requests=1)
    limiter.acquire("cid")
    limiter.reset("cid")
    limiter.acquire("cid")


def test_make_rate_gate() -> None:
    client = fakeredis.FakeRedis()
    assert isinstance(make_rate_gate(client, LimiterSettings()), RedisRateLimiter)
    assert isinstance(make_rate_gate(client, LimiterSettings(enabled=False)), NullRateLimiter)
    assert isinstance(make_rate_gate(None, LimiterSettings()), NullRateLimiter)
    null = NullRateLimiter()
    null.acquire("x")
    null.observe("x", RateLimitInfo(1, 0, None))
