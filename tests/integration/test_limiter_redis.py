"""The shared limiter on a real Redis (Lua 5.1): threads and processes never exceed the budget."""

from __future__ import annotations

import multiprocessing
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from shared.errors import ThrottledError
from shared.harvest.limiter import RedisRateLimiter
from shared.harvest.ratelimit import RateLimitInfo
from shared.settings import LimiterSettings

BUDGET = 5
WINDOW_S = 1.0
RUN_S = 2.5
SLACK_S = 0.05
"""Timestamps are taken after ``acquire`` returns, so a window is checked slightly narrower."""


def _settings() -> LimiterSettings:
    return LimiterSettings(requests=BUDGET, window_s=WINDOW_S, headroom=1.0, max_inline_wait_s=2.0)


def hammer(url: str, prefix: str, until: float) -> list[float]:
    """Take calls from one key until ``until``; return when each was granted (module level: spawnable)."""
    client = redis.Redis.from_url(url)
    limiter = RedisRateLimiter(client, _settings(), key_prefix=prefix)
    granted: list[float] = []
    while time.time() < until:
        try:
            limiter.acquire("cid")
        except ThrottledError as exc:
            time.sleep(min(exc.retry_after_s, 0.05))
            continue
        granted.append(time.time())
    client.close()
    return granted


def _proc(url: str, prefix: str, until: float, out: multiprocessing.Queue[list[float]]) -> None:
    out.put(hammer(url, prefix, until))


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    p = f"ghx:test:{uuid.uuid4().hex}:"
    yield p
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=p + "*"))
    if keys:
        client.delete(*keys)
    client.close()


def max_in_any_window(stamps: list[float], window: float) -> int:
    stamps = sorted(stamps)
    best, j = 0, 0
    for i, t in enumerate(stamps):
        while stamps[j] <= t - window:
            j += 1
        best = max(best, i - j + 1)
    return best


def test_threads_and_processes_share_one_budget(redis_url: str, prefix: str) -> None:
    until = time.time() + RUN_S
    results: list[list[float]] = []
    lock = threading.Lock()

    def run() -> None:
        stamps = hammer(redis_url, prefix, until)
        with lock:
            results.append(stamps)

    ctx = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue[list[float]] = ctx.Queue()
    procs = [ctx.Process(target=_proc, args=(redis_url, prefix, until, queue)) for _ in range(2)]
    for p in procs:
        p.start()
    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for _ in procs:
        results.append(queue.get(timeout=30))
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    stamps = [s for r in results for s in r]
    assert len(stamps) >= BUDGET * 2  # progress was made across windows
    assert max_in_any_window(stamps, WINDOW_S - SLACK_S) <= BUDGET


def test_observe_blocks_every_client_of_the_key(redis_url: str, prefix: str) -> None:
    no_wait = _settings().model_copy(update={"max_inline_wait_s": 0.0})
    a = RedisRateLimiter(redis.Redis.from_url(redis_url), no_wait, key_prefix=prefix)
    b = RedisRateLimiter(redis.Redis.from_url(redis_url), no_wait, key_prefix=prefix)
    a.observe("cid", RateLimitInfo(limit=2, remaining=0, reset_at=time.time() + 30))
    with pytest.raises(ThrottledError) as info:
        b.acquire("cid")
    assert 28.0 < info.value.retry_after_s <= 30.0
    b.reset("cid")
    b.observe("cid", RateLimitInfo(limit=2, remaining=1, reset_at=None))
    b.acquire("cid")
    b.acquire("cid")
    with pytest.raises(ThrottledError):
        a.acquire("cid")  # announced limit 2 is shared
    a.redis.close()
    b.redis.close()
