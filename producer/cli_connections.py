"""``ghexport connect | connections | disconnect | jobs | pools | keygen | migrate`` (operator contract).

Thin typer commands over :mod:`shared.connections.service`; failures print one line on stderr and exit 1
(:func:`producer.cli_base.handle_errors`). The client secret may come from ``GHX_CLIENT_SECRET`` instead of the
command line; it is never printed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

import typer
from pydantic import SecretStr
from rich.table import Table

from producer.cli_base import CliError, console, handle_errors, print_json, resources

if TYPE_CHECKING:
    from shared.connections.lookups import Lookups
    from shared.harvest.client import HarvestClient


def _lookups_for(name: str) -> tuple[HarvestClient, Lookups]:
    from shared.connections.service import get_connection

    res = resources()
    conn = get_connection(res.engine, name)
    reader = res.harvest_for(conn)
    return reader, res.lookups_for(conn, reader)


@handle_errors
def connect_cmd(
    name: Annotated[str, typer.Option("--name", help="Name of this connection in ghexport.")],
    client_id: Annotated[str, typer.Option("--client-id", help="Harvest v3 (OAuth) client id.")],
    client_secret: Annotated[
        str,
        typer.Option(
            "--client-secret",
            envvar="GHX_CLIENT_SECRET",
            help="Harvest v3 (OAuth) client secret (or env GHX_CLIENT_SECRET).",
            show_default=False,
        ),
    ],
    user_email: Annotated[
        str, typer.Option("--user-email", help="Your Greenhouse user's email, exactly (case sensitive).")
    ],
    source_name: Annotated[
        str | None, typer.Option("--source-name", help="Source with the Prospecting strategy.")
    ] = None,
    prospects_only: Annotated[
        bool, typer.Option("--prospects-only", help="Export prospects only (no job applications).")
    ] = False,
    enable_pools: Annotated[bool, typer.Option("--enable-pools", help="Allow prospect pools.")] = False,
    on_duplicate: Annotated[
        str,
        typer.Option(
            "--on-duplicate",
            help="A profile whose email is already in Greenhouse: link (add the application to that person), "
            "create (a new record anyway) or skip (report it).",
        ),
    ] = "link",
    verify_prospect: Annotated[
        bool, typer.Option("--verify-prospect", help="Export a test prospect and read it back.")
    ] = False,
    verify_job: Annotated[
        int | None, typer.Option("--verify-job", help="Export a test candidate to this open job.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Check a Greenhouse credential, its scopes, your user and the source; then store the connection."""
    from shared.connections.service import connect, connection_summary

    if verify_prospect and verify_job is not None:
        raise CliError("use either --verify-prospect or --verify-job, not both")
    verify: Literal["prospect"] | int | None = "prospect" if verify_prospect else verify_job
    res = resources()
    result = connect(
        res.settings,
        res.engine,
        name=name,
        client_id=client_id,
        client_secret=SecretStr(client_secret),
        user_email=user_email,
        source_name=source_name,
        prospects_only=prospects_only,
        enable_pools=enable_pools,
        duplicate_policy=on_duplicate,
        verify=verify,
        **res.harvest_options(),
    )
    if as_json:
        print_json(
            {
                "connection": connection_summary(result.connection),
                "created": result.created,
                "verified_candidate_id": result.verified_candidate_id,
                "messages": result.messages,
            }
        )
        return
    for message in result.messages:
        console.print(message, markup=False, highlight=False)


@handle_errors
def connections_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """List connections (never their secrets)."""
    from shared.connections.service import connection_summary, list_connections

    rows = [connection_summary(c) for c in list_connections(resources().engine)]
    if as_json:
        print_json({"connections": rows})
        return
    table = Table("name", "client id", "user", "user id", "source", "capabilities", "created", "updated")
    for r in rows:
        caps = "prospects only" if r["prospects_only"] else "jobs + prospects"
        if r["pools_enabled"]:
            caps += ", pools"
        table.add_row(
            r["name"],
            r["client_id"],
            r["user_email"],
            str(r["user_id"]),
            f"{r['source_name']} ({r['source_id']})",
            caps,
            str(r["created_at"])[:19],
            str(r["updated_at"])[:19],
        )
    console.print(table)


@handle_errors
def disconnect_cmd(
    name: Annotated[str, typer.Argument(help="The connection to remove.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Remove a connection: wipe its secret; its queued and sending items fail with "connection removed"."""
    from shared.connections.service import disconnect

    failed = disconnect(resources().engine, name)
    if as_json:
        print_json({"name": name, "removed": True, "items_failed": failed})
        return
    console.print(f"removed connection {name}; {failed} unfinished items failed", markup=False)


@handle_errors
def jobs_cmd(
    connection: Annotated[str, typer.Option("--connection", help="Connection name.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Open jobs of the connection's Greenhouse."""
    reader, lookups = _lookups_for(connection)
    with reader:
        jobs = lookups.open_jobs()
    if as_json:
        print_json({"jobs": [j.model_dump(mode="json") for j in jobs]})
        return
    table = Table("id", "name", "requisition", "status")
    for j in jobs:
        table.add_row(str(j.id), j.name or "", j.requisition_id or "", j.status or "")
    console.print(table)


@handle_errors
def pools_cmd(
    connection: Annotated[str, typer.Option("--connection", help="Connection name.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Prospect pools of the connection's Greenhouse, with their stages."""
    reader, lookups = _lookups_for(connection)
    with reader:
        pools = lookups.pools()
    if as_json:
        print_json(
            {
                "pools": [
                    {
                        **p.pool.model_dump(mode="json"),
                        "stages": [s.model_dump(mode="json") for s in p.stages],
                    }
                    for p in pools
                ]
            }
        )
        return
    table = Table("pool id", "pool", "stages (id: name)")
    for p in pools:
        table.add_row(str(p.id), p.name, ", ".join(f"{s.id}: {s.name}" for s in p.stages))
    console.print(table)


def keygen_cmd() -> None:
    """Print a new key for GHX_SECRET_KEY (keep it safe: without it stored secrets cannot be read)."""
    from shared.connections.crypto import generate_key

    typer.echo(generate_key())


@handle_errors
def migrate_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Bring the result store (GHX_DATABASE_URL) to the newest schema and print its revision.

    The deployment's one-shot step before workers start (every process also migrates on first use, so this
    is never required, only earlier and in one place). Idempotent: on an up-to-date store it changes nothing.
    """
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy.engine import make_url

    from shared.store.db import MIGRATIONS_DIR, make_engine, migrate

    url = resources().settings.database_url
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            before = MigrationContext.configure(conn).get_current_revision()
        migrate(engine)
        with engine.connect() as conn:
            after = MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
    head = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
    database = make_url(url).render_as_string(hide_password=True)
    if as_json:
        print_json({"database": database, "revision": after, "previous": before, "head": head})
        return
    change = "already there" if before == after else f"was {before or 'empty'}"
    console.print(
        f"result store {database}: revision {after} (head {head}; {change})",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


def register(app: typer.Typer) -> None:
    """Add the connection commands to ``app``."""
    app.command("connect")(connect_cmd)
    app.command("connections")(connections_cmd)
    app.command("disconnect")(disconnect_cmd)
    app.command("jobs")(jobs_cmd)
    app.command("pools")(pools_cmd)
    app.command("keygen")(keygen_cmd)
    app.command("migrate")(migrate_cmd)
