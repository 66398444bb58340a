"""Greenhouse's webhooks in (``POST /v1/greenhouse/webhooks/{connection}``): a signed ``delete_candidate`` makes
the person ledger forget the record, each event is applied once, a bad signature changes nothing, and a later
export creates the person again (deleted) or links to the survivor (merged away, delivered by the sandbox over
HTTP)."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import uvicorn
from fastapi import FastAPI
from pydantic import SecretStr

from producer import api
from producer.web.app import create_app
from shared.connections.service import configure
from shared.connections.webhooks import receive_greenhouse_webhook, set_webhook_secret, signature_matches
from shared.errors import ConnectionNotFoundError, WebhookPayloadError, WebhookSignatureError
from shared.harvest.sandbox import seed as s
from shared.resources import Resources
from shared.store import ledger, people
from shared.store import sync as store_sync
from shared.store.models import GreenhouseEvent, ItemStatus
from shared.store.progress import RecordOrigin
from tests.unit.export_fixtures import Env, make_env, profile

SECRET = "whsec-test-0123456789"
PATH = "/v1/greenhouse/webhooks/acme"


def make_app(res: Resources) -> FastAPI:
    """The HTTP API as ``ghexport api`` serves it (every router, the middleware, the problem handlers)."""
    return create_app(res)


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """``app`` on a real loopback port (uvicorn in a thread), so the sandbox delivers over HTTP."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture
def env(sqlite_url: str) -> Iterator[Env]:
    e = make_env(sqlite_url)
    configure(e.engine, "acme", resume=False)  # no PDF to render: these tests are about the record
    set_webhook_secret(e.settings, e.engine, "acme", SecretStr(SECRET))
    yield e
    e.sandbox.close()
    e.res.close()


@pytest.fixture
def url(env: Env) -> Iterator[str]:
    """The route served over loopback HTTP for this test's store."""
    with serve(make_app(env.res)) as base:
        yield base


@pytest.fixture
def client(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url) as c:
        yield c


def delete_body(candidate_id: int, **extra: Any) -> bytes:
    """A ``delete_candidate`` body as Greenhouse sends it (payload shape of its docs)."""
    person = {"id": candidate_id, "first_name": "Ada", "deleted_application_ids": [], **extra}
    return json.dumps({"action": "delete_candidate", "payload": {"person": person}}).encode()


def signed(body: bytes, secret: str = SECRET, event_id: str = "evt-1") -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"Signature": f"sha256 {digest}", "Greenhouse-Event-ID": event_id, "Content-Type": "application/json"}


def export_one(env: Env, pid: str = "p-1", **batch: Any) -> int:
    """Export profile ``pid`` (a new batch) and return the Greenhouse candidate id it wrote to."""
    created = env.batch([profile(pid)], **batch)
    (item_id,) = created.to_enqueue
    env.export(item_id)
    item = env.item(item_id)
    assert item.status == ItemStatus.EXPORTED, item.error
    assert item.greenhouse_candidate_id is not None
    return item.greenhouse_candidate_id


def events(env: Env) -> int:
    with env.engine.connect() as conn:
        return int(conn.scalar(sa.select(sa.func.count()).select_from(GreenhouseEvent)) or 0)


# --- the route, signed by hand -----------------------------------------------------------------------------------


def test_a_signed_delete_candidate_forgets_the_record(env: Env, client: httpx.Client) -> None:
    cid = export_one(env)
    person = people.find_person(env.engine, env.conn.id, "p-1")
    assert person is not None and person.greenhouse_candidate_id == cid

    body = delete_body(cid)
    answer = client.post(PATH, content=body, headers=signed(body))

    assert answer.status_code == 200, answer.text
    assert answer.json() == {"event_id": "evt-1", "action": "delete_candidate", "applied": True, "duplicate": False}
    assert people.find_person(env.engine, env.conn.id, "p-1") is None
    status = api.profile_status(env.res, "acme", "p-1")
    assert status["exported"] is False and status["greenhouse_candidate_id"] is None
    assert status["record_deleted"] is True
    assert status["exports"][0]["record_deleted_at"] is not None
    (item,) = api.batch_status(env.res, status["exports"][0]["batch_id"])["items"]
    assert item["record_deleted_at"] is not None
    again = env.batch([profile("p-1")])  # no longer "already exported through this connection"
    assert again.skipped == 0 and len(again.to_enqueue) == 1


def test_the_same_event_twice_is_applied_once(env: Env, client: httpx.Client) -> None:
    cid = export_one(env)
    body = delete_body(cid)
    first = client.post(PATH, content=body, headers=signed(body, event_id="evt-42"))
    stamped = env.item(1).record_deleted_at
    second = client.post(PATH, content=body, headers=signed(body, event_id="evt-42"))

    assert first.status_code == second.status_code == 200
    assert first.json()["applied"] is True
    assert second.json() == {"event_id": "evt-42", "action": "delete_candidate", "applied": False, "duplicate": True}
    assert events(env) == 1
    assert stamped is not None and env.item(1).record_deleted_at == stamped


