"""The resume part and the field report through the export flow (sandbox MockTransport + SQLite): the
upload lands once whatever happens to its answer, the connection's field settings switch parts off and on,
and every omission is named per item and summed per reason in the batch status."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import producer.cli_base as cli
from producer import api
from producer.cli import app, register_commands
from shared.connections.service import configure
from shared.harvest import client as harvest_client
from shared.harvest.sandbox import seed as s
from shared.settings import ResumeSettings
from shared.store.models import ItemStatus
from tests.pdf_text import pdf_text, squeezed
from tests.unit.export_fixtures import Env, make_env, profile
from workers.outcome import Finished, NotClaimed, RetryLater

EXPORTED = Finished(ItemStatus.EXPORTED)
ATTACHMENTS = "/v3/attachments"


@pytest.fixture
def new_env(sqlite_url: str) -> Iterator[Callable[..., Env]]:
    made: list[Env] = []

    def factory(**kw: Any) -> Env:
        env = make_env(sqlite_url, **kw)
        made.append(env)
        return env

    yield factory
    for env in made:
        env.res.close()


@pytest.fixture
def env(new_env: Callable[..., Env]) -> Env:
    return new_env()


def attachments(env: Env) -> list[dict[str, Any]]:
    return [a for c in env.sandbox.state_snapshot()["candidates"] for a in c["attachments"]]


def uploads(env: Env) -> int:
    """Uploads the sandbox received, but for connect's scope probe (an empty body, answered 422)."""
    answers = env.sandbox.stats()["requests"].get(f"POST {ATTACHMENTS}", {})
    return sum(n for code, n in answers.items() if code != "422")


def export_one(env: Env, prof: Any = None, **batch: Any) -> int:
    (item_id,) = env.batch([prof or profile()], **batch).to_enqueue
    assert env.export(item_id) == EXPORTED
    return item_id


def test_the_resume_lands_on_the_application_once_with_the_profiles_text(env: Env) -> None:
    item_id = export_one(env)

    item = env.item(item_id)
    (att,) = attachments(env)
    assert att["type"] == "resume" and att["application_id"] == item.greenhouse_application_id
    assert att["filename"] == "Ada_Lovelace_resume.pdf"
    assert item.progress.resume_id == att["id"]
    content = env.sandbox.attachment_content(att["id"])
    assert content.startswith(b"%PDF-")
    text = squeezed(pdf_text(content))
    for expected in ("AdaLovelace", "Babbage&Co", "SienaCollege", "AnalyticalEngines"):
        assert expected in text
    doc = api.batch_status(env.res, env.item(item_id).batch_id)
    assert doc["items"][0]["sent"]["resume"] == att["id"]


