"""Map a validated :class:`~shared.profiles.model.Profile` to Harvest v3 requests: pure functions, no I/O.

:func:`map_profile` returns a :class:`MappedCandidate`: the ``POST /v3/candidates`` body (with its one
``application``), the follow-up educations, employments, tags and note, and the warnings for anything
left out. Nothing is dropped or truncated silently: every omission is a warning. Harvest field names
live only in :mod:`shared.harvest.models`; this module constructs those models.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Literal

from shared.harvest.models import (
    Address,
    CreateCandidate,
    CreateEducation,
    CreateEmployment,
    CustomFieldKey,
    CustomFieldOption,
    CustomFieldValue,
    EmailAddress,
    JobApplication,
    PhoneNumber,
    ProspectApplication,
    Referrer,
    SocialMediaAddress,
    WebsiteAddress,
)
from shared.profiles.model import EducationIn, EmploymentIn, Profile
from shared.profiles.report import LeftOut, Reason


def java_string_hash(s: str) -> int:
    """Java's ``String.hashCode``: ``s[0]*31^(n-1) + ... + s[n-1]`` over UTF-16 code units, signed 32-bit."""
    h = 0
    data = s.encode("utf-16-le")
    for i in range(0, len(data), 2):
        h = (31 * h + (data[i] | data[i + 1] << 8)) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def dummy_email(profile_id: str, domain: str) -> str:
    """``no-email-<h>@<domain>`` with ``h`` = :func:`java_string_hash` of the profile id.

    Deterministic across processes and Python versions (not ``hash()``), so a retried export looks up
    the same address. A negative hash gives a double dash, as in the original product's example
    ``no-email--352233856@seekout.example.com``; the id behind that example is unknown (it is not
    ``p-1001``, whose hash is -1045436515), so only the scheme is reproduced.
    """
    return f"no-email-{java_string_hash(profile_id)}@{domain}"


def normalise_name(name: str) -> str:
    """Matching key for option names: NFKC, casefolded, runs of whitespace collapsed, ends stripped."""
    return " ".join(unicodedata.normalize("NFKC", name).casefold().split())


@dataclass
class OptionIndex:
    """Greenhouse custom field option ids by normalised name, per key (``degree``, ``discipline``,
    ``school_name``). Inactive options are left out; on a name clash the first option wins.
    """

    by_key: dict[str, dict[str, int]] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        *,
        degree: Iterable[CustomFieldOption] = (),
        discipline: Iterable[CustomFieldOption] = (),
        school_name: Iterable[CustomFieldOption] = (),
    ) -> OptionIndex:
        """Index the option lists read from ``GET /v3/custom_field_options`` for each key."""
        index = cls()
        for key, options in (("degree", degree), ("discipline", discipline), ("school_name", school_name)):
            names = index.by_key.setdefault(key, {})
            for opt in options:
                if opt.active is False:
                    continue
                names.setdefault(normalise_name(opt.name), opt.id)
        return index

    def resolve(self, key: CustomFieldKey, name: str) -> int | None:
        """The option id whose name matches ``name`` (case- and whitespace-insensitive), else ``None``."""
        return self.by_key.get(key, {}).get(normalise_name(name))


