"""The callback events over HTTP (``/v1/callbacks/events``, redeliver one, redeliver the dead): a tenant sees and
redelivers its own events only (another tenant's event is 404, and stays as it was); an admin key sees every
tenant's, or one tenant's with ``X-Tenant``."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import SecretStr
from starlette.exceptions import StarletteDeprecationWarning

from producer.web.app import create_app
from shared.connections import tenancy
from shared.connections.crypto import generate_key
from shared.resources import Resources
from shared.settings import Settings
from shared.store import outbox
from shared.store.db import open_store
from shared.store.models import OutboxEvent, OutboxState
from tests.outbox_fixtures import World

with warnings.catch_warnings():  # Starlette asks for its httpx fork for the TestClient; plain httpx works
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient


@dataclass
class Api:
    world: World
    client: TestClient
    keys: dict[str, str]
    events: dict[str, list[str]]

    def get(self, path: str, who: str, **headers: str) -> Any:
        return self.client.get(path, headers={"Authorization": f"Bearer {self.keys[who]}", **headers})

    def post(self, path: str, who: str, **headers: str) -> Any:
        return self.client.post(path, headers={"Authorization": f"Bearer {self.keys[who]}", **headers})

    def state(self, event_id: str) -> OutboxState:
        (event,) = outbox.get_events(self.world.engine, [event_id])
        return event.state


@pytest.fixture
def api(sqlite_url: str) -> Iterator[Api]:
    key = SecretStr(generate_key())
    settings = Settings(_env_file=None, database_url=sqlite_url, secret_key=key)  # type: ignore[call-arg]
    engine = open_store(sqlite_url)
    world = World(engine, key)
    res = Resources(settings, engine=engine, patient=False)
    keys: dict[str, str] = {}
    events: dict[str, list[str]] = {}
    for tenant in ("alpha", "beta"):
        world.tenant(tenant, f"https://{tenant}.example/hooks")
        items = world.batch(f"b-{tenant}", world.connection(f"{tenant}:conn", tenant), ["sending"] * 2, tenant)
        world.set_status(items, "exported")
        keys[tenant] = tenancy.create_api_key(engine, tenant_id=tenant, name="test").key.get_secret_value()
        events[tenant] = sorted(e.id for e in outbox.list_events(engine, tenant_id=tenant))
    keys["admin"] = tenancy.create_api_key(engine, tenant_id=None, name="ops").key.get_secret_value()
    with engine.begin() as conn:  # every event dead: the receivers were down for 15 hours
        conn.execute(sa.update(OutboxEvent).values(state="dead", attempts=8, last_error="HTTP 503"))
    with TestClient(create_app(res)) as client:
        yield Api(world, client, keys, events)
    engine.dispose()


def test_a_tenant_lists_its_own_events(api: Api) -> None:
    response = api.get("/v1/callbacks/events", "alpha")
    assert response.status_code == 200, response.text
    listed = response.json()["events"]
    assert [e["id"] for e in listed] == sorted(api.events["alpha"], reverse=True)
    first = listed[0]
    assert first["tenant_id"] == "alpha" and first["state"] == "dead" and first["attempts"] == 8
    assert first["last_error"] == "HTTP 503" and first["next_attempt_at"] is None
    assert first["payload"]["type"] == "item.exported" and first["payload"]["data"]["connection"] == "conn"
    assert api.get("/v1/callbacks/events?state=pending", "alpha").json() == {"events": []}
    assert api.get("/v1/callbacks/events?state=nonsense", "alpha").status_code == 422


def test_another_tenants_event_is_404_and_stays_as_it_was(api: Api) -> None:
    theirs = api.events["alpha"][0]
    for response in (
        api.get(f"/v1/callbacks/events/{theirs}", "beta"),
        api.post(f"/v1/callbacks/events/{theirs}/redeliver", "beta"),
        api.get(f"/v1/callbacks/events/{theirs}", "beta", **{"X-Tenant": "beta"}),
    ):
        assert response.status_code == 404, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert "alpha" not in response.json()["detail"]
    assert api.state(theirs) is OutboxState.DEAD
    assert api.get("/v1/callbacks/events", "beta", **{"X-Tenant": "alpha"}).status_code == 404
    # the owner reaches it
    assert api.get(f"/v1/callbacks/events/{theirs}", "alpha").json()["id"] == theirs


def test_redeliver_one_event_or_every_dead_one_of_the_tenant(api: Api) -> None:
    one, other = api.events["alpha"]
    response = api.post(f"/v1/callbacks/events/{one}/redeliver", "alpha")
    assert response.status_code == 202, response.text
    doc = response.json()
    assert doc["id"] == one and doc["state"] == "pending" and doc["attempts"] == 0 and doc["next_attempt_at"]
    dead = api.post("/v1/callbacks/redeliver", "beta")
    assert dead.status_code == 202 and dead.json() == {"redelivered": api.events["beta"]}
    assert api.state(other) is OutboxState.DEAD, "beta's redelivery leaves alpha's events alone"
    assert api.post("/v1/callbacks/events/msg_nope/redeliver", "alpha").status_code == 404


def test_the_admin_sees_every_tenant_or_the_one_it_names(api: Api) -> None:
    everything = api.get("/v1/callbacks/events", "admin").json()["events"]
    assert {e["tenant_id"] for e in everything} == {"alpha", "beta"}
    alpha = api.get("/v1/callbacks/events", "admin", **{"X-Tenant": "alpha"}).json()["events"]
    assert {e["tenant_id"] for e in alpha} == {"alpha"}
    redone = api.post("/v1/callbacks/redeliver", "admin", **{"X-Tenant": "beta"}).json()
    assert redone == {"redelivered": api.events["beta"]}
    assert api.state(api.events["alpha"][0]) is OutboxState.DEAD


def test_without_a_key_401(api: Api) -> None:
    assert api.client.get("/v1/callbacks/events").status_code == 401
    assert api.client.post("/v1/callbacks/redeliver").status_code == 401
