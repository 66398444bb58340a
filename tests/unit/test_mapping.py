"""Mapping a profile to Harvest v3 requests: every field, both targets, warnings instead of failures."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from shared.harvest.models import (
    CreateEducation,
    CreateEmployment,
    CustomFieldOption,
    JobApplication,
    ProspectApplication,
)
from shared.profiles.mapping import (
    EducationPlan,
    EmploymentPlan,
    MappedCandidate,
    OptionIndex,
    Target,
    dummy_email,
    java_string_hash,
    map_profile,
)
from shared.profiles.model import Profile, read_profiles_file

DATA = Path(__file__).parent.parent / "data"
DOMAIN = "seekout.example.com"


def opt(id_: int, name: str, active: bool | None = True) -> CustomFieldOption:
    return CustomFieldOption(id=id_, name=name, active=active)


OPTIONS = OptionIndex.build(
    school_name=[opt(700123, "Siena College"), opt(700124, "Old School", active=False)],
    degree=[opt(700456, "Bachelor's Degree")],
    discipline=[opt(700789, "Computer Science")],
)


def ada() -> Profile:
    return read_profiles_file(DATA / "profiles_mixed.jsonl").profiles[0]


def profile(**fields: Any) -> Profile:
    return Profile.model_validate({"id": "p-1", "first_name": "Ada", "last_name": "Quinn", **fields})


def mapped(p: Profile, target: Target | None = None, **kw: Any) -> MappedCandidate:
    args: dict[str, Any] = {"dummy_emails": False, "dummy_email_domain": DOMAIN, "skills_custom_field": None}
    args.update(kw)
    return map_profile(p, target or Target(kind="job", job_id=4012345, source_id=77, user_id=5550001), OPTIONS, **args)


def test_job_target_maps_every_field() -> None:
    m = mapped(ada())
    assert m.create.to_body() == {
        "first_name": "Ada",
        "last_name": "Quinn",
        "company": "Northwind",
        "title": "Staff Engineer",
        "email_addresses": [{"value": "ada.quinn@example.org", "type": "personal"}],
        "phone_numbers": [{"value": "+1 415 555 0100", "type": "mobile"}],
        "addresses": [{"value": "Berlin, DE", "type": "home"}],
        "website_addresses": [{"value": "https://adaq.example.org", "type": "personal"}],
        "social_media_addresses": [{"value": "https://www.linkedin.com/in/ada-quinn-example"}],
        "custom_fields": [],
        "application": {
            "job_id": 4012345,
            "source_id": 77,
            "referrer": {"type": "id", "value": 5550001},
            "recruiter_id": 5550001,
        },
    }
    assert isinstance(m.application, JobApplication)
    assert m.application == m.create.application
    assert m.educations == [
        EducationPlan(700123, 700456, 700789, date(2008, 9, 1), date(2012, 6, 30)),
    ]
    assert m.educations[0].request(90112233) == CreateEducation(
        candidate_id=90112233,
        school_name_custom_field_option_id=700123,
        degree_custom_field_option_id=700456,
        discipline_custom_field_option_id=700789,
        start_date=date(2008, 9, 1),
        end_date=date(2012, 6, 30),
    )
    assert m.employments == [EmploymentPlan("Northwind", "Staff Engineer", date(2019, 3, 1), None)]
    assert m.employments[0].request(7).to_body() == {
        "candidate_id": 7,
        "company_name": "Northwind",
        "title": "Staff Engineer",
        "start_date": "2019-03-01",
    }
    assert m.tags == ["Backend"]
    assert m.note == "Ten years of backend work.\n\nSkills: Python, Distributed systems"
    assert m.warnings == []
    assert m.emails == ["ada.quinn@example.org"]


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (
            Target(kind="prospect", pool_id=31, stage_id=208, source_id=77, user_id=5550001),
            {
                "prospect": True,
                "job_ids": [],
                "source_id": 77,
                "referrer": {"type": "id", "value": 5550001},
                "prospect_pool_id": 31,
                "prospect_pool_stage_id": 208,
                "prospect_owner_id": 5550001,
            },
        ),
        (
            Target(kind="prospect", job_id=4012345, user_id=5),
            {
                "prospect": True,
                "job_ids": [4012345],
                "referrer": {"type": "id", "value": 5},
                "prospect_owner_id": 5,
            },
        ),
        (Target(kind="job", job_id=1), {"job_id": 1}),
    ],
)
def test_application_per_target(target: Target, expected: dict[str, object]) -> None:
    m = mapped(ada(), target)
    assert m.application.to_body() == expected
    assert m.create.to_body()["application"] == expected
    assert isinstance(m.application, ProspectApplication if target.kind == "prospect" else JobApplication)


@pytest.mark.parametrize(
    "kwargs",
    [{"kind": "job"}, {"kind": "job", "job_id": 1, "pool_id": 2}, {"kind": "prospect", "stage_id": 3}],
)
def test_invalid_target(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Target(**kwargs)


def test_java_string_hash_matches_java() -> None:
    # Values computed by java.lang.String.hashCode.
    assert java_string_hash("") == 0
    assert java_string_hash("abc") == 96354
    assert java_string_hash("hello") == 99162322
    assert java_string_hash("polygenelubricants") == -2147483648
    assert java_string_hash("p-1001") == -1045436515
    assert java_string_hash("😀") == 0xD83D * 31 + 0xDE00  # two UTF-16 code units, as in Java


def test_dummy_email_format_and_negative_double_dash() -> None:
    assert dummy_email("abc", DOMAIN) == "no-email-96354@seekout.example.com"
    assert dummy_email("p-1001", DOMAIN) == "no-email--1045436515@seekout.example.com"


def test_dummy_email_is_deterministic_across_processes() -> None:
    code = "from shared.profiles.mapping import dummy_email; print(dummy_email('p-1001', 'x.example'))"
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed},
        ).stdout.strip()
        for seed in ("1", "2")
    }
    assert outputs == {dummy_email("p-1001", "x.example")}


def test_no_email_with_dummy_emails() -> None:
    m = mapped(profile(), dummy_emails=True)
    assert m.emails == [dummy_email("p-1", DOMAIN)]
    assert m.create.email_addresses[0].value == m.emails[0]
    assert m.warnings == ["no email; dummy address used"]


def test_no_email_without_dummy_emails() -> None:
    m = mapped(profile(), dummy_emails=False)
    assert m.emails == [] and m.create.email_addresses == []
    assert m.warnings == []


def test_real_email_wins_over_dummy() -> None:
    m = mapped(profile(emails=["a@b.co"]), dummy_emails=True)
    assert m.emails == ["a@b.co"]


def test_emails_deduped_case_insensitively_keeping_first_spelling() -> None:
    m = mapped(profile(emails=["Ada@Example.org", "b@example.org", "ada@example.ORG"]))
    assert m.emails == ["Ada@Example.org", "b@example.org"]
    assert [e.value for e in m.create.email_addresses] == m.emails
    assert {e.type for e in m.create.email_addresses} == {"personal"}


def test_tags_deduped_case_insensitively() -> None:
    assert mapped(profile(tags=["Backend", "backend", "Go"])).tags == ["Backend", "Go"]


def test_skills_to_custom_field_when_configured() -> None:
    m = mapped(profile(skills=["Python", "Go"], summary="Hi."), skills_custom_field="skills")
    assert m.create.to_body()["custom_fields"] == [{"name_key": "skills", "value": "Python, Go"}]
    assert m.note == "Hi."


def test_skills_to_note_otherwise() -> None:
    m = mapped(profile(skills=["Python", "Go"]))
    assert m.create.custom_fields == []
    assert m.note == "Skills: Python, Go"


def test_no_summary_no_skills_no_note() -> None:
    assert mapped(profile()).note is None
    assert mapped(profile(skills=["Go"]), skills_custom_field="skills").note is None


def test_option_matching_is_case_and_whitespace_insensitive() -> None:
    assert OPTIONS.resolve("school_name", "  siena   COLLEGE ") == 700123
    assert OPTIONS.resolve("degree", "BACHELOR'S DEGREE") == 700456
    assert (
        OPTIONS.resolve("school_name", "\uff33\uff49\uff45\uff4e\uff41 College") == 700123
    )  # NFKC folds full-width letters
    assert OPTIONS.resolve("school_name", "Old School") is None  # inactive option
    assert OPTIONS.resolve("discipline", "Siena College") is None  # per key


def test_unresolvable_education_names_become_warnings() -> None:
    m = mapped(
        profile(
            educations=[
                {"school": "Foo U", "degree": "Bachelor's Degree", "discipline": "Basket Weaving"},
                {"school": "Nowhere", "start_date": "2001-01-01"},
                {"school": "Nowhere"},
                {},
            ]
        )
    )
    assert m.educations == [
        EducationPlan(None, 700456, None, None, None),
        EducationPlan(None, None, None, date(2001, 1, 1), None),
    ]
    assert m.warnings == [
        "education 1: school 'Foo U' has no Greenhouse option; left out",
        "education 1: discipline 'Basket Weaving' has no Greenhouse option; left out",
        "education 2: school 'Nowhere' has no Greenhouse option; left out",
        "education 3: school 'Nowhere' has no Greenhouse option; left out",
        "education 3: nothing left to send; education left out",
        "education 4: nothing left to send; education left out",
    ]


def test_education_end_before_start_drops_end_date() -> None:
    m = mapped(profile(educations=[{"school": "Siena College", "start_date": "2012-01-01", "end_date": "2008-01-01"}]))
    assert m.educations == [EducationPlan(700123, None, None, date(2012, 1, 1), None)]
    assert m.warnings == ["education 1: end_date before start_date; end_date left out"]


@pytest.mark.parametrize(
    ("employment", "plan", "warning"),
    [
        (
            {"company_name": "N", "title": "T", "start_date": "2019-01-01", "end_date": "2020-01-01"},
            EmploymentPlan("N", "T", date(2019, 1, 1), date(2020, 1, 1)),
            None,
        ),
        ({"company_name": "N", "title": "T"}, None, "employment 1: no start_date; employment left out"),
        (
            {"start_date": "2019-01-01"},
            None,
            "employment 1: no company_name, title; employment left out",
        ),
        (
            {"company_name": "N", "title": "T", "start_date": "2019-01-01", "end_date": "2018-01-01"},
            EmploymentPlan("N", "T", date(2019, 1, 1), None),
            "employment 1: end_date before start_date; end_date left out",
        ),
    ],
)
def test_employments(employment: dict[str, str], plan: EmploymentPlan | None, warning: str | None) -> None:
    m = mapped(profile(employments=[employment]))
    assert m.employments == ([plan] if plan else [])
    assert m.warnings == ([warning] if warning else [])
    if plan:
        assert isinstance(plan.request(1), CreateEmployment)


def test_contacts_deduped_and_minimal_profile() -> None:
    m = mapped(profile(phones=["1", "1", "2"], urls=["https://a", "https://a"], social_media=["x", "x"]))
    body = m.create.to_body()
    assert body["phone_numbers"] == [{"value": "1", "type": "mobile"}, {"value": "2", "type": "mobile"}]
    assert body["website_addresses"] == [{"value": "https://a", "type": "personal"}]
    assert body["social_media_addresses"] == [{"value": "x"}]
    assert body["addresses"] == []
    assert "company" not in body and "title" not in body
