"""``ghexport export``, ``status``, ``retry`` and ``recover``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from producer import api
from producer.cli_base import CliError, console, err_console, handle_errors, print_json, resources
from shared.profiles.model import read_profiles_file, select
from shared.store.models import ACTIVE_STATUSES

POLL_S = 0.5


def register(app: typer.Typer) -> None:
    """Add the export commands to the ``ghexport`` app."""
    app.command("export")(export)
    app.command("status")(status)
    app.command("retry")(retry)
    app.command("recover")(recover)


@handle_errors
def export(
    connection: Annotated[str, typer.Option(help="Connection name (see: ghexport connections).")],
    file: Annotated[Path, typer.Option(help="Profiles, one JSON object a line.", exists=True, dir_okay=False)],
    job: Annotated[int | None, typer.Option(help="Export as candidates on this open job.")] = None,
    prospect: Annotated[bool, typer.Option(help="Export as prospects.")] = False,
    pool: Annotated[int | None, typer.Option(help="Prospect pool id.")] = None,
    stage: Annotated[int | None, typer.Option(help="Prospect pool stage id (needs --pool).")] = None,
    ids: Annotated[str | None, typer.Option(help="Only these profile ids, comma separated.")] = None,
    user_email: Annotated[str | None, typer.Option(help="Act as the Greenhouse user with exactly this email.")] = None,
    include_exported: Annotated[
        bool, typer.Option(help="Also profiles exported before (adds to their record).")
    ] = False,
    new_record: Annotated[bool, typer.Option(help="With --include-exported: create a second record instead.")] = False,
    dummy_emails: Annotated[bool, typer.Option(help="Dummy address for profiles without email.")] = False,
    wait: Annotated[bool, typer.Option(help="Show a progress bar until the batch ends.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Record an export batch and enqueue one task per candidate."""
    if (job is None) == (not prospect):
        raise CliError("choose exactly one target: --job JOB_ID or --prospect")
    if job is not None and (pool is not None or stage is not None):
        raise CliError("--pool and --stage apply to --prospect exports only")
    target = api.ExportTarget.job(job) if job is not None else api.ExportTarget.prospect(pool, stage)
    read = read_profiles_file(file)
    profiles = read.profiles
    if ids:
        profiles, missing = select(profiles, [i for i in ids.split(",") if i.strip()])
        if missing:
            raise CliError(f"profile ids not in {file}: {', '.join(missing[:10])}")
    res = resources()
    result = api.export_profiles(
        res,
        connection_name=connection,
        profiles=profiles,
        target=target,
        rejected=read.errors,
        user_email=user_email,
        include_exported=include_exported,
        new_record=new_record,
        dummy_emails=dummy_emails,
    )
    if not json_out:
        for err in read.errors:
            err_console.print(f"rejected: {err}", markup=False, highlight=False, soft_wrap=True)
        console.print(
            f"batch {result.batch_id}: {result.enqueued} enqueued, {result.skipped} skipped "
            f"(already exported), {len(read.errors)} rejected lines"
        )
    if wait:
        wait_for_batch(result.batch_id, quiet=json_out)
    if json_out:
        print_json(result.as_json())


def wait_for_batch(batch_id: str, *, quiet: bool = False, timeout_s: float | None = None) -> dict[str, object]:
    """Poll the store until no item is ``queued`` or ``sending``; a progress bar unless ``quiet``."""
    res = resources()
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    with Progress(
        TextColumn("[bold]exporting"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=err_console,
        disable=quiet,
        transient=False,
    ) as progress:
        task = progress.add_task("export", total=None, detail="")
        while True:
            doc = api.batch_status(res, batch_id)
            counts: dict[str, int] = doc["counts"]
            finished = sum(n for s, n in counts.items() if s not in ACTIVE_STATUSES)
            detail = ", ".join(f"{s} {n}" for s, n in sorted(counts.items()))
            progress.update(task, total=doc["total"], completed=finished, detail=detail)
            if doc["done"]:
                return doc
            if deadline is not None and time.monotonic() > deadline:
                raise CliError(f"batch {batch_id} did not finish in {timeout_s:.0f}s ({detail})")
            time.sleep(POLL_S)


@handle_errors
def status(
    batch_id: str,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Show a batch: counts by status and every item."""
    doc = api.batch_status(resources(), batch_id)
    if json_out:
        print_json(doc)
        return
    console.print(
        f"batch {doc['batch_id']}: {doc['total']} items; "
        + ", ".join(f"{s} {n}" for s, n in sorted(doc["counts"].items()))
    )
    table = Table("profile", "status", "greenhouse candidate", "application", "error / warnings")
    for it in doc["items"]:
        note = it["error"] or "; ".join(it["warnings"])
        table.add_row(
            str(it["candidate_id"]),
            it["status"],
            str(it["greenhouse_candidate_id"] or ""),
            str(it["greenhouse_application_id"] or ""),
            note or "",
        )
    console.print(table)


@handle_errors
def retry(
    batch_id: Annotated[str | None, typer.Argument(help="Batch whose failed items to retry.")] = None,
    all_failed: Annotated[bool, typer.Option("--all-failed", help="Retry failed items of every batch.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Re-enqueue failed items (of one batch, or all with --all-failed)."""
    if (batch_id is None) == (not all_failed):
        raise CliError("give a BATCH_ID or --all-failed")
    n = api.retry_failed(resources(), batch_id)
    if json_out:
        print_json({"batch_id": batch_id, "enqueued": n})
    else:
        console.print(f"{n} failed items re-enqueued")


@handle_errors
def recover(
    older_than: Annotated[
        float | None, typer.Option(help="Grace for overdue and unpublished items, seconds (default: the setting).")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Publish again the items the broker lost, now (every worker also does it on its own): all queued items
    after the broker's Redis lost its data, items of dead workers, never published, or overdue with nothing
    queued."""
    n = api.republish_lost(resources(), older_than)
    if json_out:
        print_json({"enqueued": n})
    else:
        console.print(f"{n} items re-enqueued")
