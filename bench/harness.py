"""Reusable pieces of end-to-end benchmarks: the whole system run as an operator runs it, on real services.

- :func:`fresh_database`: a new PostgreSQL database (trust auth, user ``postgres`` or ``root``), dropped after.
- :func:`flush_redis`: empty the benchmark's Redis database (broker, shared limiter and caches all live there).
- :func:`sandbox_process`: ``ghexport sandbox --json --port 0 ...`` as a subprocess; :class:`SandboxProcess`
  reads its ``/_sandbox/`` admin routes (stats, state, credentials).
- :class:`System`: the ``GHX_*`` environment of one run (only what must differ from the defaults) and the
  ``ghexport`` commands run in it (``connect``, ``export``); :func:`running_workers` starts ``ghexport worker``
  processes exactly as the README does and counts their re-queue log lines.
- :class:`StatsPoller`: samples the sandbox's counters over time (when requests were accepted, when 429s came);
  :class:`CredentialPoller` does the same per credential, with the CPU time of watched process groups and of the
  machine (:func:`group_cpu_seconds`, :func:`machine_cpu_seconds`, read from ``/proc``).
- :func:`deliveries`: task deliveries, parks and countdown retries per item, from the workers' logs.
- :func:`wait_for_batch`: polls the result store until no item of a batch is ``queued`` or ``sending``.

Every process is started in its own session (a process group of its own, so a Ctrl-C on the terminal does
not reach it half-way) and stopped by its context manager, on error and on ``KeyboardInterrupt`` too: SIGTERM
to the process it started, then SIGKILL to its whole group after a grace period (which also ends pool children
a worker left behind).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import httpx
import psycopg
import redis
from psycopg import sql
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from producer.demo import sample_profiles
from shared.profiles.model import Profile
from shared.store.models import ACTIVE_STATUSES, Item, aware

BIN = Path(sys.executable).parent
GHEXPORT = str(BIN / "ghexport")
CELERY = str(BIN / "celery")

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/13"
TOKEN_ROUTE = "POST /token"
RETRY_LINE = re.compile(rb"item (\d+): retry in|export of item (\d+) failed unexpectedly")
"""What a worker logs (INFO) each time an item's task message goes back to the broker with a countdown: the
export's ``RetryLater``, or an unexpected exception of the task (retried after 30 s)."""
PARK_LINE = re.compile(rb"item (\d+): parked")
"""What a worker logs (INFO) when it parks an item in its credential's queue (``item <id>: parked until its
credential has budget``): a pacer publishes it again when its turn comes, one more delivery."""
OUTCOME_LINE = re.compile(
    rb"item (\d+): (?:retry in|not claimed|parked until|exported|skipped|failed|synced)\b"
    rb"|export of item (\d+) failed unexpectedly"
)
"""The one line a worker logs at the end of every delivery of an export task (``workers/tasks.py``): a countdown
retry, not claimed, parked, or the final status; or the unexpected failure that retries it. One per delivery."""
RECEIVED_LINE = re.compile(rb"Task ghexport\.export_item\[[^\]]+\] received")
"""What Celery itself logs (INFO) for every export task message a worker takes from the broker."""
READY_LINE = b" ready."
"""What a Celery worker logs (INFO) once it consumes."""
Stats = dict[str, Any]
"""The sandbox's ``/_sandbox/stats`` document, read as plain JSON: only ``requests`` (route -> status -> count) and
``rate_limited`` are relied on; newer members (``credentials``) are used when present."""
_DB_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class HarnessError(RuntimeError):
    """The benchmark's environment did not behave (a process did not start, a command failed...)."""


def tail(path: Path, lines: int = 15) -> str:
    """The last ``lines`` lines of a log file (for error messages)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --- processes ----------------------------------------------------------------------------------------


class ManagedProcess:
    """A subprocess in a session (process group) of its own, its output in ``log``; :meth:`stop` ends the group."""

    def __init__(self, command: Sequence[str], *, env: Mapping[str, str], cwd: Path, log: Path) -> None:
        self.command = list(command)
        self.log = log
        with open(log, "wb") as out:
            self.popen = subprocess.Popen(
                self.command, env=dict(env), cwd=cwd, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        self.pgid = self.popen.pid  # a session leader's group id is its pid

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def _signal_group(self, sig: int) -> None:
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pgid, sig)

    def terminate(self) -> None:
        """SIGTERM to the leader only (a Celery worker's warm shutdown: it stops its own pool children)."""
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)

    def finish(self, grace_s: float = 20.0) -> None:
        """Wait up to ``grace_s`` for the leader, then SIGKILL whatever is left of the group (pool children
        outliving their parent, or a leader ignoring SIGTERM)."""
        with suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=grace_s)
        self._signal_group(signal.SIGKILL)
        with suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=10)

    def stop(self, grace_s: float = 20.0) -> None:
        """:meth:`terminate`, then :meth:`finish`."""
        self.terminate()
        self.finish(grace_s)


