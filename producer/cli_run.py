"""``ghexport sandbox``, ``worker`` and ``demo``: commands that run the system's processes."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from typing import Annotated

import typer
from rich.table import Table

from producer import cli
from producer.cli import CliError, console, handle_errors, print_json


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
    visibility_delay: Annotated[float, typer.Option(help="Seconds before a new candidate is readable.")] = 0.0,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON line once ready.")] = False,
) -> None:
    """Run the local Harvest v3 sandbox until interrupted; prints its seeded credential."""
    from shared.sandbox import Sandbox, SandboxConfig, SandboxServer, seed

    config = SandboxConfig(
        rate_limit=rate_limit,
        window_s=window,
        latency_ms=latency_ms,
        fault_rate=fault_rate,
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


@handle_errors
def worker(
    concurrency: Annotated[int, typer.Option(help="Worker processes.")] = 4,
    queues: Annotated[str | None, typer.Option(help="Queues to consume, comma separated.")] = None,
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO",
) -> None:
    """Run a Celery worker for this app in the foreground."""
    from producer.demo import worker_command

    res = cli.resources()
    os.environ["GHX_BROKER_URL"] = res.broker_url  # resolve `embedded` once, for every child
    cmd = worker_command(concurrency, loglevel)
    if queues:
        cmd[cmd.index("-Q") + 1] = queues
    os.execvp(cmd[0], cmd)


@handle_errors
def demo(
    candidates: Annotated[int, typer.Option(help="Profiles in the sample project.")] = 40,
    concurrency: Annotated[int, typer.Option(help="Worker processes.")] = 4,
    timeout: Annotated[float, typer.Option(help="Give up after this many seconds.")] = 600.0,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """The whole system on the embedded default: sandbox, embedded broker, a worker, a sample project."""
    from producer import api
    from producer.cli_export import wait_for_batch
    from producer.demo import connect_demo, demo_environment, sample_profiles
    from shared.sandbox import seed

    if candidates < 2:
        raise CliError("--candidates must be at least 2 (half prospects, half job candidates)")
    started = time.monotonic()
    with demo_environment(concurrency=concurrency) as env:
        cli._resources = env.resources
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
        for b, label in zip(batches, ("prospects", "job candidates"), strict=True):
            if not json_out:
                console.print(f"[bold]{label}[/]: batch {b.batch_id}, {b.enqueued} enqueued")
            remaining = max(1.0, timeout - (time.monotonic() - started))
            docs.append(wait_for_batch(b.batch_id, quiet=json_out, timeout_s=remaining))
        stats = env.sandbox.stats()  # type: ignore[attr-defined]
        records = len(env.sandbox.state_snapshot()["candidates"])  # type: ignore[attr-defined]
        cli._resources = None
    summary = _summary(docs, stats, records, time.monotonic() - started)
    if json_out:
        print_json(summary)
    else:
        _print_summary(summary)
    if summary["exported"] != candidates:
        raise CliError(f"only {summary['exported']} of {candidates} candidates were exported")


def _summary(
    docs: list[dict[str, object]], stats: dict[str, object], records: int, elapsed: float
) -> dict[str, object]:
    counts: dict[str, int] = {}
    linked = warnings = 0
    for doc in docs:
        for s, n in doc["counts"].items():  # type: ignore[attr-defined]
            counts[s] = counts.get(s, 0) + n
        for it in doc["items"]:  # type: ignore[attr-defined]
            linked += bool(it["linked_existing"])
            warnings += len(it["warnings"])
    return {
        "batches": [d["batch_id"] for d in docs],
        "counts": counts,
        "exported": counts.get("exported", 0) + counts.get("synced", 0),
        "linked_to_existing": linked,
        "items_with_warnings": warnings,
        "greenhouse_records": records,
        "harvest_requests": stats.get("total_requests"),
        "harvest_429s": stats.get("rate_limited", stats.get("429s")),
        "seconds": round(elapsed, 1),
    }


def _print_summary(summary: dict[str, object]) -> None:
    table = Table("", "", title="Export to Greenhouse (sandbox)")
    for key, value in summary.items():
        if key == "counts":
            value = ", ".join(f"{s} {n}" for s, n in sorted(value.items()))  # type: ignore[attr-defined]
        table.add_row(key.replace("_", " "), str(value))
    console.print(table)
    sys.stdout.flush()
