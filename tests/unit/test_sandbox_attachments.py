"""Attachments in the strict sandbox: ``POST /v3/attachments`` refusals, re-labelling, ``GET /v3/attachments``
filters and pagination, the content read-back, a lost answer after the upload landed, and the client's
``list_attachments``."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from shared import errors as e
from shared.harvest import client as harvest_client
from shared.harvest.auth import Credential
from shared.harvest.client import HarvestClient
from shared.harvest.models import Attachment, AttachmentType, CreateAttachment
from shared.harvest.sandbox import seed as s
from shared.harvest.sandbox.routes_profile import URL_TTL_S
from shared.harvest.sandbox.state import iso
from shared.harvest.scopes import REQUIRED
from shared.settings import Settings
from tests.unit.test_sandbox_support import BASE_URL, Api, Env, fields_of, make_env

PDF_BYTES = b"%PDF-1.7\n1 0 obj << >> endobj\n%%EOF\n"
PDF = base64.b64encode(PDF_BYTES).decode()
PERSON = {"first_name": "Ada", "last_name": "Quinn"}
PUBLIC_MEMBERS = {
    "id",
    "application_id",
    "candidate_id",
    "filename",
    "type",
    "content_type",
    "visibility",
    "url",
    "created_at",
    "updated_at",
}


@pytest.fixture
def env() -> Iterator[Env]:
    with make_env() as made:
        yield made


@pytest.fixture
def api(env: Env) -> Api:
    return Api(env)


def _candidate(api: Api, job_id: int = s.OPEN_JOB_ID) -> tuple[int, int]:
    """A new candidate on ``job_id``: (candidate id, application id)."""
    created = api.post("/v3/candidates", {**PERSON, "application": {"job_id": job_id}})
    assert created.status_code == 201, created.text
    return int(created.json()["candidate"]["id"]), int(created.json()["application"]["id"])


def _upload(api: Api, app_id: int, filename: str = "cv.pdf", kind: str = "resume", **extra: Any) -> dict[str, Any]:
    body = {"application_id": app_id, "filename": filename, "type": kind, "content": PDF, **extra}
    response = api.post("/v3/attachments", body)
    assert response.status_code == 201, response.text
    return dict(response.json())


# --- POST /v3/attachments ----------------------------------------------------------------------------

REFUSED: list[tuple[str, dict[str, Any], str, str]] = [
    # (case id, members over a valid resume upload (None: left out), field, message fragment)
    ("missing-filename", {"filename": None}, "filename", "is required"),
    ("blank-filename", {"filename": "  "}, "filename", "blank"),
    ("no-extension", {"filename": "resume"}, "filename", "extension"),
    ("trailing-dot", {"filename": "resume."}, "filename", "extension"),
    ("only-an-extension", {"filename": ".pdf"}, "filename", "name before"),
    ("blocklisted-extension", {"filename": "cv.EXE"}, "filename", ".exe is blocked"),
    ("blocklisted-for-its-type", {"filename": "test.html", "type": "take_home_test"}, "filename", ".html"),
    ("both-content-and-url", {"url": "https://files.example/cv.pdf"}, "content", "exactly one"),
    ("neither-content-nor-url", {"content": None}, "content", "exactly one"),
    ("bad-base64", {"content": "not base64!"}, "content", "base64"),
    ("url-safe-base64", {"content": base64.urlsafe_b64encode(b"\xfb\xff\xfe").decode()}, "content", "base64"),
    ("empty-content", {"content": ""}, "content", "non-empty"),
    ("url-not-http", {"content": None, "url": "ftp://files.example/cv.pdf"}, "url", "http"),
    ("v1-content-type-member", {"content_type": "application/pdf"}, "content_type", "additional property"),
    ("bad-type", {"type": "cv"}, "type", "one of"),
    ("missing-type", {"type": None}, "type", "is required"),
    ("bad-visibility", {"visibility": "everyone"}, "visibility", "one of"),
    ("application-id-not-int", {"application_id": "1"}, "application_id", "integer"),
    ("unknown-application", {"application_id": 1}, "application_id", "does not exist"),
]


@pytest.mark.parametrize(("extra", "field", "fragment"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_refused_uploads_name_the_field_and_write_nothing(
    api: Api, extra: dict[str, Any], field: str, fragment: str
) -> None:
    _, app_id = _candidate(api)
    body = {"application_id": app_id, "filename": "cv.pdf", "type": "resume", "content": PDF, **extra}
    response = api.post("/v3/attachments", {k: v for k, v in body.items() if v is not None})
    assert response.status_code == 422, response.text
    assert response.json()["message"] == "Validation error"
    errors = {err["field"]: err["message"] for err in response.json()["errors"]}
    assert fragment in errors[field], errors
    assert api.env.sandbox.state.attachments == {}


def test_blocklist_is_per_type_and_per_org(api: Api) -> None:
    _, app_id = _candidate(api)
    assert _upload(api, app_id, "portfolio.html", "other")["filename"] == "portfolio.html"  # only take-home tests
    api.env.sandbox.block_extensions(["PDF"], attachment_type="resume")
    refused = api.post(
        "/v3/attachments", {"application_id": app_id, "filename": "cv.pdf", "type": "resume", "content": PDF}
    )
    assert refused.status_code == 422 and fields_of(refused) == ["filename"]
    assert _upload(api, app_id, "cv.pdf", "cover_letter")["type"] == "cover_letter"
    api.env.sandbox.block_extensions([], attachment_type="resume")
    assert _upload(api, app_id)["type"] == "resume"
    with pytest.raises(ValueError, match="unknown attachment type"):
        api.env.sandbox.block_extensions([".pdf"], attachment_type="cv")


def test_decoded_size_cap_is_a_knob() -> None:
    with make_env(max_attachment_bytes=len(PDF_BYTES)) as env:
        api = Api(env)
        _, app_id = _candidate(api)
        assert _upload(api, app_id)["filename"] == "cv.pdf"  # exactly the cap
        bigger = base64.b64encode(PDF_BYTES + b" ").decode()
        refused = api.post(
            "/v3/attachments", {"application_id": app_id, "filename": "cv.pdf", "type": "resume", "content": bigger}
        )
        assert refused.status_code == 422
        assert f"largest allowed is {len(PDF_BYTES)}" in refused.json()["errors"][0]["message"]
    with pytest.raises(ValueError, match="max_attachment_bytes"):
        make_env(max_attachment_bytes=0)


def test_content_type_can_be_required_as_v1_did() -> None:
    """Whether v3 takes ``content_type`` is unknown: the sandbox can refuse it (default) or require it."""
    with make_env(attachment_content_type="required") as env:
        api = Api(env)
        _, app_id = _candidate(api)
        body = {"application_id": app_id, "filename": "cv.pdf", "type": "resume", "content": PDF}
        missing = api.post("/v3/attachments", body)
        assert missing.status_code == 422 and fields_of(missing) == ["content_type"]
        assert "required" in missing.json()["errors"][0]["message"]
        unknown = api.post("/v3/attachments", {**body, "content_type": "application/x-unknown"})
        assert unknown.status_code == 422 and fields_of(unknown) == ["content_type"]
        assert env.sandbox.state.attachments == {}
        made = _upload(api, app_id, content_type="application/pdf")
        assert made["content_type"] == "application/pdf"
        url = {"application_id": app_id, "filename": "cv.pdf", "type": "resume", "url": "https://files.example/cv.pdf"}
        assert api.post("/v3/attachments", url).status_code == 201  # only base64 content needs it
    with pytest.raises(ValueError, match="attachment_content_type"):
        make_env(attachment_content_type="sometimes")


def test_accepted_upload_looks_like_harvests(api: Api) -> None:
    cid, app_id = _candidate(api)
    made = _upload(api, app_id, "Ada Quinn CV.pdf")
    assert set(made) == PUBLIC_MEMBERS  # no private member (content, source url) leaks
    assert (made["application_id"], made["candidate_id"]) == (app_id, cid)
    assert (made["filename"], made["type"], made["content_type"]) == ("Ada Quinn CV.pdf", "resume", "application/pdf")
    assert made["visibility"] == "public"
    assert made["created_at"] == made["updated_at"] == iso(api.env.clock.now)
    url = httpx.URL(made["url"])
    assert f"{url.scheme}://{url.host}" == BASE_URL
    assert url.path == f"/_sandbox/attachments/{made['id']}/content"
    assert int(url.params["expires"]) == int(api.env.clock.now + URL_TTL_S)
    assert _upload(api, app_id, "offer.docx", "offer_letter")["visibility"] == "admin_only"  # default from type
    assert _upload(api, app_id, "offer.pdf", "offer_letter", visibility="private")["visibility"] == "private"
    by_url = api.post(
        "/v3/attachments",
        {"application_id": app_id, "filename": "letter.txt", "type": "cover_letter", "url": "https://x.example/l"},
    )
    assert by_url.status_code == 201 and by_url.json()["content_type"] == "text/plain"
    snap = next(c for c in api.env.sandbox.state_snapshot()["candidates"] if c["id"] == cid)
    assert [(a["filename"], a["size"], a["source_url"]) for a in snap["attachments"]] == [
        ("Ada Quinn CV.pdf", len(PDF_BYTES), None),
        ("offer.docx", len(PDF_BYTES), None),
        ("offer.pdf", len(PDF_BYTES), None),
        ("letter.txt", None, "https://x.example/l"),
    ]


def test_new_resume_or_cover_letter_relabels_the_previous_one_of_its_application(api: Api) -> None:
    _, app_id = _candidate(api)
    _, other_app = _candidate(api, s.OPEN_JOB_2_ID)
    old = _upload(api, app_id, "old.pdf")
    letter = _upload(api, app_id, "letter.pdf", "cover_letter")
    elsewhere = _upload(api, other_app, "elsewhere.pdf")
    api.env.clock.advance(60)
    new = _upload(api, app_id, "new.pdf")
    rows = {a["id"]: a for a in api.get("/v3/attachments", application_ids=f"{app_id},{other_app}").json()}
    assert rows[old["id"]]["type"] == "other" and rows[old["id"]]["updated_at"] == new["created_at"]
    assert rows[old["id"]]["created_at"] == old["created_at"]
    assert rows[new["id"]]["type"] == "resume"
    assert rows[letter["id"]]["type"] == "cover_letter"  # another type: untouched
    assert rows[elsewhere["id"]]["type"] == "resume"  # another application: untouched


# --- GET /v3/attachments -----------------------------------------------------------------------------


def _follow(api: Api, first: httpx.Response) -> list[list[dict[str, Any]]]:
    assert first.status_code == 200, first.text
    pages, response = [first.json()], first
    while "next" in response.links:
        response = api.env.client.get(response.links["next"]["url"], headers=api.auth)
        assert response.status_code == 200, response.text
        pages.append(response.json())
    return pages


def test_list_filters(api: Api) -> None:
    cid, app_id = _candidate(api)
    cid2, app2 = _candidate(api)
    first = _upload(api, app_id, "a.pdf")
    api.env.clock.advance(10)
    letter = _upload(api, app_id, "b.pdf", "cover_letter")
    other = _upload(api, app2, "c.pdf")
    seeded = _upload(api, s.EXISTING_APPLICATION_ID, "d.pdf")

    def ids(**params: str) -> list[int]:
        response = api.get("/v3/attachments", **params)
        assert response.status_code == 200, response.text
        return [a["id"] for a in response.json()]

    assert ids() == [first["id"], letter["id"], other["id"], seeded["id"]]
    assert ids(application_ids=str(app_id)) == [first["id"], letter["id"]]
    assert ids(candidate_ids=f"{cid2},{s.EXISTING_CANDIDATE_ID}") == [other["id"], seeded["id"]]
    assert ids(candidate_ids=str(cid), application_ids=str(app2)) == []
    assert ids(type="cover_letter") == [letter["id"]]
    assert ids(type="resume", candidate_ids=str(cid)) == [first["id"]]
    assert ids(ids=f"{other['id']},{first['id']}") == [first["id"], other["id"]]
    assert ids(created_at=f"gte|{letter['created_at']}") == [letter["id"], other["id"], seeded["id"]]
    assert ids(created_at=f"lte|{first['created_at']}") == [first["id"]]
    assert ids(created_at=f"gt|{first['created_at']}") == [letter["id"], other["id"], seeded["id"]]
    assert ids(created_at=f"lt|{letter['created_at']}") == [first["id"]]
    assert ids(updated_at=f"gte|{letter['updated_at']}|lte|{letter['updated_at']}") == [
        letter["id"],
        other["id"],
        seeded["id"],
    ]
    narrow = api.get("/v3/attachments", ids=str(first["id"]), fields="filename,type").json()
    assert narrow == [{"id": first["id"], "filename": "a.pdf", "type": "resume"}]


def test_list_follows_merges_and_hides_candidates_still_being_created() -> None:
    with make_env(visibility_delay_s=5) as env:
        api = Api(env)
        cid, app_id = _candidate(api)
        made = _upload(api, app_id)
        assert api.get("/v3/attachments", candidate_ids=str(cid)).json() == []  # Greenhouse is still creating it
        env.clock.advance(5)
        (row,) = api.get("/v3/attachments", candidate_ids=str(cid)).json()
        assert row["id"] == made["id"]
        merged = api.post(f"/v3/candidates/{s.EXISTING_CANDIDATE_ID}/merge", {"secondary_candidate_id": cid})
        assert merged.status_code == 200, merged.text
        (moved,) = api.get("/v3/attachments", candidate_ids=str(s.EXISTING_CANDIDATE_ID)).json()
        assert (moved["id"], moved["candidate_id"]) == (made["id"], s.EXISTING_CANDIDATE_ID)


def test_list_pagination_keeps_the_filters(api: Api) -> None:
    _, app_id = _candidate(api)
    _, app2 = _candidate(api)
    made = [_upload(api, app_id, f"{n}.pdf", "other")["id"] for n in range(5)]
    _upload(api, app2, "x.pdf", "other")
    pages = _follow(api, api.get("/v3/attachments", application_ids=str(app_id), type="other", per_page=2))
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [a["id"] for page in pages for a in page] == made


BAD_QUERIES: list[tuple[str, dict[str, str], str]] = [
    ("unknown-param", {"foo": "1"}, "foo"),
    ("singular-candidate-id", {"candidate_id": "1"}, "candidate_id"),
    ("singular-application-id", {"application_id": "1"}, "application_id"),
    ("v1-updated-after", {"updated_after": "2026-01-01"}, "updated_after"),
    ("too-many-application-ids", {"application_ids": ",".join(str(i) for i in range(1, 52))}, "application_ids"),
    ("too-many-candidate-ids", {"candidate_ids": ",".join(str(i) for i in range(1, 52))}, "candidate_ids"),
    ("too-many-ids", {"ids": ",".join(str(i) for i in range(1, 52))}, "ids"),
    ("non-numeric-ids", {"application_ids": "1,x"}, "application_ids"),
    ("bad-type", {"type": "cv"}, "type"),
    ("per-page-zero", {"per_page": "0"}, "per_page"),
    ("per-page-501", {"per_page": "501"}, "per_page"),
    ("naive-timestamp", {"created_at": "gte|2026-01-01T00:00:00"}, "created_at"),
    ("date-not-timestamp", {"updated_at": "lte|2026-01-01"}, "updated_at"),
    ("no-operator", {"created_at": "2026-01-01T00:00:00Z"}, "created_at"),
    ("unknown-operator", {"updated_at": "since|2026-01-01T00:00:00Z"}, "updated_at"),
    ("reversed-range", {"created_at": "gte|2026-02-01T00:00:00Z|lte|2026-01-01T00:00:00Z"}, "created_at"),
    ("bracket-form", {"created_at[gte]": "2026-01-01T00:00:00Z"}, "created_at[gte]"),
    (
        "created-and-updated",
        {"created_at": "gte|2026-01-01T00:00:00Z", "updated_at": "gte|2026-01-01T00:00:00Z"},
        "updated_at",
    ),
    ("unknown-field", {"fields": "id,content"}, "fields"),
    ("unknown-cursor", {"cursor": "bm9wZQ=="}, "cursor"),
]


@pytest.mark.parametrize(("params", "field"), [q[1:] for q in BAD_QUERIES], ids=[q[0] for q in BAD_QUERIES])
def test_bad_list_queries_are_422(api: Api, params: dict[str, str], field: str) -> None:
    response = api.get("/v3/attachments", **params)
    assert response.status_code == 422, response.text
    assert field in fields_of(response)


def test_cursor_rules(api: Api) -> None:
    _, app_id = _candidate(api)
    for n in range(3):
        _upload(api, app_id, f"{n}.pdf", "other")
    first = api.get("/v3/attachments", per_page=1)
    cursor = httpx.URL(first.links["next"]["url"]).params["cursor"]
    mixed = api.get("/v3/attachments", cursor=cursor, type="other")
    assert mixed.status_code == 422
    assert mixed.json()["errors"][0] == {"field": "cursor", "message": "cursor must be the only query parameter"}
    assert api.get("/v3/notes", cursor=cursor).status_code == 422  # a cursor belongs to its route
    assert api.get("/v3/attachments", cursor=cursor).status_code == 200


def test_list_needs_its_scope_and_a_site_admin(env: Env) -> None:
    env.sandbox.add_credential("writer", "pw", [sc for sc in s.ALL_SCOPES if sc != "harvest:attachments:list"])
    no_scope = env.client.get("/v3/attachments", headers=env.headers(client_id="writer", secret="pw"))
    assert no_scope.status_code == 403
    assert no_scope.json()["message"] == "Missing required scope: harvest:attachments:list"
    recruiter = env.client.get("/v3/attachments", headers=env.headers(sub=s.RECRUITER_USER_ID))
    assert recruiter.status_code == 403 and "Site Admin" in recruiter.json()["message"]


def test_list_attachments_is_a_required_permission() -> None:
    scopes = [p.scope for p in REQUIRED]
    assert scopes.index("harvest:attachments:list") == scopes.index("harvest:attachments:create") + 1
    (perm,) = [p for p in REQUIRED if p.scope == "harvest:attachments:list"]
    assert (perm.name, perm.method, perm.path) == ("List Attachments", "GET", "/attachments")
    assert "harvest:attachments:list" in s.ALL_SCOPES


# --- reading the content back ------------------------------------------------------------------------


def test_content_read_back_through_the_helper_and_the_url(api: Api) -> None:
    _, app_id = _candidate(api)
    made = _upload(api, app_id, "Ada Quinn.pdf")
    sandbox = api.env.sandbox
    assert sandbox.attachment_content(made["id"]) == PDF_BYTES
    download = api.env.client.get(made["url"])  # no token: a signed link, like Greenhouse's
    assert download.status_code == 200 and download.content == PDF_BYTES
    assert download.headers["Content-Type"] == "application/pdf"
    assert "Ada%20Quinn.pdf" in download.headers["Content-Disposition"]
    assert api.env.client.get(f"/_sandbox/attachments/{made['id']}/content").content == PDF_BYTES  # no expiry
    api.env.clock.advance(URL_TTL_S)
    assert api.env.client.get(made["url"]).status_code == 403  # the url lived 7 days
    (fresh,) = Api(api.env).get("/v3/attachments", ids=str(made["id"])).json()  # a week on: a new token too
    assert api.env.client.get(fresh["url"]).content == PDF_BYTES  # listing again hands out a fresh one


def test_content_read_back_of_unknown_or_url_uploads(api: Api) -> None:
    _, app_id = _candidate(api)
    by_url = api.post(
        "/v3/attachments",
        {"application_id": app_id, "filename": "cv.pdf", "type": "resume", "url": "https://files.example/cv.pdf"},
    ).json()
    sandbox = api.env.sandbox
    with pytest.raises(KeyError, match="uploaded by url"):
        sandbox.attachment_content(by_url["id"])
    with pytest.raises(KeyError, match="does not exist"):
        sandbox.attachment_content(1)
    assert api.env.client.get(by_url["url"]).status_code == 404
    assert api.env.client.get("/_sandbox/attachments/1/content").status_code == 404
    assert api.env.client.get("/_sandbox/attachments/1/content?expires=soon").status_code == 400


# --- a lost answer after the upload landed -----------------------------------------------------------


@pytest.mark.parametrize("kind", ["drop_after", "error_after"])
def test_upload_lands_although_the_answer_is_lost(api: Api, kind: str) -> None:
    _, app_id = _candidate(api)
    api.env.sandbox.inject_fault(kind, method="POST", path="/v3/attachments")
    body = {"application_id": app_id, "filename": "cv.pdf", "type": "resume", "content": PDF}
    if kind == "drop_after":
        with pytest.raises(httpx.RemoteProtocolError):
            api.post("/v3/attachments", body)
    else:
        assert api.post("/v3/attachments", body).status_code == 500
    (landed,) = api.get("/v3/attachments", application_ids=str(app_id)).json()
    assert landed["filename"] == "cv.pdf"
    assert api.env.sandbox.attachment_content(landed["id"]) == PDF_BYTES
    assert api.env.sandbox.stats()["faults"][kind] == 1


# --- the client ----------------------------------------------------------------------------------------


@pytest.fixture
def client(env: Env) -> Iterator[HarvestClient]:
    settings = Settings(harvest_url=BASE_URL, harvest_token_url=f"{BASE_URL}/token")
    cred = Credential(client_id=s.CLIENT_ID, client_secret=SecretStr(s.CLIENT_SECRET))
    made = HarvestClient(settings, cred, http_client=env.client, sleep=lambda _: None, wall=env.clock, clock=env.clock)
    yield made
    made.close()


def _create(client: HarvestClient, app_id: int, filename: str, kind: AttachmentType = "resume") -> Attachment:
    return client.create_attachment(CreateAttachment(application_id=app_id, filename=filename, type=kind, content=PDF))


def test_client_lists_attachments(api: Api, client: HarvestClient, env: Env) -> None:
    cid, app_id = _candidate(api)
    _, app2 = _candidate(api)
    resume = _create(client, app_id, "cv.pdf")
    letter = _create(client, app_id, "letter.pdf", "cover_letter")
    other = _create(client, app2, "other.pdf")
    assert resume.candidate_id == cid and resume.url is not None and resume.content_type == "application/pdf"

    assert [a.id for a in client.list_attachments(application_ids=[app_id])] == [resume.id, letter.id]
    assert [a.id for a in client.list_attachments(candidate_ids=[cid], type="cover_letter")] == [letter.id]
    assert [a.id for a in client.list_attachments(type="resume")] == [resume.id, other.id]
    assert [a.id for a in client.list_attachments(candidate_ids=[cid], application_ids=[app_id, app2])] == [
        resume.id,
        letter.id,
    ]
    assert client.list_attachments(application_ids=[]) == []  # an empty filter asks for nothing
    (listed,) = client.list_attachments(application_ids=[app2])
    assert (listed.filename, listed.type, listed.visibility) == ("other.pdf", "resume", "public")
    assert env.sandbox.attachment_content(listed.id or 0) == PDF_BYTES

    before = env.sandbox.stats()["requests"]["GET /v3/attachments"]["200"]
    many = [app_id, *range(1, 120)]  # 120 ids: three requests of at most 50
    assert [a.id for a in client.list_attachments(application_ids=many)] == [resume.id, letter.id]
    assert env.sandbox.stats()["requests"]["GET /v3/attachments"]["200"] == before + 3

    client.per_page = 1  # follows the cursor; the strict sandbox 422s anything but the cursor after page 1
    assert [a.id for a in client.list_attachments()] == [resume.id, letter.id, other.id]


def test_client_upload_with_a_lost_answer_is_found_by_listing(api: Api, client: HarvestClient, env: Env) -> None:
    _, app_id = _candidate(api)
    env.sandbox.inject_fault("drop_after", method="POST", path="/v3/attachments")
    with pytest.raises(e.HarvestConnectionError) as info:
        _create(client, app_id, "cv.pdf")
    assert info.value.outcome_unknown
    (landed,) = client.list_attachments(application_ids=[app_id], type="resume")
    assert landed.filename == "cv.pdf"


def test_client_refused_upload(api: Api, client: HarvestClient) -> None:
    _, app_id = _candidate(api)
    with pytest.raises(e.InvalidRequestError) as info:
        _create(client, app_id, "setup.exe")
    assert [f.field for f in info.value.field_errors] == ["filename"]


def test_client_learns_whether_greenhouse_wants_content_type(
    api: Api, client: HarvestClient, env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sent without ``content_type`` (the v3 page has none); a 422 naming it sends the upload again once with
    it, and later uploads carry it at once; a Greenhouse that then refuses it is followed back."""
    monkeypatch.setattr(harvest_client, "_CONTENT_TYPE_WANTED", {})  # what this process learned, for this test
    _, app_id = _candidate(api)

    def answers() -> dict[str, int]:
        return dict(env.sandbox.stats()["requests"].get("POST /v3/attachments", {}))

    assert _create(client, app_id, "plain.pdf").content_type == "application/pdf"
    assert answers() == {"201": 1}  # the default sandbox refuses the member: never sent

    env.sandbox.config.attachment_content_type = "required"
    first = _create(client, app_id, "first.pdf")
    assert answers() == {"201": 2, "422": 1}  # refused without it, then sent with it
    assert env.sandbox.state.attachments[first.id or 0]["content_type"] == "application/pdf"
    _create(client, app_id, "second.pdf")
    assert answers() == {"201": 3, "422": 1}  # learned: sent with it at once

    env.sandbox.config.attachment_content_type = "refused"
    _create(client, app_id, "third.pdf")
    assert answers() == {"201": 4, "422": 2}  # refused as an unknown member: back to without
    _create(client, app_id, "fourth.pdf")
    assert answers() == {"201": 5, "422": 2}

    with pytest.raises(e.InvalidRequestError):  # a 422 about anything else is not sent twice
        _create(client, app_id, "setup.exe")
    assert answers() == {"201": 5, "422": 3}