# --- services: PostgreSQL and Redis -------------------------------------------------------------------


def _pg_admin(host: str, port: int, users: Sequence[str]) -> tuple[psycopg.Connection[Any], str]:
    errors = []
    for user in users:
        try:
            conn = psycopg.connect(
                host=host, port=port, user=user, dbname="postgres", autocommit=True, connect_timeout=5
            )
        except psycopg.Error as exc:
            errors.append(f"{user}: {exc}".strip())
            continue
        return conn, user
    raise HarnessError(f"cannot reach PostgreSQL on {host}:{port} ({'; '.join(errors)})")


@contextmanager
def fresh_database(
    name: str, *, host: str = "127.0.0.1", port: int = 5432, users: Sequence[str] = ("postgres", "root")
) -> Iterator[str]:
    """Create database ``name`` (dropping a leftover of that name first), yield its SQLAlchemy URL, drop it after
    (``WITH (FORCE)``: connections still open are closed)."""
    if not _DB_NAME.match(name):
        raise HarnessError(f"not a safe database name: {name!r}")
    admin, user = _pg_admin(host, port, users)
    ident = sql.Identifier(name)
    try:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(ident))
        try:
            yield f"postgresql+psycopg://{user}@{host}:{port}/{name}"
        finally:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))
    finally:
        admin.close()


def flush_redis(url: str) -> None:
    """Empty the Redis database of ``url`` (the benchmark's own: queues, limiter state, caches)."""
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    except redis.RedisError as exc:
        raise HarnessError(f"cannot flush Redis {url}: {exc}") from exc
    finally:
        client.close()


# --- the Harvest sandbox ------------------------------------------------------------------------------


@dataclass
class SandboxProcess:
    """A running ``ghexport sandbox`` and what it printed: URLs and its seeded credential."""

    process: ManagedProcess
    harvest_url: str
    token_url: str
    client_id: str
    client_secret: str
    user_email: str
    rate_limit: int
    window_s: float
    http: httpx.Client = field(repr=False)

    def stats(self) -> Stats:
        """``GET /_sandbox/stats`` (not rate limited)."""
        return cast(Stats, self._get("/_sandbox/stats"))

    def accepted(self) -> int:
        """Requests the sandbox's rate limiter has let through so far, every credential (:func:`accepted_requests`)."""
        return accepted_requests(self.stats())

    def state(self) -> dict[str, Any]:
        """``GET /_sandbox/state``: candidates with their children (heavy: read it once, at the end)."""
        return cast(dict[str, Any], self._get("/_sandbox/state"))

    def add_credential(
        self,
        client_id: str,
        client_secret: str,
        scopes: Sequence[str],
        *,
        rate_limit: int | None = None,
        window_s: float | None = None,
    ) -> None:
        """``POST /_sandbox/credentials``: another API credential (another customer), with its own rate limit and
        window when given (else the sandbox's)."""
        body: dict[str, object] = {"client_id": client_id, "client_secret": client_secret, "scopes": list(scopes)}
        if rate_limit is not None:
            body["rate_limit"] = rate_limit
        if window_s is not None:
            body["window_s"] = window_s
        r = self.http.post(f"{self.harvest_url}/_sandbox/credentials", json=body)
        if r.status_code != 201:
            raise HarnessError(f"sandbox refused the credential: {r.status_code} {r.text}")

    def _get(self, path: str) -> object:
        r = self.http.get(f"{self.harvest_url}{path}")
        r.raise_for_status()
        return r.json()


@contextmanager
def sandbox_process(
    run_dir: Path,
    *,
    rate_limit: int,
    window_s: float,
    latency_ms: float = 0.0,
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    ready_timeout_s: float = 30.0,
) -> Iterator[SandboxProcess]:
    """``ghexport sandbox --json --port 0 --rate-limit N --window S [--latency-ms L]``, until the block ends."""
    cmd = [GHEXPORT, "sandbox", "--json", "--port", "0", "--rate-limit", str(rate_limit), "--window", str(window_s)]
    if latency_ms:
        cmd += ["--latency-ms", str(latency_ms)]
    cmd += list(extra_args)
    proc = ManagedProcess(cmd, env=env or clean_env({}), cwd=run_dir, log=run_dir / "sandbox.log")
    http = httpx.Client(timeout=60.0)
    try:
        info = _sandbox_info(proc, ready_timeout_s)
        yield SandboxProcess(
            process=proc,
            harvest_url=str(info["harvest_url"]),
            token_url=str(info["token_url"]),
            client_id=str(info["client_id"]),
            client_secret=str(info["client_secret"]),
            user_email=str(info["user_email"]),
            rate_limit=rate_limit,
            window_s=window_s,
            http=http,
        )
    finally:
        http.close()
        proc.stop(grace_s=10)


