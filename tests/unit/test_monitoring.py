"""The scrape-time figures (shared/monitoring.py) on a SQLite store: items by status, queue depth, the oldest
queued and unconfirmed items, the sync lag; a source that does not answer; ``/metrics`` over HTTP and a taken
port; ``ghexport metrics`` as an operator runs it; and the example alert rules, which may only use metrics
we export (each documented in docs/metrics.md)."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import sqlalchemy as sa
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlmodel import col
from typer.testing import CliRunner

from producer import cli_base, cli_run
from producer.cli import app, register_commands
from shared import metrics
from shared.monitoring import (
    SYNC_LAG_WINDOW_S,
    ExportCollector,
    MetricsEndpoint,
    MetricsEndpointError,
    ensure_port_free,
    metrics_registry,
)
from shared.store.models import Item, ItemStatus, utcnow
from tests.unit.export_fixtures import Env, make_env, profile

ROOT = Path(__file__).resolve().parents[2]
GHEXPORT = str(Path(sys.executable).with_name("ghexport"))
Series = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Series:
    """Every sample of an exposition, by (name, sorted labels)."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def by_label(series: Series, name: str, label: str) -> dict[str, float]:
    return {dict(labels)[label]: v for (n, labels), v in series.items() if n == name}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def env(sqlite_url: str) -> Iterator[Env]:
    env = make_env(sqlite_url)
    yield env
    env.res.close()


# Where each item of the store is put, relative to the scrape's `now`: (status, seconds ago of updated_at,
# of exported_at, of synced_at).
LAYOUT: list[tuple[ItemStatus, float, float | None, float | None]] = [
    (ItemStatus.QUEUED, 600, None, None),
    (ItemStatus.QUEUED, 60, None, None),
    (ItemStatus.SENDING, 5, None, None),
    (ItemStatus.EXPORTED, 7200, 7200, None),
    (ItemStatus.EXPORTED, 100, 100, None),
    (ItemStatus.SYNCED, 300, 330, 300),  # lag 30 s
    (ItemStatus.SYNCED, 200, 290, 200),  # lag 90 s
    (ItemStatus.SYNCED, 10_000, 15_000, SYNC_LAG_WINDOW_S + 10_000),  # confirmed too long ago for the lag
    (ItemStatus.FAILED, 50, None, None),
]


def lay_out(env: Env, now: datetime) -> list[int]:
    """A batch with one item per row of :data:`LAYOUT`, its columns set as the row says."""
    ids = env.batch([profile(f"m-{n}") for n in range(len(LAYOUT))]).to_enqueue
    with env.engine.begin() as conn:
        for item_id, (status, updated, exported, synced) in zip(ids, LAYOUT, strict=True):
            values: dict[str, Any] = {"status": status, "updated_at": now - timedelta(seconds=updated)}
            if exported is not None:
                values["exported_at"] = now - timedelta(seconds=exported)
            if synced is not None:
                values["synced_at"] = now - timedelta(seconds=synced)
            conn.execute(sa.update(Item).where(col(Item.id) == item_id).values(**values))
    return ids


def scrape(collector: ExportCollector) -> Series:
    return parse(generate_latest(metrics_registry(collector, None)).decode())


def test_the_store_and_broker_figures_at_scrape_time(env: Env) -> None:
    now = utcnow()
    lay_out(env, now)
    collector = ExportCollector(lambda: env.engine, lambda: 4, lambda: 7, role="worker", now=lambda: now)

    series = scrape(collector)

    counts = by_label(series, "ghx_items", "status")
    assert set(counts) == {s.value for s in ItemStatus}  # every status shows, 0 when none
    for status in ItemStatus:
        assert counts[status.value] == sum(1 for row in LAYOUT if row[0] is status)
    assert sum(counts.values()) == len(LAYOUT)
    assert series[("ghx_oldest_queued_age_seconds", ())] == pytest.approx(600, abs=1)
    assert series[("ghx_oldest_unsynced_age_seconds", ())] == pytest.approx(7200, abs=1)
    assert series[("ghx_sync_lag_items", ())] == 2  # the third was confirmed before the window
    assert series[("ghx_sync_lag_max_seconds", ())] == pytest.approx(90, abs=0.01)
    assert series[("ghx_sync_lag_avg_seconds", ())] == pytest.approx(60, abs=0.01)
    assert by_label(series, "ghx_queue_depth", "queue") == {"broker": 4, "parked": 7}
    assert by_label(series, "ghx_monitoring_source_up", "source") == {"store": 1, "broker": 1, "limiter": 1}
    assert series[("ghx_exporter_info", (("role", "worker"),))] == 1


