"""Fault injection (scripted and random), latency, stats counters, admin routes and the snapshot."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import httpx
import pytest

from shared.harvest.sandbox import DropConnectionError, Sandbox, SandboxConfig
from shared.harvest.sandbox import seed as s
from shared.harvest.sandbox.faults import FAULT_KINDS, RANDOM_KINDS, READ_RANDOM_KINDS
from tests.unit.test_sandbox_support import BASE_URL, Api, Env, make_env


@pytest.fixture
def env() -> Iterator[Env]:
    with make_env() as e:
        yield e


@pytest.fixture
def api(env: Env) -> Api:
    return Api(env, sub=None)


def _person(n: int) -> dict:
    email = f"p{n}@example.org"
    return {"first_name": "P", "last_name": str(n), "email_addresses": [{"value": email, "type": "personal"}]}


def _found(api: Api, n: int) -> int:
    return len(api.get("/v3/candidates", email=f"p{n}@example.org").json())


@pytest.mark.parametrize(
    ("kind", "written"), [("error_before", 0), ("error_after", 1)], ids=["error_before", "error_after"]
)
def test_error_faults(api: Api, kind: str, written: int) -> None:
    api.env.sandbox.inject_fault(kind)
    failed = api.post("/v3/candidates", _person(1))
    assert failed.status_code == 500
    assert "X-RateLimit-Remaining" in failed.headers
    assert _found(api, 1) == written  # error_after: the write happened although the client saw a 500
    assert api.post("/v3/candidates", _person(2)).status_code == 201  # count=1: the next one is normal


@pytest.mark.parametrize(
    ("kind", "written"), [("drop_before", 0), ("drop_after", 1)], ids=["drop_before", "drop_after"]
)
def test_drop_faults_look_like_a_dropped_socket(api: Api, kind: str, written: int) -> None:
    api.env.sandbox.inject_fault(kind)
    with pytest.raises(httpx.RemoteProtocolError):
        api.post("/v3/candidates", _person(1))
    assert _found(api, 1) == written
    assert api.env.sandbox.stats()["requests"]["POST /v3/candidates"] == {"dropped": 1}


def test_handle_raises_drop_connection(env: Env) -> None:
    env.sandbox.inject_fault("drop_before", method="GET", path="/v3/jobs")
    request = httpx.Request("GET", f"{BASE_URL}/v3/jobs", headers=env.headers())
    with pytest.raises(DropConnectionError):
        env.sandbox.handle(request)


def test_slow_fault_and_latency_sleep_then_proceed() -> None:
    with make_env() as env:
        api = Api(env, sub=None)
        env.sandbox.inject_fault("slow")
        assert api.post("/v3/candidates", _person(1)).status_code == 201
        assert env.sleeps == [2.0]
    with make_env(latency_ms=5) as env:
        api = Api(env, sub=None)  # one /token call
        env.sandbox.inject_fault("slow")
        assert api.post("/v3/candidates", _person(1)).status_code == 201
        assert env.sleeps == [0.005, 0.005, 2.0]  # latency on /token and the POST, plus the slow fault's slow_s
    with make_env(slow_s=45.0) as env:
        api = Api(env, sub=None)
        env.sandbox.inject_fault("slow", method="GET", path="/v3/jobs")
        assert api.get("/v3/jobs").status_code == 200
        assert env.sleeps == [45.0]


def test_fault_count_and_route_template_matching(api: Api) -> None:
    app_id = api.get("/v3/applications").json()[0]["id"]
    api.env.sandbox.inject_fault("error_before", method="patch", path="/v3/applications/{id}", count=2)
    statuses = [api.patch(f"/v3/applications/{app_id}", {}).status_code for _ in range(3)]
    assert statuses == [500, 500, 200]
    assert api.post("/v3/candidates", _person(1)).status_code == 201
    with pytest.raises(ValueError, match="unknown fault kind"):
        api.env.sandbox.inject_fault("explode")


def test_fault_rate_hits_writes_only_and_is_seeded() -> None:
    def kinds(seed: int) -> list[str]:
        with make_env(fault_rate=1.0, seed=seed) as env:
            api = Api(env, sub=None)  # the /token call is never faulted
            assert api.get("/v3/jobs").status_code == 200  # reads are never faulted
            seen = []
            for n in range(12):
                try:
                    seen.append(str(api.post("/v3/candidates", _person(n)).status_code))
                except httpx.RemoteProtocolError:
                    seen.append("dropped")
            faults = env.sandbox.stats()["faults"]
            assert set(faults) <= set(RANDOM_KINDS) and sum(faults.values()) == 12
            assert "201" not in seen
            return seen

    assert kinds(7) == kinds(7)
    assert {"500", "dropped"} <= set(kinds(7))


def test_stats_count_routes_statuses_and_invalid_requests(api: Api) -> None:
    api.post("/v3/candidates", _person(1))
    api.post("/v3/candidates", {"first_name": "A"})
    api.get("/v3/jobs", status="bogus")
    api.env.client.get("/v3/jobs")
    stats = api.env.sandbox.stats()
    assert stats["total_requests"] == 5  # including the /token call
    assert stats["requests"]["POST /token"] == {"200": 1}
    assert stats["requests"]["POST /v3/candidates"] == {"201": 1, "422": 1}
    assert stats["requests"]["GET /v3/jobs"] == {"422": 1, "401": 1}
    assert [(i["route"], i["status"]) for i in stats["invalid"]] == [
        ("POST /v3/candidates", 422),
        ("GET /v3/jobs", 422),
        ("GET /v3/jobs", 401),
    ]
    assert "last_name" in stats["invalid"][0]["reason"]
    assert stats["max_in_window"] == {s.CLIENT_ID: 3}
    assert stats["rate_limited"] == 0
    json.dumps(stats)


def test_admin_routes(env: Env) -> None:
    client = env.client
    assert (
        client.post(
            "/_sandbox/credentials", json={"client_id": "c", "client_secret": "p", "scopes": ["harvest:jobs:list"]}
        ).status_code
        == 201
    )
    headers = env.headers(client_id="c", secret="p")
    assert client.get("/v3/jobs", headers=headers).status_code == 200
    assert client.get("/v3/users", headers=headers).status_code == 403
    fault = {"kind": "error_before", "method": "GET", "path": "/v3/jobs", "count": 1}
    assert client.post("/_sandbox/faults", json=fault).status_code == 201
    assert client.get("/v3/jobs", headers=headers).status_code == 500
    assert client.post("/_sandbox/expire_tokens").status_code == 200
    assert client.get("/v3/jobs", headers=headers).status_code == 401
    before = env.sandbox.stats()["total_requests"]
    state = client.get("/_sandbox/state").json()
    assert [c["id"] for c in state["candidates"]] == [s.EXISTING_CANDIDATE_ID]
    assert state["candidates"][0]["applications"][0]["job_id"] == s.OPEN_JOB_ID
    assert client.get("/_sandbox/stats").json()["total_requests"] == before  # admin calls are not counted
    assert client.post("/_sandbox/faults", json={"kind": "explode"}).status_code == 400
    assert client.post("/_sandbox/credentials", json={"client_id": "x"}).status_code == 400
    assert client.get("/_sandbox/nothing").status_code == 404


def test_admin_routes_are_not_rate_limited() -> None:
    with make_env(rate_limit=1) as env:
        headers = env.headers()
        assert env.client.get("/v3/jobs", headers=headers).status_code == 200
        assert env.client.get("/v3/jobs", headers=headers).status_code == 429
        assert all(env.client.get("/_sandbox/stats").status_code == 200 for _ in range(3))


def test_default_sandbox_uses_the_real_clock() -> None:
    sandbox = Sandbox()
    assert sandbox.config == SandboxConfig()
    with httpx.Client(transport=sandbox.transport(), base_url=BASE_URL) as client:
        token = client.post("/token", auth=(s.CLIENT_ID, s.CLIENT_SECRET), params={"grant_type": "client_credentials"})
        jobs = client.get("/v3/jobs", headers={"Authorization": f"Bearer {token.json()['access_token']}"})
    assert jobs.status_code == 200 and len(jobs.json()) == 4


def test_unavailable_fault_is_a_503_before_anything(api: Api) -> None:
    api.env.sandbox.inject_fault("unavailable")
    failed = api.post("/v3/candidates", _person(1))
    assert failed.status_code == 503
    assert failed.json() == {"message": "Service Unavailable"}
    assert "X-RateLimit-Remaining" in failed.headers  # after the rate limit, like the other faults
    assert _found(api, 1) == 0
    stats = api.env.sandbox.stats()
    assert stats["requests"]["POST /v3/candidates"] == {"503": 1}
    assert stats["faults"] == {"unavailable": 1}
    assert stats["invalid"] == []  # a 5xx is not an invalid request


def _write_outcomes(env: Env, n: int) -> list[str]:
    api = Api(env, sub=None)
    seen = []
    for i in range(n):
        try:
            seen.append(str(api.post("/v3/candidates", _person(i)).status_code))
        except httpx.RemoteProtocolError:
            seen.append("dropped")
    return seen


def test_fault_kinds_choose_the_random_write_faults() -> None:
    with make_env(fault_rate=1.0, fault_kinds=("unavailable", "slow")) as env:
        seen = _write_outcomes(env, 20)
        assert set(seen) == {"503", "201"}  # a slow fault proceeds
        assert set(env.sandbox.stats()["faults"]) == {"unavailable", "slow"}
        assert env.sleeps == [2.0] * seen.count("201")
    with make_env(fault_rate=1.0, fault_kinds=("drop_before",)) as env:
        assert _write_outcomes(env, 3) == ["dropped"] * 3
        assert _found(Api(env, sub=None), 0) == 0


@pytest.mark.parametrize(
    "config",
    [
        {"fault_kinds": ("explode",)},
        {"fault_kinds": ()},
        {"fault_rate": 1.5},
        {"read_fault_rate": -0.1},
        {"slow_s": -1.0},
        {"slow_s": float("inf")},
    ],
    ids=["unknown-kind", "no-kinds", "fault-rate", "read-fault-rate", "slow-negative", "slow-inf"],
)
def test_bad_fault_settings_are_refused(config: dict) -> None:
    with pytest.raises(ValueError):
        Sandbox(SandboxConfig(**config))


def test_unavailable_is_a_scripted_kind_too() -> None:
    assert "unavailable" in FAULT_KINDS and set(READ_RANDOM_KINDS) <= set(FAULT_KINDS)


def _outcome(send: Callable[[], httpx.Response]) -> httpx.Response | str:
    try:
        return send()
    except httpx.RemoteProtocolError:
        return "dropped"


def _status(outcome: httpx.Response | str) -> str:
    return outcome if isinstance(outcome, str) else str(outcome.status_code)


def test_read_fault_rate_hits_reads_and_token_only_and_is_seeded() -> None:
    def run(seed: int) -> tuple[list[str], list[str], dict[str, int]]:
        with make_env(read_fault_rate=0.5, seed=seed) as env:
            tokens: list[str] = []  # POST /token is faulted too: try until it answers 200
            while not tokens or tokens[-1] != "200":
                answer = _outcome(
                    lambda: env.client.post(
                        "/token", auth=(s.CLIENT_ID, s.CLIENT_SECRET), data={"grant_type": "client_credentials"}
                    )
                )
                tokens.append(_status(answer))
            assert isinstance(answer, httpx.Response)
            headers = {"Authorization": f"Bearer {answer.json()['access_token']}"}
            reads = [_status(_outcome(lambda: env.client.get("/v3/jobs", headers=headers))) for _ in range(40)]
            writes = [env.client.post("/v3/candidate_tags", json={"name": f"t{n}"}, headers=headers) for n in range(5)]
            assert [w.status_code for w in writes] == [201] * 5  # writes follow fault_rate (0), not read_fault_rate
            faults = env.sandbox.stats()["faults"]
            assert set(faults) <= set(READ_RANDOM_KINDS)
            failed = sum(1 for o in tokens + reads if o != "200")
            assert sum(faults.values()) == failed + len(env.sleeps)  # a slow fault answers 200 after its sleep
            assert faults.get("slow", 0) == len(env.sleeps)
            return tokens, reads, faults

    tokens, reads, faults = run(3)
    assert run(3) == (tokens, reads, faults)
    assert {"200", "500", "503", "dropped"} <= set(reads)
    assert faults["slow"] > 0


def test_read_fault_rate_zero_keeps_seeded_write_faults() -> None:
    """A sandbox without read faults draws no random numbers for reads: seeded write faults stay the same."""

    def kinds(read_traffic: bool) -> list[str]:
        with make_env(fault_rate=0.5, seed=11) as env:
            api = Api(env, sub=None)
            seen = []
            for n in range(10):
                if read_traffic:
                    assert api.get("/v3/jobs").status_code == 200
                try:
                    seen.append(str(api.post("/v3/candidates", _person(n)).status_code))
                except httpx.RemoteProtocolError:
                    seen.append("dropped")
            return seen

    assert kinds(read_traffic=True) == kinds(read_traffic=False)
