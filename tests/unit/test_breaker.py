"""The per-credential circuit breaker on fakeredis (its Lua runs on real Redis in
tests/integration/test_connect_under_faults.py). Pauses are a few hundred milliseconds of Redis ``TIME``."""

from __future__ import annotations

import logging
import threading
import time

import fakeredis
import pytest

from shared.errors import CircuitOpenError, RetryableError
from shared.harvest.breaker import (
    CLOSED,
    KEY_PREFIX,
    BreakerState,
    NullCircuitBreaker,
    RedisCircuitBreaker,
    make_breaker,
)
from shared.settings import BreakerSettings

KEY = "cid-1"
OPEN_S = 0.2


@pytest.fixture
def server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


def make(server: fakeredis.FakeServer, *, probe_ttl_s: float = 5.0, **kw: object) -> RedisCircuitBreaker:
    settings = BreakerSettings.model_validate({"failures": 3, "open_s": OPEN_S, "max_open_s": 0.5, **kw})
    return RedisCircuitBreaker(fakeredis.FakeRedis(server=server), settings, probe_ttl_s=probe_ttl_s)


def fail(breaker: RedisCircuitBreaker, times: int, key: str = KEY) -> None:
    for _ in range(times):
        breaker.before_send(key)
        breaker.record(key, False)


def wait_until_half_open(breaker: RedisCircuitBreaker, key: str = KEY) -> None:
    state = breaker.state(key)
    assert state.open_until is not None
    time.sleep(max(0.0, state.open_until - time.time()) + 0.03)
    assert breaker.state(key).state == "half_open"


def test_closed_until_the_consecutive_failures_reach_the_threshold(server: fakeredis.FakeServer) -> None:
    breaker = make(server)
    fail(breaker, 2)
    assert breaker.state(KEY) == BreakerState("closed", 2)
    breaker.record(KEY, True)  # an answer resets the count: the failures were not consecutive
    fail(breaker, 2)
    assert breaker.state(KEY).failures == 2 and not breaker.blocked(KEY)
    assert breaker.states() == {}


