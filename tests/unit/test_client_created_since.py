"""HarvestClient.list_candidates_created through the sandbox, and the Candidate model's tolerance."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest
from pydantic import SecretStr

from shared.harvest.auth import Credential
from shared.harvest.client import CREATED_AT, HarvestClient
from shared.harvest.models import Candidate, CreateCandidate, parse_timestamp
from shared.harvest.sandbox import Sandbox, SandboxConfig
from shared.harvest.sandbox import seed as s
from shared.settings import Settings
from tests.unit.test_sandbox_support import FakeClock

START = 1_800_000_000.0  # 2027-01-15T08:00:00Z
SETTINGS = Settings(harvest_url="https://harvest.sandbox", harvest_token_url="https://harvest.sandbox/token")
CRED = Credential(client_id=s.CLIENT_ID, client_secret=SecretStr(s.CLIENT_SECRET))


class Box:
    """A sandbox, its clock, the requests a client sent it, and a way to rewrite them on the way in."""

    def __init__(self, **config: float) -> None:
        self.clock = FakeClock(START)
        self.sandbox = Sandbox(SandboxConfig(**config), clock=self.clock, sleep=lambda _s: None)
        self.sent: list[httpx.Request] = []
        self.rewrite: Callable[[httpx.Request], httpx.Request] = lambda r: r
        inner = self.sandbox.transport()

        def handler(request: httpx.Request) -> httpx.Response:
            self.sent.append(request)
            return inner.handle_request(self.rewrite(request))

        self.http = httpx.Client(transport=httpx.MockTransport(handler))

    def client(self) -> HarvestClient:
        return HarvestClient(
            SETTINGS, CRED, http_client=self.http, sleep=lambda _s: None, wall=self.clock, clock=self.clock
        )

    def create(self, last: str, at: float) -> int:
        """A candidate created at sandbox time ``at`` (by another client: its requests are not the subject)."""
        self.clock.now = at
        with httpx.Client(transport=self.sandbox.transport()) as http:
            writer = HarvestClient(SETTINGS, CRED, http_client=http, wall=self.clock, clock=self.clock)
            return writer.create_candidate(CreateCandidate(first_name="Ada", last_name=last)).candidate.id

    def list_params(self) -> list[dict[str, str]]:
        """Query parameters of each GET /v3/candidates the client sent."""
        return [dict(r.url.params) for r in self.sent if r.method == "GET" and r.url.path == "/v3/candidates"]


@pytest.fixture
def box() -> Iterator[Box]:
    b = Box()
    yield b
    b.http.close()


def _at(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


@pytest.fixture
def made(box: Box) -> dict[str, int]:
    """Candidates created at START, START+10 and START+20; the clock then at START+60."""
    out = {name: box.create(name, START + 10 * n) for n, name in enumerate(("early", "middle", "late"))}
    box.clock.now = START + 60
    return out


def test_created_since(box: Box, made: dict[str, int]) -> None:
    found = box.client().list_candidates_created(_at(START + 10))
    assert [c.id for c in found] == [made["middle"], made["late"]]
    assert all(c.created is not None and c.created >= _at(START + 10) for c in found)
    assert box.list_params() == [{CREATED_AT: "gte|2027-01-15T08:00:10.000Z", "per_page": "500"}]
    assert "created_at=gte%7C2027-01-15T08%3A00%3A10.000Z" in str(box.sent[-1].url)  # one parameter, encoded


def test_created_between(box: Box, made: dict[str, int]) -> None:
    found = box.client().list_candidates_created(_at(START), _at(START + 10))
    assert [c.id for c in found] == [made["early"], made["middle"]]
    assert box.list_params() == [
        {CREATED_AT: "gte|2027-01-15T08:00:00.000Z|lte|2027-01-15T08:00:10.000Z", "per_page": "500"}
    ]


def test_bounds_widen_to_whole_milliseconds_and_zones_become_utc(box: Box) -> None:
    cid = box.create("edge", START + 10.0125)  # rendered created_at: 08:00:10.012Z
    box.clock.now = START + 60
    since = _at(START + 10.0125)  # 08:00:10.012500: the same millisecond as the record shows
    until = datetime(2027, 1, 15, 10, 0, 10, 12_001, tzinfo=timezone(timedelta(hours=2)))
    assert [c.id for c in box.client().list_candidates_created(since, until)] == [cid]
    (params,) = box.list_params()
    assert params[CREATED_AT] == "gte|2027-01-15T08:00:10.012Z|lte|2027-01-15T08:00:10.013Z"


def test_naive_datetimes_are_utc(box: Box, made: dict[str, int]) -> None:
    naive = _at(START + 20).replace(tzinfo=None)
    assert [c.id for c in box.client().list_candidates_created(naive)] == [made["late"]]


def test_paginates_with_the_filter_on_the_first_request_only(box: Box, made: dict[str, int]) -> None:
    more = [box.create(f"more{n}", START + 30 + n) for n in range(3)]
    box.clock.now = START + 60
    client = box.client()
    client.per_page = 2
    found = client.list_candidates_created(_at(START + 10))
    assert [c.id for c in found] == [made["middle"], made["late"], *more]
    params = box.list_params()
    assert len(params) == 3 and params[0][CREATED_AT] == "gte|2027-01-15T08:00:10.000Z"
    assert all(set(p) == {"cursor"} for p in params[1:])  # the strict sandbox would 422 anything else


def test_candidates_being_created_are_not_returned_yet() -> None:
    box = Box(visibility_delay_s=5.0)
    cid = box.create("fresh", START)
    assert box.client().list_candidates_created(_at(START)) == []
    box.clock.now = START + 5
    assert [c.id for c in box.client().list_candidates_created(_at(START))] == [cid]


def _without_created_filter(request: httpx.Request) -> httpx.Request:
    """What a server that ignores the filter answers: the same list with no created_at range."""
    if request.url.path != "/v3/candidates":
        return request
    params = [(k, v) for k, v in request.url.params.multi_items() if not k.startswith("created_at")]
    return httpx.Request(request.method, request.url.copy_with(params=params), headers=request.headers)


def test_client_refilters_what_a_server_returns(box: Box, made: dict[str, int]) -> None:
    box.rewrite = _without_created_filter  # "a 200 does not prove a filter was applied"
    found = box.client().list_candidates_created(_at(START + 5), _at(START + 15))
    assert [c.id for c in found] == [made["middle"]]
    assert s.EXISTING_CANDIDATE_ID not in {c.id for c in found}


def test_client_leaves_out_candidates_without_a_readable_created_at() -> None:
    rows = [
        {"id": 1, "first_name": "A", "created_at": "2027-01-15T08:00:10.000Z"},
        {"id": 2, "first_name": "B"},
        {"id": 3, "first_name": "C", "created_at": None},
        {"id": 4, "first_name": "D", "created_at": "last tuesday"},
        {"id": 5, "first_name": "E", "created_at": "2027-01-15T08:00:11+00:00"},
    ]

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            return httpx.Response(200, json={"access_token": "t", "token_type": "Bearer", "expires_in": 3600})
        return httpx.Response(200, json=rows)

    settings = Settings(harvest_url="https://h.test", harvest_token_url="https://h.test/token")
    cred = Credential(client_id="c", client_secret=SecretStr("x"))
    with httpx.Client(transport=httpx.MockTransport(handler)) as http:
        client = HarvestClient(settings, cred, http_client=http, sleep=lambda _s: None)
        assert [c.id for c in client.list_candidates_created(_at(START))] == [1, 5]


# --- the Candidate model -------------------------------------------------------------------------


def test_candidate_tolerates_missing_and_null_members() -> None:
    bare = Candidate.model_validate({"id": 7})
    assert (bare.first_name, bare.last_name, bare.company, bare.title, bare.created) == (None,) * 5
    assert bare.phone_numbers == bare.email_addresses == bare.website_addresses == bare.social_media_addresses == []
    nulls = Candidate.model_validate(
        {
            "id": 8,
            "phone_numbers": None,
            "email_addresses": None,
            "website_addresses": None,
            "social_media_addresses": None,
            "addresses": None,
            "tags": None,
            "future_member": {"x": 1},
        }
    )
    assert nulls.phone_numbers == [] and nulls.tags == []
    assert nulls.model_extra == {"future_member": {"x": 1}}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-02T03:04:05.678Z", datetime(2026, 1, 2, 3, 4, 5, 678_000, tzinfo=UTC)),
        ("2026-01-02T03:04:05Z", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2026-01-02T05:04:05+02:00", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2026-01-02T03:04:05", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_timestamp(text: str | None, expected: datetime | None) -> None:
    assert parse_timestamp(text) == expected
    if expected is not None:
        assert Candidate(id=1, created_at=text).created == expected
