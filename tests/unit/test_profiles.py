"""Profile input: good lines in any script, every bad-line kind reported by line/id/field, limits."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from shared.profiles.model import (
    MAX_LIST_ITEMS,
    LineError,
    Profile,
    read_profiles,
    read_profiles_file,
    select,
)

DATA = Path(__file__).parent.parent / "data"


def line(**fields: object) -> str:
    base: dict[str, object] = {"id": "p-1", "first_name": "Ada", "last_name": "Quinn"}
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not ...}, ensure_ascii=False)


@pytest.mark.parametrize(
    ("first", "last"),
    [
        ("Zoë", "Ødegård-Müller"),
        ("李", "小龙"),
        ("مريم", "الحسيني"),
        ("יעל", "כהן"),
        ("Sam 🚀", "O'Neil"),
        ("Ngọc", "Nguyễn"),
    ],
)
def test_unicode_names_are_valid(first: str, last: str) -> None:
    result = read_profiles([line(first_name=first, last_name=last)])
    assert result.errors == []
    assert (result.profiles[0].first_name, result.profiles[0].last_name) == (first, last)


def test_full_line_is_read_and_extra_keys_ignored() -> None:
    result = read_profiles(
        [
            line(
                id=" p-9 ",
                first_name="  Ada ",
                emails=[" ada@example.org "],
                phones=["+1 415 555 0100", "  "],
                company="Northwind",
                title="",
                skills=["Python"],
                employments=[{"company_name": "N", "title": "T", "start_date": "2019-03-01", "x": 1}],
                educations=[{"school": "Siena College", "end_date": "2012-06-30"}],
                tags=None,
                platform_score=0.9,
            )
        ]
    )
    assert result.errors == []
    p = result.profiles[0]
    assert p.id == "p-9"
    assert p.first_name == "Ada"
    assert p.emails == ["ada@example.org"]
    assert p.phones == ["+1 415 555 0100"]
    assert p.title is None
    assert p.tags == []
    assert p.employments[0].start_date == date(2019, 3, 1)
    assert p.educations[0].end_date == date(2012, 6, 30)
    assert "platform_score" not in p.model_dump()


def test_int_id_becomes_str() -> None:
    assert read_profiles([line(id=1006)]).profiles[0].id == "1006"


@pytest.mark.parametrize(
    ("text", "profile_id", "field", "message"),
    [
        ('{"id": "p-1", "first_name": ', None, None, "invalid JSON"),
        ('["p-1", "Ada"]', None, None, "not a JSON object"),
        ('"just a string"', None, None, "not a JSON object"),
        ('{"id": "p-1", "first_name": "A", "last_name": "B", "x": NaN}', None, None, "invalid JSON"),
        (line(id=...), None, "id", "field required"),
        (line(id=""), None, "id", "string should have at least 1 character"),
        (line(id=True), None, "id", "input should be a valid string"),
        (line(id="x" * 201), None, "id", "string should have at most 200 characters"),
        (line(last_name=...), "p-1", "last_name", "field required"),
        (line(first_name="   "), "p-1", "first_name", "string should have at least 1 character"),
        (line(first_name=7), "p-1", "first_name", "input should be a valid string"),
        (line(first_name="A" * 256), "p-1", "first_name", "string should have at most 255 characters"),
        (line(emails="a@b.co"), "p-1", "emails", "input should be a valid list"),
        (line(emails=["a@b.co", "c@d.org", "nope"]), "p-1", "emails[2]", "not a valid email address"),
        (line(emails=["a@@b.co"]), "p-1", "emails[0]", "not a valid email address"),
        (line(emails=["@b.co"]), "p-1", "emails[0]", "not a valid email address"),
        (line(emails=["a@localhost"]), "p-1", "emails[0]", "not a valid email address"),
        (line(emails=["a b@c.co"]), "p-1", "emails[0]", "not a valid email address"),
        (line(summary="s" * 10_001), "p-1", "summary", "string should have at most 10000 characters"),
        (
            line(skills=["s"] * (MAX_LIST_ITEMS + 1)),
            "p-1",
            "skills",
            "list should have at most 50 items after validation, not 51",
        ),
        (
            line(employments=[{"company_name": "N", "start_date": "2019-13-01"}]),
            "p-1",
            "employments[0].start_date",
            None,
        ),
        (
            line(educations=[{"school": "S"}, {"start_date": 2019}]),
            "p-1",
            "educations[1].start_date",
            "expected an ISO date string (YYYY-MM-DD)",
        ),
        (line(educations={"school": "S"}), "p-1", "educations", "input should be a valid list"),
    ],
)
def test_bad_line_is_reported_and_good_lines_kept(
    text: str, profile_id: str | None, field: str | None, message: str | None
) -> None:
    good_before = line(id="good-1")
    good_after = line(id="good-2")
    result = read_profiles([good_before, text, good_after])
    assert [p.id for p in result.profiles] == ["good-1", "good-2"]
    assert len(result.errors) == 1
    err = result.errors[0]
    assert (err.line, err.profile_id, err.field) == (2, profile_id, field)
    if message is not None:
        assert err.message == message


def test_error_never_contains_the_line_or_other_pii() -> None:
    result = read_profiles([line(last_name=..., emails=["secret@example.org", "bad"], phones=["+1 555"])])
    text = " | ".join(str(e) for e in result.errors)
    assert "secret" not in text and "Ada" not in text and "555" not in text
    assert "line 1 (id p-1): last_name: field required" in text
    assert "line 1 (id p-1): emails[1]: not a valid email address" in text


def test_line_error_str() -> None:
    assert str(LineError(3, "p-1003", "last_name", "field required")) == (
        "line 3 (id p-1003): last_name: field required"
    )
    assert str(LineError(2, None, None, "invalid JSON")) == "line 2: invalid JSON"


def test_blank_lines_skipped_but_counted() -> None:
    result = read_profiles(["", "   \n", line(id="a"), "\n", line(last_name=...)])
    assert [p.id for p in result.profiles] == ["a"]
    assert [e.line for e in result.errors] == [5]


def test_duplicate_id_is_an_error_for_the_later_line() -> None:
    result = read_profiles([line(id="a"), line(id="b"), line(id="a", first_name="Other"), line(id=" a ")])
    assert [p.id for p in result.profiles] == ["a", "b"]
    assert result.profiles[0].first_name == "Ada"
    assert [(e.line, e.profile_id, e.field, e.message) for e in result.errors] == [
        (3, "a", "id", "duplicate id, first seen on line 1"),
        (4, "a", "id", "duplicate id, first seen on line 1"),
    ]


def test_invalid_line_does_not_claim_its_id() -> None:
    result = read_profiles([line(id="a", last_name=...), line(id="a")])
    assert [p.id for p in result.profiles] == ["a"]
    assert [e.line for e in result.errors] == [1]


def test_mixed_file() -> None:
    result = read_profiles_file(DATA / "profiles_mixed.jsonl")
    assert [p.id for p in result.profiles] == ["p-1001", "1006", "p-1007"]
    assert [(e.line, e.profile_id, e.field) for e in result.errors] == [
        (2, None, None),
        (3, "p-1003", "last_name"),
        (4, "p-1004", "emails"),
        (6, "p-1005", "first_name"),
        (9, "p-1001", "id"),
    ]
    ada = result.profiles[0]
    assert ada.skills == ["Python", "Distributed systems"]
    assert ada.educations[0].degree == "Bachelor's Degree"
    assert result.profiles[1].first_name == "مريم"


def test_file_with_bom_and_crlf(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_bytes(("\ufeff" + line(id="a") + "\r\n" + line(id="b") + "\r\n").encode("utf-8"))
    result = read_profiles_file(path)
    assert result.errors == []
    assert [p.id for p in result.profiles] == ["a", "b"]


def test_bom_in_str_lines() -> None:
    assert read_profiles(["\ufeff" + line(id="a")]).profiles[0].id == "a"


def test_non_utf8_line_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_bytes(line(id="a").encode() + b"\n" + b'{"id": "\xff"}\n' + line(id="b").encode() + b"\n")
    result = read_profiles_file(path)
    assert [p.id for p in result.profiles] == ["a", "b"]
    assert [(e.line, e.message) for e in result.errors] == [(2, "not valid UTF-8")]


def test_snapshot_round_trip() -> None:
    profile = read_profiles_file(DATA / "profiles_mixed.jsonl").profiles[0]
    snap = profile.snapshot()
    assert json.loads(json.dumps(snap)) == snap
    assert snap["employments"][0]["start_date"] == "2019-03-01"
    assert Profile.from_snapshot(snap) == profile


def test_select() -> None:
    profiles = read_profiles([line(id="a"), line(id="b"), line(id="c")]).profiles
    chosen, missing = select(profiles, ["c", " a", "zz", "c"])
    assert [p.id for p in chosen] == ["c", "a"]
    assert missing == ["zz"]
