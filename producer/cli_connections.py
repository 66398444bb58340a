"""``ghexport connect | configure | connections | disconnect | webhook-secret | jobs | pools | keygen | migrate``
(operator contract).

Thin typer commands over :mod:`shared.connections.service`; failures print one line on stderr and exit 1
(:func:`producer.cli_base.handle_errors`). The client secret may come from ``GHX_CLIENT_SECRET`` instead of the
command line; it is never printed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import parse_qsl, urlsplit

import typer
from pydantic import SecretStr
from rich.table import Table

from producer.cli_base import CliError, console, err_console, handle_errors, print_json, resources

if TYPE_CHECKING:
    from shared.connections.lookups import Lookups
    from shared.connections.service import ConnectResult
    from shared.harvest.client import HarvestClient
    from shared.store.records import GrantRecord


_PARTS_PANEL = "Field settings (optional parts sent)"


def _part(name: str, what: str) -> Any:
    return typer.Option(f"--{name}/--no-{name}", help=f"Send {what} (default: yes).", rich_help_panel=_PARTS_PANEL)


ResumeOpt = Annotated[bool | None, _part("resume", "a resume PDF made from the profile")]
TagsOpt = Annotated[bool | None, _part("tags", "the profile's tags")]
NoteOpt = Annotated[bool | None, _part("note", "the profile note (summary, skills)")]
EducationsOpt = Annotated[bool | None, _part("educations", "educations")]
EmploymentsOpt = Annotated[bool | None, _part("employments", "employments")]
ExtraTagOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--extra-tag",
        help="A tag for every exported candidate, e.g. Sourced (repeat it; replaces the list).",
        rich_help_panel=_PARTS_PANEL,
    ),
]
NoExtraTagsOpt = Annotated[
    bool, typer.Option("--no-extra-tags", help="Clear the extra tags.", rich_help_panel=_PARTS_PANEL)
]
TagUserOpt = Annotated[
    bool | None,
    typer.Option(
        "--tag-exporting-user/--no-tag-exporting-user",
        help="Also tag each candidate with the acting Greenhouse user's name (default: no).",
        rich_help_panel=_PARTS_PANEL,
    ),
]
PaperOpt = Annotated[
    str | None,
    typer.Option("--paper", help="The resume's paper size: a4 (default) or letter.", rich_help_panel=_PARTS_PANEL),
]


def _field_changes(
    *,
    resume: bool | None,
    tags: bool | None,
    note: bool | None,
    educations: bool | None,
    employments: bool | None,
    extra_tag: list[str] | None,
    no_extra_tags: bool,
    tag_exporting_user: bool | None,
    paper: str | None,
) -> dict[str, Any]:
    """The field settings given on the command line (the others stay as they are)."""
    if extra_tag and no_extra_tags:
        raise CliError("use either --extra-tag or --no-extra-tags, not both")
    given: dict[str, Any] = {
        "resume": resume,
        "tags": tags,
        "note": note,
        "educations": educations,
        "employments": employments,
        "tag_exporting_user": tag_exporting_user,
        "paper": paper.lower() if paper else None,
        "extra_tags": [] if no_extra_tags else extra_tag or None,
    }
    return {k: v for k, v in given.items() if v is not None}


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
    resume: ResumeOpt = None,
    tags: TagsOpt = None,
    note: NoteOpt = None,
    educations: EducationsOpt = None,
    employments: EmploymentsOpt = None,
    extra_tag: ExtraTagOpt = None,
    no_extra_tags: NoExtraTagsOpt = False,
    tag_exporting_user: TagUserOpt = None,
    paper: PaperOpt = None,
    partner: Annotated[
        bool,
        typer.Option(
            "--partner",
            help="Connect as a Greenhouse partner: the customer consents in a browser (OAuth authorization code).",
        ),
    ] = False,
    redirect_uri: Annotated[
        str | None,
        typer.Option(
            "--redirect-uri",
            help="With --partner: the redirect URI registered for the partner client (default "
            "GHX_PARTNER__REDIRECT_URI); a loopback http://127.0.0.1:PORT/... address is served by this command.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Check a Greenhouse credential, its scopes, your user and the source; then store the connection.

    With --partner, print Greenhouse's authorization URL and wait for the customer's consent first.
    Field settings not given: a new connection sends every optional part; an existing one keeps its own."""
    from pydantic import ValidationError

    from shared.connections.service import connect, connection_summary
    from shared.profiles.fields import FieldSettings

    if verify_prospect and verify_job is not None:
        raise CliError("use either --verify-prospect or --verify-job, not both")
    changes = _field_changes(
        resume=resume,
        tags=tags,
        note=note,
        educations=educations,
        employments=employments,
        extra_tag=extra_tag,
        no_extra_tags=no_extra_tags,
        tag_exporting_user=tag_exporting_user,
        paper=paper,
    )
    try:
        fields = FieldSettings.model_validate(changes) if changes else None
    except ValidationError as exc:
        raise CliError("field settings: " + "; ".join(f"{e['loc'][0]}: {e['msg']}" for e in exc.errors())) from None
    verify: Literal["prospect"] | int | None = "prospect" if verify_prospect else verify_job
    res = resources()
    if redirect_uri is not None and not partner:
        raise CliError("--redirect-uri applies to --partner connections only")
    options: dict[str, Any] = {
        "name": name,
        "client_id": client_id,
        "client_secret": SecretStr(client_secret),
        "user_email": user_email,
        "source_name": source_name,
        "prospects_only": prospects_only,
        "enable_pools": enable_pools,
        "duplicate_policy": on_duplicate,
        "fields": fields,
        "verify": verify,
    }
    if partner:
        result = _connect_partner(redirect_uri=redirect_uri, as_json=as_json, **options)
    else:
        result = connect(res.settings, res.engine, **options, **res.harvest_options())
    if as_json:
        print_json(
            {
                "connection": connection_summary(result.connection, _grant_of(result.connection.id)),
                "created": result.created,
                "verified_candidate_id": result.verified_candidate_id,
                "messages": result.messages,
            }
        )
        return
    for message in result.messages:
        console.print(message, markup=False, highlight=False)


