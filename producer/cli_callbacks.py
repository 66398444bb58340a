"""``ghexport callbacks list`` and ``ghexport callbacks redeliver``: the callback outbox for operators.

The workers deliver every event on their own (:mod:`workers.callbacks`); these commands show what waits,
what was delivered and what is dead (every attempt of ``GHX_CALLBACKS__SCHEDULE_S`` failed), and put events
back for delivery: the dead ones once a receiver is fixed, or any event a tenant asks for again. A
redelivered event keeps its id (the ``webhook-id`` its receiver deduplicates by).
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from producer.cli_base import CliError, console, handle_errors, print_json, resources
from shared.store import outbox
from shared.store.models import OutboxState

callbacks_app = typer.Typer(
    name="callbacks", help="Callbacks to the platform: list events, redeliver them.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    """Add ``ghexport callbacks ...`` to the ``ghexport`` app."""
    callbacks_app.command("list")(list_cmd)
    callbacks_app.command("redeliver")(redeliver_cmd)
    app.add_typer(callbacks_app, name="callbacks")


def _state(value: str | None) -> OutboxState | None:
    if value is None:
        return None
    try:
        return OutboxState(value)
    except ValueError:
        raise CliError(f"--state must be one of {', '.join(s.value for s in OutboxState)}, not {value}") from None


@handle_errors
def list_cmd(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's events.")] = None,
    state: Annotated[str | None, typer.Option(help="Only events in this state: pending, delivered or dead.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="Newest events shown at most.")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """List callback events, newest first."""
    events = outbox.list_events(resources().engine, tenant_id=tenant, state=_state(state), limit=limit)
    if as_json:
        print_json({"events": [e.as_json() for e in events]})
        return
    table = Table("id", "tenant", "type", "state", "attempts", "created", "next attempt / delivered", "last error")
    for e in events:
        when = e.delivered_at if e.state is OutboxState.DELIVERED else e.next_attempt_at
        table.add_row(
            e.id,
            e.tenant_id,
            e.type,
            e.state.value,
            str(e.attempts),
            str(e.created_at)[:19],
            "" if e.state is OutboxState.DEAD or when is None else str(when)[:19],
            e.last_error or "",
        )
    console.print(table)


@handle_errors
def redeliver_cmd(
    event_id: Annotated[list[str] | None, typer.Option("--id", help="An event to deliver again (repeatable).")] = None,
    dead: Annotated[bool, typer.Option("--dead", help="Every dead event (of --tenant, when given).")] = False,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's events.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Deliver events again (same ids, a new retry schedule): given by --id, or every dead one with --dead."""
    if bool(event_id) == dead:
        raise CliError("choose the events: --id ID (repeatable) or --dead")
    engine = resources().engine
    if event_id:
        known = {e.id for e in outbox.get_events(engine, event_id, tenant_id=tenant)}
        unknown = sorted(set(event_id) - known)
        if unknown:
            whose = f" of tenant {tenant}" if tenant else ""
            raise CliError(f"no callback event{'s' if len(unknown) > 1 else ''}{whose}: {', '.join(unknown)}")
    ids = outbox.redeliver(engine, event_ids=event_id, dead=dead, tenant_id=tenant)
    if as_json:
        print_json({"redelivered": ids})
        return
    console.print(f"{len(ids)} callback event{'' if len(ids) == 1 else 's'} will be delivered again")
