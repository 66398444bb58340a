"""Outages: every /v3 request and POST /token answers one status for a while, before auth, limits or action."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest
from pydantic import SecretStr

from shared import errors as e
from shared.harvest.auth import Credential
from shared.harvest.client import HarvestClient
from shared.harvest.sandbox import seed as s
from shared.settings import Settings
from tests.unit.test_sandbox_support import Api, Env, make_env

UNAVAILABLE = {"message": "Service Unavailable"}


@pytest.fixture
def env() -> Iterator[Env]:
    with make_env(rate_limit=3) as e:
        yield e


@pytest.fixture
def api(env: Env) -> Api:
    return Api(env)


def _tag(api: Api, name: str) -> httpx.Response:
    return api.post("/v3/candidate_tags", {"name": name})


def _tag_names(env: Env) -> set[str]:
    return {t["name"] for t in env.sandbox.state_snapshot()["candidate_tags"]}


def test_outage_answers_every_api_request_and_token_before_anything(api: Api) -> None:
    env = api.env
    env.sandbox.outage(30)
    answers = [
        api.get("/v3/jobs"),
        _tag(api, "during"),
        api.get("/v3/nothing"),  # an unknown route too
        env.client.get("/v3/jobs"),  # no token at all: the outage answers before auth (no 401)
        env.client.post("/token", auth=(s.CLIENT_ID, "wrong"), data={"grant_type": "client_credentials"}),
    ]
    assert [r.status_code for r in answers] == [503] * 5
    assert all(r.json() == UNAVAILABLE for r in answers)
    assert all("X-RateLimit-Remaining" not in r.headers for r in answers)  # before the rate limit
    assert "during" not in _tag_names(env)  # nothing written
    stats = env.sandbox.stats()
    assert stats["outage"] == 5
    assert stats["requests"]["GET /v3/jobs"] == {"503": 2}
    assert stats["requests"]["POST /v3/candidate_tags"] == {"503": 1}
    assert stats["requests"]["GET (unknown route)"] == {"503": 1}
    assert stats["requests"]["POST /token"] == {"200": 1, "503": 1}  # the Api's own token came before
    assert stats["invalid"] == [] and stats["faults"] == {}
    assert stats["credentials"][s.CLIENT_ID]["accepted"] == 0  # no budget used
    assert env.client.get("/_sandbox/stats").status_code == 200  # admin routes keep answering


def test_outage_ends_by_the_sandbox_clock(api: Api) -> None:
    env = api.env
    env.sandbox.outage(10.0)
    env.clock.advance(9.9)
    assert api.get("/v3/jobs").status_code == 503
    env.clock.advance(0.1)
    assert api.get("/v3/jobs").status_code == 200
    assert _tag(api, "after").status_code == 201
    assert env.sandbox.stats()["outage"] == 1


def test_outage_zero_ends_it_and_a_new_call_replaces_it(api: Api) -> None:
    env = api.env
    env.sandbox.outage(60, status=500)
    failed = api.get("/v3/jobs")
    assert (failed.status_code, failed.json()) == (500, {"message": "Internal server error"})
    env.sandbox.outage(60, status=502)
    assert api.get("/v3/jobs").status_code == 502
    env.sandbox.outage(0)
    assert api.get("/v3/jobs").status_code == 200


def test_outage_leaves_scripted_faults_and_rate_limit_untouched(api: Api) -> None:
    env = api.env
    env.sandbox.inject_fault("error_before", method="GET", path="/v3/jobs")
    env.sandbox.outage(5)
    assert [api.get("/v3/jobs").status_code for _ in range(5)] == [503] * 5  # more than rate_limit=3
    env.clock.advance(5)
    assert api.get("/v3/jobs").status_code == 500  # the scripted fault was still waiting
    assert [api.get("/v3/jobs").status_code for _ in range(3)] == [200, 200, 429]  # budget 3, one used above


def test_writes_only_outage_answers_api_writes_and_serves_reads_and_tokens(api: Api) -> None:
    env = api.env
    env.sandbox.outage(30, writes_only=True)
    assert _tag(api, "during").status_code == 503
    assert api.get("/v3/jobs").status_code == 200
    minted = env.client.post(
        "/token", auth=(s.CLIENT_ID, s.CLIENT_SECRET), data={"grant_type": "client_credentials"}
    )  # fmt: skip
    assert minted.status_code == 200
    assert "during" not in _tag_names(env)  # nothing written
    stats = env.sandbox.stats()
    assert stats["outage"] == 1
    assert stats["requests"]["POST /v3/candidate_tags"] == {"503": 1}
    env.clock.advance(30)
    assert _tag(api, "after").status_code == 201


@pytest.mark.parametrize(
    ("seconds", "status"),
    [(-1, 503), (float("inf"), 503), (float("nan"), 503), (True, 503), (5, 404), (5, 429), (5, 600), (5, True)],
)
def test_outage_refuses_bad_arguments(env: Env, seconds: float, status: int) -> None:
    with pytest.raises(ValueError):
        env.sandbox.outage(seconds, status)


def test_admin_outage_route(api: Api) -> None:
    env = api.env
    client = env.client
    assert client.post("/_sandbox/outage", json={"seconds": 20}).json() == {"ok": True}
    assert api.get("/v3/jobs").status_code == 503
    assert client.post("/_sandbox/outage", json={"seconds": 20, "status": 504}).status_code == 200
    assert api.get("/v3/jobs").status_code == 504
    assert client.post("/_sandbox/outage", json={"seconds": 0}).status_code == 200
    assert api.get("/v3/jobs").status_code == 200
    assert client.post("/_sandbox/outage", json={"seconds": 0.5}).status_code == 200
    env.clock.advance(0.5)
    assert api.get("/v3/jobs").status_code == 200
    assert client.post("/_sandbox/outage", json={"seconds": 20, "writes_only": True}).status_code == 200
    assert (api.get("/v3/jobs").status_code, _tag(api, "x").status_code) == (200, 503)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"seconds": -1},
        {"seconds": "30"},
        {"seconds": True},
        {"seconds": None},
        {"seconds": 30, "status": 404},
        {"seconds": 30, "status": "503"},
        {"seconds": 30, "status": 503.0},
        {"seconds": 30, "writes_only": "yes"},
        [30],
    ],
)
def test_admin_outage_route_refuses_bad_input(env: Env, body: object) -> None:
    response = env.client.post("/_sandbox/outage", json=body)
    assert response.status_code == 400
    assert response.json()["message"].startswith("bad sandbox admin request")
    assert env.sandbox.state.outage is None


def test_admin_outage_route_refuses_a_body_that_is_not_json(env: Env) -> None:
    response = env.client.post("/_sandbox/outage", content=b"seconds=30")
    assert response.status_code == 400


# --- what the client sees --------------------------------------------------------------------------


def _client(env: Env, sleep: Callable[[float], None] | None = None) -> HarvestClient:
    settings = Settings(harvest_url="https://harvest.sandbox", harvest_token_url="https://harvest.sandbox/token")
    cred = Credential(client_id=s.CLIENT_ID, client_secret=SecretStr(s.CLIENT_SECRET))
    http = httpx.Client(transport=env.sandbox.transport())
    return HarvestClient(
        settings, cred, http_client=http, sleep=sleep or (lambda _s: None), wall=env.clock, clock=env.clock
    )


def test_client_read_during_an_outage_is_a_retryable_server_error(env: Env) -> None:
    client = _client(env)
    client.list_tags()  # token minted before the outage
    env.sandbox.outage(60)
    with pytest.raises(e.ServerError) as info:
        client.list_tags()
    assert info.value.status == 503 and isinstance(info.value, e.RetryableError)
    assert env.sandbox.stats()["requests"]["GET /v3/candidate_tags"] == {"200": 1, "503": 3}  # 2 quick retries


def test_client_token_mint_during_an_outage_is_retryable(env: Env) -> None:
    env.sandbox.outage(60)
    with pytest.raises(e.ServerError) as info:
        _client(env).list_tags()
    assert info.value.method is None  # the mint failed: the Harvest call itself was never sent
    assert "GET /v3/candidate_tags" not in env.sandbox.stats()["requests"]


def test_client_quick_retries_outlast_a_short_outage(env: Env) -> None:
    client = _client(env, sleep=env.clock.advance)  # the client's waits move the sandbox clock
    client.list_tags()
    env.sandbox.outage(0.01)
    assert client.list_tags()
    assert env.sandbox.stats()["requests"]["GET /v3/candidate_tags"]["503"] >= 1
