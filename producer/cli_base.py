"""What every ``ghexport`` command shares: the Typer app, consoles, the process's resources, and the
translation of our errors into the operator contract's one-line reason on stderr (exit status 1).

The command modules (:mod:`producer.cli_connections`, :mod:`producer.cli_export`,
:mod:`producer.cli_run`) import this module; :mod:`producer.cli` assembles them and holds ``main``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from typing import ParamSpec, TypeVar

import typer
from rich.console import Console

from shared.errors import UserError
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

P = ParamSpec("P")
R = TypeVar("R")


class CliError(UserError):
    """An expected failure found by the command line itself: printed as one line on stderr, exit 1."""


_resources: Resources | None = None


def say_wait(seconds: float, reason: str) -> None:
    """Tell the operator why a command pauses (``reason`` names the wait): one line on stderr, so stdout
    stays the command's output (one JSON document with ``--json``)."""
    err_console.print(f"ghexport: {reason}", markup=False, highlight=False, soft_wrap=True, style="dim")


def resources() -> Resources:
    """The process's resources, built from the environment on first use: a command's, so Harvest calls
    wait out transient faults and a busy rate limit, saying so on stderr (:func:`say_wait`)."""
    global _resources
    if _resources is None:
        _resources = Resources(Settings(), patient=True, on_wait=say_wait)
    return _resources


def use_resources(res: Resources | None) -> None:
    """Make ``res`` the process's resources (the demo's own, a test's), or forget them with None."""
    global _resources
    _resources = res


def close_resources() -> None:
    """Close the process's resources, if any were built."""
    global _resources
    if _resources is not None:
        _resources.close()
    _resources = None


def print_json(doc: object) -> None:
    """One JSON document on stdout."""
    sys.stdout.write(json.dumps(doc, default=str) + "\n")
    sys.stdout.flush()


def fail(reason: str) -> typer.Exit:
    """Print ``ghexport: <reason>`` as ONE line on stderr; return the exit to raise (status 1)."""
    err_console.print(f"ghexport: {reason}", markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(1)


def handle_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn expected exceptions into a one-line reason on stderr and exit status 1.

    Expected means: one of ours (:class:`shared.errors.ExporterError`), an infrastructure error that
    :func:`shared.resources.translate_error` names (store, Redis, broker), or an invalid setting.
    """

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        from pydantic import ValidationError

        from shared.resources import translate_error

        try:
            return func(*args, **kwargs)
        except ValidationError as exc:  # only settings are validated outside our own errors
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise fail(f"invalid setting {where}: {first['msg']}") from None
        except Exception as exc:
            known = translate_error(exc)
            if known is None:
                raise
            raise fail(str(known)) from None

    return wrapper
