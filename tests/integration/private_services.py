"""A Redis and a PostgreSQL of the test's own, which a test may kill and restart mid-test.

The machine's shared services (``tests/conftest.py``: Redis on 6379, PostgreSQL on 5432) are never stopped
by a test; a test that needs a crash or a restart starts a private server here instead:

* :class:`PrivateRedis` - ``redis-server`` on a free 127.0.0.1 port, no persistence (``--save ""
  --appendonly no``, its own ``--dir``); :meth:`~PrivateRedis.kill` is a crash (SIGKILL),
  :meth:`~PrivateRedis.start` brings it back on the same port, empty, as a Redis without persistence after a
  restart. URL: ``redis://127.0.0.1:PORT/DB`` (:meth:`~PrivateRedis.url`).
* :class:`PrivatePostgres` - a cluster made by ``initdb`` in a temporary folder (owned by the ``postgres``
  OS user when we run as root; trust auth, ``fsync=off``), run by ``pg_ctl`` on a free 127.0.0.1 port with
  its unix socket inside that folder, and a database for the test. URL as the project spells it:
  ``postgresql+psycopg://postgres@127.0.0.1:PORT/DBNAME`` (:attr:`~PrivatePostgres.url`).
  :meth:`~PrivatePostgres.restart` stops it (``fast`` or ``immediate``, a crash), optionally stays down for
  ``down_s`` seconds, and starts it again on the same port with its data.

Both are context managers that kill their server and remove their folder on exit, whatever the test did; a
server left running at interpreter exit is killed too (``atexit``). Before it is used, each checks that the
server answering on its port is its own (Redis ``process_id``, PostgreSQL ``data_directory``), and no
method can touch anything but the process it started and its own data folder.

The fixtures ``private_redis`` and ``private_postgres`` (function scope) skip with a reason when the binaries
are missing on a laptop, and fail instead under ``CI=true`` (as :func:`tests.conftest.require_service`).
They are registered for every test by ``pytest_plugins`` in ``tests/conftest.py``: a test just takes
``private_redis: PrivateRedis`` / ``private_postgres: PrivatePostgres`` as arguments (importing the fixtures
into a test module instead would trip ruff's F811 on every test that uses them). For another
database name or several servers in one test, call :func:`require_private_redis` /
:func:`require_private_postgres` (the fixtures' skip-or-fail) and use the classes as context managers.

Binaries: ``redis-server`` from ``GHX_TEST_REDIS_SERVER`` (only it when set), else ``PATH``; PostgreSQL's
``initdb``, ``pg_ctl``, ``postgres`` and ``psql`` (one folder) from ``GHX_TEST_PG_BINDIR`` (only it when set),
else ``PATH``, else the newest ``/usr/lib/postgresql/*/bin`` (Debian). Both variables are read at import.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Literal, Self

import pytest

from tests.conftest import IN_CI

# Ports of the machine's shared services: never a private server's port, whatever the free-port search says.
SHARED_PORTS = frozenset({5432, 6379, 5672})
STARTUP_TIMEOUT_S = 30.0
PG_OS_USER = "postgres"
PG_SUPERUSER = "postgres"
# Read once at import, before tests/conftest.py's autouse fixture clears every GHX_* variable for the tests.
REDIS_SERVER_OVERRIDE = os.environ.get("GHX_TEST_REDIS_SERVER")
PG_BINDIR_OVERRIDE = os.environ.get("GHX_TEST_PG_BINDIR")

# Servers still running, killed at interpreter exit if a test run was interrupted before its cleanup.
_live: set[PrivateRedis | PrivatePostgres] = set()


@atexit.register
def _kill_leftovers() -> None:
    for server in list(_live):
        server.close()


# --- binaries and skip/fail --------------------------------------------------------------------------------


def redis_server_binary() -> str | None:
    """Path of ``redis-server`` (``GHX_TEST_REDIS_SERVER`` or ``PATH``), or ``None``."""
    if REDIS_SERVER_OVERRIDE:
        return REDIS_SERVER_OVERRIDE if os.access(REDIS_SERVER_OVERRIDE, os.X_OK) else None
    return shutil.which("redis-server")


def postgres_bin_dir() -> Path | None:
    """Folder holding ``initdb``, ``pg_ctl``, ``postgres``, ``psql`` (``GHX_TEST_PG_BINDIR``, ``PATH``, newest
    Debian version)."""
    candidates: list[Path] = []
    if PG_BINDIR_OVERRIDE:
        candidates.append(Path(PG_BINDIR_OVERRIDE))  # the only candidate when set
    elif on_path := shutil.which("initdb"):
        candidates.append(Path(on_path).resolve().parent)  # a symlink's target: psql lives beside it
    debian = Path("/usr/lib/postgresql")
    if not PG_BINDIR_OVERRIDE and debian.is_dir():
        versions = [p for p in debian.iterdir() if p.name.isdigit()]
        candidates += [p / "bin" for p in sorted(versions, key=lambda p: int(p.name), reverse=True)]
    for bindir in candidates:
        if all(os.access(bindir / name, os.X_OK) for name in ("initdb", "pg_ctl", "postgres", "psql")):
            return bindir
    return None


def _postgres_os_user_exists() -> bool:
    import pwd

    try:
        pwd.getpwnam(PG_OS_USER)
    except KeyError:
        return False
    return True


def require_binary(name: str, missing: str | None) -> None:
    """Skip with ``missing`` as the reason when it is set; under ``CI=true`` fail instead."""
    if missing is None:
        return
    reason = f"private {name} unavailable: {missing}"
    if IN_CI:
        pytest.fail(f"CI=true and {reason}: real-service tests must not be skipped in CI")
    pytest.skip(reason)


def require_private_redis() -> None:
    """Skip (fail under ``CI=true``) unless a :class:`PrivateRedis` can be started here."""
    require_binary("redis", _redis_missing())


def require_private_postgres() -> None:
    """Skip (fail under ``CI=true``) unless a :class:`PrivatePostgres` can be started here."""
    require_binary("postgres", _postgres_missing())


def _redis_missing() -> str | None:
    if redis_server_binary() is None:
        return "redis-server not found (install redis-server or set GHX_TEST_REDIS_SERVER)"
    return None


def _postgres_missing() -> str | None:
    if postgres_bin_dir() is None:
        return (
            "initdb/pg_ctl/postgres/psql not found together on PATH or under /usr/lib/postgresql/*/bin "
            "(install PostgreSQL server binaries or set GHX_TEST_PG_BINDIR)"
        )
    if os.geteuid() == 0 and not _postgres_os_user_exists():
        return f"running as root and there is no {PG_OS_USER!r} OS user to run PostgreSQL as"
    return None


# --- helpers ------------------------------------------------------------------------------------------------


def free_port() -> int:
    """A free 127.0.0.1 port below the kernel's ephemeral range (so no outgoing connection takes it while a
    server is down between a stop and a start), never a shared service's port."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    for _ in range(200):
        port = random.randint(20000, max(20001, low - 1))
        if port in SHARED_PORTS:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free 127.0.0.1 port found")


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _make_tempdir(prefix: str) -> Path:
    # Directly under /tmp (not pytest's tmp_path, whose root-only parents the postgres user cannot cross) and
    # short: a unix socket path must stay under ~107 bytes.
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


