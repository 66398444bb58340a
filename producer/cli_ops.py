"""``ghexport flower``: Flower on this app, with authentication.

Flower runs as ``python -m celery -A workers.app flower`` (a subprocess: the producer never imports the
workers) on the broker ``ghexport worker`` uses, an ``embedded`` one resolved first. It requires HTTP basic
auth from ``GHX_FLOWER_BASIC_AUTH`` (``user:password``, comma-separated pairs allowed), handed to Flower in
its ``FLOWER_BASIC_AUTH`` environment variable, so no credential is on a command line ``ps`` shows. Without
the setting it starts only on a loopback address. The child gets no secret it does not need (the Fernet
key, a client secret, the store's URL). Flower finds the export queue in the app's configuration
(``task_queues``), so the broker tab and ``/api/queues/length`` show it on Redis with no extra option; on
RabbitMQ, give Flower the management API with ``FLOWER_BROKER_API``. Task events are on in the app's
configuration (:func:`shared.queue.celery_app.make_celery`); docs/operations.md says what Flower shows.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from typing import Annotated

import typer
from pydantic import SecretStr

from producer import cli_base
from producer.cli_base import CliError, handle_errors

DEFAULT_ADDRESS = "127.0.0.1"
DEFAULT_PORT = 5555
AUTH_SETTING = "GHX_FLOWER_BASIC_AUTH"
FLOWER_AUTH_ENV = "FLOWER_BASIC_AUTH"
"""Read by Flower's option parser (``FLOWER_<option>``): our credentials reach it only this way."""
WITHHELD_ENV = (
    "GHX_SECRET_KEY",
    "GHX_CLIENT_SECRET",
    "GHX_DATABASE_URL",
    "GHX_REDIS_URL",
    AUTH_SETTING,
    FLOWER_AUTH_ENV,
)
"""Never passed on to Flower from our environment: it needs none of them (its credentials it gets anew), and
the store's and Redis's URLs may hold passwords."""


def register(app: typer.Typer) -> None:
    """Add the operations commands to the ``ghexport`` app."""
    app.command("flower")(flower)


def is_loopback(address: str) -> bool:
    """Whether ``address`` (an IP literal, ``[::1]`` or ``localhost``) binds to this host only. An empty
    address or a host name other than ``localhost`` is not: it may be reachable from elsewhere."""
    host = address.strip().removeprefix("[").removesuffix("]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_auth(address: str, basic_auth: SecretStr | None) -> None:
    """Refuse (:class:`CliError`) to serve Flower beyond loopback without credentials, or with credentials
    that no one could log in with (each pair must be ``user:password``, both non-empty). The message never
    shows the value."""
    if basic_auth is None:
        if not is_loopback(address):
            raise CliError(
                f"refusing to start Flower on {address or 'every address'} without authentication: "
                f"set {AUTH_SETTING}=user:password (or bind to 127.0.0.1)"
            )
        return
    pairs = basic_auth.get_secret_value().split(",")
    if not all(user and password for user, _, password in (p.partition(":") for p in pairs)):
        raise CliError(f"invalid setting {AUTH_SETTING}: expected user:password (comma-separated pairs allowed)")


def flower_command(address: str, port: int) -> list[str]:
    """The command line of Flower on this app: no credential, no broker URL (both come by environment)."""
    return [sys.executable, "-m", "celery", "-A", "workers.app", "flower", f"--address={address}", f"--port={port}"]


def flower_env(base: Mapping[str, str], broker_url: str, basic_auth: SecretStr | None) -> dict[str, str]:
    """Flower's environment: ``base`` without :data:`WITHHELD_ENV`, the resolved broker, and the credentials
    in :data:`FLOWER_AUTH_ENV` when set."""
    env = {k: v for k, v in base.items() if k.upper() not in WITHHELD_ENV}
    env["GHX_BROKER_URL"] = broker_url
    if basic_auth is not None:
        env[FLOWER_AUTH_ENV] = basic_auth.get_secret_value()
    return env


def run_flower(cmd: Sequence[str], env: Mapping[str, str]) -> int:
    """Run ``cmd`` in the foreground until it exits; returns its exit status. SIGTERM and SIGQUIT are passed
    on; SIGINT (Ctrl-C) reaches Flower from the terminal itself."""
    child: subprocess.Popen[bytes] | None = None

    def forward(signum: int, _frame: object) -> None:
        if signum != signal.SIGINT and child is not None and child.poll() is None:
            child.send_signal(signum)

    for sig in (signal.SIGTERM, signal.SIGQUIT, signal.SIGINT):
        signal.signal(sig, forward)
    child = subprocess.Popen(list(cmd), env=dict(env))
    return child.wait()


@handle_errors
def flower(
    address: Annotated[
        str, typer.Option(help=f"Address to bind; beyond loopback, {AUTH_SETTING} (user:password) is required.")
    ] = DEFAULT_ADDRESS,
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port of Flower's web UI and API.")] = DEFAULT_PORT,
) -> None:
    """Run Flower (Celery's web monitor) on this app in the foreground, with HTTP basic auth."""
    res = cli_base.resources()
    basic_auth = res.settings.flower_basic_auth
    if basic_auth is not None and not basic_auth.get_secret_value().strip():
        basic_auth = None  # GHX_FLOWER_BASIC_AUTH= (empty) means none
    check_auth(address, basic_auth)
    cmd = flower_command(address, port)
    env = flower_env(os.environ, res.broker_url, basic_auth)
    auth = "basic auth" if basic_auth is not None else f"no authentication: {AUTH_SETTING} is unset, loopback only"
    host = f"[{address}]" if ":" in address and not address.startswith("[") else address
    cli_base.err_console.print(f"ghexport: Flower on http://{host}:{port} ({auth})", markup=False, highlight=False)
    code = run_flower(cmd, env)
    raise typer.Exit(code if code >= 0 else 128 - code)  # killed by signal N: 128 + N, as a shell says
