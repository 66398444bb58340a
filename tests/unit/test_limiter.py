"""The learning limiter on fakeredis (the same Lua runs on real Redis in tests/integration).

Learning is tested against the strict sandbox in real time with one-second windows: the limiter must find
the server's window from a first guess three times too long and three times too short, stay under the
limit in every window, and end up using most of it.
"""

from __future__ import annotations

import time

import fakeredis
import pytest

from shared.errors import ThrottledError
from shared.harvest.client import HarvestClient
from shared.harvest.limiter import NO_TICKET, NullRateLimiter, RedisRateLimiter, make_rate_gate
from shared.harvest.ratelimit import RateLimitInfo
from shared.harvest.sandbox import seed
from shared.settings import LimiterSettings
from tests import limiter_drive as drive

KEY = seed.CLIENT_ID


def limiter_settings(**kw: object) -> LimiterSettings:
    base: dict[str, object] = {"requests": 5, "window_s": 30.0, "max_inline_wait_s": 0.0}
    return LimiterSettings.model_validate({**base, **kw})


@pytest.fixture
def server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


def make(server: fakeredis.FakeServer, **kw: object) -> RedisRateLimiter:
    return RedisRateLimiter(fakeredis.FakeRedis(server=server), limiter_settings(**kw), sleep=lambda _: None)


# --- learning, end to end against the sandbox ---------------------------------------------------------

REAL_WINDOW_S = 1.0
REAL_LIMIT = 10
WINDOWS = 6


@pytest.mark.parametrize("guess_s", [3.0, 0.33], ids=["guess-too-long", "guess-too-short"])
def test_learns_the_servers_window_from_a_wrong_guess_and_uses_it(server: fakeredis.FakeServer, guess_s: float) -> None:
    box = drive.sandbox(REAL_LIMIT, REAL_WINDOW_S)
    settings = limiter_settings(requests=50, window_s=guess_s, max_inline_wait_s=2.0)

    def sender() -> HarvestClient:
        return drive.client(box, RedisRateLimiter(fakeredis.FakeRedis(server=server), settings))

    start = time.time()
    trace = drive.run_senders(sender, threads=4, seconds=WINDOWS * REAL_WINDOW_S)

    learned = make(server).learned(KEY)
    assert learned.limit == REAL_LIMIT and learned.learned_limit
    assert learned.learned_window and REAL_WINDOW_S * 0.95 <= learned.window_s <= REAL_WINDOW_S * 1.25
    accepted = trace.accepted()
    assert drive.max_in_any_window(accepted, REAL_WINDOW_S) <= REAL_LIMIT
    assert trace.throttled() <= 2  # a handful while learning at most...
    assert trace.throttled(since=start + 2.5 * REAL_WINDOW_S) == 0  # ...and none once learned
    late = [t for t in accepted if t >= start + 3 * REAL_WINDOW_S]
    assert len(late) >= 0.75 * REAL_LIMIT * (WINDOWS - 3)  # most of the budget is used once learned


def test_learned_state_is_shared_by_every_instance(server: fakeredis.FakeServer) -> None:
    a, b = make(server), make(server)
    ticket = a.acquire(KEY)
    a.observe(KEY, ticket, RateLimitInfo(limit=75, remaining=74, reset_at=None))
    assert b.learned(KEY).limit == 75 and b.learned(KEY).learned_limit
    assert not b.learned(KEY).learned_window  # one answer bounds the window from below only


# --- the gate -------------------------------------------------------------------------------------------


def test_budget_per_window_then_throttled_with_the_wait(server: fakeredis.FakeServer) -> None:
    limiter = make(server, requests=5, window_s=0.05)  # sends spaced 10 ms apart
    taken = 0
    deadline = time.time() + 0.04
    while time.time() < deadline:
        try:
            limiter.acquire(KEY)
            taken += 1
        except ThrottledError as exc:
            assert 0 < exc.retry_after_s <= 0.05
    assert 1 <= taken <= 5


def test_a_429_blocks_every_worker_of_the_credential_and_no_other(server: fakeredis.FakeServer) -> None:
    a, b = make(server), make(server)
    ticket = a.acquire(KEY)
    a.throttled(KEY, ticket, retry_after_s=20.0)
    with pytest.raises(ThrottledError) as info:
        b.acquire(KEY)
    assert 19.0 < info.value.retry_after_s <= 20.0
    b.acquire("another-credential")  # a throttled credential leaves the others running
    assert b.learned(KEY).window_s == pytest.approx(30.0)  # a guess is no evidence: left as it was


def test_a_429_widens_a_learned_window_by_a_tenth(server: fakeredis.FakeServer) -> None:
    limiter = make(server)
    limiter.redis.hset(f"ghx:rl:{KEY}:state", mapping={"lo": 9_000, "hi": 10_000})
    limiter.throttled(KEY, NO_TICKET, retry_after_s=1.0)
    assert limiter.learned(KEY).window_s == pytest.approx(11.1, abs=0.01)  # 10 s + 1 % margin, then + 10 %


