"""Per-process state of a worker: resources and the export collaborators built from them."""

from __future__ import annotations

import os
import socket
import threading

from shared.harvest.client import HarvestClient
from shared.mapping import OptionIndex
from shared.resources import Resources
from shared.settings import Settings
from shared.store.models import Connection
from workers.export import ExportDeps

_lock = threading.Lock()
_resources: Resources | None = None
_deps: ExportDeps | None = None


def start(settings: Settings) -> ExportDeps:
    """Build this process's resources and export collaborators (idempotent)."""
    global _resources, _deps
    with _lock:
        if _deps is None:
            _resources = Resources(settings)
            _deps = build_deps(_resources)
        return _deps


def stop() -> None:
    """Close this process's resources."""
    global _resources, _deps
    with _lock:
        if _resources is not None:
            _resources.close()
        _resources, _deps = None, None


def resources() -> Resources:
    """This process's resources (started on first use: solo and thread pools fire no process init)."""
    if _resources is None:
        from workers.app import settings

        start(settings)
    assert _resources is not None
    return _resources


def deps() -> ExportDeps:
    """This process's export collaborators."""
    if _deps is None:
        resources()
    assert _deps is not None
    return _deps


def build_deps(res: Resources) -> ExportDeps:
    """Wire :class:`ExportDeps` to process resources (the shared limiter, token cache, caches)."""
    from shared.connections import load_connection
    from shared.mapping import normalise_name

    def options_for(conn: Connection, reader: HarvestClient) -> OptionIndex:
        return res.lookups_for(conn, reader).options().index()

    def tags_for(conn: Connection, reader: HarvestClient) -> dict[str, int]:
        tags = res.lookups_for(conn, reader).tags()
        out: dict[str, int] = {}
        for t in tags:
            out.setdefault(normalise_name(t.name), t.id)
        return out

    def invalidate_tags(conn: Connection) -> None:
        res.lookups_for(conn).invalidate("tags")

    return ExportDeps(
        settings=res.settings,
        engine=res.engine,
        load_connection=lambda cid: load_connection(res.engine, cid),
        client_for=res.harvest_for,
        options_for=options_for,
        tags_for=tags_for,
        invalidate_tags=invalidate_tags,
        owner=f"{socket.gethostname()}:{os.getpid()}",
    )
