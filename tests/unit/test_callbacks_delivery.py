"""Delivery of the callbacks to a real local HTTP receiver (``http.server`` in a thread), by the delivery thread
the workers start: signatures checked with the standard library alone, retries with the same event id, the
dead letters and their redelivery by command, and a hanging receiver that never holds back another tenant."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

import producer.cli_base as cli
from producer.cli import app, register_commands
from shared import metrics
from shared.connections.crypto import generate_key
from shared.resources import Resources
from shared.settings import CallbackSettings, Settings
from shared.store import outbox
from shared.store.db import open_store
from shared.store.models import OutboxState, utcnow
from tests.outbox_fixtures import World
from workers.callbacks import CallbackDelivery, failure_reason

runner = CliRunner()


# --- the receiver --------------------------------------------------------------------------------------


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A platform's callback endpoint: records every request, answers from ``codes`` (then 200), and may
    hang each request until ``release`` is set."""

    server: ThreadingHTTPServer
    codes: list[int] = field(default_factory=list)
    hang: bool = False
    release: threading.Event = field(default_factory=threading.Event)
    got: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    def answer(self, received: Received) -> int:
        with self.lock:
            self.got.append(received)
            code = self.codes.pop(0) if self.codes else 200
        if self.hang:
            self.release.wait(30)
        return code

    def ids(self) -> list[str]:
        with self.lock:
            return [r.headers["webhook-id"] for r in self.got]


