"""Harvest v3 request and response models: every field name the exporter sends or reads.

Strict requests (``extra="forbid"``: a typo fails in our tests, not at Greenhouse), lenient responses
(unknown fields kept: Greenhouse adds properties). Evidence levels from
``docs/harvest.md``: **[P]** primary Greenhouse source, **[3P]** third-party only,
**[?]** unverified. A correction to a shape is one edit here (and the matching one in the sandbox).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")

    def to_body(self) -> dict[str, object]:
        """JSON body: unset/None members are left out (Harvest rejects explicit nulls on some fields [?])."""
        return self.model_dump(mode="json", exclude_none=True)


class _Response(BaseModel):
    model_config = ConfigDict(extra="allow")


# --- token -------------------------------------------------------------------------------------------


class TokenResponse(_Response):
    """``POST https://auth.greenhouse.io/token`` [P AUTH]; ``expires_at`` [P GHPHP], ``expires_in`` [3P]."""

    access_token: str
    token_type: str = "Bearer"
    refresh_token: str | None = None
    """Partner (authorization-code) answers only: single use, rotated on every refresh [P POAUTH, 3P AIRBYTE]."""
    expires_at: str | None = None
    expires_in: float | None = None


# --- contact members [3P OGMCP, SLATES; type enums P V1DOC] ------------------------------------------

EmailType = Literal["personal", "work", "other"]
PhoneType = Literal["home", "work", "mobile", "skype", "other"]
AddressType = Literal["home", "work", "other"]
WebsiteType = Literal["personal", "company", "portfolio", "blog", "other"]


class EmailAddress(_Request):
    value: str
    type: EmailType = "personal"


class PhoneNumber(_Request):
    value: str
    type: PhoneType = "mobile"


class Address(_Request):
    value: str
    type: AddressType = "home"


class WebsiteAddress(_Request):
    value: str
    type: WebsiteType = "personal"


class SocialMediaAddress(_Request):
    value: str


class CustomFieldValue(_Request):
    """``custom_fields`` member on create [3P single source]."""

    name_key: str
    value: str | list[str] | None


class Referrer(_Request):
    """Application ``referrer`` (v1 shape ``{type, value}``; v3 shape [?])."""

    type: Literal["id", "email", "outside"] = "id"
    value: str | int


class JobApplication(_Request):
    """``application`` member for a candidate on one job [3P SLATES, OGMCP]."""

    job_id: int
    source_id: int | None = None
    referrer: Referrer | None = None
    recruiter_id: int | None = None
    coordinator_id: int | None = None


class ProspectApplication(_Request):
    """``application`` member for a prospect [3P]: zero or more jobs, optional pool and stage."""

    prospect: Literal[True] = True
    job_ids: list[int] = Field(default_factory=list)
    source_id: int | None = None
    referrer: Referrer | None = None
    prospect_pool_id: int | None = None
    prospect_pool_stage_id: int | None = None
    prospect_owner_id: int | None = None


class CreateCandidate(_Request):
    """``POST /v3/candidates`` body [3P OGMCP tests + SLATES; writes not live-verified].

    ``application`` is one object in v3 (v1 took an ``applications`` array).
    """

    first_name: str
    last_name: str
    company: str | None = None
    title: str | None = None
    email_addresses: list[EmailAddress] = Field(default_factory=list)
    phone_numbers: list[PhoneNumber] = Field(default_factory=list)
    addresses: list[Address] = Field(default_factory=list)
    website_addresses: list[WebsiteAddress] = Field(default_factory=list)
    social_media_addresses: list[SocialMediaAddress] = Field(default_factory=list)
    custom_fields: list[CustomFieldValue] = Field(default_factory=list)
    application: JobApplication | ProspectApplication | None = None


