"""shared.profiles.matching: which candidate did our lost create make? Each rule as a table."""

from __future__ import annotations

from typing import Any

import pytest

from shared.harvest.models import (
    Candidate,
    CreateCandidate,
    EmailAddress,
    JobApplication,
    PhoneNumber,
    SocialMediaAddress,
    WebsiteAddress,
)
from shared.profiles import Profile
from shared.profiles.mapping import OptionIndex, Target, map_profile
from shared.profiles.matching import CreatedMatch, email_key, link_key, match_created, phone_key


def fullwidth(text: str) -> str:
    """``text`` in fullwidth Latin forms (U+FF01..U+FF5E), which NFKC folds back."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def arabic_indic(text: str) -> str:
    """``text`` with its ASCII digits written as Arabic-Indic digits (U+0660..U+0669)."""
    return "".join(chr(0x0660 + int(c)) if c.isascii() and c.isdigit() else c for c in text)


def sent(
    first: str = "Ada",
    last: str = "Quinn",
    *,
    company: str | None = None,
    phones: tuple[str, ...] = (),
    websites: tuple[str, ...] = (),
    social: tuple[str, ...] = (),
    emails: tuple[str, ...] = (),
) -> CreateCandidate:
    return CreateCandidate(
        first_name=first,
        last_name=last,
        company=company,
        phone_numbers=[PhoneNumber(value=p) for p in phones],
        website_addresses=[WebsiteAddress(value=w) for w in websites],
        social_media_addresses=[SocialMediaAddress(value=u) for u in social],
        email_addresses=[EmailAddress(value=e) for e in emails],
        application=JobApplication(job_id=4012345),
    )


def cand(
    cid: int,
    first: str | None = "Ada",
    last: str | None = "Quinn",
    *,
    company: str | None = None,
    phones: tuple[str, ...] = (),
    websites: tuple[str, ...] = (),
    social: tuple[str, ...] = (),
    emails: tuple[str, ...] = (),
    **extra: Any,
) -> Candidate:
    """A candidate as Harvest returns it (contact members are ``{value, type}`` objects)."""
    return Candidate.model_validate(
        {
            "id": cid,
            "first_name": first,
            "last_name": last,
            "company": company,
            "phone_numbers": [{"value": p, "type": "mobile"} for p in phones],
            "website_addresses": [{"value": w, "type": "personal"} for w in websites],
            "social_media_addresses": [{"value": u} for u in social],
            "email_addresses": [{"value": e, "type": "personal"} for e in emails],
            "created_at": "2027-01-15T08:00:00.000Z",
            **extra,
        }
    )


# --- rule 1: the name ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (("Ada", "Quinn"), ("ada", "QUINN")),
        (("Mary  Ann", " van   der Berg "), ("Mary Ann", "Van Der Berg")),  # whitespace runs collapse
        (("José", "Muñoz"), ("JOSÉ", "MUÑOZ")),
        (("José", "Muñoz"), ("Jose\u0301", "Mun\u0303oz")),  # decomposed accents: NFKC composes them
        ((fullwidth("Ada"), fullwidth("Quinn")), ("Ada", "Quinn")),  # fullwidth forms: NFKC
        (("Strauß", "Weiß"), ("STRAUSS", "WEISS")),  # case folding, not just lower()
        (("محمد", "العلي"), (" محمد ", "العلي")),
        (("ﻣﺤﻤﺪ", "العلي"), ("محمد", "العلي")),  # Arabic presentation forms: NFKC
        (("小明", "王"), ("小明", "王")),
        (("小明", "王"), ("小明\u3000", "王")),  # an ideographic space is whitespace after NFKC
    ],
    ids=[
        "case",
        "whitespace",
        "accents-upper",
        "accents-decomposed",
        "fullwidth",
        "casefold",
        "arabic",
        "arabic-presentation",
        "chinese",
        "chinese-ideographic-space",
    ],
)
def test_names_that_match(ours: tuple[str, str], theirs: tuple[str, str]) -> None:
    result = match_created(sent(*ours), [cand(7, *theirs)])
    assert result == CreatedMatch(7, (), result.reason) and "name only" in result.reason


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (("Ada", "Quinn"), ("Quinn", "Ada")),  # first and last are compared each to its own
        (("José", "Muñoz"), ("Jose", "Munoz")),  # accents are not dropped: a different name
        (("Ada", "Quinn"), ("Ada", "Quinn-Smith")),
        (("小明", "王"), ("小 明", "王")),
        (("محمد", "العلي"), ("محمود", "العلي")),
        (("Ada", "Quinn"), (None, "Quinn")),
    ],
    ids=["swapped", "accents-dropped", "longer", "space-inside", "arabic-other", "missing-first"],
)
def test_names_that_do_not_match(ours: tuple[str, str], theirs: tuple[str | None, str | None]) -> None:
    result = match_created(sent(*ours), [cand(7, *theirs)])
    assert (result.candidate_id, result.ambiguous, result.found) == (None, (), False)
    assert result.reason == "no candidate has the name we sent"


def test_other_names_never_count_even_with_our_email() -> None:
    other = cand(5, "Bea", "Stone", emails=("ada@example.org",))
    assert not match_created(sent(emails=("ada@example.org",)), [other]).found


# --- rule 2: corroboration ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        ({"phones": ("+1 (415) 555-0100",)}, {"phones": ("415.555.0100",)}),
        ({"phones": ("+44 20 7946 0958",)}, {"phones": ("020 7946 0958",)}),  # last 10 digits
        ({"phones": (arabic_indic("+966 50 123 4567"),)}, {"phones": ("+966501234567",)}),
        ({"company": "Northwind  Traders"}, {"company": "NORTHWIND traders"}),
        ({"company": fullwidth("Northwind")}, {"company": "Northwind"}),
        ({"websites": ("https://www.Ada.Example.org/",)}, {"websites": ("ada.example.org",)}),
        ({"social": ("http://LinkedIn.com/in/ada-quinn",)}, {"social": ("https://www.linkedin.com/in/ada-quinn/",)}),
        ({"websites": ("https://github.com/adaq",)}, {"social": ("github.com/adaq",)}),  # website or social: one kind
        ({"emails": ("Ada.Quinn@Example.org",)}, {"emails": ("ada.quinn@example.ORG",)}),
    ],
    ids=[
        "phone-us",
        "phone-uk-trunk",
        "phone-arabic-digits",
        "company",
        "company-nfkc",
        "website",
        "social",
        "website-vs-social",
        "email",
    ],
)
def test_each_attribute_corroborates(ours: dict[str, Any], theirs: dict[str, Any]) -> None:
    """The corroborated candidate wins over a same-name one with nothing in common."""
    result = match_created(sent(**ours), [cand(1), cand(2, **theirs)])
    assert (result.candidate_id, result.ambiguous) == (2, ())
    assert "1 corroborating" in result.reason


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        ({"phones": ("+1 415 555 0100",)}, {"phones": ("+1 415 555 0199",)}),
        ({"phones": ("555-0100",)}, {"phones": ("+1 415 555 0100",)}),  # 7 digits are not the last 10
        # a 9-digit national number: the country code and the trunk 0 leave different last 10 digits
        ({"phones": ("+966 50 123 4567",)}, {"phones": ("050 123 4567",)}),
        ({"company": "Northwind"}, {"company": "Northwind Traders"}),
        ({"websites": ("https://linkedin.com/in/Ada",)}, {"websites": ("https://linkedin.com/in/ada",)}),  # path case
        ({"websites": ("https://ada.example.org/blog",)}, {"websites": ("https://ada.example.org",)}),
        ({"emails": ("ada@example.org",)}, {"emails": ("ada@example.com",)}),
    ],
    ids=["phone", "phone-short", "phone-nine-digits", "company", "link-path-case", "link-path", "email"],
)
def test_near_misses_do_not_corroborate(ours: dict[str, Any], theirs: dict[str, Any]) -> None:
    result = match_created(sent(**ours), [cand(2, **theirs)])
    assert (result.candidate_id, result.ambiguous) == (None, ())
    assert "none shares what we sent" in result.reason


def test_the_best_corroborated_candidate_wins() -> None:
    ours = sent(company="Northwind", phones=("+14155550100",), emails=("ada@example.org",))
    candidates = [
        cand(1, company="Northwind"),
        cand(2, company="northwind", phones=("4155550100",)),
        cand(3, emails=("other@example.org",)),
        cand(4, "Bea", "Quinn", company="Northwind", phones=("4155550100",), emails=("ada@example.org",)),
    ]
    result = match_created(ours, candidates)
    assert (result.candidate_id, result.ambiguous) == (2, ())
    assert result.reason == "name and 2 corroborating attribute kind(s)"


def test_a_kind_counts_once_however_many_values_match() -> None:
    ours = sent(emails=("a@example.org", "b@example.org"), company="Northwind")
    many_emails = cand(1, emails=("a@example.org", "b@example.org"))
    email_and_company = cand(2, emails=("a@example.org",), company="Northwind")
    assert match_created(ours, [many_emails, email_and_company]).candidate_id == 2


def test_a_tie_at_the_best_score_is_ambiguous() -> None:
    ours = sent(company="Northwind", emails=("ada@example.org",))
    candidates = [cand(9, company="Northwind"), cand(3, emails=("ADA@example.org",)), cand(5)]
    result = match_created(ours, candidates)
    assert result == CreatedMatch(None, (3, 9), result.reason)
    assert not result.found and result.reason.startswith("2 candidates tie")


def test_blank_values_we_sent_corroborate_nothing() -> None:
    ours = sent(company="  ", phones=("n/a",))
    assert match_created(ours, [cand(1, company="", phones=("none",))]).reason.startswith("name only")


# --- rule 4: name only -------------------------------------------------------------------------------


def test_name_only() -> None:
    one = match_created(sent(), [cand(4), cand(8, "Bea", "Quinn")])
    assert (one.candidate_id, one.ambiguous) == (4, ())
    assert one.reason.startswith("name only")
    two = match_created(sent(), [cand(8), cand(4)])
    assert (two.candidate_id, two.ambiguous) == (None, (4, 8))
    assert two.reason == "name only: 2 candidates have the name we sent"
    assert match_created(sent(), []) == CreatedMatch(None, (), "no candidate has the name we sent")


def test_the_same_candidate_listed_twice_counts_once() -> None:
    assert match_created(sent(), [cand(4), cand(4)]).candidate_id == 4


# --- tolerance and the helpers -------------------------------------------------------------------------


def test_lenient_response_members_are_tolerated() -> None:
    odd = Candidate.model_validate(
        {
            "id": 6,
            "first_name": "Ada",
            "last_name": "Quinn",
            "phone_numbers": None,
            "email_addresses": [{"value": None}, {"type": "work"}, {"value": "ada@example.org"}],
        }
    )
    assert match_created(sent(emails=("ada@example.org",)), [odd]).candidate_id == 6


def test_with_the_body_the_mapping_makes() -> None:
    profile = Profile.model_validate(
        {
            "id": "p-1",
            "first_name": "Zoë",
            "last_name": "Ng",
            "phones": ["+1 415 555 0100"],
            "urls": ["https://zoe.example.org/"],
            "company": "Northwind",
        }
    )
    mapped = map_profile(
        profile,
        Target(kind="job", job_id=4012345),
        OptionIndex(),
        dummy_emails=True,
        dummy_email_domain="seekout.example.com",
        skills_custom_field=None,
    )
    dummy = mapped.create.email_addresses[0].value
    ours = cand(11, "ZOË", "NG", emails=(dummy.upper(),), websites=("zoe.example.org",))
    twin = cand(12, "Zoë", "Ng", company="Northwind")
    result = match_created(mapped.create, [twin, ours])
    assert (result.candidate_id, result.reason) == (11, "name and 2 corroborating attribute kind(s)")


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("+1 (415) 555-0100", "4155550100"),
        ("ext.", ""),
        (arabic_indic("0123"), "0123"),
    ],
)
def test_phone_key(raw: str, key: str) -> None:
    assert phone_key(raw) == key


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("HTTPS://WWW.Example.ORG/Path/", "example.org/Path"),
        ("example.org", "example.org"),
        ("http://www.example.org?q=A", "example.org?q=A"),
        ("  https://example.org///  ", "example.org"),
        ("ftp://files.example.org/x", "files.example.org/x"),
    ],
)
def test_link_key(raw: str, key: str) -> None:
    assert link_key(raw) == key


def test_email_key() -> None:
    assert email_key(" Ada.Quinn@EXAMPLE.org ") == "ada.quinn@example.org"