def test_the_servers_remaining_zero_stops_everyone_until_its_reset(server: fakeredis.FakeServer) -> None:
    a, b = make(server), make(server)
    ticket = a.acquire(KEY)
    a.observe(KEY, ticket, RateLimitInfo(limit=50, remaining=0, reset_at=time.time() + 12))
    with pytest.raises(ThrottledError) as info:
        b.acquire(KEY)  # our model has room (1 of 50), the server said none: the server wins
    assert 10.0 < info.value.retry_after_s <= 12.0


def test_a_stale_answer_does_not_overwrite_a_newer_one(server: fakeredis.FakeServer) -> None:
    limiter = make(server, requests=50, window_s=0.05)
    first = limiter.acquire(KEY)
    time.sleep(0.01)
    newer = limiter.acquire(KEY)
    limiter.observe(KEY, newer, RateLimitInfo(limit=50, remaining=40, reset_at=time.time() + 30))
    limiter.observe(KEY, first, RateLimitInfo(limit=50, remaining=0, reset_at=time.time() + 30))  # arrives late
    assert limiter.redis.hget(f"ghx:rl:{KEY}:state", "srv_rem") == b"40"  # the newer word stands


# --- admission, parking, release ---------------------------------------------------------------------


def test_an_item_runs_at_once_only_while_nothing_of_its_credential_is_parked(server: fakeredis.FakeServer) -> None:
    limiter = make(server, requests=10, window_s=10.0, max_inline_wait_s=3.0)  # 1 s a request, 1.5 s ahead
    assert limiter.admit(KEY, 1, cost=1)
    assert not limiter.admit(KEY, 2, cost=5)  # more than the horizon reserved ahead: park it
    limiter.park(KEY, 2, cost=5)
    assert not limiter.admit(KEY, 3, cost=1)  # item 2 waits: nobody overtakes it
    assert limiter.admit("other", 4, cost=1)  # another credential is not held up
    assert limiter.parked([1, 2, 3]) == {2}
    assert limiter.parked_keys() == [KEY]


def test_release_gives_cores_before_enrichments_in_order_with_their_cost(server: fakeredis.FakeServer) -> None:
    limiter = make(server, requests=1000, window_s=1.0, max_inline_wait_s=3.0)
    limiter.park(KEY, 10, cost=4, enrichment=True)
    limiter.park(KEY, 11, cost=2)
    limiter.park(KEY, 12, cost=3)
    limiter.park(KEY, 11, cost=2)  # parked twice (a second message): kept once, in place
    released = limiter.release(KEY)
    assert [(r.item_id, r.cost) for r in released] == [(11, 2), (12, 3), (10, 4)]
    assert limiter.parked([10, 11, 12]) == set()
    assert limiter.release(KEY) == [] and limiter.parked_keys() == []


def test_release_paces_by_the_reserved_cost(server: fakeredis.FakeServer) -> None:
    limiter = make(server, requests=10, window_s=10.0, max_inline_wait_s=3.0)  # 1 s a request, 1.5 s ahead
    for item in range(1, 6):
        limiter.park(KEY, item, cost=1)
    assert [r.item_id for r in limiter.release(KEY)] == [1]  # 1 s reserved; the next would reach 2 s ahead
    assert limiter.release(KEY) == []
    limiter.reset(KEY)
    make(server, requests=10, window_s=10.0).throttled(KEY, NO_TICKET, retry_after_s=60)  # another worker's 429
    limiter.park(KEY, 9, cost=1)
    assert limiter.release(KEY) == []  # a 429 holds every release back


def test_credit_sends_do_not_reserve_twice_and_unused_credit_is_given_back(server: fakeredis.FakeServer) -> None:
    limiter = make(server, requests=10, window_s=100.0, max_inline_wait_s=3.0)  # 10 s a request
    state = f"ghx:rl:{KEY}:state"
    assert limiter.admit(KEY, 1, cost=3)
    reserved = float(limiter.redis.hget(state, "tat") or 0)
    with limiter.credit(KEY, 3):
        limiter.acquire(KEY)  # one of the three reserved sends
    after = float(limiter.redis.hget(state, "tat") or 0)
    assert reserved - after == pytest.approx(2 * 10_000, abs=50)  # two unused sends given back


def test_null_limiter_never_waits_and_admits_everything() -> None:
    null = NullRateLimiter()
    assert null.acquire("x") is NO_TICKET
    null.observe("x", NO_TICKET, RateLimitInfo(1, 0, None))
    null.throttled("x", NO_TICKET, 10.0)
    assert null.admit("x", 1, 100)
    with null.credit("x", 3):
        pass
    assert isinstance(make_rate_gate(None, LimiterSettings()), NullRateLimiter)
    assert isinstance(make_rate_gate(fakeredis.FakeRedis(), LimiterSettings(enabled=False)), NullRateLimiter)
