"""The recorded figures (shared/metrics.py): route templates that never carry an id, an email or a query
value, and stay bounded; the transport's request counts, durations and 429s; the limiter's waits, throttles,
parks and releases; the export outcomes; and multiprocess mode, with forked children added up by the
endpoint's registry and a dead child's live gauge dropped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import fakeredis
import httpx
import pytest
from prometheus_client import REGISTRY
from pydantic import SecretStr

from shared import metrics
from shared.errors import HarvestConnectionError, RateLimitedError, ThrottledError
from shared.harvest.auth import Credential
from shared.harvest.client import HarvestClient
from shared.harvest.limiter import RedisRateLimiter
from shared.settings import HarvestSettings, LimiterSettings, Settings

HARVEST = "https://harvest.test"
TOKEN_URL = "https://auth.test/oauth/token"
CRED = Credential(client_id="cid", client_secret=SecretStr("s3cr3t-value"))


def sample(name: str, **labels: str) -> float:
    """The current value of one series in this process (0 when it has no value yet)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def requests(method: str, route: str, code: str) -> float:
    return sample("ghx_harvest_requests_total", method=method, route=route, code=code)


# --- route templates -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "route"),
    [
        ("/v3/candidates", "/v3/candidates"),
        ("/v3/candidates/", "/v3/candidates"),
        ("/v3/candidates/123456", "/v3/candidates/{id}"),
        ("/v3/candidates/0/merge", "/v3/candidates/{id}/merge"),
        ("/v3/candidates/ada.lovelace@example.com", "/v3/candidates/{id}"),
        ("/v3/candidates?email=ada@example.com&per_page=500", "/v3/candidates"),
        ("/v3/applied_candidate_tags", "/v3/applied_candidate_tags"),
        ("/v3/prospect_pools/77/prospect_pool_stages/9", "/v3/prospect_pools/{id}/prospect_pool_stages/{id}"),
        ("/v3/users/5f3c-ab12", "/v3/users/{id}"),
        ("/v3/users/Ada", "/v3/users/{id}"),
        ("/v3/jobs/v3", "/v3/jobs/{id}"),
        ("/oauth/token", "/oauth/token"),
        ("/", "/"),
        ("/v3/a/1/b/2/c/3/d/4", "/v3/a/{id}/b/{id}/c/...")
    ],
)  # fmt: skip
def test_a_route_is_a_template_without_ids_emails_or_query_values(path: str, route: str) -> None:
    assert metrics.route_template(path) == route


def test_routes_beyond_the_bound_are_counted_as_other(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "_routes", set())
    monkeypatch.setattr(metrics, "MAX_ROUTES", 3)
    seen = [metrics.route_label(f"/v3/{name}/1") for name in ("alpha", "beta", "gamma", "delta", "epsilon")]
    assert seen == ["/v3/alpha/{id}", "/v3/beta/{id}", "/v3/gamma/{id}", metrics.OTHER_ROUTE, metrics.OTHER_ROUTE]
    assert metrics.route_label("/v3/beta/99") == "/v3/beta/{id}"  # a known route keeps its own label


# --- the transport -----------------------------------------------------------------------------------------


def client(handler: httpx.MockTransport) -> HarvestClient:
    settings = Settings(harvest_url=HARVEST, harvest_token_url=TOKEN_URL, harvest=HarvestSettings(quick_retries=0))
    return HarvestClient(settings, CRED, http_client=httpx.Client(transport=handler), patient=False)


def answering(status: int, body: object, **headers: str) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        if str(request.url) == TOKEN_URL:
            return httpx.Response(200, json={"access_token": "tok", "expires_in": 3600})
        return httpx.Response(status, json=body, headers=headers)

    return httpx.MockTransport(handle)


