"""``ghexport metrics``: the Prometheus endpoint as a process of its own."""

from __future__ import annotations

import signal
import threading
from typing import Annotated

import typer

from producer import cli_base
from producer.cli_base import err_console, handle_errors


def register(app: typer.Typer) -> None:
    """Add the metrics command to the ``ghexport`` app."""
    app.command("metrics")(metrics)


@handle_errors
def metrics(
    port: Annotated[int | None, typer.Option(help="Port to serve on (default: GHX_METRICS_PORT).")] = None,
    host: Annotated[str | None, typer.Option(help="Address to bind (default: GHX_METRICS_HOST, 0.0.0.0).")] = None,
) -> None:
    """Serve Prometheus /metrics with the store's and the broker's figures until interrupted.

    Items by status, queue depth, the oldest queued and unconfirmed items, the sync lag: read at each
    scrape, without a worker. With ``PROMETHEUS_MULTIPROC_DIR`` set to a worker's directory on this host,
    that worker's own figures too (a worker started with ``GHX_METRICS_PORT`` serves them itself).
    """
    from shared.monitoring import MetricsEndpoint

    res = cli_base.resources()
    endpoint = MetricsEndpoint(res.settings, role="standalone", resources=res)
    bound = endpoint.start(host=host, port=port)
    shown = host or res.settings.metrics_host
    err_console.print(f"ghexport: serving metrics on http://{shown}:{bound}/metrics (Ctrl-C stops)", highlight=False)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        endpoint.stop()
