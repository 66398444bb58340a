"""``ghexport export``, ``status``, ``retry`` and ``recover``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table

from producer import api
from producer.cli_base import CliError, console, err_console, handle_errors, print_json, resources
from shared.errors import CONNECTION_REMOVED_CAUSE
from shared.profiles.model import read_profiles_file, select
from shared.resources import Resources
from shared.store.models import ACTIVE_STATUSES, ItemStatus

POLL_S = 0.5
"""How often a live view reads the store again."""

INTERRUPTED_EXIT = 130
"""Exit status when the operator stops a live view with Ctrl-C (the batch goes on)."""

STATUS_STYLES: dict[str, str] = {
    ItemStatus.QUEUED: "dim",
    ItemStatus.SENDING: "cyan",
    ItemStatus.EXPORTED: "blue",
    ItemStatus.SYNCED: "green",
    ItemStatus.SYNC_OVERDUE: "yellow",
    ItemStatus.SKIPPED: "magenta",
    ItemStatus.FAILED: "red",
}
"""Every item status, in the order the live view shows them, with its colour."""


def _sleep(seconds: float) -> None:
    """Pause between two reads of a live view (a seam: tests move the store on here instead)."""
    time.sleep(seconds)


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
    wait: Annotated[bool, typer.Option(help="Show a live progress view until the batch ends.")] = False,
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
    doc = watch_batch(result.batch_id, quiet=json_out) if wait else None
    if json_out:
        out = result.as_json()
        if doc is not None:  # --wait: how the batch ended
            out.update(counts=doc["counts"], sync=doc["sync"], done=doc["done"])
        print_json(out)


class BatchView:
    """The live view of a batch: a progress bar over finished items and the count of every status."""

    def __init__(self, batch_id: str) -> None:
        self.batch_id = batch_id
        self.started = time.monotonic()
        self.doc: dict[str, Any] = {"total": 0, "counts": {}}

    def __rich__(self) -> RenderableType:
        counts: dict[str, int] = self.doc["counts"]
        total = int(self.doc["total"])
        finished = sum(n for s, n in counts.items() if s not in ACTIVE_STATUSES)
        elapsed = int(time.monotonic() - self.started)
        head = Table.grid(padding=(0, 1))
        head.add_column(no_wrap=True)
        head.add_row(
            f"[bold]batch {self.batch_id}",
            ProgressBar(total=max(total, 1), completed=finished, width=24),
            f"{finished}/{total}",
            f"{elapsed // 60}:{elapsed % 60:02d}",
        )
        table = Table(*(f"[{style}]{status}" for status, style in STATUS_STYLES.items()), box=None)
        table.add_row(*(str(counts.get(status, 0)) for status in STATUS_STYLES))
        return Group(head, table)


def wait_for_batch(batch_id: str, *, quiet: bool = False, timeout_s: float | None = None) -> dict[str, Any]:
    """Read the store until the batch ends (no item ``queued`` or ``sending``) and return its final status
    document; meanwhile a live view of its counts by status on stderr, unless ``quiet``."""
    res = resources()
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    view = BatchView(batch_id)
    view.doc = api.batch_progress(res, batch_id)
    if quiet:
        _poll(res, view, deadline)
    else:
        with Live(view, console=err_console, refresh_per_second=4, transient=False):
            _poll(res, view, deadline)
        if not err_console.is_terminal:  # Live ends its last frame without a newline off a terminal
            err_console.line()
    return api.batch_status(res, batch_id)


def _poll(res: Resources, view: BatchView, deadline: float | None) -> None:
    """Read the batch's counts (not its items) every :data:`POLL_S` until it ends, or raise at ``deadline``."""
    while not view.doc["done"]:
        if deadline is not None and time.monotonic() > deadline:
            detail = ", ".join(f"{s} {n}" for s, n in sorted(view.doc["counts"].items()))
            raise CliError(f"batch {view.batch_id} did not finish in {time.monotonic() - view.started:.0f}s ({detail})")
        _sleep(POLL_S)
        view.doc = api.batch_progress(res, view.batch_id)