# --- Redis ----------------------------------------------------------------------------------------------------


class PrivateRedis:
    """A ``redis-server`` of the test's own, without persistence; see the module docstring.

    ``start()`` on construction is up to the caller (the context manager and the fixture start it).
    """

    def __init__(self, binary: str | None = None) -> None:
        found = binary or redis_server_binary()
        if found is None:
            raise RuntimeError(_redis_missing())
        self.binary = found
        self.dir = _make_tempdir("ghx-redis-")
        self.port = free_port()
        self.log = self.dir / "redis.log"
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        """``redis://127.0.0.1:PORT/DB``."""
        return f"redis://127.0.0.1:{self.port}/{db}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        """Start the server on :attr:`port` (the same port every time), empty; return once it answers PING
        and is this process (not another server on the port)."""
        if self.running:
            raise RuntimeError(f"private redis on {self.port} is already running")
        assert self.port not in SHARED_PORTS
        command = [
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(self.dir), "--logfile", str(self.log), "--daemonize", "no", "--protected-mode", "yes",
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command, cwd=self.dir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        _live.add(self)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"redis-server on {self.port} exited ({self.process.returncode}):\n{_tail(self.log)}"
                )
            pid = self._answering_pid()
            if pid is not None:
                if pid != self.process.pid:
                    self.kill()
                    raise RuntimeError(f"port {self.port} is answered by another redis (pid {pid})")
                return
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"redis-server on {self.port} did not answer PING:\n{_tail(self.log)}")
            time.sleep(0.01)

    def _answering_pid(self) -> int | None:
        """``process_id`` of the Redis answering on the port, ``None`` while nothing answers (or it loads)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), 0.5) as sock:
                sock.settimeout(2.0)
                sock.sendall(b"INFO server\r\n")
                reply = sock.makefile("rb")
                header = reply.readline()
                if not header.startswith(b"$"):
                    return None  # -LOADING or another error: not ready yet
                body = reply.read(int(header[1:]))
        except (OSError, ValueError):
            return None
        for line in body.decode(errors="replace").splitlines():
            if line.startswith("process_id:"):
                return int(line.split(":", 1)[1])
        return None

    def kill(self) -> None:
        """Crash it: SIGKILL, and wait for the process to be gone (the port is free again at once)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        _live.discard(self)

    def restart(self) -> None:
        """:meth:`kill` then :meth:`start`: the same port, no data."""
        self.kill()
        self.start()

    def stop(self) -> None:
        """Shut it down cleanly (SIGTERM; SIGKILL after 10 s). :meth:`start` may bring it back."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        _live.discard(self)

    def close(self) -> None:
        """Kill it and remove its folder."""
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


