"""GET /v3/candidates?created_at=gte|<ts>|lte|<ts> (and updated_at): v3's one-parameter range, strict like Harvest."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from shared.harvest.sandbox import seed as s
from tests.unit.test_sandbox_support import Api, Env, fields_of, make_env

CREATED = "created_at"
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


def _range(*pairs: tuple[str, float]) -> dict[str, str]:
    """``{"created_at": "op|<ts>|op|<ts>"}`` from (operator, epoch seconds) pairs."""
    return {CREATED: "|".join(f"{op}|{_iso(ts)}" for op, ts in pairs)}


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
    assert _ids(api.get("/v3/candidates", **_range(("gte", START + 10)))) == [made["middle"], made["late"]]
    assert _ids(api.get("/v3/candidates", **_range(("gte", START + 10.001)))) == [made["late"]]
    both = api.get("/v3/candidates", **_range(("gte", START), ("lte", START + 10)))
    assert _ids(both) == [made["early"], made["middle"]]
    reversed_order = api.get("/v3/candidates", **_range(("lte", START + 10), ("gte", START)))
    assert _ids(reversed_order) == [made["early"], made["middle"]]
    upto = _ids(api.get("/v3/candidates", **_range(("lte", START + 9.999))))
    assert upto == [s.EXISTING_CANDIDATE_ID, made["early"]]  # the seeded candidate was created in 2026


def test_gt_and_lt_are_strict_bounds(api: Api, made: dict[str, int]) -> None:
    assert _ids(api.get("/v3/candidates", **_range(("gt", START + 10)))) == [made["late"]]
    assert _ids(api.get("/v3/candidates", **_range(("lt", START + 10)))) == [s.EXISTING_CANDIDATE_ID, made["early"]]
    assert _ids(api.get("/v3/candidates", **_range(("gt", START), ("lt", START + 20)))) == [made["middle"]]
    assert _ids(api.get("/v3/candidates", **_range(("gte", START + 10), ("lte", START + 10)))) == [made["middle"]]


def test_the_pipe_can_travel_unencoded(api: Api, made: dict[str, int]) -> None:
    url = f"/v3/candidates?created_at=gte|{_iso(START + 20)}"
    assert _ids(api.env.client.get(url, headers=api.auth)) == [made["late"]]


def test_updated_at_range(api: Api, made: dict[str, int]) -> None:
    api.env.clock.now = START + 100
    edited = api.patch(f"/v3/candidates/{made['early']}", {"title": "Staff"})
    assert edited.status_code == 200, edited.text
    assert _ids(api.get("/v3/candidates", updated_at=f"gte|{_iso(START + 100)}")) == [made["early"]]
    assert _ids(api.get("/v3/candidates", updated_at=f"lt|{_iso(START + 100)}")) == [
        s.EXISTING_CANDIDATE_ID,
        made["middle"],
        made["late"],
    ]


def test_created_at_and_updated_at_together_are_422(api: Api) -> None:
    response = api.get("/v3/candidates", created_at=f"gte|{_iso(START)}", updated_at=f"gte|{_iso(START)}")
    assert response.status_code == 422
    assert fields_of(response) == ["created_at", "updated_at"]


def test_offsets_and_fractions_are_accepted(api: Api, made: dict[str, int]) -> None:
    at = datetime.fromtimestamp(START + 10, UTC)
    for text in (at.astimezone().isoformat(), at.isoformat(), "2027-01-15T10:00:10+02:00", "2027-01-15T08:00:10Z"):
        assert _ids(api.get("/v3/candidates", created_at=f"gte|{text}")) == [made["middle"], made["late"]], text


def test_combined_with_email(api: Api) -> None:
    body = {"first_name": "E", "last_name": "M", "email_addresses": [{"value": "em@example.org", "type": "work"}]}
    cid = api.post("/v3/candidates", body).json()["candidate"]["id"]
    api.env.clock.advance(5)
    assert _ids(api.get("/v3/candidates", email="em@example.org", **_range(("gte", START)))) == [cid]
    assert _ids(api.get("/v3/candidates", email="em@example.org", **_range(("gte", START + 1)))) == []
    assert _ids(api.get("/v3/candidates", email=s.EXISTING_EMAIL, **_range(("gte", START)))) == []


def test_filter_stays_with_the_cursor(api: Api) -> None:
    ids = []
    for n in range(5):
        ids.append(_create(api, f"n{n}"))
        api.env.clock.advance(1)
    api.env.clock.advance(5)
    first = api.get("/v3/candidates", per_page=2, **_range(("gte", START + 1)))
    pages, response = [_ids(first)], first
    while "next" in response.links:
        url = response.links["next"]["url"]
        assert set(httpx.URL(url).params) == {"cursor"}
        assert api.env.client.get(url + f"&{CREATED}=gte|{_iso(START)}", headers=api.auth).status_code == 422
        response = api.env.client.get(url, headers=api.auth)
        pages.append(_ids(response))
    assert pages == [ids[1:3], ids[3:5]]


def test_candidates_being_created_are_not_listed(api: Api) -> None:
    cid = _create(api, "fresh")
    assert _ids(api.get("/v3/candidates", **_range(("gte", START)))) == []
    api.env.clock.advance(4.999)
    assert _ids(api.get("/v3/candidates", **_range(("gte", START)))) == []
    api.env.clock.advance(0.001)
    assert _ids(api.get("/v3/candidates", **_range(("gte", START)))) == [cid]


@pytest.mark.parametrize(
    "value",
    [
        "gte|yesterday",
        "gte|",
        "gte|2027-01-15",  # a date, not a timestamp
        "gte|2027-01-15T08:00:00",  # no time zone
        "gte|2027-13-15T08:00:00Z",
        "lte|2027-01-15T08:00:00 00:00",  # an unencoded "+" arrives as a space
        "lte|1800000000",
    ],
)
def test_unparseable_timestamps_are_422_naming_the_parameter(api: Api, value: str) -> None:
    response = api.get("/v3/candidates", created_at=value)
    assert response.status_code == 422
    assert fields_of(response) == [CREATED]
    assert "ISO 8601" in response.json()["errors"][0]["message"]


@pytest.mark.parametrize(
    "value",
    [
        "",
        "2027-01-15T08:00:00Z",  # a bare timestamp: no operator
        "gte",
        "after|2027-01-15T08:00:00Z",
        "GTE|2027-01-15T08:00:00Z",
        "gte=2027-01-15T08:00:00Z",
        "gte|2027-01-15T08:00:00Z|lte",
        "gte|2027-01-15T08:00:00Z|lte|2027-01-16T08:00:00Z|lt|2027-01-17T08:00:00Z",
        "gte|2027-01-15T08:00:00Z|gt|2027-01-14T08:00:00Z",  # two lower bounds
        "lte|2027-01-15T08:00:00Z|lte|2027-01-16T08:00:00Z",
    ],
)
def test_malformed_ranges_are_422_naming_the_parameter(api: Api, value: str) -> None:
    response = api.get("/v3/candidates", created_at=value)
    assert response.status_code == 422, value
    assert fields_of(response) == [CREATED]


@pytest.mark.parametrize(
    "pairs",
    [(("gte", START + 1), ("lte", START)), (("gt", START), ("lte", START)), (("gte", START), ("lt", START))],
    ids=["reversed", "gt-equal", "lt-equal"],
)
def test_empty_ranges_are_422(api: Api, pairs: tuple[tuple[str, float], ...]) -> None:
    response = api.get("/v3/candidates", **_range(*pairs))
    assert response.status_code == 422 and fields_of(response) == [CREATED]


@pytest.mark.parametrize(
    "params",
    [
        {"created_after": "2027-01-15T08:00:00Z"},  # v1 style
        {"created_before": "2027-01-15T08:00:00Z"},
        {"created_at[gte]": _iso(START)},  # the bracket form: not a v3 parameter
        {"created_at[gt]": _iso(START)},
        {"updated_at[gte]": _iso(START)},
    ],
    ids=["created_after", "created_before", "bracket-gte", "bracket-gt", "bracket-updated_at"],
)
def test_other_spellings_are_unknown_query_params(api: Api, params: dict[str, str]) -> None:
    response = api.get("/v3/candidates", **params)
    assert response.status_code == 422
    (name,) = params
    assert response.json()["errors"] == [{"field": name, "message": f"Invalid query params: {name}"}]


def test_the_bracket_form_with_both_ends_is_refused_as_unknown_params(api: Api) -> None:
    response = api.get("/v3/candidates", **{"created_at[gte]": _iso(START), "created_at[lte]": _iso(START + 1)})
    assert response.status_code == 422
    message = "Invalid query params: created_at[gte], created_at[lte]"
    assert response.json() == {
        "message": "Validation error",
        "errors": [{"field": "created_at[gte]", "message": message}, {"field": "created_at[lte]", "message": message}],
    }