def watch_batch(batch_id: str, *, quiet: bool) -> dict[str, Any]:
    """:func:`wait_for_batch` for a command: Ctrl-C stops watching (the live view is closed first) with one
    line saying the batch goes on, and exit status 130."""
    try:
        return wait_for_batch(batch_id, quiet=quiet)
    except KeyboardInterrupt:
        err_console.print(
            f"ghexport: stopped watching batch {batch_id}; it goes on (see: ghexport status {batch_id})",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(INTERRUPTED_EXIT) from None


@handle_errors
def status(
    batch_id: Annotated[str | None, typer.Argument(help="Batch to show (or --connection with --profile).")] = None,
    connection: Annotated[str | None, typer.Option(help="With --profile: the connection exported through.")] = None,
    profile: Annotated[str | None, typer.Option(help="Every export of this profile id through --connection.")] = None,
    watch: Annotated[bool, typer.Option(help="A live progress view until the batch ends.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Show a batch (counts by status, sync, every item), or every export of one profile."""
    by_profile = connection is not None or profile is not None
    if (batch_id is not None) == by_profile:
        raise CliError("give a BATCH_ID, or --connection NAME with --profile ID")
    if by_profile:
        if connection is None or profile is None:
            raise CliError("--connection and --profile go together")
        if watch:
            raise CliError("--watch follows a batch: give a BATCH_ID")
        pdoc = api.profile_status(resources(), connection, profile)
        if json_out:
            print_json(pdoc)
        else:
            _print_profile(pdoc)
        return
    assert batch_id is not None
    doc = watch_batch(batch_id, quiet=json_out) if watch else api.batch_status(resources(), batch_id)
    if json_out:
        print_json(doc)
        return
    sync = doc["sync"]
    console.print(
        f"batch {doc['batch_id']}: {doc['total']} items; "
        + ", ".join(f"{s} {n}" for s, n in sorted(doc["counts"].items()))
        + f"; sync: {sync['pending']} pending, {sync['synced']} synced, {sync['overdue']} overdue"
    )
    report = doc["left_out"]
    if report["items"]:
        reasons = ", ".join(f"{reason} {n}" for reason, n in report["by_reason"].items())
        console.print(f"left out ({report['items']} items): {reasons}", markup=False, highlight=False)
    table = Table("profile", "status", "greenhouse candidate", "application", "synced at", "error / sync / warnings")
    for it in doc["items"]:
        note = it["error"] or it["sync_detail"] or "; ".join(it["warnings"])
        table.add_row(
            str(it["candidate_id"]),
            it["status"],
            str(it["greenhouse_candidate_id"] or ""),
            str(it["greenhouse_application_id"] or ""),
            _when(it["synced_at"]),
            note or "",
        )
    console.print(table)


def _when(iso: str | None) -> str:
    """A stored ISO timestamp, shortened for a table cell (UTC, to the second)."""
    return iso[:19].replace("T", " ") if iso else ""


def _target_text(target: dict[str, Any]) -> str:
    if target["kind"] == "job":
        return f"job {target['job_id']}"
    where = [f"{k} {target[f'{k}_id']}" for k in ("pool", "stage") if target[f"{k}_id"] is not None]
    return " ".join(["prospect", *where])


def _print_profile(doc: dict[str, Any]) -> None:
    """The per-profile status document as a summary line and a table, newest export first."""
    if doc["exported"]:
        head = f"exported to Greenhouse as candidate {doc['greenhouse_candidate_id']}"
        if doc["sync_state"]:
            head += f" (sync {doc['sync_state']})"
    elif doc.get("record_deleted"):
        head = "not exported to Greenhouse any more (its record was deleted or merged away there)"
    else:
        head = "not exported to Greenhouse"
    if doc["in_progress"]:
        head += "; an export is in progress"
    console.print(f"profile {doc['profile_id']} through {doc['connection']}: {head}", markup=False)
    if not doc["exports"]:
        return
    table = Table("batch", "created", "by", "target", "candidate / application", "status", "synced / due", "error")
    for e in doc["exports"]:
        sync = _when(e["synced_at"]) or (f"due {_when(e['sync_deadline_at'])}" if e["sync_deadline_at"] else "")
        if e["sync_detail"]:
            sync = f"{sync} {e['sync_detail']}".strip()
        if e.get("record_deleted_at"):
            sync = f"record deleted {_when(e['record_deleted_at'])}"
        error = f"{e['error_cause']}: {e['error']}" if e["error_cause"] and e["error"] else e["error"] or ""
        table.add_row(
            e["batch_id"],
            _when(e["created_at"]),
            e["user_email"],
            _target_text(e["target"]),
            " / ".join(str(e[k]) for k in ("greenhouse_candidate_id", "greenhouse_application_id") if e[k]),
            e["status"],
            sync,
            error,
        )
    console.print(table)


@handle_errors
def retry(
    batch_id: Annotated[str | None, typer.Argument(help="Batch whose failed items to retry.")] = None,
    all_failed: Annotated[bool, typer.Option("--all-failed", help="Retry failed items of every batch.")] = False,
    cause: Annotated[
        str | None, typer.Option(help="Only items failed with this cause (of BATCH_ID, else of every batch).")
    ] = None,
    force: Annotated[bool, typer.Option(help="Also items failed for a permanent cause (invalid...).")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Re-enqueue failed items: of one batch, of every batch (--all-failed), or with one cause (--cause)."""
    if batch_id is not None and all_failed:
        raise CliError("give a BATCH_ID or --all-failed, not both")
    if batch_id is None and not all_failed and cause is None:
        raise CliError("give a BATCH_ID, --all-failed or --cause CAUSE")
    result = api.retry_failed(resources(), batch_id, cause=cause, force=force)
    if json_out:
        print_json(result.as_json())
        return
    console.print(f"{result.enqueued} failed items re-enqueued")
    for left_cause, n in sorted(result.left.items()):
        if left_cause == CONNECTION_REMOVED_CAUSE:
            why = "connection_removed (their connection is gone; never retried)"
        else:
            why = f"permanent cause {left_cause} (use --force)"
        console.print(f"{n} not retried: {why}", markup=False, highlight=False, soft_wrap=True)


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
