"""``ghexport flower``: Flower on this app, with authentication."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the operations commands to the ``ghexport`` app."""
