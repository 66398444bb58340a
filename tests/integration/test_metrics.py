"""Prometheus metrics of a real cluster: the sandbox over HTTP, Redis (database 1), PostgreSQL, and a worker
started as an operator starts it (``ghexport worker``, prefork with two children, ``GHX_METRICS_PORT`` set).
``/metrics`` is scraped while 20 candidates are exported and once they are: the pool children's requests
and outcomes are added up by the main process, the figures read from the store add up to the batch, and the
requests counted match what the sandbox received."""

from __future__ import annotations

import re
import socket
import time
from collections import Counter
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from shared.store.models import ItemStatus
from tests.integration.cluster import Cluster, cluster, profiles
from tests.integration.workers_env import broker_db

BROKER_DB = 1
"""This file's Redis database: flushed before and after."""
CANDIDATES = 20
ROUTE = re.compile(r"/v3(/([a-z_]+|\{id\}))*|other")
Series = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scrape(port: int) -> Series | None:
    """Every sample of the worker's ``/metrics``, or None while it does not answer."""
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    except httpx.TransportError:
        return None
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def values(series: Series, name: str) -> list[tuple[dict[str, str], float]]:
    return [(dict(labels), v) for (n, labels), v in series.items() if n == name]


def one(series: Series, name: str, **labels: str) -> float:
    found = [v for got, v in values(series, name) if all(got.get(k) == w for k, w in labels.items())]
    assert len(found) == 1, f"{name}{labels}: {found}"
    return found[0]


def by(series: Series, name: str, label: str) -> dict[str, float]:
    return {labels[label]: v for labels, v in values(series, name)}


def posts_answered(c: Cluster) -> Counter[tuple[str, str]]:
    """The sandbox's count of POST requests it answered with 2xx, by (path, code)."""
    out: Counter[tuple[str, str]] = Counter()
    for route, statuses in c.sandbox.stats()["requests"].items():
        method, _, path = route.partition(" ")
        for code, n in statuses.items():
            if method == "POST" and path.startswith("/v3/") and code.startswith("2"):
                out[(path, code)] += n
    return out


def check_store_figures(series: Series) -> dict[str, float]:
    """What every scrape must show, mid-export or not; returns the items by status."""
    items = by(series, "ghx_items", "status")
    assert set(items) == {s.value for s in ItemStatus}
    assert sum(items.values()) == CANDIDATES
    depth = by(series, "ghx_queue_depth", "queue")
    assert set(depth) == {"broker", "parked"} and min(depth.values()) >= 0
    assert one(series, "ghx_oldest_queued_age_seconds") >= 0
    assert one(series, "ghx_oldest_unsynced_age_seconds") >= 0
    assert by(series, "ghx_monitoring_source_up", "source") == {"store": 1, "broker": 1, "limiter": 1}
    assert one(series, "ghx_exporter_info", role="worker") == 1
    return items


def test_a_prefork_workers_metrics_during_and_after_an_export(
    redis_url: str, postgres_schema_url: str, tmp_path: Path
) -> None:
    url, client = broker_db(redis_url, BROKER_DB)
    port = free_port()
    with cluster(
        url, postgres_schema_url, tmp_path,
        sandbox={"rate_limit": 1000, "window_s": 10, "latency_ms": 40},
        limiter={"requests": 1000, "window_s": 10},
        metrics_port=port, metrics_host="127.0.0.1",
    ) as c:  # fmt: skip
        worker = c.start_worker("--concurrency", "2")
        deadline = time.monotonic() + 30
        while scrape(port) is None:
            assert worker.poll() is None and time.monotonic() < deadline, f"no /metrics on {port}\n{c.logs()}"
            time.sleep(0.2)
        before = posts_answered(c)
        batch = c.export(profiles(CANDIDATES, "metrics"))

        during: list[dict[str, float]] = []
        deadline = time.monotonic() + 60
        while True:
            series = scrape(port)
            assert series is not None, c.logs()
            during.append(check_store_figures(series))
            doc = c.status(batch)
            if doc is not None and doc["done"]:
                break
            assert time.monotonic() < deadline, f"batch not done: {doc and doc['counts']}\n{c.logs()}"
            time.sleep(0.25)

        # The last outcome is counted just after its item's row is written: wait for it.
        deadline = time.monotonic() + 10
        while True:
            after = scrape(port)
            assert after is not None
            if one(after, "ghx_export_outcomes_total", outcome="exported") >= CANDIDATES:
                break
            assert time.monotonic() < deadline, by(after, "ghx_export_outcomes_total", "outcome")
            time.sleep(0.2)
        sent = posts_answered(c) - before
        logs = c.logs()
    client.flushdb()

    # Scraped during the export: the store's figures added up to the batch while items were still waiting.
    assert any(items["queued"] + items["sending"] > 0 for items in during), during
    # After: every item exported once, counted in the pool children and added up by the main process.
    items = check_store_figures(after)
    assert items["exported"] + items["synced"] == CANDIDATES, items
    assert one(after, "ghx_export_outcomes_total", outcome="exported") == CANDIDATES
    assert one(after, "ghx_export_outcomes_total", outcome="failed") == 0
    assert one(after, "ghx_oldest_queued_age_seconds") == 0  # nothing queued any more
    assert one(after, "ghx_harvest_requests_in_flight") == 0
    lag_sample = one(after, "ghx_sync_lag_items")
    if lag_sample > 0:  # only if the sync confirmation ran this soon
        assert one(after, "ghx_sync_lag_max_seconds") >= one(after, "ghx_sync_lag_avg_seconds") >= 0

    # Requests by route template and code: every create the sandbox answered, counted once, never a raw URL.
    requests = values(after, "ghx_harvest_requests_total")
    assert all(ROUTE.fullmatch(labels["route"]) for labels, _ in requests), requests
    counted = Counter({(lab["route"], lab["code"]): v for lab, v in requests if lab["method"] == "POST"})
    assert sent[("/v3/candidates", "201")] >= 1
    assert {k: v for k, v in counted.items() if k[1].startswith("2") and v} == dict(sent), (counted, sent)
    reads = sum(v for lab, v in requests if lab["method"] == "GET" and lab["code"] == "200")
    assert reads > 0
    assert one(after, "ghx_harvest_request_duration_seconds_count", method="POST", route="/v3/candidates") >= 1
    # The limiter: every send asked it; the main process's pacer released every item the producer parked.
    assert one(after, "ghx_limiter_wait_seconds_count") >= sum(v for _, v in requests)
    assert one(after, "ghx_items_released_total") >= CANDIDATES
    assert "no metrics endpoint" not in logs
