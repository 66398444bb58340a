"""The platform's HTTP API end to end, on real processes: ``ghexport api`` (uvicorn), two ``ghexport worker``
processes, the real PostgreSQL and Redis (this file's own database), the sandbox over HTTP with a window,
latency and read-back delay unlike the defaults, and receivers of the platform's callbacks on loopback ports.

- a tenant connects and exports 200 profiles over HTTP with an ``Idempotency-Key``; the same request again
  gives the same batch and records nothing new; per-profile status says exported, then synced;
- its callback receiver is down for the first two minutes: afterwards every event arrives (at least once,
  stable ids), exactly one ``item.exported`` and one ``item.synced`` per item and one ``batch.completed``,
  each signature verified with the standard library only (Standard Webhooks: HMAC-SHA256 over
  ``id.timestamp.body``, base64, ``v1,``);
- a receiver down past the retry schedule: its events end dead, ``ghexport callbacks list --state dead``
  shows them, and ``ghexport callbacks redeliver --dead`` delivers them once it is up.

Nothing is done by hand that production does by itself: the workers deliver, retry and dead-letter alone.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from producer.demo import sample_profiles
from shared.harvest.sandbox import Sandbox, SandboxConfig, SandboxServer, seed
from shared.settings import Settings
from tests.integration.live_api import api_ready, free_port
from tests.integration.workers_env import broker_db, stop_processes, worker_settings

GHEXPORT = str(Path(sys.executable).with_name("ghexport"))
BROKER_DB = 14
"""This file's Redis database: flushed before and after."""
PROFILES = 200
DOWN_S = 120.0
"""How long the first receiver stays down after the export starts."""
SCHEDULE_S = [1.0, 2.0, 5.0, 10.0, 20.0, 40.0, 60.0, 60.0]
"""The retry schedule of the first part: 198 s in all (with 10 % jitter, at least 178 s), more than the two
minutes down: an event may not go dead before its receiver is back."""
SHORT_SCHEDULE_S = [0.5, 0.5]
"""The second part's: a receiver down for a few seconds is past it."""


class Receiver:
    """The platform's callback endpoint: records every delivery (headers, raw body); started and stopped on
    one port, so the registered URL stays the same while it is down."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hooks"
        self.deliveries: list[tuple[dict[str, str], bytes]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._lock:
                    receiver.deliveries.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def events(self, secret: str) -> list[dict[str, Any]]:
        """Every delivery's event, each signature checked first (the standard library only)."""
        key = base64.b64decode(secret.removeprefix("whsec_"))
        with self._lock:
            deliveries = list(self.deliveries)
        out = []
        for headers, body in deliveries:
            msg_id, stamp = headers["webhook-id"], headers["webhook-timestamp"]
            signed = f"{msg_id}.{stamp}.".encode() + body
            expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
            offered = [s.split(",", 1)[1] for s in headers["webhook-signature"].split() if s.startswith("v1,")]
            assert any(hmac.compare_digest(expected, s) for s in offered), f"bad signature on {msg_id}"
            assert abs(time.time() - int(stamp)) < 600
            event = json.loads(body)
            out.append({"id": msg_id, **event})
        return out