# --- PostgreSQL -----------------------------------------------------------------------------------------------

StopMode = Literal["smart", "fast", "immediate"]


class PrivatePostgres:
    """A PostgreSQL cluster of the test's own in a temporary folder; see the module docstring.

    Constructing it runs ``initdb`` (about 1 s); ``start()`` (the context manager and the fixture call it)
    starts the server and creates database ``dbname`` the first time.
    """

    def __init__(self, dbname: str = "test", bindir: Path | None = None) -> None:
        found = bindir or postgres_bin_dir()
        if found is None:
            raise RuntimeError(_postgres_missing())
        self.bindir = found
        self.dbname = dbname
        self.port = free_port()
        self.dir = _make_tempdir("ghx-pg-")
        self.data = self.dir / "data"
        self.socket_dir = self.dir / "sock"
        self.log = self.dir / "postgres.log"
        self._as_postgres = os.geteuid() == 0
        self._created_db = False
        self._up = False
        try:
            self.socket_dir.mkdir()
            self.log.touch()
            if self._as_postgres:
                for path in (self.dir, self.socket_dir, self.log):
                    shutil.chown(path, PG_OS_USER, PG_OS_USER)
            self._run(
                "initdb", "-D", str(self.data), "-U", PG_SUPERUSER, "-A", "trust", "-E", "UTF8", "--locale=C",
                "--no-sync", "--no-instructions",
            )  # fmt: skip
            with open(self.data / "postgresql.conf", "a") as conf:
                conf.write(
                    "\n# tests/integration/private_services.py\n"
                    f"port = {self.port}\n"
                    "listen_addresses = '127.0.0.1'\n"
                    f"unix_socket_directories = '{self.socket_dir}'\n"
                    "fsync = off\nfull_page_writes = off\n"
                    "max_connections = 50\nshared_buffers = 16MB\n"
                    "logging_collector = off\n"
                )
        except BaseException:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise

    @property
    def url(self) -> str:
        """``postgresql+psycopg://postgres@127.0.0.1:PORT/DBNAME``, the project's form (tests/conftest.py)."""
        return self.url_for(self.dbname)

    def url_for(self, dbname: str) -> str:
        return f"postgresql+psycopg://{PG_SUPERUSER}@127.0.0.1:{self.port}/{dbname}"

    def _run(self, tool: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run PostgreSQL's ``tool`` as the postgres OS user (when root), in our folder, with no PG* variable
        of the caller's environment (PGPORT, PGHOST... would point it elsewhere)."""
        command = [str(self.bindir / tool), *args]
        if self._as_postgres:
            command = ["runuser", "-u", PG_OS_USER, "--", *command]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        result = subprocess.run(
            command, cwd=self.dir, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
            timeout=timeout,
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(
                f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}{result.stderr}\n"
                f"--- {self.log}:\n{_tail(self.log)}"
            )
        return result

    def _psql(self, sql: str, dbname: str = "postgres") -> str:
        """``sql`` run over TCP on our port; the output unaligned, tuples only."""
        out = self._run(
            "psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(self.port),
            "-U", PG_SUPERUSER, "-d", dbname, "-c", sql,
        )  # fmt: skip
        return out.stdout.strip()

    def start(self) -> None:
        """Start the server on :attr:`port` (the same port every time, data kept) and wait until it accepts
        connections; check it is this cluster; create database :attr:`dbname` the first time."""
        assert self.port not in SHARED_PORTS
        _live.add(self)
        self._up = True
        self._run("pg_ctl", "start", "-D", str(self.data), "-l", str(self.log), "-w", "-t", str(int(STARTUP_TIMEOUT_S)))
        served = self._psql("SHOW data_directory")
        if Path(served).resolve() != self.data.resolve():
            raise RuntimeError(f"port {self.port} is answered by another PostgreSQL (data directory {served})")
        if not self._created_db:
            self._psql(f'CREATE DATABASE "{self.dbname}"')
            self._created_db = True

    def stop(self, mode: StopMode = "fast") -> None:
        """Stop the server (``immediate`` is a crash: recovery runs at the next start); data are kept and
        :meth:`start` brings it back."""
        if mode not in ("smart", "fast", "immediate"):
            raise ValueError(f"unknown stop mode {mode!r}")
        if self._up:
            self._run("pg_ctl", "stop", "-D", str(self.data), "-m", mode, "-w", "-t", "30")
            self._up = False
        _live.discard(self)

    def restart(self, mode: Literal["fast", "immediate"] = "fast", down_s: float = 0) -> None:
        """:meth:`stop` with ``mode``, stay down ``down_s`` seconds, :meth:`start` on the same port."""
        self.stop(mode)
        if down_s > 0:
            time.sleep(down_s)
        self.start()

    def _kill_postmaster(self) -> None:
        """Last resort: SIGKILL the postmaster named in our ``postmaster.pid`` if it really runs our data
        folder (its backends exit when they see it gone)."""
        try:
            pid = int((self.data / "postmaster.pid").read_text().split()[0])
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            return
        if str(self.data).encode() in cmdline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def close(self) -> None:
        """Stop the server at once (``immediate``; SIGKILL if that fails) and remove the folder."""
        try:
            if self._up:
                self.stop("immediate")
        except Exception:
            self._kill_postmaster()
        finally:
            self._up = False
            _live.discard(self)
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


# --- fixtures -------------------------------------------------------------------------------------------------


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    """A running :class:`PrivateRedis` of this test, killed and removed afterwards."""
    require_private_redis()
    with PrivateRedis() as server:
        yield server


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    """A running :class:`PrivatePostgres` with database ``test`` of this test, stopped and removed afterwards."""
    require_private_postgres()
    with PrivatePostgres() as server:
        yield server


__all__ = [
    "PrivatePostgres",
    "PrivateRedis",
    "free_port",
    "postgres_bin_dir",
    "private_postgres",
    "private_redis",
    "redis_server_binary",
    "require_binary",
    "require_private_postgres",
    "require_private_redis",
]
