"""``ghexport api`` (the HTTP API), ``ghexport tenants create|list`` and ``ghexport api-keys create|list|revoke``.

``api`` serves :func:`producer.web.app.create_app` with uvicorn on ``GHX_API__HOST:GHX_API__PORT`` (``--host``,
``--port``; port 0 takes a free one, and ``--json`` prints ``{"url": ...}`` once it listens). Plain HTTP: TLS
is terminated in front of it. uvicorn's access log is off; the app logs method, path, status and duration only.

A key is printed once, when it is created; the store keeps its SHA-256. ``list`` shows prefixes, names,
creation, last use and revocation.
"""

from __future__ import annotations

import socket
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from producer.cli_base import CliError, console, err_console, handle_errors, print_json, resources

tenants_app = typer.Typer(name="tenants", help="Tenants of the HTTP API: create, list.", no_args_is_help=True)
keys_app = typer.Typer(name="api-keys", help="HTTP API keys: create, list, revoke.", no_args_is_help=True)

TenantOpt = Annotated[str | None, typer.Option("--tenant", help="The tenant (its id).")]
AdminOpt = Annotated[bool, typer.Option("--admin", help="A platform-admin key (every tenant).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]


def register(app: typer.Typer) -> None:
    """Add ``api``, ``tenants ...`` and ``api-keys ...`` to the ``ghexport`` app."""
    app.command("api")(api_cmd)
    tenants_app.command("create")(tenants_create_cmd)
    tenants_app.command("list")(tenants_list_cmd)
    keys_app.command("create")(keys_create_cmd)
    keys_app.command("list")(keys_list_cmd)
    keys_app.command("revoke")(keys_revoke_cmd)
    app.add_typer(tenants_app, name="tenants")
    app.add_typer(keys_app, name="api-keys")


@handle_errors
def api_cmd(
    host: Annotated[str | None, typer.Option(help="Address to bind (default: GHX_API__HOST, 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: GHX_API__PORT, 8080; 0: any free port).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help='Print one JSON line {"url": ...} once listening.')] = False,
) -> None:
    """Serve the HTTP API for the platform's backend until interrupted (docs/http-api.md)."""
    import uvicorn

    from producer.web.app import create_app
    from shared.logs import configure_logging

    res = resources()
    settings = res.settings
    configure_logging(settings, default_level="INFO")  # a server's log is its access log: INFO unless told
    bind_host = host or settings.api.host
    sock = _listen(bind_host, settings.api.port if port is None else port)
    bound = sock.getsockname()[1]
    url = f"http://{bind_host}:{bound}"
    config = uvicorn.Config(
        create_app(res),
        access_log=False,  # ours logs the path without the query (consent codes, emails stay out)
        log_config=None,  # keep shared.logs' handler: redacted, JSON in production
        server_header=False,
        timeout_graceful_shutdown=30,
    )
    server = uvicorn.Server(config)
    if as_json:
        print_json({"url": url})
    else:
        err_console.print(f"ghexport: serving the HTTP API on {url} (Ctrl-C stops)", highlight=False)
    server.run(sockets=[sock])


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: any free one), so the bound port is known before serving."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise CliError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _when(ts: datetime | None) -> str:
    return ts.isoformat(timespec="seconds") if ts is not None else "-"


# --- tenants ----------------------------------------------------------------------------------------------


@handle_errors
def tenants_create_cmd(
    tenant_id: Annotated[str, typer.Argument(help="The tenant's id: lowercase letters, digits and '-'.")],
    name: Annotated[str | None, typer.Option(help="A display name (default: the id).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a tenant (one customer organization of the platform)."""
    from shared.connections.tenancy import create_tenant

    tenant = create_tenant(resources().engine, tenant_id, name)
    if as_json:
        print_json({"id": tenant.id, "name": tenant.name, "created_at": tenant.created_at.isoformat()})
        return
    console.print(f"created tenant {tenant.id} ({tenant.name})", markup=False, highlight=False)


@handle_errors
def tenants_list_cmd(as_json: JsonOpt = False) -> None:
    """List tenants."""
    from shared.store.tenants import list_tenants

    tenants = list_tenants(resources().engine)
    if as_json:
        rows = [
            {"id": t.id, "name": t.name, "callback_url": t.callback_url, "created_at": t.created_at.isoformat()}
            for t in tenants
        ]
        print_json({"tenants": rows})
        return
    table = Table("id", "name", "callback URL", "created")
    for t in tenants:
        table.add_row(t.id, t.name, t.callback_url or "-", _when(t.created_at))
    console.print(table)


# --- API keys ---------------------------------------------------------------------------------------------


def _owner(tenant: str | None, admin: bool) -> str | None:
    if (tenant is None) == (not admin):
        raise CliError("give either --tenant T or --admin")
    return tenant


@handle_errors
def keys_create_cmd(
    tenant: TenantOpt = None,
    admin: AdminOpt = False,
    name: Annotated[str, typer.Option(help="What the key is for (shown in lists).")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Create an API key of a tenant (or a platform-admin key) and print it, once: only its hash is stored."""
    from shared.connections.tenancy import create_api_key

    new = create_api_key(resources().engine, tenant_id=_owner(tenant, admin), name=name)
    if as_json:
        print_json({"key": new.key.get_secret_value(), **_key_doc(new.record)})
        return
    whose = f"tenant {tenant}" if tenant else "the platform admin"
    err_console.print(f"API key {new.record.prefix} of {whose} (shown once, keep it safe):", highlight=False)
    console.print(new.key.get_secret_value(), markup=False, highlight=False, soft_wrap=True)


def _key_doc(key: Any) -> dict[str, Any]:
    return {
        "prefix": key.prefix,
        "tenant_id": key.tenant_id,
        "name": key.name,
        "created_at": key.created_at.isoformat(),
        "last_used_at": key.last_used_at.isoformat() if key.last_used_at else None,
        "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
    }


@handle_errors
def keys_list_cmd(tenant: TenantOpt = None, admin: AdminOpt = False, as_json: JsonOpt = False) -> None:
    """List API keys (every key, a tenant's, or the platform-admin ones): prefix, name, created, last used,
    revoked. Never the key."""
    from shared.store.tenants import list_api_keys

    if tenant is not None and admin:
        raise CliError("give --tenant T or --admin, not both")
    keys = list_api_keys(resources().engine, tenant_id=tenant, admin_only=admin)
    if as_json:
        print_json({"api_keys": [_key_doc(k) for k in keys]})
        return
    table = Table("prefix", "tenant", "name", "created", "last used", "revoked")
    for k in keys:
        table.add_row(
            k.prefix,
            k.tenant_id or "(admin)",
            k.name,
            _when(k.created_at),
            _when(k.last_used_at),
            _when(k.revoked_at),
        )
    console.print(table)


@handle_errors
def keys_revoke_cmd(
    prefix: Annotated[str, typer.Argument(help="The key's prefix (ghx_xxxxxxxx), as listed.")],
    tenant: TenantOpt = None,
    admin: AdminOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Revoke an API key: the next request made with it gets 401."""
    from shared.connections.tenancy import revoke_api_key

    key = revoke_api_key(resources().engine, prefix.strip(), tenant_id=_owner(tenant, admin), admin=admin)
    if as_json:
        print_json(_key_doc(key))
        return
    console.print(f"revoked API key {key.prefix} ({_when(key.revoked_at)})", markup=False, highlight=False)
