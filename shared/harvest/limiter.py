"""The Harvest rate limit, shared by every worker process through Redis.

Celery's ``rate_limit`` is per worker process, so N processes would spend N budgets; Harvest counts
per credential [3P AIRBYTE: ~75 calls per 30 s window]. :class:`RedisRateLimiter` keeps one sliding-window
log per key (the client id) in a Redis sorted set, checked and appended by ONE atomic Lua script that
reads Redis ``TIME`` (worker clocks do not matter). The budget is
``floor(announced X-RateLimit-Limit * headroom)``, at least 1; until Harvest has announced a limit for the
credential (or a day after it last did), the configured ``requests`` stand in for it.
A wait longer than ``max_inline_wait_s`` raises :class:`ThrottledError` so the task is re-queued with a
countdown instead of holding a worker slot.

Redis keys (prefix ``ghx:rl:``): ``<key>:log`` (ZSET of calls), ``<key>:limit`` (announced limit),
``<key>:block`` (exists, with its TTL, while Harvest says the budget is spent).
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, TypedDict, Unpack

from shared.errors import ThrottledError
from shared.harvest.ratelimit import RateLimitInfo
from shared.settings import LimiterSettings

if TYPE_CHECKING:
    import redis

ANNOUNCED_LIMIT_TTL_S = 24 * 3600
"""An announced limit is trusted for a day, then the configured budget applies again until re-announced."""
MAX_BLOCK_S = 300.0
"""Upper bound on a block taken from ``X-RateLimit-Reset`` (a bogus header must not stall everything)."""

# Lua kept to the 5.1/5.4 common subset (Redis runs 5.1, fakeredis' lupa 5.4): integer maths through
# math.floor, members made unique by a caller-supplied id rather than a formatted number.
ACQUIRE_LUA = """
local t = redis.call('TIME')
local now = math.floor(tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000)
local blocked = redis.call('PTTL', KEYS[3])
if blocked > 0 then
  return blocked
end
local budget = tonumber(ARGV[1])
local announced = tonumber(redis.call('GET', KEYS[2]) or '')
if announced then
  budget = announced
end
budget = math.floor(budget * tonumber(ARGV[3]))
if budget < 1 then
  budget = 1
end
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < budget then
  redis.call('ZADD', KEYS[1], now, ARGV[4])
  redis.call('PEXPIRE', KEYS[1], window)
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local wait = math.floor(tonumber(oldest[2]) + window - now)
if wait < 1 then
  wait = 1
end
return wait
"""


class RateGate(Protocol):
    """What the Harvest client calls around every request."""

    def acquire(self, key: str) -> None:
        """Take one call from ``key``'s budget, sleeping at most ``max_inline_wait_s`` in total.

        Raises :class:`ThrottledError` (``retry_after_s`` set) when the wait would be longer.
        """

    def observe(self, key: str, info: RateLimitInfo) -> None:
        """Learn from the budget headers of a response (announced limit, remaining 0 until reset)."""


class NullRateLimiter:
    """A gate that never waits (tests, single calls, limiter disabled)."""

    def acquire(self, key: str) -> None:
        """Never waits."""

    def observe(self, key: str, info: RateLimitInfo) -> None:
        """Ignores the headers."""


class RedisRateLimiter:
    """Sliding-window limiter shared by every process that talks to the same Redis (see module doc)."""

    def __init__(
        self,
        redis_client: redis.Redis,
        settings: LimiterSettings,
        *,
        sleep: Callable[[float], None] = time.sleep,
        key_prefix: str = "ghx:rl:",
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.redis = redis_client
        self.settings = settings
        self._sleep = sleep
        self._wall = wall
        self.key_prefix = key_prefix
        self._script = redis_client.register_script(ACQUIRE_LUA)

    def _keys(self, key: str) -> list[str]:
        base = f"{self.key_prefix}{key}"
        return [f"{base}:log", f"{base}:limit", f"{base}:block"]

    def try_acquire(self, key: str) -> float:
        """One atomic attempt: 0.0 when a call was taken, else the seconds until one frees up."""
        args: list[int | float | str] = [
            self.settings.requests,
            max(1, int(self.settings.window_s * 1000)),
            self.settings.headroom,
            uuid.uuid4().hex,
        ]
        return int(self._script(keys=self._keys(key), args=args)) / 1000.0

    def acquire(self, key: str) -> None:
        """Take one call, sleeping up to ``max_inline_wait_s`` in all; else raise :class:`ThrottledError`."""
        waited = 0.0
        while True:
            wait_s = self.try_acquire(key)
            if wait_s <= 0:
                return
            if waited + wait_s > self.settings.max_inline_wait_s:
                raise ThrottledError(f"shared rate limit reached; retry in {wait_s:.1f} s", retry_after_s=wait_s)
            self._sleep(wait_s)
            waited += wait_s

    def observe(self, key: str, info: RateLimitInfo) -> None:
        """Store the announced limit (shared) and, on ``remaining == 0``, block the key until the reset."""
        _, limit_key, block_key = self._keys(key)
        if info.limit is not None and info.limit > 0:
            self.redis.set(limit_key, info.limit, ex=ANNOUNCED_LIMIT_TTL_S)
        if info.remaining is not None and info.remaining <= 0:
            now = self._wall()
            reset_at = info.reset_at if info.reset_at is not None else now + self.settings.window_s
            block_s = min(reset_at - now, MAX_BLOCK_S)
            if block_s > 0:  # the key's own expiry is the block, so worker clocks need not agree
                self.redis.set(block_key, 1, px=max(1, math.ceil(block_s * 1000)))

    def reset(self, key: str) -> None:
        """Forget everything about ``key`` (tests, operator tooling)."""
        self.redis.delete(*self._keys(key))


class LimiterOptions(TypedDict, total=False):
    """The optional keyword arguments of :class:`RedisRateLimiter`, passed through by :func:`make_rate_gate`."""

    sleep: Callable[[float], None]
    key_prefix: str
    wall: Callable[[], float]


def make_rate_gate(
    redis_client: redis.Redis | None, settings: LimiterSettings, **kw: Unpack[LimiterOptions]
) -> RateGate:
    """The shared Redis limiter, or :class:`NullRateLimiter` when disabled or without Redis."""
    if not settings.enabled or redis_client is None:
        return NullRateLimiter()
    return RedisRateLimiter(redis_client, settings, **kw)
