"""The HTTP API through FastAPI's TestClient, over the sandbox (MockTransport), SQLite, fakeredis and the
in-memory broker: API keys (401 for a missing, unknown or revoked one), tenant isolation over every route
(another tenant's resource is 404), idempotent exports, NDJSON streamed with bad lines reported, problem
details naming the field, size limits, the OpenAPI document, the partner consent's redirect, the CLI."""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import sqlalchemy as sa
from pydantic import SecretStr
from starlette.exceptions import StarletteDeprecationWarning
from typer.testing import CliRunner

from producer.web.app import create_app
from shared.connections import tenancy
from shared.connections.crypto import decrypt_secret
from shared.connections.service import connect
from shared.harvest.sandbox import seed as s
from shared.settings import ApiSettings
from shared.store.models import ApiKey, Batch, Connection, Item, Tenant
from tests.unit.export_fixtures import Env, drain_broker, make_env, profile

with warnings.catch_warnings():
    # Starlette 1.x asks for its `httpx2` fork for the TestClient and warns on plain httpx (which it still uses
    # as is); the project pins httpx, and the test client's transport is all this needs of it.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

PROBLEM = "application/problem+json"
NDJSON = "application/x-ndjson"


@dataclass
class Api:
    """An app over one export world: tenants ``alpha`` (connection ``a-conn``) and ``beta`` (``b-conn``),
    a key for each, and a platform-admin key."""

    env: Env
    client: TestClient
    alpha: str
    beta: str
    admin: str

    def as_(self, key: str, **headers: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}", **headers}

    def rows(self, table: Any) -> int:
        with self.env.engine.connect() as conn:
            return int(conn.scalar(sa.select(sa.func.count()).select_from(table)) or 0)

    def export(self, key: str, ids: list[str], *, connection: str = "a-conn", **headers: str) -> Any:
        body = {
            "connection": connection,
            "target": {"kind": "job", "job_id": s.OPEN_JOB_ID},
            "profiles": [profile(pid).snapshot() for pid in ids],
        }
        return self.client.post("/v1/exports", json=body, headers=self.as_(key, **headers))


def tenant_connection(env: Env, tenant: str, name: str) -> None:
    connect(
        env.settings,
        env.engine,
        name=f"{tenant}:{name}",
        client_id=s.CLIENT_ID,
        client_secret=SecretStr(s.CLIENT_SECRET),
        user_email=s.RECRUITER_EMAIL,
        enable_pools=True,
        tenant_id=tenant,
        http_client=env.http,
    )


def build(sqlite_url: str, **api: Any) -> Iterator[Api]:
    env = make_env(sqlite_url)
    env.settings.api = ApiSettings(public_url="http://api.test", **api)
    env.settings.harvest_authorize_url = "http://sandbox.test/authorize"
    env.settings.harvest_introspect_url = "http://sandbox.test/introspect"
    keys = {}
    for tenant, conn in (("alpha", "a-conn"), ("beta", "b-conn")):
        tenancy.create_tenant(env.engine, tenant, tenant.title())
        tenant_connection(env, tenant, conn)
        keys[tenant] = tenancy.create_api_key(env.engine, tenant_id=tenant, name="test").key.get_secret_value()
    admin = tenancy.create_api_key(env.engine, tenant_id=None, name="ops").key.get_secret_value()
    with TestClient(create_app(env.res)) as client:
        yield Api(env, client, keys["alpha"], keys["beta"], admin)
    drain_broker(env)
    env.res.close()


@pytest.fixture
def api(sqlite_url: str) -> Iterator[Api]:
    yield from build(sqlite_url)