class CreateApplication(_Request):
    """``POST /v3/applications`` [P WMIG path; body names ?]: ``candidate_id`` plus the application members."""

    candidate_id: int
    job_id: int | None = None
    prospect: bool | None = None
    job_ids: list[int] | None = None
    source_id: int | None = None
    referrer: Referrer | None = None
    recruiter_id: int | None = None
    coordinator_id: int | None = None
    prospect_pool_id: int | None = None
    prospect_pool_stage_id: int | None = None
    prospect_owner_id: int | None = None

    @classmethod
    def for_candidate(cls, candidate_id: int, app: JobApplication | ProspectApplication) -> CreateApplication:
        """The same application members as on create, attached to an existing candidate."""
        return cls(candidate_id=candidate_id, **app.model_dump(exclude_none=True))


class CreateEducation(_Request):
    """``POST /v3/candidate_educations`` [3P OGMCP single source]; ids are custom field option ids."""

    candidate_id: int
    school_name_custom_field_option_id: int | None = None
    degree_custom_field_option_id: int | None = None
    discipline_custom_field_option_id: int | None = None
    start_date: date | None = None
    end_date: date | None = None


class CreateEmployment(_Request):
    """``POST /v3/candidate_employments`` [3P OGMCP]; v1 required company_name, title, start_date."""

    candidate_id: int
    company_name: str
    title: str
    start_date: date
    end_date: date | None = None


class CreateTag(_Request):
    """``POST /v3/candidate_tags`` [3P SVMCP; body ?]."""

    name: str


class ApplyTag(_Request):
    """``POST /v3/applied_candidate_tags`` [3P OGMCP live]: ``tag``/``tag_id`` names are rejected."""

    candidate_id: int
    candidate_tag_id: int


AttachmentType = Literal[
    "resume",
    "cover_letter",
    "take_home_test",
    "offer_packet",
    "offer_letter",
    "signed_offer_letter",
    "midfunnel_agreement",
    "automated_agreement",
    "form_attachment",
    "other",
]


class CreateAttachment(_Request):
    """``POST /v3/attachments`` [P REF-ATT]: exactly one of ``content`` (base64) or ``url``.

    ``content_type`` is absent from the v3 page [P absence] and unknown members are rejected, but v1 required
    it with base64 content [P G11]: :meth:`~shared.harvest.client.HarvestClient.create_attachment` sends it
    only once Greenhouse has asked for it (``None`` here: not sent).
    """

    application_id: int
    filename: str
    type: AttachmentType
    content: str | None = None
    url: str | None = None
    visibility: Literal["public", "admin_only", "private"] | None = None
    content_type: str | None = None


class CreateNote(_Request):
    """``POST /v3/notes`` [3P OGMCP live]: ``note_type`` must be upper case."""

    candidate_id: int
    application_id: int | None = None
    user_id: int
    body: str
    visibility: Literal["admin_only", "private", "public"]
    note_type: Literal["NOTE"] = "NOTE"


# --- responses --------------------------------------------------------------------------------------


def parse_timestamp(value: str | None) -> datetime | None:
    """A Harvest timestamp as an aware UTC datetime; ``None`` when absent or unparseable.

    ISO 8601, typically milliseconds and ``Z`` [3P AIRBYTE]; with or without fractions, ``Z`` or an
    offset [P V1DOC]; a timestamp without a zone is taken as UTC.
    """
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


class Candidate(_Response):
    """v3 candidate [3P AIRBYTE, SVMCP]; child objects (applications, educations...) are not embedded.

    Every member but ``id`` may be missing (a ``fields`` list, an async-processing body); a contact list
    sent as ``null`` reads as empty.
    """

    id: int
    first_name: str | None = None
    last_name: str | None = None
    company: str | None = None
    title: str | None = None
    private: bool | None = None
    tags: list[str] = Field(default_factory=list)
    email_addresses: list[dict[str, object]] = Field(default_factory=list)
    phone_numbers: list[dict[str, object]] = Field(default_factory=list)
    website_addresses: list[dict[str, object]] = Field(default_factory=list)
    social_media_addresses: list[dict[str, object]] = Field(default_factory=list)
    addresses: list[dict[str, object]] = Field(default_factory=list)
    custom_fields: dict[str, object] | list[object] | None = None
    created_at: str | None = None
    updated_at: str | None = None

    @field_validator(
        "tags",
        "email_addresses",
        "phone_numbers",
        "website_addresses",
        "social_media_addresses",
        "addresses",
        mode="before",
    )
    @classmethod
    def _null_is_empty(cls, value: object) -> object:
        return [] if value is None else value

    @property
    def created(self) -> datetime | None:
        """``created_at`` as an aware UTC datetime (``None`` when missing or unparseable)."""
        return parse_timestamp(self.created_at)


