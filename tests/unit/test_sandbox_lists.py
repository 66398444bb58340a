"""v3 list conventions: bare arrays, per_page, cursor pagination, filters, asynchronous visibility, 404s."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from shared.harvest.sandbox import seed as s
from tests.unit.test_sandbox_support import BASE_URL, Api, Env, fields_of, make_env


@pytest.fixture
def env() -> Iterator[Env]:
    with make_env(visibility_delay_s=5) as e:
        yield e


@pytest.fixture
def api(env: Env) -> Api:
    return Api(env)


def _follow(api: Api, first: httpx.Response) -> list[list[dict]]:
    pages, response = [first.json()], first
    while "next" in response.links:
        url = response.links["next"]["url"]
        assert url.startswith(f"{BASE_URL}/v3/")
        response = api.env.client.get(url, headers=api.auth)
        assert response.status_code == 200, response.text
        pages.append(response.json())
    return pages


def test_pagination_across_several_pages(api: Api) -> None:
    for n in range(7):
        assert api.post("/v3/candidate_tags", {"name": f"Tag {n}"}).status_code == 201
    first = api.get("/v3/candidate_tags", per_page=4)
    assert first.status_code == 200
    pages = _follow(api, first)
    assert [len(p) for p in pages] == [4, 4, 1]
    ids = [t["id"] for page in pages for t in page]
    assert ids == sorted(ids) and len(set(ids)) == 9
    assert "next" not in api.get("/v3/candidate_tags").links  # default per_page 100 fits all


def test_cursor_keeps_the_first_requests_filters(api: Api) -> None:
    cid = s.EXISTING_CANDIDATE_ID
    for job in (s.OPEN_JOB_2_ID,):
        assert api.post("/v3/applications", {"candidate_id": cid, "job_id": job}).status_code == 201
    assert (
        api.post(
            "/v3/candidates", {"first_name": "O", "last_name": "T", "application": {"job_id": s.OPEN_JOB_ID}}
        ).status_code
        == 201
    )
    api.env.clock.advance(5)
    pages = _follow(api, api.get("/v3/applications", candidate_ids=str(cid), per_page=1))
    assert [len(p) for p in pages] == [1, 1]
    assert {p[0]["candidate_id"] for p in pages} == {cid}


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/v3/candidates", {"foo": "1"}, "foo"),
        ("/v3/applications", {"candidate_id": "1"}, "candidate_id"),
        ("/v3/candidates", {"updated_after": "2026-01-01"}, "updated_after"),
        ("/v3/jobs", {"per_page": "0"}, "per_page"),
        ("/v3/jobs", {"per_page": "501"}, "per_page"),
        ("/v3/jobs", {"per_page": "ten"}, "per_page"),
        ("/v3/jobs", {"status": "active"}, "status"),
        ("/v3/jobs", {"ids": ",".join(str(i) for i in range(1, 52))}, "ids"),
        ("/v3/jobs", {"ids": "1,x"}, "ids"),
        ("/v3/custom_field_options", {}, "custom_field_key"),
        ("/v3/custom_field_options", {"custom_field_key": "schools"}, "custom_field_key"),
        ("/v3/prospect_pools", {"active": "yes"}, "active"),
        ("/v3/candidates", {"cursor": "bm9wZQ=="}, "cursor"),
    ],
)
def test_bad_query_params_are_422(api: Api, path: str, params: dict[str, str], field: str) -> None:
    response = api.get(path, **params)
    assert response.status_code == 422, response.text
    assert field in fields_of(response)


def test_unknown_query_param_message(api: Api) -> None:
    response = api.get("/v3/users", x="1")
    assert response.json()["errors"][0]["message"] == "Invalid query params: x"


def test_cursor_must_be_the_only_param_and_belongs_to_its_route(api: Api) -> None:
    first = api.get("/v3/users", per_page=1)
    cursor = httpx.URL(first.links["next"]["url"]).params["cursor"]
    mixed = api.get("/v3/users", cursor=cursor, per_page=1)
    assert mixed.status_code == 422
    assert mixed.json()["errors"][0] == {"field": "cursor", "message": "cursor must be the only query parameter"}
    assert api.get("/v3/jobs", cursor=cursor).status_code == 422
    assert api.get("/v3/users", cursor=cursor).status_code == 200


def test_filters(api: Api) -> None:
    users = api.get("/v3/users", primary_email=s.RECRUITER_LOWER_EMAIL.upper()).json()
    assert {u["id"] for u in users} == {s.RECRUITER_USER_ID, s.RECRUITER_LOWER_USER_ID}
    assert [j["id"] for j in api.get("/v3/jobs", status="open").json()] == [s.OPEN_JOB_ID, s.OPEN_JOB_2_ID]
    assert [j["status"] for j in api.get("/v3/jobs", ids=str(s.CLOSED_JOB_ID)).json()] == ["closed"]
    degrees = api.get("/v3/custom_field_options", custom_field_key="degree", active="true").json()
    assert {d["name"]: d["id"] for d in degrees} == s.DEGREE_OPTIONS
    assert all(d["custom_field_key"] == "degree" for d in degrees)
    stages = api.get("/v3/prospect_pool_stages", prospect_pool_ids=str(s.POOL_ID)).json()
    assert [st["id"] for st in stages] == [s.STAGE_ID, s.STAGE_2_ID]
    sources = api.get("/v3/sources").json()
    assert {"id": s.SOURCE_ID, "name": "SeekOut", "type": {"id": s.SOURCE_TYPE_ID, "name": "Prospecting"}} in sources
    assert len(api.get("/v3/openings", job_ids=str(s.OPEN_JOB_ID)).json()) == 1
    assert len(api.get("/v3/close_reasons").json()) == 2
    assert [p["id"] for p in api.get("/v3/prospect_pools", ids=f"{s.POOL_2_ID}").json()] == [s.POOL_2_ID]
    assert [f["name_key"] for f in api.get("/v3/custom_fields", field_type="candidate").json()] == ["skills"]


def test_email_lookup_is_exact_and_case_insensitive(api: Api) -> None:
    found = api.get("/v3/candidates", email="Existing.Person@EXAMPLE.org").json()
    assert [c["id"] for c in found] == [s.EXISTING_CANDIDATE_ID]
    assert api.get("/v3/candidates", email="existing.person@example.or").json() == []


def test_new_candidates_are_invisible_for_the_visibility_delay(api: Api) -> None:
    body = {
        "first_name": "Late",
        "last_name": "Comer",
        "email_addresses": [{"value": "late@example.org", "type": "personal"}],
        "application": {"job_id": s.OPEN_JOB_ID},
    }
    cid = api.post("/v3/candidates", body).json()["candidate"]["id"]
    assert api.get("/v3/candidates", ids=str(cid)).json() == []
    assert api.get("/v3/candidates", email="late@example.org").json() == []
    assert api.get("/v3/applications", candidate_ids=str(cid)).json() == []
    api.env.clock.advance(4.9)
    assert api.get("/v3/candidates", email="late@example.org").json() == []
    api.env.clock.advance(0.1)
    assert [c["id"] for c in api.get("/v3/candidates", ids=str(cid)).json()] == [cid]
    assert [c["id"] for c in api.get("/v3/candidates", email="LATE@example.org").json()] == [cid]
    assert len(api.get("/v3/applications", candidate_ids=str(cid)).json()) == 1


def test_not_found_shapes(api: Api) -> None:
    single = api.get(f"/v3/candidates/{s.EXISTING_CANDIDATE_ID}")
    assert single.status_code == 404
    assert single.json() == {"message": "Resource not found"}
    assert api.get("/v3/nothing").json() == {"message": "Resource not found"}
    missing = api.delete("/v3/candidates/1")
    assert missing.status_code == 404
    assert missing.json()["message"] == "Resource not found" and missing.json()["errors"]
    assert api.patch("/v3/applications/1", {}).status_code == 404
    assert api.delete("/v3/candidate_educations/1").status_code == 404
    assert api.env.client.get("/elsewhere").status_code == 404


def test_update_delete_merge_anonymize(api: Api) -> None:
    def create(first: str, email: str) -> int:
        body = {"first_name": first, "last_name": "X", "email_addresses": [{"value": email, "type": "work"}]}
        return int(api.post("/v3/candidates", body).json()["candidate"]["id"])

    a, b = create("A", "a@example.org"), create("B", "b@example.org")
    patched = api.patch(f"/v3/candidates/{a}", {"title": "CTO", "phone_numbers": [{"value": "+1", "type": "work"}]})
    assert patched.status_code == 200 and patched.json()["title"] == "CTO"
    assert api.patch(f"/v3/candidates/{a}", {"application": {}}).status_code == 422
    emp = {"candidate_id": b, "company_name": "N", "title": "T", "start_date": "2020-01-01"}
    assert api.post("/v3/candidate_employments", emp).status_code == 201
    merged = api.post(f"/v3/candidates/{a}/merge", {"secondary_candidate_id": b})
    assert merged.status_code == 200
    assert {e["value"] for e in merged.json()["email_addresses"]} == {"a@example.org", "b@example.org"}
    snap = {c["id"]: c for c in api.env.sandbox.state_snapshot()["candidates"]}
    assert b not in snap and len(snap[a]["employments"]) == 1
    anon = api.patch(f"/v3/candidates/{a}/anonymize", {"fields": ["full_name", "email_addresses"]})
    assert anon.status_code == 200 and anon.json()["email_addresses"] == []
    assert api.patch(f"/v3/candidates/{a}/anonymize", {"fields": ["shoe_size"]}).status_code == 422
    assert api.delete(f"/v3/candidates/{a}").status_code == 204
    assert a not in {c["id"] for c in api.env.sandbox.state_snapshot()["candidates"]}


def test_update_application_and_delete_children(api: Api) -> None:
    app_id = api.get("/v3/applications", candidate_ids=str(s.EXISTING_CANDIDATE_ID)).json()[0]["id"]
    updated = api.patch(f"/v3/applications/{app_id}", {"source_id": s.SOURCE_ID})
    assert updated.status_code == 200 and updated.json()["source_id"] == s.SOURCE_ID
    bad = api.patch(f"/v3/applications/{app_id}", {"recruiter_id": s.DEACTIVATED_USER_ID})
    assert bad.status_code == 422 and fields_of(bad) == ["recruiter_id"]
    edu = api.post("/v3/candidate_educations", {"candidate_id": s.EXISTING_CANDIDATE_ID}).json()
    listed = api.get("/v3/candidate_educations", candidate_ids=str(s.EXISTING_CANDIDATE_ID)).json()
    assert [e["id"] for e in listed] == [edu["id"]]
    assert api.delete(f"/v3/candidate_educations/{edu['id']}").status_code == 204
    assert api.get("/v3/candidate_educations", candidate_ids=str(s.EXISTING_CANDIDATE_ID)).json() == []
