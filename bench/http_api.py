"""HTTP API benchmark: one large export over HTTP beside the CLI, then many small exports from concurrent clients.

Everything runs as an operator runs it, side by side in one run on this machine: ``ghexport api`` (uvicorn) as
a process, ``ghexport export`` as a process each time, the real PostgreSQL (a schema of the bench's own in
``--database``, dropped after), the real Redis (``--redis-url``, a database the bench owns: flushed before and
after) and ``ghexport sandbox`` over HTTP. No worker runs: what is measured is the enqueue, until the API
answers with the batch id or the CLI exits, both having recorded every item and parked it in its credential's
queue (checked at the end: every item of every batch is stamped ``enqueued_at``).

1. **Large**: ``--profiles`` (10,000) generated profiles in ONE ``POST /v1/exports`` (``application/x-ndjson``,
   the file streamed in 64 KiB chunks, with an ``Idempotency-Key``) vs the same kind of file through
   ``ghexport export --connection bench:main --file F --job J --json``; ``--rounds`` rounds (5), the two taking
   turns (which goes first alternates), each on profiles of its own (new ids: nothing is skipped), after one
   warm-up of each that is not counted; each round also times ``ghexport export`` of one profile (the CLI's
   fixed cost: interpreter, imports, store and Harvest checks). Medians and the ratio API / CLI; goal: <= 1.5x
   and <= 3 s. Beside each: the CPU seconds of the process that recorded the batch (the API's process group,
   ``/proc``; the CLI's, ``getrusage``) and the machine's busy cores meanwhile: on a small machine the client,
   PostgreSQL, Redis and the sandbox share the cores, and other people's work shows there.
2. **Concurrent**: first one client alone (:data:`ALONE` requests: the service time unloaded), then
   ``--clients`` (50) clients at once (asyncio, one ``httpx.AsyncClient`` with a connection each), each sending
   ``--client-rounds`` (20) requests one after another, every request a new export of ``--client-profiles``
   (5) profiles (``application/json``, inline, with an ``Idempotency-Key``): requests/s over the whole wave,
   latency p50 / p95 / p99 / max, the API's CPU per request, and any answer other than 201.

``--profile`` then samples the API process with py-spy (``--py-spy PATH``, else on ``PATH``; it is not a
dependency of the project) during one more large export and a short wave, and prints where the busy time goes:
by thread (event loop, worker threads), by package running, and by this project's functions on the stack.

    .venv/bin/python -m bench.http_api [--profiles 10000] [--rounds 5] [--clients 50] [--client-rounds 20]
                                       [--redis-url redis://127.0.0.1:6379/2] [--profile [--py-spy PATH]]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import httpx
import sqlalchemy as sa
from sqlmodel import col

from bench import harness as h
from producer.demo import sample_profiles
from shared.connections.crypto import generate_key
from shared.harvest.sandbox import seed
from shared.store.models import Item

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/2"
DEFAULT_DATABASE = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
TENANT = "bench"
CONNECTION = "main"
CHUNK = 64 * 1024
GOAL_RATIO = 1.5
GOAL_S = 3.0
ALONE = 100
"""Small exports sent by one client alone, one after another, before the wave: the service time unloaded."""


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Config:
    """The command line (see the module's doc)."""

    profiles: int
    rounds: int
    clients: int
    client_rounds: int
    client_profiles: int
    redis_url: str
    database: str
    profile: bool
    py_spy: str | None
    log_dir: Path


@dataclass
class Timing:
    """One export: wall seconds, CPU seconds of the process that recorded it (the API's process group, or the
    ``ghexport export`` child), and the whole machine's busy cores meanwhile (``/proc/stat``)."""

    seconds: float
    cpu_s: float | None = None
    busy_cores: float | None = None


@dataclass
class Wave:
    """The concurrent clients' run."""

    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    cpu_s: float | None = None
    busy_cores: float | None = None
    client_cpu_s: float | None = None
    """This process's CPU meanwhile: the clients' (asyncio, httpx) share of the machine."""


@dataclass
class Large:
    """The large exports of each side, and the CLI's fixed cost: ``ghexport export`` of one profile."""

    api: list[Timing] = field(default_factory=list)
    cli: list[Timing] = field(default_factory=list)
    cli_one: list[Timing] = field(default_factory=list)


class Meter:
    """Wall time, a CPU counter and the machine's busy CPU between :meth:`start` and :meth:`stop`."""

    def __init__(self, cpu: Callable[[], float | None]) -> None:
        self.cpu = cpu
        self.machine0: tuple[float, float] | None = None
        self.cpu0: float | None = None
        self.t0 = 0.0

    def start(self) -> None:
        self.machine0 = h.machine_cpu_seconds()
        self.cpu0 = self.cpu()
        self.t0 = time.perf_counter()

    def stop(self) -> Timing:
        seconds = time.perf_counter() - self.t0
        cpu1, machine1 = self.cpu(), h.machine_cpu_seconds()
        busy = None
        if self.machine0 is not None and machine1 is not None and seconds > 0:
            busy = (machine1[0] - self.machine0[0]) / seconds
        cpu = None if self.cpu0 is None or cpu1 is None else cpu1 - self.cpu0
        return Timing(seconds, cpu, busy)


def own_cpu() -> float:
    """CPU seconds of this process (every thread)."""
    return time.process_time()


def children_cpu() -> float:
    """CPU seconds of this process's waited-for children (``ghexport export`` once it exited)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# --- services -----------------------------------------------------------------------------------------


@contextmanager
def schema_of_its_own(database: str) -> Iterator[str]:
    """A new schema in ``database`` (``CREATE SCHEMA``), yielding a URL whose ``search_path`` is that schema;
    dropped (``CASCADE``) after, on error too."""
    name = f"bench_http_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(database)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{name}"'))
        try:
            yield f"{database}{'&' if '?' in database else '?'}options=-csearch_path%3D{name}"
        finally:
            with engine.begin() as conn:
                conn.execute(sa.text(f'DROP SCHEMA "{name}" CASCADE'))
    finally:
        engine.dispose()


@dataclass
class Api:
    """A running ``ghexport api`` and the URL it printed."""

    process: h.ManagedProcess
    url: str


@contextmanager
def api_process(system: h.System, *, name: str = "api", extra_env: dict[str, str] | None = None) -> Iterator[Api]:
    """``ghexport api --port 0 --json`` in the system's environment (plus ``extra_env``); returns once
    ``/v1/ready`` answers 200; stopped after."""
    cmd = [h.GHEXPORT, "api", "--port", "0", "--json"]
    env = {**system.env, **(extra_env or {})}
    proc = h.ManagedProcess(cmd, env=env, cwd=system.run_dir, log=system.run_dir / f"{name}.log")
    try:
        url = _api_url(proc)
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/v1/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or not proc.alive():
                raise h.HarnessError(f"the API is not ready:\n{h.tail(proc.log)}")
            time.sleep(0.1)
        yield Api(proc, url)
    finally:
        proc.stop(grace_s=30)


def _api_url(proc: h.ManagedProcess, timeout_s: float = 30.0) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for line in proc.log.read_text(errors="replace").splitlines():
            if line.startswith('{"url"'):
                return str(json.loads(line)["url"])
        if not proc.alive():
            break
        time.sleep(0.05)
    raise h.HarnessError(f"ghexport api printed no URL:\n{h.tail(proc.log)}")


def tenant_key(system: h.System) -> str:
    """``ghexport tenants create bench`` and ``ghexport api-keys create --tenant bench --json``: the key."""
    system.ghexport_json("tenants", "create", TENANT, "--json")
    return str(system.ghexport_json("api-keys", "create", "--tenant", TENANT, "--json")["key"])


def connect(api: Api, key: str, sandbox: h.SandboxProcess) -> None:
    """``POST /v1/connections``: the sandbox's credential as the tenant's connection ``main``."""
    body = {
        "name": CONNECTION,
        "client_id": sandbox.client_id,
        "client_secret": sandbox.client_secret,
        "user_email": sandbox.user_email,
    }
    r = httpx.post(f"{api.url}/v1/connections", json=body, headers=_auth(key), timeout=120)
    if r.status_code != 201:
        raise h.HarnessError(f"POST /v1/connections: {r.status_code} {r.text}")


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# --- 1. one large export, API beside CLI --------------------------------------------------------------


def _chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            yield chunk


def api_export(api: Api, key: str, path: Path, profiles: int) -> Timing:
    """One ``POST /v1/exports`` of ``path``, streamed (chunked), until the answer; the API's CPU meanwhile."""
    params: dict[str, str | int] = {"connection": CONNECTION, "kind": "job", "job_id": seed.OPEN_JOB_ID}
    headers = {**_auth(key), "Content-Type": "application/x-ndjson", "Idempotency-Key": uuid.uuid4().hex}
    meter = Meter(lambda: h.group_cpu_seconds(api.process.pgid))
    meter.start()
    r = httpx.post(f"{api.url}/v1/exports", params=params, content=_chunks(path), headers=headers, timeout=300)
    timing = meter.stop()
    if r.status_code != 201 or r.json()["enqueued"] != profiles:
        raise h.HarnessError(f"POST /v1/exports: {r.status_code} {r.text[:500]}")
    return timing


def cli_export(system: h.System, path: Path, profiles: int) -> Timing:
    """``ghexport export --connection bench:main --file F --job J --json``, until it exits; its CPU."""
    meter = Meter(children_cpu)
    meter.start()
    started = system.export(f"{TENANT}:{CONNECTION}", path, job_id=seed.OPEN_JOB_ID)
    timing = meter.stop()
    if started.enqueued != profiles:
        raise h.HarnessError(f"ghexport export enqueued {started.enqueued} of {profiles}")
    return timing


def large(cfg: Config, system: h.System, api: Api, key: str) -> Large:
    """A warm-up of each side, then ``cfg.rounds`` rounds taking turns, each with a one-profile CLI export too;
    every export on profile ids of its own (nothing skipped as exported before)."""
    files = iter(range(1_000_000))
    out = Large()

    def run(side: str, n: int) -> Timing:
        path = cfg.log_dir / f"{side}-{next(files)}.jsonl"
        h.write_profiles(path, n, prefix=path.stem)
        try:
            return api_export(api, key, path, n) if side == "api" else cli_export(system, path, n)
        finally:
            path.unlink()

    log(f"large: warm-up ({cfg.profiles} profiles, API then CLI)")
    run("api", cfg.profiles)
    run("cli", cfg.profiles)
    for n in range(cfg.rounds):
        for side in ("api", "cli") if n % 2 == 0 else ("cli", "api"):
            (out.api if side == "api" else out.cli).append(run(side, cfg.profiles))
        out.cli_one.append(run("cli", 1))
        log(f"large: round {n + 1}/{cfg.rounds}: api {out.api[-1].seconds:.2f} s, cli {out.cli[-1].seconds:.2f} s "
            f"(one profile: {out.cli_one[-1].seconds:.2f} s)")  # fmt: skip
    return out


# --- 2. many small exports at once --------------------------------------------------------------------


def small_bodies(cfg: Config, prefix: str) -> list[list[bytes]]:
    """Per client, its requests' JSON bodies (built before the clock starts: the client's cost stays out), on
    profile ids of their own (``prefix``)."""
    profiles = sample_profiles(cfg.clients * cfg.client_rounds * cfg.client_profiles, prefix=prefix)
    snapshots = iter(p.snapshot() for p in profiles)
    out = []
    for _ in range(cfg.clients):
        bodies = []
        for _ in range(cfg.client_rounds):
            doc = {
                "connection": CONNECTION,
                "target": {"kind": "job", "job_id": seed.OPEN_JOB_ID},
                "profiles": [next(snapshots) for _ in range(cfg.client_profiles)],
            }
            bodies.append(json.dumps(doc).encode())
        out.append(bodies)
    return out


async def _client(http: httpx.AsyncClient, key: str, bodies: list[bytes], wave: Wave) -> None:
    for body in bodies:
        headers = {**_auth(key), "Content-Type": "application/json", "Idempotency-Key": uuid.uuid4().hex}
        t0 = time.perf_counter()
        try:
            r = await http.post("/v1/exports", content=body, headers=headers)
            wave.statuses[str(r.status_code)] += 1
        except httpx.HTTPError as exc:
            wave.statuses[type(exc).__name__] += 1
        wave.latencies.append(time.perf_counter() - t0)


async def _wave(cfg: Config, api: Api, key: str, bodies: list[list[bytes]]) -> Wave:
    wave = Wave()
    limits = httpx.Limits(max_connections=cfg.clients, max_keepalive_connections=cfg.clients)
    async with httpx.AsyncClient(base_url=api.url, limits=limits, timeout=120) as http:
        await _client(http, key, bodies[0][:1], Wave())  # one warm-up request, not counted (nor its profiles)
        meter, own = Meter(lambda: h.group_cpu_seconds(api.process.pgid)), Meter(own_cpu)
        own.start()
        meter.start()
        await asyncio.gather(*(_client(http, key, b if i else b[1:], wave) for i, b in enumerate(bodies)))
        timing, mine = meter.stop(), own.stop()
    wave.seconds, wave.cpu_s, wave.busy_cores, wave.client_cpu_s = (
        timing.seconds,
        timing.cpu_s,
        timing.busy_cores,
        mine.cpu_s,
    )
    return wave


def concurrent(cfg: Config, api: Api, key: str, prefix: str) -> Wave:
    """``cfg.clients`` clients at once, each sending ``cfg.client_rounds`` small exports one after another."""
    bodies = small_bodies(cfg, prefix)
    log(f"concurrent: {cfg.clients} clients x {cfg.client_rounds} exports of {cfg.client_profiles} profiles")
    return asyncio.run(_wave(cfg, api, key, bodies))


# --- profiling ----------------------------------------------------------------------------------------


def py_spy(given: str | None) -> str | None:
    """The py-spy executable: ``--py-spy`` when given, else on ``PATH`` or beside this Python."""
    for candidate in (given, shutil.which("py-spy"), str(h.BIN / "py-spy")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


@contextmanager
def sampled(spy: str, pid: int, out: Path) -> Iterator[None]:
    """``py-spy record`` of process ``pid`` (every thread, 200 samples/s, collapsed stacks in ``out``) while
    the block runs."""
    cmd = [spy, "record", "--pid", str(pid), "--rate", "200", "--threads", "--format", "raw", "--output", str(out)]
    with open(out.with_suffix(".log"), "wb") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
    try:
        time.sleep(1.0)  # py-spy attaches
        if proc.poll() is not None:
            raise h.HarnessError(f"py-spy exited: {h.tail(out.with_suffix('.log'))}")
        yield
    finally:
        proc.send_signal(signal.SIGINT)  # it writes its file and exits
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


IDLE = re.compile(r"^(select|poll|epoll_wait|wait|_worker|acquire|sleep|get|_wait_for_tstate_lock|run_forever)\b")
"""Leaf frames of a thread that waits for work (the event loop's select, an idle worker thread): left out.
A thread waiting for PostgreSQL's answer (psycopg's ``Connection.wait``) is counted: the request waits."""
FRAME = re.compile(r"^(?P<func>.+) \((?P<file>[^:()]+)(?::\d+)?\)$")


PLUMBING = re.compile(
    r"^(main|handle_errors\.<locals>\.wrapper|api_cmd|AccessLog\.__call__|BodyLimit\.__call__|.*<lambda>) "
)
"""Frames on every stack of the process (the CLI entry, the middleware): no news in a profile."""


def _package(file: str) -> str:
    """Who a leaf frame's time belongs to: this project, or a library by its top-level package."""
    if file.startswith(("producer/", "shared/")):
        return "project"
    return file.split("/", 1)[0].removesuffix(".py")


def hot_spots(path: Path, *, top: int = 18) -> str:
    """py-spy's collapsed stacks as a table: the busy samples by thread kind and by the package running (the
    leaf frame's), then this project's ``top`` functions by the share of busy samples they are on the stack of."""
    inclusive: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    busy = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        leaf = FRAME.match(frames[-1])
        if leaf is None or (IDLE.match(leaf["func"].rsplit(".", 1)[-1]) and "psycopg" not in leaf["file"]):
            continue
        busy += n
        threads["event loop" if "MainThread" in frames[0] else "worker threads"] += n
        packages[_package(leaf["file"])] += n
        seen = set()
        for frame in frames[1:]:
            m = FRAME.match(frame)
            if m is None or not m["file"].startswith(("producer/", "shared/")) or PLUMBING.match(frame):
                continue
            name = f"{m['func']} ({m['file']})"
            if name not in seen:
                seen.add(name)
                inclusive[name] += n
    if not busy:
        return "  (no busy sample)"
    share = ", ".join(f"{k} {v / busy:.0%}" for k, v in threads.most_common())
    rows = [f"  busy samples {busy}: {share}"]
    rows.append("  running: " + ", ".join(f"{k} {v / busy:.0%}" for k, v in packages.most_common(8)))
    rows += [f"  {v / busy:6.1%}  {name}" for name, v in inclusive.most_common(top)]
    return "\n".join(rows)


def profiled(cfg: Config, spy: str, api: Api, key: str) -> str:
    """One more large export and a short wave of small ones, each sampled by py-spy: where the time goes."""
    parts = []
    path = cfg.log_dir / "profiled.jsonl"
    h.write_profiles(path, cfg.profiles, prefix="profiled")
    out = cfg.log_dir / "profile-large.txt"
    with sampled(spy, api.process.pid, out):
        t = api_export(api, key, path, cfg.profiles)
    path.unlink()
    parts.append(f"profile: one export of {cfg.profiles} profiles ({t.seconds:.2f} s, sampled), busy time by "
                 f"function on the stack\n{hot_spots(out)}")  # fmt: skip
    small = Config(**{**asdict(cfg), "client_rounds": max(1, min(cfg.client_rounds, 5))})
    out = cfg.log_dir / "profile-small.txt"
    with sampled(spy, api.process.pid, out):
        wave = concurrent(small, api, key, "profiled")
    parts.append(f"profile: {len(wave.latencies)} small exports from {cfg.clients} clients ({wave.seconds:.1f} s, "
                 f"sampled)\n{hot_spots(out)}")  # fmt: skip
    return "\n".join(parts)


# --- checks and report --------------------------------------------------------------------------------


def unenqueued(database_url: str) -> tuple[int, int]:
    """(items in the store, items without ``enqueued_at``): every item must have been parked."""
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            total = conn.scalar(sa.select(sa.func.count()).select_from(Item)) or 0
            missing = conn.scalar(sa.select(sa.func.count()).where(col(Item.enqueued_at).is_(None))) or 0
    finally:
        engine.dispose()
    return int(total), int(missing)


def _pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _median(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def _row(label: str, runs: Sequence[Timing]) -> str:
    secs = [t.seconds for t in runs]
    cpu, busy = _median([t.cpu_s for t in runs]), _median([t.busy_cores for t in runs])
    return (
        f"   {label:<44} {statistics.median(secs):6.2f} s  ({min(secs):.2f}-{max(secs):.2f})"
        + (f"  CPU {cpu:5.2f} s" if cpu is not None else "")
        + (f"  machine {busy:.1f} cores busy" if busy is not None else "")
    )


def _wave_row(clients: int, wave: Wave) -> str:
    n = len(wave.latencies)
    ms = [x * 1000 for x in wave.latencies]
    other = dict(wave.statuses - Counter({"201": wave.statuses.get("201", 0)}))
    cpu = f"{wave.cpu_s / n * 1000:14.1f}" if wave.cpu_s is not None else f"{'-':>14}"
    busy = (
        f"{wave.busy_cores:.1f} ({wave.client_cpu_s / wave.seconds:.1f})"
        if wave.busy_cores is not None and wave.client_cpu_s is not None
        else "-"
    )
    return (
        f"   {clients:7d}  {n:8d}  {n / wave.seconds:5.1f}  {_pct(ms, 0.5):5.0f}  {_pct(ms, 0.95):5.0f}  "
        f"{_pct(ms, 0.99):5.0f}  {max(ms):6.0f}     {cpu}  {busy:>20}  {sum(other.values()) or 0}"
        + (f" {other}" if other else "")
    )


def report(cfg: Config, big: Large, alone: Wave | None, wave: Wave | None, items: tuple[int, int]) -> str:
    """The table: large exports side by side with the goal's verdict, the concurrent wave, the store's check."""
    rows = [f"machine: {os.cpu_count()} cores; {h.uptime_line()}"]
    if big.api and big.cli:
        a = statistics.median(t.seconds for t in big.api)
        c = statistics.median(t.seconds for t in big.cli)
        ratio = a / c
        verdict = "met" if ratio <= GOAL_RATIO and a <= GOAL_S else "NOT met"
        rows += [
            f"1. one export of {cfg.profiles} profiles, {len(big.api)} round(s) each, taking turns: median (min-max)",
            _row("POST /v1/exports (NDJSON, streamed)", big.api),
            _row("ghexport export (a process)", big.cli),
            _row("ghexport export, 1 profile (its fixed cost)", big.cli_one),
            f"   API / CLI: {ratio:.2f}x; goal <= {GOAL_RATIO}x the CLI and <= {GOAL_S:.0f} s: {verdict}",
        ]
    waves = [(c, w) for c, w in ((1, alone), (cfg.clients, wave)) if w is not None and w.latencies]
    if waves:
        rows += [
            f"2. small exports of {cfg.client_profiles} profiles (JSON, Idempotency-Key), each client sending its "
            "next one when answered",
            "   clients  requests  req/s    p50    p95    p99    max ms  API CPU ms/req  busy cores (clients)  not 201",
        ]
        rows += [_wave_row(clients, w) for clients, w in waves]
    total, missing = items
    rows.append(f"store: {total} items recorded, {missing} without enqueued_at (must be 0)")
    return "\n".join(rows)


def parse_args(argv: Sequence[str] | None) -> Config:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profiles", type=int, default=10_000, help="profiles of the large export")
    p.add_argument("--rounds", type=int, default=5, help="large exports per side (after one warm-up each)")
    p.add_argument("--clients", type=int, default=50, help="concurrent clients")
    p.add_argument("--client-rounds", type=int, default=20, help="exports per client, one after another")
    p.add_argument("--client-profiles", type=int, default=5, help="profiles per small export")
    p.add_argument("--redis-url", default=DEFAULT_REDIS_URL, help="Redis database the bench owns (flushed)")
    p.add_argument("--database", default=DEFAULT_DATABASE, help="PostgreSQL database (a schema of its own in it)")
    p.add_argument("--profile", action="store_true", help="also sample the API with py-spy (see above)")
    p.add_argument("--py-spy", default=None, help="the py-spy executable (default: on PATH, or beside Python)")
    p.add_argument("--log-dir", type=Path, default=None, help="where the processes' logs go (default: a temp dir)")
    a = p.parse_args(argv)
    if min(a.profiles, a.rounds, a.clients, a.client_rounds, a.client_profiles) < 1:
        p.error("every count must be at least 1")
    log_dir = a.log_dir or Path(tempfile.mkdtemp(prefix="ghx-http-bench-"))
    return Config(
        profiles=a.profiles,
        rounds=a.rounds,
        clients=a.clients,
        client_rounds=a.client_rounds,
        client_profiles=a.client_profiles,
        redis_url=a.redis_url,
        database=a.database,
        profile=a.profile,
        py_spy=a.py_spy,
        log_dir=log_dir.resolve(),
    )


def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_args(argv)
    cfg.log_dir.mkdir(parents=True, exist_ok=True)
    log(f"logs in {cfg.log_dir}")
    started = time.monotonic()
    big = Large()
    wave: Wave | None = None
    alone: Wave | None = None
    items = (0, -1)
    profile_text = ""
    h.flush_redis(cfg.redis_url)
    try:
        with ExitStack() as stack:
            db_url = stack.enter_context(schema_of_its_own(cfg.database))
            sandbox = stack.enter_context(h.sandbox_process(cfg.log_dir, rate_limit=100_000, window_s=10))
            system = h.System(cfg.log_dir, cfg.redis_url, db_url, sandbox, generate_key())
            key = tenant_key(system)
            api = stack.enter_context(api_process(system))
            connect(api, key, sandbox)
            big = large(cfg, system, api, key)
            alone = concurrent(replace(cfg, clients=1, client_rounds=ALONE), api, key, "alone")
            wave = concurrent(cfg, api, key, "wave")
            items = unenqueued(db_url)
            if cfg.profile:
                spy = py_spy(cfg.py_spy)
                profile_text = profiled(cfg, spy, api, key) if spy else "profile: py-spy not found (--py-spy PATH)"
    except KeyboardInterrupt:
        log("interrupted: every process started was stopped; partial results follow")
    finally:
        h.flush_redis(cfg.redis_url)
    print(report(cfg, big, alone, wave, items))
    if profile_text:
        print(profile_text)
    print(f"(logs: {cfg.log_dir}; {time.monotonic() - started:.0f} s in all)")
    return 0 if items[1] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
