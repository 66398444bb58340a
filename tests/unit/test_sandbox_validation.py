"""The sandbox is strict: each kind of request Harvest rejects is rejected, naming the field;
the bodies our own request models produce are accepted."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest

from shared.harvest import models as m
from shared.harvest.sandbox import seed as s
from tests.unit.test_sandbox_support import Api, Env, fields_of, make_env

PDF = base64.b64encode(b"%PDF-1.7 fake").decode()
PERSON = {"first_name": "Ada", "last_name": "Quinn"}


@pytest.fixture
def env() -> Iterator[Env]:
    with make_env() as e:
        yield e


@pytest.fixture
def api(env: Env) -> Api:
    return Api(env)


def _app_id(api: Api) -> int:
    created = api.post("/v3/candidates", {**PERSON, "application": {"job_id": s.OPEN_JOB_ID}})
    assert created.status_code == 201
    return int(created.json()["application"]["id"])


REJECTED_BODIES: list[tuple[str, str, dict[str, Any], str, str]] = [
    # (case id, path, body, field, message fragment)
    ("unknown-member", "/v3/candidates", {**PERSON, "nickname": "A"}, "nickname", "additional property"),
    ("missing-first-name", "/v3/candidates", {"last_name": "Q"}, "first_name", "is required"),
    ("blank-last-name", "/v3/candidates", {"first_name": "A", "last_name": " "}, "last_name", "blank"),
    ("name-not-string", "/v3/candidates", {"first_name": 1, "last_name": "Q"}, "first_name", "string"),
    (
        "bad-email-type",
        "/v3/candidates",
        {**PERSON, "email_addresses": [{"value": "a@example.org", "type": "home"}]},
        "email_addresses[0].type",
        "one of",
    ),
    (
        "bad-phone-type",
        "/v3/candidates",
        {**PERSON, "phone_numbers": [{"value": "+1", "type": "cell"}]},
        "phone_numbers[0].type",
        "one of",
    ),
    (
        "typed-social-media",
        "/v3/candidates",
        {**PERSON, "social_media_addresses": [{"value": "x", "type": "personal"}]},
        "social_media_addresses[0].type",
        "additional property",
    ),
    (
        "v1-applications-array",
        "/v3/candidates",
        {**PERSON, "applications": [{"job_id": s.OPEN_JOB_ID}]},
        "applications",
        "additional property",
    ),
    (
        "v1-educations-member",
        "/v3/candidates",
        {**PERSON, "educations": []},
        "educations",
        "additional property",
    ),
    (
        "closed-job",
        "/v3/candidates",
        {**PERSON, "application": {"job_id": s.CLOSED_JOB_ID}},
        "application.job_id",
        f"job {s.CLOSED_JOB_ID} is not open",
    ),
    (
        "draft-job",
        "/v3/candidates",
        {**PERSON, "application": {"job_id": s.DRAFT_JOB_ID}},
        "application.job_id",
        "is not open",
    ),
    ("unknown-job", "/v3/candidates", {**PERSON, "application": {"job_id": 1}}, "application.job_id", "exist"),
    (
        "unknown-source",
        "/v3/candidates",
        {**PERSON, "application": {"job_id": s.OPEN_JOB_ID, "source_id": 1}},
        "application.source_id",
        "does not exist",
    ),
    (
        "referrer-unknown-user",
        "/v3/candidates",
        {**PERSON, "application": {"job_id": s.OPEN_JOB_ID, "referrer": {"type": "id", "value": 1}}},
        "application.referrer.value",
        "does not exist",
    ),
    (
        "referrer-bad-type",
        "/v3/candidates",
        {**PERSON, "application": {"job_id": s.OPEN_JOB_ID, "referrer": {"type": "name", "value": "x"}}},
        "application.referrer.type",
        "one of",
    ),
    (
        "recruiter-deactivated",
        "/v3/candidates",
        {**PERSON, "application": {"job_id": s.OPEN_JOB_ID, "recruiter_id": s.DEACTIVATED_USER_ID}},
        "application.recruiter_id",
        "deactivated",
    ),
    (
        "job-app-with-prospect-member",
        "/v3/candidates",
        {**PERSON, "application": {"job_id": s.OPEN_JOB_ID, "prospect_pool_id": s.POOL_ID}},
        "application.prospect_pool_id",
        "additional property",
    ),
    (
        "prospect-string-true",
        "/v3/candidates",
        {**PERSON, "application": {"prospect": "true"}},
        "application.prospect",
        "boolean true",
    ),
    (
        "prospect-closed-job",
        "/v3/candidates",
        {**PERSON, "application": {"prospect": True, "job_ids": [s.CLOSED_JOB_ID]}},
        "application.job_ids",
        "closed",
    ),
    (
        "stage-outside-pool",
        "/v3/candidates",
        {
            **PERSON,
            "application": {
                "prospect": True,
                "prospect_pool_id": s.POOL_ID,
                "prospect_pool_stage_id": s.POOL_2_STAGE_ID,
            },
        },
        "application.prospect_pool_stage_id",
        "does not belong",
    ),
    (
        "stage-without-pool",
        "/v3/candidates",
        {**PERSON, "application": {"prospect": True, "prospect_pool_stage_id": s.STAGE_ID}},
        "application.prospect_pool_stage_id",
        "requires prospect_pool_id",
    ),
    (
        "deactivated-prospect-owner",
        "/v3/candidates",
        {**PERSON, "application": {"prospect": True, "prospect_owner_id": s.DEACTIVATED_USER_ID}},
        "application.prospect_owner_id",
        "deactivated",
    ),
    (
        "unknown-custom-field",
        "/v3/candidates",
        {**PERSON, "custom_fields": [{"name_key": "hobbies", "value": "x"}]},
        "custom_fields[0].name_key",
        "unknown",
    ),
    (
        "application-unknown-candidate",
        "/v3/applications",
        {"candidate_id": 1, "job_id": s.OPEN_JOB_ID},
        "candidate_id",
        "does not exist",
    ),
    (
        "application-duplicate-job",
        "/v3/applications",
        {"candidate_id": s.EXISTING_CANDIDATE_ID, "job_id": s.OPEN_JOB_ID},
        "job_id",
        "already has an application",
    ),
    (
        "application-without-job",
        "/v3/applications",
        {"candidate_id": s.EXISTING_CANDIDATE_ID},
        "job_id",
        "is required",
    ),
    (
        "education-degree-id-as-school",
        "/v3/candidate_educations",
        {
            "candidate_id": s.EXISTING_CANDIDATE_ID,
            "school_name_custom_field_option_id": s.DEGREE_OPTIONS["PhD"],
        },
        "school_name_custom_field_option_id",
        "not a school_name",
    ),
    (
        "education-unknown-option",
        "/v3/candidate_educations",
        {"candidate_id": s.EXISTING_CANDIDATE_ID, "degree_custom_field_option_id": 1},
        "degree_custom_field_option_id",
        "not a degree",
    ),
    (
        "education-bad-date",
        "/v3/candidate_educations",
        {"candidate_id": s.EXISTING_CANDIDATE_ID, "start_date": "2012-13-01"},
        "start_date",
        "YYYY-MM-DD",
    ),
    (
        "education-timestamp-date",
        "/v3/candidate_educations",
        {"candidate_id": s.EXISTING_CANDIDATE_ID, "start_date": "2012-09-01T00:00:00Z"},
        "start_date",
        "YYYY-MM-DD",
    ),
    (
        "education-end-before-start",
        "/v3/candidate_educations",
        {"candidate_id": s.EXISTING_CANDIDATE_ID, "start_date": "2016-09-01", "end_date": "2012-06-30"},
        "end_date",
        "on or after",
    ),
    (
        "education-unknown-candidate",
        "/v3/candidate_educations",
        {"candidate_id": 1},
        "candidate_id",
        "does not exist",
    ),
    (
        "employment-missing-start",
        "/v3/candidate_employments",
        {"candidate_id": s.EXISTING_CANDIDATE_ID, "company_name": "N", "title": "T"},
        "start_date",
        "is required",
    ),
    ("tag-taken-ignoring-case", "/v3/candidate_tags", {"name": "backend"}, "name", "already been taken"),
    (
        "applied-tag-v1-name",
        "/v3/applied_candidate_tags",
        {"candidate_id": s.EXISTING_CANDIDATE_ID, "tag_id": s.BACKEND_TAG_ID},
        "tag_id",
        "additional property",
    ),
    (
        "applied-tag-unknown-tag",
        "/v3/applied_candidate_tags",
        {"candidate_id": s.EXISTING_CANDIDATE_ID, "candidate_tag_id": 1},
        "candidate_tag_id",
        "does not exist",
    ),
    (
        "note-lower-case-type",
        "/v3/notes",
        {
            "candidate_id": s.EXISTING_CANDIDATE_ID,
            "user_id": s.RECRUITER_USER_ID,
            "body": "hi",
            "visibility": "private",
            "note_type": "note",
        },
        "note_type",
        "one of: NOTE",
    ),
    (
        "note-missing-visibility",
        "/v3/notes",
        {"candidate_id": s.EXISTING_CANDIDATE_ID, "user_id": s.RECRUITER_USER_ID, "body": "hi", "note_type": "NOTE"},
        "visibility",
        "is required",
    ),
    (
        "note-unknown-user",
        "/v3/notes",
        {
            "candidate_id": s.EXISTING_CANDIDATE_ID,
            "user_id": 1,
            "body": "hi",
            "visibility": "private",
            "note_type": "NOTE",
        },
        "user_id",
        "does not exist",
    ),
]


@pytest.mark.parametrize(
    ("path", "body", "field", "fragment"), [row[1:] for row in REJECTED_BODIES], ids=[row[0] for row in REJECTED_BODIES]
)
def test_rejected_bodies_name_the_field(api: Api, path: str, body: dict, field: str, fragment: str) -> None:
    before = api.env.sandbox.state_snapshot()
    response = api.post(path, body)
    assert response.status_code == 422, response.text
    assert response.json()["message"] == "Validation error"
    errors = {e["field"]: e["message"] for e in response.json()["errors"]}
    assert field in errors, errors
    assert fragment in errors[field]
    assert api.env.sandbox.state_snapshot() == before


ATTACHMENT_CASES: list[tuple[str, dict[str, Any], str, str]] = [
    ("both-content-and-url", {"content": PDF, "url": "https://x.example/cv.pdf"}, "content", "exactly one"),
    ("neither-content-nor-url", {}, "content", "exactly one"),
    ("content-type-member", {"content": PDF, "content_type": "application/pdf"}, "content_type", "additional"),
    ("no-extension", {"content": PDF, "filename": "cv"}, "filename", "extension"),
    ("bad-type", {"content": PDF, "type": "cv"}, "type", "one of"),
    ("bad-base64", {"content": "not base64!"}, "content", "base64"),
    ("bad-visibility", {"content": PDF, "visibility": "everyone"}, "visibility", "one of"),
    ("unknown-application", {"content": PDF, "application_id": 1}, "application_id", "does not exist"),
]


@pytest.mark.parametrize(
    ("extra", "field", "fragment"), [c[1:] for c in ATTACHMENT_CASES], ids=[c[0] for c in ATTACHMENT_CASES]
)
def test_attachment_rejections(api: Api, extra: dict[str, Any], field: str, fragment: str) -> None:
    body = {"application_id": _app_id(api), "filename": "cv.pdf", "type": "resume", **extra}
    response = api.post("/v3/attachments", body)
    assert response.status_code == 422, response.text
    errors = {e["field"]: e["message"] for e in response.json()["errors"]}
    assert fragment in errors[field]
    assert api.env.sandbox.state_snapshot()["candidates"][-1]["attachments"] == []


def test_applying_a_tag_twice_is_rejected(api: Api) -> None:
    body = {"candidate_id": s.EXISTING_CANDIDATE_ID, "candidate_tag_id": s.REFERRAL_TAG_ID}
    assert api.post("/v3/applied_candidate_tags", body).status_code == 201
    again = api.post("/v3/applied_candidate_tags", body)
    assert again.status_code == 422
    assert fields_of(again) == ["candidate_tag_id"]


def test_non_object_and_non_json_bodies_are_rejected(api: Api) -> None:
    auth = api.auth
    assert api.post("/v3/candidates", [PERSON]).status_code == 422
    raw = api.env.client.post("/v3/candidates", content=b"{not json", headers=auth)
    assert raw.status_code == 422
    assert fields_of(raw) == ["body"]


def test_bodies_built_by_our_request_models_are_accepted(api: Api) -> None:
    """The sandbox accepts exactly the shapes ``shared.harvest.models`` sends."""
    job = m.CreateCandidate(
        first_name="Ada",
        last_name="Quinn",
        company="Northwind",
        title="Staff Engineer",
        email_addresses=[m.EmailAddress(value="ada@example.org", type="work")],
        phone_numbers=[m.PhoneNumber(value="+14155550100")],
        addresses=[m.Address(value="Berlin")],
        website_addresses=[m.WebsiteAddress(value="https://ada.example.org", type="blog")],
        social_media_addresses=[m.SocialMediaAddress(value="https://linkedin.example/ada")],
        custom_fields=[m.CustomFieldValue(name_key=s.SKILLS_FIELD_KEY, value="Python, Go")],
        application=m.JobApplication(
            job_id=s.OPEN_JOB_ID,
            source_id=s.SOURCE_ID,
            referrer=m.Referrer(type="id", value=s.RECRUITER_USER_ID),
            recruiter_id=s.RECRUITER_USER_ID,
            coordinator_id=s.RECRUITER_LOWER_USER_ID,
        ),
    )
    created = api.post("/v3/candidates", job.to_body())
    assert created.status_code == 201, created.text
    parsed = m.CreatedCandidate.model_validate(created.json())
    assert parsed.application is not None and parsed.application.job_id == s.OPEN_JOB_ID
    assert parsed.application.referrer_id == s.RECRUITER_USER_ID
    assert parsed.candidate.custom_fields == {s.SKILLS_FIELD_KEY: "Python, Go"}
    cid, app_id = parsed.candidate.id, parsed.application.id

    prospect = m.ProspectApplication(
        job_ids=[s.OPEN_JOB_2_ID, s.DRAFT_JOB_ID],
        source_id=s.SOURCE_ID,
        referrer=m.Referrer(type="outside", value="A friend"),
        prospect_pool_id=s.POOL_ID,
        prospect_pool_stage_id=s.STAGE_2_ID,
        prospect_owner_id=s.RECRUITER_USER_ID,
    )
    as_prospect = api.post(
        "/v3/candidates", m.CreateCandidate(first_name="P", last_name="Q", application=prospect).to_body()
    )
    assert as_prospect.status_code == 201, as_prospect.text
    app = m.Application.model_validate(as_prospect.json()["application"])
    assert (app.prospect, app.job_id, app.prospective_job_ids) == (True, None, [s.OPEN_JOB_2_ID, s.DRAFT_JOB_ID])
    assert (app.prospect_pool_id, app.prospect_pool_stage_id) == (s.POOL_ID, s.STAGE_2_ID)
    bare = api.post("/v3/candidates", m.CreateCandidate(first_name="No", last_name="App").to_body())
    assert bare.status_code == 201 and bare.json()["application"] is None

    requests: list[tuple[str, m._Request]] = [
        ("/v3/applications", m.CreateApplication.for_candidate(cid, m.JobApplication(job_id=s.OPEN_JOB_2_ID))),
        ("/v3/applications", m.CreateApplication.for_candidate(cid, prospect)),
        (
            "/v3/candidate_educations",
            m.CreateEducation(
                candidate_id=cid,
                school_name_custom_field_option_id=s.SCHOOL_OPTIONS["Siena College"],
                degree_custom_field_option_id=s.DEGREE_OPTIONS["PhD"],
                discipline_custom_field_option_id=s.DISCIPLINE_OPTIONS["Physics"],
                start_date=date(2012, 9, 1),
                end_date=date(2016, 6, 30),
            ),
        ),
        (
            "/v3/candidate_employments",
            m.CreateEmployment(
                candidate_id=cid, company_name="Northwind", title="Engineer", start_date=date(2019, 3, 1)
            ),
        ),
        ("/v3/candidate_tags", m.CreateTag(name="Sourced: SeekOut")),
        ("/v3/applied_candidate_tags", m.ApplyTag(candidate_id=cid, candidate_tag_id=s.BACKEND_TAG_ID)),
        (
            "/v3/attachments",
            m.CreateAttachment(application_id=app_id, filename="Ada CV.pdf", type="resume", content=PDF),
        ),
        (
            "/v3/attachments",
            m.CreateAttachment(
                application_id=app_id, filename="letter.docx", type="cover_letter", url="https://x.example/l"
            ),
        ),
        (
            "/v3/notes",
            m.CreateNote(
                candidate_id=cid, application_id=app_id, user_id=s.RECRUITER_USER_ID, body="Hi", visibility="private"
            ),
        ),
    ]
    for path, model in requests:
        response = api.post(path, model.to_body())
        assert response.status_code == 201, (path, response.text)
    snap = next(c for c in api.env.sandbox.state_snapshot()["candidates"] if c["id"] == cid)
    assert len(snap["applications"]) == 3
    assert snap["educations"][0]["school_name"] == "Siena College"
    assert snap["tags"] == ["Backend"]
    assert [a["type"] for a in snap["attachments"]] == ["resume", "cover_letter"]
    assert snap["notes"][0]["visibility"] == "privately_visible"
    assert len(snap["employments"]) == 1


def test_second_resume_relabels_the_first_as_other(api: Api) -> None:
    app_id = _app_id(api)
    for name in ("old.pdf", "new.pdf"):
        body = {"application_id": app_id, "filename": name, "type": "resume", "content": PDF}
        assert api.post("/v3/attachments", body).status_code == 201
    attachments = api.env.sandbox.state_snapshot()["candidates"][-1]["attachments"]
    assert [(a["filename"], a["type"]) for a in attachments] == [("old.pdf", "other"), ("new.pdf", "resume")]
