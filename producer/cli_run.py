"""``ghexport sandbox``, ``worker`` and ``demo``: commands that run the system's processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Annotated, Any, TypedDict

import typer
from rich.table import Table

from producer import cli_base
from producer.cli_base import CliError, console, handle_errors, print_json
from producer.demo import WORKER_POOLS

if TYPE_CHECKING:
    from shared.harvest.sandbox.stats import StatsSnapshot


class DemoSummary(TypedDict):
    """What ``ghexport demo`` reports (``--json`` prints it as is)."""

    batches: dict[str, str]
    """Target kind (``prospect``, ``job``) -> batch id."""
    counts: dict[str, int]
    exported: int
    linked_to_existing: int
    items_with_warnings: int
    top_warning: str | None
    resumes: int
    """Items whose application got its resume PDF."""
    left_out: dict[str, int]
    """The field report summed over the batches: reason -> items (``ghexport status`` shows it per batch)."""
    greenhouse_records: int
    harvest_requests: int
    harvest_429s: int
    seconds: float


def register(app: typer.Typer) -> None:
    """Add the run commands to the ``ghexport`` app."""
    app.command("sandbox")(sandbox)
    app.command("worker")(worker)
    app.command("demo")(demo)


@handle_errors
def sandbox(
    host: Annotated[str, typer.Option(help="Address to bind (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0: any free port).")] = 8765,
    rate_limit: Annotated[int, typer.Option(help="Requests per window per credential.")] = 50,
    window: Annotated[float, typer.Option(help="Rate-limit window, seconds.")] = 30.0,
    latency_ms: Annotated[float, typer.Option(help="Latency added to every request.")] = 0.0,
    fault_rate: Annotated[float, typer.Option(help="Probability of a fault on a write.")] = 0.0,
    read_fault_rate: Annotated[
        float,
        typer.Option(
            min=0.0, max=1.0, help="Probability of a transient fault (500, 503, drop, slow) on a read or /token."
        ),
    ] = 0.0,
    visibility_delay: Annotated[float, typer.Option(help="Seconds before a new candidate is readable.")] = 0.0,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON line once ready.")] = False,
) -> None:
    """Run the local Harvest v3 sandbox until interrupted; prints its seeded credential."""
    from shared.harvest.sandbox import Sandbox, SandboxConfig, SandboxServer, seed

    config = SandboxConfig(
        rate_limit=rate_limit,
        window_s=window,
        latency_ms=latency_ms,
        fault_rate=fault_rate,
        read_fault_rate=read_fault_rate,
        visibility_delay_s=visibility_delay,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with SandboxServer(Sandbox(config), host=host, port=port) as server:
        info = {
            "harvest_url": server.harvest_url,
            "token_url": server.token_url,
            "client_id": seed.CLIENT_ID,
            "client_secret": seed.CLIENT_SECRET,
            "user_email": seed.ADMIN_EMAIL,
            "authorize_url": server.authorize_url,
            "introspect_url": server.introspect_url,
            "partner_client_id": seed.PARTNER_CLIENT_ID,
            "partner_client_secret": seed.PARTNER_CLIENT_SECRET,
            "partner_redirect_uri": seed.PARTNER_REDIRECT_URI,
        }
        if json_out:
            print_json(info)
        else:
            console.print("Harvest v3 sandbox running. Point the exporter at it with:")
            console.print(f"  GHX_HARVEST_URL={info['harvest_url']}\n  GHX_HARVEST_TOKEN_URL={info['token_url']}")
            console.print(f"client id: {seed.CLIENT_ID}\nclient secret: {seed.CLIENT_SECRET}")
            console.print(f"site admin: {seed.ADMIN_EMAIL}   recruiter: {seed.RECRUITER_EMAIL}")
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass


def _check_pool(pool: str) -> None:
    if pool not in WORKER_POOLS:
        raise CliError(f"unknown pool {pool!r}: choose one of {', '.join(WORKER_POOLS)}")


@handle_errors
def worker(
    concurrency: Annotated[int, typer.Option(help="Tasks at once: processes (prefork) or threads.")] = 4,
    pool: Annotated[
        str, typer.Option(help=f"Celery pool: {', '.join(WORKER_POOLS)} (threads suit I/O-bound exports).")
    ] = "prefork",
    queues: Annotated[str | None, typer.Option(help="Queues to consume, comma separated.")] = None,
    hostname: Annotated[
        str | None, typer.Option(help="Celery node name (several workers on one host), e.g. w1@%h.")
    ] = None,
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO",
    beat: Annotated[
        bool,
        typer.Option(
            help="Also run Celery beat for periodic tasks of your own (recovery needs no flag: every worker does it)."
        ),
    ] = False,
) -> None:
    """Run a Celery worker for this app in the foreground; started again if it dies on its own.

    With ``GHX_METRICS_PORT`` set, its main process serves Prometheus ``/metrics`` for every process of the
    worker: this command gives the Celery child a fresh ``PROMETHEUS_MULTIPROC_DIR`` (unless one is set
    already), removed when the worker ends."""
    from producer.demo import worker_command
    from shared import metrics
    from shared.monitoring import ensure_port_free

    res = cli_base.resources()
    os.environ["GHX_BROKER_URL"] = res.broker_url  # resolve `embedded` once, for every child
    _check_pool(pool)
    metrics_port = res.settings.metrics_port
    if metrics_port is not None:
        ensure_port_free(res.settings.metrics_host, metrics_port)  # a taken port: one line now, not a log line
    cmd = worker_command(concurrency, loglevel, pool=pool)
    if queues:
        cmd[cmd.index("-Q") + 1] = queues
    if hostname:
        cmd += ["--hostname", hostname]
    if beat:
        schedule = os.path.join(res.settings.embedded_dir, "celerybeat-schedule")
        os.makedirs(res.settings.embedded_dir, exist_ok=True)
        cmd += ["--beat", "--schedule", schedule]
    with metrics.multiprocess_env(enabled=metrics_port is not None):  # before the child imports anything
        code = supervise(cmd)
    raise typer.Exit(code if code >= 0 else 128 - code)  # killed by signal N: 128 + N, as a shell says


RESTARTS_PER_MINUTE = 5
"""A worker that dies more often than this gives up: something needs a human (configuration, code)."""


def supervise(cmd: Sequence[str], *, pause_s: float = 2.0) -> int:
    """Run ``cmd`` (the Celery worker) and start it again when it dies on its own; returns its exit code.

    Celery gives up on some broker failures by itself: kombu's Redis transport raises while restoring
    unacknowledged messages when Redis restarts ("Unrecoverable error"), and the worker exits. Self-healing
    must not depend on a process manager the operator may not have, so the worker is started again (its
    items come back through leases and recovery). SIGTERM and SIGQUIT are passed on and end the loop;
    SIGINT (Ctrl-C) reaches the worker from the terminal itself and only ends the loop. The worker stays in
    this process group: losing the host (or ``kill`` of the group) takes both down.
    """
    stopping = threading.Event()
    child: subprocess.Popen[bytes] | None = None

    def stop(signum: int, _frame: object) -> None:
        stopping.set()
        if signum != signal.SIGINT and child is not None and child.poll() is None:
            child.send_signal(signum)

    for sig in (signal.SIGTERM, signal.SIGQUIT, signal.SIGINT):
        signal.signal(sig, stop)
    recent: deque[float] = deque()
    while True:
        child = subprocess.Popen(list(cmd))
        code = child.wait()
        if stopping.is_set() or code == 0:
            return code
        now = time.monotonic()
        recent.append(now)
        while recent and now - recent[0] > 60:
            recent.popleft()
        if len(recent) > RESTARTS_PER_MINUTE:
            cli_base.err_console.print(f"ghexport: the worker died {len(recent)} times in a minute; giving up")
            return code
        cli_base.err_console.print(f"ghexport: the worker exited with {code}; starting it again in {pause_s:g} s")
        if stopping.wait(pause_s):
            return code


@handle_errors
def demo(
    candidates: Annotated[int, typer.Option(help="Profiles in the sample project.")] = 40,
    concurrency: Annotated[int, typer.Option(help="Tasks at once: processes (prefork) or threads.")] = 4,
    pool: Annotated[
        str, typer.Option(help=f"Celery pool: {', '.join(WORKER_POOLS)} (threads suit I/O-bound exports).")
    ] = "prefork",
    timeout: Annotated[float, typer.Option(help="Give up after this many seconds.")] = 600.0,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """The whole system on the embedded default: sandbox, embedded broker, a worker, a sample project."""
    from producer import api
    from producer.cli_export import wait_for_batch
    from producer.demo import connect_demo, demo_environment, sample_profiles
    from shared.harvest.sandbox import seed

    if candidates < 2:
        raise CliError("--candidates must be at least 2 (half prospects, half job candidates)")
    started = time.monotonic()
    _check_pool(pool)
    with demo_environment(concurrency=concurrency, pool=pool) as env:
        cli_base.use_resources(env.resources)
        connect_demo(env)
        profiles = sample_profiles(candidates, existing_email=seed.EXISTING_EMAIL)
        half = candidates // 2
        batches = [
            api.export_profiles(
                env.resources,
                connection_name="demo",
                profiles=profiles[:half],
                target=api.ExportTarget.prospect(seed.POOL_ID, seed.STAGE_ID),
            ),
            api.export_profiles(
                env.resources,
                connection_name="demo",
                profiles=profiles[half:],
                target=api.ExportTarget.job(seed.OPEN_JOB_ID),
            ),
        ]
        docs = []
        labels = (f"prospects into pool {seed.POOL_ID}, stage {seed.STAGE_ID}", f"candidates on job {seed.OPEN_JOB_ID}")
        for b, label in zip(batches, labels, strict=True):
            if not json_out:
                console.print(f"[bold]{b.enqueued} {label}[/] (batch {b.batch_id})")
            remaining = max(1.0, timeout - (time.monotonic() - started))
            docs.append(wait_for_batch(b.batch_id, quiet=json_out, timeout_s=remaining))
        stats = env.sandbox.stats()
        records = len(env.sandbox.state_snapshot()["candidates"])
        cli_base.use_resources(None)
        summary = _summary(docs, stats, records, time.monotonic() - started)
        if summary["exported"] != candidates:
            tail = env.worker_log.read_text(errors="replace").splitlines()[-20:]
            sys.stderr.write("worker log (last lines):\n" + "\n".join(tail) + "\n")
    if json_out:
        print_json(summary)
    else:
        _print_summary(summary)
    if summary["exported"] != candidates:
        raise CliError(f"only {summary['exported']} of {candidates} candidates were exported")


def _summary(docs: Sequence[Mapping[str, Any]], stats: StatsSnapshot, records: int, elapsed: float) -> DemoSummary:
    # A batch document is producer.api's JSON status (nested dicts and lists): read by key, hence Any.
    counts: Counter[str] = Counter()
    warnings: Counter[str] = Counter()
    left_out: Counter[str] = Counter()
    linked = with_warnings = resumes = 0
    for doc in docs:
        counts.update(doc["counts"])
        left_out.update(doc["left_out"]["by_reason"])
        for it in doc["items"]:
            linked += bool(it["linked_existing"])
            with_warnings += bool(it["warnings"])
            resumes += it["sent"]["resume"] is not None
            warnings.update(it["warnings"])
    return {
        "batches": {d["target"]["kind"]: d["batch_id"] for d in docs},
        "counts": dict(counts),
        "exported": counts["exported"] + counts["synced"],
        "linked_to_existing": linked,
        "items_with_warnings": with_warnings,
        "top_warning": warnings.most_common(1)[0][0] if warnings else None,
        "resumes": resumes,
        "left_out": dict(left_out.most_common()),
        "greenhouse_records": records,
        "harvest_requests": stats["total_requests"],
        "harvest_429s": stats["rate_limited"],
        "seconds": round(elapsed, 1),
    }


def _print_summary(summary: DemoSummary) -> None:
    table = Table(title="Export to Greenhouse (local sandbox)", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for kind, batch_id in summary["batches"].items():
        table.add_row(f"batch ({kind})", batch_id)
    table.add_row("items", ", ".join(f"{s} {n}" for s, n in sorted(summary["counts"].items())))
    table.add_row(
        "Greenhouse records",
        f"{summary['greenhouse_records']} (one per candidate; "
        f"{summary['linked_to_existing']} was already in Greenhouse and got an application)",
    )
    warned = summary["items_with_warnings"]
    table.add_row("warnings", f"{warned} items" + (f", e.g. {summary['top_warning']!r}" if warned else ""))
    table.add_row("resumes", f"{summary['resumes']} PDFs on their applications")
    if summary["left_out"]:
        table.add_row("left out", ", ".join(f"{reason} {n}" for reason, n in summary["left_out"].items()))
    table.add_row("Harvest requests", f"{summary['harvest_requests']} ({summary['harvest_429s']} rate-limited)")
    table.add_row("time", f"{summary['seconds']} s")
    console.print(table)
    sys.stdout.flush()