def test_an_empty_store_shows_zero_ages_and_no_lag(env: Env) -> None:
    series = scrape(ExportCollector(lambda: env.engine, lambda: 0, lambda: 0))

    assert sum(by_label(series, "ghx_items", "status").values()) == 0
    assert series[("ghx_oldest_queued_age_seconds", ())] == 0
    assert series[("ghx_oldest_unsynced_age_seconds", ())] == 0
    assert series[("ghx_sync_lag_items", ())] == 0
    assert not any(name.startswith("ghx_sync_lag_max") for name, _ in series)


def test_a_source_that_does_not_answer_is_left_out_and_said_once(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    def broker_down() -> int:
        raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    def store_down() -> sa.Engine:
        raise sa.exc.OperationalError("SELECT secret", {"email": "ada@example.com"}, Exception("server closed"))

    collector = ExportCollector(store_down, broker_down, lambda: 3)
    with caplog.at_level(logging.WARNING, logger="ghexport.metrics"):
        first, second = scrape(collector), scrape(collector)

    for series in (first, second):
        assert by_label(series, "ghx_monitoring_source_up", "source") == {"store": 0, "broker": 0, "limiter": 1}
        assert by_label(series, "ghx_queue_depth", "queue") == {"parked": 3}
        assert not any(name == "ghx_items" for name, _ in series)
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2, warnings  # one per source, not one per scrape
    assert not any("ada@" in w or "SELECT" in w for w in warnings)


def test_metrics_are_served_over_http_and_a_taken_port_is_one_clear_error(env: Env) -> None:
    lay_out(env, utcnow())
    endpoint = MetricsEndpoint(env.settings, role="standalone", resources=env.res)
    port = endpoint.start(host="127.0.0.1", port=0)
    try:
        series = parse(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text)
        assert sum(by_label(series, "ghx_items", "status").values()) == len(LAYOUT)
        assert by_label(series, "ghx_queue_depth", "queue")["broker"] >= 0  # the in-memory broker answered
        assert ("ghx_exporter_info", (("role", "standalone"),)) in series
        assert any(name.startswith("ghx_export_outcomes") for name, _ in series)  # this process's own figures

        with pytest.raises(MetricsEndpointError, match=f"metrics port {port} on 127.0.0.1 is already in use"):
            MetricsEndpoint(env.settings, role="standalone", resources=env.res).start(host="127.0.0.1", port=port)
        with pytest.raises(MetricsEndpointError, match="already in use"):
            ensure_port_free("127.0.0.1", port)
    finally:
        endpoint.stop()
    ensure_port_free("127.0.0.1", port)  # free again once stopped
    endpoint.stop()  # twice is fine


def test_ghexport_metrics_on_a_taken_port_says_so_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    if not any(c.name == "metrics" for c in app.registered_commands):
        register_commands()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        try:
            result = CliRunner().invoke(app, ["metrics", "--port", str(port), "--host", "127.0.0.1"])
        finally:
            cli_base.close_resources()
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 1
    assert lines == [
        f"ghexport: metrics port {port} on 127.0.0.1 is already in use: stop what listens there or choose another "
        "port (--port, GHX_METRICS_PORT)"
    ]


def test_ghexport_worker_gives_its_celery_child_a_metrics_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    if not any(c.name == "worker" for c in app.registered_commands):
        register_commands()
    seen: dict[str, Any] = {}

    def supervise(cmd: list[str]) -> int:
        path = os.environ.get(metrics.MULTIPROC_ENV)
        seen.update(cmd=cmd, path=path, existed=path is not None and os.path.isdir(path))
        return 0

    monkeypatch.setattr(cli_run, "supervise", supervise)
    monkeypatch.setenv("GHX_BROKER_URL", "memory://")
    monkeypatch.setenv("GHX_METRICS_HOST", "127.0.0.1")
    monkeypatch.setenv("GHX_METRICS_PORT", str(free_port()))
    monkeypatch.delenv(metrics.MULTIPROC_ENV, raising=False)
    try:
        result = CliRunner().invoke(app, ["worker", "--pool", "threads"])
    finally:
        cli_base.close_resources()

    assert result.exit_code == 0, result.output
    assert seen["existed"] and "threads" in seen["cmd"]
    assert not os.path.exists(seen["path"]) and metrics.MULTIPROC_ENV not in os.environ  # removed afterwards


def test_ghexport_worker_on_a_taken_metrics_port_stops_before_starting_celery(monkeypatch: pytest.MonkeyPatch) -> None:
    if not any(c.name == "worker" for c in app.registered_commands):
        register_commands()
    started: list[list[str]] = []

    def supervise(cmd: list[str]) -> int:
        started.append(cmd)
        return 0

    monkeypatch.setattr(cli_run, "supervise", supervise)
    monkeypatch.setenv("GHX_BROKER_URL", "memory://")
    monkeypatch.setenv("GHX_METRICS_HOST", "127.0.0.1")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setenv("GHX_METRICS_PORT", str(port))
        try:
            result = CliRunner().invoke(app, ["worker"])
        finally:
            cli_base.close_resources()

    assert result.exit_code == 1 and not started
    assert result.stderr.strip().splitlines() == [
        f"ghexport: metrics port {port} on 127.0.0.1 is already in use: stop what listens there or choose another "
        "port (--port, GHX_METRICS_PORT)"
    ]


def test_ghexport_metrics_serves_until_sigterm(tmp_path: Path) -> None:
    port = free_port()
    environ = {
        **os.environ,
        "GHX_DATABASE_URL": f"sqlite:///{tmp_path}/store.db",
        "GHX_BROKER_URL": "memory://",
        "GHX_REDIS_URL": "redis://127.0.0.1:1/0",
        "GHX_LIMITER__ENABLED": "false",
    }
    process = subprocess.Popen(
        [GHEXPORT, "metrics", "--port", str(port), "--host", "127.0.0.1"],
        env=environ, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        series: Series = {}
        deadline = time.monotonic() + 30
        while not series and time.monotonic() < deadline and process.poll() is None:
            try:
                series = parse(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text)
            except httpx.TransportError:
                time.sleep(0.1)
        assert series, f"no answer on port {port}"
        assert by_label(series, "ghx_monitoring_source_up", "source") == {"store": 1, "broker": 1, "limiter": 1}
        assert sum(by_label(series, "ghx_items", "status").values()) == 0
        assert series[("ghx_exporter_info", (("role", "standalone"),))] == 1
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=20)
    assert process.returncode == 0, err
    assert f"serving metrics on http://127.0.0.1:{port}/metrics" in err


# --- docs: the metrics and the alert rules ----------------------------------------------------------------------

SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",), "info": ("_info",)}


def exported_names(env: Env) -> dict[str, str]:
    """Every series name /metrics can show (an in-process registry with every figure present), by family."""
    lay_out(env, utcnow())
    text = generate_latest(metrics_registry(ExportCollector(lambda: env.engine, lambda: 0, lambda: 0), None)).decode()
    names: dict[str, str] = {}
    for family in text_string_to_metric_families(text):
        if family.name.startswith("ghx_") and not family.name.endswith("_created"):  # prometheus-client's extra
            for suffix in SUFFIXES.get(family.type, ("",)):
                names[family.name + suffix] = family.name
    return names


def load_rules() -> list[dict[str, Any]]:
    text = (ROOT / "docs" / "alerts.yml").read_text()
    try:
        import yaml  # type: ignore[import-untyped]  # not a dependency: used when installed

        doc = yaml.safe_load(text)
    except ImportError:  # the file is JSON-compatible YAML, so the standard library reads it too
        doc = json.loads(text)
    return [rule for group in doc["groups"] for rule in group["rules"]]


def test_every_alert_rule_uses_only_metrics_we_export(env: Env) -> None:
    exported = exported_names(env)
    rules = load_rules()
    assert len(rules) >= 5
    for rule in rules:
        assert {"alert", "expr", "for", "labels", "annotations"} <= set(rule), rule
        used = set(re.findall(r"\bghx_[a-z0-9_]+", rule["expr"]))
        assert used, f"{rule['alert']} uses none of our metrics"
        assert used <= set(exported), f"{rule['alert']} uses {sorted(used - set(exported))}, which we do not export"


def test_every_exported_metric_is_documented(env: Env) -> None:
    docs = (ROOT / "docs" / "metrics.md").read_text()
    exported = exported_names(env)
    shown = {n for n in exported if not n.endswith(("_bucket", "_sum", "_count"))} | {
        family for n, family in exported.items() if n.endswith("_bucket")
    }
    missing = sorted(name for name in shown if f"`{name}`" not in docs)
    assert not missing, f"not in docs/metrics.md: {missing}"