def test_requests_are_counted_by_route_template_and_code_never_by_url() -> None:
    ok_before = requests("GET", "/v3/candidates", "200")
    durations_before = sample("ghx_harvest_request_duration_seconds_count", method="GET", route="/v3/candidates")

    found = client(answering(200, [])).find_candidates_by_email("ada.lovelace@example.com")

    assert found == []
    assert requests("GET", "/v3/candidates", "200") == ok_before + 1
    took = sample("ghx_harvest_request_duration_seconds_count", method="GET", route="/v3/candidates")
    assert took == durations_before + 1
    assert sample("ghx_harvest_requests_in_flight") == 0
    routes = {
        s.labels["route"]
        for family in REGISTRY.collect()
        if family.name.startswith("ghx_harvest")
        for s in family.samples
        if "route" in s.labels
    }
    assert "/v3/candidates" in routes
    assert not any("@" in r or "?" in r or "=" in r or r.startswith("/oauth") for r in routes), routes  # no mint


def test_a_429_is_counted_as_rate_limited_and_by_its_code() -> None:
    limited_before = sample("ghx_harvest_rate_limited_total")
    by_code_before = requests("GET", "/v3/jobs", "429")

    with pytest.raises(RateLimitedError):
        client(answering(429, {"message": "slow down"}, **{"Retry-After": "3"})).list_jobs()

    assert sample("ghx_harvest_rate_limited_total") == limited_before + 1
    assert requests("GET", "/v3/jobs", "429") == by_code_before + 1


def test_a_request_with_no_answer_is_counted_by_its_failure() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        if str(request.url) == TOKEN_URL:
            return httpx.Response(200, json={"access_token": "tok", "expires_in": 3600})
        raise httpx.ConnectError("refused", request=request)

    before = requests("GET", "/v3/sources", "connection_error")
    with pytest.raises(HarvestConnectionError):
        client(httpx.MockTransport(handle)).list_sources()
    assert requests("GET", "/v3/sources", "connection_error") == before + 1
    assert sample("ghx_harvest_requests_in_flight") == 0


# --- the limiter ---------------------------------------------------------------------------------------------


@pytest.fixture
def limiter() -> Iterator[RedisRateLimiter]:
    settings = LimiterSettings(requests=2, window_s=0.2, max_inline_wait_s=0.0)  # sends 0.1 s apart
    yield RedisRateLimiter(fakeredis.FakeRedis(), settings, sleep=time.sleep)


def test_limiter_waits_and_throttles_are_measured(limiter: RedisRateLimiter) -> None:
    waits_before = sample("ghx_limiter_wait_seconds_count")
    no_wait_before = sample("ghx_limiter_wait_seconds_bucket", le="0.0")
    throttled_before = sample("ghx_limiter_throttled_total")

    taken = 0
    with pytest.raises(ThrottledError):  # the burst goes at once, then a send would wait longer than allowed (0 s)
        while taken < 10:
            limiter.acquire("k")
            taken += 1
    limiter.acquire("k", max_wait_s=5.0)  # a command waits for its turn

    assert 1 <= taken < 10
    assert sample("ghx_limiter_wait_seconds_count") == waits_before + taken + 1
    assert sample("ghx_limiter_wait_seconds_bucket", le="0.0") == no_wait_before + taken  # the burst did not wait
    assert sample("ghx_limiter_throttled_total") == throttled_before + 1


def test_parks_and_releases_are_counted_and_the_parked_items_read_in_one_call(limiter: RedisRateLimiter) -> None:
    core_before = sample("ghx_items_parked_total", step="core")
    parts_before = sample("ghx_items_parked_total", step="parts")
    released_before = sample("ghx_items_released_total")

    limiter.park_many("k", [(1, 2), (2, 2), (3, 2)])
    limiter.park("other", 4, cost=3, enrichment=True)
    assert limiter.parked_count() == 4
    released = limiter.release("other")

    assert sample("ghx_items_parked_total", step="core") == core_before + 3
    assert sample("ghx_items_parked_total", step="parts") == parts_before + 1
    assert sample("ghx_items_released_total") == released_before + len(released)
    assert limiter.parked_count() == 4 - len(released)


# --- export outcomes -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "label"),
    [("exported", "exported"), ("RetryLater", "retry_later"), ("NotClaimed", "not_claimed"), ("Parked", "parked"),
     ("unavailable", "unavailable"), ("SomethingNew", "error")],
)  # fmt: skip
def test_export_outcomes_are_counted_under_a_bounded_label(given: str, label: str) -> None:
    before = sample("ghx_export_outcomes_total", outcome=label)
    metrics.count_export(given)
    assert sample("ghx_export_outcomes_total", outcome=label) == before + 1