def _grant_of(connection_id: int) -> GrantRecord | None:
    from shared.store.grants import grant_states

    return grant_states(resources().engine).get(connection_id)


def _connect_partner(*, redirect_uri: str | None, as_json: bool, **options: Any) -> ConnectResult:
    """``connect --partner``: print the authorization URL, receive the consent's redirect (served here for a
    loopback redirect URI, else pasted by the operator), then complete the connect."""
    import sys

    from producer.api import begin_partner_consent, complete_partner_consent
    from producer.loopback import LoopbackReceiver, is_loopback

    res = resources()
    redirect = redirect_uri or res.settings.partner.redirect_uri
    timeout_s = res.settings.partner.consent_timeout_s
    receiver = LoopbackReceiver(redirect) if is_loopback(redirect) else None
    try:
        consent = begin_partner_consent(res, redirect_uri=redirect, **options)
        if as_json:
            print_json({"authorize_url": consent.authorize_url})
        else:
            err_console.print(
                "Open this URL in a browser and consent as the customer's Greenhouse user "
                f"(it stays valid {timeout_s / 60:g} minutes):",
                highlight=False,
            )
            console.print(consent.authorize_url, markup=False, highlight=False, soft_wrap=True)
        if receiver is not None:
            params = receiver.wait(timeout_s)
            if params is None:
                raise CliError(f"no consent came back to {redirect} within {timeout_s:g} s; nothing was stored")
        else:
            err_console.print(f"Then paste the address your browser was sent to ({redirect}?code=...):")
            line = sys.stdin.readline().strip()
            params = dict(parse_qsl(urlsplit(line).query, keep_blank_values=True))
    finally:
        if receiver is not None:
            receiver.close()
    return complete_partner_consent(res, params)