@dataclass(frozen=True)
class Target:
    """Where a profile goes and who acts.

    ``kind="job"`` needs ``job_id``; ``kind="prospect"`` takes an optional ``job_id`` (a prospect for
    that job), ``pool_id`` and ``stage_id`` (a stage needs its pool). ``user_id`` is the exporting
    Greenhouse user, matched by exact email: the referrer on both kinds, the recruiter of a job application and
    the owner of a prospect. A partner connection acts as whoever consented (a service account), so these
    members are what attributes the record to the recruiter.
    """

    kind: Literal["job", "prospect"]
    job_id: int | None = None
    pool_id: int | None = None
    stage_id: int | None = None
    source_id: int | None = None
    user_id: int | None = None

    def __post_init__(self) -> None:
        if self.kind == "job" and self.job_id is None:
            raise ValueError("a job target needs job_id")
        if self.kind == "job" and (self.pool_id is not None or self.stage_id is not None):
            raise ValueError("pool_id and stage_id apply to prospect targets only")
        if self.stage_id is not None and self.pool_id is None:
            raise ValueError("stage_id needs pool_id")

    def application(self) -> JobApplication | ProspectApplication:
        """The ``application`` member for this target."""
        referrer = Referrer(type="id", value=self.user_id) if self.user_id is not None else None
        if self.kind == "job":
            assert self.job_id is not None
            return JobApplication(
                job_id=self.job_id, source_id=self.source_id, referrer=referrer, recruiter_id=self.user_id
            )
        return ProspectApplication(
            job_ids=[self.job_id] if self.job_id is not None else [],
            source_id=self.source_id,
            referrer=referrer,
            prospect_pool_id=self.pool_id,
            prospect_pool_stage_id=self.stage_id,
            prospect_owner_id=self.user_id,
        )


@dataclass(frozen=True)
class EducationPlan:
    """An education to create once the candidate exists; ids are custom field option ids."""

    school_name_id: int | None = None
    degree_id: int | None = None
    discipline_id: int | None = None
    start_date: date | None = None
    end_date: date | None = None

    def request(self, candidate_id: int) -> CreateEducation:
        """The ``POST /v3/candidate_educations`` body for ``candidate_id``."""
        return CreateEducation(
            candidate_id=candidate_id,
            school_name_custom_field_option_id=self.school_name_id,
            degree_custom_field_option_id=self.degree_id,
            discipline_custom_field_option_id=self.discipline_id,
            start_date=self.start_date,
            end_date=self.end_date,
        )


@dataclass(frozen=True)
class EmploymentPlan:
    """An employment to create once the candidate exists (company, title and start date required)."""

    company_name: str
    title: str
    start_date: date
    end_date: date | None = None

    def request(self, candidate_id: int) -> CreateEmployment:
        """The ``POST /v3/candidate_employments`` body for ``candidate_id``."""
        return CreateEmployment(
            candidate_id=candidate_id,
            company_name=self.company_name,
            title=self.title,
            start_date=self.start_date,
            end_date=self.end_date,
        )


@dataclass
class MappedCandidate:
    """Everything one profile becomes in Greenhouse.

    ``create`` is the candidate body with its ``application`` (also in ``application``, for attaching to
    an existing candidate); ``emails`` are the addresses to look the person up by (the dummy one
    included); ``left_out`` names what was left out and why (``warnings``: the same as lines).
    """

    create: CreateCandidate
    application: JobApplication | ProspectApplication
    educations: list[EducationPlan] = field(default_factory=list)
    employments: list[EmploymentPlan] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    note: str | None = None
    left_out: list[LeftOut] = field(default_factory=list)
    emails: list[str] = field(default_factory=list)

    @property
    def warnings(self) -> list[str]:
        return [str(entry) for entry in self.left_out]


def _dedupe(values: Iterable[str], *, fold: bool) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for v in values:
        key = v.casefold() if fold else v
        if key not in seen:
            seen.add(key)
            out.append(v)
    return out


_EDU_FIELDS: tuple[tuple[str, CustomFieldKey], ...] = (
    ("school", "school_name"),
    ("degree", "degree"),
    ("discipline", "discipline"),
)


_UNKNOWN = {"school": Reason.UNKNOWN_SCHOOL, "degree": Reason.UNKNOWN_DEGREE, "discipline": Reason.UNKNOWN_DISCIPLINE}


def _education(n: int, edu: EducationIn, options: OptionIndex, left: list[LeftOut]) -> EducationPlan | None:
    ids: dict[str, int | None] = {}
    for attr, key in _EDU_FIELDS:
        name: str | None = getattr(edu, attr)
        ids[key] = options.resolve(key, name) if name else None
        if name and ids[key] is None:
            left.append(
                LeftOut("education", _UNKNOWN[attr], f"{attr} {name!r} has no Greenhouse option; left out", n, attr)
            )
    end = edu.end_date
    if end is not None and edu.start_date is not None and end < edu.start_date:
        left.append(_dates_out_of_order("education", n))
        end = None
    if all(v is None for v in ids.values()) and edu.start_date is None and end is None:
        left.append(LeftOut("education", Reason.NOTHING_TO_SEND, "nothing left to send; education left out", n))
        return None
    return EducationPlan(ids["school_name"], ids["degree"], ids["discipline"], edu.start_date, end)


