"""Per-connection field settings: set at ``connect``, changed by ``configure``, shown by ``connections``,
and applied to a mapped profile (parts switched off are named in the field report)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date

import fakeredis
import pytest
from pydantic import ValidationError
from typer.testing import CliRunner, Result

import producer.cli_base as cli
from producer.cli import app, register_commands
from shared.harvest.models import CreateCandidate, ProspectApplication
from shared.harvest.sandbox import Sandbox
from shared.harvest.sandbox.seed import CLIENT_ID, CLIENT_SECRET, RECRUITER_EMAIL
from shared.profiles.fields import FieldSettings, apply_fields
from shared.profiles.mapping import EducationPlan, EmploymentPlan, MappedCandidate
from shared.profiles.report import LeftOut, Reason
from shared.resources import Resources
from shared.store.db import open_store
from tests.connections_helpers import http_for, make_sandbox, make_settings

runner = CliRunner()
CONNECT = ["connect", "--name", "acme", "--client-id", CLIENT_ID, "--user-email", RECRUITER_EMAIL]


@pytest.fixture(scope="module", autouse=True)
def _commands() -> None:
    if not any(c.name == "connect" for c in app.registered_commands):
        register_commands()


@pytest.fixture
def res(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Resources]:
    sandbox: Sandbox = make_sandbox(rate_limit=10_000)
    resources = Resources(
        make_settings(sqlite_url),
        engine=open_store(sqlite_url),
        http_client=http_for(sandbox),
        redis_client=fakeredis.FakeRedis(),
    )
    monkeypatch.setattr(cli, "_resources", resources)
    monkeypatch.delenv("GHX_CLIENT_SECRET", raising=False)
    monkeypatch.setattr(cli.console, "width", 250)
    yield resources
    resources.close()


def _run(*args: str) -> Result:
    return runner.invoke(app, list(args))


def _fields(name: str = "acme") -> dict[str, object]:
    result = _run("connections", "--json")
    assert result.exit_code == 0, result.output
    (conn,) = [c for c in json.loads(result.stdout)["connections"] if c["name"] == name]
    return conn["fields"]  # type: ignore[no-any-return]


def test_a_new_connection_sends_every_part_by_default(res: Resources) -> None:
    assert _run(*CONNECT, "--client-secret", CLIENT_SECRET).exit_code == 0
    assert _fields() == FieldSettings().to_stored()
    assert _fields()["resume"] is True and _fields()["extra_tags"] == []


def test_connect_sets_fields_and_configure_changes_only_what_it_names(res: Resources) -> None:
    result = _run(
        *CONNECT,
        "--client-secret",
        CLIENT_SECRET,
        "--no-resume",
        "--no-educations",
        "--extra-tag",
        "Sourced",
        "--extra-tag",
        "sourced",  # the same tag as Greenhouse compares names: kept once
        "--paper",
        "letter",
    )
    assert result.exit_code == 0, result.output
    assert _fields() == {**FieldSettings().to_stored(), "resume": False, "educations": False,
                         "extra_tags": ["Sourced"], "paper": "letter"}  # fmt: skip

    result = _run("configure", "acme", "--resume", "--no-note", "--tag-exporting-user", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["fields"]["resume"] is True and doc["fields"]["note"] is False
    assert doc["fields"]["educations"] is False  # untouched
    assert doc["fields"]["extra_tags"] == ["Sourced"] and doc["fields"]["tag_exporting_user"] is True
    assert _fields() == doc["fields"]

    # reconnecting (secret rotation) without field options keeps them
    assert _run(*CONNECT, "--client-secret", CLIENT_SECRET).exit_code == 0
    assert _fields() == doc["fields"]

    assert _run("configure", "acme", "--no-extra-tags").exit_code == 0
    assert _fields()["extra_tags"] == []


def test_connections_and_configure_show_the_settings(res: Resources) -> None:
    assert _run(*CONNECT, "--client-secret", CLIENT_SECRET, "--no-tags", "--extra-tag", "Sourced").exit_code == 0
    table = _run("connections").stdout
    assert "resume (a4), note, educations, employments; extra tags: Sourced" in table
    shown = _run("configure", "acme")
    assert shown.exit_code == 0
    assert shown.stdout.strip() == "acme sends: resume (a4), note, educations, employments; extra tags: Sourced"


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (["--paper", "a5"], "paper"),
        (["--extra-tag", "  "], "extra tag is blank"),
        (["--extra-tag", "x", "--no-extra-tags"], "not both"),
    ],
)
def test_configure_refuses_bad_settings_with_one_line(res: Resources, args: list[str], text: str) -> None:
    assert _run(*CONNECT, "--client-secret", CLIENT_SECRET).exit_code == 0
    result = _run("configure", "acme", *args)
    assert result.exit_code == 1, result.output
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("ghexport: ") and text in line
    assert _fields() == FieldSettings().to_stored()  # nothing changed


def test_configure_an_unknown_connection_fails(res: Resources) -> None:
    result = _run("configure", "nope", "--no-resume")
    assert result.exit_code == 1 and "no connection named 'nope'" in result.stderr


# --- applying the settings ------------------------------------------------------------------------


def _mapped() -> MappedCandidate:
    app_ = ProspectApplication()
    return MappedCandidate(
        create=CreateCandidate(first_name="A", last_name="B", application=app_),
        application=app_,
        educations=[EducationPlan(1, None, None, None, None)],
        employments=[EmploymentPlan("Acme", "Eng", date(2020, 1, 1), None)] * 2,
        tags=["Backend"],
        note="Builds things.",
    )


def test_everything_on_changes_nothing_but_extra_tags() -> None:
    mapped, left = apply_fields(_mapped(), FieldSettings(extra_tags=("Sourced", "backend")))
    assert left == []
    assert mapped.tags == ["Backend", "Sourced"]  # "backend" is the profile's own tag, not a second one
    assert len(mapped.educations) == 1 and len(mapped.employments) == 2 and mapped.note


def test_parts_switched_off_are_removed_and_reported() -> None:
    off = FieldSettings(tags=False, note=False, educations=False, employments=False, extra_tags=("Sourced",))
    mapped, left = apply_fields(_mapped(), off, user_name="Riley Recruiter")
    assert mapped.educations == [] and mapped.employments == [] and mapped.note is None
    assert mapped.tags == ["Sourced"]  # extra tags go even with the profile's tags off
    assert [(e.part, e.reason) for e in left] == [
        ("educations", Reason.DISABLED),
        ("employments", Reason.DISABLED),
        ("note", Reason.DISABLED),
        ("tags", Reason.DISABLED),
    ]
    assert str(left[1]) == "employments not sent (2): off in the connection's field settings"


def test_the_exporting_users_name_becomes_a_tag() -> None:
    mapped, _ = apply_fields(_mapped(), FieldSettings(tag_exporting_user=True), user_name=" Riley Recruiter ")
    assert mapped.tags == ["Backend", "Riley Recruiter"]
    mapped, _ = apply_fields(_mapped(), FieldSettings(tag_exporting_user=True), user_name=None)
    assert mapped.tags == ["Backend"]


def test_stored_settings_read_back_and_ignore_unknown_keys() -> None:
    stored = FieldSettings(resume=False, paper="letter").to_stored()
    assert FieldSettings.from_stored({**stored, "from_a_newer_version": 1}) == FieldSettings(
        resume=False, paper="letter"
    )
    assert FieldSettings.from_stored({}) == FieldSettings()
    with pytest.raises(ValidationError):
        FieldSettings(extra_tags=tuple(f"t{i}" for i in range(11)))


def test_left_out_round_trips_and_reads_as_a_warning_line() -> None:
    entry = LeftOut("education", Reason.UNKNOWN_SCHOOL, "school 'X' has no Greenhouse option; left out", 2, "school")
    assert LeftOut.from_dict(entry.as_dict()) == entry
    assert str(entry) == "education 2: school 'X' has no Greenhouse option; left out"
    assert entry.as_dict() == {
        "part": "education",
        "reason": "unknown_school",
        "n": 2,
        "field": "school",
        "detail": "school 'X' has no Greenhouse option; left out",
    }
