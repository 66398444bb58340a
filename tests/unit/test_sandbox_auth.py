"""Token endpoint, bearer tokens, scopes, the site-admin rule for lists and the rolling rate limit."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from shared.harvest.sandbox import seed as s
from tests.unit.test_sandbox_support import Env, make_env

GRANT = {"grant_type": "client_credentials"}


@pytest.fixture
def env() -> Iterator[Env]:
    with make_env(token_ttl_s=3600) as e:
        yield e


def test_token_from_form_body_or_query_string(env: Env) -> None:
    in_body = env.client.post("/token", auth=(s.CLIENT_ID, s.CLIENT_SECRET), data={**GRANT, "sub": s.ADMIN_USER_ID})
    in_query = env.client.post("/token", auth=(s.CLIENT_ID, s.CLIENT_SECRET), params=GRANT)
    for response in (in_body, in_query):
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"token_type", "access_token", "expires_at"}
        assert body["token_type"] == "Bearer"
        assert body["expires_at"].endswith("Z")
        expires = datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00")).timestamp()
        assert expires == pytest.approx(env.clock() + 3600, abs=1)
    assert in_body.json()["access_token"] != in_query.json()["access_token"]


@pytest.mark.parametrize(
    ("auth", "data", "status", "error"),
    [
        ((s.CLIENT_ID, "wrong"), GRANT, 401, "invalid_client"),
        (("nobody", s.CLIENT_SECRET), GRANT, 401, "invalid_client"),
        (None, GRANT, 401, "invalid_client"),
        ((s.CLIENT_ID, s.CLIENT_SECRET), {}, 400, "unsupported_grant_type"),
        ((s.CLIENT_ID, s.CLIENT_SECRET), {"grant_type": "password"}, 400, "unsupported_grant_type"),
        ((s.CLIENT_ID, s.CLIENT_SECRET), {**GRANT, "sub": "999"}, 400, "invalid_request"),
        ((s.CLIENT_ID, s.CLIENT_SECRET), {**GRANT, "sub": "admin"}, 400, "invalid_request"),
        ((s.CLIENT_ID, s.CLIENT_SECRET), {**GRANT, "sub": str(s.DEACTIVATED_USER_ID)}, 400, "invalid_request"),
    ],
    ids=[
        "bad-secret",
        "unknown-client",
        "no-basic-auth",
        "no-grant",
        "other-grant",
        "unknown-sub",
        "text-sub",
        "deactivated-sub",
    ],
)
def test_token_refusals(env: Env, auth: tuple[str, str] | None, data: dict, status: int, error: str) -> None:
    kwargs: dict[str, Any] = {"auth": auth} if auth else {}
    response = env.client.post("/token", data=data, **kwargs)
    assert response.status_code == status
    assert response.json()["error"] == error


@pytest.mark.parametrize("header", [None, "Bearer nope", "Basic Z2h4Og=="], ids=["missing", "unknown", "basic"])
def test_bad_bearer_is_401(env: Env, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    response = env.client.get("/v3/jobs", headers=headers)
    assert response.status_code == 401
    assert response.json() == {"message": "Unauthorized"}


def test_token_expires_with_the_clock_and_on_demand(env: Env) -> None:
    headers = env.headers()
    assert env.client.get("/v3/jobs", headers=headers).status_code == 200
    env.clock.advance(3600)
    assert env.client.get("/v3/jobs", headers=headers).status_code == 401
    fresh = env.headers()
    assert env.client.get("/v3/jobs", headers=fresh).status_code == 200
    env.sandbox.expire_tokens()
    assert env.client.get("/v3/jobs", headers=fresh).status_code == 401


def test_missing_scope_is_403_naming_it_before_any_validation(env: Env) -> None:
    env.sandbox.add_credential("reader", "pw", ["harvest:jobs:list"])
    reader = env.headers(client_id="reader", secret="pw")
    probe = env.client.post("/v3/candidates", json={}, headers=reader)
    assert probe.status_code == 403
    message = "Missing required scope: harvest:candidates:create"
    assert probe.json() == {"message": message, "errors": [{"message": message, "field": None}]}
    # The same empty-body probe with the scope present reaches validation: 422, and writes nothing.
    full = env.client.post("/v3/candidates", content=b"", headers=env.headers())
    assert full.status_code == 422
    assert len(env.sandbox.state_snapshot()["candidates"]) == 1
    assert env.client.get("/v3/jobs", headers=reader).status_code == 200


def test_scopes_are_fixed_when_the_token_is_minted(env: Env) -> None:
    env.sandbox.add_credential("c2", "pw", ["harvest:jobs:list"])
    old = env.headers(client_id="c2", secret="pw")
    env.sandbox.add_credential("c2", "pw", ["harvest:jobs:list", "harvest:users:list"])
    assert env.client.get("/v3/users", headers=old).status_code == 403
    assert env.client.get("/v3/users", headers=env.headers(client_id="c2", secret="pw")).status_code == 200


def test_list_routes_need_a_site_admin_sub_or_none(env: Env) -> None:
    recruiter = env.headers(sub=s.RECRUITER_USER_ID)
    refused = env.client.get("/v3/users", headers=recruiter)
    assert refused.status_code == 403
    assert "Site Admin" in refused.json()["message"]
    assert env.client.get("/v3/users", headers=env.headers(sub=s.ADMIN_USER_ID)).status_code == 200
    assert env.client.get("/v3/users", headers=env.headers()).status_code == 200
    # Writes are not list endpoints: a recruiter sub may create.
    created = env.client.post("/v3/candidates", json={"first_name": "A", "last_name": "B"}, headers=recruiter)
    assert created.status_code == 201


def test_rate_limit_429_then_recovery_after_the_window() -> None:
    with make_env(rate_limit=3, window_s=30) as env:
        headers = env.headers()
        start = env.clock()
        remaining = []
        for _ in range(3):
            ok = env.client.get("/v3/sources", headers=headers)
            assert ok.status_code == 200
            assert ok.headers["X-RateLimit-Limit"] == "3"
            assert int(ok.headers["X-RateLimit-Reset"]) == int(start + 30)
            remaining.append(ok.headers["X-RateLimit-Remaining"])
        assert remaining == ["2", "1", "0"]

        env.clock.advance(10)
        limited = env.client.get("/v3/sources", headers=headers)
        assert limited.status_code == 429
        assert limited.json() == {"message": "Rate limit exceeded"}
        assert limited.headers["Retry-After"] == "20"
        assert limited.headers["X-RateLimit-Reset"] == str(int(start + 30))
        assert "X-RateLimit-Limit" not in limited.headers
        assert "X-RateLimit-Remaining" not in limited.headers

        env.clock.advance(19.5)
        assert env.client.get("/v3/sources", headers=headers).headers["Retry-After"] == "1"
        env.clock.advance(0.5)  # the three requests leave the window; the 429s consumed nothing
        recovered = env.client.get("/v3/sources", headers=headers)
        assert recovered.status_code == 200
        assert recovered.headers["X-RateLimit-Remaining"] == "2"

        stats = env.sandbox.stats()
        assert stats["rate_limited"] == 2
        assert stats["max_in_window"] == {s.CLIENT_ID: 3}
        assert stats["requests"]["GET /v3/sources"] == {"200": 4, "429": 2}


def test_rate_limit_window_rolls_and_is_per_credential() -> None:
    with make_env(rate_limit=2, window_s=30) as env:
        env.sandbox.add_credential("other", "pw", s.ALL_SCOPES)
        mine, theirs = env.headers(), env.headers(client_id="other", secret="pw")
        assert env.client.get("/v3/jobs", headers=mine).status_code == 200
        env.clock.advance(20)
        assert env.client.get("/v3/jobs", headers=mine).status_code == 200
        env.clock.advance(5)
        assert env.client.get("/v3/jobs", headers=mine).headers["Retry-After"] == "5"
        assert env.client.get("/v3/jobs", headers=theirs).status_code == 200
        env.clock.advance(5)
        assert env.client.get("/v3/jobs", headers=mine).status_code == 200
        # Token mints are not Harvest calls: they neither count nor get refused.
        for _ in range(5):
            env.token()


def test_every_route_scope_is_a_known_scope() -> None:
    from shared.harvest.sandbox.app import ROUTES

    used = {route.scope for route in ROUTES}
    assert used == set(s.ALL_SCOPES)
    assert len(s.ALL_SCOPES) == len(set(s.ALL_SCOPES))