def _dates_out_of_order(part: str, n: int) -> LeftOut:
    detail = "end_date before start_date; end_date left out"
    return LeftOut(part, Reason.DATES_OUT_OF_ORDER, detail, n, "end_date")


def _employment(n: int, emp: EmploymentIn, left: list[LeftOut]) -> EmploymentPlan | None:
    missing = [f for f in ("company_name", "title", "start_date") if getattr(emp, f) is None]
    if missing:
        detail = f"no {', '.join(missing)}; employment left out"
        left.append(LeftOut("employment", Reason.INCOMPLETE, detail, n, missing[0]))
        return None
    assert emp.company_name is not None and emp.title is not None and emp.start_date is not None
    end = emp.end_date
    if end is not None and end < emp.start_date:
        left.append(_dates_out_of_order("employment", n))
        end = None
    return EmploymentPlan(emp.company_name, emp.title, emp.start_date, end)


def map_profile(
    profile: Profile,
    target: Target,
    options: OptionIndex,
    *,
    dummy_emails: bool,
    dummy_email_domain: str,
    skills_custom_field: str | None,
) -> MappedCandidate:
    """Map one profile for ``target``; never raises for data Greenhouse cannot take, it reports it instead.

    Emails are deduplicated case-insensitively (first spelling kept, all ``personal``); with no email and
    ``dummy_emails`` a :func:`dummy_email` stands in. Phones are ``mobile``, the location a ``home``
    address, URLs ``personal`` websites. Education names resolve through ``options`` (an unknown name is
    left out with a warning). Skills go to the custom field ``skills_custom_field`` when set, else into
    the note (with the summary).
    """
    left: list[LeftOut] = []
    emails = _dedupe(profile.emails, fold=True)
    if not emails and dummy_emails:
        emails = [dummy_email(profile.id, dummy_email_domain)]
        left.append(LeftOut("email", Reason.DUMMY_EMAIL, "no email; dummy address used", field="emails"))

    custom_fields: list[CustomFieldValue] = []
    skills = _dedupe(profile.skills, fold=True)
    note_parts: list[str] = []
    if profile.summary:
        note_parts.append(profile.summary)
    if skills and skills_custom_field:
        custom_fields.append(CustomFieldValue(name_key=skills_custom_field, value=", ".join(skills)))
    elif skills:
        note_parts.append("Skills: " + ", ".join(skills))

    application = target.application()
    create = CreateCandidate(
        first_name=profile.first_name,
        last_name=profile.last_name,
        company=profile.company,
        title=profile.title,
        email_addresses=[EmailAddress(value=e, type="personal") for e in emails],
        phone_numbers=[PhoneNumber(value=p, type="mobile") for p in _dedupe(profile.phones, fold=False)],
        addresses=[Address(value=profile.location, type="home")] if profile.location else [],
        website_addresses=[WebsiteAddress(value=u, type="personal") for u in _dedupe(profile.urls, fold=False)],
        social_media_addresses=[SocialMediaAddress(value=u) for u in _dedupe(profile.social_media, fold=False)],
        custom_fields=custom_fields,
        application=application,
    )
    educations = [
        plan
        for n, edu in enumerate(profile.educations, start=1)
        if (plan := _education(n, edu, options, left)) is not None
    ]
    employments = [
        job for n, emp in enumerate(profile.employments, start=1) if (job := _employment(n, emp, left)) is not None
    ]
    return MappedCandidate(
        create=create,
        application=application,
        educations=educations,
        employments=employments,
        tags=_dedupe(profile.tags, fold=True),
        note="\n\n".join(note_parts) if note_parts else None,
        left_out=left,
        emails=emails,
    )
