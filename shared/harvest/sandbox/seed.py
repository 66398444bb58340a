"""Seeded Greenhouse tenant of the sandbox: constants other code may import, and :func:`seed`.

The ids look like Greenhouse ids (large integers) and never collide with ids the sandbox assigns
to records created at run time (those start at :data:`FIRST_RUNTIME_ID`).
"""

from __future__ import annotations

from shared.harvest.sandbox.state import ALL_ATTACHMENT_TYPES, Credential, PartnerClient, Record, State

# FIRST_RUNTIME_ID lives in state, which counts from it; it is re-exported here beside the seeded ids it
# must stay above. Importing state (never the reverse) keeps the two modules out of an import cycle.
from shared.harvest.sandbox.state import FIRST_RUNTIME_ID as FIRST_RUNTIME_ID

CLIENT_ID = "ghx-sandbox-client"
CLIENT_SECRET = "ghx-sandbox-secret"

# --- the partner OAuth client (authorization-code grant) and the default organization ------------------
PARTNER_CLIENT_ID = "ghx-sandbox-partner"
PARTNER_CLIENT_SECRET = "ghx-sandbox-partner-secret"
PARTNER_REDIRECT_URI = "http://127.0.0.1:8766/callback"
"""The seeded partner client's one registered redirect URI (matched exactly)."""
ORG_ID = 4_700_001
"""The default organization: :attr:`Sandbox.state <shared.harvest.sandbox.app.Sandbox.state>`."""
ORG_NAME = "Sandbox Org"

ALL_SCOPES: tuple[str, ...] = (
    "harvest:candidates:list",
    "harvest:candidates:create",
    "harvest:candidates:update",
    "harvest:candidates:destroy",
    "harvest:candidates:merge",
    "harvest:candidates:anonymize",
    "harvest:applications:list",
    "harvest:applications:create",
    "harvest:applications:update",
    "harvest:candidate_educations:list",
    "harvest:candidate_educations:create",
    "harvest:candidate_educations:destroy",
    "harvest:candidate_employments:list",
    "harvest:candidate_employments:create",
    "harvest:candidate_employments:destroy",
    "harvest:candidate_tags:list",
    "harvest:candidate_tags:create",
    "harvest:applied_candidate_tags:list",
    "harvest:applied_candidate_tags:create",
    "harvest:attachments:create",
    "harvest:attachments:list",
    "harvest:notes:list",
    "harvest:notes:create",
    "harvest:users:list",
    "harvest:sources:list",
    "harvest:jobs:list",
    "harvest:prospect_pools:list",
    "harvest:prospect_pool_stages:list",
    "harvest:custom_field_options:list",
    "harvest:custom_fields:list",
    "harvest:openings:list",
    "harvest:close_reasons:list",
)
"""Every scope the sandbox knows; the seeded credential holds all of them, and the seeded partner client
is approved for all of them."""

# --- users -------------------------------------------------------------------------------------------
ADMIN_USER_ID = 4100001
ADMIN_EMAIL = "admin@sandbox.example"
RECRUITER_USER_ID = 4100002
RECRUITER_EMAIL = "Recruiter.One@sandbox.example"
RECRUITER_LOWER_USER_ID = 4100003
RECRUITER_LOWER_EMAIL = "recruiter.one@sandbox.example"
"""A different user whose primary email differs from :data:`RECRUITER_EMAIL` only in case."""
DEACTIVATED_USER_ID = 4100004
DEACTIVATED_EMAIL = "former@sandbox.example"
SERVICE_ACCOUNT_USER_ID = 4100900
"""Every organization's service-account user (Site Admin): a partner consent "using a service account" acts
as it."""
SERVICE_ACCOUNT_EMAIL = "service.account@sandbox.example"

# --- sources -----------------------------------------------------------------------------------------
SOURCE_ID = 7701
SOURCE_NAME = "SeekOut"
SOURCE_TYPE_ID = 11
SOURCE_TYPE_NAME = "Prospecting"
LINKEDIN_SOURCE_ID = 7702
LINKEDIN_SOURCE_TYPE_ID = 12
LINKEDIN_SOURCE_TYPE_NAME = "Social Media"

# --- jobs, openings, close reasons -------------------------------------------------------------------
OPEN_JOB_ID = 4012345
OPEN_JOB_2_ID = 4012346
CLOSED_JOB_ID = 4012347
DRAFT_JOB_ID = 4012348
CLOSE_REASON_ID = 5101

# --- prospect pools ----------------------------------------------------------------------------------
POOL_ID = 31
STAGE_ID = 208
STAGE_2_ID = 209
POOL_2_ID = 32
POOL_2_STAGE_ID = 210

