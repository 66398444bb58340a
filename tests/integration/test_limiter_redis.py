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
from shared.harvest.client import HarvestClient
from shared.harvest.limiter import RedisRateLimiter
from shared.settings import LimiterSettings
from tests import limiter_drive as drive

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
    assert drive.max_in_any_window(stamps, WINDOW_S - SLACK_S) <= BUDGET


def test_a_429_blocks_every_client_of_the_key(redis_url: str, prefix: str) -> None:
    no_wait = _settings().model_copy(update={"max_inline_wait_s": 0.0})
    a = RedisRateLimiter(redis.Redis.from_url(redis_url), no_wait, key_prefix=prefix)
    b = RedisRateLimiter(redis.Redis.from_url(redis_url), no_wait, key_prefix=prefix)
    a.throttled("cid", a.acquire("cid"), retry_after_s=30.0)
    with pytest.raises(ThrottledError) as info:
        b.acquire("cid")
    assert 28.0 < info.value.retry_after_s <= 30.0
    b.acquire("other")  # another credential is not held up
    a.redis.close()
    b.redis.close()


# --- learning with two worker processes against the sandbox over HTTP ------------------------------------

SERVER_LIMIT = 50
SERVER_WINDOW_S = 1.5
LEARN_RUN_S = 6 * SERVER_WINDOW_S


def learn_and_send(url: str, prefix: str, harvest_url: str, token_url: str, until: float) -> list[tuple[float, int]]:
    """One worker process: 3 threads sending reads through a limiter left at the project's first guess."""
    client = redis.Redis.from_url(url)
    settings = LimiterSettings(max_inline_wait_s=2.0)  # the defaults' guess: 50 per 30 s
    trace = drive.Trace()

    def make() -> HarvestClient:
        return drive.http_client(harvest_url, token_url, RedisRateLimiter(client, settings, key_prefix=prefix))

    threads = [threading.Thread(target=drive.send_until, args=(make(), until, trace)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    client.close()
    return trace.answers


def _learner(url: str, prefix: str, h: str, tok: str, until: float, out: multiprocessing.Queue[object]) -> None:
    out.put(learn_and_send(url, prefix, h, tok, until))


def test_two_worker_processes_learn_the_window_and_never_exceed_the_limit(redis_url: str, prefix: str) -> None:
    from shared.harvest.sandbox import Sandbox, SandboxConfig, SandboxServer, seed

    box = Sandbox(SandboxConfig(rate_limit=SERVER_LIMIT, window_s=SERVER_WINDOW_S))
    with SandboxServer(box) as server:
        start = time.time()
        until = start + LEARN_RUN_S
        ctx = multiprocessing.get_context("spawn")
        queue: multiprocessing.Queue[object] = ctx.Queue()
        args = (redis_url, prefix, server.harvest_url, server.token_url, until, queue)
        procs = [ctx.Process(target=_learner, args=args) for _ in range(2)]
        for p in procs:
            p.start()
        answers: list[tuple[float, int]] = []
        for _ in procs:
            got = queue.get(timeout=60)
            assert isinstance(got, list)
            answers.extend(got)
        for p in procs:
            p.join(timeout=30)
            assert p.exitcode == 0
        stats = box.stats()
    assert (
        stats["credentials"][seed.CLIENT_ID]["max_in_window"] <= SERVER_LIMIT
    )  # as the server counted, in every rolling window
    late_429 = [t for t, status in answers if status == 429 and t > start + 2 * SERVER_WINDOW_S]
    assert late_429 == []  # none once learned (the first guess was 30 s: five times too long)
    accepted_late = [t for t, status in answers if status == 200 and t > start + 3 * SERVER_WINDOW_S]
    assert len(accepted_late) >= 0.75 * SERVER_LIMIT * (LEARN_RUN_S / SERVER_WINDOW_S - 3)