def start_receiver(port: int = 0, **options: Any) -> Receiver:
    holder: list[Receiver] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            code = holder[0].answer(Received({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(code)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    receiver = Receiver(server, **options)
    holder.append(receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return receiver


def stop_receiver(receiver: Receiver) -> None:
    receiver.release.set()
    receiver.server.shutdown()
    receiver.server.server_close()


@pytest.fixture
def receivers() -> Iterator[list[Receiver]]:
    started: list[Receiver] = []
    yield started
    for r in started:
        stop_receiver(r)


def verifies(secret: str, received: Received, tolerance_s: float = 300) -> bool:
    """The Standard Webhooks check, with the standard library only: HMAC-SHA256 under the base64-decoded part
    of the secret after ``whsec_``, over ``{id}.{timestamp}.{body}``, in ``webhook-signature`` as ``v1,<base64>``
    (space-separated versions), and a timestamp near now."""
    h = received.headers
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{h['webhook-id']}.{h['webhook-timestamp']}.".encode() + received.body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    fresh = abs(time.time() - int(h["webhook-timestamp"])) < tolerance_s
    given = [s.partition(",") for s in h["webhook-signature"].split(" ")]
    return fresh and any(v == "v1" and hmac.compare_digest(sig, expected) for v, _, sig in given)


# --- the store and the delivery thread -----------------------------------------------------------------


@dataclass
class Env:
    world: World
    res: Resources
    delivery: CallbackDelivery | None = None

    def deliver(self, **callbacks: Any) -> CallbackDelivery:
        """Start the delivery thread as the workers do (stopped by the fixture)."""
        settings = self.res.settings.model_copy(
            update={"callbacks": self.res.settings.callbacks.model_copy(update=callbacks)}
        )
        self.delivery = CallbackDelivery(Resources(settings, engine=self.world.engine, patient=False))
        self.delivery.start()
        return self.delivery

    def emit(self, tenant: str, url: str | None, n: int) -> tuple[str, list[str]]:
        """A tenant with ``url``, ``n`` items of it just exported; its secret and its events' ids."""
        secret = self.world.tenant(tenant, url)
        items = self.world.batch(
            f"b-{tenant}", self.world.connection(f"{tenant}:acme", tenant), ["sending"] * n, tenant
        )
        self.world.set_status(items, "exported")
        return secret, sorted(e.id for e in outbox.list_events(self.world.engine, tenant_id=tenant))

    def states(self, tenant: str | None = None) -> dict[str, int]:
        return outbox.counts_by_state(self.world.engine, tenant_id=tenant)


@pytest.fixture
def env(sqlite_url: str) -> Iterator[Env]:
    key = SecretStr(generate_key())
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]  # pydantic-settings' init option, unseen by mypy
        database_url=sqlite_url,
        secret_key=key,
        callbacks=CallbackSettings(schedule_s=[0.2, 0.2], poll_s=0.05, timeout_s=5.0, connect_timeout_s=1.0),
    )
    engine = open_store(sqlite_url)
    env = Env(World(engine, key), Resources(settings, engine=engine, patient=False))
    yield env
    if env.delivery is not None:
        env.delivery.stop(timeout_s=1.0)
    engine.dispose()


def wait_for(what: Callable[[], bool], timeout_s: float = 15.0, say: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while not what():
        assert time.monotonic() < deadline, f"timed out waiting for {say or what}"
        time.sleep(0.02)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sample(name: str, **labels: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0


# --- tests ---------------------------------------------------------------------------------------------


def test_signed_callbacks_arrive_and_verify_with_the_standard_library(env: Env, receivers: list[Receiver]) -> None:
    receiver = start_receiver()
    receivers.append(receiver)
    secret, ids = env.emit("t1", receiver.url, 5)
    delivered_before = sample("ghx_callbacks_delivered_total")
    env.deliver()

    wait_for(lambda: env.states("t1")["delivered"] == 5, say="5 delivered")
    assert sorted(receiver.ids()) == ids
    stored = {e.id: e for e in outbox.list_events(env.world.engine)}
    for got in receiver.got:
        assert verifies(secret, got), got.headers
        assert not verifies(secret.replace(secret[-4:], "AAA="), got), "a wrong secret must not verify"
        assert got.headers["content-type"] == "application/json"
        doc = json.loads(got.body)
        assert doc == stored[got.headers["webhook-id"]].payload and doc["type"] == "item.exported"
    assert all(e.attempts == 1 and e.delivered_at is not None for e in stored.values())
    assert sample("ghx_callbacks_delivered_total") - delivered_before == 5


def test_a_receiver_answering_500_then_200_gets_the_event_again_with_the_same_id(
    env: Env, receivers: list[Receiver]
) -> None:
    receiver = start_receiver(codes=[500])
    receivers.append(receiver)
    secret, (event_id,) = env.emit("t1", receiver.url, 1)
    failures_before = sample("ghx_callback_failures_total", reason="http_5xx")
    env.deliver()

    wait_for(lambda: env.states()["delivered"] == 1, say="delivered once the receiver answers 200")
    first, second = receiver.got
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == event_id
    assert first.body == second.body and verifies(secret, first) and verifies(secret, second)
    (event,) = outbox.list_events(env.world.engine)
    assert event.attempts == 2 and event.last_error == "HTTP 500"
    assert sample("ghx_callback_failures_total", reason="http_5xx") - failures_before == 1


def test_a_receiver_down_past_the_schedule_ends_dead_and_the_redeliver_command_delivers(
    env: Env, receivers: list[Receiver], monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()  # nothing listens there yet: connection refused
    secret, ids = env.emit("t1", f"http://127.0.0.1:{port}/hooks", 3)
    env.deliver()
    wait_for(lambda: env.states()["dead"] == 3, say="3 dead after the schedule")
    for event in outbox.list_events(env.world.engine):
        assert event.attempts == 3 and event.last_error and event.last_error.startswith("ConnectError")

    monkeypatch.setattr(cli, "_resources", env.res)
    if not any(g.name == "callbacks" for g in app.registered_groups):
        register_commands()
    listed = runner.invoke(app, ["callbacks", "list", "--state", "dead", "--tenant", "t1", "--json"])
    assert listed.exit_code == 0, listed.output
    assert sorted(e["id"] for e in json.loads(listed.stdout)["events"]) == ids

    assert outbox.due_tenants(env.world.engine) == [], "a dead event is not retried on its own"
    receiver = start_receiver(port)  # the receiver is up again
    receivers.append(receiver)
    done = runner.invoke(app, ["callbacks", "redeliver", "--dead", "--json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout) == {"redelivered": ids}

    wait_for(lambda: env.states()["delivered"] == 3, say="redelivered")
    assert sorted(receiver.ids()) == ids and all(verifies(secret, r) for r in receiver.got)


def test_the_redeliver_command_names_what_it_cannot_find(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "_resources", env.res)
    monkeypatch.setattr(cli.console, "width", 250)  # the table unwrapped, so cells can be asserted
    if not any(g.name == "callbacks" for g in app.registered_groups):
        register_commands()
    _, ids = env.emit("t1", "http://127.0.0.1:9/hooks", 1)
    env.emit("t2", "http://127.0.0.1:9/hooks", 1)
    wrong = runner.invoke(app, ["callbacks", "redeliver", "--id", ids[0], "--tenant", "t2"])
    assert wrong.exit_code == 1 and f"no callback event of tenant t2: {ids[0]}" in wrong.stderr
    neither = runner.invoke(app, ["callbacks", "redeliver"])
    assert neither.exit_code == 1 and "--id ID (repeatable) or --dead" in neither.stderr
    ok = runner.invoke(app, ["callbacks", "redeliver", "--id", ids[0], "--json"])
    assert ok.exit_code == 0 and json.loads(ok.stdout) == {"redelivered": ids}
    table = runner.invoke(app, ["callbacks", "list"])
    assert table.exit_code == 0 and "item.exported" in table.stdout


def test_a_hanging_receiver_never_holds_back_another_tenant(env: Env, receivers: list[Receiver]) -> None:
    slow = start_receiver(hang=True)
    fast = start_receiver()
    receivers += [slow, fast]
    env.emit("slow", slow.url, 4)
    _, fast_ids = env.emit("fast", fast.url, 6)
    delivery = env.deliver(concurrency=3, per_tenant=2)

    wait_for(lambda: env.states("fast")["delivered"] == 6, timeout_s=5, say="the other tenant's events")
    wait_for(lambda: len(slow.got) == 2, timeout_s=5, say="the slow tenant's first two requests")
    assert len(slow.got) == 2, "a tenant holds at most per_tenant slots"
    assert delivery.in_flight() == 2
    slow.release.set()
    wait_for(lambda: env.states("slow")["delivered"] == 4, say="the slow tenant's events, once it answers")
    assert sorted(fast.ids()) == fast_ids


def test_a_tenant_without_a_callback_url_any_more_fails_its_attempts(env: Env) -> None:
    env.emit("t1", "https://platform.example/hooks", 1)
    env.world.set_url("t1", None)
    env.deliver()
    wait_for(lambda: env.states()["dead"] == 1, say="dead")
    (event,) = outbox.list_events(env.world.engine)
    assert event.last_error == "tenant t1 has no callback URL" and event.state is OutboxState.DEAD
    assert event.next_attempt_at <= utcnow()


@pytest.mark.parametrize(
    ("status", "reason"),
    [(302, "http_other"), (400, "http_4xx"), (410, "http_4xx"), (500, "http_5xx"), (503, "http_5xx")],
)
def test_failure_reasons(status: int, reason: str) -> None:
    assert failure_reason(status) == reason
    assert reason in metrics.CALLBACK_FAILURE_REASONS