# --- custom fields and their options -----------------------------------------------------------------
SKILLS_FIELD_KEY = "skills"
SKILLS_FIELD_ID = 6001
CUSTOM_FIELD_IDS = {"degree": 6002, "discipline": 6003, "school_name": 6004, SKILLS_FIELD_KEY: SKILLS_FIELD_ID}
DEGREE_OPTIONS = {"Bachelor's Degree": 700101, "Master's Degree": 700102, "PhD": 700103}
DISCIPLINE_OPTIONS = {"Computer Science": 700201, "Mathematics": 700202, "Physics": 700203}
SCHOOL_OPTIONS = {
    "Siena College": 700301,
    "Massachusetts Institute of Technology": 700302,
    "University of Oxford": 700303,
}
CUSTOM_FIELD_OPTIONS = {"degree": DEGREE_OPTIONS, "discipline": DISCIPLINE_OPTIONS, "school_name": SCHOOL_OPTIONS}

# --- tags and the one existing candidate --------------------------------------------------------------
BACKEND_TAG_ID = 3301
REFERRAL_TAG_ID = 3302
EXISTING_CANDIDATE_ID = 90000001
EXISTING_EMAIL = "existing.person@example.org"
EXISTING_APPLICATION_ID = 120000001

SEED_TIMESTAMP = "2026-01-05T09:00:00.000Z"

# --- the org's blocklist of attachment extensions --------------------------------------------------------
BLOCKED_EXTENSIONS: dict[str, frozenset[str]] = {
    ALL_ATTACHMENT_TYPES: frozenset({".exe", ".bat", ".cmd", ".com", ".js", ".vbs", ".scr", ".msi"}),
    "take_home_test": frozenset({".html", ".htm"}),
}
"""The seeded org's blocked attachment extensions, per type (``*``: every type). An assumption: Greenhouse
rejects extensions on the org's blocklist [P REF-ATT, whose example is ``.html`` for a ``take_home_test``]
but publishes no default list; this one is a plausible stand-in."""


def _user(uid: int, first: str, last: str, email: str, *, admin: bool = False, off: bool = False) -> Record:
    return {
        "id": uid,
        "name": f"{first} {last}",
        "first_name": first,
        "last_name": last,
        "primary_email": email,
        "emails": [email],
        "deactivated": off,
        "site_admin": admin,
        "created_at": SEED_TIMESTAMP,
        "updated_at": SEED_TIMESTAMP,
    }


def _job(jid: int, name: str, status: str) -> Record:
    return {
        "id": jid,
        "name": name,
        "requisition_id": f"REQ-{jid % 1000}",
        "status": status,
        "confidential": False,
        "department_id": None,
        "office_ids": [],
        "opened_at": None if status == "draft" else SEED_TIMESTAMP,
        "closed_at": SEED_TIMESTAMP if status == "closed" else None,
    }


def seed(state: State) -> None:
    """Fill the default organization's empty :class:`~shared.harvest.sandbox.state.State` with the seeded
    tenant, credential and partner client."""
    state.credentials[CLIENT_ID] = Credential(CLIENT_SECRET, frozenset(ALL_SCOPES))
    redirects = frozenset({PARTNER_REDIRECT_URI})
    state.partners[PARTNER_CLIENT_ID] = PartnerClient(PARTNER_CLIENT_SECRET, frozenset(ALL_SCOPES), redirects)
    seed_tenant(state)