def test_opens_after_n_failures_for_every_process(
    server: fakeredis.FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    a, b = make(server), make(server)
    with caplog.at_level(logging.INFO, logger="ghexport.harvest"):
        fail(a, 3)
    opened = [r.getMessage() for r in caplog.records if "circuit open" in r.getMessage()]
    assert len(opened) == 1 and KEY in opened[0] and "3 times in a row" in opened[0]

    with pytest.raises(CircuitOpenError) as info:
        b.before_send(KEY)  # another process: the state is shared
    err = info.value
    assert isinstance(err, RetryableError) and not err.outcome_unknown and err.cause == "greenhouse_unavailable"
    assert 0 < err.retry_after_s <= OPEN_S and err.failures == 3
    assert "failed 3 times in a row" in str(err) and KEY in str(err) and "next try in" in str(err)

    state = b.state(KEY)
    assert state.state == "open" and state.failures == 3 and state.pause_s == pytest.approx(OPEN_S)
    assert state.opened_at is not None and state.open_until is not None
    assert state.open_until - state.opened_at == pytest.approx(OPEN_S)
    assert abs(state.opened_at - time.time()) < 2
    assert b.blocked(KEY) and not b.blocked("another-credential")
    assert b.states() == {KEY: state}
    b.before_send("another-credential")  # one credential's outage leaves the others alone


def test_exactly_one_probe_once_the_pause_is_over(server: fakeredis.FakeServer) -> None:
    breakers = [make(server) for _ in range(8)]
    fail(breakers[0], 3)
    wait_until_half_open(breakers[0])

    through: list[int] = []
    refused: list[float] = []
    start = threading.Barrier(len(breakers))

    def caller(n: int) -> None:
        start.wait()
        try:
            breakers[n].before_send(KEY)
            through.append(n)
        except CircuitOpenError as exc:
            refused.append(exc.retry_after_s)

    threads = [threading.Thread(target=caller, args=(n,)) for n in range(len(breakers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(through) == 1 and len(refused) == len(breakers) - 1
    assert all(0 < r <= 1.0 for r in refused)  # "ask again in a second": the probe's answer is near
    state = breakers[0].state(KEY)
    assert state.state == "half_open" and state.probe_out and breakers[0].blocked(KEY)
    with pytest.raises(CircuitOpenError, match="checking whether it answers again"):
        breakers[1].before_send(KEY)


def test_a_good_probe_closes_the_circuit(server: fakeredis.FakeServer, caplog: pytest.LogCaptureFixture) -> None:
    breaker = make(server)
    fail(breaker, 3)
    wait_until_half_open(breaker)
    breaker.before_send(KEY)
    with caplog.at_level(logging.INFO, logger="ghexport.harvest"):
        breaker.record(KEY, True)
        breaker.before_send(KEY)
        breaker.record(KEY, True)
    again = [r.getMessage() for r in caplog.records if "answers again" in r.getMessage()]
    assert again == [f"Greenhouse answers again for {KEY}: circuit closed"]  # once
    assert breaker.state(KEY) == CLOSED and breaker.states() == {} and not breaker.blocked(KEY)


def test_a_failed_probe_doubles_the_pause_up_to_the_maximum(server: fakeredis.FakeServer) -> None:
    breaker = make(server)
    fail(breaker, 3)
    pauses = [breaker.state(KEY).pause_s]
    for _ in range(3):
        wait_until_half_open(breaker)
        breaker.before_send(KEY)  # the probe
        breaker.record(KEY, False)
        state = breaker.state(KEY)
        assert state.state == "open" and not state.probe_out
        pauses.append(state.pause_s)
    assert pauses == pytest.approx([0.2, 0.4, 0.5, 0.5])
    assert breaker.state(KEY).failures == 6


def test_a_late_failure_of_a_request_sent_before_opening_does_not_extend_the_pause(
    server: fakeredis.FakeServer,
) -> None:
    breaker = make(server)
    fail(breaker, 3)
    before = breaker.state(KEY)
    breaker.record(KEY, False)  # not the probe: a straggler
    after = breaker.state(KEY)
    assert after.open_until == before.open_until and after.pause_s == before.pause_s
    assert after.failures == 4


def test_a_probe_whose_answer_never_comes_expires(server: fakeredis.FakeServer) -> None:
    dead, alive = make(server, probe_ttl_s=0.2), make(server, probe_ttl_s=0.2)
    fail(dead, 3)
    wait_until_half_open(dead)
    dead.before_send(KEY)  # the probe's process dies here: nothing is ever recorded
    with pytest.raises(CircuitOpenError):
        alive.before_send(KEY)
    time.sleep(0.25)
    assert not alive.blocked(KEY)
    alive.before_send(KEY)  # the next caller probes instead
    alive.record(KEY, True)
    assert alive.state(KEY) == CLOSED


def test_a_probe_not_sent_is_given_back(server: fakeredis.FakeServer) -> None:
    a, b = make(server), make(server)
    fail(a, 3)
    wait_until_half_open(a)
    a.before_send(KEY)
    a.release(KEY)  # e.g. the limiter refused the send
    assert not a.state(KEY).probe_out
    b.before_send(KEY)
    a.release(KEY)  # a has no probe out any more: b's stays
    assert b.state(KEY).probe_out


def test_the_probe_is_known_per_thread(server: fakeredis.FakeServer) -> None:
    breaker = make(server)
    fail(breaker, 3)
    wait_until_half_open(breaker)
    breaker.before_send(KEY)  # this thread probes
    other = threading.Thread(target=breaker.record, args=(KEY, False))  # another thread's straggler fails
    other.start()
    other.join()
    assert breaker.state(KEY).probe_out and breaker.state(KEY).pause_s == pytest.approx(OPEN_S)
    breaker.record(KEY, False)  # the probe failed
    assert breaker.state(KEY).pause_s == pytest.approx(0.4)


def test_states_forgets_credentials_whose_state_is_gone(server: fakeredis.FakeServer) -> None:
    breaker = make(server)
    fail(breaker, 3, key="a")
    fail(breaker, 3, key="b")
    assert sorted(breaker.states()) == ["a", "b"]
    breaker.redis.delete(KEY_PREFIX + "a")  # expired after a day without traffic
    assert sorted(breaker.states()) == ["b"]
    assert breaker.redis.smembers(breaker.index_key) == {b"b"}
    breaker.reset("b")
    assert breaker.states() == {}


# --- the write circuit: writes failing while reads answer ---------------------------------------------


def write_outage(breaker: RedisCircuitBreaker, times: int, key: str = KEY) -> None:
    """``times`` writes fail, each after a read that is answered (a lookup before a create)."""
    for _ in range(times):
        breaker.before_send(key)
        breaker.record(key, True)
        breaker.before_send(key, write=True)
        breaker.record(key, False, write=True)


def test_writes_failing_between_answered_reads_open_the_write_circuit(
    server: fakeredis.FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    a, b = make(server), make(server)
    with caplog.at_level(logging.INFO, logger="ghexport.harvest"):
        write_outage(a, 3)
    opened = [r.getMessage() for r in caplog.records if "circuit open" in r.getMessage()]
    assert opened == [f"Greenhouse failed 3 writes in a row for {KEY}: write circuit open, writes paused for 0.2 s"]

    state = b.state(KEY)  # another process: the state is shared
    assert state.state == "open" and state.writes_only and state.failures == 3
    assert state.pause_s == pytest.approx(OPEN_S) and b.blocked(KEY)
    assert b.states() == {KEY: state}
    b.before_send(KEY)  # reads go on (lookups, read-backs, reconciliation)
    b.record(KEY, True)
    with pytest.raises(CircuitOpenError, match=r"failed 3 writes in a row.*pausing its writes") as info:
        b.before_send(KEY, write=True)
    assert not info.value.outcome_unknown and 0 < info.value.retry_after_s <= OPEN_S
    b.before_send("another-credential", write=True)  # one credential's outage leaves the others alone


def test_answered_reads_do_not_close_the_write_circuit_its_write_probe_does(
    server: fakeredis.FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    breaker, other = make(server), make(server)
    write_outage(breaker, 3)
    wait_until_half_open(breaker)
    breaker.before_send(KEY)
    breaker.record(KEY, True)  # a read answered: writes may still be failing
    assert breaker.state(KEY).state == "half_open" and not breaker.state(KEY).probe_out

    breaker.before_send(KEY, write=True)  # the write circuit's probe is a write
    with pytest.raises(CircuitOpenError, match="checking whether it answers again"):
        other.before_send(KEY, write=True)
    other.before_send(KEY)  # a read is no probe of the write circuit: it goes
    other.record(KEY, True)
    assert breaker.state(KEY).probe_out and breaker.blocked(KEY)
    with caplog.at_level(logging.INFO, logger="ghexport.harvest"):
        breaker.record(KEY, True, write=True)
    again = [r.getMessage() for r in caplog.records if "answers again" in r.getMessage()]
    assert again == [f"Greenhouse answers again for {KEY}: write circuit closed"]
    assert breaker.state(KEY) == CLOSED and breaker.states() == {} and not breaker.blocked(KEY)


def test_a_failed_write_probe_doubles_the_write_circuits_pause(server: fakeredis.FakeServer) -> None:
    breaker = make(server)
    write_outage(breaker, 3)
    wait_until_half_open(breaker)
    breaker.before_send(KEY, write=True)
    breaker.record(KEY, False, write=True)
    state = breaker.state(KEY)
    assert state.state == "open" and state.writes_only and state.pause_s == pytest.approx(2 * OPEN_S)


def test_a_write_the_write_circuit_refuses_gives_the_credentials_probe_back(server: fakeredis.FakeServer) -> None:
    breaker, other = make(server, open_s=0.3, max_open_s=2.0), make(server, open_s=0.3, max_open_s=2.0)
    write_outage(breaker, 3)
    wait_until_half_open(breaker)
    breaker.before_send(KEY)
    breaker.record(KEY, True)  # the credential's circuit closes on a read: the write circuit stays half open
    breaker.before_send(KEY, write=True)
    breaker.record(KEY, False, write=True)  # its probe fails: open again for 0.6 s
    fail(breaker, 2)  # reads fail too: the credential's circuit opens for 0.3 s
    wait_until_half_open(breaker)
    assert breaker.state(KEY).state == "half_open"
    with pytest.raises(CircuitOpenError, match="writes in a row"):
        breaker.before_send(KEY, write=True)  # the credential's probe, then refused by the write circuit
    other.before_send(KEY)  # so another caller's read may probe at once
    assert breaker.state(KEY).probe_out


def test_reset_closes_both_circuits(server: fakeredis.FakeServer) -> None:
    breaker = make(server)
    write_outage(breaker, 3)
    fail(breaker, 2)  # then reads fail too (after the last write): the credential's own circuit shows first
    assert breaker.state(KEY).state == "open" and not breaker.state(KEY).writes_only
    assert list(breaker.states()) == [KEY]
    breaker.reset(KEY)
    assert (
        breaker.state(KEY) == CLOSED and breaker.states() == {} and breaker.redis.smembers(breaker.index_key) == set()
    )


def test_null_breaker_and_factory(server: fakeredis.FakeServer) -> None:
    null = NullCircuitBreaker()
    for _ in range(10):
        null.before_send(KEY, write=True)
        null.record(KEY, False, write=True)
    null.release(KEY)
    assert not null.blocked(KEY) and null.state(KEY) == CLOSED and null.states() == {}
    client = fakeredis.FakeRedis(server=server)
    assert isinstance(make_breaker(None, BreakerSettings()), NullCircuitBreaker)
    assert isinstance(make_breaker(client, BreakerSettings(enabled=False)), NullCircuitBreaker)
    made = make_breaker(client, BreakerSettings(), probe_ttl_s=12.0)
    assert isinstance(made, RedisCircuitBreaker) and made.probe_ttl_s == 12.0
