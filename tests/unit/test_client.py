"""HarvestClient against small MockTransport handlers: auth, errors, retries, pagination, limiter calls."""

from __future__ import annotations

import json
from collections.abc import Callable
from urllib.parse import parse_qs

import httpx
import pytest
from pydantic import SecretStr

from shared import errors as e
from shared.harvest.auth import Credential, TokenCache
from shared.harvest.client import HarvestClient
from shared.harvest.limiter import NullRateLimiter, Ticket
from shared.harvest.models import CreateCandidate, CreateNote, EmailAddress
from shared.harvest.ratelimit import RateLimitInfo
from shared.settings import Settings

TOKEN_URL = "https://auth.test/token"
HARVEST = "https://harvest.test"
CRED = Credential(client_id="cid", client_secret=SecretStr("s3cr3t-value"))

Handler = Callable[[httpx.Request], httpx.Response]


class Recorder:
    """Routes token mints and Harvest calls; records every request."""

    def __init__(self, harvest: Handler, *, token_body: dict[str, object] | None = None) -> None:
        self.harvest = harvest
        self.token_body = token_body or {"access_token": "tok-1", "expires_in": 3600}
        self.requests: list[httpx.Request] = []
        self.mints = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if str(request.url) == TOKEN_URL:
            self.mints += 1
            body = dict(self.token_body)
            body["access_token"] = f"tok-{self.mints}"
            return httpx.Response(200, json=body)
        return self.harvest(request)

    @property
    def api(self) -> list[httpx.Request]:
        return [r for r in self.requests if str(r.url) != TOKEN_URL]


class FakeGate(NullRateLimiter):
    def __init__(self) -> None:
        self.acquired: list[str] = []
        self.observed: list[tuple[str, Ticket, RateLimitInfo | None]] = []
        self.throttles: list[tuple[str, Ticket, float]] = []

    def acquire(self, key: str) -> Ticket:
        self.acquired.append(key)
        return Ticket(f"t{len(self.acquired)}", len(self.acquired))

    def observe(self, key: str, ticket: Ticket, info: RateLimitInfo | None) -> None:
        self.observed.append((key, ticket, info))

    def throttled(self, key: str, ticket: Ticket, retry_after_s: float) -> None:
        self.throttles.append((key, ticket, retry_after_s))


def make(handler: Handler, **kw: object) -> tuple[HarvestClient, Recorder, list[float]]:
    rec = handler if isinstance(handler, Recorder) else Recorder(handler)
    settings = Settings(harvest_url=HARVEST, harvest_token_url=TOKEN_URL)
    sleeps: list[float] = []
    http = httpx.Client(transport=httpx.MockTransport(rec))
    client = HarvestClient(settings, CRED, http_client=http, sleep=sleeps.append, **kw)  # type: ignore[arg-type]
    return client, rec, sleeps


def ok(body: object, status: int = 200, **headers: str) -> Handler:
    return lambda request: httpx.Response(status, json=body, headers=headers)


def test_credential_repr_hides_secret() -> None:
    assert "s3cr3t" not in repr(CRED) and "s3cr3t" not in str(CRED)


def test_token_minted_once_with_basic_auth_and_sub_then_cached() -> None:
    client, rec, _ = make(ok([]))
    writer = client.with_sub(42)
    client.list_sources()
    client.list_sources()
    writer.list_sources()
    mints = [r for r in rec.requests if str(r.url) == TOKEN_URL]
    assert len(mints) == 2  # one per sub
    assert parse_qs(mints[0].content.decode()) == {"grant_type": ["client_credentials"]}
    assert parse_qs(mints[1].content.decode()) == {"grant_type": ["client_credentials"], "sub": ["42"]}
    assert mints[0].headers["Authorization"] == httpx.BasicAuth("cid", "s3cr3t-value")._auth_header
    assert [r.headers["Authorization"] for r in rec.api] == ["Bearer tok-1", "Bearer tok-1", "Bearer tok-2"]
    assert rec.api[0].headers["User-Agent"].startswith("greenhouse-export/")


@pytest.mark.parametrize(
    "token_body",
    [
        {"expires_at": "2030-01-01T00:01:00Z"},
        {"expires_at": "2030-01-01T00:01:00.000Z"},
        {"expires_at": "2030-01-01T01:01:00+01:00"},
        {"expires_in": 60},
    ],
)
def test_token_refreshed_before_expiry(token_body: dict[str, object]) -> None:
    now = {"mono": 1000.0, "wall": 1893456000.0}  # 2030-01-01T00:00:00Z
    rec = Recorder(ok([]), token_body={"access_token": "x", **token_body})
    client, _, _ = make(rec, clock=lambda: now["mono"], wall=lambda: now["wall"])
    client.list_sources()
    now["mono"] += 30  # 30 s left of 60: inside the 60 s default margin -> re-mint
    client.list_sources()
    assert rec.mints == 2


