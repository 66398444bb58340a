"""Harvest's per-credential rate limit, learned from its answers and shared by every worker through Redis.

Harvest counts requests per credential over a rolling window whose length and size differ between
integrations and between sources (50 or 75 requests; 10 s or 30 s). Celery's ``rate_limit`` is per worker,
so N workers would spend N budgets. The configured ``requests`` / ``window_s`` are only a first guess:

**What is learned, per credential** (all state in one Redis hash, changed only by atomic Lua scripts that
read Redis ``TIME``, so the hosts' clocks never meet; see :mod:`shared.harvest.limiter_scripts`):

- the limit ``L``: ``X-RateLimit-Limit``, as soon as one answer carries it;
- the window ``W``, from ``X-RateLimit-Remaining``: the server counts ``c = L - remaining`` requests in its
  window, this one included, and we keep a log of our own sends. The oldest counted request was sent no
  later than our ``c``-th most recent send ``x``, so ``W > sent - x - latency`` (lower bound ``lo``); of our
  ``c`` most recent sends that surely arrived before this one, at least one was *not* counted, so
  ``W <= received - y`` (upper bound ``hi``). The estimate is ``hi`` once known, else the larger of the guess
  and ``1.1 * lo``. Only differences of our own clock are used: the server's clock never enters, so clock
  skew between our hosts and Greenhouse cannot bias ``W``. With requests spaced ``W/L`` apart, ``hi`` lands
  within one spacing plus one latency of the real window. Our log holds send times, the server counts
  arrival times, and a request arrives at most its latency after we logged it: the window used is ``hi``
  plus twice the longest recent latency (a maximum that decays by 1 % per answer, so a spike stays in the
  margin for about a hundred answers). With a margin of one latency decaying 10 % per answer, a loaded
  machine (two busy cores beside a test's workers and sandbox) met one 429 in about every second run of
  ``tests/integration/test_pacing_workers.py``; with this margin, none in eight.
- the server's own last word: ``remaining`` minus what we sent since is a hard stop until
  ``X-RateLimit-Reset`` (the only place the server's clock is used, converted through our wall clock).

**Sends are spread, not burst.** A send is taken when the log of the last ``W`` holds fewer than
``budget = floor(L * headroom)`` sends *and* the spacing clock allows it: a busy credential's sends go
``W / budget`` apart; after a quiet minute, half a window's budget may go at once (a ``connect`` check, a
small batch). Evenly spread sends are what makes the window learnable: the server's count then says how
far back it looks, to one spacing. A longer wait than ``max_inline_wait_s`` raises :class:`ThrottledError`.

**Converging from a wrong guess.** Too long (guess 30 s, real 10 s): we send at a third of the rate, the
server counts only the sends of the last 10 s, and the first answers bound ``W`` from above: learned within
about one real window, no 429. Too short (guess 10 s, real 30 s): the server's ``remaining`` reaches 0 and
stops every worker until its reset, while the counts push ``lo`` to the real window: learned within one
real window, no 429 unless more requests are in flight than ``remaining`` said. A 429 (another client spent
the budget, or a server that counts differently) blocks every worker for ``Retry-After`` and widens ``W``
by 10 %.

**Pacing instead of churn.** Work is admitted before it starts, not bounced: a pacing clock ``tat`` (the
generic cell rate algorithm) advances ``W / budget`` per request reserved. An item runs at once only while
no item of its credential is parked and the reserved work reaches less than half ``max_inline_wait_s``
ahead; else it is *parked* in its credential's queue (core records first, then enrichments) and released
by a pacer (:mod:`shared.queue.pacing`) when its turn comes, with its requests reserved. So no task waits in
a worker slot, no task bounces through the broker, and one customer's long batch waits in Redis, not in
the broker's queue in front of another customer's items.

**Measured** (:mod:`shared.metrics`): the time each send waited for budget, the sends refused as too long
a wait, the items parked and released.

**Trade-offs.**

- Half a burst: a rolling window would allow ``L`` sends at once; we allow half of that after a quiet
  minute and spread the rest, which costs at most half a window's budget over a whole run and keeps every
  window below the limit even when answers are slow.
- Another client on the same credential: its requests raise ``c``, so ``lo`` grows and we slow down
  (safe), and ``remaining`` stops us when it spends the budget; ``headroom`` below 1 leaves it room.
- Fixed windows instead of rolling ones: an upper bound below the lower one is discarded, so ``W``
  settles near the period.
- Lost answers (timeouts) keep their send in the log: counted or not, they only make us slower.
- Clock skew: the window is learned from our own clock only; Greenhouse's clock enters only through
  ``X-RateLimit-Reset`` (a hard stop that ends at the reset) and, once the window is learned, our log
  ends that stop to the millisecond instead.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypedDict, Unpack

from shared import metrics
from shared.errors import ThrottledError
from shared.harvest import limiter_scripts as lua
from shared.harvest.ratelimit import REPORT_WAIT_S, OnWait, RateLimitInfo
from shared.settings import LimiterSettings

if TYPE_CHECKING:
    import redis

KEY_PREFIX = "ghx:rl:"
PARKED_KEYS = "keys"
"""Under the prefix: the SET of credentials that have parked items."""
PARKED_ITEMS = "parked"
"""Under the prefix: the SET of every parked item id."""


@dataclass(frozen=True)
class Ticket:
    """One send the gate allowed: its log member and its send time (Redis ms)."""

    member: str
    sent_ms: int


NO_TICKET = Ticket("", 0)


@dataclass(frozen=True)
class Released:
    """A parked item whose turn came, with the requests reserved for it."""

    item_id: int
    cost: int


@dataclass(frozen=True)
class Learned:
    """What the limiter currently believes about a credential (for status, logs, the console)."""

    limit: int
    window_s: float
    learned_limit: bool
    learned_window: bool
    parked: int


class RateGate(Protocol):
    """What the Harvest client and the workers ask of the limiter."""

    paces: bool
    """True when :meth:`park` queues items for a pacer; False when nothing would ever release them."""

    def acquire(self, key: str, *, max_wait_s: float | None = None, on_wait: OnWait | None = None) -> Ticket:
        """Take one send from ``key``'s budget, sleeping at most ``max_wait_s`` in total (default
        ``max_inline_wait_s``; a patient command passes ``command_max_wait_s``), and telling ``on_wait``
        before each sleep longer than :data:`~shared.harvest.ratelimit.REPORT_WAIT_S`.

        Raises :class:`ThrottledError` (``retry_after_s`` set) when the wait would be longer.
        """

    def observe(self, key: str, ticket: Ticket, info: RateLimitInfo | None) -> None:
        """Learn from the budget headers of the answer to ``ticket``'s request."""

    def throttled(self, key: str, ticket: Ticket, retry_after_s: float) -> None:
        """``ticket``'s request got a 429: every worker of ``key`` waits ``retry_after_s``."""

    def admit(self, key: str, item_id: int, cost: int, *, enrichment: bool = False) -> bool:
        """True: ``cost`` requests are reserved and the item may run now. False: park it."""

    def park(self, key: str, item_id: int, cost: int, *, enrichment: bool = False) -> None:
        """Queue the item until :mod:`shared.queue.pacing` releases it with ``cost`` reserved."""

    @contextmanager
    def credit(self, key: str, cost: int) -> Iterator[None]:
        """Within the block, this thread's first ``cost`` sends on ``key`` were reserved already."""
        yield