def _cli(settings: Settings, *args: str) -> Any:
    env = {**os.environ, **settings.to_env()}
    done = subprocess.run([GHEXPORT, *args, "--json"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return json.loads(done.stdout)


@contextmanager
def _system(settings: Settings, tmp_path: Path, workers: int) -> Iterator[str]:
    """``ghexport api`` on a free port and ``workers`` workers, as the README starts them; yields the API's URL."""
    env = {**os.environ, **settings.to_env()}
    logs = []
    processes: list[subprocess.Popen[bytes]] = []

    def start(name: str, *args: str) -> Path:
        log = tmp_path / f"{name}.log"
        with open(log, "wb") as out:
            processes.append(
                subprocess.Popen(
                    [GHEXPORT, *args],
                    env=env,
                    cwd=tmp_path,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        logs.append(log)
        return log

    try:
        port = free_port()
        api_log = start("api", "api", "--port", str(port))
        for n in range(workers):
            start(f"worker{n}", "worker", "--concurrency", "4", "--loglevel", "INFO", "--hostname", f"w{n}@%h")
        url = f"http://127.0.0.1:{port}"
        _until(lambda: api_ready(url), 60, lambda: api_log.read_text(errors="replace"))
        yield url
    finally:
        stop_processes(processes, timeout_s=20)


def _until(done: Callable[[], bool], timeout_s: float, why: Callable[[], object]) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, why()
        time.sleep(0.5)


def _settings(db_url: str, postgres_schema_url: str, server: SandboxServer, schedule: list[float]) -> Settings:
    return worker_settings(
        db_url,
        postgres_schema_url,
        server,
        sync={"peak_window_s": 600, "offpeak_window_s": 600, "check_every_s": 2},
        callbacks={"schedule_s": schedule, "poll_s": 0.5},
    )


def _connect_main(http: httpx.Client, auth: dict[str, str]) -> None:
    """The tenant's connection ``main`` to the sandbox's credential, over HTTP."""
    made = http.post(
        "/v1/connections",
        json={"name": "main", "client_id": seed.CLIENT_ID, "client_secret": seed.CLIENT_SECRET,
              "user_email": seed.RECRUITER_EMAIL},
        headers=auth,
    )  # fmt: skip
    assert made.status_code == 201, made.text


def _tenant(settings: Settings, tenant: str) -> str:
    _cli(settings, "tenants", "create", tenant)
    return str(_cli(settings, "api-keys", "create", "--tenant", tenant)["key"])


def test_two_hundred_profiles_over_http_every_callback_after_two_minutes_down(
    redis_url: str, postgres_schema_url: str, tmp_path: Path
) -> None:
    db_url, broker = broker_db(redis_url, BROKER_DB)
    sandbox = Sandbox(SandboxConfig(rate_limit=250, window_s=8, latency_ms=10, visibility_delay_s=2.0))
    receiver = Receiver()
    with SandboxServer(sandbox) as server:
        settings = _settings(db_url, postgres_schema_url, server, SCHEDULE_S)
        key = _tenant(settings, "acme")
        with _system(settings, tmp_path, workers=2) as url, httpx.Client(base_url=url, timeout=60) as http:
            auth = {"Authorization": f"Bearer {key}"}
            hook = http.put("/v1/callbacks", json={"url": receiver.url}, headers=auth)
            assert hook.status_code == 200, hook.text
            secret = hook.json()["secret"]
            _connect_main(http, auth)
            body = "".join(json.dumps(p.snapshot()) + "\n" for p in sample_profiles(PROFILES, prefix="http"))
            params = {"connection": "main", "kind": "job", "job_id": seed.OPEN_JOB_ID}
            headers = {**auth, "Content-Type": "application/x-ndjson", "Idempotency-Key": "export-1"}
            started = time.monotonic()
            first = http.post("/v1/exports", params=params, content=body, headers=headers)
            assert first.status_code == 201, first.text
            batch_id = first.json()["batch_id"]
            assert first.json()["enqueued"] == PROFILES and not first.json()["replayed"]
            again = http.post("/v1/exports", params=params, content=body, headers=headers)
            assert again.status_code == 200, again.text
            assert again.json() == {**first.json(), "enqueued": 0, "replayed": True}
            other = http.post("/v1/exports", params=params, content=body[: body.rindex("{")], headers=headers)
            assert other.status_code == 409 and other.headers["content-type"].startswith("application/problem+json")

            def status() -> dict[str, Any]:
                return http.get(f"/v1/batches/{batch_id}", headers=auth).json()  # type: ignore[no-any-return]

            _until(lambda: status()["counts"] == {"synced": PROFILES}, 240, status)
            assert status()["total"] == PROFILES  # the replay recorded nothing
            pid = "http-00007"
            profile = http.get(f"/v1/connections/main/profiles/{pid}", headers=auth).json()
            assert profile["exported"] is True and profile["sync_state"] == "synced", profile
            assert profile["connection"] == "main"  # the tenant's own name, never the stored "acme:main"
            assert not receiver.deliveries  # still down
            time.sleep(max(0.0, DOWN_S - (time.monotonic() - started)))
            receiver.start()
            try:

                def arrived() -> bool:
                    ids = {e["id"] for e in receiver.events(secret)}
                    return len(ids) >= 2 * PROFILES + 1

                _until(arrived, 240, lambda: len(receiver.deliveries))
                time.sleep(3)  # anything more would be a duplicate: wait for it, then count
                events = receiver.events(secret)
            finally:
                receiver.stop()
            stored = _cli(settings, "callbacks", "list", "--tenant", "acme", "--limit", "1000")
    broker.flushdb()
    broker.close()

    by_id: dict[str, dict[str, Any]] = {}
    for e in events:
        assert by_id.setdefault(e["id"], e) == e  # a redelivery carries the same event under the same id
    kinds: dict[tuple[str, Any], list[str]] = {}
    for e in by_id.values():
        subject = e["data"].get("item_id", e["data"].get("batch_id"))
        kinds.setdefault((e["type"], subject), []).append(e["id"])
    assert sorted({t for t, _ in kinds}) == ["batch.completed", "item.exported", "item.synced"]
    assert all(len(ids) == 1 for ids in kinds.values()), [k for k, ids in kinds.items() if len(ids) > 1]
    assert len([k for k in kinds if k[0] == "item.exported"]) == PROFILES
    assert len([k for k in kinds if k[0] == "item.synced"]) == PROFILES
    assert kinds[("batch.completed", batch_id)]
    completed = by_id[kinds[("batch.completed", batch_id)][0]]
    assert completed["data"]["counts"]["exported"] + completed["data"]["counts"]["synced"] == PROFILES
    assert {e["data"]["connection"] for e in by_id.values()} == {"main"}
    assert all(e["data"]["batch_id"] == batch_id for e in by_id.values())
    # none lost: every event the store wrote was delivered, and the receiver got no other
    listed = stored["events"]
    assert {e["id"] for e in listed} == set(by_id)
    assert {e["state"] for e in listed} == {"delivered"}


def test_a_receiver_down_past_the_schedule_ends_dead_and_is_redelivered_by_command(
    redis_url: str, postgres_schema_url: str, tmp_path: Path
) -> None:
    db_url, broker = broker_db(redis_url, BROKER_DB)
    sandbox = Sandbox(SandboxConfig(rate_limit=90, window_s=12, latency_ms=10))
    receiver = Receiver()
    with SandboxServer(sandbox) as server:
        settings = _settings(db_url, postgres_schema_url, server, SHORT_SCHEDULE_S)
        key = _tenant(settings, "beta")
        with _system(settings, tmp_path, workers=1) as url, httpx.Client(base_url=url, timeout=60) as http:
            auth = {"Authorization": f"Bearer {key}"}
            secret = http.put("/v1/callbacks", json={"url": receiver.url}, headers=auth).json()["secret"]
            _connect_main(http, auth)
            profiles = [p.snapshot() for p in sample_profiles(3, prefix="dead")]
            created = http.post(
                "/v1/exports",
                json={
                    "connection": "main",
                    "target": {"kind": "job", "job_id": seed.OPEN_JOB_ID},
                    "profiles": profiles,
                },
                headers=auth,
            )
            assert created.status_code == 201, created.text

            def dead() -> list[dict[str, Any]]:
                return list(_cli(settings, "callbacks", "list", "--tenant", "beta", "--state", "dead")["events"])

            # 3 items exported, then read back (synced), and their batch completed: 7 events, every one dead
            _until(lambda: len(dead()) == 7, 120, lambda: _cli(settings, "callbacks", "list", "--tenant", "beta"))
            assert (
                sorted(e["type"] for e in dead()) == ["batch.completed"] + ["item.exported"] * 3 + ["item.synced"] * 3
            )
            dead_ids = {e["id"] for e in dead()}
            receiver.start()
            try:
                time.sleep(2)
                assert not receiver.deliveries  # dead stays dead until an operator says
                _cli(settings, "callbacks", "redeliver", "--tenant", "beta", "--dead")
                _until(lambda: {e["id"] for e in receiver.events(secret)} >= dead_ids, 60, lambda: receiver.deliveries)
            finally:
                receiver.stop()
            states = {e["id"]: e["state"] for e in _cli(settings, "callbacks", "list", "--tenant", "beta")["events"]}
            assert {states[i] for i in dead_ids} == {"delivered"}
    broker.flushdb()
    broker.close()


pytestmark = pytest.mark.timeout(600)
