"""The private Redis and PostgreSQL of tests/integration/private_services.py: a crash and a restart do what
a test relies on (Redis comes back empty on the same port, PostgreSQL keeps its data, a pre-pinging
engine fails while it is down and recovers), and nothing is left behind."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Literal

import pytest
import redis
import sqlalchemy as sa

from tests.integration.private_services import (
    SHARED_PORTS,
    PrivatePostgres,
    PrivateRedis,
    require_private_postgres,
    require_private_redis,
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()


def test_redis_kill_then_start_is_empty_on_the_same_port(private_redis: PrivateRedis) -> None:
    server = private_redis
    assert server.port not in SHARED_PORTS
    url = server.url(db=3)
    assert url == f"redis://127.0.0.1:{server.port}/3"
    client = redis.Redis.from_url(url, socket_timeout=2)
    try:
        client.set("k", "v")
        assert client.get("k") == b"v"

        server.kill()
        with pytest.raises(redis.ConnectionError):
            client.get("k")

        server.start()
        assert server.url(db=3) == url
        assert client.ping()
        assert client.get("k") is None
        assert client.info("server")["process_id"] == server.process.pid  # type: ignore[union-attr]

        client.set("k2", "v2")
        server.restart()
        assert client.get("k2") is None
    finally:
        client.close()


def test_redis_context_manager_cleans_up_on_error() -> None:
    require_private_redis()
    with pytest.raises(RuntimeError, match="test failed"), PrivateRedis() as server:
        assert server.process is not None
        pid, folder = server.process.pid, server.dir
        raise RuntimeError("test failed")
    assert not _alive(pid)
    assert not folder.exists()


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_postgres_restart_keeps_data_on_the_same_port(
    private_postgres: PrivatePostgres, mode: Literal["fast", "immediate"]
) -> None:
    server = private_postgres
    assert server.port not in SHARED_PORTS
    assert server.url == f"postgresql+psycopg://postgres@127.0.0.1:{server.port}/test"
    engine = sa.create_engine(server.url, pool_pre_ping=True)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE t (id int PRIMARY KEY, name text)"))
            conn.execute(sa.text("INSERT INTO t VALUES (1, 'one'), (2, 'two')"))

        started = time.monotonic()
        server.restart(mode=mode)
        assert time.monotonic() - started < 10

        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT id, name FROM t ORDER BY id")).all() == [(1, "one"), (2, "two")]
    finally:
        engine.dispose()


def test_postgres_pre_ping_engine_fails_while_down_and_recovers(private_postgres: PrivatePostgres) -> None:
    server = private_postgres
    engine = sa.create_engine(server.url, pool_pre_ping=True)
    try:
        with engine.connect() as conn:  # a pooled connection that the crash makes stale
            assert conn.execute(sa.text("SELECT 1")).scalar() == 1

        server.stop("immediate")
        with pytest.raises(sa.exc.OperationalError), engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

        server.start()
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()


def test_postgres_restart_with_downtime_seen_by_a_polling_engine(private_postgres: PrivatePostgres) -> None:
    """As mid-test in a real scenario: the restart runs in the background while the test keeps querying."""
    server = private_postgres
    engine = sa.create_engine(server.url, pool_pre_ping=True)
    down_s = 1.0
    errors: list[BaseException] = []

    def restart() -> None:
        try:
            server.restart(mode="immediate", down_s=down_s)
        except BaseException as exc:  # reported by the test thread
            errors.append(exc)

    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        thread = threading.Thread(target=restart)
        thread.start()
        first_error = last_error = None
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                with engine.connect() as conn:
                    conn.execute(sa.text("SELECT 1"))
            except sa.exc.OperationalError:
                last_error = time.monotonic()
                first_error = first_error or last_error
            else:
                if first_error is not None:
                    break
            time.sleep(0.05)
        thread.join(timeout=30)
        assert not errors, errors
        assert first_error is not None and last_error is not None, "the engine never saw the server down"
        assert last_error - first_error >= down_s * 0.8
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()


def test_postgres_context_manager_cleans_up_on_error() -> None:
    require_private_postgres()
    with pytest.raises(RuntimeError, match="test failed"), PrivatePostgres(dbname="other") as server:
        assert server.url.endswith(f":{server.port}/other")
        pid = int((server.data / "postmaster.pid").read_text().split()[0])
        folder = server.dir
        assert _alive(pid)
        raise RuntimeError("test failed")
    assert not _alive(pid)
    assert not folder.exists()
