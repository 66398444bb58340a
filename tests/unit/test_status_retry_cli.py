"""``ghexport status`` (per batch, per profile, ``--watch``), ``export --wait`` and ``retry`` through typer's
CliRunner, on SQLite and the sandbox; the live views are driven by moving the store from the test."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

import producer.cli_base as cli
from producer import cli_export
from producer.cli import app, register_commands
from shared.harvest.sandbox import seed as s
from shared.store import batches
from shared.store.models import utcnow
from tests.unit.export_fixtures import Env, drain_broker, make_env, profile
from tests.unit.retry_fixtures import batch_ids, export, fail, ids, set_items

runner = CliRunner()


@pytest.fixture(scope="module", autouse=True)
def _commands() -> None:
    if not any(c.name == "status" for c in app.registered_commands):
        register_commands()


@pytest.fixture
def env(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    env = make_env(sqlite_url)
    monkeypatch.setattr(cli, "_resources", env.res)
    monkeypatch.setattr(cli.console, "width", 250)  # tables unwrapped, so cells can be asserted
    monkeypatch.setattr(cli.err_console, "width", 250)
    yield env
    drain_broker(env)
    env.res.close()


def ok(*args: str) -> Result:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result


def fails_with_one_line(result: Result, text: str, code: int = 1) -> None:
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ghexport: ") and text in lines[0], result.stderr
    assert result.stdout == ""


def worker_between_polls(env: Env, monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Make each pause of a live view export ONE queued item (as a worker would); returns the pauses."""
    pauses: list[float] = []

    def one_item(seconds: float) -> None:
        pauses.append(seconds)
        queued = [it.id for b in batch_ids(env) for it in batches.batch_items(env.engine, b) if it.status == "queued"]
        assert queued, "the view polled again although nothing was left to do"
        env.export(queued[0])

    monkeypatch.setattr(cli_export, "_sleep", one_item)
    return pauses


# --- status --------------------------------------------------------------------------------------------


def test_status_of_a_profile(env: Env) -> None:
    job_batch = export(env, ["p-1"])
    env.export(ids(env, job_batch)[0])
    doc = json.loads(ok("status", "--connection", "acme", "--profile", "p-1", "--json").stdout)
    assert doc["exported"] is True and doc["profile_id"] == "p-1" and doc["connection"] == "acme"
    assert [e["batch_id"] for e in doc["exports"]] == [job_batch]
    cid = doc["greenhouse_candidate_id"]
    assert cid == env.item(ids(env, job_batch)[0]).greenhouse_candidate_id

    table = ok("status", "--connection", "acme", "--profile", "p-1").stdout
    assert f"profile p-1 through acme: exported to Greenhouse as candidate {cid} (sync pending)" in table
    assert job_batch in table and f"job {s.OPEN_JOB_ID}" in table and s.RECRUITER_EMAIL in table
    assert "not exported to Greenhouse" in ok("status", "--connection", "acme", "--profile", "p-none").stdout


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (["--connection", "nope", "--profile", "p-1"], "connection nope does not exist"),
        (["some-batch", "--connection", "acme", "--profile", "p-1"], "give a BATCH_ID, or --connection"),
        (["--profile", "p-1"], "--connection and --profile go together"),
        ([], "give a BATCH_ID, or --connection"),
        (["--connection", "acme", "--profile", "p-1", "--watch"], "--watch follows a batch"),
        (["no-such-batch"], "no batch no-such-batch"),
    ],
)
def test_status_refuses_with_one_line(env: Env, args: list[str], text: str) -> None:
    fails_with_one_line(runner.invoke(app, ["status", *args]), text)


def test_batch_status_shows_sync(env: Env) -> None:
    batch = export(env, ["p-1", "p-2", "p-3"])
    a, b, c = ids(env, batch)
    set_items(env, [a], status="exported")
    set_items(env, [b], status="synced", synced_at=utcnow())
    set_items(env, [c], status="sync_overdue", sync_detail="tags differ")
    doc = json.loads(ok("status", batch, "--json").stdout)
    assert doc["sync"] == {"pending": 1, "synced": 1, "overdue": 1} and doc["done"] is True
    table = ok("status", batch).stdout
    assert "sync: 1 pending, 1 synced, 1 overdue" in table and "tags differ" in table
    assert utcnow().strftime("%Y-%m-%d") in table  # b's synced_at


# --- live views ------------------------------------------------------------------------------------------