@handle_errors
def connections_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """List connections (never their secrets)."""
    from shared.connections.service import connection_summary, list_connections
    from shared.store.grants import grant_states

    engine = resources().engine
    grants = grant_states(engine)
    rows = [connection_summary(c, grants.get(c.id)) for c in list_connections(engine)]
    if as_json:
        print_json({"connections": rows})
        return
    from shared.profiles.fields import FieldSettings

    table = Table(
        "name", "state", "client id", "user", "user id", "source", "capabilities", "sends", "created", "updated"
    )
    for r in rows:
        caps = "prospects only" if r["prospects_only"] else "jobs + prospects"
        if r["pools_enabled"]:
            caps += ", pools"
        state = r["state"]
        if r["kind"] == "partner":
            org = r["organization"] or {}
            state = f"{state} (partner, organization {org.get('name') or org.get('id')})"
            if r["state_reason"]:
                state += f": {r['state_reason']} since {str(r['state_since'])[:19]}"
        table.add_row(
            r["name"],
            state,
            r["client_id"],
            r["user_email"],
            str(r["user_id"]),
            f"{r['source_name']} ({r['source_id']})",
            caps,
            FieldSettings.model_validate(r["fields"]).describe(),
            str(r["created_at"])[:19],
            str(r["updated_at"])[:19],
        )
    console.print(table)


@handle_errors
def configure_cmd(
    name: Annotated[str, typer.Argument(help="The connection to configure.")],
    resume: ResumeOpt = None,
    tags: TagsOpt = None,
    note: NoteOpt = None,
    educations: EducationsOpt = None,
    employments: EmploymentsOpt = None,
    extra_tag: ExtraTagOpt = None,
    no_extra_tags: NoExtraTagsOpt = False,
    tag_exporting_user: TagUserOpt = None,
    paper: PaperOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Change which optional parts a connection sends (resume, tags, note, educations, employments, extra
    tags); without options, show them. Items not yet exported use the new settings."""
    from shared.connections.service import configure

    changes = _field_changes(
        resume=resume,
        tags=tags,
        note=note,
        educations=educations,
        employments=employments,
        extra_tag=extra_tag,
        no_extra_tags=no_extra_tags,
        tag_exporting_user=tag_exporting_user,
        paper=paper,
    )
    conn, fields = configure(resources().engine, name, **changes)
    if as_json:
        print_json({"connection": conn.name, "fields": fields.to_stored()})
        return
    console.print(f"{conn.name} sends: {fields.describe()}", markup=False, highlight=False)


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
def webhook_secret_cmd(
    name: Annotated[str, typer.Argument(help="The connection Greenhouse's webhooks are for.")],
    from_stdin: Annotated[
        bool, typer.Option("--secret-stdin", help="Read the secret from stdin instead of generating one.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Set the secret key of the connection's Greenhouse webhooks (delete_candidate) and print it once: paste it
    into the webhook's "Secret key" in Greenhouse, with the endpoint /v1/greenhouse/webhooks/NAME."""
    import sys

    from shared.connections.webhooks import set_webhook_secret

    res = resources()
    given = SecretStr(sys.stdin.readline().strip()) if from_stdin else None
    if given is not None and not given.get_secret_value():
        raise CliError("no secret on stdin")
    secret = set_webhook_secret(res.settings, res.engine, name, given).get_secret_value()
    if as_json:
        print_json({"connection": name, "webhook_secret": secret})
        return
    console.print(f"webhook secret of {name} (shown once): {secret}", markup=False, highlight=False)


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
    app.command("configure")(configure_cmd)
    app.command("connections")(connections_cmd)
    app.command("disconnect")(disconnect_cmd)
    app.command("webhook-secret")(webhook_secret_cmd)
    app.command("jobs")(jobs_cmd)
    app.command("pools")(pools_cmd)
    app.command("keygen")(keygen_cmd)
    app.command("migrate")(migrate_cmd)
