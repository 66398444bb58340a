"""What the real-worker tests share: settings for a worker on the real Redis (a database of the test
file's own), the real PostgreSQL and the sandbox over HTTP; a connection to the sandbox; and a worker
process started and stopped as an operator would."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis
from pydantic import SecretStr

from shared.connections import service as connections
from shared.connections.crypto import generate_key
from shared.harvest.sandbox import SandboxServer, seed
from shared.resources import Resources
from shared.settings import Settings


def broker_db(redis_url: str, db: int) -> tuple[str, redis.Redis]:
    """The URL of Redis database ``db`` on the real Redis, and a client on it, flushed."""
    url = redis_url.rsplit("/", 1)[0] + f"/{db}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    return url, client


def worker_settings(
    db_url: str,
    database_url: str,
    server: SandboxServer,
    *,
    broker_url: str | None = None,
    embedded_dir: Path | None = None,
    **overrides: Any,
) -> Settings:
    """Settings of a system on ``db_url`` (limiter and caches; the broker too unless ``broker_url``), the
    store and the sandbox ``server``; ``overrides`` set other settings, nested groups as dicts
    (``export={...}``), as ``GHX_EXPORT__*`` variables would."""
    if embedded_dir is not None:
        overrides["embedded_dir"] = str(embedded_dir)
    return Settings(
        broker_url=broker_url or db_url,
        redis_url=db_url,
        database_url=database_url,
        harvest_url=server.harvest_url,
        harvest_token_url=server.token_url,
        secret_key=SecretStr(generate_key()),
        **overrides,
    )


def connect_sandbox(res: Resources, name: str) -> None:
    """Register the sandbox's seeded credential as connection ``name`` (migrating the store first)."""
    connections.connect(
        res.settings, res.engine, name=name, client_id=seed.CLIENT_ID, client_secret=SecretStr(seed.CLIENT_SECRET),
        user_email=seed.RECRUITER_EMAIL, **res.harvest_options(),
    )  # fmt: skip


@contextmanager
def running(command: Sequence[str], settings: Settings, cwd: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """``command`` (a worker) running with ``settings`` in its environment and its log in ``cwd``; stopped
    with SIGTERM (SIGKILL to its process group if it does not stop) on exit."""
    env = {**os.environ, **settings.to_env()}  # os.environ holds no GHX_* in tests (tests/conftest.py)
    log = cwd / "worker.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            list(command), env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        yield process, log
    finally:
        stop_processes([process], timeout_s=20)


def stop_processes(processes: Sequence[subprocess.Popen[bytes]], timeout_s: float = 30) -> None:
    """SIGTERM each process still running, then wait for each; SIGKILL to the process group of one that
    does not stop within ``timeout_s``."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