def assert_problem(response: Any, status: int, slug: str | None = None) -> dict[str, Any]:
    """The response is a problem details document of ``status`` (and ``slug``); returns it."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    doc: dict[str, Any] = response.json()
    assert doc["status"] == status and doc["title"] and doc["detail"]
    assert doc["type"].startswith("https://greenhouse-export.dev/problems/")
    if slug is not None:
        assert doc["type"].endswith("/" + slug), doc
    return doc


# --- authentication -------------------------------------------------------------------------------------------


def test_health_needs_no_key_and_ready_checks_store_and_broker(api: Api) -> None:
    assert api.client.get("/v1/health").json() == {"status": "ok"}
    ready = api.client.get("/v1/ready")
    assert ready.status_code == 200 and ready.json() == {"status": "ready", "checks": {"store": "ok", "broker": "ok"}}


def test_ready_answers_503_naming_the_store_when_it_fails(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    from producer.web import health

    def broken(_res: Any) -> None:
        raise sa.exc.OperationalError("SELECT 1", {}, Exception("database is down"))

    monkeypatch.setattr(health, "store_ping", broken)
    doc = assert_problem(api.client.get("/v1/ready"), 503, "not-ready")
    assert doc["checks"] == {"store": "StoreUnavailableError", "broker": "ok"}


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer ", "Bearer not-a-key", "Basic dXNlcjpwdw==", "Bearer ghx_abcdefgh_" + "x" * 43],
    ids=["missing", "empty", "malformed", "other-scheme", "unknown"],
)
def test_without_a_valid_key_every_route_answers_401(api: Api, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    for method, path in [("GET", "/v1/connections"), ("GET", "/v1/batches/x"), ("POST", "/v1/exports")]:
        doc = assert_problem(api.client.request(method, path, headers=headers), 401, "unauthorized")
        assert "API key" in doc["detail"]


def test_a_revoked_key_gets_401_at_once_and_use_is_recorded(api: Api) -> None:
    assert api.client.get("/v1/connections", headers=api.as_(api.alpha)).status_code == 200
    prefix = tenancy.key_prefix(api.alpha)
    assert prefix is not None
    with api.env.engine.connect() as conn:
        used = conn.execute(sa.select(ApiKey.last_used_at).where(ApiKey.prefix == prefix)).scalar_one()
    assert used is not None
    tenancy.revoke_api_key(api.env.engine, prefix, tenant_id="alpha")
    assert_problem(api.client.get("/v1/connections", headers=api.as_(api.alpha)), 401, "unauthorized")


def test_keys_are_stored_as_hashes_and_compared_whole(api: Api) -> None:
    with api.env.engine.connect() as conn:
        stored = [tuple(r) for r in conn.execute(sa.select(ApiKey.prefix, ApiKey.key_hash))]
    assert all(api.alpha not in row and api.admin not in row for row in stored)
    assert (api.alpha[:12], tenancy.hash_api_key(api.alpha)) in stored
    forged = api.alpha[:-1] + ("a" if api.alpha[-1] != "a" else "b")  # right prefix, wrong secret
    assert_problem(api.client.get("/v1/connections", headers=api.as_(forged)), 401)


# --- tenant isolation --------------------------------------------------------------------------------------------


def alpha_batch(api: Api) -> str:
    response = api.export(api.alpha, ["p-1"])
    assert response.status_code == 201, response.text
    return str(response.json()["batch_id"])


def alpha_event(api: Api) -> str:
    """A callback event of tenant alpha (its connection reconnected), as the store emits it."""
    from shared.store import outbox

    tenancy.register_callback(api.env.settings, api.env.engine, "alpha", "https://alpha.example/hooks")
    conn_id = tenancy.tenant_connection(api.env.engine, "alpha", "a-conn").id
    with api.env.engine.begin() as conn:
        outbox.emit_connection_event(conn, conn_id, "connection.reconnected", {})
    (event,) = outbox.list_events(api.env.engine, tenant_id="alpha")
    return event.id


# (method, path, JSON body or NDJSON text): each names a resource of tenant alpha; beta's key must get 404.
ISOLATION_CASES: list[tuple[str, str, Any]] = [
    ("GET", "/v1/tenants/alpha", None),
    ("GET", "/v1/connections/a-conn", None),
    ("DELETE", "/v1/connections/a-conn", None),
    ("GET", "/v1/connections/a-conn/jobs", None),
    ("GET", "/v1/connections/a-conn/pools", None),
    ("PUT", "/v1/connections/a-conn/greenhouse-webhook", {"secret": "s3cret-value"}),
    ("GET", "/v1/connections/a-conn/profiles/p-1", None),
    ("GET", "/v1/batches/{batch}", None),
    ("GET", "/v1/batches/{batch}/progress", None),
    ("POST", "/v1/batches/{batch}/retry", {"force": True}),
    ("POST", "/v1/exports", {"connection": "a-conn", "target": {"kind": "job", "job_id": s.OPEN_JOB_ID}}),
    ("POST", "/v1/exports?connection=a-conn&kind=prospect", "ndjson"),
    ("GET", "/v1/connections", "x-tenant"),  # naming another tenant in X-Tenant
    ("GET", "/v1/callbacks/events/{event}", None),
    ("POST", "/v1/callbacks/events/{event}/redeliver", None),
]
NOT_TENANT_SCOPED = {
    ("GET", "/v1/health"),
    ("GET", "/v1/ready"),
    ("GET", "/v1/partner/consent-callback"),  # no key: the consent's state is the proof
    ("POST", "/v1/greenhouse/webhooks/{connection}"),  # no key: Greenhouse's signature is the proof
    ("POST", "/v1/tenants"),  # admin only: 403 for any tenant key
    ("GET", "/v1/tenants"),
    ("POST", "/v1/api-keys"),
    ("GET", "/v1/api-keys"),
    ("DELETE", "/v1/api-keys/{prefix}"),
    ("POST", "/v1/connections"),  # creates in the caller's own tenant
    ("POST", "/v1/connections/partner"),
    ("GET", "/v1/connections"),  # lists the caller's own (and X-Tenant: see the last case)
    ("PUT", "/v1/callbacks"),  # the caller's own tenant
    ("GET", "/v1/callbacks"),
    ("DELETE", "/v1/callbacks"),
    ("GET", "/v1/callbacks/events"),  # the caller's own events
    ("POST", "/v1/callbacks/redeliver"),  # the caller's own dead events
}


def test_every_route_is_in_the_isolation_table(api: Api) -> None:
    """A new route fails here until it is given an isolation case (or said to be not tenant-scoped)."""
    paths = api.client.get("/openapi.json").json()["paths"]
    routes = {(method.upper(), path) for path, item in paths.items() for method in item}
    assert len(routes) > 20
    covered = {
        (m, p.split("?")[0].replace("{batch}", "{batch_id}").replace("{event}", "{event_id}"))
        for m, p, _ in ISOLATION_CASES
    }
    covered = {(m, p.replace("/a-conn", "/{name}").replace("/p-1", "/{profile_id}")) for m, p in covered}
    covered = {(m, p.replace("/alpha", "/{tenant_id}")) for m, p in covered}
    assert routes - covered - NOT_TENANT_SCOPED == set()


NOWHERE = {"batch": "0" * 32, "event": "msg_" + "0" * 26}
"""Ids of resources that exist nowhere."""


def isolation_request(api: Api, method: str, path: str, body: Any, ids: dict[str, str], key: str) -> Any:
    """One request of :data:`ISOLATION_CASES` with ``key``, naming the resources ``ids``."""
    batch = ids["batch"]
    url = path.replace("{batch}", batch).replace("{event}", ids["event"])
    headers = api.as_(key)
    kwargs: dict[str, Any] = {}
    if body == "ndjson":
        kwargs["content"] = json.dumps(profile("p-9").snapshot()) + "\n"
        headers["Content-Type"] = NDJSON
    elif body == "x-tenant":
        headers["X-Tenant"] = "alpha" if ids is not NOWHERE else "zeta"
    elif isinstance(body, dict):
        kwargs["json"] = {**body, "profiles": [profile("p-9").snapshot()]} if url == "/v1/exports" else body
    if ids is NOWHERE:  # the same request naming resources that exist nowhere
        url = url.replace("alpha", "zeta").replace("a-conn", "z-conn")
        if "json" in kwargs:
            kwargs["json"] = json.loads(json.dumps(kwargs["json"]).replace("a-conn", "z-conn"))
    return api.client.request(method, url, headers=headers, **kwargs)


@pytest.mark.parametrize(("method", "path", "body"), ISOLATION_CASES, ids=[f"{m} {p}" for m, p, _ in ISOLATION_CASES])
def test_another_tenants_resources_are_404(api: Api, method: str, path: str, body: Any) -> None:
    ids = {"batch": alpha_batch(api), "event": alpha_event(api)}
    items, batches = api.rows(Item), api.rows(Batch)
    doc = assert_problem(isolation_request(api, method, path, body, ids, api.beta), 404, "not-found")
    assert (api.rows(Item), api.rows(Batch)) == (items, batches), "nothing was recorded"
    # the answer is the one for a resource that exists nowhere: nothing says that alpha's exists
    nowhere = assert_problem(isolation_request(api, method, path, body, NOWHERE, api.beta), 404, "not-found")
    unnamed = doc["detail"].replace("alpha", "zeta").replace("a-conn", "z-conn")
    for what, nowhere_id in NOWHERE.items():
        unnamed = unnamed.replace(ids[what], nowhere_id)
    assert unnamed == nowhere["detail"] and "alpha:" not in doc["detail"]
    # the owner still reaches it: the 404 was about who asked
    owner = isolation_request(api, method, path, body, ids, api.alpha)
    assert owner.status_code < 400, owner.text


def test_lists_show_only_the_callers_own_and_the_admin_sees_every_tenant(api: Api) -> None:
    alpha_batch(api)
    mine = api.client.get("/v1/connections", headers=api.as_(api.beta)).json()["connections"]
    assert [c["name"] for c in mine] == ["b-conn"]
    every = api.client.get("/v1/connections", headers=api.as_(api.admin)).json()["connections"]
    assert {c["name"] for c in every} == {"acme", "alpha:a-conn", "beta:b-conn"}
    as_alpha = api.client.get("/v1/connections", headers=api.as_(api.admin, **{"X-Tenant": "alpha"})).json()
    assert [c["name"] for c in as_alpha["connections"]] == ["a-conn"]
    event = alpha_event(api)
    assert api.client.get("/v1/callbacks/events", headers=api.as_(api.beta)).json()["events"] == []
    events = api.client.get("/v1/callbacks/events", headers=api.as_(api.alpha)).json()["events"]
    assert [e["id"] for e in events] == [event]
    assert_problem(api.client.get("/v1/tenants", headers=api.as_(api.alpha)), 403, "admin-only")
    tenants = api.client.get("/v1/tenants", headers=api.as_(api.admin)).json()["tenants"]
    assert [t["id"] for t in tenants] == ["alpha", "beta"]


# --- exports -----------------------------------------------------------------------------------------------------


def test_an_export_records_a_batch_of_the_tenant_and_reads_back_by_route(api: Api) -> None:
    response = api.export(api.alpha, ["p-1", "p-2"])
    assert response.status_code == 201
    created = response.json()
    assert created["enqueued"] == 2 and created["replayed"] is False and created["rejected"] == []
    assert response.headers["location"] == f"/v1/batches/{created['batch_id']}"
    with api.env.engine.connect() as conn:
        assert conn.execute(sa.select(Batch.tenant_id)).scalar_one() == "alpha"
    status = api.client.get(f"/v1/batches/{created['batch_id']}", headers=api.as_(api.alpha)).json()
    assert [it["candidate_id"] for it in status["items"]] == ["p-1", "p-2"]
    with api.env.engine.connect() as conn:
        ids = [int(i) for i in conn.execute(sa.select(Item.id)).scalars()]
    for item_id in ids:
        api.env.export(item_id)
    mark = api.client.get("/v1/connections/a-conn/profiles/p-1", headers=api.as_(api.alpha)).json()
    assert mark["connection"] == "a-conn" and mark["exported"] is True and mark["status"] == "exported"
    progress = api.client.get(f"/v1/batches/{created['batch_id']}/progress", headers=api.as_(api.alpha)).json()
    assert progress["done"] is True and progress["counts"] == {"exported": 2}


def test_the_same_idempotency_key_and_body_give_the_same_batch_and_another_body_409(api: Api) -> None:
    first = api.export(api.alpha, ["p-1", "p-2"], **{"Idempotency-Key": "k-1"})
    assert first.status_code == 201, first.text
    items = api.rows(Item)
    again = api.export(api.alpha, ["p-1", "p-2"], **{"Idempotency-Key": "k-1"})
    assert again.status_code == 200
    assert again.json()["batch_id"] == first.json()["batch_id"] and again.json()["replayed"] is True
    assert again.json()["enqueued"] == 0
    assert api.rows(Item) == items and api.rows(Batch) == 1
    assert drain_broker(api.env) == 2, "the replay enqueued nothing"
    other = api.export(api.alpha, ["p-1", "p-3"], **{"Idempotency-Key": "k-1"})
    doc = assert_problem(other, 409, "conflict")
    assert "Idempotency-Key" in doc["detail"]
    assert api.rows(Item) == items
    # keys of two tenants never meet: beta's k-1 is a batch of its own
    mine = api.export(api.beta, ["p-1", "p-2"], connection="b-conn", **{"Idempotency-Key": "k-1"})
    assert mine.status_code == 201 and mine.json()["batch_id"] != first.json()["batch_id"]


def ndjson_lines(count: int, bad: dict[int, str] | None = None) -> list[str]:
    lines = [json.dumps(profile(f"p-{n}").snapshot()) for n in range(1, count + 1)]
    for lineno, text in (bad or {}).items():
        lines[lineno - 1] = text
    return lines


def test_ndjson_streams_in_pieces_and_bad_lines_are_reported_like_the_cli(api: Api) -> None:
    bad = {3: '{"id": "p-3", "first_name": "Bea"}', 5: "{not json"}
    body = ("\n".join(ndjson_lines(400, bad)) + "\n").encode()

    def pieces() -> Iterator[bytes]:  # odd sizes: lines are cut anywhere, characters too
        for start in range(0, len(body), 997):
            yield body[start : start + 997]

    url = f"/v1/exports?connection=a-conn&kind=job&job_id={s.OPEN_JOB_ID}"
    headers = api.as_(api.alpha, **{"Content-Type": NDJSON, "Idempotency-Key": "nd-1"})
    response = api.client.post(url, content=pieces(), headers=headers)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["enqueued"] == 398
    assert created["rejected"] == [
        {"line": 3, "id": "p-3", "field": "last_name", "error": "field required"},
        {"line": 5, "id": None, "field": None, "error": "invalid JSON"},
    ]
    # the same bytes again, however cut: the same request
    again = api.client.post(url, content=body, headers=headers)
    assert again.status_code == 200 and again.json()["batch_id"] == created["batch_id"]
    assert again.json()["rejected"] == created["rejected"]


def test_an_export_with_no_valid_profile_is_422_naming_line_id_and_field(api: Api) -> None:
    url = f"/v1/exports?connection=a-conn&kind=job&job_id={s.OPEN_JOB_ID}"
    content = '{"id": "p-7", "first_name": "Bea"}\n'
    response = api.client.post(url, content=content, headers=api.as_(api.alpha, **{"Content-Type": NDJSON}))
    doc = assert_problem(response, 422, "no-valid-profile")
    assert (doc["line"], doc["profile_id"], doc["field"]) == (1, "p-7", "last_name")
    assert api.rows(Batch) == 0


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda b: b["target"].update(job_id="abc"), "target.job_id"),
        (lambda b: b.pop("connection"), "connection"),
        (lambda b: b["target"].update(kind="pool"), "target.kind"),
        (lambda b: b.update(profiles=[]), "profiles"),
        (lambda b: b.update(surprise=1), "surprise"),
    ],
    ids=["wrong-type", "missing", "not-an-option", "empty", "unknown"],
)
def test_an_invalid_request_is_a_422_problem_naming_the_field(api: Api, change: Any, field: str) -> None:
    body: dict[str, Any] = {
        "connection": "a-conn",
        "target": {"kind": "job", "job_id": s.OPEN_JOB_ID},
        "profiles": [profile("p-1").snapshot()],
    }
    change(body)
    doc = assert_problem(api.client.post("/v1/exports", json=body, headers=api.as_(api.alpha)), 422, "validation")
    assert doc["field"] == field and doc["detail"].startswith(field + ":")
    assert doc["errors"][0]["field"] == field
    assert "abc" not in json.dumps(doc), "values are never echoed"


def test_ndjson_options_are_query_parameters_named_in_their_422(api: Api) -> None:
    headers = api.as_(api.alpha, **{"Content-Type": NDJSON})
    doc = assert_problem(api.client.post("/v1/exports?kind=job", content="{}\n", headers=headers), 422, "validation")
    assert doc["field"] in ("connection", "target")
    missing_job = "/v1/exports?connection=a-conn&kind=job"
    doc = assert_problem(api.client.post(missing_job, content="{}\n", headers=headers), 422, "validation")
    assert doc["field"] == "target" and "job_id" in doc["detail"]
    assert_problem(
        api.client.post("/v1/exports", content="x", headers=api.as_(api.alpha, **{"Content-Type": "text/plain"})),
        415,
    )


@pytest.fixture
def small_api(sqlite_url: str) -> Iterator[Api]:
    yield from build(sqlite_url, max_json_bytes=2048, max_body_bytes=4096)


def test_bodies_over_the_limits_are_413_problems(small_api: Api) -> None:
    api = small_api
    big = api.export(api.alpha, [f"p-{n}" for n in range(10)])
    doc = assert_problem(big, 413, "too-large")
    assert doc["limit_bytes"] == 2048
    lines = ("\n".join(ndjson_lines(20)) + "\n").encode()
    url = f"/v1/exports?connection=a-conn&kind=job&job_id={s.OPEN_JOB_ID}"
    headers = api.as_(api.alpha, **{"Content-Type": NDJSON})
    chunked = api.client.post(url, content=iter([lines[:3000], lines[3000:]]), headers=headers)  # no length
    assert_problem(chunked, 413, "too-large")
    assert api.rows(Batch) == 0
    small = api.client.post(url, content=lines[: lines.index(b"\n") + 1], headers=headers)
    assert small.status_code == 201, small.text


# --- connections, consent, callbacks, keys ---------------------------------------------------------------------


def test_connect_over_http_stores_the_connection_under_the_tenant(api: Api) -> None:
    body = {
        "name": "main",
        "client_id": s.CLIENT_ID,
        "client_secret": s.CLIENT_SECRET,
        "user_email": s.RECRUITER_EMAIL,
        "enable_pools": True,
        "fields": {"resume": False},
    }
    created = api.client.post("/v1/connections", json=body, headers=api.as_(api.beta))
    assert created.status_code == 201, created.text
    doc = created.json()
    assert doc["created"] is True and doc["connection"]["name"] == "main"
    assert doc["connection"]["fields"]["resume"] is False and s.CLIENT_SECRET not in created.text
    with api.env.engine.connect() as conn:
        row = conn.execute(sa.select(Connection.name, Connection.tenant_id).where(Connection.name == "beta:main"))
        assert row.one() == ("beta:main", "beta")
    again = api.client.post("/v1/connections", json=body, headers=api.as_(api.beta))
    assert again.status_code == 200 and again.json()["created"] is False
    assert_problem(api.client.get("/v1/connections/main", headers=api.as_(api.alpha)), 404)
    wrong = api.client.post("/v1/connections", json={**body, "name": "x:y"}, headers=api.as_(api.beta))
    assert assert_problem(wrong, 422)["field"] == "name"
    jobs = api.client.get("/v1/connections/main/jobs", headers=api.as_(api.beta)).json()["jobs"]
    assert s.OPEN_JOB_ID in [j["id"] for j in jobs]
    pools = api.client.get("/v1/connections/main/pools", headers=api.as_(api.beta)).json()["pools"]
    assert s.POOL_ID in [p["id"] for p in pools]
    removed = api.client.delete("/v1/connections/main", headers=api.as_(api.beta)).json()
    assert removed == {"name": "main", "removed": True, "items_failed": 0}
    assert_problem(api.client.get("/v1/connections/main", headers=api.as_(api.beta)), 404)


def test_a_partner_consent_completes_through_the_callback_and_returns_to_the_platform(api: Api) -> None:
    callback = "http://api.test/v1/partner/consent-callback"
    api.env.sandbox.add_partner_client(
        s.PARTNER_CLIENT_ID, s.PARTNER_CLIENT_SECRET, s.ALL_SCOPES, [callback, s.PARTNER_REDIRECT_URI]
    )
    body = {
        "name": "partner",
        "client_id": s.PARTNER_CLIENT_ID,
        "client_secret": s.PARTNER_CLIENT_SECRET,
        "user_email": s.RECRUITER_EMAIL,
        "return_url": "https://platform.example/settings?tab=greenhouse",
    }
    begun = api.client.post("/v1/connections/partner", json=body, headers=api.as_(api.alpha))
    assert begun.status_code == 201, begun.text
    assert begun.json()["redirect_uri"] == callback
    location = api.env.sandbox.consent(begun.json()["authorize_url"])
    assert location.startswith(callback + "?")
    back = api.client.get(location.removeprefix("http://api.test"), follow_redirects=False)
    assert back.status_code == 303
    target = urlsplit(back.headers["location"])
    assert (target.scheme, target.netloc, target.path) == ("https", "platform.example", "/settings")
    assert dict(parse_qsl(target.query)) == {"tab": "greenhouse", "connection": "partner", "status": "connected"}
    got = api.client.get("/v1/connections/partner", headers=api.as_(api.alpha)).json()
    assert got["kind"] == "partner" and got["state"] == "connected"
    # the same redirect again: the consent is used up, and the browser is told so
    replay = api.client.get(location.removeprefix("http://api.test"), follow_redirects=False)
    assert dict(parse_qsl(urlsplit(replay.headers["location"]).query))["error"] == "consent_used"
    denied = api.client.post("/v1/connections/partner", json=body, headers=api.as_(api.alpha)).json()
    refused = api.env.sandbox.consent(denied["authorize_url"], deny=True)
    answer = api.client.get(refused.removeprefix("http://api.test"), follow_redirects=False)
    assert dict(parse_qsl(urlsplit(answer.headers["location"]).query))["error"] == "access_denied"
    forged = api.client.get("/v1/partner/consent-callback?code=x&state=forged", follow_redirects=False)
    assert_problem(forged, 400, "consent-unknown")


def test_the_access_log_has_paths_only(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="ghexport.api.access"):
        api.client.get("/v1/partner/consent-callback?code=SECRETCODE&state=SECRETSTATE", follow_redirects=False)
        api.client.get("/v1/connections?x=secret@example.com", headers=api.as_(api.alpha))
    lines = [r.getMessage() for r in caplog.records if r.name == "ghexport.api.access"]
    assert lines[0].startswith("GET /v1/partner/consent-callback 400 ")
    assert lines[1].startswith("GET /v1/connections 200 ")
    text = caplog.text
    for secret in ("SECRETCODE", "SECRETSTATE", "secret@example.com", api.alpha, api.alpha[12:]):
        assert secret not in text


def test_a_tenant_registers_its_callback_and_sees_the_secret_once(api: Api) -> None:
    put = api.client.put("/v1/callbacks", json={"url": "https://platform.example/hooks"}, headers=api.as_(api.alpha))
    assert put.status_code == 200
    secret = put.json()["secret"]
    assert secret.startswith("whsec_") and len(__import__("base64").b64decode(secret[6:])) == 24
    with api.env.engine.connect() as conn:
        url, stored = conn.execute(
            sa.select(Tenant.callback_url, Tenant.callback_secret_encrypted).where(Tenant.id == "alpha")
        ).one()
    assert url == "https://platform.example/hooks" and secret not in stored
    assert decrypt_secret(stored, api.env.settings.secret_key).get_secret_value() == secret
    assert api.client.get("/v1/callbacks", headers=api.as_(api.alpha)).json() == {"url": url}
    bad = api.client.put("/v1/callbacks", json={"url": "ftp://x"}, headers=api.as_(api.alpha))
    assert assert_problem(bad, 422, "validation")["field"] == "url"
    broken = api.client.put("/v1/callbacks", json={"url": "http://["}, headers=api.as_(api.alpha))
    assert_problem(broken, 400, "bad-request")  # an authority that does not parse: refused, not a 500
    assert_problem(api.client.get("/v1/callbacks", headers=api.as_(api.admin)), 400, "tenant-required")
    assert api.client.delete("/v1/callbacks", headers=api.as_(api.alpha)).status_code == 204
    assert api.client.get("/v1/callbacks", headers=api.as_(api.alpha)).json() == {"url": None}


def test_the_greenhouse_webhook_secret_is_stored_encrypted(api: Api) -> None:
    response = api.client.put(
        "/v1/connections/a-conn/greenhouse-webhook", json={"secret": "gh-webhook-secret"}, headers=api.as_(api.alpha)
    )
    assert response.status_code == 200, response.text
    assert response.json()["webhook_url"] == "http://api.test/v1/greenhouse/webhooks/alpha%3Aa-conn"
    with api.env.engine.connect() as conn:
        stored = conn.execute(
            sa.select(Connection.webhook_secret_encrypted).where(Connection.name == "alpha:a-conn")
        ).scalar_one()
    assert decrypt_secret(stored, api.env.settings.secret_key).get_secret_value() == "gh-webhook-secret"


def test_admin_manages_tenants_and_keys_over_http(api: Api) -> None:
    admin = api.as_(api.admin)
    created = api.client.post("/v1/tenants", json={"id": "gamma", "name": "Gamma Inc"}, headers=admin)
    assert created.status_code == 201 and created.json()["id"] == "gamma"
    assert_problem(api.client.post("/v1/tenants", json={"id": "gamma"}, headers=admin), 409, "conflict")
    assert assert_problem(api.client.post("/v1/tenants", json={"id": "Bad Id"}, headers=admin), 422)["field"] == "id"
    key = api.client.post("/v1/api-keys", json={"tenant_id": "gamma", "name": "backend"}, headers=admin).json()
    assert key["key"].startswith(key["prefix"] + "_") and tenancy.API_KEY_RE.fullmatch(key["key"])
    assert api.client.get("/v1/tenants/gamma", headers=api.as_(key["key"])).json()["name"] == "Gamma Inc"
    listed = api.client.get("/v1/api-keys?tenant_id=gamma", headers=admin).json()["api_keys"]
    assert [k["prefix"] for k in listed] == [key["prefix"]] and "key" not in listed[0]
    revoked = api.client.delete(f"/v1/api-keys/{key['prefix']}", headers=admin).json()
    assert revoked["revoked_at"] is not None
    assert_problem(api.client.get("/v1/tenants/gamma", headers=api.as_(key["key"])), 401)
    assert_problem(api.client.post("/v1/api-keys", json={"admin": True}, headers=api.as_(api.alpha)), 403)


# --- the document and the command line ------------------------------------------------------------------------


def test_the_openapi_document_is_valid_3_1_with_problem_details_everywhere(api: Api) -> None:
    from openapi_spec_validator import validate

    doc = api.client.get("/openapi.json").json()
    validate(doc)
    assert doc["openapi"].startswith("3.1")
    assert all(path.startswith("/v1/") for path in doc["paths"])
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            assert "application/problem+json" in responses["default"]["content"], (method, path)
            assert "application/json" not in responses.get("422", {}).get("content", {"x": 1}), (method, path)
    body = doc["paths"]["/v1/exports"]["post"]["requestBody"]["content"]
    assert set(body) == {"application/json", NDJSON}
    assert "ExportRequest" in doc["components"]["schemas"] and "Problem" in doc["components"]["schemas"]
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


def test_the_cli_creates_tenants_and_keys_that_the_api_accepts(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    from producer import cli_base
    from producer.cli import app, register_commands

    register_commands()
    monkeypatch.setattr(cli_base, "_resources", api.env.res)
    runner = CliRunner()
    made = runner.invoke(app, ["tenants", "create", "delta", "--name", "Delta", "--json"])
    assert made.exit_code == 0, made.output
    key = json.loads(runner.invoke(app, ["api-keys", "create", "--tenant", "delta", "--json"]).stdout)
    assert api.client.get("/v1/tenants/delta", headers=api.as_(key["key"])).json()["name"] == "Delta"
    listed = json.loads(runner.invoke(app, ["api-keys", "list", "--tenant", "delta", "--json"]).stdout)["api_keys"]
    assert [k["prefix"] for k in listed] == [key["prefix"]] and listed[0]["last_used_at"] is not None
    assert key["key"] not in runner.invoke(app, ["api-keys", "list"]).stdout
    refused = runner.invoke(app, ["api-keys", "revoke", key["prefix"], "--tenant", "alpha"])
    assert refused.exit_code == 1 and "no API key" in refused.output
    assert runner.invoke(app, ["api-keys", "revoke", key["prefix"], "--tenant", "delta"]).exit_code == 0
    assert_problem(api.client.get("/v1/tenants/delta", headers=api.as_(key["key"])), 401)
    assert runner.invoke(app, ["api-keys", "create"]).exit_code == 1
    tenants = json.loads(runner.invoke(app, ["tenants", "list", "--json"]).stdout)["tenants"]
    assert [t["id"] for t in tenants] == ["alpha", "beta", "delta"]
    monkeypatch.setattr(cli_base, "_resources", None)