def _sandbox_info(proc: ManagedProcess, timeout_s: float) -> dict[str, object]:
    """The JSON line ``ghexport sandbox --json`` prints once it listens."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for line in proc.log.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    doc = json.loads(line)
                except ValueError:
                    continue
                if isinstance(doc, dict) and "harvest_url" in doc:
                    return doc
        if not proc.alive():
            raise HarnessError(f"the sandbox exited ({proc.popen.returncode}):\n{tail(proc.log)}")
        time.sleep(0.05)
    raise HarnessError(f"the sandbox printed no ready line in {timeout_s:.0f} s:\n{tail(proc.log)}")


# --- the system: environment and ghexport commands ---------------------------------------------------


def clean_env(ghx: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without any ``GHX_*`` variable, plus ``ghx``: every setting not given keeps
    the project's default (a stray ``GHX_LIMITER__*`` in the caller's shell must not change what is measured)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GHX_")}
    env.update(ghx)
    return env


@dataclass(frozen=True)
class ExportStarted:
    """A batch recorded by ``ghexport export --json``: wall times around the command."""

    batch_id: str
    enqueued: int
    command_started: float
    """``time.time()`` just before the ``ghexport export`` process was started."""
    command_returned: float


@dataclass
class System:
    """One run's system: the store, broker and sandbox it points at, as ``GHX_*`` variables for every command.

    ``ghx`` holds only what must differ from the defaults (broker, store, Harvest URLs, secret key, the embedded
    directory kept inside the run directory) plus ``overrides`` (the baseline's ``GHX_LIMITER__ENABLED=false``).
    Commands run with ``run_dir`` as their working directory, so no ``.env`` file is picked up.
    """

    run_dir: Path
    broker_url: str
    database_url: str
    sandbox: SandboxProcess
    secret_key: str
    overrides: Mapping[str, str] = field(default_factory=dict)

    @property
    def ghx(self) -> dict[str, str]:
        return {
            "GHX_BROKER_URL": self.broker_url,
            "GHX_DATABASE_URL": self.database_url,
            "GHX_HARVEST_URL": self.sandbox.harvest_url,
            "GHX_HARVEST_TOKEN_URL": self.sandbox.token_url,
            "GHX_SECRET_KEY": self.secret_key,
            "GHX_EMBEDDED_DIR": str(self.run_dir / "embedded"),
            **self.overrides,
        }

    @property
    def env(self) -> dict[str, str]:
        return clean_env(self.ghx)

    def run(
        self, command: Sequence[str], *, timeout_s: float = 300.0, extra_env: Mapping[str, str] | None = None
    ) -> str:
        """Run ``command`` in this system's environment; its stdout, or :class:`HarnessError` with its stderr."""
        env = {**self.env, **(extra_env or {})}
        try:
            done = subprocess.run(
                list(command), env=env, cwd=self.run_dir, stdin=subprocess.DEVNULL, capture_output=True,
                timeout=timeout_s, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired as exc:
            raise HarnessError(f"{' '.join(command[:3])} ... did not finish in {timeout_s:.0f} s") from exc
        if done.returncode != 0:
            err = done.stderr.decode(errors="replace").strip()[-2000:]
            raise HarnessError(f"{' '.join(command[:3])} ... exited {done.returncode}: {err}")
        return done.stdout.decode(errors="replace")

    def ghexport_json(self, *args: str, timeout_s: float = 300.0, extra_env: Mapping[str, str] | None = None) -> Any:
        """``ghexport ARGS`` (which must include ``--json``): its JSON document."""
        out = self.run([GHEXPORT, *args], timeout_s=timeout_s, extra_env=extra_env)
        lines = [ln for ln in out.splitlines() if ln.startswith("{")]
        if not lines:
            raise HarnessError(f"ghexport {args[0]} printed no JSON: {out[-500:]}")
        return json.loads(lines[-1])

    def connect(self, name: str, client_id: str, client_secret: str, user_email: str) -> dict[str, Any]:
        """``ghexport connect --name NAME --client-id ID --user-email EMAIL --json`` (secret via GHX_CLIENT_SECRET)."""
        doc = self.ghexport_json(
            "connect", "--name", name, "--client-id", client_id, "--user-email", user_email, "--json",
            extra_env={"GHX_CLIENT_SECRET": client_secret},
        )  # fmt: skip
        return cast(dict[str, Any], doc)

    def export(self, connection: str, profiles_file: Path, *, job_id: int) -> ExportStarted:
        """``ghexport export --connection C --file F --job J --json``: the batch, with the command's wall times."""
        started = time.time()
        doc = self.ghexport_json(
            "export", "--connection", connection, "--file", str(profiles_file), "--job", str(job_id), "--json"
        )
        returned = time.time()
        return ExportStarted(str(doc["batch_id"]), int(doc["enqueued"]), started, returned)

    def celery_control(self, *args: str, timeout_s: float = 60.0) -> str:
        """``celery -A workers.app control ARGS`` in this system's environment (the broker the workers use)."""
        return self.run([CELERY, "-A", "workers.app", "control", *args], timeout_s=timeout_s)


def write_profiles(path: Path, n: int, prefix: str) -> list[Profile]:
    """``n`` generated profiles (:func:`producer.demo.sample_profiles`), one JSON object a line, in ``path``."""
    profiles = sample_profiles(n, prefix=prefix)
    with open(path, "w", encoding="utf-8") as out:
        for p in profiles:
            out.write(json.dumps(p.snapshot(), ensure_ascii=False) + "\n")
    return profiles


# --- workers ------------------------------------------------------------------------------------------


def worker_has_option(option: str) -> bool:
    """Whether ``ghexport worker --help`` lists ``option`` (e.g. ``--pool``, once the command grows it)."""
    done = subprocess.run(
        [GHEXPORT, "worker", "--help"], capture_output=True, check=False, env={**clean_env({}), "COLUMNS": "200"}
    )
    return re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", done.stdout.decode(errors="replace")) is not None


@dataclass
class Workers:
    """Running ``ghexport worker`` processes and their logs."""

    processes: list[ManagedProcess]

    @property
    def logs(self) -> list[Path]:
        return [p.log for p in self.processes]

    def check_alive(self) -> None:
        """:class:`HarnessError` when a worker has exited."""
        for p in self.processes:
            if not p.alive():
                raise HarnessError(f"worker {p.pid} exited ({p.popen.returncode}):\n{tail(p.log)}")

    def item_lines(self, pattern: re.Pattern[bytes] = RETRY_LINE) -> Counter[int]:
        """Item id (the pattern's first group that matched) -> how many matching lines the workers logged; by
        default :data:`RETRY_LINE`, one per countdown retry."""
        counts: Counter[int] = Counter()
        for log in self.logs:
            for m in pattern.finditer(log.read_bytes()):
                counts[int(next(g for g in m.groups() if g is not None))] += 1
        return counts

    def line_count(self, pattern: re.Pattern[bytes]) -> int:
        """How many lines of all the workers' logs match ``pattern`` (e.g. :data:`RECEIVED_LINE`)."""
        return sum(len(pattern.findall(log.read_bytes())) for log in self.logs)

    def log_count(self, needle: bytes) -> list[int]:
        """Per worker: how many times ``needle`` occurs in its log."""
        return [log.read_bytes().count(needle) for log in self.logs]

    def stop(self, grace_s: float = 20.0) -> None:
        """SIGTERM to every worker at once, then wait for each (SIGKILL after ``grace_s``)."""
        for p in self.processes:
            p.terminate()
        deadline = time.monotonic() + grace_s
        for p in self.processes:
            p.finish(max(0.0, deadline - time.monotonic()))


def worker_command(concurrency: int, *, pool: str | None, loglevel: str, beat: bool, extra: Sequence[str]) -> list[str]:
    """``ghexport worker --concurrency C --loglevel L [--pool P] [--beat] [extra...]``."""
    cmd = [GHEXPORT, "worker", "--concurrency", str(concurrency), "--loglevel", loglevel]
    if pool is not None:
        cmd += ["--pool", pool]
    if beat:
        cmd.append("--beat")
    return cmd + list(extra)


@contextmanager
def running_workers(
    system: System,
    *,
    count: int = 2,
    concurrency: int = 8,
    pool: str | None = None,
    loglevel: str = "INFO",
    beat: bool = False,
    extra_args: Sequence[str] = (),
    hostname: str | None = None,
    ready_timeout_s: float = 120.0,
    stop_grace_s: float = 20.0,
) -> Iterator[Workers]:
    """``count`` ``ghexport worker`` processes (the first with ``--beat`` if asked), each logging to
    ``worker-<n>.log`` in the run directory; returns once every one logged that it is ready; stopped after.
    ``hostname``: a Celery node name pattern, ``{n}`` the worker's number (``w{n}@%h``: several on one host)."""
    if pool is not None and not worker_has_option("--pool"):
        raise HarnessError("ghexport worker has no --pool option (yet): run without --pool")
    workers = Workers([])
    try:
        for n in range(count):
            extra = [*extra_args, "--hostname", hostname.format(n=n + 1)] if hostname else list(extra_args)
            cmd = worker_command(concurrency, pool=pool, loglevel=loglevel, beat=beat and n == 0, extra=extra)
            log = system.run_dir / f"worker-{n + 1}.log"
            workers.processes.append(ManagedProcess(cmd, env=system.env, cwd=system.run_dir, log=log))
        deadline = time.monotonic() + ready_timeout_s
        while not all(READY_LINE in p.log.read_bytes() for p in workers.processes):
            workers.check_alive()
            if time.monotonic() > deadline:
                raise HarnessError(f"workers not ready in {ready_timeout_s:.0f} s:\n{tail(workers.logs[0])}")
            time.sleep(0.2)
        yield workers
    finally:
        workers.stop(stop_grace_s)


# --- measuring ----------------------------------------------------------------------------------------


def accepted_requests(stats: Stats) -> int:
    """Requests the sandbox's rate limiter let through: every ``/v3`` response other than 429 (refused, no
    budget used) and 401 (refused before the limiter). ``POST /token`` is not rate limited and not counted."""
    return sum(
        n
        for route, by_status in stats["requests"].items()
        if route != TOKEN_ROUTE
        for status, n in by_status.items()
        if status not in ("429", "401")
    )


def credential_stat(stats: Stats, client_id: str, member: str) -> float | None:
    """A member of the sandbox's per-credential figures (``credentials`` -> client id -> ``member``, e.g.
    ``last_accepted_at``), or ``None`` when this sandbox does not report it."""
    value = (stats.get("credentials") or {}).get(client_id, {}).get(member)
    return float(value) if isinstance(value, int | float) else None


def requests_delta(after: Stats, before: Stats) -> dict[str, dict[str, int]]:
    """Route -> status -> requests seen between two stats snapshots (routes with none left out)."""
    out: dict[str, dict[str, int]] = {}
    for route, by_status in after["requests"].items():
        old = before["requests"].get(route, {})
        diff = {s: n - old.get(s, 0) for s, n in by_status.items() if n - old.get(s, 0)}
        if diff:
            out[route] = diff
    return out


@dataclass(frozen=True)
class Sample:
    """One reading of the sandbox's counters, at wall time ``t`` (midpoint of the stats request)."""

    t: float
    accepted: int
    rate_limited: int


class StatsPoller:
    """Reads ``/_sandbox/stats`` every ``interval_s`` in a thread: when requests were accepted and 429s sent.

    A count change is placed at the midpoint between the two readings around it, so each time read from the
    samples is within ``interval_s / 2`` (plus the request's own duration) of the sandbox's own clock.
    """

    def __init__(self, sandbox: SandboxProcess, interval_s: float = 0.1) -> None:
        self.sandbox = sandbox
        self.interval_s = interval_s
        self.samples: list[Sample] = []
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="stats-poller", daemon=True)

    def _read(self) -> Sample:
        t0 = time.time()
        stats = self.sandbox.stats()
        return Sample((t0 + time.time()) / 2, accepted_requests(stats), int(stats["rate_limited"]))

    def _loop(self) -> None:
        try:
            while not self._stop.is_set():
                self.samples.append(self._read())
                self._stop.wait(self.interval_s)
        except BaseException as exc:  # reported by stop(); a dead sandbox must not kill the thread silently
            self.error = exc

    def __enter__(self) -> StatsPoller:
        self.samples.append(self._read())
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop polling, with one last reading (skipped if the sandbox no longer answers)."""
        if self._thread.is_alive():
            self._stop.set()
            self._thread.join(timeout=30)
            try:
                self.samples.append(self._read())
            except httpx.HTTPError as exc:
                self.error = self.error or exc

    @property
    def latest(self) -> Sample:
        """The latest reading."""
        return self.samples[-1]

    def first_change(self, attr: Callable[[Sample], int], baseline: int) -> float | None:
        """When the counter first rose above ``baseline`` (midpoint of the readings around the change)."""
        prev = self.samples[0]
        for s in self.samples:
            if attr(s) > baseline:
                return (prev.t + s.t) / 2 if attr(prev) <= baseline else s.t
            prev = s
        return None

    def reached(self, attr: Callable[[Sample], int], value: int) -> float | None:
        """When the counter first reached ``value`` (midpoint of the readings around that moment)."""
        prev = self.samples[0]
        for s in self.samples:
            if attr(s) >= value:
                return (prev.t + s.t) / 2 if attr(prev) < value else s.t
            prev = s
        return None

    def value_at(self, attr: Callable[[Sample], int], t: float) -> int:
        """The counter's value in the last reading taken at or before ``t``."""
        value = attr(self.samples[0])
        for s in self.samples:
            if s.t > t:
                break
            value = attr(s)
        return value


def iso_to_epoch(text: str) -> float:
    """A Harvest timestamp (``2026-01-05T09:00:00.000Z``) as seconds since the epoch."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def candidates_created_since(state: Mapping[str, Any], since: float) -> list[float]:
    """``created_at`` (epoch) of the candidate records in a ``/_sandbox/state`` document created at ``since`` or
    later (the seeded tenant's records are older)."""
    times = []
    for cand in state.get("candidates", []):
        created = cand.get("created_at") if isinstance(cand, dict) else None
        if isinstance(created, str) and (ts := iso_to_epoch(created)) >= since:
            times.append(ts)
    return times


@dataclass
class BatchEnd:
    """How a batch ended (or where it stood when the wait gave up)."""

    batch_id: str
    done: bool
    counts: dict[str, int]
    item_ids: list[int]
    detected_at: float
    """Wall time the poll saw the batch done (or gave up)."""
    last_update_at: float | None
    """Latest ``updated_at`` among the batch's items, as the workers stamped it: when the last item finished."""
    gave_up: str | None = None
    """Why the wait stopped before the batch ended (``timeout`` or ``stalled``); ``None`` when done."""

    @property
    def end(self) -> float:
        """The batch's end: its last item's finish when done, else when the wait gave up."""
        return self.last_update_at if (self.done and self.last_update_at is not None) else self.detected_at


def batch_progress(engine: Engine, batch_id: str) -> tuple[dict[str, int], list[int], float | None]:
    """Counts by status, item ids, and the latest item ``updated_at`` (epoch) of a batch, from the store."""
    with Session(engine) as s:
        rows = s.exec(
            select(Item.id, Item.status, Item.updated_at).where(Item.batch_id == batch_id).order_by(col(Item.id))
        ).all()
    counts: Counter[str] = Counter(str(status) for _, status, _ in rows)
    ids = [int(i) for i, _, _ in rows if i is not None]
    last = max((aware(u).timestamp() for _, _, u in rows), default=None)
    return dict(counts), ids, last


def finished(counts: Mapping[str, int]) -> int:
    """Items no worker will work on any more (neither ``queued`` nor ``sending``)."""
    active = {s.value for s in ACTIVE_STATUSES}
    return sum(n for s, n in counts.items() if s not in active)


def wait_for_batch(
    engine: Engine,
    batch_id: str,
    *,
    timeout_s: float,
    stall_s: float | None = None,
    activity: Callable[[], object] | None = None,
    poll_s: float = 0.5,
    check: Callable[[], None] | None = None,
    progress: Callable[[dict[str, int]], None] | None = None,
) -> BatchEnd:
    """Poll the store until no item is ``queued`` or ``sending`` (the ``done`` of ``ghexport status --json``).

    Gives up (``done`` False) after ``timeout_s``, or after ``stall_s`` with no change in the batch's items
    (statuses, ``updated_at``) nor in ``activity()`` (e.g. the sandbox's accepted requests). ``check`` runs each
    poll (e.g. workers still alive) and may raise.
    """
    start = time.monotonic()
    last_change, last_seen = start, None
    while True:
        counts, ids, last = batch_progress(engine, batch_id)
        now = time.monotonic()
        seen = (sorted(counts.items()), last, activity() if activity is not None else None)
        if seen != last_seen:
            last_change, last_seen = now, seen
        done = bool(ids) and finished(counts) == len(ids)
        gave_up = None
        if not done and now - start > timeout_s:
            gave_up = "timeout"
        elif not done and stall_s is not None and now - last_change > stall_s:
            gave_up = "stalled"
        if done or gave_up:
            return BatchEnd(batch_id, done, counts, ids, time.time(), last, gave_up)
        if progress is not None:
            progress(counts)
        if check is not None:
            check()
        time.sleep(poll_s)


# --- task deliveries per item -------------------------------------------------------------------------


@dataclass(frozen=True)
class Deliveries:
    """How often the items' task messages went through the broker, from the workers' logs.

    Every delivery of an item's task is one Celery ``received`` line (:data:`RECEIVED_LINE`) and ends with one
    outcome line of ours (:data:`OUTCOME_LINE`). The first delivery of an item is its enqueue (the pacer's first
    release). A second one is expected: the parts step, when the item's record was made but its credential had
    core records still parked, so the parts were parked and released later (one ``parked`` line). Any further
    delivery is a re-queue: a countdown retry (:data:`RETRY_LINE`), a park after a 429 or an unexpected throttle
    (a second ``parked`` line), a redelivery. ``parts_steps`` counts the items with at least one ``parked``
    line, so it is exact when nothing but the parts step parked an item (no 429, no throttle); otherwise an
    item parked once in its core step whose parts then ran at once is counted as a parts step.
    """

    items: int
    received: int
    """Celery ``received`` lines in the logs (every export task message taken; countdown retries included)."""
    outcome_lines: int
    """Outcome lines of these items: deliveries that ran to the end (``received`` minus those still running or
    lost when the workers stopped, or of other items)."""
    parked: int
    retries: int
    parts_steps: int
    further_max: int
    """Most further deliveries (beyond enqueue and parts step) of one item, from its outcome lines."""
    items_further: int
    """Items with at least one further delivery."""

    @property
    def requeues(self) -> int:
        """Deliveries beyond the first of each item: ``received - items`` (parts steps included)."""
        return self.received - self.items

    @property
    def further(self) -> int:
        """Deliveries beyond the enqueue and the parts step: ``received - items - parts_steps``."""
        return self.received - self.items - self.parts_steps

    def per_item(self, n: int) -> float:
        return n / self.items if self.items else 0.0


@dataclass(frozen=True)
class LogCounts:
    """The workers' log lines that :class:`Deliveries` is made of, read once: item id -> lines, and ``received``."""

    outcomes: Counter[int]
    parks: Counter[int]
    retries: Counter[int]
    received: int

    @classmethod
    def read(cls, workers: Workers) -> LogCounts:
        return cls(
            workers.item_lines(OUTCOME_LINE),
            workers.item_lines(PARK_LINE),
            workers.item_lines(RETRY_LINE),
            workers.line_count(RECEIVED_LINE),
        )

    def deliveries(self, item_ids: Iterable[int], *, received: int | None = None) -> Deliveries:
        """:class:`Deliveries` of ``item_ids``; ``received`` defaults to every ``received`` line of the logs (use
        the items' own outcome lines for a subset of the items: Celery's lines do not name the item)."""
        ids = set(item_ids)
        further_max, items_further, parts_steps = 0, 0, 0
        for i in ids:
            parts = 1 if self.parks.get(i, 0) else 0
            parts_steps += parts
            extra = max(0, self.outcomes.get(i, 0) - 1 - parts)
            further_max = max(further_max, extra)
            items_further += 1 if extra else 0
        outcome_lines = sum(self.outcomes.get(i, 0) for i in ids)
        return Deliveries(
            items=len(ids),
            received=self.received if received is None else received,
            outcome_lines=outcome_lines,
            parked=sum(self.parks.get(i, 0) for i in ids),
            retries=sum(self.retries.get(i, 0) for i in ids),
            parts_steps=parts_steps,
            further_max=further_max,
            items_further=items_further,
        )


def deliveries(workers: Workers, item_ids: Iterable[int]) -> Deliveries:
    """:class:`Deliveries` of ``item_ids`` from the logs of ``workers`` (read once the workers stopped, or live)."""
    return LogCounts.read(workers).deliveries(item_ids)


# --- CPU time and load (from /proc) -------------------------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def group_cpu_seconds(pgid: int) -> float | None:
    """User + system CPU seconds of every live process of process group ``pgid`` (a worker and its pool
    children), plus what their reaped children used (``cutime``/``cstime``); ``None`` without ``/proc``."""
    proc = Path("/proc")
    if not proc.is_dir():
        return None
    ticks = 0
    for entry in os.scandir(proc):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(entry.path, "stat").read_bytes()
        except OSError:
            continue  # exited meanwhile
        fields = raw[raw.rindex(b")") + 2 :].split()  # after "pid (comm) ": field 3 (state) is fields[0]
        if len(fields) < 15 or int(fields[2]) != pgid:  # field 5: pgrp
            continue
        ticks += sum(int(f) for f in fields[11:15])  # fields 14-17: utime, stime, cutime, cstime
    return ticks / CLOCK_TICKS


def _groups_cpu_seconds(pgids: Sequence[int]) -> float | None:
    values = [group_cpu_seconds(g) for g in pgids]
    return None if not values or any(v is None for v in values) else sum(v for v in values if v is not None)


def machine_cpu_seconds() -> tuple[float, float] | None:
    """``(busy, total)`` CPU seconds of the whole machine since boot, every core (``/proc/stat``: busy = all but
    idle and iowait); ``None`` without ``/proc``."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    values = [int(v) for v in first[1:9]]  # user nice system idle iowait irq softirq steal
    total = sum(values)
    return (total - values[3] - values[4]) / CLOCK_TICKS, total / CLOCK_TICKS


def uptime_line() -> str:
    """What ``uptime`` prints (the machine's load averages), else ``/proc/loadavg``."""
    with suppress(OSError, subprocess.SubprocessError):
        done = subprocess.run(["uptime"], capture_output=True, timeout=5, check=False)
        if done.returncode == 0:
            return done.stdout.decode(errors="replace").strip()
    with suppress(OSError):
        return "loadavg " + Path("/proc/loadavg").read_text().strip()
    return "(no uptime)"


# --- per-credential sampling --------------------------------------------------------------------------


@dataclass(frozen=True)
class CredentialSample:
    """One reading of the sandbox's per-credential counters, the watched groups' CPU and the machine's."""

    t: float
    """Wall time: midpoint of the stats request."""
    accepted: dict[str, int]
    rate_limited: dict[str, int]
    cpu: dict[str, float]
    """Watched name -> CPU seconds of its process group so far."""
    machine: tuple[float, float] | None
    load1: float
    stale: bool = False
    """The stats request failed: ``accepted`` and ``rate_limited`` are the previous reading's."""


class CredentialPoller:
    """Reads ``/_sandbox/stats`` (``credentials``) every ``interval_s`` in a thread, with the CPU seconds of the
    process groups given to :meth:`watch` and of the machine; :meth:`at` interpolates any of them in time.

    A stats request that fails (the sandbox overloaded: the request times out after ``timeout_s``) is counted in
    :attr:`failed_reads` and polling goes on; the CPU readings of that moment are kept with the sandbox's last
    known counters (``stale``), so a sandbox that stops answering is seen, and measured, not hidden."""

    def __init__(self, sandbox: SandboxProcess, interval_s: float = 0.25, timeout_s: float = 10.0) -> None:
        self.sandbox = sandbox
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.samples: list[CredentialSample] = []
        self.failed_reads = 0
        self.first_failure_at: float | None = None
        self.error: BaseException | None = None
        self._groups: dict[str, tuple[int, ...]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="credential-poller", daemon=True)

    def watch(self, name: str, *pgids: int) -> None:
        """Also sample the CPU seconds of process groups ``pgids`` (summed) under ``name`` from now on."""
        with self._lock:
            self._groups[name] = pgids

    def _read(self, *, tolerant: bool = False) -> CredentialSample:
        t0 = time.time()
        stale = False
        try:
            stats = cast(
                Stats,
                self.sandbox.http.get(f"{self.sandbox.harvest_url}/_sandbox/stats", timeout=self.timeout_s).json(),
            )
        except (httpx.HTTPError, ValueError):
            if not tolerant or not self.samples:
                raise
            self.failed_reads += 1
            self.first_failure_at = self.first_failure_at or t0
            stale = True
        t1 = time.time()
        with self._lock:
            groups = dict(self._groups)
        cpu = {name: c for name, pgids in groups.items() if (c := _groups_cpu_seconds(pgids)) is not None}
        if stale:
            last = self.samples[-1]
            accepted, rate_limited = last.accepted, last.rate_limited
        else:
            creds: dict[str, Any] = stats.get("credentials") or {}
            accepted = {cid: int(c.get("accepted", 0)) for cid, c in creds.items()}
            rate_limited = {cid: int(c.get("rate_limited", 0)) for cid, c in creds.items()}
        return CredentialSample(
            t=(t0 + t1) / 2 if not stale else t1,
            accepted=accepted,
            rate_limited=rate_limited,
            cpu=cpu,
            machine=machine_cpu_seconds(),
            load1=os.getloadavg()[0],
            stale=stale,
        )

    def _loop(self) -> None:
        try:
            while not self._stop.wait(self.interval_s):
                self.samples.append(self._read(tolerant=True))
        except BaseException as exc:  # reported by the caller; a dead sandbox must not kill the thread silently
            self.error = exc

    def __enter__(self) -> CredentialPoller:
        self.samples.append(self._read())
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop polling, with one last reading (skipped if the sandbox no longer answers)."""
        if self._thread.is_alive():
            self._stop.set()
            self._thread.join(timeout=30)
            self.samples.append(self._read(tolerant=True))

    @property
    def latest(self) -> CredentialSample:
        return self.samples[-1]

    def at(self, value: Callable[[CredentialSample], float | None], t: float) -> float | None:
        """``value`` at wall time ``t``, linear between the readings around it (the first / last reading outside
        them); ``None`` when a reading needed lacks it."""
        samples = self.samples
        if not samples:
            return None
        if t <= samples[0].t:
            return value(samples[0])
        for prev, cur in itertools.pairwise(samples):
            if cur.t >= t:
                a, b = value(prev), value(cur)
                if a is None or b is None:
                    return b if a is None else a
                span = cur.t - prev.t
                return a + (b - a) * ((t - prev.t) / span if span > 0 else 1.0)
        return value(samples[-1])

    def first_rise(self, value: Callable[[CredentialSample], int], after: float) -> float | None:
        """When ``value`` first rose above its value at wall time ``after`` (midpoint of the readings around it)."""
        base = self.at(value, after)
        prev: CredentialSample | None = None
        for s in self.samples:
            if s.t >= after and base is not None and value(s) > base:
                return (prev.t + s.t) / 2 if prev is not None and prev.t >= after else s.t
            prev = s
        return None

    def settled_at(self, value: Callable[[CredentialSample], int]) -> float | None:
        """When ``value`` first reached its last reading's value (midpoint of the readings around that moment):
        e.g. a credential's last accepted request, when the sandbox cannot say it exactly."""
        if not self.samples:
            return None
        final = value(self.samples[-1])
        prev: CredentialSample | None = None
        for s in self.samples:
            if not s.stale and value(s) >= final:
                return (prev.t + s.t) / 2 if prev is not None and value(prev) < final else s.t
            prev = s
        return None

    def window(self, seconds: float) -> tuple[CredentialSample, CredentialSample] | None:
        """The readings ``seconds`` ago (about) and now: for rates over the last ``seconds``."""
        if len(self.samples) < 2:
            return None
        now = self.samples[-1]
        for s in reversed(self.samples):
            if now.t - s.t >= seconds:
                return s, now
        return self.samples[0], now