def test_a_greenhouse_that_wants_content_type_still_gets_every_resume(
    new_env: Callable[..., Env], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whether v3 takes ``content_type`` is unknown: a Greenhouse that requires it refuses the first upload,
    which goes again with it at once; nothing is left out and nothing lands twice."""
    monkeypatch.setattr(harvest_client, "_CONTENT_TYPE_WANTED", {})
    env = new_env(sandbox_config={"attachment_content_type": "required"})
    items = [env.item(export_one(env, profile(pid))) for pid in ("p-1", "p-2")]

    assert [a["content_type"] for a in attachments(env)] == ["application/pdf", "application/pdf"]
    assert [it.progress.resume_id for it in items] == [a["id"] for a in attachments(env)]
    assert [it.left_out for it in items] == [[], []]
    refused = [bad for bad in env.sandbox.stats()["invalid"] if "content_type" in bad["reason"]]
    assert len(refused) == 1, refused  # learned from the first upload's 422


@pytest.mark.parametrize("kind", ["drop_after", "error_after"])
def test_an_upload_whose_answer_was_lost_is_found_not_sent_again(env: Env, kind: str) -> None:
    (item_id,) = env.batch([profile()]).to_enqueue
    env.sandbox.inject_fault(kind, method="POST", path=ATTACHMENTS)

    assert isinstance(env.export(item_id), RetryLater)
    (landed,) = attachments(env)
    assert env.item(item_id).progress.resume_sent and env.item(item_id).progress.resume_id is None

    assert env.export(item_id) == EXPORTED

    assert attachments(env) == [landed] and uploads(env) == 1
    assert env.item(item_id).progress.resume_id == landed["id"]


def test_an_upload_that_never_landed_is_sent_again_once(env: Env) -> None:
    (item_id,) = env.batch([profile()]).to_enqueue
    env.sandbox.inject_fault("error_before", method="POST", path=ATTACHMENTS)

    assert isinstance(env.export(item_id), RetryLater)
    assert attachments(env) == []
    assert env.export(item_id) == EXPORTED
    (att,) = attachments(env)
    assert env.item(item_id).progress.resume_id == att["id"]


def test_a_resume_greenhouse_refuses_is_left_out_with_its_message(env: Env) -> None:
    env.sandbox.block_extensions([".pdf"], attachment_type="resume")
    item_id = export_one(env)

    item = env.item(item_id)
    assert attachments(env) == []
    (entry,) = [e for e in item.left_out if e["part"] == "resume"]
    assert entry["reason"] == "rejected" and "filename" in entry["detail"]
    assert item.progress.resume_done and item.progress.resume_id is None
    refused = env.sandbox.stats()["requests"][f"POST {ATTACHMENTS}"]["422"]
    assert refused == 2  # connect's probe, and the resume
    assert isinstance(env.export(item_id), NotClaimed)  # a redelivery sends nothing more
    assert env.sandbox.stats()["requests"][f"POST {ATTACHMENTS}"]["422"] == refused


def test_a_person_exported_again_gets_no_second_copy_of_the_same_resume(env: Env) -> None:
    export_one(env)
    again = export_one(env, include_exported=True, job_id=s.OPEN_JOB_2_ID)

    item = env.item(again)
    assert item.progress.resume_id is not None
    on_new_app = [a for a in attachments(env) if a["application_id"] == item.greenhouse_application_id]
    assert len(on_new_app) == 1 and len(attachments(env)) == 2  # one per application, never two on one


def test_settings_switch_parts_off_then_on(env: Env) -> None:
    configure(env.engine, "acme", resume=False, educations=False, note=False, extra_tags=["Sourced"])
    off = env.item(export_one(env, profile("p-off")))

    cand = env.candidate(off.greenhouse_candidate_id or 0)
    assert cand["attachments"] == [] and cand["educations"] == [] and cand["notes"] == []
    assert len(cand["employments"]) == 1
    assert sorted(cand["tags"]) == ["Backend", "Rust Fans", "Sourced"]
    assert {(e["part"], e["reason"]) for e in off.left_out} == {
        ("resume", "disabled"),
        ("educations", "disabled"),
        ("note", "disabled"),
    }

    configure(env.engine, "acme", resume=True, educations=True, note=True, tags=False, extra_tags=[])
    on = env.item(export_one(env, profile("p-on")))

    cand = env.candidate(on.greenhouse_candidate_id or 0)
    assert len(cand["attachments"]) == 1 and len(cand["educations"]) == 1 and len(cand["notes"]) == 1
    assert cand["tags"] == []
    assert [(e["part"], e["reason"]) for e in on.left_out] == [("tags", "disabled")]


def test_field_report_names_an_unknown_school_and_a_dummy_email(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    unknown_school = profile("p-school", educations=[{"school": "Nowhere University", "degree": "Bachelor's Degree"}])
    no_email = profile("p-dummy", emails=[])
    created = env.batch([unknown_school, no_email, profile("p-clean")], dummy_emails=True)
    for item_id in created.to_enqueue:
        assert env.export(item_id) == EXPORTED

    doc = api.batch_status(env.res, created.batch_id)
    assert doc["left_out"] == {
        "items": 2,
        "by_reason": {"unknown_school": 1, "dummy_email": 1},
        "by_part": {"education": 1, "email": 1},
    }
    by_id = {it["candidate_id"]: it for it in doc["items"]}
    assert by_id["p-school"]["left_out"] == [
        {
            "part": "education",
            "reason": "unknown_school",
            "n": 1,
            "field": "school",
            "detail": "school 'Nowhere University' has no Greenhouse option; left out",
        }
    ]
    assert by_id["p-school"]["sent"]["educations"] == 1  # the degree went, the school did not
    assert by_id["p-dummy"]["left_out"][0]["reason"] == "dummy_email"
    assert by_id["p-clean"]["left_out"] == [] and by_id["p-clean"]["sent"]["resume"] is not None
    assert by_id["p-clean"]["sent"] == {
        "record": "created",
        "application": True,
        "educations": 1,
        "employments": 1,
        "tags": ["Backend", "Rust Fans"],
        "note": True,
        "resume": by_id["p-clean"]["sent"]["resume"],
    }

    if not any(c.name == "status" for c in app.registered_commands):
        register_commands()
    monkeypatch.setattr(cli, "_resources", env.res)
    monkeypatch.setattr(cli.console, "width", 250)
    out = CliRunner().invoke(app, ["status", created.batch_id])
    assert out.exit_code == 0, out.output
    assert "left out (2 items): unknown_school 1, dummy_email 1" in out.stdout

    profile_doc = api.profile_status(env.res, "acme", "p-school")
    assert profile_doc["exports"][0]["left_out"][0]["reason"] == "unknown_school"


def test_no_font_installed_leaves_the_resume_out_and_the_export_goes_on(
    new_env: Callable[..., Env], tmp_path: Path
) -> None:
    env = new_env(resume=ResumeSettings(font_dirs=[str(tmp_path)]))
    item = env.item(export_one(env))

    assert attachments(env) == [] and item.status == ItemStatus.EXPORTED
    (entry,) = item.left_out
    assert entry["part"] == "resume" and entry["reason"] == "no_font"
    assert "requirements/fonts.txt" in entry["detail"]


def test_a_resume_over_the_cap_is_cut_and_says_what(new_env: Callable[..., Env]) -> None:
    env = new_env(resume=ResumeSettings(max_bytes=15_000))
    jobs = [
        {"company_name": f"Company {i}", "title": "Engineer " + "x" * 200, "start_date": f"{1980 + i % 40}-01-01"}
        for i in range(50)
    ]
    item = env.item(export_one(env, profile(employments=jobs, summary="word " * 2000)))

    (att,) = attachments(env)
    assert len(env.sandbox.attachment_content(att["id"])) <= 15_000
    assert [e["reason"] for e in item.left_out if e["part"] == "resume"] == ["too_large"]
