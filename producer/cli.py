"""The ``ghexport`` command line (operator contract: ``docs/operator-contract.md``).

Every command exits 0 on success and non-zero with a one-line reason on stderr otherwise; ``--json``
prints one JSON document on stdout instead of tables. Commands that run workers start them as
``celery -A workers.app`` subprocesses, so the producer never imports the workers package. The commands
live in :mod:`producer.cli_connections`, :mod:`producer.cli_export` and :mod:`producer.cli_run`, over
what they share in :mod:`producer.cli_base`; this module assembles them.
"""

from __future__ import annotations

import sys

import typer

try:  # typer >= 0.29 vendors click; older releases use click itself
    from typer._click.exceptions import UsageError
except ImportError:  # pragma: no cover
    # The fallback binds click's own class to the name mypy typed from typer's vendored copy (same API).
    from click.exceptions import UsageError  # type: ignore[assignment]  # the other class of the same name

from producer import cli_api, cli_callbacks, cli_connections, cli_export, cli_metrics, cli_ops, cli_run
from producer.cli_base import app, close_resources, fail

USAGE_EXIT = 2
"""Exit status of a command line that cannot be parsed (missing or unknown option)."""

__all__ = ["app", "main"]

_registered = False


def register_commands() -> None:
    """Add every command to :data:`app` (once)."""
    global _registered
    if not _registered:
        for module in (cli_connections, cli_export, cli_run, cli_ops, cli_metrics, cli_callbacks, cli_api):
            module.register(app)
        _registered = True


def main() -> None:
    """Console-script entry point."""
    import logging

    # httpx logs request URLs at INFO; email lookups put addresses in them: keep them out of logs.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    _configure_logging()
    register_commands()
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
        close_resources()
    sys.exit(code if isinstance(code, int) else 0)


def _configure_logging() -> None:
    """Logs on stderr, redacted, text on a terminal and JSON lines otherwise (:mod:`shared.logs`). A command
    logs warnings and errors only, unless ``GHX_LOG__LEVEL`` asks for more: its output is its result, and a
    failure stays one line. Invalid settings other than the log's are left to the command, which names them."""
    from pydantic import ValidationError

    from shared.errors import ConfigurationError
    from shared.logs import configure_logging
    from shared.settings import Settings

    try:
        configure_logging(Settings(), default_level="WARNING")
    except ValidationError:
        return
    except ConfigurationError as exc:
        fail(str(exc))
        sys.exit(1)