class NullRateLimiter:
    """A gate that never waits and parks nothing (tests, single calls, limiter disabled)."""

    paces = False
    """Nothing is parked: an item the server throttles is retried with a countdown instead."""

    def acquire(self, key: str, *, max_wait_s: float | None = None, on_wait: OnWait | None = None) -> Ticket:
        """Never waits."""
        return NO_TICKET

    def observe(self, key: str, ticket: Ticket, info: RateLimitInfo | None) -> None:
        """Ignores the headers."""

    def throttled(self, key: str, ticket: Ticket, retry_after_s: float) -> None:
        """Nothing to share."""

    def admit(self, key: str, item_id: int, cost: int, *, enrichment: bool = False) -> bool:
        """Everything runs at once."""
        return True

    def park(self, key: str, item_id: int, cost: int, *, enrichment: bool = False) -> None:
        """Never asked: :meth:`admit` always says yes."""

    @contextmanager
    def credit(self, key: str, cost: int) -> Iterator[None]:
        """Nothing to account."""
        yield


class RedisRateLimiter:
    """The learning limiter and pacing clock, shared through Redis (see the module docstring)."""

    paces = True
    """Parked items are released by the workers' pacers (:mod:`shared.queue.pacing`)."""

    def __init__(
        self,
        redis_client: redis.Redis,
        settings: LimiterSettings,
        *,
        sleep: Callable[[float], None] = time.sleep,
        key_prefix: str = KEY_PREFIX,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.redis = redis_client
        self.settings = settings
        self._sleep = sleep
        self._wall = wall
        self.key_prefix = key_prefix
        self._credit = threading.local()
        self._acquire = redis_client.register_script(lua.ACQUIRE)
        self._observe = redis_client.register_script(lua.OBSERVE)
        self._throttled = redis_client.register_script(lua.THROTTLED)
        self._admit = redis_client.register_script(lua.ADMIT)
        self._park = redis_client.register_script(lua.PARK)
        self._release = redis_client.register_script(lua.RELEASE)
        self._settle = redis_client.register_script(lua.SETTLE)

    # --- keys and the first guess -----------------------------------------------------------------------

    def _key(self, key: str, part: str) -> str:
        return f"{self.key_prefix}{key}:{part}"

    def _gate_keys(self, key: str) -> list[str]:
        return [self._key(key, "log"), self._key(key, "state"), self._key(key, "block")]

    def _queue_keys(self, key: str) -> list[str]:
        return [
            *self._gate_keys(key),
            self._key(key, "queue"),
            self._key(key, "cost"),
            self.key_prefix + PARKED_KEYS,
            self.key_prefix + PARKED_ITEMS,
        ]

    def _guess(self) -> list[int | float | str]:
        s = self.settings
        return [s.requests, max(1, int(s.window_s * 1000)), s.headroom]

    # --- the gate ---------------------------------------------------------------------------------------

    def try_acquire(self, key: str, *, reserved: bool = False) -> tuple[float, Ticket]:
        """One atomic attempt: ``(0.0, ticket)`` when a send was taken, else ``(seconds to wait, NO_TICKET)``."""
        member = uuid.uuid4().hex
        args = [*self._guess(), member, "0" if reserved else "1"]
        wait_ms, now_ms = (int(v) for v in self._acquire(keys=self._gate_keys(key), args=args))
        if wait_ms > 0:
            return wait_ms / 1000.0, NO_TICKET
        return 0.0, Ticket(member, now_ms)

    def acquire(self, key: str, *, max_wait_s: float | None = None, on_wait: OnWait | None = None) -> Ticket:
        """Take one send, sleeping up to ``max_wait_s`` (default ``max_inline_wait_s``) in all, and telling
        ``on_wait`` before each sleep longer than a second; else raise :class:`ThrottledError`."""
        longest = self.settings.max_inline_wait_s if max_wait_s is None else max_wait_s
        reserved = self._take_credit(key)
        waited = 0.0
        while True:
            wait_s, ticket = self.try_acquire(key, reserved=reserved)
            if wait_s <= 0:
                metrics.LIMITER_WAIT_SECONDS.observe(waited)
                return ticket
            if waited + wait_s > longest:
                if reserved:
                    self._give_back_credit(key)
                metrics.LIMITER_THROTTLED.inc()
                after = f" after waiting {waited:.0f} s" if waited >= 1 else ""
                raise ThrottledError(
                    f"rate limit budget spent{after}; next send in {wait_s:.1f} s", retry_after_s=wait_s
                )
            if on_wait is not None and wait_s > REPORT_WAIT_S:
                on_wait(wait_s, f"waiting {wait_s:.0f} s for the credential's rate-limit budget")
            self._sleep(wait_s)
            waited += wait_s

    def observe(self, key: str, ticket: Ticket, info: RateLimitInfo | None) -> None:
        """Learn the limit and the window from one answer's budget headers (see the module docstring)."""
        if info is None or ticket is NO_TICKET:
            return
        reset_in = -1
        if info.reset_at is not None:
            reset_in = max(0, math.ceil((info.reset_at - self._wall()) * 1000))
        args = [
            ticket.sent_ms,
            info.limit if info.limit is not None and info.limit > 0 else -1,
            info.remaining if info.remaining is not None and info.remaining >= 0 else -1,
            reset_in,
            max(1, int(self.settings.window_s * 1000)),
        ]
        self._observe(keys=self._gate_keys(key)[:2], args=args)

    def throttled(self, key: str, ticket: Ticket, retry_after_s: float) -> None:
        """A 429: the send did not count, every worker of ``key`` waits, and the window widens by 10 %."""
        retry_ms = max(1, math.ceil(retry_after_s * 1000))
        self._throttled(keys=self._gate_keys(key), args=[ticket.member, retry_ms, *self._guess()])

    # --- admission, parking and release ----------------------------------------------------------------

    def admit(self, key: str, item_id: int, cost: int, *, enrichment: bool = False) -> bool:
        """Reserve ``cost`` sends and return True when the item may run now: no item of ``key`` is parked
        and at most :meth:`_horizon_ms` of work is reserved ahead. False: nothing reserved (park the item)."""
        args = [*self._guess(), max(1, cost), self._horizon_ms()]
        return bool(int(self._admit(keys=[*self._gate_keys(key), self._key(key, "queue")], args=args)))

    def park(self, key: str, item_id: int, cost: int, *, enrichment: bool = False) -> None:
        """Park the item in ``key``'s queue (kept in place if it is there already); an enrichment waits
        behind every parked core record of the credential."""
        self.park_many(key, [(item_id, cost)], enrichment=enrichment)

    def park_many(self, key: str, items: Sequence[tuple[int, int]], *, enrichment: bool = False) -> None:
        """Park ``(item_id, cost)`` pairs of one credential in order, in one atomic call per 1,000."""
        keys = [
            self._key(key, "queue"),
            self._key(key, "cost"),
            self._key(key, "seq"),
            self.key_prefix + PARKED_KEYS,
            self.key_prefix + PARKED_ITEMS,
        ]
        offset = lua.PARTS_ORDER_OFFSET if enrichment else 0
        for start in range(0, len(items), 1000):
            flat: list[int | str] = [key, offset]
            for item_id, cost in items[start : start + 1000]:
                flat += [str(item_id), max(1, cost)]
            self._park(keys=keys, args=flat)
        metrics.count_parked(len(items), enrichment=enrichment)

    def _horizon_ms(self) -> int:
        """How far ahead of the gate work is admitted: half the longest inline wait, so an admitted item
        sends without being throttled."""
        return max(1, int(self.settings.max_inline_wait_s * 500))

    def release(self, key: str, max_items: int = 100) -> list[Released]:
        """Pop the parked items of ``key`` whose turn has come (their cost is reserved)."""
        flat = self._release(keys=self._queue_keys(key), args=[*self._guess(), max_items, key, self._horizon_ms()])
        released = [Released(int(flat[i]), int(flat[i + 1])) for i in range(0, len(flat), 2)]
        metrics.ITEMS_RELEASED.inc(len(released))
        return released

    def parked_keys(self) -> list[str]:
        """Credentials with parked items."""
        members = self.redis.smembers(self.key_prefix + PARKED_KEYS)
        return sorted(m.decode() if isinstance(m, bytes) else str(m) for m in members)

    def parked_count(self) -> int:
        """How many items are parked, every credential together (one ``SCARD``: cheap enough for a scrape)."""
        return int(self.redis.scard(self.key_prefix + PARKED_ITEMS))

    def parked(self, item_ids: Sequence[int]) -> set[int]:
        """Which of ``item_ids`` are parked (waiting for their credential's turn, not lost)."""
        if not item_ids:
            return set()
        flags = self.redis.smismember(self.key_prefix + PARKED_ITEMS, [str(i) for i in item_ids])
        return {i for i, flag in zip(item_ids, flags, strict=True) if flag}

    # --- credit: sends reserved by admission -----------------------------------------------------------

    def _credits(self) -> dict[str, int]:
        credits: dict[str, int] | None = getattr(self._credit, "by_key", None)
        if credits is None:
            credits = {}
            self._credit.by_key = credits
        return credits

    def _take_credit(self, key: str) -> bool:
        credits = self._credits()
        if credits.get(key, 0) <= 0:
            return False
        credits[key] -= 1
        return True

    def _give_back_credit(self, key: str) -> None:
        credits = self._credits()
        if key in credits:
            credits[key] += 1

    @contextmanager
    def credit(self, key: str, cost: int) -> Iterator[None]:
        """This thread's next ``cost`` sends on ``key`` are already reserved; unused ones are given back."""
        credits = self._credits()
        before = credits.get(key, 0)
        credits[key] = before + max(0, cost)
        try:
            yield
        finally:
            unused = credits.get(key, 0) - before
            credits[key] = before
            if unused > 0:
                self._settle(keys=[self._key(key, "state")], args=[unused, *self._guess()])

    # --- reading and resetting ---------------------------------------------------------------------------

    def learned(self, key: str) -> Learned:
        """The limit and window the limiter works with now for ``key``."""
        raw = self.redis.hmget(self._key(key, "state"), ["limit", "lo", "hi"])
        limit, lo, hi = (float(v) if v is not None else None for v in raw)
        window_ms = hi if hi is not None and hi >= (lo or 0) else max(self.settings.window_s * 1000, (lo or 0) * 1.1)
        return Learned(
            limit=int(limit) if limit is not None else self.settings.requests,
            window_s=window_ms / 1000.0,
            learned_limit=limit is not None,
            learned_window=hi is not None,
            parked=int(self.redis.zcard(self._key(key, "queue"))),
        )

    def reset(self, key: str) -> None:
        """Forget everything about ``key``, its parked items included (tests, operator tooling)."""
        parked = self.redis.zrange(self._key(key, "queue"), 0, -1)
        if parked:
            self.redis.srem(self.key_prefix + PARKED_ITEMS, *parked)
        self.redis.srem(self.key_prefix + PARKED_KEYS, key)
        self.redis.delete(*(self._key(key, p) for p in ("log", "state", "block", "queue", "cost", "seq")))


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