def test_every_outcome_shows_before_its_first_event() -> None:
    shown = {
        s.labels["outcome"]
        for family in REGISTRY.collect()
        for s in family.samples
        if s.name == "ghx_export_outcomes_total"
    }
    assert shown == set(metrics.EXPORT_OUTCOMES)


# --- multiprocess mode -------------------------------------------------------------------------------------------

CHILDREN = textwrap.dedent(
    """
    import json, os, signal, sys, time
    from shared import metrics  # imported with PROMETHEUS_MULTIPROC_DIR set: multiprocess mode
    from shared.monitoring import ExportCollector, metrics_registry
    from prometheus_client import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    pids = []
    for n in range(3):  # three "pool children", each exporting n + 1 items
        pid = os.fork()
        if pid == 0:
            for _ in range(n + 1):
                metrics.count_export("exported")
                metrics.observe_request("POST", "/v3/candidates", 201, 0.2)
            if n == 2:  # this one is killed mid-request: its in-flight gauge stays behind
                metrics.HARVEST_IN_FLIGHT.inc()
                os.kill(os.getpid(), signal.SIGKILL)
            if n == 1:  # this one is still working on a request when scraped
                metrics.HARVEST_IN_FLIGHT.inc()
                time.sleep(30)
            os._exit(0)
        pids.append(pid)
    for pid in (pids[0], pids[2]):
        os.waitpid(pid, 0)
    metrics.mark_dead(pids[0])  # a child that ended properly says so
    time.sleep(0.2)
    registry = metrics_registry(ExportCollector(None, role="worker"), os.environ["PROMETHEUS_MULTIPROC_DIR"])
    text = generate_latest(registry)
    values = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text.decode())
        for s in f.samples
    }
    os.kill(pids[1], signal.SIGKILL)
    files = os.listdir(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    print(json.dumps({"values": [[n, dict(l), v] for (n, l), v in values.items()], "files": files, "pids": pids}))
    """
)


def test_forked_children_are_added_up_and_a_dead_childs_live_gauge_dropped(tmp_path: Path) -> None:
    env = {**os.environ, metrics.MULTIPROC_ENV: str(tmp_path)}
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", CHILDREN], env=env, cwd=root, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    values = {(name, tuple(sorted(labels.items()))): value for name, labels, value in out["values"]}

    assert values[("ghx_export_outcomes_total", (("outcome", "exported"),))] == 1 + 2 + 3
    created = ("ghx_harvest_requests_total", (("code", "201"), ("method", "POST"), ("route", "/v3/candidates")))
    assert values[created] == 1 + 2 + 3
    assert values[("ghx_harvest_requests_in_flight", ())] == 1  # the live child's; the killed one's is swept
    assert values[("ghx_exporter_info", (("role", "worker"),))] == 1
    ended, working, killed = out["pids"]
    live = {name for name in out["files"] if name.startswith("gauge_livesum_")}
    assert f"gauge_livesum_{working}.db" in live
    assert not live & {f"gauge_livesum_{ended}.db", f"gauge_livesum_{killed}.db"}  # ended, killed: both gone


def test_multiprocess_env_gives_children_a_fresh_directory_and_removes_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(metrics.MULTIPROC_ENV, raising=False)
    with metrics.multiprocess_env(enabled=False) as nothing:
        assert nothing is None and metrics.MULTIPROC_ENV not in os.environ
    with metrics.multiprocess_env(enabled=True) as path:
        assert path is not None and os.path.isdir(path) and os.environ[metrics.MULTIPROC_ENV] == path
    assert not os.path.exists(path) and metrics.MULTIPROC_ENV not in os.environ


def test_an_operators_directory_is_used_as_is(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    given = tmp_path / "mine"
    monkeypatch.setenv(metrics.MULTIPROC_ENV, str(given))
    with metrics.multiprocess_env(enabled=True) as path:
        assert path == str(given) and given.is_dir()
        (given / "counter_1.db").write_bytes(b"")
    assert (given / "counter_1.db").exists() and os.environ[metrics.MULTIPROC_ENV] == str(given)