def test_without_an_event_id_the_body_identifies_the_event(env: Env, client: httpx.Client) -> None:
    cid = export_one(env)
    body = delete_body(cid)
    headers = {k: v for k, v in signed(body).items() if k != "Greenhouse-Event-ID"}
    assert client.post(PATH, content=body, headers=headers).json()["applied"] is True
    assert client.post(PATH, content=body, headers=headers).json()["duplicate"] is True


def _wrong_signature(body: bytes) -> tuple[str, bytes, dict[str, str]]:
    return PATH, body, signed(body, secret="not-the-secret")


def _tampered(body: bytes) -> tuple[str, bytes, dict[str, str]]:
    return PATH, body.replace(b'"Ada"', b'"Eve"'), signed(body)


def _reserialized(body: bytes) -> tuple[str, bytes, dict[str, str]]:
    pretty = json.dumps(json.loads(body), indent=2).encode()  # same JSON, other bytes
    return PATH, pretty, signed(body)


def _unsigned(body: bytes) -> tuple[str, bytes, dict[str, str]]:
    return PATH, body, {"Greenhouse-Event-ID": "evt-1"}


def _other_algorithm(body: bytes) -> tuple[str, bytes, dict[str, str]]:
    digest = hmac.new(SECRET.encode(), body, hashlib.sha1).hexdigest()
    return PATH, body, {"Signature": f"sha1 {digest}", "Greenhouse-Event-ID": "evt-1"}


def _unknown_connection(body: bytes) -> tuple[str, bytes, dict[str, str]]:
    return "/v1/greenhouse/webhooks/nobody", body, signed(body)


@pytest.mark.parametrize(
    "forge", [_wrong_signature, _tampered, _reserialized, _unsigned, _other_algorithm, _unknown_connection]
)
def test_a_bad_signature_gets_401_and_nothing_changes(
    env: Env, client: httpx.Client, forge: Callable[[bytes], tuple[str, bytes, dict[str, str]]]
) -> None:
    cid = export_one(env)
    path, body, headers = forge(delete_body(cid))

    answer = client.post(path, content=body, headers=headers)

    assert answer.status_code == 401
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["type"].endswith("/webhook-signature")
    person = people.find_person(env.engine, env.conn.id, "p-1")
    assert person is not None and person.greenhouse_candidate_id == cid
    assert env.item(1).record_deleted_at is None and events(env) == 0


def test_a_connection_without_a_webhook_secret_refuses_everything(env: Env, client: httpx.Client) -> None:
    assert ledger.set_webhook_secret(env.engine, "acme", "")
    body = delete_body(123)
    assert client.post(PATH, content=body, headers=signed(body)).status_code == 401


def test_other_actions_are_acknowledged_and_ignored(env: Env, client: httpx.Client) -> None:
    cid = export_one(env)
    body = json.dumps({"action": "update_candidate", "payload": {"candidate": {"id": cid}}}).encode()
    answer = client.post(PATH, content=body, headers=signed(body))
    assert answer.status_code == 200
    assert answer.json()["applied"] is False and answer.json()["duplicate"] is False
    assert people.find_person(env.engine, env.conn.id, "p-1") is not None and events(env) == 0


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[]", b'{"payload": {}}', b'{"action": "delete_candidate", "payload": {"person": {"id": "x"}}}'],
)
def test_a_signed_body_not_shaped_like_greenhouse_is_a_400(env: Env, client: httpx.Client, body: bytes) -> None:
    answer = client.post(PATH, content=body, headers=signed(body))
    assert answer.status_code == 400 and answer.json()["type"].endswith("/webhook-payload")
    assert events(env) == 0


def test_a_body_over_the_limit_is_refused_before_anything_is_read(env: Env, client: httpx.Client) -> None:
    body = b"x" * (env.settings.api.max_json_bytes + 1)
    assert client.post(PATH, content=body, headers=signed(body)).status_code == 413


def test_merge_candidate_forgets_the_record_merged_away_too(env: Env, client: httpx.Client) -> None:
    cid = export_one(env)
    person = {"id": cid, "new_candidate_id": s.EXISTING_CANDIDATE_ID}
    body = json.dumps({"action": "merge_candidate", "payload": {"person": person}}).encode()
    assert client.post(PATH, content=body, headers=signed(body)).json()["applied"] is True
    assert people.find_person(env.engine, env.conn.id, "p-1") is None


# --- the service and the ledger ---------------------------------------------------------------------------------


def test_the_service_raises_what_the_route_maps(env: Env) -> None:
    body = delete_body(5)
    with pytest.raises(WebhookSignatureError):
        receive_greenhouse_webhook(env.res, "acme", body, {"signature": "sha256 00"})
    with pytest.raises(WebhookPayloadError):
        receive_greenhouse_webhook(env.res, "acme", b"{}", signed(b"{}"))
    outcome = receive_greenhouse_webhook(env.res, "acme", body, {k.lower(): v for k, v in signed(body).items()})
    assert outcome.applied and outcome.candidate_id == 5 and outcome.people_forgotten == 0
    with pytest.raises(ConnectionNotFoundError):
        set_webhook_secret(env.settings, env.engine, "nobody")