def seed_tenant(state: State) -> None:
    """Fill an organization's empty :class:`~shared.harvest.sandbox.state.State` with the seeded records
    (every organization gets the same ones: each is its own copy)."""
    state.blocked_extensions = dict(BLOCKED_EXTENSIONS)
    for user in (
        _user(ADMIN_USER_ID, "Site", "Admin", ADMIN_EMAIL, admin=True),
        _user(RECRUITER_USER_ID, "Recruiter", "One", RECRUITER_EMAIL),
        _user(RECRUITER_LOWER_USER_ID, "Recruiter", "Lower", RECRUITER_LOWER_EMAIL),
        _user(DEACTIVATED_USER_ID, "Former", "Employee", DEACTIVATED_EMAIL, off=True),
        _user(SERVICE_ACCOUNT_USER_ID, "Service", "Account", SERVICE_ACCOUNT_EMAIL, admin=True),
    ):
        state.users[user["id"]] = user
    state.sources[SOURCE_ID] = {
        "id": SOURCE_ID,
        "name": SOURCE_NAME,
        "type": {"id": SOURCE_TYPE_ID, "name": SOURCE_TYPE_NAME},
    }
    state.sources[LINKEDIN_SOURCE_ID] = {
        "id": LINKEDIN_SOURCE_ID,
        "name": "LinkedIn",
        "type": {"id": LINKEDIN_SOURCE_TYPE_ID, "name": LINKEDIN_SOURCE_TYPE_NAME},
    }
    for job in (
        _job(OPEN_JOB_ID, "Backend Engineer", "open"),
        _job(OPEN_JOB_2_ID, "Data Engineer", "open"),
        _job(CLOSED_JOB_ID, "Legacy Engineer", "closed"),
        _job(DRAFT_JOB_ID, "Future Engineer", "draft"),
    ):
        state.jobs[job["id"]] = job
    for n, jid in enumerate((OPEN_JOB_ID, OPEN_JOB_2_ID, CLOSED_JOB_ID), start=1):
        open_ = jid != CLOSED_JOB_ID
        state.openings[8000 + n] = {
            "id": 8000 + n,
            "job_id": jid,
            "opening_id": f"OPN-{n}",
            "open": open_,
            "opened_at": SEED_TIMESTAMP,
            "closed_at": None if open_ else SEED_TIMESTAMP,
            "application_id": None,
            "close_reason_id": None if open_ else CLOSE_REASON_ID,
        }
    state.close_reasons[CLOSE_REASON_ID] = {"id": CLOSE_REASON_ID, "name": "Hired"}
    state.close_reasons[CLOSE_REASON_ID + 1] = {"id": CLOSE_REASON_ID + 1, "name": "Position cancelled"}
    state.pools[POOL_ID] = {"id": POOL_ID, "name": "Future Engineers", "active": True}
    state.pools[POOL_2_ID] = {"id": POOL_2_ID, "name": "Sales Talent", "active": True}
    for sid, pid, name, order in (
        (STAGE_ID, POOL_ID, "New", 0),
        (STAGE_2_ID, POOL_ID, "Contacted", 1),
        (POOL_2_STAGE_ID, POOL_2_ID, "New", 0),
    ):
        state.stages[sid] = {"id": sid, "prospect_pool_id": pid, "name": name, "sort_order": order}
    value_types = {"degree": "single_select", "discipline": "single_select", "school_name": "single_select"}
    for key, fid in CUSTOM_FIELD_IDS.items():
        state.custom_fields[key] = {
            "id": fid,
            "name": key.replace("_", " ").title(),
            "name_key": key,
            "field_type": "candidate" if key == SKILLS_FIELD_KEY else "education",
            "value_type": value_types.get(key, "long_text"),
            "active": True,
        }
    for key, options in CUSTOM_FIELD_OPTIONS.items():
        for order, (name, oid) in enumerate(options.items()):
            state.options[oid] = {
                "id": oid,
                "name": name,
                "custom_field_key": key,
                "active": True,
                "sort_order": order,
            }
    state.tags[BACKEND_TAG_ID] = {"id": BACKEND_TAG_ID, "name": "Backend"}
    state.tags[REFERRAL_TAG_ID] = {"id": REFERRAL_TAG_ID, "name": "Referral"}
    state.candidates[EXISTING_CANDIDATE_ID] = {
        "id": EXISTING_CANDIDATE_ID,
        "first_name": "Existing",
        "last_name": "Person",
        "company": None,
        "title": None,
        "private": False,
        "email_addresses": [{"value": EXISTING_EMAIL, "type": "personal"}],
        "phone_numbers": [],
        "addresses": [],
        "website_addresses": [],
        "social_media_addresses": [],
        "custom_fields": {},
        "created_at": SEED_TIMESTAMP,
        "updated_at": SEED_TIMESTAMP,
    }
    state.created_ts[EXISTING_CANDIDATE_ID] = float("-inf")
    state.applications[EXISTING_APPLICATION_ID] = {
        "id": EXISTING_APPLICATION_ID,
        "candidate_id": EXISTING_CANDIDATE_ID,
        "job_id": OPEN_JOB_ID,
        "prospect": False,
        "prospective_job_ids": [],
        "status": "active",
        "source_id": LINKEDIN_SOURCE_ID,
        "referrer_id": None,
        "recruiter_id": RECRUITER_USER_ID,
        "coordinator_id": None,
        "prospect_pool_id": None,
        "prospect_pool_stage_id": None,
        "prospect_owner_id": None,
        "created_at": SEED_TIMESTAMP,
        "updated_at": SEED_TIMESTAMP,
    }