class Application(_Response):
    """v3 application [3P AIRBYTE, SVMCP]."""

    id: int
    candidate_id: int | None = None
    job_id: int | None = None
    prospect: bool | None = None
    prospective_job_ids: list[int] = Field(default_factory=list)
    status: str | None = None
    source_id: int | None = None
    referrer_id: int | None = None
    prospect_pool_id: int | None = None
    prospect_pool_stage_id: int | None = None


class CreatedCandidate(_Response):
    """``POST /v3/candidates`` 201 body: ``{"candidate": ..., "application": ... | null}`` [3P]."""

    candidate: Candidate
    application: Application | None = None


class Education(_Response):
    id: int
    candidate_id: int | None = None
    school_name_custom_field_option_id: int | None = None
    degree_custom_field_option_id: int | None = None
    discipline_custom_field_option_id: int | None = None
    start_date: str | None = None
    end_date: str | None = None


class Employment(_Response):
    id: int
    candidate_id: int | None = None
    company_name: str | None = None
    title: str | None = None
    start_date: str | None = None
    end_date: str | None = None


class Tag(_Response):
    id: int
    name: str


class AppliedTag(_Response):
    id: int
    candidate_id: int
    candidate_tag_id: int


class Attachment(_Response):
    """v3 attachment (``POST`` answer and ``GET /v3/attachments`` item) [P REF-ATT; member names 3P OGMCP,
    SVMCP, Workato's v3 connector]: it belongs to an application; ``url`` is a download link that expires
    after 7 days [P], so fetch it soon or list again rather than storing it."""

    id: int | None = None
    application_id: int | None = None
    candidate_id: int | None = None
    filename: str | None = None
    type: str | None = None
    content_type: str | None = None
    visibility: str | None = None
    url: str | None = None
    created_at: str | None = None
    updated_at: str | None = None


class Note(_Response):
    id: int
    candidate_id: int | None = None


class User(_Response):
    """v3 user [3P SVMCP, AIRBYTE]: ``primary_email`` (v1 ``primary_email_address``), ``deactivated``."""

    id: int
    name: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    primary_email: str | None = None
    emails: list[str] = Field(default_factory=list)
    deactivated: bool = False
    site_admin: bool = False


class SourceType(_Response):
    id: int | None = None
    name: str | None = None


class Source(_Response):
    """v3 source: ``type`` is the strategy (e.g. ``Prospecting``) [3P SVMCP]."""

    id: int
    name: str
    type: SourceType | None = None


class Job(_Response):
    id: int
    name: str | None = None
    status: str | None = None
    confidential: bool | None = None
    requisition_id: str | None = None


class ProspectPool(_Response):
    id: int
    name: str
    active: bool | None = None


class ProspectPoolStage(_Response):
    """``GET /v3/prospect_pool_stages`` [3P AIRBYTE, SVMCP] (the nested path on the pool page: conflict [?])."""

    id: int
    prospect_pool_id: int
    name: str
    sort_order: int | None = None


class CustomFieldOption(_Response):
    """``GET /v3/custom_field_options?custom_field_key=degree|discipline|school_name`` [3P]."""

    id: int
    name: str
    custom_field_key: str | None = None
    active: bool | None = None


CustomFieldKey = Literal["degree", "discipline", "school_name"]
