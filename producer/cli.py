"""The ``ghexport`` command line (operator contract: ``../shared/reference/operator-contract.md``).

Every command exits 0 on success and non-zero with a one-line reason on stderr otherwise; ``--json``
prints one JSON document on stdout instead of tables. Commands that run workers start them as
``celery -A workers.app`` subprocesses, so the producer never imports the workers package.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import typer
from rich.console import Console

try:  # typer >= 0.29 vendors click; older releases use click itself
    from typer._click.exceptions import UsageError
except ImportError:  # pragma: no cover
    from click.exceptions import UsageError  # type: ignore[assignment]

from shared.resources import Resources
from shared.settings import Settings

app = typer.Typer(
    name="ghexport",
    help="Export sourced candidate profiles into Greenhouse (Harvest v3).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])

USAGE_EXIT = 2
"""Exit status of a command line that cannot be parsed (missing or unknown option)."""


class CliError(Exception):
    """An expected failure: printed as one line on stderr, exit status 1."""


_resources: Resources | None = None


def resources() -> Resources:
    """The process's resources, built from the environment on first use."""
    global _resources
    if _resources is None:
        _resources = Resources(Settings())
    return _resources


def print_json(doc: object) -> None:
    """One JSON document on stdout."""
    sys.stdout.write(json.dumps(doc, default=str) + "\n")
    sys.stdout.flush()


def fail(reason: str) -> typer.Exit:
    """Print ``ghexport: <reason>`` as ONE line on stderr; return the exit to raise (status 1)."""
    err_console.print(f"ghexport: {reason}", markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(1)


def handle_errors(func: F) -> F:
    """Turn expected exceptions into a one-line reason on stderr and exit status 1."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        import kombu.exceptions
        import redis
        import sqlalchemy.exc
        from pydantic import ValidationError as SettingsError

        from shared.errors import UserError
        from shared.harvest.errors import HarvestError

        try:
            return func(*args, **kwargs)
        except (CliError, UserError, HarvestError) as exc:
            raise fail(str(exc)) from None
        except sqlalchemy.exc.SQLAlchemyError as exc:
            reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
            raise fail(f"result store error: {reason}") from None
        except (redis.RedisError, kombu.exceptions.OperationalError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise fail(f"cannot reach Redis/the broker: {reason}") from None
        except SettingsError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise fail(f"invalid setting {where}: {first['msg']}") from None

    return wrapper  # type: ignore[return-value]


def _register_commands() -> None:
    from producer import cli_connections, cli_export, cli_run

    for module in (cli_connections, cli_export, cli_run):
        module.register(app)


def main() -> None:
    """Console-script entry point."""
    import logging

    # httpx logs request URLs at INFO; email lookups put addresses in them: keep them out of logs.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    _register_commands()
    try:
        code = app(standalone_mode=False)
    except UsageError as exc:  # the contract: one line on stderr, never a boxed help screen
        command = exc.ctx.command_path if exc.ctx is not None else "ghexport"
        fail(f"{exc.format_message()} (see: {command} --help)")
        sys.exit(USAGE_EXIT)
    except (typer.Abort, KeyboardInterrupt):
        fail("interrupted")
        sys.exit(130)
    finally:
        if _resources is not None:
            _resources.close()
    sys.exit(code if isinstance(code, int) else 0)
