"""Per-credential rate limits: each credential's own limit and window, its headers, 429s and stats figures."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from shared.harvest.sandbox import seed as s
from tests.unit.test_sandbox_support import Env, make_env


@pytest.fixture
def env() -> Iterator[Env]:
    """A sandbox whose own limit (50 per 30 s) is far above the credentials' under test."""
    with make_env(rate_limit=50, window_s=30) as e:
        yield e


def _credential(env: Env, client_id: str, **limits: Any) -> dict[str, str]:
    """Add a credential through the admin route and return bearer headers for it."""
    body = {"client_id": client_id, "client_secret": "pw", "scopes": list(s.ALL_SCOPES), **limits}
    response = env.client.post("/_sandbox/credentials", json=body)
    assert response.status_code == 201, response.text
    return env.headers(client_id=client_id, secret="pw")


def _get(env: Env, headers: dict[str, str]) -> httpx.Response:
    return env.client.get("/v3/sources", headers=headers)


def _limit_headers(response: httpx.Response) -> tuple[str | None, ...]:
    names = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "Retry-After")
    return tuple(response.headers.get(n) for n in names)


def test_credentials_are_limited_independently_with_their_own_numbers(env: Env) -> None:
    fast = _credential(env, "fast", rate_limit=3, window_s=10)
    slow = _credential(env, "slow", rate_limit=2, window_s=60.0)
    start = int(env.clock())

    assert [_limit_headers(_get(env, fast)) for _ in range(3)] == [
        ("3", str(n), str(start + 10), None) for n in (2, 1, 0)
    ]
    assert [_limit_headers(_get(env, slow)) for _ in range(2)] == [("2", str(n), str(start + 60), None) for n in (1, 0)]

    fast_refused, slow_refused = _get(env, fast), _get(env, slow)
    assert (fast_refused.status_code, slow_refused.status_code) == (429, 429)
    assert _limit_headers(fast_refused) == (None, None, str(start + 10), "10")
    assert _limit_headers(slow_refused) == (None, None, str(start + 60), "60")
    # The seeded credential keeps the sandbox's own limit and window.
    assert _limit_headers(_get(env, env.headers())) == ("50", "49", str(start + 30), None)

    env.clock.advance(10)  # fast's window rolls over; slow's does not
    assert _limit_headers(_get(env, fast)) == ("3", "2", str(start + 20), None)
    assert _limit_headers(_get(env, slow)) == (None, None, str(start + 60), "50")


def test_an_unset_limit_or_window_falls_back_to_the_sandbox(env: Env) -> None:
    one = _credential(env, "one", rate_limit=1)
    wide = _credential(env, "wide", window_s=5, rate_limit=None)
    start = int(env.clock())
    assert _limit_headers(_get(env, one)) == ("1", "0", str(start + 30), None)
    assert _limit_headers(_get(env, one)) == (None, None, str(start + 30), "30")
    assert _limit_headers(_get(env, wide)) == ("50", "49", str(start + 5), None)


def test_a_replaced_credential_limits_its_existing_tokens_from_the_next_request(env: Env) -> None:
    headers = _credential(env, "c", rate_limit=1, window_s=10)
    assert _get(env, headers).status_code == 200
    assert _get(env, headers).status_code == 429
    env.sandbox.add_credential("c", "pw", s.ALL_SCOPES, rate_limit=2, window_s=10)
    assert _limit_headers(_get(env, headers)) == ("2", "0", str(int(env.clock()) + 10), None)


def test_stats_report_each_credentials_figures(env: Env) -> None:
    fast = _credential(env, "fast", rate_limit=2, window_s=10)
    _credential(env, "idle", rate_limit=7, window_s=1.5)
    start = env.clock()
    for _ in range(3):
        _get(env, fast)
    env.clock.advance(4)
    _get(env, fast)
    env.clock.advance(6.5)
    _get(env, fast)
    _get(env, env.headers())

    stats = env.sandbox.stats()
    assert stats["credentials"] == {
        "fast": {
            "rate_limit": 2,
            "window_s": 10.0,
            "accepted": 3,
            "rate_limited": 2,
            "first_accepted_at": start,
            "last_accepted_at": start + 10.5,
            "max_in_window": 2,
        },
        "idle": {
            "rate_limit": 7,
            "window_s": 1.5,
            "accepted": 0,
            "rate_limited": 0,
            "first_accepted_at": None,
            "last_accepted_at": None,
            "max_in_window": 0,
        },
        s.CLIENT_ID: {
            "rate_limit": 50,
            "window_s": 30.0,
            "accepted": 1,
            "rate_limited": 0,
            "first_accepted_at": start + 10.5,
            "last_accepted_at": start + 10.5,
            "max_in_window": 1,
        },
    }
    # The fields other code reads are unchanged.
    assert stats["rate_limited"] == 2
    assert stats["max_in_window"] == {"fast": 2, s.CLIENT_ID: 1}
    assert stats["requests"]["GET /v3/sources"] == {"200": 4, "429": 2}
    assert env.client.get("/_sandbox/stats").json() == json.loads(json.dumps(stats))


@pytest.mark.parametrize(
    "limits",
    [
        {"rate_limit": 0},
        {"rate_limit": -1},
        {"rate_limit": 1.5},
        {"rate_limit": "5"},
        {"rate_limit": True},
        {"window_s": 0},
        {"window_s": -0.5},
        {"window_s": "30"},
        {"window_s": False},
    ],
    ids=str,
)
def test_admin_route_refuses_bad_limits(env: Env, limits: dict[str, object]) -> None:
    body = {"client_id": "bad", "client_secret": "pw", "scopes": [], **limits}
    response = env.client.post("/_sandbox/credentials", json=body)
    assert response.status_code == 400
    assert next(iter(limits)) in response.json()["message"]
    assert "bad" not in env.sandbox.stats()["credentials"]


@pytest.mark.parametrize(
    "limits", [{"rate_limit": 0}, {"window_s": 0.0}, {"window_s": float("inf")}, {"window_s": float("nan")}], ids=str
)
def test_add_credential_refuses_bad_limits(env: Env, limits: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(limits))):
        env.sandbox.add_credential("bad", "pw", [], **limits)


def test_state_snapshot_tells_when_each_candidate_was_created(env: Env) -> None:
    headers = env.headers()
    env.clock.advance(0.25)
    created = env.client.post("/v3/candidates", json={"first_name": "A", "last_name": "B"}, headers=headers)
    assert created.status_code == 201
    at = env.clock()
    env.clock.advance(60)
    row = next(c for c in env.sandbox.state_snapshot()["candidates"] if c["id"] == created.json()["candidate"]["id"])
    assert datetime.fromisoformat(row["created_at"].replace("Z", "+00:00")).timestamp() == pytest.approx(at, abs=1e-3)
