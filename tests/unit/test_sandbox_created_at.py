"""GET /v3/candidates?created_at[gte]=...&created_at[lte]=...: the bracket form, strict like Harvest."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from shared.harvest.sandbox import seed as s
from tests.unit.test_sandbox_support import Api, Env, fields_of, make_env

GTE, LTE = "created_at[gte]", "created_at[lte]"
START = 1_800_000_000.0  # the FakeClock's start: 2027-01-15T08:00:00Z
ISO_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


@pytest.fixture
def env() -> Iterator[Env]:
    with make_env(visibility_delay_s=5) as e:
        yield e


@pytest.fixture
def api(env: Env) -> Api:
    return Api(env)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _create(api: Api, last: str) -> int:
    body = {"first_name": "Ada", "last_name": last}
    return int(api.post("/v3/candidates", body).json()["candidate"]["id"])


def _ids(response: httpx.Response) -> list[int]:
    assert response.status_code == 200, response.text
    return [c["id"] for c in response.json()]


@pytest.fixture
def made(api: Api) -> dict[str, int]:
    """Three candidates created 10 s apart (at START, START+10, START+20), all visible afterwards."""
    out = {}
    for n, name in enumerate(("early", "middle", "late")):
        api.env.clock.now = START + 10 * n
        out[name] = _create(api, name)
    api.env.clock.now = START + 60
    return out


def test_rendered_candidates_carry_created_at_in_harvest_form(api: Api) -> None:
    api.env.clock.now = START + 0.123456
    created = api.post("/v3/candidates", {"first_name": "Ada", "last_name": "Quinn"}).json()["candidate"]
    assert created["created_at"] == "2027-01-15T08:00:00.123Z"
    api.env.clock.advance(5)
    listed = api.get("/v3/candidates").json()
    assert all(ISO_MS.match(c["created_at"]) for c in listed)
    assert {c["id"]: c["created_at"] for c in listed}[created["id"]] == created["created_at"]


def test_gte_and_lte_are_inclusive_bounds(api: Api, made: dict[str, int]) -> None:
    assert _ids(api.get("/v3/candidates", **{GTE: _iso(START + 10)})) == [made["middle"], made["late"]]
    assert _ids(api.get("/v3/candidates", **{GTE: _iso(START + 10.001)})) == [made["late"]]
    both = api.get("/v3/candidates", **{GTE: _iso(START), LTE: _iso(START + 10)})
    assert _ids(both) == [made["early"], made["middle"]]
    upto = _ids(api.get("/v3/candidates", **{LTE: _iso(START + 9.999)}))
    assert upto == [s.EXISTING_CANDIDATE_ID, made["early"]]  # the seeded candidate was created in 2026


def test_offsets_and_fractions_are_accepted(api: Api, made: dict[str, int]) -> None:
    at = datetime.fromtimestamp(START + 10, UTC)
    for text in (at.astimezone().isoformat(), at.isoformat(), "2027-01-15T10:00:10+02:00", "2027-01-15T08:00:10Z"):
        assert _ids(api.get("/v3/candidates", **{GTE: text})) == [made["middle"], made["late"]], text


def test_combined_with_email(api: Api) -> None:
    body = {"first_name": "E", "last_name": "M", "email_addresses": [{"value": "em@example.org", "type": "work"}]}
    cid = api.post("/v3/candidates", body).json()["candidate"]["id"]
    api.env.clock.advance(5)
    assert _ids(api.get("/v3/candidates", email="em@example.org", **{GTE: _iso(START)})) == [cid]
    assert _ids(api.get("/v3/candidates", email="em@example.org", **{GTE: _iso(START + 1)})) == []
    assert _ids(api.get("/v3/candidates", email=s.EXISTING_EMAIL, **{GTE: _iso(START)})) == []


def test_filter_stays_with_the_cursor(api: Api) -> None:
    ids = []
    for n in range(5):
        ids.append(_create(api, f"n{n}"))
        api.env.clock.advance(1)
    api.env.clock.advance(5)
    first = api.get("/v3/candidates", per_page=2, **{GTE: _iso(START + 1)})
    pages, response = [_ids(first)], first
    while "next" in response.links:
        url = response.links["next"]["url"]
        assert set(httpx.URL(url).params) == {"cursor"}
        assert api.env.client.get(url + f"&{GTE}={_iso(START)}", headers=api.auth).status_code == 422
        response = api.env.client.get(url, headers=api.auth)
        pages.append(_ids(response))
    assert pages == [ids[1:3], ids[3:5]]


def test_candidates_being_created_are_not_listed(api: Api) -> None:
    cid = _create(api, "fresh")
    assert _ids(api.get("/v3/candidates", **{GTE: _iso(START)})) == []
    api.env.clock.advance(4.999)
    assert _ids(api.get("/v3/candidates", **{GTE: _iso(START)})) == []
    api.env.clock.advance(0.001)
    assert _ids(api.get("/v3/candidates", **{GTE: _iso(START)})) == [cid]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        (GTE, "yesterday"),
        (GTE, ""),
        (GTE, "2027-01-15"),  # a date, not a timestamp
        (GTE, "2027-01-15T08:00:00"),  # no time zone
        (GTE, "2027-13-15T08:00:00Z"),
        (LTE, "2027-01-15T08:00:00 00:00"),  # an unencoded "+" arrives as a space
        (LTE, "1800000000"),
    ],
)
def test_unparseable_timestamps_are_422_naming_the_field(api: Api, name: str, value: str) -> None:
    response = api.get("/v3/candidates", **{name: value})
    assert response.status_code == 422
    assert fields_of(response) == [name]


def test_reversed_range_is_422(api: Api) -> None:
    response = api.get("/v3/candidates", **{GTE: _iso(START + 1), LTE: _iso(START)})
    assert response.status_code == 422 and fields_of(response) == [LTE]


@pytest.mark.parametrize(
    "params",
    [
        {"created_after": "2027-01-15T08:00:00Z"},  # v1 style
        {"created_before": "2027-01-15T08:00:00Z"},
        {"created_at": f"gte|{_iso(START)}"},  # the pipe form: not what this sandbox (or the client) speaks
        {"created_at[gt]": _iso(START)},
        {"updated_at[gte]": _iso(START)},
    ],
    ids=["created_after", "created_before", "pipe-form", "gt", "updated_at"],
)
def test_other_spellings_are_unknown_query_params(api: Api, params: dict[str, str]) -> None:
    response = api.get("/v3/candidates", **params)
    assert response.status_code == 422
    (name,) = params
    assert response.json()["errors"] == [{"field": name, "message": f"Invalid query params: {name}"}]