def test_watch_ends_when_the_batch_does(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    batch = export(env, ["p-1", "p-2", "p-3"])
    pauses = worker_between_polls(env, monkeypatch)
    result = ok("status", batch, "--watch", "--json")
    doc = json.loads(result.stdout)  # quiet, then the final document alone
    assert doc["done"] is True and doc["counts"] == {"exported": 3} and doc["sync"]["pending"] == 3
    assert len(pauses) == 3, "one poll per item finished, none after the end"
    assert result.stderr == ""

    second = export(env, ["p-4", "p-5"])
    shown = ok("status", second, "--watch")
    for status in ("queued", "sending", "exported", "synced", "sync_overdue", "skipped", "failed"):
        assert status in shown.stderr  # the live view, every status counted
    assert f"batch {second}" in shown.stderr and "2/2" in shown.stderr
    assert f"batch {second}: 2 items; exported 2" in shown.stdout  # then the table


def test_export_wait_json(env: Env, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    file = tmp_path / "profiles.jsonl"
    file.write_text("".join(json.dumps(profile(p).snapshot()) + "\n" for p in ("p-1", "p-2")))
    worker_between_polls(env, monkeypatch)
    result = ok("export", "--connection", "acme", "--file", str(file), "--job", str(s.OPEN_JOB_ID), "--wait", "--json")
    doc = json.loads(result.stdout)
    assert (doc["enqueued"], doc["skipped"], doc["done"]) == (2, 0, True)
    assert doc["counts"] == {"exported": 2} and doc["sync"] == {"pending": 2, "synced": 0, "overdue": 0}
    assert [it.status for it in batches.batch_items(env.engine, doc["batch_id"])] == ["exported", "exported"]


@pytest.mark.parametrize("command", ["status", "export"])
def test_ctrl_c_leaves_the_live_view_cleanly(
    env: Env, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, command: str
) -> None:
    def interrupt(_seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_export, "_sleep", interrupt)
    file = tmp_path / "profiles.jsonl"
    file.write_text(json.dumps(profile("p-9").snapshot()) + "\n")
    args: dict[str, Callable[[], list[str]]] = {
        "status": lambda: ["status", export(env, ["p-1"]), "--watch", "--json"],
        "export": lambda: ["export", "--connection", "acme", "--file", str(file), "--prospect", "--wait", "--json"],
    }
    result = runner.invoke(app, args[command]())
    fails_with_one_line(result, "stopped watching batch", code=cli_export.INTERRUPTED_EXIT)
    assert "it goes on (see: ghexport status" in result.stderr


# --- retry ------------------------------------------------------------------------------------------------


def retry_json(*args: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(ok("retry", *args, "--json").stdout)
    return doc


def test_retry_says_what_it_left_and_why(env: Env) -> None:
    batch = export(env, ["p-1", "p-2", "p-3", "p-4", "p-5"])
    a, b, c, d, e = ids(env, batch)
    fail(env, [a, b, c], "invalid")
    fail(env, [d], "timeout")
    fail(env, [e], "connection_removed")

    text = ok("retry", batch).stdout
    assert "1 failed items re-enqueued" in text
    assert "3 not retried: permanent cause invalid (use --force)" in text
    assert "1 not retried: connection_removed" in text
    assert env.item(d).status == "queued" and env.item(d).attempts == 0

    doc = retry_json(batch, "--force")
    assert doc == {"batch_id": batch, "cause": None, "force": True, "enqueued": 3, "left": {"connection_removed": 1}}
    assert [env.item(i).status for i in (a, b, c, e)] == ["queued", "queued", "queued", "failed"]
    assert env.item(a).history[0]["cause"] == "invalid"


def test_retry_all_failed_and_by_cause(env: Env) -> None:
    first, second = export(env, ["p-1", "p-2"]), export(env, ["p-3"])
    (a, b), (c,) = ids(env, first), ids(env, second)
    fail(env, [a], "server_error")
    fail(env, [b, c], "rate_limited")
    assert retry_json("--cause", "rate_limited") == {
        "batch_id": None, "cause": "rate_limited", "force": False, "enqueued": 2, "left": {},
    }  # fmt: skip
    assert retry_json(second, "--cause", "server_error")["enqueued"] == 0
    assert retry_json("--all-failed")["enqueued"] == 1
    assert [env.item(i).status for i in (a, b, c)] == ["queued"] * 3


@pytest.mark.parametrize(
    ("args", "text"),
    [
        ([], "give a BATCH_ID, --all-failed or --cause CAUSE"),
        (["some-batch", "--all-failed"], "not both"),
        (["--cause", "bogus"], "unknown cause bogus; the failed items in the store have: timeout"),
        (["no-such-batch"], "no batch no-such-batch"),
    ],
)
def test_retry_refuses_with_one_line(env: Env, args: list[str], text: str) -> None:
    fail(env, ids(env, export(env, ["p-1"])), "timeout")
    fails_with_one_line(runner.invoke(app, ["retry", *args]), text)