def test_a_generated_secret_is_stored_encrypted_and_verifies(env: Env) -> None:
    secret = set_webhook_secret(env.settings, env.engine, "acme")
    target = ledger.webhook_target(env.engine, "acme")
    assert target is not None and secret.get_secret_value() not in target.secret_encrypted
    assert len(secret.get_secret_value()) >= 40
    body = delete_body(7)
    assert signature_matches(secret, body, signed(body, secret.get_secret_value())["Signature"].upper())


def test_forget_touches_only_the_connection_and_record_named(env: Env) -> None:
    cid = export_one(env)
    people.set_person_candidate(env.engine, env.conn.id, "p-other", cid + 1000)
    forgotten = ledger.forget_record(env.engine, env.conn.id + 1, cid)  # another connection: nothing
    assert forgotten == ledger.Forgotten(0, 0)
    assert ledger.forget_record(env.engine, env.conn.id, cid) == ledger.Forgotten(1, 1)
    assert people.find_person(env.engine, env.conn.id, "p-other") is not None


def test_the_read_back_stops_checking_an_item_whose_record_was_deleted(env: Env) -> None:
    cid = export_one(env)
    ledger.forget_record(env.engine, env.conn.id, cid)
    assert store_sync.schedule_new(env.engine, env.settings.sync) == 0
    far = env.clock.dt().replace(year=2100)
    assert store_sync.due_items(env.engine, far) == []


def test_an_event_rolls_back_with_its_change(env: Env) -> None:
    def broken(_conn: object) -> None:
        raise RuntimeError("change failed")

    with pytest.raises(RuntimeError):
        ledger.apply_greenhouse_event(env.engine, env.conn.id, "evt-x", "delete_candidate", broken)
    assert events(env) == 0
    assert ledger.apply_greenhouse_event(env.engine, env.conn.id, "evt-x", "delete_candidate") is True


# --- end to end: the sandbox fires, the route applies, the next export follows ---------------------------------


@pytest.fixture
def hooked(env: Env, url: str) -> Env:
    """The sandbox's ``delete_candidate`` webhook pointed at the route (the sandbox delivers over HTTP)."""
    env.sandbox.add_webhook("delete_candidate", f"{url}{PATH}", SECRET)
    return env


def delivered(env: Env) -> list[dict[str, Any]]:
    assert env.sandbox.wait_for_webhooks(10), env.sandbox.webhook_deliveries()
    deliveries = env.sandbox.webhook_deliveries()
    assert all(d["state"] == "delivered" for d in deliveries), deliveries
    return deliveries


def test_after_a_deletion_a_reexport_creates_a_new_record(hooked: Env) -> None:
    env = hooked
    first = export_one(env)

    env.sandbox.remove_candidate(first)  # a recruiter deletes the record in Greenhouse
    (delivery,) = delivered(env)
    assert delivery["payload"]["person"]["id"] == first
    assert people.find_person(env.engine, env.conn.id, "p-1") is None

    created = env.batch([profile("p-1")])
    assert created.skipped == 0
    (item_id,) = created.to_enqueue
    env.export(item_id)
    item = env.item(item_id)
    assert item.status == ItemStatus.EXPORTED
    assert item.greenhouse_candidate_id not in (None, first)
    assert item.progress.origin is RecordOrigin.CREATED and not item.linked_existing
    assert [c["id"] for c in env.candidates()] == [item.greenhouse_candidate_id]
    person = people.find_person(env.engine, env.conn.id, "p-1")
    assert person is not None and person.greenhouse_candidate_id == item.greenhouse_candidate_id
    status = api.profile_status(env.res, "acme", "p-1")
    assert status["exported"] is True and status["record_deleted"] is False
    assert status["greenhouse_candidate_id"] == item.greenhouse_candidate_id


def test_after_a_merge_a_reexport_links_to_the_survivor(hooked: Env) -> None:
    env = hooked
    merged_away = export_one(env)
    survivor = s.EXISTING_CANDIDATE_ID

    env.sandbox.merge(survivor, merged_away)  # the exported record is merged into one already there
    (delivery,) = delivered(env)
    assert delivery["action"] == "delete_candidate" and delivery["payload"]["person"]["id"] == merged_away
    assert people.find_person(env.engine, env.conn.id, "p-1") is None

    created = env.batch([profile("p-1")], job_id=s.OPEN_JOB_2_ID)
    assert created.skipped == 0
    (item_id,) = created.to_enqueue
    env.export(item_id)
    item = env.item(item_id)
    assert item.status == ItemStatus.EXPORTED, item.error
    assert item.greenhouse_candidate_id == survivor and item.linked_existing
    assert item.progress.origin is RecordOrigin.EMAIL_MATCH
    assert env.candidates() == []  # nothing created: the survivor got the application
    person = people.find_person(env.engine, env.conn.id, "p-1")
    assert person is not None and person.greenhouse_candidate_id == survivor