def test_token_without_expiry_lives_an_hour() -> None:
    now = {"mono": 0.0}
    rec = Recorder(ok([]), token_body={"access_token": "x"})
    client, _, _ = make(rec, clock=lambda: now["mono"])
    client.list_sources()
    now["mono"] = 3500.0
    client.list_sources()
    assert rec.mints == 1
    now["mono"] = 3550.0
    client.list_sources()
    assert rec.mints == 2


def test_shared_token_cache_across_clients() -> None:
    cache = TokenCache()
    a, rec_a, _ = make(ok([]), token_cache=cache)
    b, rec_b, _ = make(ok([]), token_cache=cache)
    a.list_sources()
    b.list_sources()
    assert rec_a.mints + rec_b.mints == 1


def test_401_remints_once_and_replays() -> None:
    def harvest(request: httpx.Request) -> httpx.Response:
        if request.headers["Authorization"] == "Bearer tok-1":
            return httpx.Response(401, json={"message": "expired"})
        return httpx.Response(201, json={"id": 5, "candidate_id": 1})

    client, rec, _ = make(harvest)
    note = client.create_note(CreateNote(candidate_id=1, user_id=2, body="hi", visibility="private"))
    assert note.id == 5
    assert rec.mints == 2
    assert json.loads(rec.api[0].content) == json.loads(rec.api[1].content)
    assert rec.api[1].headers["Authorization"] == "Bearer tok-2"


def test_second_401_surfaces() -> None:
    client, rec, _ = make(ok({"message": "nope"}, 401))
    with pytest.raises(e.AuthenticationError):
        client.list_sources()
    assert rec.mints == 2 and len(rec.api) == 2


@pytest.mark.parametrize("status", [400, 401])
def test_token_endpoint_refusal_names_client_not_secret(status: int) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json={"error": "invalid_client"})

    settings = Settings(harvest_url=HARVEST, harvest_token_url=TOKEN_URL)
    http = httpx.Client(transport=httpx.MockTransport(handler))
    client = HarvestClient(settings, CRED, sub=7, http_client=http)
    for call in (client.mint_token, client.list_sources):
        with pytest.raises(e.AuthenticationError) as info:
            call()
        assert "'cid'" in str(info.value) and "sub=7" in str(info.value)
        assert "s3cr3t" not in str(info.value)


def test_post_sent_once_on_500_get_retried_quickly() -> None:
    client, rec, sleeps = make(ok({"message": "boom"}, 500))
    with pytest.raises(e.ServerError) as info:
        client.create_candidate(CreateCandidate(first_name="A", last_name="B"))
    assert info.value.outcome_unknown
    assert len(rec.api) == 1
    with pytest.raises(e.ServerError) as info:
        client.list_jobs()
    assert not info.value.outcome_unknown
    assert len(rec.api) == 1 + 3  # quick_retries=2
    assert len(sleeps) == 2 and all(0 <= s <= 2.0 for s in sleeps)


