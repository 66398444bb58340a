"""``ghexport metrics``: the Prometheus endpoint as a process of its own."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the metrics command to the ``ghexport`` app."""
