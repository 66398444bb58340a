"""Every HarvestClient method against the strict sandbox through MockTransport.

The ``check_*`` scenarios take a :data:`Make` factory so tests/integration/test_client_http.py runs the
same assertions over real HTTP.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from shared import errors as e
from shared.harvest.auth import Credential
from shared.harvest.client import HarvestClient
from shared.harvest.models import (
    CreateApplication,
    CreateAttachment,
    CreateCandidate,
    CreateEducation,
    CreateEmployment,
    CreateNote,
    EmailAddress,
    JobApplication,
    ProspectApplication,
)
from shared.harvest.sandbox import Sandbox, SandboxConfig, seed
from shared.settings import Settings

Make = Callable[..., HarvestClient]
"""``make(sub=None, client_id=CLIENT_ID, secret=CLIENT_SECRET, timeout_s=None) -> HarvestClient``."""

SEED_CRED = Credential(client_id=seed.CLIENT_ID, client_secret=SecretStr(seed.CLIENT_SECRET))


class Clock:
    """A settable clock shared by the sandbox and the client (tokens, windows)."""

    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


def client_for(
    settings: Settings,
    http: httpx.Client,
    clock: Callable[[], float] | None = None,
    *,
    sub: int | None = None,
    client_id: str = seed.CLIENT_ID,
    secret: str = seed.CLIENT_SECRET,
) -> HarvestClient:
    cred = Credential(client_id=client_id, client_secret=SecretStr(secret))
    kw: dict[str, Any] = {"sleep": lambda s: None}
    if clock is not None:
        kw.update(wall=clock, clock=clock)
    return HarvestClient(settings, cred, sub=sub, http_client=http, **kw)


# --- scenarios (shared with the real-HTTP tests) ----------------------------------------------------


def check_lookups(make: Make) -> None:
    admin = make()
    assert seed.SOURCE_ID in {s.id for s in admin.list_sources()}
    jobs = admin.list_jobs()
    assert seed.OPEN_JOB_ID in {j.id for j in jobs} and all(j.status == "open" for j in jobs)
    assert seed.CLOSED_JOB_ID in {j.id for j in admin.list_jobs(status=None)}
    (user,) = admin.list_users(primary_email=seed.ADMIN_EMAIL)
    assert user.id == seed.ADMIN_USER_ID and user.site_admin
    assert seed.POOL_ID in {p.id for p in admin.list_prospect_pools()}
    stages = admin.list_prospect_pool_stages([seed.POOL_ID])
    assert seed.STAGE_ID in {s.id for s in stages} and {s.prospect_pool_id for s in stages} == {seed.POOL_ID}
    assert len(admin.list_prospect_pool_stages()) >= len(stages)
    degrees = {o.id for o in admin.list_custom_field_options("degree")}
    assert set(seed.DEGREE_OPTIONS.values()) <= degrees
    assert seed.BACKEND_TAG_ID in {t.id for t in admin.list_tags()}
    (existing,) = admin.find_candidates_by_email(seed.EXISTING_EMAIL.upper())
    assert existing.id == seed.EXISTING_CANDIDATE_ID
    assert [c.id for c in admin.get_candidates([seed.EXISTING_CANDIDATE_ID])] == [seed.EXISTING_CANDIDATE_ID]
    assert admin.find_candidates_by_email("nobody@example.org") == []


def check_writes(make: Make) -> None:
    admin, writer = make(), make(sub=seed.RECRUITER_USER_ID)
    made = writer.create_candidate(
        CreateCandidate(
            first_name="Ada",
            last_name="Quinn",
            email_addresses=[EmailAddress(value="ada.quinn@example.org")],
            application=ProspectApplication(
                prospect_pool_id=seed.POOL_ID, prospect_pool_stage_id=seed.STAGE_ID, source_id=seed.SOURCE_ID
            ),
        )
    )
    cid = made.candidate.id
    assert made.application is not None and made.application.prospect
    app = writer.create_application(
        CreateApplication.for_candidate(cid, JobApplication(job_id=seed.OPEN_JOB_ID, source_id=seed.SOURCE_ID))
    )
    assert app.candidate_id == cid and app.job_id == seed.OPEN_JOB_ID
    edu = writer.create_education(
        CreateEducation(candidate_id=cid, degree_custom_field_option_id=seed.DEGREE_OPTIONS["PhD"])
    )
    emp = writer.create_employment(
        CreateEmployment(candidate_id=cid, company_name="Northwind", title="Engineer", start_date=date(2020, 1, 1))
    )
    tag = writer.create_tag("Sourced: client test")
    applied = writer.apply_tag(cid, tag.id)
    assert (applied.candidate_id, applied.candidate_tag_id) == (cid, tag.id)
    attachment = writer.create_attachment(
        CreateAttachment(
            application_id=app.id,
            filename="cv.pdf",
            type="resume",
            content=base64.b64encode(b"%PDF-1.7").decode(),
        )
    )
    assert attachment.application_id == app.id
    note = writer.create_note(
        CreateNote(candidate_id=cid, user_id=seed.RECRUITER_USER_ID, body="hello", visibility="private")
    )
    assert [c.id for c in admin.find_candidates_by_email("ADA.QUINN@example.org")] == [cid]
    assert {a.id for a in admin.list_applications(candidate_ids=[cid])} == {made.application.id, app.id}
    assert [a.id for a in admin.list_applications(candidate_ids=[cid], job_ids=[seed.OPEN_JOB_ID])] == [app.id]
    assert app.id in {a.id for a in admin.list_applications(job_ids=[seed.OPEN_JOB_ID])}
    assert [x.id for x in admin.list_educations([cid])] == [edu.id]
    assert [x.id for x in admin.list_employments([cid])] == [emp.id]
    assert [x.id for x in admin.list_applied_tags([cid])] == [applied.id]
    assert note.id in {x.id for x in admin.list_notes([cid])}


def check_pagination(make: Make) -> None:
    admin = make()
    made = [admin.create_tag(f"page-tag-{i}").id for i in range(5)]
    admin.per_page = 2
    listed = [t.id for t in admin.list_tags()]
    assert len(listed) == len(set(listed)) and set(made) <= set(listed)  # the strict sandbox 422s extra params


def check_forbidden(make: Make, sandbox_add: Callable[[str, str, list[str]], None]) -> None:
    sandbox_add("narrow", "narrow-secret", ["harvest:candidates:list"])
    narrow = make(client_id="narrow", secret="narrow-secret")
    with pytest.raises(e.PermissionDeniedError) as info:
        narrow.create_tag("x")
    assert info.value.missing_scope == "harvest:candidate_tags:create"
    assert narrow.probe("POST", "/candidate_tags") == 403
    assert narrow.probe("GET", "/candidates") == 200
    with pytest.raises(e.PermissionDeniedError):
        make(sub=seed.RECRUITER_USER_ID).list_jobs()  # list endpoints need a Site Admin sub


def check_validation(make: Make) -> None:
    with pytest.raises(e.InvalidRequestError) as info:
        make().create_education(CreateEducation(candidate_id=1))
    assert [f.field for f in info.value.field_errors] == ["candidate_id"]
    assert make().probe("POST", "/candidates") == 422


def check_bad_credential(make: Make) -> None:
    with pytest.raises(e.AuthenticationError, match="refused client id 'ghx-sandbox-client'"):
        make(secret="wrong").mint_token()
    with pytest.raises(e.AuthenticationError, match="sub=999"):
        make(sub=999).list_tags()
    make().mint_token()


FAULTS = [
    ("error_before", e.ServerError),
    ("error_after", e.ServerError),
    ("drop_before", e.HarvestConnectionError),
    ("drop_after", e.HarvestConnectionError),
]


def check_write_fault(make: Make, inject: Callable[..., None], kind: str, cls: type[e.HarvestError]) -> None:
    client = make()
    inject(kind, method="POST", path="/v3/candidate_tags", count=1)
    with pytest.raises(cls) as info:
        client.create_tag(f"fault-{kind}")
    assert info.value.outcome_unknown and (info.value.method, info.value.path) == ("POST", "/v3/candidate_tags")
    names = {t.name for t in client.list_tags()}
    assert (f"fault-{kind}" in names) == kind.endswith("_after")  # sent once: applied only by an _after fault


def check_read_fault_retried(make: Make, inject: Callable[..., None], kind: str) -> None:
    inject(kind, method="GET", path="/v3/candidate_tags", count=2)
    assert make().list_tags()  # quick_retries=2 absorb two failures


# --- MockTransport runs ----------------------------------------------------------------------------


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sandbox(clock: Clock) -> Sandbox:
    return Sandbox(SandboxConfig(), clock=clock, sleep=lambda s: None)


@pytest.fixture
def make(sandbox: Sandbox, clock: Clock) -> Iterator[Make]:
    settings = Settings(harvest_url="https://harvest.sandbox", harvest_token_url="https://harvest.sandbox/token")
    http = httpx.Client(transport=sandbox.transport())
    yield lambda **kw: client_for(settings, http, clock, **kw)
    http.close()


def test_lookups(make: Make) -> None:
    check_lookups(make)


def test_writes(make: Make) -> None:
    check_writes(make)


def test_pagination(make: Make) -> None:
    check_pagination(make)


def test_forbidden(make: Make, sandbox: Sandbox) -> None:
    check_forbidden(make, sandbox.add_credential)


def test_validation(make: Make) -> None:
    check_validation(make)


def test_bad_credential(make: Make) -> None:
    check_bad_credential(make)


@pytest.mark.parametrize(("kind", "cls"), FAULTS)
def test_write_faults(make: Make, sandbox: Sandbox, kind: str, cls: type[e.HarvestError]) -> None:
    check_write_fault(make, sandbox.inject_fault, kind, cls)


@pytest.mark.parametrize("kind", ["error_before", "drop_before", "slow"])
def test_read_faults_retried(make: Make, sandbox: Sandbox, kind: str) -> None:
    check_read_fault_retried(make, sandbox.inject_fault, kind)


def test_expired_token_remints_once(make: Make, sandbox: Sandbox) -> None:
    client = make()
    client.list_tags()
    sandbox.expire_tokens()
    assert client.list_tags()


def test_token_refreshed_by_clock(make: Make, sandbox: Sandbox, clock: Clock) -> None:
    client = make()
    client.list_tags()
    clock.now += 3600 - 30  # inside the refresh margin: the client mints before the sandbox would 401
    client.list_tags()
    # the first token still had 30 s to live (no 401): only the refresh by the clock mints a second one
    assert sandbox.stats()["requests"] == {"POST /token": {"200": 2}, "GET /v3/candidate_tags": {"200": 2}}


def test_rate_limited_by_sandbox(clock: Clock) -> None:
    sandbox = Sandbox(SandboxConfig(rate_limit=2, window_s=30.0), clock=clock, sleep=lambda s: None)
    settings = Settings(harvest_url="https://h.sb", harvest_token_url="https://h.sb/token")
    client = client_for(settings, httpx.Client(transport=sandbox.transport()), clock)
    client.list_tags()
    clock.now += 10
    client.list_tags()
    budget = client.last_rate_limit
    assert budget is not None and (budget.limit, budget.remaining) == (2, 0)
    with pytest.raises(e.RateLimitedError) as info:
        client.list_tags()
    assert info.value.retry_after_s == 20.0 and not info.value.outcome_unknown
    assert client.last_rate_limit == budget