def test_get_recovers_after_transient_failure() -> None:
    calls = {"n": 0}

    def harvest(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            raise httpx.ReadTimeout("slow", request=request)
        return httpx.Response(200, json=[{"id": 1, "name": "LinkedIn"}])

    client, _, _ = make(harvest)
    assert [s.name for s in client.list_sources()] == ["LinkedIn"]


@pytest.mark.parametrize(
    ("exc", "cls", "sent"),
    [
        (httpx.ReadTimeout, e.HarvestTimeoutError, True),
        (httpx.ConnectTimeout, e.HarvestTimeoutError, False),  # no connection: the request never left
        (httpx.ConnectError, e.HarvestConnectionError, False),
        (httpx.RemoteProtocolError, e.HarvestConnectionError, True),
        (httpx.ReadError, e.HarvestConnectionError, True),
    ],
)
def test_transport_errors_mapped_with_method_and_path(
    exc: type[httpx.TransportError], cls: type[e.HarvestError], sent: bool
) -> None:
    def harvest(request: httpx.Request) -> httpx.Response:
        raise exc("x", request=request)

    client, rec, _ = make(harvest)
    with pytest.raises(cls) as info:
        client.create_tag("Sourced")
    assert (info.value.method, info.value.path) == ("POST", "/v3/candidate_tags")
    assert info.value.outcome_unknown is sent and len(rec.api) == 1


def test_failed_mint_is_retried_and_not_an_unknown_outcome() -> None:
    class DownAuth(Recorder):
        def __call__(self, request: httpx.Request) -> httpx.Response:
            self.requests.append(request)
            raise httpx.ConnectError("down", request=request)

    rec = DownAuth(ok([]))
    client, _, sleeps = make(rec)
    with pytest.raises(e.HarvestConnectionError) as info:
        client.create_tag("x")
    assert info.value.method is None and not info.value.outcome_unknown
    assert len(sleeps) == 2
    assert rec.api == [] and len(rec.requests) == 3


def test_created_with_errors_body_is_unexpected() -> None:
    client, _, _ = make(ok({"errors": [{"message": "duplicate"}]}, 201))
    with pytest.raises(e.UnexpectedResponseError, match="duplicate"):
        client.create_tag("x")


def test_unparseable_body_is_unexpected_without_pii() -> None:
    client, _, _ = make(ok([{"id": "not-an-int", "name": "ada@example.org"}]))
    with pytest.raises(e.UnexpectedResponseError) as info:
        client.list_tags()
    assert "ada@example.org" not in str(info.value)
    client, _, _ = make(lambda r: httpx.Response(200, text="<html>"))
    with pytest.raises(e.UnexpectedResponseError, match="not JSON"):
        client.list_tags()
    client, _, _ = make(ok({"not": "a list"}))
    with pytest.raises(e.UnexpectedResponseError, match="array"):
        client.list_tags()


def test_unknown_fields_kept() -> None:
    client, _, _ = make(ok([{"id": 1, "name": "t", "brand_new": True}]))
    assert client.list_tags()[0].model_extra == {"brand_new": True}


def test_pagination_follows_next_with_only_the_cursor() -> None:
    def harvest(request: httpx.Request) -> httpx.Response:
        cursor = request.url.params.get("cursor")
        page = {None: 0, "c1": 1, "c2": 2}[cursor]
        headers = {}
        if page < 2:
            headers["Link"] = f'<{HARVEST}/v3/applications?cursor=c{page + 1}>; rel="next"'
        return httpx.Response(200, json=[{"id": page}], headers=headers)

    client, rec, _ = make(harvest)
    apps = client.list_applications(candidate_ids=[1, 2])
    assert [a.id for a in apps] == [0, 1, 2]
    first, *rest = rec.api
    assert dict(first.url.params) == {"candidate_ids": "1,2", "per_page": "500"}
    assert [dict(r.url.params) for r in rest] == [{"cursor": "c1"}, {"cursor": "c2"}]


def test_pagination_loop_detected() -> None:
    client, _, _ = make(ok([], Link=f'<{HARVEST}/v3/tags?cursor=a>; rel="next"'))
    with pytest.raises(e.UnexpectedResponseError, match="loops"):
        client.list_tags()


def test_ids_chunked_by_50_and_empty_sends_nothing() -> None:
    client, rec, _ = make(ok([]))
    assert client.get_candidates([]) == []
    assert client.list_educations([]) == []
    assert rec.requests == []
    client.get_candidates(list(range(120)))
    assert [len(r.url.params["ids"].split(",")) for r in rec.api] == [50, 50, 20]


@pytest.mark.parametrize(
    ("call", "path", "params"),
    [
        (lambda c: c.find_candidates_by_email("a@b.c"), "/v3/candidates", {"email": "a@b.c"}),
        (lambda c: c.list_users(primary_email="r@x.io"), "/v3/users", {"primary_email": "r@x.io"}),
        (lambda c: c.list_users(), "/v3/users", {}),
        (lambda c: c.list_jobs(), "/v3/jobs", {"status": "open"}),
        (lambda c: c.list_jobs(status=None), "/v3/jobs", {}),
        (lambda c: c.list_sources(), "/v3/sources", {}),
        (lambda c: c.list_prospect_pools(), "/v3/prospect_pools", {}),
        (lambda c: c.list_prospect_pool_stages([3]), "/v3/prospect_pool_stages", {"prospect_pool_ids": "3"}),
        (
            lambda c: c.list_custom_field_options("degree"),
            "/v3/custom_field_options",
            {"custom_field_key": "degree"},
        ),
        (lambda c: c.list_tags(), "/v3/candidate_tags", {}),
        (lambda c: c.list_employments([1]), "/v3/candidate_employments", {"candidate_ids": "1"}),
        (lambda c: c.list_applied_tags([1]), "/v3/applied_candidate_tags", {"candidate_ids": "1"}),
        (lambda c: c.list_notes([1]), "/v3/notes", {"candidate_ids": "1"}),
        (lambda c: c.list_applications(job_ids=[9]), "/v3/applications", {"job_ids": "9"}),
    ],
)
def test_read_routes(call: Callable[[HarvestClient], object], path: str, params: dict[str, str]) -> None:
    client, rec, _ = make(ok([]))
    assert call(client) == []
    (request,) = rec.api
    assert request.method == "GET" and request.url.path == path
    assert dict(request.url.params) == {**params, "per_page": "500"}


def test_limiter_acquired_per_request_and_budget_observed() -> None:
    gate = FakeGate()
    headers = {"X-RateLimit-Limit": "75", "X-RateLimit-Remaining": "10", "X-RateLimit-Reset": "1900000000"}
    client, _, _ = make(lambda r: httpx.Response(200, json=[], headers=headers), limiter=gate)
    client.list_tags()
    client.with_sub(3).list_tags()
    assert gate.acquired == ["cid", "cid"]
    assert gate.observed[0] == ("cid", Ticket("t1", 1), RateLimitInfo(75, 10, 1900000000.0))
    assert gate.observed[1][1] == Ticket("t2", 2)  # each answer is matched with its own send
    assert client.last_rate_limit == RateLimitInfo(75, 10, 1900000000.0)


def test_429_keeps_last_budget_blocks_shared_gate_and_is_not_retried() -> None:
    gate = FakeGate()
    state = {"n": 0}

    def harvest(request: httpx.Request) -> httpx.Response:
        state["n"] += 1
        if state["n"] == 1:
            return httpx.Response(200, json=[], headers={"X-RateLimit-Limit": "75", "X-RateLimit-Remaining": "1"})
        headers = {"Retry-After": "8", "X-RateLimit-Reset": "1009"}
        return httpx.Response(429, json={"message": "slow down"}, headers=headers)

    client, rec, _ = make(harvest, limiter=gate, wall=lambda: 1000.0)
    client.list_tags()
    with pytest.raises(e.RateLimitedError) as info:
        client.list_tags()
    assert info.value.retry_after_s == 8.0 and len(rec.api) == 2
    assert client.last_rate_limit == RateLimitInfo(75, 1, None)
    assert len(gate.observed) == 1  # the 429 taught no budget...
    assert gate.throttles == [("cid", Ticket("t2", 2), 8.0)]  # ...it blocked the credential for every worker


def test_throttled_by_gate_sends_nothing() -> None:
    class Closed(FakeGate):
        def acquire(self, key: str) -> Ticket:
            raise e.ThrottledError("wait", retry_after_s=12.0)

    client, rec, _ = make(ok([]), limiter=Closed())
    with pytest.raises(e.ThrottledError):
        client.list_tags()
    assert rec.api == []


@pytest.mark.parametrize("status", [200, 201, 400, 403, 404, 422])
def test_probe_returns_status(status: int) -> None:
    client, rec, _ = make(ok({"message": "x"}, status))
    assert client.probe("post", "/candidates") == status
    assert rec.api[0].content == b"{}" and rec.api[0].url.path == "/v3/candidates"
    assert client.probe("GET", "/v3/jobs") == status
    assert rec.api[1].content == b"" and dict(rec.api[1].url.params) == {}


@pytest.mark.parametrize(("status", "cls"), [(401, e.AuthenticationError), (429, e.RateLimitedError)])
def test_probe_raises_for_credential_and_limits(status: int, cls: type) -> None:
    client, _, _ = make(ok({"message": "x"}, status))
    with pytest.raises(cls):
        client.probe("POST", "/notes")


def test_mint_token_forces_a_new_token() -> None:
    client, rec, _ = make(ok([]))
    client.mint_token()
    client.mint_token()
    assert rec.mints == 2
    client.list_tags()
    assert rec.mints == 2 and rec.api[0].headers["Authorization"] == "Bearer tok-2"


def test_owned_http_client_closed_injected_not() -> None:
    settings = Settings(harvest_url=HARVEST, harvest_token_url=TOKEN_URL)
    owned = HarvestClient(settings, CRED)
    with owned:
        pass
    assert owned._http.is_closed
    http = httpx.Client(transport=httpx.MockTransport(ok([])))
    with HarvestClient(settings, CRED, http_client=http) as injected:
        injected.with_sub(1).close()
    assert not http.is_closed


def test_create_candidate_sends_model_body() -> None:
    body = {"candidate": {"id": 7, "first_name": "A"}, "application": None}
    client, rec, _ = make(ok(body, 201))
    made = client.create_candidate(
        CreateCandidate(first_name="A", last_name="B", email_addresses=[EmailAddress(value="a@b.c")])
    )
    assert made.candidate.id == 7 and made.application is None
    sent = json.loads(rec.api[0].content)
    assert sent == {
        "first_name": "A",
        "last_name": "B",
        "email_addresses": [{"value": "a@b.c", "type": "personal"}],
        "phone_numbers": [],
        "addresses": [],
        "website_addresses": [],
        "social_media_addresses": [],
        "custom_fields": [],
    }
